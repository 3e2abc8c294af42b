"""Batched decoding speed of a trained model, in one process, after a warm-up batch.

Translates the first ``--sentences`` sources of a corpus (or of a prepared split such as
``WORKSPACE/data/test.tsv``) with ``Translator.translate`` and prints one JSON line: sentences per
second, target tokens per second and the decoding settings. With ``--rounds`` > 1 the whole set is
translated that many times and the median round is reported; ``--compare bf16_output`` takes turns
between float32 decoding and ``--bf16-output`` (the output layer's product in bfloat16), one round
each, and also counts the sentences whose translations differ.

    python benchmarks/decode_speed.py --model nmt-workspace/runs/RUN --corpus nmt-workspace/data/test.tsv
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="run folder from `nmt train`")
    parser.add_argument(
        "--corpus", type=Path, required=True, help="tab-separated; the first column is translated"
    )
    parser.add_argument("--sentences", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--beam-size", type=int, default=1)
    parser.add_argument("--bf16-output", action="store_true", help="as `nmt translate --bf16-output`")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--compare", choices=["bf16_output"], default=None)
    args = parser.parse_args()

    from nmtcli.config import DecodingConfig
    from nmtcli.translator import Translator

    with open(args.corpus, encoding="utf-8") as handle:
        sources = [line.split("\t", 1)[0] for line in handle if "\t" in line][: args.sentences]
    settings = [False, True] if args.compare else [args.bf16_output]
    translators = {bf16: Translator.load(args.model) for bf16 in settings}
    decodings = {
        bf16: DecodingConfig(batch_size=args.batch_size, beam_size=args.beam_size, bf16_output=bf16)
        for bf16 in settings
    }
    seconds: dict[bool, list[float]] = {bf16: [] for bf16 in settings}
    cpu_seconds: dict[bool, list[float]] = {bf16: [] for bf16 in settings}
    outputs: dict[bool, list[str]] = {}

    for bf16, translator in translators.items():  # warm-up: trace the decoder
        translator.translate(sources[: args.batch_size], decodings[bf16])
    for _ in range(args.rounds):
        for bf16, translator in translators.items():
            started, cpu_started = time.perf_counter(), time.process_time()
            outputs[bf16] = translator.translate(sources, decodings[bf16])
            seconds[bf16].append(time.perf_counter() - started)
            cpu_seconds[bf16].append(time.process_time() - cpu_started)

    config = next(iter(translators.values())).config
    figures = {
        "benchmark": "decode_speed",
        "model": f"{config.arch} {config.level} {config.units} units, target vocabulary "
        f"{config.target_vocab_size}",
        "sentences": len(sources),
        "batch_size": args.batch_size,
        "beam_size": args.beam_size,
        "rounds": args.rounds,
    }
    for bf16, translator in translators.items():
        active = translator.effective(decodings[bf16]).bf16_output
        name = "bf16" if active else "float32"
        if bf16 and not active:
            name = "bf16_unavailable"  # asked for, but this CPU lacks native bfloat16: float32 ran
        median = statistics.median(seconds[bf16])
        tokens = sum(len(translator.target.tokenizer.tokenize(line)) + 1 for line in outputs[bf16])
        figures[name] = {
            "seconds": round(median, 2),
            "cpu_seconds": round(statistics.median(cpu_seconds[bf16]), 2),
            "sentences_per_second": round(len(sources) / median, 1),
            "target_tokens_per_second": round(tokens / median, 1),
            "sentences_per_second_all": [round(len(sources) / s, 1) for s in seconds[bf16]],
        }
    if args.compare:
        figures["sentences_differing"] = sum(
            a != b for a, b in zip(outputs[False], outputs[True], strict=True)
        )
    figures["load_average_1min"] = round(os.getloadavg()[0], 2)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
