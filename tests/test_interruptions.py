"""Killed and concurrent training runs: nothing is lost, nothing is shared by mistake.

These tests drive the real `nmt` entry point in child processes, so that a SIGKILL is a real one.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import make_tiny_pairs, write_tsv

NMT = shutil.which("nmt", path=str(Path(sys.executable).parent)) or "nmt"
# Batch size 2 over ~600 pairs gives 250+ batches an epoch, so `nmt train` prints a progress line at
# every tenth of an epoch when its stderr is not a terminal: the test kills it on such a line.
TRAIN = ["train", "--epochs", "3", "--batch-size", "2", "--embedding-dim", "8", "--units", "8"]
TRAIN += ["--patience", "0", "--learning-rate", "0.01"]
CHILD_ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "COLUMNS": "200"}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """A folder with a workspace whose data is prepared (~600 training pairs)."""
    cwd = tmp_path_factory.mktemp("interrupt")
    corpus = write_tsv(cwd / "corpus.tsv", make_tiny_pairs(sources=650, seed=3))
    run(["prepare", str(corpus), "--valid-size", "20", "--test-size", "20"], cwd)
    return cwd


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run([NMT, *args], cwd=cwd, capture_output=True, text=True, env=CHILD_ENV, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result


def runs(cwd: Path) -> list[Path]:
    return sorted(p for p in (cwd / "nmt-workspace" / "runs").iterdir() if p.is_dir())


def kill_during_epoch(cwd: Path, epoch: int) -> None:
    """Start `nmt train` and SIGKILL it once epoch ``epoch`` is a tenth done."""
    process = subprocess.Popen(
        [NMT, *TRAIN], cwd=cwd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=CHILD_ENV
    )
    finished_epochs = 0
    try:
        for line in process.stderr:
            if line.startswith(f"epoch {finished_epochs + 1}/"):
                finished_epochs += 1
            elif "% of epoch" in line and finished_epochs == epoch - 1:
                process.send_signal(signal.SIGKILL)
                break
        else:
            pytest.fail(f"training ended before epoch {epoch} was under way")
    finally:
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL


def test_sigkill_mid_epoch_then_the_same_command_resumes(prepared: Path, tmp_path: Path) -> None:
    cwd = tmp_path / "work"
    shutil.copytree(prepared, cwd)
    kill_during_epoch(cwd, epoch=2)
    [run_dir] = runs(cwd)
    assert json.loads((run_dir / "state.json").read_text())["status"] == "running"
    assert [row["epoch"] for row in json.loads((run_dir / "history.json").read_text())] == [1]

    resumed = run(TRAIN, cwd)
    assert "resuming" in resumed.stderr and "from epoch 2" in resumed.stderr
    assert runs(cwd) == [run_dir], "the interrupted run was continued, not replaced"
    history = json.loads((run_dir / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2, 3]
    assert json.loads((run_dir / "state.json").read_text())["status"] == "complete"
    assert not (run_dir / "backup").exists()

    out = run(["translate", "red cat.", "big dog runs."], cwd).stdout
    assert len(out.splitlines()) == 2


def test_two_trainings_at_once_get_separate_runs(prepared: Path, tmp_path: Path) -> None:
    cwd = tmp_path / "work"
    shutil.copytree(prepared, cwd)
    # An interrupted run with these very settings: exactly one of the two commands may resume it.
    kill_during_epoch(cwd, epoch=1)
    [interrupted] = runs(cwd)

    processes = [
        subprocess.Popen(
            [NMT, *TRAIN], cwd=cwd, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=CHILD_ENV
        )
        for _ in range(2)
    ]
    results = [process.communicate(timeout=600) for process in processes]
    for process, (_, stderr) in zip(processes, results, strict=True):
        assert process.returncode == 0, stderr
        assert "Traceback" not in stderr
    assert sum("resuming" in stderr for _, stderr in results) == 1

    folders = runs(cwd)
    assert len(folders) == 2 and interrupted in folders
    for folder in folders:
        assert json.loads((folder / "state.json").read_text())["status"] == "complete"
        assert [row["epoch"] for row in json.loads((folder / "history.json").read_text())] == [1, 2, 3]
    latest = (cwd / "nmt-workspace" / "runs" / "LATEST").read_text().strip()
    assert latest in {folder.name for folder in folders}
    for folder in folders:
        assert len(run(["translate", "--model", str(folder), "red cat."], cwd).stdout.splitlines()) == 1


def test_a_kill_while_saving_the_model_leaves_a_loadable_folder(tiny_run, tmp_path, monkeypatch) -> None:
    """Stop the process at each step of a checkpoint save; the folder always loads."""
    import nmtcli.files
    from nmtcli.run_folder import RunFolder
    from nmtcli.translator import Translator

    class Killed(BaseException):
        pass

    def dies(*args, **kwargs):
        raise Killed

    reference = Translator.load(tiny_run)
    expected = reference.translate(["red cat.", "big dog runs."])
    real_write_checksums = RunFolder.write_checksums
    calls = {"n": 0}

    def checksums_then_die_on_second(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise Killed
        return real_write_checksums(*args, **kwargs)

    # Before the new file is renamed into place, and after it but before the checksums settle.
    for target, replacement in (
        (nmtcli.files.os, "replace"),
        (RunFolder, "write_checksums"),
    ):
        run_dir = tmp_path / f"run-{replacement}"
        shutil.copytree(tiny_run, run_dir)
        with monkeypatch.context() as patch:
            patch.setattr(
                target, replacement, dies if replacement == "replace" else checksums_then_die_on_second
            )
            with pytest.raises(Killed):
                RunFolder(run_dir).save_model(reference.model)
        assert Translator.load(run_dir).translate(["red cat.", "big dog runs."]) == expected
