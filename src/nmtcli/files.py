"""Safe reading and writing of the files nmt owns.

Writing: an output is either the old file or the complete new one, never half of either (a temporary
sibling renamed into place), and nothing that is not ours is replaced: a device, a FIFO or a link to
one (``/dev/null``, ``/dev/stdout``, ``-``) is written to directly, an existing file keeps its mode, an
output that is one of the command's inputs or lies in a model or data folder is refused, and a folder
is replaced only when it holds nothing but what we wrote.

Reading: every file of a run folder or workspace may be hostile. :func:`read_file_bytes` accepts only a
regular file (never blocks on a FIFO), of bounded size, optionally confined to a folder;
:func:`read_json_file` adds bounded nesting and a check against a :data:`Schema`. Each refusal is one
line naming the file.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import hashlib
import io
import json
import os
import re
import shutil
import stat
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from .errors import NmtError

# Files we read are small; anything larger is not one of ours.
MAX_JSON_BYTES = 16 * 2**20
MAX_JSON_DEPTH = 64
# A temporary file or folder of ours that nothing has touched for this long belongs to a killed run.
STALE_AFTER_SECONDS = 600.0
# The list of files a folder output (prepared data, an export) holds, written by :func:`replace_dir`.
WRITTEN_LIST = ".nmt-written.json"

_PROCESS_START = time.time()


class UnsafeFileError(NmtError, ValueError):
    """A file we read is not what nmt wrote: not a regular file, too large, too deeply nested, not
    JSON, or of the wrong shape. A ValueError too, so callers that catch a bad parse catch it."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def make_private_dir_public(path: Path) -> None:
    """``mkdtemp`` makes 0700 folders; give a finished one the permissions ``mkdir`` would have."""
    os.chmod(path, 0o777 & ~_umask())


# --------------------------------------------------------------------------------------------------
# Temporaries of a killed run


# mkstemp/mkdtemp add 8 characters from this alphabet; only names of that shape are ours.
_RANDOM = r"[a-z0-9_]{8}"


def remove_stale_temporaries(folder: Path, name: str) -> list[Path]:
    """Remove what a killed run left beside ``folder/name``: ``.NAME.XXXXXXXX.tmp`` (and other
    suffixes) files of :func:`atomic_path`, ``.NAME.tmp-XXXXXXXX`` and ``.NAME.old-XXXXXXXX`` folders.

    Only names of exactly that shape, and only entries untouched since before this process started and
    for :data:`STALE_AFTER_SECONDS` (so a concurrent run's temporaries are left alone). Returns what
    was removed; errors are ignored (a temporary that cannot be removed does no harm).
    """
    pattern = re.compile(
        rf"\.{re.escape(name)}\.(?:{_RANDOM}\.[A-Za-z0-9]{{1,8}}|(?:tmp|old)-{_RANDOM})\Z", re.ASCII
    )
    cutoff = min(_PROCESS_START, time.time() - STALE_AFTER_SECONDS)
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if not pattern.match(entry.name):
            continue
        try:
            if entry.is_symlink():
                continue
            if _newest_mtime(entry) >= cutoff:
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:
            continue
    return removed


def _newest_mtime(entry: os.DirEntry) -> float:
    newest = entry.stat(follow_symlinks=False).st_mtime
    if entry.is_dir(follow_symlinks=False):
        for root, dirs, files in os.walk(entry.path):
            for item in dirs + files:
                with contextlib.suppress(OSError):
                    newest = max(newest, os.lstat(os.path.join(root, item)).st_mtime)
    return newest


# --------------------------------------------------------------------------------------------------
# Folders


def ensure_folder(path: Path, error: type[NmtError] = NmtError) -> None:
    """Refuse, with one line, a ``path`` that cannot become a folder because it or a folder above it
    is a file (``mkdir`` would only say "File exists" or "Not a directory")."""
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):
            if not candidate.is_dir():
                raise error(f"{candidate}: is a file, not a folder; give a folder path")
            return


def _relative_files(folder: Path) -> set[str]:
    """Every file (and symlink) below ``folder``, as ``/``-separated relative paths."""
    found = set()
    for root, dirs, files in os.walk(folder):
        rel = Path(root).relative_to(folder)
        for item in files + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            found.add((rel / item).as_posix())
    return found


