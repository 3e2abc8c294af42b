"""Where data and models live by default, and which trained model is "the latest".

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

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks, runs are not protected
    fcntl = None  # type: ignore[assignment]

from .errors import ModelError
from .files import atomic_write_text, read_json

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
        return sorted(p for p in self.runs_dir.iterdir() if p.is_dir() and (p / "config.json").is_file())

    def set_latest(self, run_dir: Path) -> None:
        atomic_write_text(self.runs_dir / "LATEST", run_dir.name + "\n")

    def latest_run(self) -> Path:
        """The run named in ``runs/LATEST``, else the newest completed run."""
        pointer = self.runs_dir / "LATEST"
        if pointer.is_file():
            candidate = self.runs_dir / pointer.read_text(encoding="utf-8").strip()
            if candidate.name and (candidate / "model.keras").is_file():
                return candidate
        completed = [run for run in self.runs() if run_status(run) == "complete"]
        if not completed:
            raise ModelError(f"no trained model in {self.runs_dir}; run `nmt train` first (or pass `model`)")
        return completed[-1]


class RunLock:
    """An exclusive advisory lock on a run folder (``RUN/.lock``), held while a process trains in it.

    The operating system drops it when the process ends, even by SIGKILL, so an interrupted run can
    always be resumed, and never by two processes at once.
    """

    def __init__(self, run_dir: Path):
        self.path = run_dir / ".lock"
        self._handle = None

    def acquire(self) -> bool:
        """Take the lock if it is free; False if another process holds it."""
        handle = open(self.path, "a")  # noqa: SIM115 - kept open while the lock is held
        if fcntl is not None:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                return False
        self._handle = handle
        return True

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()  # closing the file releases the lock
            self._handle = None


def run_status(run_dir: Path) -> str:
    """``running`` (or interrupted), ``complete``, or ``unknown``."""
    try:
        return str(read_json(run_dir / "state.json").get("status", "unknown"))
    except (OSError, ValueError, AttributeError):
        return "unknown"


def resolve_model_dir(path: str | os.PathLike | None, workspace: Workspace) -> Path:
    """A run folder from ``--model``: a run folder itself, a workspace, or (None) the latest run."""
    if path is None:
        return workspace.latest_run()
    path = Path(path)
    if not path.exists():
        raise ModelError(f"{path}: model folder not found")
    if (path / "config.json").is_file():
        return path
    if (path / "runs").is_dir():
        return Workspace(path).latest_run()
    if path.name == "runs" or (path / "LATEST").is_file():
        return Workspace(path.parent).latest_run()
    raise ModelError(
        f"{path}: not an nmtcli model folder (no config.json); pass a run folder from `nmt train`"
    )
