"""Batched greedy decoding speed of a trained model, in one process, after a warm-up batch.

Translates the first ``--sentences`` sources of a corpus (or of a prepared split such as
``WORKSPACE/data/test.tsv``) with ``Translator.translate`` and prints one JSON line: sentences per
second, target tokens per second and the decoding settings.

    python benchmarks/decode_speed.py --model nmt-workspace/runs/RUN --corpus nmt-workspace/data/test.tsv
"""

from __future__ import annotations

import argparse
import json
import os
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
    args = parser.parse_args()

    from nmtcli.translator import Translator

    with open(args.corpus, encoding="utf-8") as handle:
        sources = [line.split("\t", 1)[0] for line in handle if "\t" in line][: args.sentences]
    translator = Translator.load(args.model)
    translator.translate(sources[: args.batch_size], batch_size=args.batch_size, beam_size=args.beam_size)
    started, cpu_started = time.perf_counter(), time.process_time()
    outputs = translator.translate(sources, batch_size=args.batch_size, beam_size=args.beam_size)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    tokens = sum(len(translator.target.tokenizer.tokenize(line)) + 1 for line in outputs)  # + end token
    config = translator.config
    print(
        json.dumps(
            {
                "benchmark": "decode_speed",
                "model": f"{config.arch} {config.level} {config.units} units, target vocabulary "
                f"{config.target_vocab_size}",
                "sentences": len(sources),
                "batch_size": args.batch_size,
                "beam_size": args.beam_size,
                "seconds": round(seconds, 2),
                "cpu_seconds": round(cpu_seconds, 2),
                "sentences_per_second": round(len(sources) / seconds, 1),
                "target_tokens_per_second": round(tokens / seconds, 1),
                "load_average_1min": round(os.getloadavg()[0], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
