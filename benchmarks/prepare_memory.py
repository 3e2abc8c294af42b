"""Peak memory and time of `nmt prepare` on a large synthetic corpus.

Builds a corpus of ``--size-mb`` megabytes in a temporary folder from random sentences over the
vocabulary of a real corpus (so word counts look natural and nearly every pair is distinct), runs
`nmt prepare` on it in a child process, and prints one JSON line:

    python benchmarks/prepare_memory.py --corpus ../shared/data/spa-eng/spa.txt --size-mb 1024
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def vocabulary(corpus: Path) -> tuple[list[str], list[str]]:
    source, target = set(), set()
    with open(corpus, encoding="utf-8") as handle:
        for line in handle:
            fields = line.rstrip("\n").split("\t")
            if len(fields) >= 2:
                source.update(fields[0].split())
                target.update(fields[1].split())
    return sorted(source), sorted(target)


def write_corpus(path: Path, size: int, source: list[str], target: list[str], seed: int) -> int:
    rng = random.Random(seed)
    written = pairs = 0
    with open(path, "w", encoding="utf-8") as handle:
        while written < size:
            lines = []
            for _ in range(10_000):
                n = rng.randint(2, 12)
                lines.append(f"{' '.join(rng.choices(source, k=n))}\t{' '.join(rng.choices(target, k=n))}\n")
            block = "".join(lines)
            handle.write(block)
            written += len(block.encode("utf-8"))
            pairs += len(lines)
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, required=True, help="real corpus whose words are sampled")
    parser.add_argument("--size-mb", type=float, default=1024, help="size of the synthetic corpus")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    nmt = shutil.which("nmt", path=str(Path(sys.executable).parent)) or "nmt"
    with tempfile.TemporaryDirectory(prefix="nmt-bench-") as tmp:
        corpus = Path(tmp) / "synthetic.tsv"
        started = time.perf_counter()
        pairs = write_corpus(corpus, int(args.size_mb * 2**20), *vocabulary(args.corpus), args.seed)
        generated = time.perf_counter() - started

        started = time.perf_counter()
        result = subprocess.run(
            [nmt, "prepare", str(corpus), "--output", str(Path(tmp) / "data"), "--json"],
            capture_output=True,
            text=True,
        )
        seconds = time.perf_counter() - started
        if result.returncode != 0:
            sys.exit(result.stderr)
        manifest = json.loads(result.stdout)
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        print(
            json.dumps(
                {
                    "benchmark": "prepare_memory",
                    "corpus_mb": round(corpus.stat().st_size / 2**20, 1),
                    "pairs": pairs,
                    "kept": manifest["counts"]["kept"],
                    "prepare_seconds": round(seconds, 1),
                    "pairs_per_second": round(pairs / seconds),
                    "peak_rss_mb": round(peak_kib / 1024, 1),
                    "generate_seconds": round(generated, 1),
                }
            )
        )


if __name__ == "__main__":
    main()
