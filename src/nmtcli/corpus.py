"""Reading parallel corpora, normalising, filtering, splitting, and the prepared data folder.

Formats:
- ``tsv``: one pair per line, tab-separated; the anki/Tatoeba files (``English<TAB>Other``, an optional
  third attribution column) are the default case. Columns are chosen by number, counting from 1.
- ``csv``: comma-separated with a header row; columns chosen by header name or number.
- ``aligned``: two plain-text files, line ``i`` of one translating line ``i`` of the other.

The split is grouped by source sentence: every translation of one source sentence lands in the same
split, so the test set never shares a source with training and multi-reference scoring is possible.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import errno
import hashlib
import itertools
import os
import stat
import sys
import tempfile
from array import array
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from . import __version__
from .config import PrepareConfig
from .errors import CorpusError, DataError
from .files import (
    DictOf,
    Required,
    atomic_write_json,
    check_replaceable,
    ensure_folder,
    open_regular_file,
    read_json_file,
    replacing_folder,
    schema_problem,
    sha256_file,
)
from .subwords import prepare_subwords
from .text import normalize
from .vectorizers import UNK_ID, Vectorizer, Vocabulary, make_tokenizer

DATA_FORMAT_VERSION = 1
SPLITS = ("train", "valid", "test")
SIDES = ("source", "target")
LEVELS = ("word", "char")
# The files of a prepared data folder (patterns), for folders written before nmt listed them.
DATA_FILES = ("manifest.json", "train.tsv", "valid.tsv", "test.tsv", "vocab/*.txt")


@dataclass(frozen=True)
class GivenVocabularies:
    """Vocabularies of one level to encode new data with instead of building new ones (``nmt prepare
    --vocab-from RUN``, see ``fine_tuning``): written as that level's files, byte for byte the same
    tokens (and SentencePiece models), so a model trained with them can be fine-tuned on the data.
    ``source`` and ``target`` are vectorizers of ``level``; ``origin`` (the run) goes into the manifest."""

    level: str
    source: Any
    target: Any
    origin: str


@dataclass(frozen=True)
class Pair:
    source: str
    target: str
    where: str  # "file:line", for messages


# --------------------------------------------------------------------------------------------------
# Reading


def check_readable(path: Path, what: str = "corpus") -> Path:
    """``path`` if it is a readable file, else a CorpusError that says what is wrong.

    ``-`` (stdin), a FIFO and a pipe such as ``/dev/stdin`` are readable files too."""
    if str(path) == "-":
        return path
    try:
        info = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise CorpusError(f"{path}: symlink loop; point the link at a file") from None
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            raise CorpusError(f"{path}: {what} file not found") from None
        raise CorpusError(f"{path}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(info.st_mode):
        raise CorpusError(f"{path}: is a directory, not a file")
    if not os.access(path, os.R_OK):
        raise CorpusError(f"{path}: permission denied")
    return path


def _decode(raw: bytes, encoding: str, where: str, hint: str) -> str:
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        raise CorpusError(
            f"{where}: not valid {encoding} (byte {exc.start + 1} of the line); {hint}"
        ) from None
    except LookupError:
        raise CorpusError(f"unknown encoding {encoding!r}") from None


_ENCODING_HINT = "convert it to UTF-8 or pass `encoding`"

# The longest line (in bytes) read from any text file: a corpus line, an input sentence, a CSV record.
# Far above any sentence (fra.txt's longest line is 0.6 KB); it bounds memory on /dev/zero or a
# file without line breaks.
MAX_LINE_BYTES = 8 * 2**20
# A quoted CSV field may hold line breaks, but not this many: a quote left open swallows the file.
MAX_CSV_RECORD_LINES = 100

# What the first bytes of a file say it is, when it is not text.
_MAGIC = (
    (b"\x1f\x8b", "compressed with gzip: decompress it first (gunzip FILE)"),
    (b"BZh", "compressed with bzip2: decompress it first (bunzip2 FILE)"),
    (b"\xfd7zXZ\x00", "compressed with xz: decompress it first (unxz FILE)"),
    (b"\x28\xb5\x2f\xfd", "compressed with zstd: decompress it first (unzstd FILE)"),
    (b"%PDF-", "a PDF document, not a text corpus; save it as text first"),
)


def sniff_binary(head: bytes, name: str) -> None:
    """A CorpusError when the first bytes of a file show it is not text: compressed, a spreadsheet
    or other zip archive, a PDF, or mostly NUL bytes (binary data). Text passes silently."""
    for magic, what in _MAGIC:
        if head.startswith(magic):
            raise CorpusError(f"{name}: {what.replace('FILE', name)}")
    if head.startswith(b"PK\x03\x04"):
        if b"xl/" in head or b"opendocument.spreadsheet" in head or b"[Content_Types]" in head:
            raise CorpusError(f"{name}: a spreadsheet (xlsx/ods), not a text corpus; save it as CSV first")
        raise CorpusError(f"{name}: a zip archive, not a text corpus; unzip it first")
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return  # UTF-16: read_lines says so
    if len(head) >= 16 and head.count(0) * 4 > len(head):
        raise CorpusError(f"{name}: binary data (mostly NUL bytes), not a text corpus")


def bounded_lines(stream: BinaryIO, name: str, limit: int = MAX_LINE_BYTES) -> Iterator[bytes]:
    """Raw lines (ends kept) of a binary stream, each at most ``limit`` bytes, else a CorpusError
    naming the line: memory stays bounded however long a line is."""
    number = 0
    readline = stream.readline
    while True:
        raw = readline(limit + 1)
        if not raw:
            return
        number += 1
        if len(raw) > limit and not raw.endswith(b"\n"):
            raise CorpusError(
                f"{name}:{number}: a line longer than {limit // 2**20} MiB; "
                "is this a text file with one sentence per line?"
            )
        yield raw


def read_lines(
    stream: BinaryIO,
    name: str,
    encoding: str = "utf-8",
    keep_ends: bool = False,
    hint: str = "convert it to UTF-8",
    corpus: bool = False,
) -> Iterator[tuple[int, str]]:
    """Numbered, decoded lines of a binary stream, without line endings (LF or CRLF) unless
    ``keep_ends``; a leading UTF-8 BOM is dropped; a line longer than :data:`MAX_LINE_BYTES` is an
    error. A decoding error names the line and gives ``hint``. For a ``corpus``, a binary file
    (compressed, a spreadsheet, NUL bytes) and a first line holding a lone CR (old Mac line endings)
    are errors."""
    try:
        codec = codecs.lookup(encoding).name
    except LookupError:
        raise CorpusError(f"unknown encoding {encoding!r}") from None
    if codec.startswith(("utf-16", "utf-32")):
        raise CorpusError(f"{name}: {encoding} files are not supported; convert the file to UTF-8")
    if corpus and hasattr(stream, "peek"):
        sniff_binary(stream.peek(4096)[:4096], name)
    for number, raw in enumerate(bounded_lines(stream, name), 1):
        if number == 1:
            if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
                raise CorpusError(f"{name}: the file is UTF-16; convert it to UTF-8")
            if corpus and b"\r" in raw.rstrip(b"\r\n"):
                raise CorpusError(f"{name}: lines end in a lone CR (old Mac style); convert them to LF")
            if raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
        text = _decode(raw, encoding, f"{name}:{number}", hint)
        yield number, text if keep_ends else text.rstrip("\n").rstrip("\r")


@dataclass
class CorpusFile:
    """A corpus file as the user named it (``name``, for messages and the manifest) and where it is
    read from (``path``: the file itself, or a spooled copy of a pipe, FIFO or stdin)."""

    name: str
    path: Path
    spooled_sha256: str | None = None

    def sha256(self) -> str:
        return self.spooled_sha256 or sha256_file(self.path)

    def recorded_path(self) -> str:
        """The path the manifest records: resolved for a file, as given for stdin or a pipe."""
        if self.spooled_sha256 is not None:
            return self.name if self.name == "<stdin>" else os.path.abspath(self.name)
        return str(Path(self.name).resolve())


@contextlib.contextmanager
def open_corpus(
    path: str | os.PathLike, what: str = "corpus", spool_dir: Path | None = None
) -> Iterator[CorpusFile]:
    """A :class:`CorpusFile` for ``path``; ``-`` is stdin.

    A regular file is read where it is. Anything else (stdin, a pipe, a FIFO, process substitution,
    ``/dev/stdin``) can be read only once, so it is copied to a temporary file in ``spool_dir`` (or
    the system's temporary folder) while its SHA-256 is computed; the copy is removed afterwards.
    """
    given = Path(path)
    check_readable(given, what)
    if str(given) != "-" and stat.S_ISREG(os.stat(given).st_mode):
        yield CorpusFile(str(given), given)
        return
    name = "<stdin>" if str(given) == "-" else str(given)
    with contextlib.ExitStack() as stack:
        if str(given) == "-":
            source = sys.stdin.buffer
        else:
            try:
                source = stack.enter_context(open(given, "rb"))
            except OSError as exc:
                raise CorpusError(f"{name}: {exc.strerror or exc}") from None
        fd, spool = tempfile.mkstemp(prefix=".corpus.", suffix=".tmp", dir=spool_dir)
        stack.callback(os.unlink, spool)
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as copy:
            first = True
            for block in iter(lambda: source.read(1 << 16), b""):
                if first:  # refuse /dev/zero or a compressed stream before copying it
                    sniff_binary(block[:4096], name)
                    first = False
                digest.update(block)
                copy.write(block)
        yield CorpusFile(name, Path(spool), digest.hexdigest())


def _lines(corpus: CorpusFile, encoding: str) -> Iterator[tuple[int, str]]:
    with open(corpus.path, "rb") as handle:
        yield from read_lines(handle, corpus.name, encoding, hint=_ENCODING_HINT, corpus=True)


def detect_format(path: Path, target_path: Path | None, name: str | None = None) -> str:
    name = name or str(path)
    if target_path is not None:
        return "aligned"
    if Path(name).suffix.lower() == ".csv":
        return "csv"
    if Path(name).suffix.lower() in (".tsv", ".tab"):
        return "tsv"
    with open(path, "rb") as handle:
        head = handle.read(65536)
    sniff_binary(head[:4096], name)
    if not head.strip():
        return "tsv"  # empty: reading it then says so
    first = head.split(b"\n", 1)[0]
    if b"\t" in head:
        return "tsv"
    if b"," in first:
        return "csv"
    raise CorpusError(
        f"{name}: cannot tell the format (no tab found); pass `format` tsv or csv, "
        "or give a second file for aligned plain-text files"
    )


def _column_index(column: str | int | None, default: int, header: list[str] | None, path: Any) -> int:
    """A 0-based index from a 1-based number or a header name."""
    if column is None:
        return default
    if isinstance(column, int) or str(column).lstrip("+-").isdecimal():
        number = int(column)
        if number < 1:
            raise CorpusError(f"column numbers count from 1; got {number}")
        return number - 1
    if header is None:
        raise CorpusError(f"{path}: column {column!r} is a name, but this format has no header; use a number")
    names = [h.strip() for h in header]
    if column not in names:
        raise CorpusError(f"{path}: no column named {column!r}; the header has {', '.join(names)}")
    return names.index(column)


class _BadLines:
    """Applies the --on-bad-line policy and counts what it skipped."""

    def __init__(self, policy: str, warn: Any = None):
        self.policy = policy
        self.warn = warn
        self.count = 0

    def __call__(self, message: str) -> None:
        if self.policy == "error":
            raise CorpusError(f"{message} (pass `on_bad_line` skip to drop such lines)")
        self.count += 1
        if self.policy == "warn" and self.warn is not None:
            self.warn(f"warning: {message}; skipped")


def _read_tsv(corpus: CorpusFile, config: PrepareConfig, bad: _BadLines) -> Iterator[Pair]:
    name = corpus.name
    src = _column_index(config.source_column, 0, None, name)
    tgt = _column_index(config.target_column, 1, None, name)
    need = max(src, tgt) + 1
    # With the default columns the file is taken for an anki file: source, target, attribution.
    most = 3 if config.source_column is None and config.target_column is None else None
    for number, line in _lines(corpus, config.encoding):
        if not line.strip():
            continue
        fields = line.split("\t")
        where = f"{name}:{number}"
        if len(fields) < need:
            bad(f"{where}: expected at least {need} tab-separated columns, found {len(fields)}")
            continue
        if most is not None and len(fields) > most:
            bad(
                f"{where}: expected 2 or 3 tab-separated columns (source, target, attribution), found "
                f"{len(fields)}; pick columns with `source_column`/`target_column`"
            )
            continue
        yield Pair(fields[src], fields[tgt], where)


class _CsvRecords:
    """Feeds decoded lines to ``csv.reader`` and watches each record: one whose quotes are left open
    across lines, or that runs over :data:`MAX_CSV_RECORD_LINES` lines, is an error naming the line
    where it began (a quote left open would otherwise swallow the rest of the file into one field)."""

    def __init__(self, lines: Iterator[tuple[int, str]], name: str):
        self.lines = lines
        self.name = name
        self.start = 1  # the line the current record began on
        self.spanned = 0
        self.quotes = 0

    def next_record(self) -> None:
        self.spanned = 0
        self.quotes = 0

    def _unclosed(self, lines: int) -> CorpusError:
        return CorpusError(
            f"{self.name}:{self.start}: a quoted field opened on this line is not closed "
            f'({lines} lines read into it); add the missing closing quote (")'
        )

    def __iter__(self) -> Iterator[str]:
        for number, text in self.lines:
            if self.spanned == 0:
                self.start = number
            self.spanned += 1
            self.quotes += text.count('"')
            if self.spanned > MAX_CSV_RECORD_LINES:
                raise self._unclosed(self.spanned)
            yield text
        if self.spanned > 1 and self.quotes % 2:
            raise self._unclosed(self.spanned)


def _read_csv(corpus: CorpusFile, config: PrepareConfig, bad: _BadLines) -> Iterator[Pair]:
    name = corpus.name
    with open(corpus.path, "rb") as handle:
        # Decoded line by line, ends kept for quoted multi-line fields, so that errors name the line.
        numbered = read_lines(handle, name, config.encoding, keep_ends=True, hint=_ENCODING_HINT, corpus=True)
        records = _CsvRecords(numbered, name)
        reader = csv.reader(iter(records))
        csv.field_size_limit(2**31 - 1)  # long fields are filtered as too long, not fatal
        try:
            header = next(reader, None)
            if header is None:
                return
            src = _column_index(config.source_column, 0, header, name)
            tgt = _column_index(config.target_column, 1, header, name)
            need = max(src, tgt) + 1
            while True:
                records.next_record()
                row = next(reader, None)
                if row is None:
                    return
                where = f"{name}:{reader.line_num}"
                if not any(field.strip() for field in row):
                    continue
                if len(row) < need:
                    bad(f"{where}: expected at least {need} columns, found {len(row)}")
                    continue
                yield Pair(row[src], row[tgt], where)
        except csv.Error as exc:
            raise CorpusError(f"{name}:{reader.line_num}: malformed CSV ({exc})") from None


def _read_aligned(source: CorpusFile, target: CorpusFile, config: PrepareConfig) -> Iterator[Pair]:
    sources = _lines(source, config.encoding)
    targets = _lines(target, config.encoding)
    while True:
        s = next(sources, None)
        t = next(targets, None)
        if s is None and t is None:
            return
        if s is None or t is None:
            shorter, longer = (source.name, target.name) if s is None else (target.name, source.name)
            raise CorpusError(
                f"{shorter} has fewer lines than {longer}; aligned files must have one line per pair"
            )
        yield Pair(s[1], t[1], f"{source.name}:{s[0]}")


def _check_two_files(path: Path, target_path: Path | None, fmt: str) -> None:
    """A second file belongs to aligned files only, and must be another file."""
    if target_path is None:
        return
    if fmt in ("tsv", "csv"):
        raise CorpusError(
            f"{target_path}: `format` {fmt} reads one file; a second file is only for aligned "
            "plain-text files (`format` aligned)"
        )
    with contextlib.suppress(OSError):
        if str(path) != "-" and str(target_path) != "-" and os.path.samefile(path, target_path):
            raise CorpusError(
                f"{target_path}: the same file as the source {path}; aligned files are two files, "
                "line i of one translating line i of the other"
            )
    if str(path) == "-" and str(target_path) == "-":
        raise CorpusError("stdin (-) can be only one of the two aligned files")


def read_pairs(
    path: str | os.PathLike,
    config: PrepareConfig | None = None,
    target_path: str | os.PathLike | None = None,
    warn: Any = None,
    bad_lines: _BadLines | None = None,
) -> Iterator[Pair]:
    """Yield raw (not yet normalised) pairs from a corpus in the configured or detected format.

    ``path`` may be ``-`` (stdin) or a pipe (read once, see :func:`open_corpus`).
    ``config.reverse`` swaps the two sides; ``config.limit`` stops after that many pairs.
    """
    config = config or PrepareConfig()
    with contextlib.ExitStack() as stack:
        source, target = _open_corpora(stack, Path(path), target_path, config, None)
        yield from _pairs(source, target, config, bad_lines or _BadLines(config.on_bad_line, warn))


def _open_corpora(
    stack: contextlib.ExitStack,
    path: Path,
    target_path: str | os.PathLike | None,
    config: PrepareConfig,
    spool_dir: Path | None,
) -> tuple[CorpusFile, CorpusFile | None]:
    target_given = Path(target_path) if target_path is not None else None
    check_readable(path)
    if target_given is not None:
        check_readable(target_given)
    _check_two_files(path, target_given, config.format)
    source = stack.enter_context(open_corpus(path, spool_dir=spool_dir))
    target = stack.enter_context(open_corpus(target_given, spool_dir=spool_dir)) if target_given else None
    return source, target


def _pairs(
    source: CorpusFile, target: CorpusFile | None, config: PrepareConfig, bad: _BadLines
) -> Iterator[Pair]:
    fmt = config.format
    if fmt == "auto":
        fmt = detect_format(source.path, target.path if target else None, source.name)
    if fmt == "aligned":
        if target is None:
            raise CorpusError("`format` aligned needs two files: a source file and a target file")
        pairs = _read_aligned(source, target, config)
    elif fmt == "csv":
        pairs = _read_csv(source, config, bad)
    else:
        pairs = _read_tsv(source, config, bad)
    for count, pair in enumerate(pairs, 1):
        yield Pair(pair.target, pair.source, pair.where) if config.reverse else pair
        if config.limit is not None and count >= config.limit:
            return


# --------------------------------------------------------------------------------------------------
# Normalising and filtering


def _drop_reason(source: str, target: str, config: PrepareConfig, words: Any) -> str | None:
    if not source or not target:
        return "empty"
    if len(source) > config.max_chars or len(target) > config.max_chars:
        return "too_long"
    n_source, n_target = len(words(source)), len(words(target))
    if max(n_source, n_target) > config.max_words:
        return "too_long"
    if min(n_source, n_target) < config.min_words:
        return "too_short"
    return None


# --------------------------------------------------------------------------------------------------
# Splitting


def text_digest(text: str) -> int:
    """A 64-bit digest that stands in for a sentence (or pair) while streaming a large corpus."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


def _split_count(size: float, groups: int) -> int:
    if size >= 1:
        return int(size)
    return round(groups * size) if size > 0 else 0


def assign_splits(source_digests: np.ndarray, valid_size: float, test_size: float, seed: int) -> np.ndarray:
    """The split of each pair (0 train, 1 valid, 2 test), grouped by source sentence.

    The distinct sources are shuffled with ``seed`` and cut: sizes below 1 are fractions of the
    distinct source sentences, sizes from 1 up are counts of them. Every pair of one source gets the
    same split. Works on 8-byte digests, so memory grows by bytes, not sentences, per pair.
    """
    sources, inverse = np.unique(source_digests, return_inverse=True)
    n_valid = _split_count(valid_size, len(sources))
    n_test = _split_count(test_size, len(sources))
    if n_valid + n_test >= len(sources):
        raise CorpusError(
            f"only {len(sources)} distinct source sentences: too few for {n_valid} validation and "
            f"{n_test} test sentences plus training; use a larger corpus or smaller `valid_size`/`test_size`"
        )
    order = np.random.default_rng(seed).permutation(len(sources))
    split_of_source = np.zeros(len(sources), np.int8)
    split_of_source[order[:n_valid]] = SPLITS.index("valid")
    split_of_source[order[n_valid : n_valid + n_test]] = SPLITS.index("test")
    return split_of_source[inverse.reshape(-1)]


def _sources_per_split(source_digests: np.ndarray, splits: np.ndarray) -> np.ndarray:
    """How many distinct sources each split holds."""
    _, first = np.unique(source_digests, return_index=True)
    return np.bincount(splits[first], minlength=len(SPLITS))


# --------------------------------------------------------------------------------------------------
# Preparing


def prepare(
    corpus: str | os.PathLike,
    output_dir: str | os.PathLike,
    config: PrepareConfig | None = None,
    target_path: str | os.PathLike | None = None,
    warn: Any = None,
    vocabularies: GivenVocabularies | None = None,
) -> dict[str, Any]:
    """Read, normalise, filter, deduplicate and split a corpus; build vocabularies; write a data folder.

    ``vocabularies``: the vocabularies of their level are taken as given instead of built from the
    training split (the other levels' are built as usual); the manifest names their ``origin``.

    Returns the manifest (also written as ``manifest.json``). Nothing in ``output_dir`` changes unless
    the whole preparation succeeds. The corpus is streamed: memory holds 16 bytes per pair and the
    token counts, never the text, so corpora larger than memory can be prepared.
    """
    config = config or PrepareConfig()
    corpus = Path(corpus)
    output_dir = Path(output_dir)
    for given in (corpus, Path(target_path) if target_path is not None else None):
        if (
            given is not None
            and str(given) != "-"
            and given.exists()
            and Path(os.path.realpath(given)).is_relative_to(os.path.realpath(output_dir))
        ):
            raise DataError(
                f"{given}: lies inside {output_dir}, which preparing replaces; move the corpus out "
                "of that folder or choose another `output`"
            )
    ensure_folder(output_dir.parent, DataError)
    check_replaceable(output_dir, "manifest.json", "prepared data", DataError, known=DATA_FILES)
    try:
        with replacing_folder(output_dir, DATA_FILES) as tmp_dir:
            manifest = _prepare_into(tmp_dir, corpus, config, target_path, warn, vocabularies)
    except OSError as exc:
        if exc.filename and Path(exc.filename).is_relative_to(corpus):
            raise
        raise DataError(
            f"{output_dir}: cannot write the prepared data ({exc.strerror or exc}); nothing was changed"
        ) from None
    return manifest


def _prepare_into(
    out: Path,
    corpus_path: Path,
    config: PrepareConfig,
    target_path: str | os.PathLike | None,
    warn: Any,
    given: GivenVocabularies | None = None,
) -> dict[str, Any]:
    with contextlib.ExitStack() as stack:
        # A pipe or stdin is copied into the temporary folder once, hashed on the way.
        corpus, target = _open_corpora(stack, corpus_path, target_path, config, out)
        return _prepare_from(out, corpus, target, config, warn, given)


def _prepare_from(
    out: Path,
    corpus: CorpusFile,
    target_file: CorpusFile | None,
    config: PrepareConfig,
    warn: Any,
    given: GivenVocabularies | None = None,
) -> dict[str, Any]:
    word_tokenizer = make_tokenizer("word")
    bad = _BadLines(config.on_bad_line, warn)

    # Pass 1: normalise and filter into one file; remember two digests per kept pair.
    dropped = {"empty": 0, "too_long": 0, "too_short": 0, "duplicate": 0}
    pair_digests, source_digests = array("Q"), array("Q")
    read = 0
    with open(out / "kept.tsv", "w", encoding="utf-8", newline="\n") as kept:
        for pair in _pairs(corpus, target_file, config, bad):
            read += 1
            source = normalize(pair.source, config.lowercase)
            target = normalize(pair.target, config.lowercase)
            reason = _drop_reason(source, target, config, word_tokenizer.tokenize)
            if reason is not None:
                dropped[reason] += 1
                continue
            kept.write(f"{source}\t{target}\n")
            pair_digests.append(text_digest(f"{source}\t{target}"))
            source_digests.append(text_digest(source))
    dropped["malformed"] = bad.count
    if read == 0 and bad.count == 0:
        raise CorpusError(f"{corpus.name}: the corpus is empty")

    # Duplicates and the split, from the digests alone.
    keep = np.ones(len(pair_digests), bool)
    if config.dedupe and len(pair_digests):
        keep[:] = False
        keep[np.unique(np.frombuffer(pair_digests, np.uint64), return_index=True)[1]] = True
        dropped["duplicate"] = int(len(keep) - keep.sum())
    if not keep.any():
        raise CorpusError(
            f"{corpus.name}: no pairs left after filtering ({_describe_drops(dropped)}); "
            "check the column options and `max_words`/`max_chars`"
        )
    if config.sample is not None and keep.sum() > config.sample:
        # Drawn from the kept pairs' positions (8 bytes each), not their text: the corpus stays on disk.
        # A seed of its own, so the split's shuffle does not depend on whether a sample was drawn.
        kept_at = np.flatnonzero(keep)
        drawn = np.random.default_rng([config.seed, 1]).choice(len(kept_at), config.sample, replace=False)
        keep[:] = False
        keep[kept_at[drawn]] = True
        dropped["not_sampled"] = int(len(kept_at) - config.sample)
    sources = np.frombuffer(source_digests, np.uint64)[keep]
    split_of = np.full(len(keep), -1, np.int8)
    split_of[keep] = assign_splits(sources, config.valid_size, config.test_size, config.seed)
    del pair_digests, source_digests

    # Pass 2: write the splits; count the tokens and lengths of the training split.
    tokenizers = {level: make_tokenizer(level) for level in LEVELS}
    counts: dict[tuple[str, str], Counter[str]] = {key: Counter() for key in itertools.product(LEVELS, SIDES)}
    longest = dict.fromkeys(itertools.product(LEVELS, SIDES), 0)
    with contextlib.ExitStack() as stack:
        files = [
            stack.enter_context(open(out / f"{split}.tsv", "w", encoding="utf-8", newline="\n"))
            for split in SPLITS
        ]
        kept_lines = stack.enter_context(open(out / "kept.tsv", encoding="utf-8", newline="\n"))
        for index, line in enumerate(kept_lines):
            split = split_of[index]
            if split < 0:
                continue
            files[split].write(line)
            if split == 0:
                for side, text in zip(SIDES, line.rstrip("\n").split("\t"), strict=True):
                    for level in LEVELS:
                        tokens = tokenizers[level].tokenize(text)
                        counts[level, side].update(tokens)
                        longest[level, side] = max(longest[level, side], len(tokens))
    (out / "kept.tsv").unlink()
    vocabularies = {
        key: Vocabulary.from_counts(count, config.max_vocab, config.min_count)
        for key, count in counts.items()
    }
    if given is not None and given.level in LEVELS:
        vocabularies[given.level, "source"] = given.source.vocabulary
        vocabularies[given.level, "target"] = given.target.vocabulary
    (out / "vocab").mkdir()
    for (level, side), vocabulary in vocabularies.items():
        vocabulary.save(out / "vocab" / f"{side}.{level}.txt")

    pairs_per_split = np.bincount(split_of[keep], minlength=len(SPLITS))
    sources_per_split = _sources_per_split(sources, split_of[keep])
    manifest: dict[str, Any] = {
        "format_version": DATA_FORMAT_VERSION,
        "nmtcli_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "corpus": {
            "path": corpus.recorded_path(),
            "sha256": corpus.sha256(),
            "target_path": target_file.recorded_path() if target_file else None,
            "target_sha256": target_file.sha256() if target_file else None,
        },
        "settings": config.to_dict(),
        "counts": {
            "read": read,
            "kept": int(keep.sum()),
            **{split: int(pairs_per_split[i]) for i, split in enumerate(SPLITS)},
            **{f"{split}_sources": int(sources_per_split[i]) for i, split in enumerate(SPLITS)},
        },
        "dropped": dropped,
        "vocab_size": {level: {side: len(vocabularies[level, side]) for side in SIDES} for level in LEVELS},
        "max_length": {level: {side: longest[level, side] for side in SIDES} for level in LEVELS},
        "unk_rate": {
            level: {
                split: _unk_rates(out / f"{split}.tsv", tokenizers[level], vocabularies, level)
                for split in ("valid", "test")
            }
            for level in LEVELS
        },
    }
    # vocab/{side}.subword.txt and .model
    fixed = (given.source, given.target) if given is not None and given.level == "subword" else None
    subwords = prepare_subwords(out, config, fixed)
    for key in ("vocab_size", "max_length", "unk_rate"):
        manifest[key]["subword"] = subwords[key]
    manifest["subword"] = subwords["subword"]
    if given is not None:
        manifest["vocab_from"] = {"run": given.origin, "level": given.level}
    atomic_write_json(out / "manifest.json", manifest)
    return manifest