def _written_list(folder: Path) -> set[str] | None:
    try:
        listed = read_json_file(folder / WRITTEN_LIST, [str], max_bytes=MAX_JSON_BYTES)
    except (NmtError, OSError):
        return None
    return set(listed)


def foreign_files(folder: Path, known: Iterable[str] = ()) -> list[str]:
    """Files in ``folder`` that nmt did not write: neither in its :data:`WRITTEN_LIST` nor (for a
    folder written before that list existed) matching one of the ``known`` patterns."""
    if not folder.is_dir():
        return []
    listed = _written_list(folder)
    patterns = list(known) if listed is None else []
    ours = (listed or set()) | {WRITTEN_LIST}
    return sorted(
        name
        for name in _relative_files(folder)
        if name not in ours and not any(fnmatch.fnmatchcase(name, p) for p in patterns)
    )


def check_replaceable(
    folder: Path,
    marker: str,
    holds: str,
    error: type[NmtError] = NmtError,
    known: Iterable[str] = (),
) -> None:
    """Only a missing or empty folder, or one holding ``marker`` (an earlier output of the same
    kind, described by ``holds``) and nothing else we did not write, may be replaced by a command's
    output. ``known`` are the patterns of the files of such an output, for folders written before
    nmt kept a list of them."""
    if folder.is_symlink() and not folder.exists():
        raise error(f"{folder}: is a broken symlink; choose another `output`")
    if folder.exists() and not folder.is_dir():
        raise error(f"{folder}: exists and is not a folder; choose another `output`")
    if folder.is_dir() and any(folder.iterdir()) and not (folder / marker).is_file():
        raise error(
            f"{folder}: folder exists and does not hold {holds}; choose another `output` or remove it"
        )
    foreign = foreign_files(folder, [marker, *known])
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise error(
            f"{folder}: holds {shown}, which nmt did not write and would delete; "
            "move it out of the folder or choose another `output`"
        )


