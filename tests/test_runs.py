"""`nmt runs`, and interrupted runs named where they matter: evaluate/translate, train, prepare.

Run folders here are written by hand (config, state, history: what `nmt train` writes before and
after each epoch), so no test trains a model.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nmtcli.config import ModelConfig, TrainConfig
from nmtcli.errors import ModelError
from nmtcli.history import History
from nmtcli.run_folder import MODEL_FORMAT_VERSION, RunFolder
from nmtcli.workspace import Workspace, resolve_model
from test_cli import assert_error, assert_ok, nmt, nmt_without_tensorflow


def history_rows(val_entropies: list[float], val_bleu: list[float] | None = None) -> list[dict]:
    rows = []
    for epoch, entropy in enumerate(val_entropies, 1):
        rows.append(
            {
                "epoch": epoch,
                "cross_entropy": entropy + 0.5,
                "val_cross_entropy": entropy,
                "val_bleu": val_bleu[epoch - 1] if val_bleu else None,
            }
        )
    return rows


def fake_run(
    ws: Workspace,
    name: str,
    state: str | None,
    rows: list[dict] = (),
    data: Path | None = None,
    **training,
) -> RunFolder:
    """A run folder as `nmt train` leaves it: ``state`` running (interrupted), complete, or None."""
    path = ws.runs_dir / name
    path.mkdir(parents=True)
    run = RunFolder(path)
    settings = RunFolder.settings_of(
        ModelConfig(arch="lstm", level="char"), TrainConfig(**training), data or ws.data_dir
    )
    (path / "config.json").write_text(json.dumps({"format_version": MODEL_FORMAT_VERSION, **settings}))
    if rows:
        run.write_history(History(list(rows)))
        (path / "model.keras").write_bytes(b"not really a model")
    if state == "running":
        run.mark_running()
    elif state == "complete":
        run.mark_complete()
    return run


@pytest.fixture
def ws(tmp_path) -> Workspace:
    return Workspace(tmp_path / "ws")


# --------------------------------------------------------------------------------------------------
# The summaries and the table


def test_summaries_show_each_run_with_its_best_epoch_status_and_size(ws) -> None:
    fake_run(ws, "20260101-000000-a", "complete", history_rows([2.0, 1.5, 1.7]), epochs=3)
    fake_run(ws, "20260102-000000-b", "running", history_rows([2.5]), epochs=10)
    bleu = fake_run(
        ws,
        "20260103-000000-c",
        "complete",
        history_rows([1.0, 1.2, 1.4], val_bleu=[5.0, 9.0, 7.0]),
        epochs=3,
        early_stopping_metric="bleu",
    )
    complete, interrupted, by_bleu = ws.run_summaries()

    assert (complete.status, complete.arch, complete.level) == ("complete", "lstm", "char")
    assert (complete.epochs_done, complete.epochs_planned, complete.best_epoch) == (3, 3, 2)
    assert complete.monitor == "val_cross_entropy" and complete.best_score == 1.5
    assert complete.perplexity == pytest.approx(2.718281828**1.5)
    assert complete.size_bytes > 0 and complete.problem is None

    assert (interrupted.status, interrupted.epochs_done, interrupted.epochs_planned) == ("interrupted", 1, 10)
    # Stopping on BLEU: the best epoch is History's, the highest BLEU, not the lowest cross-entropy.
    assert by_bleu.best_epoch == bleu.history().best_epoch() == 2
    assert (by_bleu.monitor, by_bleu.best_score) == ("val_bleu", 9.0)


@pytest.mark.parametrize(
    ("damage", "fragment"),
    [
        (lambda run: run.file("config.json").write_text("{not json"), "config.json"),
        (lambda run: run.file("config.json").write_text('{"format_version": 7}'), "format 7"),
        (lambda run: run.file("history.csv").write_text("epoch,cross_entropy\n1,abc\n"), "damaged"),
    ],
)
def test_a_damaged_run_is_a_row_with_the_reason(ws, damage, fragment) -> None:
    run = fake_run(ws, "20260101-000000-a", "complete", history_rows([2.0]))
    damage(run)
    (summary,) = ws.run_summaries()
    assert summary.status == "damaged" and fragment in summary.problem
    assert "\n" not in summary.problem

    result = nmt("runs", "-w", ws.root)
    assert_ok(result)
    assert "damaged" in result.stdout and "Traceback" not in result.output


def test_nmt_runs_table_and_json(ws) -> None:
    fake_run(ws, "20260101-000000-a", "complete", history_rows([2.0, 1.5]), epochs=2)
    fake_run(ws, "20260102-000000-b", "running", epochs=10)
    result = nmt("runs", "-w", ws.root)
    assert_ok(result)
    lines = result.stdout.splitlines()
    first = next(i for i, line in enumerate(lines) if "20260101-000000-a" in line)
    second = next(i for i, line in enumerate(lines) if "20260102-000000-b" in line)
    assert first < second  # newest last
    assert "2/2" in lines[first] and "complete" in lines[first] and "1.5000" in lines[first]
    assert "0/10" in lines[second] and "interrupted" in lines[second]

    result = nmt("runs", "-w", ws.root, "--json")
    assert_ok(result)
    runs = json.loads(result.stdout)["runs"]
    assert [run["name"] for run in runs] == ["20260101-000000-a", "20260102-000000-b"]
    assert runs[0]["best_epoch"] == 2 and runs[1]["status"] == "interrupted"


def test_nmt_runs_on_an_empty_workspace(ws) -> None:
    result = nmt("runs", "-w", ws.root)
    assert_ok(result)
    assert "no runs" in result.stdout


def test_nmt_runs_does_not_import_tensorflow(tmp_path, ws) -> None:
    fake_run(ws, "20260101-000000-a", "complete", history_rows([2.0]))
    result = nmt_without_tensorflow(tmp_path, "runs", "-w", ws.root, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["runs"][0]["status"] == "complete"


# --------------------------------------------------------------------------------------------------
# evaluate and translate name interrupted runs


def test_no_finished_run_names_the_interrupted_one(ws) -> None:
    fake_run(ws, "20260102-000000-b", "running", epochs=10)
    with pytest.raises(ModelError, match="20260102-000000-b is interrupted before its first epoch"):
        ws.latest_run()
    assert_error(nmt("evaluate", "-w", ws.root), "20260102-000000-b", "nmt train --resume")


def test_an_interrupted_run_with_epochs_says_how_far_it_got(ws) -> None:
    fake_run(ws, "20260102-000000-b", "running", history_rows([2.0, 1.9, 1.8]), epochs=10)
    line = assert_error(nmt("translate", "-w", ws.root, "Go."), "interrupted at epoch 3 of 10")
    assert "--model" in line and "--resume" in line


def test_an_older_finished_run_is_used_with_a_note_about_the_newer_interrupted_one(ws, tmp_path) -> None:
    fake_run(ws, "20260101-000000-a", "complete", history_rows([2.0]), epochs=1)
    fake_run(ws, "20260102-000000-b", "running", history_rows([2.0, 1.9]), epochs=20)
    run_dir, note = resolve_model(None, ws)
    assert run_dir.name == "20260101-000000-a"
    assert note == (
        "note: using 20260101-000000-a (complete); the newer run 20260102-000000-b is interrupted at "
        "epoch 2 of 20; nmt train --resume continues it"
    )
    # The note comes before TensorFlow loads (here it cannot), on stderr.
    result = nmt_without_tensorflow(tmp_path, "translate", "-w", ws.root, "Go.")
    assert "nmt: note: using 20260101-000000-a" in result.stderr
    assert result.stdout == ""


def test_no_note_without_a_newer_interrupted_run(ws) -> None:
    fake_run(ws, "20260101-000000-a", "running", epochs=1)
    fake_run(ws, "20260102-000000-b", "complete", history_rows([2.0]), epochs=1)
    assert resolve_model(None, ws) == (ws.runs_dir / "20260102-000000-b", None)
    assert resolve_model(ws.runs_dir / "20260101-000000-a", ws)[1] is None


# --------------------------------------------------------------------------------------------------
# train says why it did not resume; prepare warns before replacing an interrupted run's data


def test_why_not_resumed_names_the_run_and_the_settings_that_differ(ws) -> None:
    run = fake_run(ws, "20260102-000000-b", "running", epochs=10)
    saved = json.loads(run.file("config.json").read_text())
    same = {key: saved[key] for key in ("model", "training", "data")}
    assert ws.why_not_resumed(same) is None
    changed = {**same, "training": {**same["training"], "epochs": 20}}
    why = ws.why_not_resumed(changed)
    assert "20260102-000000-b" in why and "epochs 10 -> 20" in why and "--resume" in why
    assert "batch_size" not in why  # only what differs


def test_why_not_resumed_is_quiet_without_an_interrupted_run(ws) -> None:
    run = fake_run(ws, "20260101-000000-a", "complete", history_rows([2.0]), epochs=10)
    saved = json.loads(run.file("config.json").read_text())
    assert ws.why_not_resumed({**saved, "training": {**saved["training"], "epochs": 3}}) is None


def test_prepare_warns_before_replacing_the_data_of_an_interrupted_run(ws, tiny_corpus) -> None:
    fake_run(ws, "20260101-000000-a", "complete", history_rows([2.0]))
    fake_run(ws, "20260102-000000-b", "running", epochs=10)
    fake_run(ws, "20260103-000000-c", "running", epochs=10, data=ws.root / "other-data")
    result = nmt("prepare", tiny_corpus, "-w", ws.root, "--valid-size", "5", "--test-size", "5")
    assert_ok(result)
    (warning,) = [line for line in result.stderr.splitlines() if "warning" in line]
    assert "20260102-000000-b" in warning and "--resume" in warning
    assert "20260101-000000-a" not in warning and "20260103-000000-c" not in warning


def test_prepare_elsewhere_does_not_warn(ws, tiny_corpus, tmp_path) -> None:
    fake_run(ws, "20260102-000000-b", "running", epochs=10)
    result = nmt("prepare", tiny_corpus, "-w", ws.root, "-o", tmp_path / "data2", "--valid-size", "5")
    assert_ok(result)
    assert "warning" not in result.stderr


def test_train_says_why_it_starts_a_new_run(tmp_path, tiny_data) -> None:
    """Training with other epochs than an interrupted run's starts a new run, and says so."""
    from conftest import TINY_MODEL, TINY_TRAINING
    from nmtcli.training import train

    ws = Workspace(tmp_path / "ws")
    model, training = ModelConfig(**TINY_MODEL), TrainConfig(**{**TINY_TRAINING, "epochs": 1})
    first = train(model, training, data_dir=tiny_data, workspace=ws, log=lambda message: None)
    RunFolder(first.run_dir).mark_running()  # as if it had been interrupted
    messages: list[str] = []
    second = train(
        model,
        TrainConfig(**{**TINY_TRAINING, "epochs": 2}),
        data_dir=tiny_data,
        workspace=ws,
        log=messages.append,
    )
    assert second.run_dir != first.run_dir
    (why,) = [message for message in messages if "other settings" in message]
    assert first.run_dir.name in why and "epochs 1 -> 2" in why and "--resume" in why
