"""Where data and models live by default, which trained model is "the latest", and which run a
training claims (the files of one run are :mod:`run_folder`'s).

Layout (``nmt-workspace/`` in the current directory unless ``--workspace`` or ``NMT_WORKSPACE`` says
otherwise)::

    nmt-workspace/
      data/                 written by `nmt prepare`
      runs/
        LATEST              name of the most recently completed run
        20261121-101500-gru-attention-word/   one folder per `nmt train`
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any

from . import files
from .errors import ConfigError, ModelError
from .files import atomic_write_text, read_latest
from .run_folder import RunFolder, RunLock

DEFAULT_WORKSPACE = "nmt-workspace"


class Workspace:
    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root or os.environ.get("NMT_WORKSPACE") or DEFAULT_WORKSPACE)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    def new_run_dir(self, label: str) -> Path:
        """Create and return a fresh, uniquely named run folder (safe against concurrent runs)."""
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        stem = f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-{label}"
        for attempt in range(1000):
            path = self.runs_dir / (stem if attempt == 0 else f"{stem}-{attempt + 1}")
            try:
                path.mkdir()
            except FileExistsError:
                continue
            return path
        raise ModelError(f"{self.runs_dir}: cannot create a new run folder")

    def runs(self) -> list[Path]:
        """Run folders, oldest first."""
        if not self.runs_dir.is_dir():
            return []
        return sorted(p for p in self.runs_dir.iterdir() if p.is_dir() and RunFolder(p).is_run())

    def set_latest(self, run_dir: Path) -> None:
        atomic_write_text(self.runs_dir / "LATEST", run_dir.name + "\n")

    def latest_run(self) -> Path:
        """The run named in ``runs/LATEST``, else the newest completed run."""
        name = read_latest(self.runs_dir / "LATEST")  # a plain name inside runs/, or None
        if name is not None and RunFolder(self.runs_dir / name).has_model():
            return self.runs_dir / name
        completed = [run for run in self.runs() if RunFolder(run).is_complete()]
        if not completed:
            raise ModelError(f"no trained model in {self.runs_dir}; run `nmt train` first (or pass --model)")
        return completed[-1]


def claim_run(
    workspace: Workspace,
    run_dir: Path | None,
    resume: bool | None,
    settings: dict[str, Any],
    label: str,
) -> tuple[RunFolder, RunLock, bool]:
    """Pick, create and lock the run folder to train in: ``(run, lock, resuming)``.

    ``run_dir`` given: that folder, resumed if unfinished (unless ``resume`` is False), else it must be
    new or empty. Otherwise ``resume`` None resumes the newest unfinished run saved with exactly
    ``settings`` that no other process trains, else starts a new run; True resumes the newest such run
    whatever its settings (an error if there is none); False always starts a new run named ``label``.
    """
    if run_dir is not None:
        run = RunFolder(run_dir)
        resuming = run.is_unfinished() and resume is not False
        if not resuming and run_dir.exists() and any(run_dir.iterdir()):
            raise ConfigError(f"{run_dir}: output folder exists and is not empty; choose another --output")
        run_dir.mkdir(parents=True, exist_ok=True)
        lock = run.lock()
        if lock is None:
            raise ModelError(f"{run_dir}: another process is training in this folder")
        return run, lock, resuming
    if resume is not False:
        for path in reversed(workspace.runs()):
            run = RunFolder(path)
            if not run.is_unfinished() or (not resume and not run.has_settings(settings)):
                continue
            lock = run.lock()
            if lock is not None:
                return run, lock, True
        if resume:
            raise ModelError(f"no interrupted run to resume in {workspace.runs_dir}")
    run = RunFolder(workspace.new_run_dir(label))
    lock = run.lock()  # a folder this process just created: nobody else holds it
    assert lock is not None
    return run, lock, False


def resolve_model_dir(path: str | os.PathLike | None, workspace: Workspace) -> Path:
    """A run folder from ``--model``: a run folder itself, a workspace, or (None) the latest run."""
    if path is None:
        return workspace.latest_run()
    path = Path(path)
    if not path.exists():
        raise ModelError(f"{path}: model folder not found")
    if RunFolder(path).is_run():
        return path
    if (path / "runs").is_dir():
        return Workspace(path).latest_run()
    if path.name == "runs" or (path / "LATEST").is_file():
        return Workspace(path.parent).latest_run()
    raise ModelError(
        f"{path}: not an nmtcli model folder (no config.json); pass a run folder from `nmt train`"
    )


def protected_folder(path: Path) -> tuple[str, Path] | None:
    """``(kind, folder)`` for the nearest folder above ``path`` that holds a model (a run folder with
    its checksums) or prepared data, whose files no command output may replace; else None."""
    from .corpus import PreparedData

    for parent in path.parents:
        if RunFolder(parent).is_model_folder():
            return "model folder", parent
        if PreparedData.is_data_folder(parent):
            return "prepared data folder", parent
    return None


def check_output(
    output: str | os.PathLike | None,
    inputs=(),
    allowed=(),
    option: str = "--output",
) -> None:
    """:func:`files.check_output` that also refuses files inside model and prepared data folders."""
    files.check_output(output, inputs, allowed, option, protected=protected_folder)