def replace_dir(tmp_dir: Path, folder: Path, known: Iterable[str] = ()) -> None:
    """Move a finished folder into place; the old one is removed only once the new one is there.

    ``tmp_dir`` gets a :data:`WRITTEN_LIST` of its files first. An old folder holding anything nmt
    did not write (see :func:`check_replaceable`) is left alone: an error.
    """
    atomic_write_json(tmp_dir / WRITTEN_LIST, sorted(_relative_files(tmp_dir)))
    if folder.exists():
        foreign = foreign_files(folder, known)
        if foreign:
            raise NmtError(
                f"{folder}: holds {', '.join(foreign[:3])}, which nmt did not write and would delete; "
                "move it out of the folder or choose another `output`"
            )
    old = None
    if folder.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old-", dir=folder.parent))
        os.replace(folder, old / folder.name)
    os.replace(tmp_dir, folder)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def replacing_folder(folder: Path, known: Iterable[str] = ()) -> Iterator[Path]:
    """A new, empty folder beside ``folder`` to fill; when the block ends without an error, it is made
    readable as a plain new folder would be and replaces ``folder`` (:func:`replace_dir`). Removed
    whatever happens, so nothing at ``folder`` changes unless the block succeeds. What a killed writer
    left beside ``folder`` is cleared first (:func:`remove_stale_temporaries`)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(folder.parent, folder.name)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    try:
        yield tmp_dir
        make_private_dir_public(tmp_dir)
        replace_dir(tmp_dir, folder, known=known)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def file_digests(folder: Path, names: Iterable[str]) -> dict[str, str]:
    """The SHA-256 of each of ``folder``'s files ``names``: what a record lists for
    :func:`read_listed_files` to check."""
    return {name: sha256_file(folder / name) for name in names}


def read_listed_files(
    folder: Path,
    record: str,
    digests: Any,
    allowed: Callable[[str], object],
    max_bytes: int,
    error: type[NmtError],
) -> dict[str, bytes]:
    """The files that ``folder``'s record file ``record`` lists (``digests``: name -> SHA-256, as
    :func:`file_digests` made it), each read once (a regular file inside ``folder``, at most
    ``max_bytes``) and checked against its digest. ``error`` naming the file when a name is not
    ``allowed``, or the file is missing, unreadable or changed."""
    contents: dict[str, bytes] = {}
    for name, digest in digests.items():
        if not isinstance(name, str) or not allowed(name):
            raise error(f"{folder / record}: lists {str(name)[:80]!r}, not one of its files")
        try:
            data = read_file_bytes(folder / name, max_bytes, inside=folder, error=error)
        except FileNotFoundError:
            raise error(f"{folder / name}: missing") from None
        except OSError as exc:
            raise error(f"{folder / name}: unreadable ({exc.strerror or exc})") from None
        if hashlib.sha256(data).hexdigest() != digest:
            raise error(f"{folder / name}: does not match {record}; the folder was changed or damaged")
        contents[name] = data
    return contents


# --------------------------------------------------------------------------------------------------
# Outputs


def is_stdout(path: str | os.PathLike) -> bool:
    return os.fspath(path) == "-"


def _writes_in_place(path: Path) -> bool:
    """True when ``path`` exists and is not a regular file (after links): a device, a FIFO, a socket,
    ``/dev/stdout``. Such an output is written to, never replaced."""
    try:
        return not stat.S_ISREG(os.stat(path).st_mode)
    except FileNotFoundError:
        return path.is_symlink()  # a dangling link: writing follows it, as a shell would
    except OSError:
        return False  # ELOOP and the like: the rename below reports it with the path


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_output(
    output: str | os.PathLike | None,
    inputs: Iterable[str | os.PathLike | None] = (),
    allowed: Iterable[str | os.PathLike] = (),
    option: str = "--output",
    protected: Callable[[Path], tuple[str, Path] | None] | None = None,
) -> None:
    """Refuse an ``output`` that would destroy something: one of the command's ``inputs`` (the same
    file, through any links), or a file inside a folder that ``protected(path)`` names as
    ``(kind, folder)`` (``workspace.check_output`` passes the one that knows model and prepared data
    folders), except the ``allowed`` paths, which a command writes there by design. Devices, FIFOs
    and ``-`` are fine."""
    if output is None or is_stdout(output):
        return
    output = Path(output)
    if _writes_in_place(output):
        return
    target = Path(os.path.realpath(output))
    for source in inputs:
        if source is None or is_stdout(source):
            continue
        source = Path(source)
        try:
            same = os.path.samefile(source, output)
        except OSError:
            same = Path(os.path.realpath(source)) == target
        if same:
            raise NmtError(f"{output}: is also the command's input {source}; choose another {option}")
    if any(target == Path(os.path.realpath(a)) for a in allowed):
        return
    found = protected(target) if protected is not None else None
    if found is not None:
        kind, folder = found
        raise NmtError(f"{output}: lies inside the {kind} {folder}; choose another {option}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a path to write ``path`` through.

    A regular file (or a missing path) is written as a temporary sibling that replaces it in one rename
    on success, keeping an existing file's permission bits; a symlink to a regular file has its target
    replaced, the link kept. Anything else (a device, a FIFO, ``/dev/stdout``, ``-``) is yielded
    itself, to be written to directly. ``suffix`` lets writers that check file extensions (Keras wants
    ``.keras``) see the right one.
    """
    if is_stdout(path):
        yield Path("/dev/stdout")
        return
    path = Path(path)
    if _writes_in_place(path):
        yield path
        return
    final = Path(os.path.realpath(path)) if path.is_symlink() else path
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(final.parent, final.name)
    try:
        keep_mode = stat.S_IMODE(os.stat(final).st_mode)
    except OSError:
        keep_mode = 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=suffix or ".tmp", dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, keep_mode)
    try:
        yield tmp_path
        os.replace(tmp_path, final)
    except OSError as exc:
        if exc.filename is None or Path(exc.filename) == tmp_path:
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
        raise
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w") -> Iterator[IO[Any]]:
    """Open ``path`` for writing text (UTF-8, ``\\n`` newlines) or bytes (``mode="wb"``) through
    :func:`atomic_path`: renamed into place on success, or written directly where that is the only
    right thing (a device, a FIFO, ``-`` for stdout)."""
    binary = "b" in mode
    encoding = None if binary else "utf-8"
    newline = None if binary else "\n"
    if is_stdout(path):
        stream = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="\n", write_through=True)
        try:
            yield sys.stdout.buffer if binary else stream
            stream.flush()
        finally:
            stream.detach()
        return
    with atomic_path(path) as tmp:
        direct = tmp == Path(path)
        try:
            with open(tmp, mode, encoding=encoding, newline=newline) as handle:
                yield handle
                handle.flush()
                if not direct:
                    os.fsync(handle.fileno())
        except OSError as exc:
            if direct and exc.filename is None:
                raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
            raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path) as handle:
        handle.write(text)


