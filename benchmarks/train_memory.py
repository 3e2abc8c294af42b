"""Peak memory of `nmt prepare` and `nmt train` on a whole corpus, each in its own child process.

Runs the real commands in a new temporary workspace and prints one JSON line with each command's
wall time and peak resident set size (from the kernel's accounting of that child alone), the
training's CPU seconds, and the first epoch's seconds and training pairs per second. Extra
arguments after `--` go to `nmt train`; the default trains the seed-003 model size (character-level
LSTM, 256 units) for one epoch over every pair:

    python benchmarks/train_memory.py --corpus ../shared/data/fra-eng/fra.txt

The default architecture at character level, on the longest sentences (the worst case for memory,
which depends on the longest batch, not on the corpus size)::

    tail -n 1500 ../shared/data/spa-eng/spa.txt > /tmp/long.txt
    python benchmarks/train_memory.py --corpus /tmp/long.txt -- --level char --arch gru-attention \
        --epochs 1 --bleu-sample 0

To compare with another version of the code in the same run (one right after the other, so that
both see much the same load), give its ``src`` folder: ``git archive <commit> src | tar -x -C
/tmp/before`` and then ``--baseline-src /tmp/before/src``; each line then says which code it
measured. Figures are in docs/benchmarks.md ("Memory").
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


def run(command: list[str], env: dict[str, str]) -> tuple[float, float, float]:
    """Run ``command``; returns (wall seconds, CPU seconds, peak RSS in MB) of that process."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"train_memory.py: `{' '.join(command)}` failed")
    # CPU seconds (user + system, all threads) vary less than wall time on a shared machine.
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024  # kilobytes on Linux


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument(
        "train_args", nargs="*", help=f"options for `nmt train` [default: {' '.join(DEFAULT_TRAIN)}]"
    )
    parser.add_argument(
        "--baseline-src",
        type=Path,
        help="also measure the nmtcli package in this src folder, before the installed one",
    )
    args = parser.parse_args()

    train_args = args.train_args or DEFAULT_TRAIN
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if args.baseline_src is None:
        measure(args.corpus, train_args, None)
        return
    measure(args.corpus, train_args, args.baseline_src.resolve())
    measure(args.corpus, train_args, None)


def measure(corpus: Path, train_args: list[str], src: Path | None) -> None:
    """Prepare and train in a new workspace with the installed code, or that in ``src``; print a line."""
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(src), *filter(None, [env.get("PYTHONPATH")])])
    nmt = [sys.executable, "-c", "from nmtcli.cli import main; main()"]
    workspace = Path(tempfile.mkdtemp(prefix="nmt-train-memory-"))
    try:
        ws = ["--workspace", str(workspace), "--quiet"]
        prepare_seconds, _, prepare_mb = run([*nmt, "prepare", str(corpus), *ws], env)
        train_seconds, train_cpu_seconds, train_mb = run([*nmt, "train", *ws, *train_args], env)
        manifest = json.loads((workspace / "data" / "manifest.json").read_text(encoding="utf-8"))
        [history] = (workspace / "runs").glob("*/history.json")
        rows = json.loads(history.read_text(encoding="utf-8"))  # one row per epoch
    finally:
        shutil.rmtree(workspace, ignore_errors=True)
    train_pairs = manifest["counts"]["train"]
    epoch_seconds = rows[0]["seconds"]  # the first epoch: tracing and validation included
    print(
        json.dumps(
            {
                "benchmark": "train_memory",
                "code": str(src) if src else "installed",
                "corpus": str(corpus),
                "train_pairs": train_pairs,
                "train_args": " ".join(train_args),
                "prepare_seconds": round(prepare_seconds, 1),
                "prepare_peak_rss_mb": round(prepare_mb, 1),
                "train_seconds": round(train_seconds, 1),
                "train_cpu_seconds": round(train_cpu_seconds, 1),
                "train_peak_rss_mb": round(train_mb, 1),
                "first_epoch_seconds": round(epoch_seconds, 1),
                "train_pairs_per_second": round(train_pairs / epoch_seconds, 1),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
