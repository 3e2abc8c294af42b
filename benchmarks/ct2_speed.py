"""CTranslate2 against TensorFlow on one Transformer run, in one process: speed, equality, BLEU, start-up.

Decodes every source of a prepared split (default: the run's own ``test`` split, grouped: one line per
distinct source) with the TensorFlow translator (decoder traced once, by a warm-up batch, as ``nmt
translate`` keeps it), CTranslate2 float32 and CTranslate2 int8, greedy and beam 5, and prints one
JSON object: sentences per second of each (the load average before and after each figure), the
ratio CTranslate2 int8 / TensorFlow, how many translations float32 CTranslate2 and TensorFlow share
exactly (with the differing lines), BLEU (sacrebleu, multi-reference) of each, and the wall time of
``echo "Go." | nmt translate -m RUN`` (median of ``--startup-rounds``, after one untimed call that
writes the run's CTranslate2 copy if it is missing).

    python benchmarks/ct2_speed.py --model WORKSPACE/runs/RUN [--out ct2_speed.json]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def timed(translator, sources, decoding):
    before, started = load(), time.perf_counter()
    outputs = translator.translate(sources, decoding)
    seconds = time.perf_counter() - started
    return outputs, {
        "seconds": round(seconds, 2),
        "sentences_per_second": round(len(sources) / seconds, 1),
        "load_before": before,
        "load_after": load(),
    }


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def startup(
    run_dir: Path, rounds: int, nmt: list[str] | None = None, env: dict[str, str] | None = None
) -> dict:
    """Wall seconds of ``echo "Go." | nmt translate -m RUN``, ``rounds`` times after one untimed call
    (which writes the run's cached copy if it is missing). ``nmt``: the command that runs nmt
    [default: the installed ``nmt``], in the environment ``env`` (benchmarks/startup.py runs an older
    version of the code through them)."""
    nmt = nmt or [shutil.which("nmt") or str(Path(sys.executable).with_name("nmt"))]
    command = [*nmt, "translate", "-m", str(run_dir)]
    run = functools.partial(
        subprocess.run, input="Go.\n", capture_output=True, text=True, check=True, env=env
    )
    run(command)  # writes the copy
    times, cpu, output, before = [], [], "", load()
    for _ in range(rounds):
        started, used = time.perf_counter(), children_cpu()
        done = run(command)
        times.append(time.perf_counter() - started)
        cpu.append(children_cpu() - used)
        output = done.stdout.strip()
    return {
        "command": f'echo "Go." | nmt translate -m {run_dir}',
        "seconds": [round(t, 3) for t in times],
        "median_seconds": round(statistics.median(times), 3),
        # CPU seconds (user + system, all threads): what a busy machine changes least.
        "cpu_seconds": [round(t, 3) for t in cpu],
        "median_cpu_seconds": round(statistics.median(cpu), 3),
        "output": output,
        "load_before": before,
        "load": load(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="a transformer run folder")
    parser.add_argument("--data", type=Path, default=None, help="prepared data [default: the run's]")
    parser.add_argument("--split", default="test")
    parser.add_argument("--batch-size", type=int, default=64, help="as `nmt translate` [default: 64]")
    parser.add_argument("--beam-size", type=int, default=5)
    parser.add_argument("--startup-rounds", type=int, default=5)
    parser.add_argument(
        "--out", type=Path, default=None, help="also write the JSON (and all differences) here"
    )
    args = parser.parse_args()

    import sacrebleu

    from nmtcli.config import DecodingConfig
    from nmtcli.corpus import PreparedData, reference_streams
    from nmtcli.ct2 import CT2Translator
    from nmtcli.run_folder import RunFolder

    run = RunFolder(args.model)
    data = args.data or Path(run.config().data)
    sources, references = PreparedData.load(data).held_out(args.split, run.manifest(), str(args.model))
    streams = reference_streams(references)
    report: dict = {"model": str(args.model), "split": f"{data}/{args.split}.tsv", "sentences": len(sources)}
    report["startup"] = startup(args.model, args.startup_rounds)

    from nmtcli.runtime import quiet_import

    quiet_import()
    from nmtcli.translator import Translator

    engines = {
        "tensorflow": Translator.load(args.model),
        "ctranslate2_float32": CT2Translator.load(args.model, "float32"),
        "ctranslate2_int8": CT2Translator.load(args.model, "int8"),
    }
    for name, beam in (("greedy", 1), (f"beam{args.beam_size}", args.beam_size)):
        decoding = DecodingConfig(batch_size=args.batch_size, beam_size=beam)
        outputs, figures = {}, {}
        for engine, translator in engines.items():
            translator.translate(sources[: args.batch_size], decoding)  # warm-up (TensorFlow traces)
            outputs[engine], figures[engine] = timed(translator, sources, decoding)
            figures[engine]["bleu"] = round(sacrebleu.corpus_bleu(outputs[engine], streams).score, 2)
        differing = [
            {"line": i, "source": sources[i], "tensorflow": a, "ctranslate2": b}
            for i, (a, b) in enumerate(
                zip(outputs["tensorflow"], outputs["ctranslate2_float32"], strict=True)
            )
            if a != b
        ]
        report[name] = {
            **figures,
            "int8_over_tensorflow": round(
                figures["ctranslate2_int8"]["sentences_per_second"]
                / figures["tensorflow"]["sentences_per_second"],
                2,
            ),
            "float32_equal_to_tensorflow": len(sources) - len(differing),
            "differing": differing,
        }
    if args.out:
        args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    for name in ("greedy", f"beam{args.beam_size}"):
        report[name]["differing"] = report[name]["differing"][:10]
    print(json.dumps(report, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
