"""The whole product through the real `nmt` entry point, on a slice of the real anki spa-eng corpus.

Skipped (with the reason) only when ../shared/data/spa-eng/spa.txt is not beside the project.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SPA_CORPUS

SPA = SPA_CORPUS

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not SPA.is_file(), reason=f"real corpus not found at {SPA}"),
]


def nmt(*args: str, cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess:
    command = shutil.which("nmt", path=str(Path(sys.executable).parent)) or "nmt"
    result = subprocess.run(
        [command, *args], cwd=cwd, input=stdin, capture_output=True, text=True, timeout=900
    )
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 0, f"nmt {' '.join(args)} failed:\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A working folder in which `nmt prepare` has run on the first 3000 pairs of spa.txt."""
    cwd = tmp_path_factory.mktemp("e2e")
    result = nmt("prepare", str(SPA), "--limit", "3000", "--json", cwd=cwd)
    manifest = json.loads(result.stdout)
    assert manifest["counts"]["read"] == 3000
    assert (
        manifest["counts"]["train"] + manifest["counts"]["valid"] + manifest["counts"]["test"]
        == (manifest["counts"]["kept"])
    )
    assert (cwd / "nmt-workspace" / "data" / "train.tsv").is_file()
    return cwd


SMALL = ["--embedding-dim", "32", "--units", "64", "--batch-size", "32", "--patience", "0"]


@pytest.mark.parametrize(("arch", "level", "epochs"), [("gru-attention", "word", "4"), ("lstm", "char", "3")])
def test_train_evaluate_translate(workspace: Path, arch: str, level: str, epochs: str) -> None:
    trained = json.loads(
        nmt(
            "train", "--arch", arch, "--level", level, "--epochs", epochs, *SMALL, "--json", cwd=workspace
        ).stdout
    )
    run = Path(trained["run"])
    if not run.is_absolute():
        run = workspace / run
    history = json.loads((run / "history.json").read_text())
    assert len(history) == int(epochs)
    assert history[-1]["cross_entropy"] < history[0]["cross_entropy"], history
    assert history[-1]["val_cross_entropy"] < history[0]["val_cross_entropy"], history
    for name in ("config.json", "model.keras", "vocab/source.txt", "vocab/target.txt", "history.csv"):
        assert (run / name).is_file(), name

    # evaluate and translate default to the latest run, which is the one just trained
    scores = json.loads(nmt("evaluate", "--bleu", "--chrf", "--ter", "--json", cwd=workspace).stdout)
    assert scores["model"] == run.name
    assert scores["sentences"] > 50
    assert scores["references"] >= scores["sentences"]
    assert set(scores["scores"]) == {"bleu", "chrf", "ter"}
    assert 0 <= scores["scores"]["chrf"] <= 100
    assert scores["perplexity"] > 1
    assert "nrefs:var" in scores["signatures"]["bleu"] or "nrefs:1" in scores["signatures"]["bleu"]

    lines = ["Go.", "", "I am hungry.", "¿Qué? 😀 zzzqx"]
    out = nmt("translate", cwd=workspace, stdin="\n".join(lines) + "\n").stdout
    translations = out.split("\n")[:-1]
    assert len(translations) == len(lines)
    assert translations[1] == ""
    assert out.endswith("\n")

    args = nmt("translate", "--model", str(run), "Go.", "I am hungry.", cwd=workspace).stdout
    assert args.splitlines() == [translations[0], translations[2]]
