"""Atomic writes: a file is either the old one or the complete new one, never half of either."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from nmtcli.files import (
    atomic_open,
    atomic_path,
    atomic_write_json,
    atomic_write_text,
    make_private_dir_public,
    read_json,
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
