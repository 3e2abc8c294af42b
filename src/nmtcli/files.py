"""Writing files so that an interrupted command never leaves half a file where a good one was."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from .errors import NmtError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def make_private_dir_public(path: Path) -> None:
    """``mkdtemp`` makes 0700 folders; give a finished one the permissions ``mkdir`` would have."""
    os.chmod(path, 0o777 & ~_umask())


def check_replaceable(folder: Path, marker: str, holds: str, error: type[NmtError] = NmtError) -> None:
    """Only a missing or empty folder, or one holding ``marker`` (an earlier output of the same
    kind, described by ``holds``), may be replaced by a command's output."""
    if folder.exists() and not folder.is_dir():
        raise error(f"{folder}: exists and is not a folder; choose another `output`")
    if folder.is_dir() and any(folder.iterdir()) and not (folder / marker).is_file():
        raise error(
            f"{folder}: folder exists and does not hold {holds}; choose another `output` or remove it"
        )


def replace_dir(tmp_dir: Path, folder: Path) -> None:
    """Move a finished folder into place; the old one is removed only once the new one is there."""
    old = None
    if folder.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old-", dir=folder.parent))
        os.replace(folder, old / folder.name)
    os.replace(tmp_dir, folder)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; on success it replaces ``path`` in one rename.

    ``suffix`` lets writers that check file extensions (Keras wants ``.keras``) see the right one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or ".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except OSError as exc:
        if exc.filename is None or Path(exc.filename) == tmp_path:
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
        raise
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary sibling for writing text (UTF-8, ``\\n`` newlines); rename it on success."""
    with atomic_path(path) as tmp:
        encoding = None if "b" in mode else "utf-8"
        newline = None if "b" in mode else "\n"
        with open(tmp, mode, encoding=encoding, newline=newline) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path) as handle:
        handle.write(text)


def atomic_write_json(path: str | os.PathLike, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
