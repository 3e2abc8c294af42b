"""History: one best-epoch rule and one perplexity, which every reader of a run agrees on.

The training's history, the progress lines, the curves (and their best-epoch star), MLflow and
`nmt info` must name the same best epoch and the same perplexity, also where the rules once differed:
with label smoothing (Keras' objective is not the cross-entropy) and with early stopping on BLEU.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nmtcli.cli import app
from nmtcli.config import ModelConfig, TrainConfig
from nmtcli.curves import read_history
from nmtcli.history import History, epoch_row, perplexity
from nmtcli.model_card import model_card
from nmtcli.run_folder import RunFolder


def nmt(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


# --------------------------------------------------------------------------------------------------
# The rules


def test_perplexity_is_the_exponential_of_the_cross_entropy() -> None:
    assert perplexity(math.log(20.0)) == pytest.approx(20.0)
    assert perplexity(None) is None and perplexity(float("nan")) is None
    assert perplexity(1e6) == pytest.approx(math.exp(700.0))  # capped, never an overflow


def test_the_objective_is_recorded_apart_from_the_cross_entropy() -> None:
    row = epoch_row(1, {"loss": 2.9883, "cross_entropy": 2.5, "val_loss": 3.1, "val_cross_entropy": 2.9})
    assert (row["objective"], row["val_objective"]) == (2.9883, 3.1)
    assert row["perplexity"] == pytest.approx(math.exp(2.5))
    assert row["val_perplexity"] == pytest.approx(math.exp(2.9))  # not exp(val objective)


# A history where the rules disagree: BLEU is best at epoch 1, validation cross-entropy at epoch 3,
# Keras' (label-smoothed) validation objective at epoch 2.
CRAFTED = [
    {"epoch": 1, "objective": 3.0, "cross_entropy": 2.8, "val_objective": 3.2, "val_cross_entropy": 2.6,
     "val_bleu": 9.0},
    {"epoch": 2, "objective": 2.6, "cross_entropy": 2.4, "val_objective": 2.9, "val_cross_entropy": 2.5,
     "val_bleu": 7.0},
    {"epoch": 3, "objective": 2.5, "cross_entropy": 2.1, "val_objective": 3.0, "val_cross_entropy": 2.4,
     "val_bleu": 8.0},
]  # fmt: skip


def crafted(metric: str) -> History:
    rows = [
        {
            **row,
            "perplexity": math.exp(row["cross_entropy"]),
            "val_perplexity": math.exp(row["val_cross_entropy"]),
        }
        for row in CRAFTED
    ]
    return History(rows, metric)


@pytest.mark.parametrize(
    ("metric", "monitor", "best"), [("bleu", "val_bleu", 1), ("loss", "val_cross_entropy", 3)]
)
def test_one_rule_picks_the_best_epoch_where_the_columns_disagree(metric, monitor, best) -> None:
    history = crafted(metric)
    assert history.monitor == monitor and history.best_epoch() == best
    assert history.perplexity() == pytest.approx(math.exp(CRAFTED[best - 1]["val_cross_entropy"]))
    # Without validation BLEU (none sampled), stopping "by BLEU" falls back to the cross-entropy.
    no_bleu = History([{k: v for k, v in row.items() if k != "val_bleu"} for row in history.rows], metric)
    assert no_bleu.best_epoch() == 3
    # Without validation at all: the training cross-entropy.
    train_only = History(
        [{"epoch": r["epoch"], "cross_entropy": r["cross_entropy"]} for r in CRAFTED], metric
    )
    assert train_only.monitor == "cross_entropy" and train_only.best_epoch() == 3


@pytest.fixture
def crafted_run(tmp_path) -> Path:
    """A run folder holding the crafted history, trained (as it says) with early stopping on BLEU."""
    run = RunFolder(tmp_path / "run")
    run.path.mkdir()
    run.write_config(ModelConfig(), TrainConfig(early_stopping_metric="bleu", bleu_sample=5), tmp_path)
    run.write_history(crafted("bleu"))
    run.mark_complete()
    return run.path


def test_curves_card_and_mlflow_follow_the_same_rule_on_a_crafted_history(crafted_run, tmp_path) -> None:
    expected_perplexity = math.exp(CRAFTED[0]["val_cross_entropy"])
    curves = read_history(crafted_run)
    assert curves.best_epoch == 1
    assert curves.best_marker() == ("cross_entropy", 1, pytest.approx(CRAFTED[0]["val_cross_entropy"]))
    card = model_card(crafted_run)
    assert card["history"]["best_epoch"] == 1 and card["history"]["monitor"] == "val_bleu"
    assert card["history"]["perplexity"] == pytest.approx(expected_perplexity)

    pytest.importorskip("mlflow", reason="needs the mlflow extra: pip install 'nmtcli[mlflow]'")
    from nmtcli.tracking import MlflowTracker

    tracker = MlflowTracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "crafted")
    tracker.start(crafted_run)
    tracker.finish(crafted_run)
    metrics = tracker.client.get_run(tracker.run_id).data.metrics
    assert metrics["best_epoch"] == 1  # the old rule (lowest val_loss) said 2
    assert metrics["best_val_perplexity"] == pytest.approx(expected_perplexity)
    assert metrics["best_val_bleu"] == 9.0


# --------------------------------------------------------------------------------------------------
# A real run with label smoothing and early stopping on BLEU


EPOCH_LINE = re.compile(r"^epoch (\d+)/\d+\s+(.*)$")
FIGURE = re.compile(r"(?<!\S)([a-z_]+) (-?\d+\.\d+)(?!\S)")  # "val_perplexity 8.80", not "5.7s"


def progress_lines(stderr: str) -> dict[int, dict[str, float]]:
    """The per-epoch lines on stderr: epoch -> {figure name: value}."""
    epochs: dict[int, dict[str, float]] = {}
    for line in stderr.splitlines():
        match = EPOCH_LINE.match(line.strip())
        if match:
            pairs = FIGURE.findall(match.group(2))  # then the epoch's time ("1.2s") and the run's estimate
            epochs[int(match.group(1))] = {name: float(value) for name, value in pairs}
    return epochs


def test_history_progress_curves_mlflow_and_info_name_the_same_best_epoch_and_perplexity(
    tmp_path, tiny_data
) -> None:
    pytest.importorskip("mlflow", reason="needs the mlflow extra: pip install 'nmtcli[mlflow]'")
    import mlflow

    workspace = tmp_path / "ws"
    result = nmt(
        "train", "-w", workspace, "--data", tiny_data, "--arch", "gru-attention", "--level", "word",
        "--embedding-dim", "8",
        "--units", "16", "--epochs", "2", "--batch-size", "16", "--learning-rate", "0.01", "--patience", "0",
        "--label-smoothing", "0.1", "--early-stopping-metric", "bleu", "--bleu-sample", "5",
        "--mlflow", "--experiment", "agree",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    [run_dir] = [path for path in (workspace / "runs").iterdir() if path.is_dir()]

    history = RunFolder(run_dir).history()
    best, shown = history.best_epoch(), history.perplexity()
    assert history.monitor == "val_bleu" and best in (1, 2)
    row = history.row(best)
    assert shown == pytest.approx(math.exp(row["val_cross_entropy"]))
    # Label smoothing makes Keras' objective differ from the cross-entropy users are shown.
    assert all(r["val_objective"] > r["val_cross_entropy"] for r in history.rows)

    # Progress: one line per epoch under the history's names, and the final line names the best epoch.
    lines = progress_lines(result.stderr)
    assert sorted(lines) == [1, 2]
    for epoch, figures in lines.items():
        assert "loss" not in figures and "val_loss" not in figures and "objective" not in figures
        logged = history.row(epoch)
        assert figures["val_cross_entropy"] == pytest.approx(logged["val_cross_entropy"], abs=5e-5)
        assert figures["val_perplexity"] == pytest.approx(logged["val_perplexity"], abs=5e-3)
        assert figures["val_perplexity"] == pytest.approx(math.exp(figures["val_cross_entropy"]), rel=1e-3)
        assert figures["learning_rate"] == pytest.approx(logged["learning_rate"], rel=5e-3)
    assert f"(best epoch {best}, " in result.stdout
    assert f"val_perplexity {shown:.2f}" in result.stdout

    # Curves: the star sits on the best epoch's validation cross-entropy, the curve drawn.
    curves = read_history(run_dir)
    assert curves.best_epoch == best
    assert curves.best_marker() == ("cross_entropy", best, pytest.approx(row["val_cross_entropy"]))
    assert "objective" not in curves.metrics()

    # MLflow: the same best epoch and perplexity, and per-epoch figures under the same names.
    record = json.loads((run_dir / "mlflow.json").read_text(encoding="utf-8"))
    client = mlflow.MlflowClient(record["tracking_uri"])
    metrics = client.get_run(record["run_id"]).data.metrics
    assert metrics["best_epoch"] == best
    assert metrics["best_val_perplexity"] == pytest.approx(shown, rel=1e-6)
    per_epoch = {m.step: m.value for m in client.get_metric_history(record["run_id"], "val_perplexity")}
    assert per_epoch[best] == pytest.approx(shown, rel=1e-6)

    # nmt info --json
    info = nmt("info", run_dir, "--json")
    assert info.exit_code == 0, info.output
    card = json.loads(info.stdout)
    assert card["history"]["best_epoch"] == best
    assert card["history"]["perplexity"] == pytest.approx(shown, rel=1e-9)
