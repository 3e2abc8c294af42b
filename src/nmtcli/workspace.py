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
from .run_folder import RunFolder, RunLock, RunSummary, summarize

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

    def run_summaries(self) -> list[RunSummary]:
        """One :class:`RunSummary` per run folder, oldest first (damaged folders included)."""
        return [summarize(path) for path in self.runs()]

    def latest_run(self) -> Path:
        """The run named in ``runs/LATEST``, else the newest completed run."""
        return self.latest_run_and_notice()[0]

    def latest_run_and_notice(self) -> tuple[Path, str | None]:
        """:meth:`latest_run`, and a one-line notice when a newer run than it is interrupted (else None).

        With no finished run, the error names the newest unfinished run and how far it got.
        """
        name = read_latest(self.runs_dir / "LATEST")  # a plain name inside runs/, or None
        runs = self.runs()
        chosen = None
        if name is not None and RunFolder(self.runs_dir / name).has_model():
            chosen = self.runs_dir / name
        else:
            completed = [run for run in runs if RunFolder(run).is_complete()]
            chosen = completed[-1] if completed else None
        newer = [run for run in runs if chosen is None or run.name > chosen.name]
        unfinished = [summarize(run) for run in reversed(newer) if RunFolder(run).is_unfinished()]
        if chosen is None:
            if unfinished:
                run = unfinished[0]
                if run.status == "damaged":
                    raise ModelError(
                        f"no finished run in {self.runs_dir}; the newest run {run.name} did not finish and "
                        f"cannot be read ({run.problem})"
                    )
                if run.status == "training":
                    then = "another process is training it"
                else:
                    then = "`nmt train --resume` continues it"
                    if run.epochs_done:
                        then += " (or pass it as `model` to use its best epoch so far)"
                raise ModelError(
                    f"no finished run in {self.runs_dir}; the newest run {run.name} is "
                    f"{run.progress()}; {then}"
                )
            raise ModelError(f"no trained model in {self.runs_dir}; run `nmt train` first (or pass `model`)")
        interrupted = [run for run in unfinished if run.status == "interrupted"]
        notice = None
        if interrupted:
            run = interrupted[0]
            notice = (
                f"note: using {chosen.name} ({RunFolder(chosen).status()}); the newer run {run.name} is "
                f"{run.progress()}; nmt train --resume continues it"
            )
        return chosen, notice

    def interrupted_runs_using(self, data_dir: str | os.PathLike) -> list[str]:
        """Names of the interrupted runs trained from the prepared data folder ``data_dir``: what
        ``nmt train --resume`` would continue on whatever replaces it."""
        target = Path(data_dir).resolve()
        names = []
        for path in self.runs():
            run = RunFolder(path)
            if not run.is_unfinished() or run.status() != "interrupted":
                continue
            try:
                data = run.config().data
            except (OSError, ValueError, ModelError):
                continue
            if data and Path(data).resolve() == target:
                names.append(path.name)
        return names

    def why_not_resumed(self, settings: dict[str, Any]) -> str | None:
        """Why training with ``settings`` starts a new run though an interrupted one exists: the newest
        interrupted run and the settings that differ; None if there is no interrupted run."""
        for path in reversed(self.runs()):
            run = RunFolder(path)
            if not run.is_unfinished() or run.status() != "interrupted":
                continue
            try:
                saved = run.raw_config()
            except (OSError, ModelError):
                continue
            changes = settings_changes({k: saved.get(k) for k in settings}, settings)
            if not changes:
                return None
            shown = ", ".join(changes[:6]) + (f" and {len(changes) - 6} more" if len(changes) > 6 else "")
            return (
                f"starting a new run: the interrupted run {path.name} has other settings ({shown}); "
                "`nmt train --resume` continues it with its own settings"
            )
        return None


def settings_changes(old: Any, new: Any, name: str = "") -> list[str]:
    """``name old -> new`` for each leaf setting that differs between two settings dicts."""
    if isinstance(old, dict) and isinstance(new, dict):
        changes = []
        for key in [*new, *(k for k in old if k not in new)]:
            changes += settings_changes(old.get(key), new.get(key), key)
        return changes
    if old == new:
        return []
    return [f"{name} {_short(old)} -> {_short(new)}"]


def _short(value: Any) -> str:
    text = "none" if value is None else str(value)
    return text if len(text) <= 40 else "..." + text[-37:]


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
            raise ConfigError(f"{run_dir}: output folder exists and is not empty; choose another `run_dir`")
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
    return resolve_model(path, workspace)[0]


def resolve_model(path: str | os.PathLike | None, workspace: Workspace) -> tuple[Path, str | None]:
    """:func:`resolve_model_dir`, and with ``path`` None the notice of
    :meth:`Workspace.latest_run_and_notice` (a newer interrupted run), for the caller to show."""
    if path is None:
        return workspace.latest_run_and_notice()
    path = Path(path)
    if not path.exists():
        raise ModelError(f"{path}: model folder not found")
    if RunFolder(path).is_run():
        return path, None
    if (path / "runs").is_dir():
        return Workspace(path).latest_run_and_notice()
    if path.name == "runs" or (path / "LATEST").is_file():
        return Workspace(path.parent).latest_run_and_notice()
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
