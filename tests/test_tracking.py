"""Experiment tracking: `nmt train --mlflow/--tensorboard` and `nmt evaluate --mlflow`, read back
through MLflow's own client and TensorFlow's event-file reader."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import TINY_MODEL, TINY_TRAINING
from nmtcli.cli import app

EPOCHS = 3
TRAIN = ["--arch", "lstm", "--level", "word", "--embedding-dim", "8", "--units", "16"]
TRAIN += ["--epochs", str(EPOCHS)]
TRAIN += ["--batch-size", "16", "--learning-rate", "0.01", "--patience", "0"]


def nmt(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def assert_ok(result) -> None:
    assert result.exit_code == 0, f"exit {result.exit_code}\n{result.output}\n{result.exception!r}"


def assert_error(result, *fragments: str) -> str:
    """Exit code 1: one `nmt: error:` line on stderr, nothing on stdout, no traceback."""
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 1, result.output
    [line] = result.stderr.splitlines()
    assert line.startswith("nmt: error: ")
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    assert result.stdout == ""
    return line


@pytest.fixture(scope="module")
def tracked(tmp_path_factory, tiny_data) -> dict:
    """`nmt train --mlflow --experiment tiny-exp --tensorboard` once, in a fresh workspace."""
    pytest.importorskip("mlflow", reason="needs the mlflow extra: pip install 'nmtcli[mlflow]'")
    workspace = tmp_path_factory.mktemp("tracked") / "ws"
    tracking = ["--mlflow", "--experiment", "tiny-exp", "--tensorboard"]
    result = nmt("train", "-w", workspace, "--data", tiny_data, *TRAIN, *tracking)
    assert_ok(result)
    [run_dir] = [path for path in (workspace / "runs").iterdir() if path.is_dir()]
    record = json.loads((run_dir / "mlflow.json").read_text())
    return {"workspace": workspace, "run_dir": run_dir, "record": record, "result": result}


@pytest.fixture(scope="module")
def client(tracked):
    import mlflow

    return mlflow.MlflowClient(tracking_uri=tracked["record"]["tracking_uri"])


def test_the_default_store_is_a_sqlite_file_in_the_workspace(tracked) -> None:
    workspace = tracked["workspace"].resolve()
    assert tracked["record"]["tracking_uri"] == f"sqlite:///{workspace / 'mlflow.db'}"
    assert (workspace / "mlflow.db").is_file()
    assert (workspace / "mlartifacts").is_dir(), "artifacts beside the store, not in ./mlruns"


def test_train_keeps_stdout_for_the_result(tracked) -> None:
    result = tracked["result"]
    assert result.stdout.startswith("model saved to ") and len(result.stdout.splitlines()) == 1
    assert "mlflow" not in result.stderr.lower(), "no MLflow chatter on stderr either"


def test_the_run_is_in_the_named_experiment_with_its_settings_as_parameters(tracked, client) -> None:
    run = client.get_run(tracked["record"]["run_id"])
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.name == "tiny-exp"
    assert run.info.status == "FINISHED"
    assert run.info.run_name == tracked["run_dir"].name
    params = run.data.params
    assert params["arch"] == "lstm" and params["level"] == "word"
    assert params["units"] == "16" and params["embedding_dim"] == "8"
    assert params["epochs"] == str(EPOCHS) and params["batch_size"] == "16"
    assert params["learning_rate"] == "0.01" and params["optimizer"] == "adam"
    assert int(params["parameters"]) > 0


def test_metrics_have_one_entry_per_epoch_matching_the_history(tracked, client) -> None:
    run_id = tracked["record"]["run_id"]
    history = json.loads((tracked["run_dir"] / "history.json").read_text())
    for key in (
        "cross_entropy",
        "val_cross_entropy",
        "perplexity",
        "val_perplexity",
        "learning_rate",
        "seconds",
    ):
        logged = client.get_metric_history(run_id, key)
        assert sorted(m.step for m in logged) == list(range(1, EPOCHS + 1)), key
    # One name per figure: Keras' "loss" (the objective) is logged as "objective", never as "loss".
    assert client.get_metric_history(run_id, "loss") == []
    val_loss = {m.step: m.value for m in client.get_metric_history(run_id, "val_cross_entropy")}
    for row in history:
        assert val_loss[row["epoch"]] == pytest.approx(row["val_cross_entropy"], rel=1e-5)
    metrics = client.get_run(run_id).data.metrics
    best = min(history, key=lambda row: (row["val_cross_entropy"], row["epoch"]))
    assert metrics["best_epoch"] == best["epoch"]
    assert metrics["best_val_cross_entropy"] == pytest.approx(best["val_cross_entropy"], rel=1e-5)
    assert metrics["best_val_perplexity"] == pytest.approx(best["val_perplexity"], rel=1e-5)


def test_the_run_folder_is_logged_as_artifacts(tracked, client) -> None:
    run_id = tracked["record"]["run_id"]
    top = {artifact.path for artifact in client.list_artifacts(run_id)}
    assert {"model.keras", "config.json", "history.csv", "checksums.json", "vocab", "tensorboard"} <= top
    assert not top & {"backup", "state.json", ".lock", "mlflow.json"}
    local = Path(client.download_artifacts(run_id, "config.json", str(tracked["run_dir"].parent.parent)))
    assert local.read_bytes() == (tracked["run_dir"] / "config.json").read_bytes()


def test_evaluate_mlflow_adds_its_scores_to_the_training_run(tracked, client) -> None:
    result = nmt("evaluate", "-w", tracked["workspace"], "--mlflow", "--json")
    assert_ok(result)
    scores = json.loads(result.stdout)
    run = client.get_run(tracked["record"]["run_id"])
    assert run.data.metrics["test_bleu"] == pytest.approx(scores["scores"]["bleu"])
    assert run.data.metrics["test_chrf"] == pytest.approx(scores["scores"]["chrf"])
    assert run.data.metrics["test_perplexity"] == pytest.approx(scores["perplexity"])
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "evaluation")}
    assert artifacts == {"evaluation/test.json"}
    assert len(client.search_runs([run.info.experiment_id])) == 1, "no second run was made"


def tensorboard_scalars(folder: Path, tag: str) -> dict[int, float]:
    """``{step: value}`` of one scalar over all the event files of a folder (a step seen twice fails)."""
    import tensorflow as tf

    values: dict[int, float] = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if value.tag == tag:
                    assert event.step not in values, f"step {event.step} logged twice"
                    values[event.step] = float(tf.make_ndarray(value.tensor))
    return values


def test_tensorboard_event_files_hold_the_epoch_loss(tracked) -> None:
    history = json.loads((tracked["run_dir"] / "history.json").read_text())
    # TensorBoard's names are Keras': its epoch_loss is the training objective.
    for folder, key in (("train", "objective"), ("validation", "val_objective")):
        losses = tensorboard_scalars(tracked["run_dir"] / "tensorboard" / folder, "epoch_loss")
        assert sorted(losses) == list(range(EPOCHS)), folder
        for row in history:
            assert losses[row["epoch"] - 1] == pytest.approx(row[key], rel=1e-5)


# --------------------------------------------------------------------------------------------------
# A resumed training continues its MLflow run.


class Interrupt(Exception):
    pass


def test_a_resumed_training_continues_the_same_mlflow_run(tmp_path, tiny_data) -> None:
    mlflow = pytest.importorskip("mlflow")
    import keras

    from nmtcli.config import ModelConfig, TrainConfig
    from nmtcli.tracking import MlflowTracker, run_callbacks, tracking_uri
    from nmtcli.training import train
    from nmtcli.workspace import Workspace

    class InterruptAfterEpoch2(keras.callbacks.Callback):
        # Runs after the epoch is saved and before MLflow hears of it: the resume must fill that gap.
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise Interrupt

    workspace = Workspace(tmp_path / "ws")
    configs = (ModelConfig(**{**TINY_MODEL, "arch": "lstm"}), TrainConfig(**{**TINY_TRAINING, "epochs": 3}))

    def tracked_train(callbacks):
        tracker = MlflowTracker(tracking_uri(None, workspace), "resume-exp")
        tracker.connect()
        warnings: list[str] = []
        train(
            *configs,
            data_dir=tiny_data,
            workspace=workspace,
            callbacks=callbacks,
            run_callbacks=run_callbacks(tracker, True, warnings.append),
        )
        assert warnings == []

    with pytest.raises(Interrupt):
        tracked_train([InterruptAfterEpoch2()])
    [run_dir] = workspace.runs()
    run_id = json.loads((run_dir / "mlflow.json").read_text())["run_id"]
    client = mlflow.MlflowClient(tracking_uri(None, workspace))
    assert client.get_run(run_id).info.status == "RUNNING"
    assert [m.step for m in client.get_metric_history(run_id, "val_cross_entropy")] == [1]

    tracked_train([])
    assert workspace.runs() == [run_dir]
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert len(client.search_runs([run.info.experiment_id])) == 1
    history = json.loads((run_dir / "history.json").read_text())
    logged = client.get_metric_history(run_id, "val_cross_entropy")
    assert sorted(m.step for m in logged) == [1, 2, 3], "every epoch exactly once"
    assert {m.step: m.value for m in logged}[2] == pytest.approx(history[1]["val_cross_entropy"], rel=1e-5)
    # TensorBoard appends a new event file (step = epoch - 1), repeating no epoch. Unlike MLflow it is
    # not filled in: the epoch interrupted between its backup and its logs (step 1) is missing there.
    losses = tensorboard_scalars(run_dir / "tensorboard" / "validation", "epoch_loss")
    assert sorted(losses) == [0, 2]


# --------------------------------------------------------------------------------------------------
# Errors: one line, before any training.


def test_mlflow_not_installed_says_how_to_install_it(tmp_path, tiny_data, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)  # `import mlflow` now fails as if not installed
    workspace = tmp_path / "ws"
    line = assert_error(nmt("train", "-w", workspace, "--data", tiny_data, *TRAIN, "--mlflow"))
    assert "pip install 'nmtcli[mlflow]'" in line
    assert not (workspace / "runs").exists(), "no training started"


def test_tensorboard_not_installed_says_how_to_install_it(tmp_path, tiny_data, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    workspace = tmp_path / "ws"
    line = assert_error(nmt("train", "-w", workspace, "--data", tiny_data, *TRAIN, "--tensorboard"))
    assert "pip install 'nmtcli[tensorboard]'" in line
    assert not (workspace / "runs").exists()


def test_an_unreachable_tracking_server_is_one_line_before_training(tmp_path, tiny_data, monkeypatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    workspace = tmp_path / "ws"
    # Port 9 (discard) on the loopback address: nothing listens there.
    result = nmt(
        "train",
        "-w",
        workspace,
        "--data",
        tiny_data,
        *TRAIN,
        "--mlflow",
        "--mlflow-uri",
        "http://127.0.0.1:9",
    )
    assert_error(result, "MLflow store http://127.0.0.1:9")
    assert not (workspace / "runs").exists()


@pytest.mark.parametrize("option", [["--experiment", "x"], ["--mlflow-uri", "sqlite:///x.db"]])
def test_mlflow_options_need_mlflow(tmp_path, tiny_data, option) -> None:
    assert_error(nmt("train", "-w", tmp_path, "--data", tiny_data, *option), option[0], "needs --mlflow")


def test_evaluate_mlflow_on_a_run_trained_without_it(tmp_path, tracked) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(tracked["run_dir"], run_dir)
    (run_dir / "mlflow.json").unlink()
    assert_error(nmt("evaluate", "-m", run_dir, "--mlflow"), "no MLflow run", "nmt train --mlflow")


def test_help_imports_neither_mlflow_nor_tensorflow(tmp_path) -> None:
    code = (
        "import sys; from nmtcli.cli import app; from typer.testing import CliRunner; "
        "assert CliRunner().invoke(app, ['train', '--help']).exit_code == 0; "
        "assert not {'mlflow', 'tensorflow', 'tensorboard'} & set(sys.modules), 'heavy import'"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
