"""Killed and concurrent training runs: nothing is lost, nothing is shared by mistake.

These tests drive the real `nmt` entry point in child processes, so that a SIGKILL is a real one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import make_tiny_pairs, write_tsv

NMT = shutil.which("nmt", path=str(Path(sys.executable).parent)) or "nmt"
# Batch size 2 over ~600 pairs gives 250+ batches an epoch, so `nmt train` prints a progress line at
# every tenth of an epoch when its stderr is not a terminal: the test kills it on such a line.
TRAIN = ["train", "--arch", "gru-attention", "--level", "word", "--epochs", "3", "--batch-size", "2"]
TRAIN += ["--embedding-dim", "8", "--units", "8"]
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


def interrupt_during_epoch(cwd: Path, signums: list[int], epoch: int = 2) -> tuple[int, str, float]:
    """Start `nmt train`, send ``signums`` once epoch ``epoch`` is a tenth done; returns (exit code,
    what it printed on stderr after the signal, seconds from the first signal to the exit)."""
    process = subprocess.Popen(
        [NMT, *TRAIN], cwd=cwd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=CHILD_ENV
    )
    finished_epochs = 0
    try:
        for line in process.stderr:
            if line.startswith(f"epoch {finished_epochs + 1}/"):
                finished_epochs += 1
            elif "% of epoch" in line and finished_epochs == epoch - 1:
                sent = time.monotonic()
                for signum in signums:
                    process.send_signal(signum)
                break
        else:
            pytest.fail(f"training ended before epoch {epoch} was under way")
        rest = process.stderr.read()
        process.wait(timeout=60)
        return process.returncode, rest, time.monotonic() - sent
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def temporaries(folder: Path) -> list[Path]:
    from nmtcli.interrupts import TEMPORARY

    return [path for path in folder.rglob("*") if TEMPORARY.match(path.name)]


@pytest.mark.parametrize(
    ("signums", "code", "message"),
    [
        ([signal.SIGINT], 130, "nmt: interrupted"),
        ([signal.SIGTERM], 143, "nmt: terminated (SIGTERM)"),
        ([signal.SIGINT, signal.SIGINT], 130, "nmt: interrupted"),
    ],
    ids=["ctrl-c", "sigterm", "ctrl-c-twice"],
)
def test_a_signal_stops_training_at_once_cleanly_and_the_same_command_resumes(
    prepared: Path, tmp_path: Path, signums: list[int], code: int, message: str
) -> None:
    cwd = tmp_path / "work"
    shutil.copytree(prepared, cwd)
    returncode, rest, seconds = interrupt_during_epoch(cwd, signums)
    assert returncode == code, rest
    assert "Traceback" not in rest
    lines = [line for line in rest.splitlines() if line.startswith("nmt:")]
    assert len(lines) == 1 and lines[0].startswith(message), rest
    # The target is 2 s; the bound leaves room for a loaded test machine but not for the old 17-34 s.
    assert seconds < 10, f"took {seconds:.1f} s to exit"
    workspace = cwd / "nmt-workspace"
    assert not temporaries(workspace)
    [run_dir] = runs(cwd)
    assert [row["epoch"] for row in json.loads((run_dir / "history.json").read_text())] == [1]

    resumed = run(TRAIN, cwd)
    assert "resuming" in resumed.stderr and "from epoch 2" in resumed.stderr
    assert runs(cwd) == [run_dir]
    assert json.loads((run_dir / "state.json").read_text())["status"] == "complete"


def test_sigterm_during_prepare_leaves_no_temporary_folder(tmp_path: Path) -> None:
    # Big enough that preparing it takes a few seconds.
    corpus = write_tsv(
        tmp_path / "corpus.tsv", [(f"red cat {i}.", f"gato rojo {i}.") for i in range(300_000)]
    )
    process = subprocess.Popen(
        [NMT, "prepare", str(corpus)], cwd=tmp_path, stderr=subprocess.PIPE, text=True, env=CHILD_ENV
    )
    try:
        # Wait until the temporary data folder exists, then terminate.
        while not list(tmp_path.glob("nmt-workspace/.data.tmp-*")):
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=0.01)  # a poll for the folder, not a timing assumption
            if process.poll() is not None:
                break
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    if process.returncode == 0:
        pytest.skip("prepare finished before the signal arrived")
    assert process.returncode == 143, stderr
    assert "nmt: terminated (SIGTERM)" in stderr and "Traceback" not in stderr
    assert not temporaries(tmp_path / "nmt-workspace")
