"""The bad-input catalogue of docs/reliability.md: one test (at least) per case.

Every case either is handled (and counted where there is something to count) or ends in exactly one
line ``nmt: error: ...`` on stderr that names the file (and line where there is one), exit code 1, no
traceback, and no existing output changed: an existing data folder, run folder or ``--output`` file
is byte-identical afterwards, with no temporary files left beside it.

Model folders are copied before they are damaged; the session's tiny models are never retrained.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import json
import os
import shutil
import stat
from pathlib import Path

import pytest

import nmtcli.files
import nmtcli.run_folder
from nmtcli.files import sha256_file
from nmtcli.run_folder import RunFolder
from test_cli import TINY_TRAIN, assert_error, assert_ok, nmt, snapshot

KEEP_ALL = ["--valid-size", "0", "--test-size", "0"]  # every kept pair lands in train.tsv
EARLIER_OUTPUT = b"earlier translations\nthat must survive\n"


def write(path: Path, content: str | bytes) -> Path:
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def tsv(pairs: list[tuple[str, str]]) -> str:
    return "".join(f"{s}\t{t}\n" for s, t in pairs)


@pytest.fixture
def filler(tiny_pairs) -> str:
    """Twenty good anki lines, so that a corpus has something to keep besides the case under test."""
    return tsv(tiny_pairs[:20])


def prepared(corpus: Path, out: Path, *options: str) -> tuple[dict, str]:
    """``nmt prepare CORPUS --output OUT --json``, which must succeed: (manifest, stderr)."""
    result = nmt("prepare", corpus, "--output", out, *KEEP_ALL, *options, "--json")
    assert_ok(result)
    assert "Traceback" not in result.output
    return json.loads(result.stdout), result.stderr


def train_pairs(out: Path) -> list[tuple[str, str]]:
    lines = (out / "train.tsv").read_text(encoding="utf-8").split("\n")[:-1]
    return [tuple(line.split("\t")) for line in lines]


# --------------------------------------------------------------------------------------------------
# A workspace with prepared data that failed commands must leave alone


@pytest.fixture
def workspace(tmp_path, tiny_data) -> Path:
    ws = tmp_path / "ws"
    shutil.copytree(tiny_data, ws / "data")
    return ws


def failed_prepare(workspace: Path, corpus: Path | str, *options: str) -> str:
    """``nmt prepare`` into ``workspace``, which must fail in one line and change nothing there."""
    before = snapshot(workspace)
    line = assert_error(nmt("prepare", corpus, "-w", workspace, *options))
    assert snapshot(workspace) == before
    assert sorted(p.name for p in workspace.iterdir()) == ["data"], "temporary folders left behind"
    return line


@pytest.fixture
def output(tmp_path) -> Path:
    """An earlier ``--output`` file, alone in its folder."""
    (tmp_path / "out").mkdir()
    return write(tmp_path / "out" / "translations.txt", EARLIER_OUTPUT)


def assert_untouched(output: Path) -> None:
    assert output.read_bytes() == EARLIER_OUTPUT
    assert [p.name for p in output.parent.iterdir()] == [output.name], "temporary files left behind"


def failed_translate(run: Path, output: Path, *args: str) -> str:
    """``nmt translate --model RUN --output OUTPUT ...``, which must fail in one line, output intact."""
    line = assert_error(
        nmt("translate", "--model", run, "-w", output.parent / "no-ws", "--output", output, *args)
    )
    assert_untouched(output)
    return line


def translated(run: Path, *args: str) -> tuple[list[str], str]:
    """``nmt translate --model RUN ...`` to stdout, which must succeed: (output lines, stderr)."""
    result = nmt("translate", "--model", run, *args)
    assert_ok(result)
    assert "Traceback" not in result.output
    assert result.stdout.endswith("\n") or result.stdout == ""
    return result.stdout.split("\n")[:-1], result.stderr


@pytest.fixture
def model_copy(tmp_path, tiny_run) -> Path:
    """A copy of the tiny run folder, to damage."""
    return Path(shutil.copytree(tiny_run, tmp_path / "run"))


# --------------------------------------------------------------------------------------------------
# Encodings and line endings


def test_bom_is_dropped(tmp_path, filler) -> None:
    corpus = write(tmp_path / "bom.tsv", b"\xef\xbb\xbf" + tsv([("Go.", "Ve.")]).encode() + filler.encode())
    manifest, stderr = prepared(corpus, tmp_path / "out")
    assert manifest["counts"]["read"] == 21 and stderr == ""
    assert ("Go.", "Ve.") in train_pairs(tmp_path / "out")

    # In a CSV file the BOM would otherwise glue itself to the first header name.
    csv_corpus = write(tmp_path / "bom.csv", "\ufeffenglish,spanish\nGo.,Ve.\nRun.,Corre.\n")
    manifest, _ = prepared(csv_corpus, tmp_path / "out-csv", "--source-column", "english")
    assert manifest["counts"]["read"] == 2


def test_crlf_line_endings_are_handled(tmp_path, filler, workspace) -> None:
    corpus = write(tmp_path / "crlf.tsv", (filler + "Go.\tVe.\tCC-BY\n").replace("\n", "\r\n"))
    manifest, _ = prepared(corpus, tmp_path / "out")
    assert manifest["counts"]["read"] == 21
    assert "\r" not in (tmp_path / "out" / "train.tsv").read_text(encoding="utf-8")
    # Line numbers still count CRLF lines.
    bad = write(tmp_path / "crlf-bad.tsv", "Go.\tVe.\r\nno tab\r\n")
    assert f"{bad}:2: expected at least 2 tab-separated columns" in failed_prepare(workspace, bad)


def test_cr_only_line_endings_are_read_as_lines_or_refused(tmp_path) -> None:
    corpus = write(tmp_path / "cr.tsv", "red cat.\tgato rojo.\rblue dog.\tperro azul.\r")
    result = nmt("prepare", corpus, "--output", tmp_path / "out", *KEEP_ALL, "--json")
    if result.exit_code != 0:
        assert_error(result, str(corpus))
        return
    assert sorted(train_pairs(tmp_path / "out")) == [("blue dog.", "perro azul."), ("red cat.", "gato rojo.")]


def test_latin1_bytes_name_the_file_and_line(tmp_path, filler, workspace) -> None:
    corpus = write(tmp_path / "latin1.tsv", filler.encode() + "café.\tcafé.\n".encode("latin-1"))
    line = failed_prepare(workspace, corpus)
    assert f"{corpus}:21: not valid utf-8 (byte 4 of the line)" in line and "--encoding" in line
    prepared(corpus, tmp_path / "out", "--encoding", "latin-1")
    assert ("café.", "café.") in train_pairs(tmp_path / "out")


def test_utf16_file_without_encoding_names_the_file_and_line(tmp_path, filler, workspace) -> None:
    corpus = write(tmp_path / "utf16.tsv", filler.encode("utf-16"))
    line = failed_prepare(workspace, corpus)
    assert line == f"nmt: error: {corpus}: the file is UTF-16; convert it to UTF-8"


def test_utf16_named_as_the_encoding_is_refused_clearly(tmp_path, filler, workspace) -> None:
    corpus = write(tmp_path / "utf16.tsv", filler.encode("utf-16"))
    line = failed_prepare(workspace, corpus, "--encoding", "utf-16")
    assert line == f"nmt: error: {corpus}: utf-16 files are not supported; convert the file to UTF-8"


def test_nul_bytes_are_removed(tmp_path, filler) -> None:
    corpus = write(tmp_path / "nul.tsv", "red\x00 cat.\tgato\x00 rojo.\n\x00\t\x00\x00\n" + filler)
    manifest, _ = prepared(corpus, tmp_path / "out")
    assert manifest["counts"]["read"] == 22
    assert manifest["dropped"]["empty"] == 1  # the pair of NULs alone
    assert ("red cat.", "gato rojo.") in train_pairs(tmp_path / "out")
    assert b"\x00" not in (tmp_path / "out" / "train.tsv").read_bytes()


# --------------------------------------------------------------------------------------------------
# Malformed lines and --on-bad-line


@pytest.fixture
def two_bad_lines(tmp_path, filler) -> Path:
    """Line 21 has no tab, line 22 has four columns."""
    return write(tmp_path / "bad.tsv", filler + "no tab here\na\tb\tc\td\n" + tsv([("Go.", "Ve.")]))


def test_line_without_a_tab_is_an_error_naming_the_line(workspace, two_bad_lines) -> None:
    line = failed_prepare(workspace, two_bad_lines)
    assert f"{two_bad_lines}:21: expected at least 2 tab-separated columns, found 1" in line
    assert "--on-bad-line skip" in line


def test_bad_lines_with_warn_print_one_warning_each_and_are_counted(tmp_path, two_bad_lines) -> None:
    manifest, stderr = prepared(two_bad_lines, tmp_path / "out", "--on-bad-line", "warn")
    warnings = stderr.splitlines()
    assert len(warnings) == 2
    assert warnings[0].startswith(f"nmt: warning: {two_bad_lines}:21: ") and warnings[0].endswith("; skipped")
    assert warnings[1].startswith(f"nmt: warning: {two_bad_lines}:22: ")
    assert manifest["dropped"]["malformed"] == 2 and manifest["counts"]["read"] == 21


def test_bad_lines_with_skip_are_counted_silently(tmp_path, two_bad_lines) -> None:
    manifest, stderr = prepared(two_bad_lines, tmp_path / "out", "--on-bad-line", "skip")
    assert stderr == ""
    assert manifest["dropped"]["malformed"] == 2 and manifest["counts"]["kept"] == 21


def test_extra_columns_beyond_the_attribution(tmp_path, filler, workspace) -> None:
    corpus = write(tmp_path / "wide.tsv", filler + "Go.\tVe.\tCC-BY\textra\n")
    line = failed_prepare(workspace, corpus)
    assert f"{corpus}:21: expected 2 or 3 tab-separated columns" in line and "found 4" in line
    assert "--source-column/--target-column" in line
    # Chosen columns make it a plain TSV file, where any number of columns is fine.
    manifest, _ = prepared(corpus, tmp_path / "out", "--source-column", "1", "--target-column", "2")
    assert manifest["counts"]["read"] == 21 and ("Go.", "Ve.") in train_pairs(tmp_path / "out")


QUOTED_CSV = 'english,spanish\n"Hello, world.","Hola,\nmundo."\n"Say ""hi"".",Di hola.\nGo.,Ve.\n'


def test_quoted_csv_fields_with_commas_and_newlines(tmp_path) -> None:
    corpus = write(tmp_path / "quoted.csv", QUOTED_CSV)
    manifest, _ = prepared(corpus, tmp_path / "out")
    assert manifest["counts"]["read"] == 3
    pairs = train_pairs(tmp_path / "out")
    assert ("Hello, world.", "Hola, mundo.") in pairs  # the newline inside the field became a space
    assert ('Say "hi".', "Di hola.") in pairs


def test_csv_line_numbers_count_newlines_inside_quoted_fields(tmp_path, workspace) -> None:
    corpus = write(tmp_path / "quoted.csv", QUOTED_CSV + "lonely\n")
    assert f"{corpus}:6: expected at least 2 columns, found 1" in failed_prepare(workspace, corpus)


def test_empty_source_or_target_is_dropped_and_counted(tmp_path, filler) -> None:
    corpus = write(tmp_path / "empty-side.tsv", "red cat.\t\n\tgato rojo.\n  \t gato.\n" + filler)
    manifest, _ = prepared(corpus, tmp_path / "out")
    assert manifest["dropped"]["empty"] == 3 and manifest["counts"]["kept"] == 20


def test_whitespace_only_lines_are_skipped(tmp_path, filler) -> None:
    corpus = write(tmp_path / "blank.tsv", "   \n\t\n" + filler + " \u3000 \n\n")
    manifest, _ = prepared(corpus, tmp_path / "out")
    assert manifest["counts"]["read"] == 20 and manifest["dropped"]["malformed"] == 0


def test_a_one_megabyte_line_is_dropped_as_too_long(tmp_path, filler) -> None:
    corpus = write(
        tmp_path / "huge.tsv", filler + "x\t" + "y " * (1 << 19) + "\n" + "z" * (1 << 20) + "\tz\n"
    )
    manifest, _ = prepared(corpus, tmp_path / "out")
    assert manifest["dropped"]["too_long"] == 2 and manifest["counts"]["kept"] == 20


def test_a_one_megabyte_csv_field_is_dropped_as_too_long(tmp_path) -> None:
    corpus = write(
        tmp_path / "huge.csv", "english,spanish\nGo.,Ve.\nRun.,Corre.\nx," + "y" * (1 << 20) + "\n"
    )
    manifest, _ = prepared(corpus, tmp_path / "out")
    assert manifest["dropped"]["too_long"] == 1


# --------------------------------------------------------------------------------------------------
# Nothing to prepare


@pytest.mark.parametrize(
    "content", [b"", b"\xef\xbb\xbf", b"\n\r\n  \n"], ids=["zero-bytes", "bom-only", "blank"]
)
def test_an_empty_corpus(tmp_path, workspace, content) -> None:
    corpus = write(tmp_path / "empty.tsv", content)
    assert failed_prepare(workspace, corpus) == f"nmt: error: {corpus}: the corpus is empty"


@pytest.mark.parametrize(
    ("content", "options", "reason"),
    [
        ("red cat.\tgato rojo.\nbig dog.\tperro grande.\n", ["--max-words", "1"], "2 too long"),
        ("red\tcat\t.\t!\nbig dog.\nsmall\n", ["--on-bad-line", "skip"], "3 malformed"),
        ("red cat.\t\n\x00\tperro.\n", [], "2 empty"),
    ],
    ids=["too-long", "all-malformed", "all-empty"],
)
def test_a_corpus_where_every_line_is_filtered_out(tmp_path, workspace, content, options, reason) -> None:
    corpus = write(tmp_path / "filtered.tsv", content)
    line = failed_prepare(workspace, corpus, *options)
    assert f"{corpus}: no pairs left after filtering (" in line and reason in line


# --------------------------------------------------------------------------------------------------
# Files that cannot be read


def test_a_missing_file(tmp_path, workspace, tiny_corpus) -> None:
    missing = tmp_path / "missing.tsv"
    assert failed_prepare(workspace, missing) == f"nmt: error: {missing}: corpus file not found"
    # The second file of an aligned pair too.
    assert f"{missing}: corpus file not found" in failed_prepare(workspace, tiny_corpus, str(missing))


def test_a_directory_given_as_a_file(tmp_path, workspace) -> None:
    folder = tmp_path / "folder.tsv"
    folder.mkdir()
    line = failed_prepare(workspace, folder)
    assert line == f"nmt: error: {folder}: is a directory, not a file"


@pytest.fixture
def unreadable(monkeypatch, tmp_path, filler) -> Path:
    """A corpus that ``os.access`` says cannot be read, as ``chmod 000`` does for anyone but root."""
    corpus = write(tmp_path / "secret.tsv", filler)
    real_access = os.access

    def access(path, mode, *args, **kwargs):
        if Path(path) == corpus and mode & os.R_OK:
            return False
        return real_access(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "access", access)
    return corpus


def test_unreadable_permissions_simulated(workspace, unreadable) -> None:
    assert failed_prepare(workspace, unreadable) == f"nmt: error: {unreadable}: permission denied"


def test_unreadable_when_open_itself_is_refused(monkeypatch, tmp_path, filler, workspace) -> None:
    """``os.access`` says yes but ``open`` says no (ACLs, a race): still one line naming the file."""
    corpus = write(tmp_path / "secret.tsv", filler)
    real_open = builtins.open

    def refusing_open(file, *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and Path(file) == corpus:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", refusing_open)
    assert failed_prepare(workspace, corpus) == f"nmt: error: {corpus}: Permission denied"


@pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0,
    reason="root reads a chmod 000 file; test_unreadable_permissions_simulated covers the message",
)
def test_unreadable_permissions_for_real(tmp_path, filler, workspace) -> None:
    corpus = write(tmp_path / "secret.tsv", filler)
    corpus.chmod(0)
    try:
        assert failed_prepare(workspace, corpus) == f"nmt: error: {corpus}: permission denied"
    finally:
        corpus.chmod(0o644)


# --------------------------------------------------------------------------------------------------
# Options out of range


@pytest.mark.parametrize("limit", ["0", "-1"])
def test_limit_zero_or_negative(workspace, tiny_corpus, limit) -> None:
    line = failed_prepare(workspace, tiny_corpus, "--limit", limit)
    assert line == f"nmt: error: --limit must be an integer >= 1; got {limit}"


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--max-vocab", "3", "--max-vocab must be an integer >= 5; got 3"),
        ("--max-vocab", "-1", "--max-vocab must be an integer >= 5; got -1"),
        ("--min-count", "0", "--min-count must be an integer >= 1; got 0"),
    ],
)
def test_vocabulary_options_out_of_range(workspace, tiny_corpus, option, value, message) -> None:
    assert failed_prepare(workspace, tiny_corpus, option, value) == f"nmt: error: {message}"


def test_column_number_zero(workspace, tiny_corpus) -> None:
    line = failed_prepare(workspace, tiny_corpus, "--source-column", "0")
    assert line == "nmt: error: column numbers count from 1; got 0"


def test_column_given_as_a_superscript_digit(workspace, tiny_corpus) -> None:
    failed_prepare(workspace, tiny_corpus, "--source-column", "²")


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--max-vocab", "abc"], "Invalid value for '--max-vocab'"),
        (["--no-such-option"], "No such option: --no-such-option"),
        ([], "Missing argument 'corpus'"),
    ],
    ids=["wrong-type", "unknown-option", "missing-argument"],
)
def test_usage_errors_are_one_line_with_exit_code_2(workspace, tiny_corpus, args, named) -> None:
    before = snapshot(workspace)
    corpus = [tiny_corpus] if args else []
    result = nmt("prepare", *corpus, "-w", workspace, *args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("nmt: error: "), result.stderr
    assert named in lines[0] and lines[0].endswith("prepare --help')"), lines[0]
    assert snapshot(workspace) == before


# --------------------------------------------------------------------------------------------------
# A prepared data folder with a file missing


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("vocab/target.word.txt", "incomplete prepared data, missing vocab/target.word.txt"),
        ("train.tsv", "incomplete prepared data, missing train.tsv"),
        ("manifest.json", "no prepared data here"),
    ],
)
def test_a_prepared_folder_with_a_file_missing(tmp_path, tiny_data, name, message) -> None:
    data = Path(shutil.copytree(tiny_data, tmp_path / "data"))
    (data / name).unlink()
    before = snapshot(data)
    workspace = tmp_path / "ws"
    line = assert_error(nmt("train", "--data", data, "-w", workspace, *TINY_TRAIN))
    assert line.startswith(f"nmt: error: {data}: {message}")
    assert snapshot(data) == before and not workspace.exists()


# --------------------------------------------------------------------------------------------------
# Untrusted or damaged model folders


# The checksum and safe-mode cases (29-35) are in tests/test_run_folder.py, beside RunFolder.


# --------------------------------------------------------------------------------------------------
# Translating unusual text


def test_translating_emoji(tiny_run) -> None:
    lines, stderr = translated(tiny_run, "red 😀 cat.", "🐱🐶", "👩\u200d👩\u200d👧 🇪🇸")
    assert len(lines) == 3 and stderr == ""


def test_translating_right_to_left_text(tiny_run) -> None:
    lines, stderr = translated(tiny_run, "مرحبا بالعالم.", "שלום עולם", "\u202eted cat.", "red \u200f cat.")
    assert len(lines) == 4 and stderr == ""


def test_translating_zero_width_and_control_characters(tmp_path, tiny_run) -> None:
    # Only "\n" ends an input line: every other separator or control character stays inside its line.
    inputs = [
        "red\x00 cat.",
        "\x07\x1b[31mred\x1b[0m dog.",
        "zero\u200bwidth\u200c\u200d\ufeff",
        "tab\tvt\x0bff\x0cfs\x1c",
        "nel\x85ls\u2028ps\u2029",
        "cr\rinside",
        "",
    ]
    source = write(tmp_path / "in.txt", "\n".join(inputs) + "\n")
    lines, stderr = translated(tiny_run, "--input", source)
    assert len(lines) == len(inputs) and stderr == ""
    assert lines[-1] == ""


def test_an_input_longer_than_the_model_takes_is_cut_with_a_warning(tiny_run) -> None:
    lines, stderr = translated(tiny_run, "red cat.", "red cat " * 100, "dog.")
    assert len(lines) == 3
    assert stderr.splitlines() == [
        "nmt: warning: 1 input line(s) longer than 64 tokens were cut to that length"
    ]


def test_a_one_megabyte_input_line_is_cut_with_a_warning(tmp_path, tiny_run) -> None:
    source = write(tmp_path / "in.txt", "dog.\n" + "red " * (1 << 18) + "\n")
    lines, stderr = translated(tiny_run, "--input", source)
    assert len(lines) == 2
    assert len(stderr.splitlines()) == 1 and stderr.startswith("nmt: warning: 1 input line(s) longer than")


def test_translate_input_with_latin1_bytes_names_the_file_and_line(tmp_path, tiny_run, output) -> None:
    source = write(tmp_path / "in.txt", b"red cat.\ncaf\xe9.\n")
    line = failed_translate(tiny_run, output, "--input", str(source))
    assert line.startswith(f"nmt: error: {source}:2: not valid utf-8 (byte 4 of the line)")


@pytest.mark.parametrize("kind", ["missing", "directory", pytest.param("unreadable", marks=())])
def test_translate_input_that_cannot_be_read(monkeypatch, tmp_path, tiny_run, output, kind) -> None:
    source = tmp_path / "in.txt"
    if kind == "directory":
        source.mkdir()
    elif kind == "unreadable":
        write(source, "red cat.\n")
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda p, m, **kw: Path(p) != source and real_access(p, m, **kw))
    expected = {
        "missing": "input file not found",
        "directory": "is a directory",
        "unreadable": "permission denied",
    }[kind]
    assert failed_translate(tiny_run, output, "--input", str(source)).startswith(
        f"nmt: error: {source}: {expected}"
    )


# --------------------------------------------------------------------------------------------------
# The disk fills while saving


class FullDisk:
    """A file object on a disk that fills up after ``room`` characters: write(2) fails with ENOSPC,
    and, like a real one, the OSError carries no file name."""

    def __init__(self, handle, room: int):
        self._handle = handle
        self._room = room

    def write(self, data):
        if len(data) > self._room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._room -= len(data)
        return self._handle.write(data)

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name):
        return getattr(self._handle, name)


@pytest.fixture
def full_disk(monkeypatch) -> None:
    """Every ``atomic_open`` (translations, vocabularies, manifests, JSON) runs out of space after a
    few bytes have been written to its temporary file."""
    real_atomic_open = nmtcli.files.atomic_open

    @contextlib.contextmanager
    def atomic_open(path, mode="w"):
        with real_atomic_open(path, mode) as handle:
            yield FullDisk(handle, room=12)

    monkeypatch.setattr(nmtcli.files, "atomic_open", atomic_open)


NO_SPACE = os.strerror(errno.ENOSPC)


def test_disk_full_while_writing_translations(tiny_run, output, full_disk) -> None:
    # Enough lines that even empty translations (one newline each) overflow the room left.
    line = failed_translate(tiny_run, output, *["red cat.", "dog.", "big dog runs."] * 10)
    assert line == f"nmt: error: {output}: {NO_SPACE}"


def test_disk_full_while_preparing(workspace, tiny_corpus, full_disk) -> None:
    line = failed_prepare(workspace, tiny_corpus)
    expected = f"{workspace / 'data'}: cannot write the prepared data ({NO_SPACE}); nothing was changed"
    assert line == f"nmt: error: {expected}"


def test_disk_full_while_saving_the_model(monkeypatch, tmp_path, tiny_run, tiny_data) -> None:
    workspace = Path(shutil.copytree(tiny_run.parent.parent, tmp_path / "ws"))
    before = snapshot(workspace)
    real_atomic_path = nmtcli.run_folder.atomic_path

    @contextlib.contextmanager
    def atomic_path(path, suffix=""):
        with real_atomic_path(path, suffix) as tmp:
            yield tmp
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(nmtcli.run_folder, "atomic_path", atomic_path)
    result = nmt("train", "--data", tiny_data, "-w", workspace, *TINY_TRAIN, "--epochs", "1")
    assert isinstance(result.exception, SystemExit) and result.exit_code == 1
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("nmt: error:")]
    assert len(errors) == 1 and errors[0].endswith(f"model.keras: {NO_SPACE}")
    assert result.stderr.splitlines()[-1] == errors[0]
    # The earlier run and LATEST are untouched; the new run has no model and stays resumable.
    after = snapshot(workspace)
    assert {name: data for name, data in after.items() if name in before} == before
    (new_run,) = {Path(name).parts[1] for name in after if name not in before}
    new_run = workspace / "runs" / new_run
    assert not (new_run / "model.keras").exists()
    assert not [p.name for p in new_run.iterdir() if p.name.startswith(".model.keras")]
    assert json.loads((new_run / "state.json").read_text(encoding="utf-8")) == {"status": "running"}


def test_disk_full_message_names_the_file(tiny_run, output, full_disk) -> None:
    assert str(output) in failed_translate(tiny_run, output, *["red cat.", "dog."] * 10)


# --------------------------------------------------------------------------------------------------
# Round two (issue 13): nothing outside our own files is touched; every file we read is untrusted


def finishes(call, seconds: float = 60.0, unblock: Path | None = None):
    """Run ``call()`` in a thread; fail if it is still blocked after ``seconds`` (then open the FIFO
    ``unblock`` for writing and reading, so the thread can end). Returns what it returned."""
    import threading

    box: dict = {}

    def target() -> None:
        try:
            box["value"] = call()
        except BaseException as exc:  # noqa: BLE001 - handed to the test below
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        if unblock is not None:
            with contextlib.suppress(OSError):
                os.close(os.open(unblock, os.O_RDWR | os.O_NONBLOCK))
        pytest.fail(f"still blocked after {seconds} s")
    if "error" in box:
        raise box["error"]
    return box.get("value")


# 48: an output that is not a regular file is written to, never replaced


def test_output_to_a_fifo_is_written_not_replaced(tmp_path, tiny_run) -> None:
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader waiting, as `cat out.fifo` would
    try:
        assert_ok(nmt("translate", "--model", tiny_run, "red cat.", "blue dog.", "-o", fifo))
        received = os.read(reader, 1 << 16).decode("utf-8")
    finally:
        os.close(reader)
    assert os.path.exists(fifo) and stat.S_ISFIFO(os.lstat(fifo).st_mode), "the FIFO was replaced"
    assert len(received.split("\n")) == 3 and received.endswith("\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.fifo"]


def test_output_through_a_symlink_to_a_device_keeps_the_link(tmp_path, tiny_run) -> None:
    link = tmp_path / "sink"
    link.symlink_to("/dev/null")
    assert_ok(nmt("translate", "--model", tiny_run, "red cat.", "-o", link))
    assert link.is_symlink() and os.readlink(link) == "/dev/null"
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sink"]


def test_output_dash_is_stdout(tiny_run) -> None:
    result = nmt("translate", "--model", tiny_run, "red cat.", "blue dog.", "-o", "-")
    assert_ok(result)
    assert len(result.stdout.split("\n")) == 3
    assert not Path("-").exists()


# 49: an output that is one of the command's inputs, or inside a model or data folder, is refused


def test_translate_output_onto_its_own_input_is_refused(tmp_path, tiny_run) -> None:
    source = write(tmp_path / "x.txt", "red cat.\nblue dog.\n")
    line = assert_error(nmt("translate", "--model", tiny_run, "-i", source, "-o", source))
    assert line == f"nmt: error: {source}: is also the command's input {source}; choose another --output"
    assert source.read_text(encoding="utf-8") == "red cat.\nblue dog.\n"
    alias = tmp_path / "alias.txt"
    alias.symlink_to(source)
    assert_error(
        nmt("translate", "--model", tiny_run, "-i", source, "-o", alias), "is also the command's input"
    )
    assert source.read_text(encoding="utf-8") == "red cat.\nblue dog.\n"


def test_evaluate_output_onto_its_source_is_refused(tmp_path, tiny_run) -> None:
    source = write(tmp_path / "s.txt", "red cat.\n")
    reference = write(tmp_path / "r.txt", "gato rojo.\n")
    for target in (source, reference):
        line = assert_error(
            nmt("evaluate", "--model", tiny_run, "--source", source, "--reference", reference, "-o", target)
        )
        assert "is also the command's input" in line
    assert source.read_text(encoding="utf-8") == "red cat.\n"
    assert reference.read_text(encoding="utf-8") == "gato rojo.\n"


def test_an_output_inside_a_model_or_data_folder_is_refused(model_copy, tiny_data) -> None:
    before = snapshot(model_copy)
    line = assert_error(nmt("translate", "--model", model_copy, "red cat.", "-o", model_copy / "model.keras"))
    assert line == (
        f"nmt: error: {model_copy / 'model.keras'}: lies inside the model folder {model_copy.resolve()}; "
        "choose another --output"
    )
    assert_error(nmt("plot", model_copy, "-o", model_copy / "config.json"), "lies inside the model folder")
    line = assert_error(nmt("translate", "--model", model_copy, "red cat.", "-o", tiny_data / "train.tsv"))
    assert "lies inside the prepared data folder" in line
    assert snapshot(model_copy) == before


# 50: a folder output replaces only what nmt wrote


def test_prepare_from_a_corpus_inside_the_data_folder_keeps_it(workspace, tiny_corpus) -> None:
    corpus = Path(shutil.copy(tiny_corpus, workspace / "data" / "corpus.tsv"))
    line = failed_prepare(workspace, corpus)
    assert line == (
        f"nmt: error: {corpus}: lies inside {workspace / 'data'}, which preparing replaces; move the corpus "
        "out of that folder or choose another --output"
    )
    assert corpus.read_bytes() == tiny_corpus.read_bytes()


def test_prepare_over_a_data_folder_with_a_users_file_keeps_it(workspace, tiny_corpus) -> None:
    write(workspace / "data" / "notes.txt", "mine")
    line = failed_prepare(workspace, tiny_corpus)
    assert line == (
        f"nmt: error: {workspace / 'data'}: holds notes.txt, which nmt did not write and would delete; "
        "move it out of the folder or choose another --output"
    )
    assert (workspace / "data" / "notes.txt").read_text(encoding="utf-8") == "mine"


def test_re_export_over_a_folder_with_a_users_file_keeps_it(tmp_path, tiny_run) -> None:
    earlier = tmp_path / "export"
    (earlier / "variables").mkdir(parents=True)
    for name in ("saved_model.pb", "nmt-export.json", "variables/variables.index", "notes.txt"):
        write(earlier / name, "x")
    before = snapshot(earlier)
    line = assert_error(nmt("export", "-m", tiny_run, "-o", earlier))
    assert line == (
        f"nmt: error: {earlier}: holds notes.txt, which nmt did not write and would delete; "
        "move it out of the folder or choose another --output"
    )
    assert snapshot(earlier) == before


# 51: a corpus that can be read only once (stdin, a pipe, a FIFO)


def test_prepare_reads_stdin_given_as_dash(tmp_path, tiny_corpus) -> None:
    result = nmt(
        "prepare", "-", "--output", tmp_path / "data", *KEEP_ALL, "--json", input=tiny_corpus.read_bytes()
    )
    assert_ok(result)
    manifest = json.loads(result.stdout)
    expected, _ = prepared(tiny_corpus, tmp_path / "from-file")
    assert manifest["counts"] == expected["counts"]
    assert manifest["corpus"]["sha256"] == sha256_file(tiny_corpus)
    assert manifest["corpus"]["path"] == "<stdin>"


def run_nmt_process(*args: str, stdin=None, timeout: float = 120, memory_limit: int | None = None):
    """``nmt ARGS`` as a real process (real file descriptors, real pipes), its address space limited
    to ``memory_limit`` bytes when given."""
    import resource
    import subprocess
    import sys

    def limit() -> None:
        if memory_limit is not None:
            resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))

    command = [sys.executable, "-c", "from nmtcli.cli import main; main()", *map(str, args)]
    return subprocess.run(
        command, stdin=stdin, capture_output=True, timeout=timeout, check=False, preexec_fn=limit
    )


def test_prepare_reads_a_pipe_given_as_dev_stdin_whole(tmp_path, tiny_corpus) -> None:
    # Larger than the 64 KiB head that format detection reads, so a second open would miss pairs.
    corpus = write(tmp_path / "big.tsv", tiny_corpus.read_text(encoding="utf-8") * 40)
    expected, _ = prepared(corpus, tmp_path / "from-file")
    import subprocess

    cat = subprocess.Popen(["cat", str(corpus)], stdout=subprocess.PIPE)
    done = run_nmt_process(
        "prepare", "/dev/stdin", "-o", tmp_path / "data", *KEEP_ALL, "--json", stdin=cat.stdout
    )
    cat.stdout.close()
    cat.wait()
    assert done.returncode == 0, done.stderr
    manifest = json.loads(done.stdout)
    assert manifest["counts"] == expected["counts"]
    assert manifest["corpus"]["sha256"] == sha256_file(corpus)


def test_prepare_reads_a_fifo_once(tmp_path, tiny_corpus) -> None:
    import threading

    fifo = tmp_path / "corpus.fifo"
    os.mkfifo(fifo)

    def feed() -> None:
        with open(fifo, "wb") as handle:  # opens when nmt opens the FIFO for reading
            handle.write(tiny_corpus.read_bytes())

    threading.Thread(target=feed, daemon=True).start()
    done = run_nmt_process("prepare", fifo, "--format", "tsv", "-o", tmp_path / "data", *KEEP_ALL, "--json")
    assert done.returncode == 0, done.stderr
    expected, _ = prepared(tiny_corpus, tmp_path / "from-file")
    assert json.loads(done.stdout)["counts"] == expected["counts"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.fifo", "data", "from-file"]


# 52: a CSV quote left open


def test_an_unclosed_csv_quote_at_the_end_names_its_line(tmp_path, workspace) -> None:
    corpus = write(tmp_path / "q.csv", 'english,spanish\nGo.,Ve.\n"Run.,Corre.\nHi.,Hola.\nA.,B.\n')
    line = failed_prepare(workspace, corpus)
    assert line == (
        f"nmt: error: {corpus}:3: a quoted field opened on this line is not closed (3 lines read into it); "
        'add the missing closing quote (")'
    )


def test_an_unclosed_csv_quote_does_not_swallow_the_file(tmp_path, workspace, tiny_pairs) -> None:
    rows = "".join(f"{s},{t}\n" for s, t in tiny_pairs[:300])
    corpus = write(tmp_path / "q.csv", 'english,spanish\nGo.,Ve.\nRun.,"Corre.\n' + rows)
    line = failed_prepare(workspace, corpus)
    assert line.startswith(
        f"nmt: error: {corpus}:3: a quoted field opened on this line is not closed (101 lines"
    )


# 53: locks


def test_a_lock_that_is_a_symlink_is_refused_not_followed(tmp_path) -> None:
    from nmtcli.errors import NmtError
    from nmtcli.workspace import RunLock

    run = tmp_path / "run"
    run.mkdir()
    target = tmp_path / "elsewhere" / "created-by-the-lock"
    target.parent.mkdir()
    (run / ".lock").symlink_to(target)
    with pytest.raises(NmtError, match=r"\.lock: is a symlink"):
        RunLock(run).acquire()
    assert not target.exists()


def test_a_fifo_lock_never_blocks(tmp_path) -> None:
    from nmtcli.errors import NmtError
    from nmtcli.workspace import RunLock

    run = tmp_path / "run"
    run.mkdir()
    os.mkfifo(run / ".lock")
    with pytest.raises(NmtError, match=r"\.lock: not a regular file"):
        finishes(lambda: RunLock(run).acquire(), 30, unblock=run / ".lock")


# 54: runs/LATEST names a folder inside runs/


@pytest.mark.parametrize("pointer", ["ABSOLUTE", "../outside"])
def test_latest_is_confined_to_the_runs_folder(tmp_path, tiny_run, pointer) -> None:
    from nmtcli.workspace import Workspace

    ws = Workspace(tmp_path / "ws")
    outside = Path(shutil.copytree(tiny_run, tmp_path / "ws" / "outside"))
    inside = Path(shutil.copytree(tiny_run, ws.runs_dir / tiny_run.name))
    value = str(outside) if pointer == "ABSOLUTE" else pointer
    write(ws.runs_dir / "LATEST", value + "\n")
    assert ws.latest_run() == inside  # the pointer is ignored; the newest completed run answers
    assert_ok(nmt("plot", "-w", ws.root, "--terminal"))
    assert not (outside / "curves.png").exists()


# 55: JSON files of the wrong size, depth or shape


def deep_json(levels: int = 100_000) -> str:
    return "[" * levels + "]" * levels


@pytest.mark.parametrize("name", ["config.json", "checksums.json"])
def test_deeply_nested_run_json_is_one_line(model_copy, output, name) -> None:
    write(model_copy / name, deep_json())
    line = failed_translate(model_copy, output, "red cat.")
    assert line.startswith(f"nmt: error: {model_copy / name}: nested too deeply") or "not valid JSON" in line


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("config.json", "[1, 2]", "the top level should be an object, found a list"),
        ("config.json", None, "model.units should be an integer, found a string"),
        ("checksums.json", '{"model.keras": "abc"}', "model.keras should be a list, found a string"),
    ],
)
def test_run_json_of_the_wrong_shape_is_one_line(model_copy, output, name, content, expected) -> None:
    if content is None:
        config = json.loads((model_copy / "config.json").read_text(encoding="utf-8"))
        config["model"]["units"] = "16"
        content = json.dumps(config)
    write(model_copy / name, content)
    line = failed_translate(model_copy, output, "red cat.")
    assert line == f"nmt: error: {model_copy / name}: unexpected content: {expected}"


def test_a_deep_or_misshapen_data_manifest_is_one_line(tmp_path, tiny_data) -> None:
    from nmtcli.corpus import PreparedData
    from nmtcli.errors import DataError

    data = Path(shutil.copytree(tiny_data, tmp_path / "data"))
    write(data / "manifest.json", deep_json())
    with pytest.raises(DataError, match="nested too deeply|not valid JSON"):
        PreparedData.load(data)
    manifest = json.loads((tiny_data / "manifest.json").read_text(encoding="utf-8"))
    manifest["counts"] = ["train", 3]
    write(data / "manifest.json", json.dumps(manifest))
    with pytest.raises(DataError, match="unexpected content: counts should be an object, found a list"):
        PreparedData.load(data)


def test_run_files_that_are_fifos_never_block(model_copy) -> None:
    (model_copy / "state.json").unlink()
    os.mkfifo(model_copy / "state.json")
    status = finishes(lambda: RunFolder(model_copy).status(), 30, unblock=model_copy / "state.json")
    assert status == "unknown"
    result = finishes(lambda: nmt("info", model_copy, "--json"), 60, unblock=model_copy / "state.json")
    assert_ok(result)
    assert json.loads(result.stdout)["status"] == "unknown"


def test_a_run_file_linked_to_dev_zero_is_read_in_bounded_memory(model_copy) -> None:
    from nmtcli.errors import NmtError

    (model_copy / "state.json").unlink()
    (model_copy / "state.json").symlink_to("/dev/zero")
    with pytest.raises(NmtError, match="not a regular file"):
        nmtcli.files.read_json(model_copy / "state.json")
    # A real process under a 2 GB address-space limit, so that a reader without bounds fails
    # instead of taking the machine's memory.
    done = run_nmt_process("info", model_copy, "--json", memory_limit=2 * 10**9)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["status"] == "unknown"


def test_a_symlink_loop_in_a_run_folder_is_named(model_copy, output) -> None:
    (model_copy / "vocab" / "source.txt").unlink()
    (model_copy / "vocab" / "source.txt").symlink_to(model_copy / "vocab" / "source.txt")
    line = failed_translate(model_copy, output, "red cat.")
    assert line == f"nmt: error: {model_copy / 'vocab' / 'source.txt'}: symlink loop"


# 57: model.keras is checked against the run's config.json before Keras opens it


def rewrite_keras(path: Path, change_config=None, weights: bytes | None = None, extra: dict | None = None):
    """Rewrite the zip ``path`` with its inner config changed, its weights replaced or members added."""
    import zipfile

    with zipfile.ZipFile(path) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    if change_config is not None:
        config = json.loads(members["config.json"])
        change_config(config["config"])
        members["config.json"] = json.dumps(config).encode("utf-8")
    if weights is not None:
        members["model.weights.h5"] = weights
    members.update(extra or {})
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    RunFolder(path.parent).write_checksums([sha256_file(path)])


def test_a_model_file_claiming_other_sizes_than_config_json_is_refused(model_copy, output) -> None:
    # Twice the units, not the 6,000 of the report: older code built whatever was claimed (5 GB).
    units = json.loads((model_copy / "config.json").read_text(encoding="utf-8"))["model"]["units"]
    rewrite_keras(model_copy / "model.keras", lambda c: c.update(units=2 * units))
    line = failed_translate(model_copy, output, "red cat.")
    assert line == (
        f"nmt: error: {model_copy / 'model.keras'}: its units is {2 * units} but the run's config.json "
        f"says {units}; the model file does not belong to this folder"
    )


def test_a_vocabulary_larger_than_the_embedding_is_refused(model_copy, output) -> None:
    vocab = model_copy / "vocab" / "target.txt"
    vocab.write_text(vocab.read_text(encoding="utf-8") + "".join(f"extra{i}\n" for i in range(50)), "utf-8")
    config = json.loads((model_copy / "config.json").read_text(encoding="utf-8"))
    config["model"]["target_vocab_size"] += 50
    write(model_copy / "config.json", json.dumps(config))
    RunFolder(model_copy).write_checksums([sha256_file(model_copy / "model.keras")])
    line = failed_translate(model_copy, output, "red cat.")
    assert "its target_vocab_size is" in line and "the model file does not belong to this folder" in line


def test_an_lstm_model_in_a_gru_attention_folder_is_refused(tmp_path, tiny_run_factory, output) -> None:
    gru = Path(shutil.copytree(tiny_run_factory("gru-attention"), tmp_path / "gru"))
    shutil.copy(tiny_run_factory("lstm") / "model.keras", gru / "model.keras")
    RunFolder(gru).write_checksums([sha256_file(gru / "model.keras")])
    line = failed_translate(gru, output, "red cat.")
    assert "holds a LstmSeq2Seq model but the run's config.json says gru-attention" in line


def test_a_weights_member_that_inflates_is_refused_before_keras(model_copy, output) -> None:
    rewrite_keras(model_copy / "model.keras", weights=bytes(8 * 2**20))
    line = failed_translate(model_copy, output, "red cat.")
    assert "model.weights.h5 inflates" in line and "refusing to open it" in line


def test_nmt_info_inflates_the_weights_only_up_to_a_budget(model_copy) -> None:
    from nmtcli.errors import ModelError
    from nmtcli.model_files import read_weights

    rewrite_keras(model_copy / "model.keras", weights=bytes(64 * 2**20))
    with pytest.raises(ModelError, match="inflates"):
        read_weights(model_copy / "model.keras", max_bytes=2**20)
    assert_error(nmt("info", model_copy), "model.weights.h5 inflates")


def test_a_model_file_with_extra_members_is_refused(model_copy, output) -> None:
    rewrite_keras(model_copy / "model.keras", extra={"assets/huge.bin": b"x" * 100})
    line = failed_translate(model_copy, output, "red cat.")
    assert "holds assets/huge.bin; not a model nmt saved" in line


# 58: blank source lines in evaluation


@pytest.mark.parametrize(("blank", "batch"), [(64, "64"), (1, "1")])
def test_evaluate_with_a_batch_of_blank_source_lines(tmp_path, model_copy, blank, batch) -> None:
    source = write(tmp_path / "s.txt", "\n" * blank + "red cat.\n")
    reference = write(tmp_path / "r.txt", "gato.\n" * blank + "gato rojo.\n")
    result = nmt(
        "evaluate", "--model", model_copy, "--source", source, "--reference", reference, "-b", batch, "--json"
    )
    assert_ok(result)
    scores = json.loads(result.stdout)
    assert scores["sentences"] == blank + 1 and scores["perplexity"] > 0


# 59: an endless line


def test_translate_an_endless_line_ends_in_one_line(tmp_path, tiny_run) -> None:
    # 9 MiB without a line end stands in for /dev/zero, which older code read until memory ran out.
    endless = write(tmp_path / "endless.txt", b"red " * (9 * 2**18))
    line = assert_error(nmt("translate", "--model", tiny_run, "-i", endless))
    assert line == (
        f"nmt: error: {endless}:1: a line longer than 8 MiB; is this a text file with one sentence per line?"
    )


def test_prepare_from_dev_zero_ends_in_one_line(tmp_path) -> None:
    done = run_nmt_process(
        "prepare", "/dev/zero", "--format", "tsv", "-o", tmp_path / "data", memory_limit=2 * 10**9
    )
    assert done.returncode == 1
    expected = "nmt: error: /dev/zero: binary data (mostly NUL bytes), not a text corpus\n"
    assert done.stderr.decode() == expected
    assert list(tmp_path.iterdir()) == []


def test_a_corpus_line_without_end_is_bounded(tmp_path, workspace) -> None:
    corpus = write(tmp_path / "long.tsv", b"a\t" + b"b" * (9 * 2**20))
    line = failed_prepare(workspace, corpus)
    assert line.startswith(f"nmt: error: {corpus}:1: a line longer than 8 MiB")


# 60: what the file is, said plainly


def test_compressed_and_spreadsheet_corpora_are_named(tmp_path, workspace, tiny_corpus) -> None:
    import gzip
    import zipfile

    packed = tmp_path / "spa.txt.gz"
    packed.write_bytes(gzip.compress(tiny_corpus.read_bytes()))
    line = failed_prepare(workspace, packed)
    assert line == f"nmt: error: {packed}: compressed with gzip: decompress it first (gunzip {packed})"
    sheet = tmp_path / "pairs.xlsx"
    with zipfile.ZipFile(sheet, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/workbook.xml", "<workbook/>")
    line = failed_prepare(workspace, sheet, "--format", "csv")
    assert line == f"nmt: error: {sheet}: a spreadsheet (xlsx/ods), not a text corpus; save it as CSV first"


def test_a_symlink_loop_and_a_workspace_that_is_a_file(tmp_path, workspace, tiny_corpus) -> None:
    loop = tmp_path / "loop.tsv"
    loop.symlink_to(loop)
    assert failed_prepare(workspace, loop) == f"nmt: error: {loop}: symlink loop; point the link at a file"
    not_a_folder = write(tmp_path / "ws-file", "")
    line = assert_error(nmt("prepare", tiny_corpus, "-w", not_a_folder))
    assert line == f"nmt: error: {not_a_folder}: is a file, not a folder; give a folder path"


def test_messages_name_the_users_path_not_a_temporary_one(tmp_path, tiny_corpus) -> None:
    result = nmt("prepare", "-", "-o", tmp_path / "data", "--format", "tsv", input=b"caf\xe9.\tx\n")
    line = assert_error(result)
    assert line.startswith("nmt: error: <stdin>:1: not valid utf-8")
    assert ".tmp" not in line and "corpus." not in line


# 61: options that were accepted without a word


def test_valid_size_nan_is_refused(workspace, tiny_corpus) -> None:
    line = failed_prepare(workspace, tiny_corpus, "--valid-size", "nan")
    assert line == "nmt: error: --valid-size must be a fraction below 1 or a whole count; got nan"


def test_a_second_file_with_csv_or_the_same_file_twice_is_refused(tmp_path, workspace, tiny_corpus) -> None:
    other = write(tmp_path / "other.txt", "x\n")
    line = failed_prepare(workspace, tiny_corpus, other, "--format", "csv")
    assert "--format csv reads one file; a second file is only for aligned" in line
    line = failed_prepare(workspace, tiny_corpus, tiny_corpus)
    assert line.startswith(f"nmt: error: {tiny_corpus}: the same file as the source")


def test_resume_with_other_settings_says_they_are_ignored(tmp_path, tiny_data) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(tiny_data, ws / "data")
    result = nmt("train", "-w", ws, "--resume", "--arch", "gru-attention", "--units", "8", "--epochs", "3")
    lines = result.stderr.splitlines()
    assert lines[0] == (
        "nmt: warning: --resume continues the run with the settings it was started with; "
        "--arch, --units, --epochs ignored"
    )
    assert result.exit_code == 1 and lines[-1].startswith("nmt: error: no interrupted run to resume")


# 62: temporaries of a killed run are removed by the next run


def test_stale_temporaries_of_a_killed_prepare_are_removed(workspace, tiny_corpus) -> None:
    old = 1_000_000_000  # 2001: long before this process
    stale = workspace / ".data.tmp-abc12345"
    stale.mkdir()
    write(stale / "kept.tsv", "half\n")
    os.utime(stale / "kept.tsv", (old, old))
    os.utime(stale, (old, old))
    fresh = workspace / ".data.tmp-zzz99999"  # a concurrent run's: recent, kept
    fresh.mkdir()
    foreign = workspace / ".data.tmp-not-ours-at-all"
    foreign.mkdir()
    os.utime(foreign, (old, old))
    assert_ok(nmt("prepare", tiny_corpus, "-w", workspace, *KEEP_ALL))
    assert not stale.exists()
    assert fresh.exists() and foreign.exists()


def test_stale_temporaries_of_a_killed_write_are_removed(tmp_path, tiny_run) -> None:
    out = tmp_path / "out.txt"
    stale = write(tmp_path / ".out.txt.a1b2c3d4.tmp", "half")
    os.utime(stale, (1_000_000_000, 1_000_000_000))
    other = write(tmp_path / ".out.txt.a1b2c3d4.tmp.bak", "not ours")
    os.utime(other, (1_000_000_000, 1_000_000_000))
    assert_ok(nmt("translate", "--model", tiny_run, "red cat.", "-o", out))
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.txt.a1b2c3d4.tmp.bak", "out.txt"]