def atomic_write_json(path: str | os.PathLike, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


# --------------------------------------------------------------------------------------------------
# Reading untrusted files


class Required:
    """In a dict schema, a key that must be present: ``{"format_version": Required(int)}``."""

    def __init__(self, schema: Any):
        self.schema = schema


class DictOf:
    """An object with any keys whose values all match ``schema``."""

    def __init__(self, schema: Any):
        self.schema = schema


# A schema is a type (``int`` never matches a bool, ``float`` also takes an int), a tuple of
# alternatives, ``None``, a dict (an object: the keys named are checked where present, and must be
# where wrapped in Required; other keys are allowed), a one-item list (a list of such items), DictOf,
# or ``Any`` (typing.Any: anything).
Schema = Any

_NAMES = {
    int: "an integer",
    float: "a number",
    str: "a string",
    bool: "true or false",
    list: "a list",
    dict: "an object",
    type(None): "null",
}


def _describe(value: Any) -> str:
    return _NAMES.get(type(value), type(value).__name__)


def _expected(schema: Schema) -> str:
    if schema is None:
        return "null"
    if isinstance(schema, tuple):
        return " or ".join(_expected(s) for s in schema)
    if isinstance(schema, dict | DictOf):
        return "an object"
    if isinstance(schema, list):
        return "a list"
    return _NAMES.get(schema, getattr(schema, "__name__", str(schema)))


def _matches_type(value: Any, schema: Schema) -> bool:
    if schema is Any:
        return True
    if schema is None:
        return value is None
    if isinstance(schema, tuple):
        return any(_matches_type(value, s) for s in schema)
    if isinstance(schema, dict | DictOf):
        return isinstance(value, dict)
    if isinstance(schema, list):
        return isinstance(value, list)
    if schema is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if schema is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, schema)


def schema_problem(value: Any, schema: Schema) -> str | None:
    """What in ``value`` does not fit ``schema`` (``"model.units should be an integer, found a
    string"``), or None. Iterative, so no depth of nesting can exhaust the stack."""
    todo: list[tuple[str, Any, Schema]] = [("", value, schema)]
    while todo:
        where, item, shape = todo.pop()
        if isinstance(shape, tuple) and _matches_type(item, shape):
            # several alternatives: descend into the first one the value's type fits
            shape = next(s for s in shape if _matches_type(item, s))
        if not _matches_type(item, shape):
            name = where or "the top level"
            return f"{name} should be {_expected(shape)}, found {_describe(item)}"
        if isinstance(shape, dict):
            for key, sub in shape.items():
                required = isinstance(sub, Required)
                sub = sub.schema if required else sub
                if key not in item:
                    if required:
                        return f"{(where + '.') if where else ''}{key} is missing"
                    continue
                todo.append((f"{where}.{key}" if where else key, item[key], sub))
        elif isinstance(shape, DictOf):
            for key, sub_value in item.items():
                todo.append((f"{where}.{key}" if where else str(key), sub_value, shape.schema))
        elif isinstance(shape, list) and shape:
            for index, sub_value in enumerate(item):
                todo.append((f"{where}[{index}]", sub_value, shape[0]))
    return None


def json_depth(value: Any) -> int:
    """How deeply lists and objects nest in ``value`` (a scalar: 0); iterative."""
    deepest = 0
    todo = [(value, 1)]
    while todo:
        item, depth = todo.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, depth)
            todo.extend((sub, depth + 1) for sub in item if isinstance(sub, dict | list))
    return deepest


def resolve_path(path: str | os.PathLike, error: type[NmtError] = UnsafeFileError) -> Path:
    """``path`` with every symlink followed (``Path.resolve``), a symlink loop being ``error`` naming
    it instead of RuntimeError (Python < 3.13) or OSError."""
    try:
        return Path(path).resolve()
    except RuntimeError:
        raise error(f"{path}: symlink loop") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise error(f"{path}: symlink loop") from None
        raise


