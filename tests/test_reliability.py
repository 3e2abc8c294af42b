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
from pathlib import Path

import pytest

import nmtcli.files
import nmtcli.run_folder
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
