"""Reproduce one row of docs/results.md from a clean workspace, through the real `nmt` command.

Each row is a recipe: `nmt prepare`, `nmt train`, `nmt evaluate` with fixed options. The script prints
one JSON line with the settings, the wall time of each stage, the training history's best epoch and
the test scores (multi-reference and first-reference BLEU, chrF, TER, perplexity):

    python benchmarks/quality.py default --corpus ../shared/data/spa-eng/spa.txt
    python benchmarks/quality.py seed-003 --corpus ../shared/data/fra-eng/fra.txt
    python benchmarks/quality.py seed-003-word --corpus ../shared/data/fra-eng/fra.txt

Extra arguments after `--` go to `nmt train` (e.g. `-- --epochs 2` for a quick check).
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

# Each row: (prepare options, train options, evaluate options).
ROWS: dict[str, tuple[list[str], list[str], list[str]]] = {
    # The default recipe within a laptop's hour.
    "default": ([], ["--epochs", "50", "--max-minutes", "60"], ["--bleu", "--chrf", "--ter"]),
    # Issue 15's three candidates for the default, each in the same 60-minute budget.
    "transformer-subword": (
        [],
        ["--arch", "transformer", "--level", "subword", "--epochs", "50", "--max-minutes", "60"],
        ["--bleu", "--chrf", "--ter"],
    ),
    "gru-attention-subword": (
        [],
        ["--arch", "gru-attention", "--level", "subword", "--epochs", "50", "--max-minutes", "60"],
        ["--bleu", "--chrf", "--ter"],
    ),
    "gru-attention-word": (
        [],
        ["--arch", "gru-attention", "--level", "word", "--epochs", "50", "--max-minutes", "60"],
        ["--bleu", "--chrf", "--ter"],
    ),
    # The seeds' recipes (see `nmt train --help` and src/nmtcli/presets.py).
    "seed-000": (["--preset", "seed-000"], ["--preset", "seed-000"], ["--bleu", "--chrf", "--ter"]),
    "seed-002": (["--preset", "seed-002"], ["--preset", "seed-002"], ["--bleu", "--chrf", "--ter"]),
    "seed-003": (["--preset", "seed-003"], ["--preset", "seed-003"], ["--bleu", "--chrf", "--ter"]),
    # The seed-003 recipe with words instead of characters, for comparison.
    "seed-003-word": (
        ["--preset", "seed-003"],
        ["--preset", "seed-003", "--level", "word", "--embedding-dim", "256"],
        ["--bleu", "--chrf", "--ter"],
    ),
}


def nmt(*args: str) -> tuple[dict, float]:
    """Run `nmt ARGS --json`; returns its JSON result and the wall time in seconds."""
    command = [str(Path(sys.executable).parent / "nmt"), *args, "--json"]
    started = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"quality.py: `{' '.join(command)}` failed with exit code {done.returncode}")
    return json.loads(done.stdout), seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("row", choices=sorted(ROWS))
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--workspace", type=Path, help="Workspace to use [default: a new temporary folder].")
    parser.add_argument(
        "--beam-size", type=int, default=5, help="Also evaluate with this beam (0: greedy only) [default: 5]."
    )
    parser.add_argument("train_args", nargs="*", help="Extra options for `nmt train` (after --).")
    args = parser.parse_args()

    prepare_args, train_args, evaluate_args = ROWS[args.row]
    workspace = args.workspace or Path(tempfile.mkdtemp(prefix=f"nmt-quality-{args.row}-"))
    if workspace.exists() and any(workspace.iterdir()):
        raise SystemExit(f"quality.py: {workspace} is not empty; a row starts from a clean workspace")
    ws = ["--workspace", str(workspace)]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

    prepared, prepare_seconds = nmt("prepare", str(args.corpus), *ws, *prepare_args)
    trained, train_seconds = nmt("train", *ws, *train_args, *args.train_args)
    scores, evaluate_seconds = nmt("evaluate", *ws, *evaluate_args)
    beam_scores, beam_seconds = (
        nmt("evaluate", *ws, *evaluate_args, "--beam-size", str(args.beam_size)) if args.beam_size else (None, 0.0)
    )
    config = json.loads((Path(trained["run"]) / "config.json").read_text(encoding="utf-8"))
    print(
        json.dumps(
            {
                "row": args.row,
                "corpus": str(args.corpus),
                "pairs": {split: prepared["counts"][split] for split in ("train", "valid", "test")},
                "model": config["model"],
                "training": config["training"],
                "parameters": trained["parameters"],
                "epochs": trained["epochs"],
                "best_epoch": trained["best_epoch"],
                "best": trained["best"],
                "seconds": {
                    "prepare": round(prepare_seconds, 1),
                    "train": round(train_seconds, 1),
                    "train_epochs": trained["train_seconds"],
                    "evaluate": round(evaluate_seconds, 1),
                    "evaluate_beam": round(beam_seconds, 1),
                },
                "test": scores,
                "test_beam": beam_scores,
            }
        )
    )
    if args.workspace is None:
        shutil.rmtree(workspace, ignore_errors=True)


if __name__ == "__main__":
    main()
