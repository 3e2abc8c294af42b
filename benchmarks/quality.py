"""Reproduce one row of docs/results.md from a clean workspace, through the real `nmt` command.

Each row is a recipe: `nmt prepare`, `nmt train`, `nmt evaluate` with fixed options. The script prints
one JSON line with the settings, the wall time of each stage, the training history's best epoch and
the test scores (multi-reference and first-reference BLEU, chrF, TER, perplexity):

    python benchmarks/quality.py default --corpus ../shared/data/spa-eng/spa.txt
    python benchmarks/quality.py seed-003 --corpus ../shared/data/fra-eng/fra.txt
    python benchmarks/quality.py seed-003-word --corpus ../shared/data/fra-eng/fra.txt
    python benchmarks/quality.py transformer-subword --corpus ../shared/data/spa-eng/spa.txt

The test split is scored greedily and with a beam (`--beam-size`, 5 by default); both hypotheses
files stay in the workspace (`test-greedy.txt`, `test-beam5.txt`) and the JSON line counts their
lines holding an unknown word. Extra arguments after `--` go to `nmt train` (e.g. `-- --epochs 2`
for a quick check).
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


PEAK_RSS_MB: dict[str, float] = {}  # each `nmt` command's peak resident memory, by command


def nmt(*args: str) -> tuple[dict, float]:
    """Run `nmt ARGS --json`; returns its JSON result and the wall time in seconds, and records the
    process's peak RSS in ``PEAK_RSS_MB`` (the highest of a command run more than once)."""
    command = [str(Path(sys.executable).parent / "nmt"), *args, "--json"]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE)
    with process.stdout:
        stdout = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"quality.py: `{' '.join(command)}` failed with exit code {code}")
    peak_mb = round(usage.ru_maxrss / 1024, 1)  # kilobytes on Linux
    PEAK_RSS_MB[args[0]] = max(peak_mb, PEAK_RSS_MB.get(args[0], 0.0))
    return json.loads(stdout), seconds


def unknown_lines(path: Path) -> int:
    """Lines of a hypotheses file holding an unknown word: ``<unk>`` (word and char levels) or
    SentencePiece's rendering of its unknown piece, U+2047."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return sum("<unk>" in line or "\u2047" in line for line in lines)


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
    parser.epilog = "Options after `--` go to `nmt train`."
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:split])
    extra_train_args = argv[split + 1 :]

    prepare_args, train_args, evaluate_args = ROWS[args.row]
    workspace = args.workspace or Path(tempfile.mkdtemp(prefix=f"nmt-quality-{args.row}-"))
    if workspace.exists() and any(workspace.iterdir()):
        raise SystemExit(f"quality.py: {workspace} is not empty; a row starts from a clean workspace")
    ws = ["--workspace", str(workspace)]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

    prepared, prepare_seconds = nmt("prepare", str(args.corpus), *ws, *prepare_args)
    trained, train_seconds = nmt("train", *ws, *train_args, *extra_train_args)
    greedy_out, beam_out = workspace / "test-greedy.txt", workspace / f"test-beam{args.beam_size}.txt"
    scores, evaluate_seconds = nmt("evaluate", *ws, *evaluate_args, "--output", str(greedy_out))
    beam_scores, beam_seconds = (
        nmt("evaluate", *ws, *evaluate_args, "--beam-size", str(args.beam_size), "--output", str(beam_out))
        if args.beam_size
        else (None, 0.0)
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
                "peak_rss_mb": PEAK_RSS_MB,
                "test": scores,
                "test_beam": beam_scores,
                "unknown_lines": {
                    path.name: unknown_lines(path) for path in (greedy_out, beam_out) if path.exists()
                },
            }
        )
    )
    if args.workspace is None:
        shutil.rmtree(workspace, ignore_errors=True)


if __name__ == "__main__":
    main()