def _unk_rates(path: Path, tokenizer: Any, vocabularies: dict, level: str) -> dict[str, float]:
    """Share of the tokens of a split file that each side's vocabulary does not know."""
    total = dict.fromkeys(SIDES, 0)
    unknown = dict.fromkeys(SIDES, 0)
    with open(path, encoding="utf-8", newline="\n") as handle:
        for line in handle:
            for side, text in zip(SIDES, line.rstrip("\n").split("\t"), strict=True):
                ids = vocabularies[level, side].encode(tokenizer.tokenize(text))
                total[side] += len(ids)
                unknown[side] += ids.count(UNK_ID)
    return {side: unknown[side] / total[side] if total[side] else 0.0 for side in SIDES}


def _describe_drops(dropped: dict[str, int]) -> str:
    parts = [f"{count} {reason.replace('_', ' ')}" for reason, count in dropped.items() if count]
    return ", ".join(parts) or "nothing read"


# --------------------------------------------------------------------------------------------------
# The prepared data folder


_SIDES_INT = {"source": Required(int), "target": Required(int)}
# What the code reads of a manifest; other keys may be there.
MANIFEST_SCHEMA = {
    "format_version": Required(int),
    "settings": Required(dict),
    "counts": Required({"train": Required(int), "valid": int, "test": int, "read": int, "kept": int}),
    "vocab_size": Required({level: Required(_SIDES_INT) for level in LEVELS}),
    "max_length": Required({level: Required(_SIDES_INT) for level in LEVELS}),
    "corpus": {"path": (str, None), "sha256": (str, None)},
    "dropped": DictOf(int),
}


