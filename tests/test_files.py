"""Atomic writes: a file is either the old one or the complete new one, never half of either."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from nmtcli.errors import ModelError
from nmtcli.files import (
    atomic_open,
    atomic_path,
    atomic_write_json,
    atomic_write_text,
    file_digests,
    make_private_dir_public,
    read_json,
    read_listed_files,
    replacing_folder,
)


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_atomic_write_text_creates_and_replaces(tmp_path: Path) -> None:
    path = tmp_path / "note.txt"
    atomic_write_text(path, "first\n")
    assert path.read_text(encoding="utf-8") == "first\n"
    atomic_write_text(path, "second ¿Qué? 😀\n")
    assert path.read_text(encoding="utf-8") == "second ¿Qué? 😀\n"
    assert os.listdir(tmp_path) == ["note.txt"]


def test_atomic_write_text_creates_parent_folders(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "note.txt"
    atomic_write_text(str(path), "x")
    assert path.read_text(encoding="utf-8") == "x"


def test_atomic_open_writes_utf8_with_lf_newlines(tmp_path: Path) -> None:
    path = tmp_path / "lines.txt"
    with atomic_open(path) as handle:
        handle.write("é\nline\n")
    assert path.read_bytes() == "é\nline\n".encode()


def test_atomic_open_binary(tmp_path: Path) -> None:
    path = tmp_path / "blob.bin"
    with atomic_open(path, "wb") as handle:
        handle.write(b"\x00\xff\r\n")
    assert path.read_bytes() == b"\x00\xff\r\n"


def test_failure_midway_keeps_the_original(tmp_path: Path) -> None:
    path = tmp_path / "keep.txt"
    path.write_text("original\n", encoding="utf-8")
    with pytest.raises(RuntimeError, match="disk on fire"), atomic_open(path) as handle:
        handle.write("half of the new")
        handle.flush()
        raise RuntimeError("disk on fire")
    assert path.read_text(encoding="utf-8") == "original\n"
    assert os.listdir(tmp_path) == ["keep.txt"]


def test_failure_before_first_write_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "new.txt"
    with pytest.raises(KeyboardInterrupt), atomic_open(path):
        raise KeyboardInterrupt
    assert os.listdir(tmp_path) == []


def test_atomic_path_failure_keeps_the_original(tmp_path: Path) -> None:
    path = tmp_path / "model.keras"
    path.write_bytes(b"old model")
    with pytest.raises(ValueError), atomic_path(path, suffix=".keras") as tmp:
        assert tmp.parent == tmp_path
        assert tmp.name.endswith(".keras") and tmp != path
        tmp.write_bytes(b"partial")
        raise ValueError("save failed")
    assert path.read_bytes() == b"old model"
    assert os.listdir(tmp_path) == ["model.keras"]


def test_atomic_path_success(tmp_path: Path) -> None:
    path = tmp_path / "model.keras"
    with atomic_path(path, suffix=".keras") as tmp:
        tmp.write_bytes(b"new model")
        assert not path.exists()
    assert path.read_bytes() == b"new model"
    assert os.listdir(tmp_path) == ["model.keras"]


def test_created_files_get_normal_permissions(tmp_path: Path, umask_022: None) -> None:
    atomic_write_text(tmp_path / "a.txt", "x")
    atomic_write_json(tmp_path / "b.json", {})
    with atomic_path(tmp_path / "c.keras", suffix=".keras") as tmp:
        tmp.write_bytes(b"")
    for name in ("a.txt", "b.json", "c.keras"):
        assert mode(tmp_path / name) == 0o644, name  # mkstemp alone would give 0600


def test_permissions_follow_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert mode(tmp_path / "a.txt") == 0o640


def test_make_private_dir_public(tmp_path: Path, umask_022: None) -> None:
    folder = tmp_path / "private"
    folder.mkdir(mode=0o700)
    make_private_dir_public(folder)
    assert mode(folder) == 0o755


def test_json_round_trip_keeps_unicode_readable(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    data = {"text": "¿Qué? 😀", "n": [1, 2.5, None]}
    atomic_write_json(path, data)
    assert read_json(path) == data
    raw = path.read_text(encoding="utf-8")
    assert "¿Qué?" in raw and raw.endswith("\n")
    assert json.loads(raw) == data


# --------------------------------------------------------------------------------------------------
# Round two (issue 13): outputs that are not ours to replace; files that may be hostile

from nmtcli.errors import NmtError  # noqa: E402
from nmtcli.files import (  # noqa: E402
    WRITTEN_LIST,
    DictOf,
    Required,
    UnsafeFileError,
    check_replaceable,
    read_json_file,
    read_latest,
    remove_stale_temporaries,
    replace_dir,
    schema_problem,
)


def test_an_existing_files_mode_is_kept(tmp_path: Path, umask_022: None) -> None:
    path = tmp_path / "private.txt"
    path.write_text("secret", encoding="utf-8")
    os.chmod(path, 0o600)
    atomic_write_text(path, "new")
    assert mode(path) == 0o600 and path.read_text(encoding="utf-8") == "new"


def test_a_symlink_to_a_regular_file_keeps_the_link(tmp_path: Path) -> None:
    target = tmp_path / "real.txt"
    target.write_text("old", encoding="utf-8")
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    atomic_write_text(link, "new")
    assert link.is_symlink() and target.read_text(encoding="utf-8") == "new"
    assert sorted(os.listdir(tmp_path)) == ["link.txt", "real.txt"]


def test_a_fifo_is_written_to_not_replaced(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        atomic_write_text(fifo, "through the pipe\n")
        assert os.read(reader, 100) == b"through the pipe\n"
    finally:
        os.close(reader)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_check_output_refuses_inputs_and_model_or_data_folders(tmp_path: Path) -> None:
    from nmtcli.workspace import check_output

    source = tmp_path / "in.txt"
    source.write_text("x", encoding="utf-8")
    with pytest.raises(NmtError, match="is also the command's input"):
        check_output(source, [source])
    run = tmp_path / "run"
    run.mkdir()
    for name in ("config.json", "checksums.json"):
        (run / name).write_text("{}", encoding="utf-8")
    with pytest.raises(NmtError, match="lies inside the model folder"):
        check_output(run / "sub" / "new.txt")
    check_output(run / "curves.png", allowed=[run / "curves.png"])
    check_output(tmp_path / "elsewhere.txt", [source])
    check_output("/dev/null", ["/dev/null"])  # a device is written to, never replaced
    check_output("-", [source])


def test_replace_dir_replaces_only_what_it_wrote(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    first = tmp_path / "first"
    first.mkdir()
    (first / "a.txt").write_text("1", encoding="utf-8")
    replace_dir(first, folder)
    assert json.loads((folder / WRITTEN_LIST).read_text(encoding="utf-8")) == ["a.txt"]
    (folder / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(NmtError, match="holds notes.txt, which nmt did not write"):
        check_replaceable(folder, "a.txt", "an output")
    second = tmp_path / "second"
    second.mkdir()
    (second / "b.txt").write_text("2", encoding="utf-8")
    with pytest.raises(NmtError, match="notes.txt"):
        replace_dir(second, folder)
    assert (folder / "notes.txt").read_text(encoding="utf-8") == "mine"
    (folder / "notes.txt").unlink()
    replace_dir(second, folder)
    assert sorted(os.listdir(folder)) == [WRITTEN_LIST, "b.txt"]


def test_a_folder_written_before_the_list_is_judged_by_known_patterns(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    (folder / "vocab").mkdir(parents=True)
    for name in ("manifest.json", "train.tsv", "vocab/source.word.txt"):
        (folder / name).write_text("x", encoding="utf-8")
    check_replaceable(folder, "manifest.json", "data", known=["train.tsv", "vocab/*.txt"])
    (folder / "vocab" / "mine.md").write_text("x", encoding="utf-8")
    with pytest.raises(NmtError, match="vocab/mine.md"):
        check_replaceable(folder, "manifest.json", "data", known=["train.tsv", "vocab/*.txt"])


@pytest.mark.parametrize(
    ("value", "schema", "problem"),
    [
        ({"a": 1}, {"a": int}, None),
        ({"a": True}, {"a": int}, "a should be an integer, found true or false"),
        ({"a": 1}, {"a": float}, None),
        ([], {"a": int}, "the top level should be an object, found a list"),
        ({}, {"a": Required(int)}, "a is missing"),
        ({"a": {"b": "x"}}, {"a": {"b": int}}, "a.b should be an integer, found a string"),
        ({"m": ["x", 2]}, DictOf([str]), "m[1] should be a string, found an integer"),
        ({"a": None}, {"a": (str, None)}, None),
        ({"a": 3}, {"a": (str, None)}, "a should be a string or null, found an integer"),
    ],
)
def test_schema_problem(value, schema, problem) -> None:
    assert schema_problem(value, schema) == problem


def test_read_json_file_bounds_size_depth_type_and_shape(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text("[" * 200_000 + "]" * 200_000, encoding="utf-8")
    with pytest.raises(UnsafeFileError, match="nested too deeply"):
        read_json_file(path)
    path.write_text("[" * 70 + "]" * 70, encoding="utf-8")
    with pytest.raises(UnsafeFileError, match="nested too deeply"):
        read_json_file(path)
    path.write_text('{"a": "b"}', encoding="utf-8")
    with pytest.raises(UnsafeFileError, match="too large"):
        read_json_file(path, max_bytes=5)
    with pytest.raises(UnsafeFileError, match="unexpected content: a should be an integer"):
        read_json_file(path, {"a": int})
    assert read_json_file(tmp_path / "missing.json", default=[]) == []
    with pytest.raises(FileNotFoundError):
        read_json_file(tmp_path / "missing.json")
    zero = tmp_path / "zero.json"
    zero.symlink_to("/dev/zero")
    with pytest.raises(UnsafeFileError, match="not a regular file"):
        read_json_file(zero)
    loop = tmp_path / "loop.json"
    loop.symlink_to(loop)
    with pytest.raises(UnsafeFileError, match="symlink loop"):
        read_json_file(loop)
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    with pytest.raises(UnsafeFileError, match="not a regular file"):
        read_json_file(fifo)  # returns at once: a FIFO is never waited on
    outside = tmp_path / "outside.json"
    outside.write_text("{}", encoding="utf-8")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "in.json").symlink_to(outside)
    with pytest.raises(UnsafeFileError, match="points outside"):
        read_json_file(tmp_path / "run" / "in.json", inside=tmp_path / "run")
    assert isinstance(UnsafeFileError("x"), ValueError)  # callers catching a bad parse catch it


def test_read_latest_accepts_only_a_plain_name(tmp_path: Path) -> None:
    pointer = tmp_path / "LATEST"
    for value, expected in [
        ("run-1\n", "run-1"),
        ("/etc\n", None),
        ("../x\n", None),
        ("..", None),
        ("", None),
    ]:
        pointer.write_text(value, encoding="utf-8")
        assert read_latest(pointer) == expected
    pointer.unlink()
    os.mkfifo(pointer)
    assert read_latest(pointer) is None


def test_remove_stale_temporaries_only_removes_our_old_ones(tmp_path: Path) -> None:
    old = 1_000_000_000
    names = [
        ".out.txt.abcd1234.tmp",
        ".out.txt.abcd1234.keras",
        ".data.tmp-abcd1234",
        ".out.txt.x.tmp",
        "out.txt",
    ]
    for name in names:
        (tmp_path / name).write_text("x", encoding="utf-8")
        os.utime(tmp_path / name, (old, old))
    fresh = tmp_path / ".out.txt.zzzz9999.tmp"
    fresh.write_text("a concurrent writer's", encoding="utf-8")
    removed = remove_stale_temporaries(tmp_path, "out.txt")
    assert sorted(p.name for p in removed) == [".out.txt.abcd1234.keras", ".out.txt.abcd1234.tmp"]
    assert sorted(os.listdir(tmp_path)) == sorted(
        [".data.tmp-abcd1234", ".out.txt.x.tmp", "out.txt", fresh.name]
    )


def test_replacing_folder_changes_nothing_unless_the_block_succeeds(tmp_path: Path) -> None:
    folder = tmp_path / "copy"
    with replacing_folder(folder) as scratch:
        (scratch / "a.txt").write_text("first", encoding="utf-8")
    assert (folder / "a.txt").read_text(encoding="utf-8") == "first"
    with pytest.raises(RuntimeError), replacing_folder(folder) as scratch:
        (scratch / "a.txt").write_text("second", encoding="utf-8")
        raise RuntimeError("the writer failed")
    assert (folder / "a.txt").read_text(encoding="utf-8") == "first"
    with replacing_folder(folder, known=["a.txt"]) as scratch:
        (scratch / "b.txt").write_text("second", encoding="utf-8")
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == ["b.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["copy"]  # no temporary left beside it


def test_read_listed_files_checks_every_listed_file(tmp_path: Path) -> None:
    (tmp_path / "a.bin").write_bytes(b"weights")
    (tmp_path / "b.txt").write_text("vocabulary", encoding="utf-8")
    digests = file_digests(tmp_path, ["a.bin", "b.txt"])
    allowed = {"a.bin", "b.txt"}.__contains__
    contents = read_listed_files(tmp_path, "record.json", digests, allowed, 100, ModelError)
    assert contents == {"a.bin": b"weights", "b.txt": b"vocabulary"}

    def problem(listed: dict, limit: int = 100) -> str:
        with pytest.raises(ModelError) as caught:
            read_listed_files(tmp_path, "record.json", listed, allowed, limit, ModelError)
        return str(caught.value)

    assert "not one of its files" in problem({**digests, "../etc/passwd": "0" * 64})
    (tmp_path / "b.txt").write_text("edited by hand", encoding="utf-8")
    assert "changed or damaged" in problem(digests)
    assert "too large" in problem(digests, limit=3)
    (tmp_path / "b.txt").unlink()
    assert "missing" in problem({"b.txt": digests["b.txt"]})
