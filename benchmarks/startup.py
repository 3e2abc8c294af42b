"""Start-up of ``nmt translate`` on recurrent runs, before and after the decoder cache, side by side.

For each run (``--model``, repeatable), on a copy of it in a temporary folder, one after the other so
that both see much the same load:

- ``before``: ``echo "Go." | nmt translate -m RUN`` with the code in ``--baseline-src`` (an older
  ``src`` folder: ``git archive <commit> src | tar -x -C /tmp/before``), which builds the Keras model
  and traces its decoder on every call; median of ``--rounds`` after one untimed call;
- ``first_call``: the same command with the installed code and no cache, once: it loads the Keras
  model, traces, and writes ``RUN/decoder``;
- ``after``: the installed code reading that cache; median of ``--rounds`` after one untimed call.

``parts`` times, in one child process per code version, ``quiet_import`` (TensorFlow and Keras),
``Translator.load`` and the first ``translate(["Go."])``. One JSON object is printed, with the
one-minute load average before and after each figure::

    python benchmarks/startup.py --model RUN1 --model RUN2 --baseline-src /tmp/before/src

The figures are in docs/benchmarks.md ("Start-up of recurrent models").
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

from ct2_speed import load, startup

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
NMT = [sys.executable, "-c", "from nmtcli.cli import main; main()"]
PARTS = """
import json, sys, time
started = time.perf_counter()
from nmtcli.runtime import quiet_import
quiet_import()
imported = time.perf_counter()
from nmtcli.translator import Translator
translator = Translator.load(sys.argv[1])
loaded = time.perf_counter()
output = translator.translate(["Go."])
done = time.perf_counter()
import nmtcli
print(json.dumps({"import": round(imported - started, 3), "translator_load": round(loaded - imported, 3),
                  "first_translate": round(done - loaded, 3), "output": output[0], "code": nmtcli.__file__}))
"""


def environment(src: Path | None) -> dict[str, str]:
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(src), *filter(None, [env.get("PYTHONPATH")])])
    return env


def parts(run_dir: Path, env: dict[str, str]) -> dict:
    before = load()
    done = subprocess.run(
        [sys.executable, "-c", PARTS, str(run_dir)], capture_output=True, text=True, check=True, env=env
    )
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "load_before": before, "load_after": load()}


def first_call(run_dir: Path) -> dict:
    shutil.rmtree(run_dir / "decoder", ignore_errors=True)
    before = load()
    started = time.perf_counter()
    done = subprocess.run(
        [*NMT, "translate", "-m", str(run_dir)], input="Go.\n", capture_output=True, text=True
    )
    seconds = time.perf_counter() - started
    assert done.returncode == 0 and (run_dir / "decoder").is_dir(), done.stderr
    return {
        "seconds": round(seconds, 3),
        "output": done.stdout.strip(),
        "load_before": before,
        "load": load(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, action="append", required=True, help="a recurrent run folder")
    parser.add_argument("--baseline-src", type=Path, required=True, help="the src folder of the code before")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    baseline = environment(args.baseline_src.resolve())
    report = {"rounds": args.rounds, "baseline_src": str(args.baseline_src), "runs": []}
    with tempfile.TemporaryDirectory(prefix="nmt-startup-") as tmp:
        for model in args.model:
            run_dir = Path(tmp) / model.name
            shutil.copytree(model, run_dir, ignore=shutil.ignore_patterns("decoder", "backup"))
            row = {"model": str(model)}
            row["before"] = startup(run_dir, args.rounds, NMT, baseline)
            row["first_call"] = first_call(run_dir)
            row["after"] = startup(run_dir, args.rounds, NMT, environment(None))
            row["parts_before"] = parts(run_dir, baseline)
            row["parts_after"] = parts(run_dir, environment(None))
            row["same_output"] = (
                row["before"]["output"] == row["after"]["output"] == row["first_call"]["output"]
            )
            row["speed_up"] = round(row["before"]["median_seconds"] / row["after"]["median_seconds"], 2)
            row["cpu_speed_up"] = round(
                row["before"]["median_cpu_seconds"] / row["after"]["median_cpu_seconds"], 2
            )
            report["runs"].append(row)
            print(json.dumps(row), file=sys.stderr)
    print(json.dumps(report, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
