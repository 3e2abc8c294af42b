"""Peak memory of `nmt prepare` and `nmt train` on a whole corpus, each in its own child process.

Runs the real commands in a new temporary workspace and prints one JSON line with each command's
wall time and peak resident set size (from the kernel's accounting of that child alone). Extra
arguments after `--` go to `nmt train`; the default trains the seed-003 model size (character-level
LSTM, 256 units) for one epoch over every pair:

    python benchmarks/train_memory.py --corpus ../shared/data/fra-eng/fra.txt

The default architecture at character level, on the longest sentences (the worst case for memory,
which depends on the longest batch, not on the corpus size)::

    tail -n 1500 ../shared/data/spa-eng/spa.txt > /tmp/long.txt
    python benchmarks/train_memory.py --corpus /tmp/long.txt -- --level char --arch gru-attention \
        --epochs 1 --bleu-sample 0

Measured 2026-11-30 (1,352 training pairs of up to 283 characters, load average 5-7 from other work):
with Keras's AdditiveAttention the training process passed 13.3 GB within 40 s and was stopped; with
the chunked score (models/additive_score.py) it peaked at 2,037 MB and took 121.5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_TRAIN = ["--level", "char", "--arch", "lstm", "--units", "256", "--epochs", "1", "--bleu-sample", "0"]


def run(command: list[str]) -> tuple[float, float]:
    """Run ``command``; returns (wall seconds, peak RSS in MB) of that process."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"train_memory.py: `{' '.join(command)}` failed")
    return seconds, usage.ru_maxrss / 1024  # kilobytes on Linux


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument(
        "train_args", nargs="*", help=f"options for `nmt train` [default: {' '.join(DEFAULT_TRAIN)}]"
    )
    args = parser.parse_args()

    nmt = str(Path(sys.executable).parent / "nmt")
    train_args = args.train_args or DEFAULT_TRAIN
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    workspace = Path(tempfile.mkdtemp(prefix="nmt-train-memory-"))
    try:
        ws = ["--workspace", str(workspace), "--quiet"]
        prepare_seconds, prepare_mb = run([nmt, "prepare", str(args.corpus), *ws])
        train_seconds, train_mb = run([nmt, "train", *ws, *train_args])
        manifest = json.loads((workspace / "data" / "manifest.json").read_text(encoding="utf-8"))
    finally:
        shutil.rmtree(workspace, ignore_errors=True)
    print(
        json.dumps(
            {
                "benchmark": "train_memory",
                "corpus": str(args.corpus),
                "train_pairs": manifest["counts"]["train"],
                "train_args": " ".join(train_args),
                "prepare_seconds": round(prepare_seconds, 1),
                "prepare_peak_rss_mb": round(prepare_mb, 1),
                "train_seconds": round(train_seconds, 1),
                "train_peak_rss_mb": round(train_mb, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
