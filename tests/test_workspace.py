"""The workspace layout, run folders, and resolving which model a command means."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from nmtcli import workspace as workspace_module
from nmtcli.errors import ModelError
from nmtcli.run_folder import RunFolder
from nmtcli.workspace import DEFAULT_WORKSPACE, Workspace, resolve_model_dir


def make_run(ws: Workspace, name: str, status: str = "complete", model: bool = True) -> Path:
    """A run folder as `nmt train` leaves it: config, state and (when finished) the model file."""
    run = ws.runs_dir / name
    run.mkdir(parents=True)
    (run / "config.json").write_text("{}", encoding="utf-8")
    (run / "state.json").write_text(json.dumps({"status": status}), encoding="utf-8")
    if model:
        (run / "model.keras").write_bytes(b"not really a model")
    return run


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path / "ws")


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every call to now() in the workspace module returns the same second."""

    class FrozenDatetime(datetime):
        @classmethod
        def now(cls, tz=None):
            return cls(2026, 11, 21, 10, 15, 0, tzinfo=tz)

    monkeypatch.setattr(workspace_module, "datetime", FrozenDatetime)


# --------------------------------------------------------------------------------------------------
# Root and layout


def test_root_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NMT_WORKSPACE", str(tmp_path / "from-env"))
    assert Workspace().root == tmp_path / "from-env"


def test_explicit_root_beats_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NMT_WORKSPACE", str(tmp_path / "from-env"))
    assert Workspace(tmp_path / "explicit").root == tmp_path / "explicit"


@pytest.mark.parametrize("value", [None, ""])
def test_default_root(monkeypatch: pytest.MonkeyPatch, value: str | None) -> None:
    if value is None:
        monkeypatch.delenv("NMT_WORKSPACE", raising=False)
    else:
        monkeypatch.setenv("NMT_WORKSPACE", value)
    assert Workspace().root == Path(DEFAULT_WORKSPACE)


def test_layout(ws: Workspace) -> None:
    assert ws.data_dir == ws.root / "data"
    assert ws.runs_dir == ws.root / "runs"
    assert not ws.root.exists()  # constructing a workspace creates nothing


# --------------------------------------------------------------------------------------------------
# Run folders


def test_new_run_dir_creates_a_labelled_folder(ws: Workspace, frozen_clock: None) -> None:
    run = ws.new_run_dir("gru-attention-word")
    assert run.is_dir()
    assert run.parent == ws.runs_dir
    assert run.name == "20261121-101500-gru-attention-word"


def test_new_run_dir_is_unique_within_one_second(ws: Workspace, frozen_clock: None) -> None:
    runs = [ws.new_run_dir("lstm-char") for _ in range(3)]
    assert len(set(runs)) == 3
    assert all(run.is_dir() for run in runs)
    assert [run.name for run in runs] == [
        "20261121-101500-lstm-char",
        "20261121-101500-lstm-char-2",
        "20261121-101500-lstm-char-3",
    ]


def test_new_run_dir_twice_with_the_real_clock(ws: Workspace) -> None:
    first, second = ws.new_run_dir("x"), ws.new_run_dir("x")
    assert first != second
    assert first.is_dir() and second.is_dir()


def test_runs_lists_only_folders_with_a_config(ws: Workspace) -> None:
    assert ws.runs() == []
    b = make_run(ws, "20260102-000000-b")
    a = make_run(ws, "20260101-000000-a")
    (ws.runs_dir / "20260103-000000-empty").mkdir()
    (ws.runs_dir / "LATEST").write_text(b.name, encoding="utf-8")
    assert ws.runs() == [a, b]


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ('{"status": "complete"}', "complete"),
        ('{"status": "running"}', "interrupted"),
        ("{}", "unknown"),
        ("[1]", "unknown"),
        ("{broken", "unknown"),
        (None, "unknown"),
    ],
)
def test_run_status(tmp_path: Path, state: str | None, expected: str) -> None:
    """An unfinished run whose lock nobody holds is interrupted (``nmt train --resume`` goes on)."""
    if state is not None:
        (tmp_path / "state.json").write_text(state, encoding="utf-8")
    assert RunFolder(tmp_path).status() == expected
    assert not (tmp_path / ".lock").exists()  # looking never creates files


# --------------------------------------------------------------------------------------------------
# latest_run


def test_latest_run_without_runs(ws: Workspace) -> None:
    with pytest.raises(ModelError, match="nmt train"):
        ws.latest_run()


def test_latest_run_ignores_unfinished_runs(ws: Workspace) -> None:
    make_run(ws, "20260101-000000-a", status="running", model=False)
    with pytest.raises(ModelError, match="no finished run .* 20260101-000000-a did not finish"):
        ws.latest_run()


def test_latest_run_follows_the_pointer(ws: Workspace) -> None:
    older = make_run(ws, "20260101-000000-a")
    make_run(ws, "20260102-000000-b")
    ws.set_latest(older)
    assert (ws.runs_dir / "LATEST").read_text(encoding="utf-8") == older.name + "\n"
    assert ws.latest_run() == older


def test_latest_run_falls_back_to_newest_complete_run(ws: Workspace) -> None:
    make_run(ws, "20260101-000000-a")
    newest_complete = make_run(ws, "20260102-000000-b")
    make_run(ws, "20260103-000000-c", status="running", model=False)
    assert ws.latest_run() == newest_complete
    # A pointer to a run that is gone (or never finished) is not trusted.
    (ws.runs_dir / "LATEST").write_text("20260109-000000-deleted\n", encoding="utf-8")
    assert ws.latest_run() == newest_complete
    (ws.runs_dir / "LATEST").write_text("20260103-000000-c\n", encoding="utf-8")
    assert ws.latest_run() == newest_complete


# --------------------------------------------------------------------------------------------------
# resolve_model_dir


@pytest.fixture
def trained(ws: Workspace) -> Path:
    make_run(ws, "20260101-000000-a")
    latest = make_run(ws, "20260102-000000-b")
    ws.set_latest(latest)
    return latest


def test_resolve_run_folder(ws: Workspace, trained: Path, tmp_path: Path) -> None:
    other = make_run(ws, "20260101-000000-a-2")
    assert resolve_model_dir(other, Workspace(tmp_path / "elsewhere")) == other
    assert resolve_model_dir(str(other), ws) == other


def test_resolve_workspace_folder(ws: Workspace, trained: Path, tmp_path: Path) -> None:
    assert resolve_model_dir(ws.root, Workspace(tmp_path / "elsewhere")) == trained


def test_resolve_runs_folder(ws: Workspace, trained: Path, tmp_path: Path) -> None:
    assert resolve_model_dir(ws.runs_dir, Workspace(tmp_path / "elsewhere")) == trained


def test_resolve_none_means_latest(ws: Workspace, trained: Path) -> None:
    assert resolve_model_dir(None, ws) == trained


def test_resolve_rejects_folder_without_config(ws: Workspace, tmp_path: Path) -> None:
    folder = tmp_path / "random"
    folder.mkdir()
    (folder / "model.keras").write_bytes(b"")
    with pytest.raises(ModelError, match="no config.json") as info:
        resolve_model_dir(folder, ws)
    assert str(folder) in str(info.value)


def test_resolve_rejects_missing_folder(ws: Workspace, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        resolve_model_dir(tmp_path / "nowhere", ws)


def test_resolve_empty_workspace(ws: Workspace) -> None:
    ws.runs_dir.mkdir(parents=True)
    with pytest.raises(ModelError, match="no trained model"):
        resolve_model_dir(ws.root, Workspace(ws.root / "unused"))