class PreparedData:
    """A folder written by :func:`prepare`: split files, vocabularies and ``manifest.json``."""

    def __init__(self, path: Path, manifest: dict[str, Any]):
        self.path = path
        self.manifest = manifest

    @staticmethod
    def is_data_folder(path: Path) -> bool:
        """Whether ``path`` holds prepared data (``manifest.json`` and ``train.tsv``)."""
        return (path / "manifest.json").is_file() and (path / "train.tsv").is_file()

    @classmethod
    def load(cls, path: str | os.PathLike) -> PreparedData:
        path = Path(path)
        if not (path / "manifest.json").is_file():
            raise DataError(f"{path}: no prepared data here; run `nmt prepare CORPUS` first (or pass `data`)")
        file = path / "manifest.json"
        try:
            manifest = read_json_file(file, {"format_version": Any}, error=DataError)
        except (DataError, OSError) as exc:
            detail = str(exc).removeprefix(f"{file}: ")
            raise DataError(f"{file}: unreadable ({detail}); run `nmt prepare` again") from None
        version = manifest.get("format_version")
        if version != DATA_FORMAT_VERSION:
            raise DataError(
                f"{path}: prepared with data format {version!r}, this nmtcli reads "
                f"{DATA_FORMAT_VERSION}; run `nmt prepare` again"
            )
        problem = schema_problem(manifest, MANIFEST_SCHEMA)
        if problem is not None:
            raise DataError(f"{file}: unexpected content: {problem}; run `nmt prepare` again")
        expected = [f"{split}.tsv" for split in SPLITS] + [
            f"vocab/{side}.{level}.txt" for side in SIDES for level in LEVELS
        ]
        missing = [name for name in expected if not (path / name).is_file()]
        if missing:
            raise DataError(
                f"{path}: incomplete prepared data, missing {', '.join(missing)}; run `nmt prepare` again"
            )
        if manifest["counts"]["train"] > 0 and (path / "train.tsv").stat().st_size == 0:
            raise DataError(
                f"{path / 'train.tsv'}: empty, but the manifest counts {manifest['counts']['train']} "
                "training pairs; run `nmt prepare` again"
            )
        return cls(path, manifest)

    def pairs(self, split: str) -> list[tuple[str, str]]:
        return list(self.iter_pairs(split))

    def iter_pairs(self, split: str) -> Iterator[tuple[str, str]]:
        """The ``(source, target)`` pairs of ``split``, read one line at a time."""
        file = self.path / f"{split}.tsv"
        again = "run `nmt prepare` again"
        try:
            handle = open_regular_file(file, DataError)
        except OSError as exc:
            raise DataError(f"{file}: {exc.strerror or exc}; {again}") from None
        with handle:
            try:
                for number, raw in enumerate(bounded_lines(handle, str(file)), 1):
                    try:
                        line = raw.decode("utf-8")
                    except UnicodeDecodeError:
                        raise DataError(f"{file}:{number}: not valid UTF-8; {again}") from None
                    fields = line.rstrip("\n").split("\t")
                    if len(fields) != 2:
                        raise DataError(f"{file}:{number}: expected 2 tab-separated fields; {again}")
                    yield fields[0], fields[1]
            except CorpusError as exc:
                raise DataError(f"{exc}; {again}") from None

    def vectorizer(self, side: str, level: str) -> Vectorizer:
        return Vectorizer.load(level, self.path / "vocab" / f"{side}.{level}.txt")

    def held_out(
        self, split: str, trained_on: dict[str, Any] | None, model: str
    ) -> tuple[list[str], list[list[str]]]:
        """Sources and grouped references of ``split`` for scoring a model trained on this data.

        ``trained_on`` is the data manifest the model was trained with (None for models that kept
        none). When it names another corpus or other settings, this folder's held-out split may hold
        the model's training pairs, so that is a ``DataError`` rather than an inflated score.
        """
        if trained_on is not None and (trained_on.get("corpus"), trained_on.get("settings")) != (
            self.manifest.get("corpus"),
            self.manifest.get("settings"),
        ):
            raise DataError(
                f"{self.path} was prepared from other data or settings than {model} was trained on, "
                "so its test split may overlap training; score files of your own with `source` and "
                "`reference`"
            )
        return group_references(self.pairs(split))

    def max_length(self, side: str, level: str) -> int:
        return int(self.manifest["max_length"][level][side])


def group_references(pairs: list[tuple[str, str]]) -> tuple[list[str], list[list[str]]]:
    """Distinct sources in first-seen order, each with all of its targets as references."""
    grouped: dict[str, list[str]] = {}
    for source, target in pairs:
        grouped.setdefault(source, []).append(target)
    return list(grouped), list(grouped.values())


def reference_streams(references: Sequence[Sequence[str]]) -> list[list[str | None]]:
    """sacrebleu's layout: stream k holds the k-th reference of every sentence (None where absent)."""
    depth = max((len(refs) for refs in references), default=0)
    return [[refs[k] if k < len(refs) else None for refs in references] for k in range(depth)]
