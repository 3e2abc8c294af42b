"""Peak memory and speed of `nmt translate` streaming a large input.

Writes ``--lines`` sentences (cycled from the source side of a corpus) to a temporary file, pipes it
through `nmt translate --model RUN` in a child process and prints one JSON line; the output is
checked to have exactly one line per input line.

    python benchmarks/translate_memory.py --model nmt-workspace/runs/RUN --corpus spa.txt --lines 100000
"""

from __future__ import annotations

import argparse
import itertools
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="run folder from `nmt train`")
    parser.add_argument("--corpus", type=Path, required=True, help="corpus whose first column is translated")
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()

    with open(args.corpus, encoding="utf-8") as handle:
        sources = [line.split("\t", 1)[0] for line in handle if "\t" in line]
    nmt = shutil.which("nmt", path=str(Path(sys.executable).parent)) or "nmt"
    with tempfile.TemporaryDirectory(prefix="nmt-bench-") as tmp:
        source_file, output_file = Path(tmp) / "input.txt", Path(tmp) / "output.txt"
        with open(source_file, "w", encoding="utf-8") as handle:
            handle.writelines(line + "\n" for line in itertools.islice(itertools.cycle(sources), args.lines))
        started = time.perf_counter()
        with open(source_file, "rb") as stdin, open(output_file, "wb") as stdout:
            result = subprocess.run(
                [nmt, "translate", "--model", str(args.model), "--batch-size", str(args.batch_size)],
                stdin=stdin,
                stdout=stdout,
                stderr=subprocess.PIPE,
                text=False,
            )
        seconds = time.perf_counter() - started
        if result.returncode != 0:
            sys.exit(result.stderr.decode())
        with open(output_file, "rb") as handle:
            output_lines = sum(1 for _ in handle)
        print(
            json.dumps(
                {
                    "benchmark": "translate_memory",
                    "model": args.model.name,
                    "lines": args.lines,
                    "output_lines": output_lines,
                    "seconds": round(seconds, 1),
                    "sentences_per_second": round(args.lines / seconds, 1),
                    "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
                }
            )
        )


if __name__ == "__main__":
    main()
