"""Multi-worker training (``--distribute multi-worker``): the folders of workers that are not the
chief, and a lost peer as one line. The strategy itself is made in ``nmtcli.distribution``."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ..distribution import ClusterTask
from ..errors import ConfigError, ModelError
from ..run_folder import LOCK, STATE, RunFolder, RunLock


def worker_folder(run_dir: Path, resume: bool | None, task: ClusterTask) -> tuple[RunFolder, RunLock, bool]:
    """A private folder for a multi-worker process that is not the chief: ``(folder, lock, resuming)``.

    Only the chief writes the run folder; the other workers write the same files to a temporary
    folder, deleted when training ends. To resume, a worker must see the chief's run folder at the
    same path (a shared file system, or one host): it starts from a copy of its history and backup,
    so that every worker restores the same epoch and weights and takes the same early-stopping steps.
    """
    shared = RunFolder(run_dir)
    resuming = shared.is_unfinished() and resume is not False
    if not resuming and resume:
        raise ModelError(f"{run_dir}: no interrupted run to resume here (as seen by {task.name})")
    if not resuming and (run_dir / STATE).exists():
        raise ConfigError(f"{run_dir}: output folder exists and is not empty; choose another --output")
    folder = Path(tempfile.mkdtemp(prefix=f"nmt-{task.task_type}{task.task_index}-"))
    if resuming:  # the chief writes nothing before every worker has joined, so the copy is consistent
        shutil.copytree(run_dir, folder, ignore=shutil.ignore_patterns(LOCK), dirs_exist_ok=True)
    run = RunFolder(folder)
    lock = run.lock()  # a folder this process just created: nobody else holds it
    assert lock is not None
    return run, lock, resuming


@contextlib.contextmanager
def peer_failures(distribute: str | None) -> Iterator[None]:
    """In multi-worker training, TensorFlow's error for a lost peer becomes one ``ModelError`` line."""
    if distribute != "multi-worker":
        yield
        return
    import tensorflow as tf

    try:
        yield
    except (tf.errors.UnavailableError, tf.errors.CancelledError, tf.errors.DeadlineExceededError) as exc:
        detail = " ".join(str(exc.message).split())[:300]
        raise ModelError(
            f"multi-worker training stopped: another worker failed or cannot be reached ({detail}); see "
            "its log, then run the same commands again on every worker to resume"
        ) from exc