def _open_regular(path: Path, inside: Path | None, error: type[NmtError]) -> int:
    """A read-only descriptor of ``path``, which must be a regular file (and lie inside ``inside``)."""
    if inside is not None and not _inside(resolve_path(path, error), inside.resolve()):
        raise error(f"{path}: points outside {inside}; refusing to read it")
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below anyway.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise error(f"{path}: symlink loop") from None
        raise
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise error(f"{path}: is a folder, not a file")
        if not stat.S_ISREG(info.st_mode):
            raise error(f"{path}: not a regular file (a device, FIFO or socket); refusing to read it")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_regular_file(
    path: str | os.PathLike, error: type[NmtError] = UnsafeFileError, inside: str | os.PathLike | None = None
) -> IO[bytes]:
    """``path`` opened for reading bytes, refused (``error`` naming it) unless a regular file (a
    FIFO is never waited on), a symlink loop named as such, confined to ``inside`` when given."""
    path = Path(path)
    return os.fdopen(_open_regular(path, Path(inside) if inside is not None else None, error), "rb")


def open_lock_file(path: str | os.PathLike, error: type[NmtError] = NmtError) -> IO[str]:
    """A lock file opened for appending (created if missing) without following a symlink
    (``O_NOFOLLOW``) or waiting on a FIFO (``O_NONBLOCK``); anything but a regular file is ``error``."""
    path = Path(path)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags | getattr(os, "O_NOFOLLOW", 0), 0o666)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK):
            raise error(f"{path}: is a symlink; a lock file must be a plain file (remove the link)") from None
        if exc.errno == errno.ENXIO:  # a FIFO without a reader
            raise error(f"{path}: not a regular file; remove it") from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise error(f"{path}: not a regular file; remove it")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "a")


def read_latest(pointer: str | os.PathLike) -> str | None:
    """The run name in ``runs/LATEST``: a plain folder name (no ``/``, not ``.`` or ``..``), read
    from a regular file of at most 4 KiB; None when missing or anything else (it is only a hint)."""
    try:
        name = read_file_bytes(pointer, 4096).decode("utf-8").strip()
    except (OSError, NmtError, UnicodeDecodeError):
        return None
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        return None
    return name


def read_file_bytes(
    path: str | os.PathLike,
    max_bytes: int,
    inside: str | os.PathLike | None = None,
    error: type[NmtError] = UnsafeFileError,
) -> bytes:
    """The bytes of ``path``, a regular file (symlinks followed, and confined to the folder
    ``inside`` when given) of at most ``max_bytes``. A FIFO, a device, a folder, a symlink loop, a
    larger file: ``error`` naming the file. A missing file: FileNotFoundError."""
    path = Path(path)
    fd = _open_regular(path, Path(inside) if inside is not None else None, error)
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise error(f"{path}: too large (over {max_bytes:,} bytes); not a file nmt wrote")
    return data


_MISSING = object()


def read_json_file(
    path: str | os.PathLike,
    schema: Schema = Any,
    *,
    max_bytes: int = MAX_JSON_BYTES,
    max_depth: int = MAX_JSON_DEPTH,
    inside: str | os.PathLike | None = None,
    error: type[NmtError] = UnsafeFileError,
    default: Any = _MISSING,
) -> Any:
    """A JSON file we wrote and someone may have edited: read with :func:`read_file_bytes`, parsed,
    nested at most ``max_depth`` deep, and matching ``schema``. Every problem is ``error`` naming the
    file; a missing file returns ``default`` when given, else raises FileNotFoundError."""
    path = Path(path)
    try:
        raw = read_file_bytes(path, max_bytes, inside, error)
    except FileNotFoundError:
        if default is not _MISSING:
            return default
        raise
    except OSError as exc:
        raise error(f"{path}: cannot read it ({exc.strerror or exc})") from None
    try:
        value = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise error(f"{path}: not UTF-8 text, so not a JSON file nmt wrote") from None
    except RecursionError:
        raise error(f"{path}: nested too deeply (over {max_depth} levels)") from None
    except ValueError as exc:
        raise error(f"{path}: not valid JSON ({exc})") from None
    if json_depth(value) > max_depth:
        raise error(f"{path}: nested too deeply (over {max_depth} levels)")
    problem = schema_problem(value, schema)
    if problem is not None:
        raise error(f"{path}: unexpected content: {problem}")
    return value


def read_json(path: str | os.PathLike) -> Any:
    """:func:`read_json_file` without a schema: a regular file of at most :data:`MAX_JSON_BYTES`,
    nested at most :data:`MAX_JSON_DEPTH` deep, else UnsafeFileError (a ValueError) naming it. A
    missing file raises FileNotFoundError, as ``open`` would."""
    return read_json_file(path)


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
