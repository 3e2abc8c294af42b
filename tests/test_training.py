"""train(): the run folder it writes, that the loss falls, the LATEST pointer, and resuming; the loss and
metric; RunCheckpoint's best epoch, learning-rate reduction, early stopping and time budget; validation
BLEU; tied output embeddings."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import replace
from pathlib import Path

import keras
import numpy as np
import pytest

from nmtcli import training
from nmtcli.config import ModelConfig, TrainConfig
from nmtcli.corpus import PreparedData
from nmtcli.errors import ConfigError, ModelError
from nmtcli.history import FIELDS as HISTORY_FIELDS
from nmtcli.history import epoch_row
from nmtcli.models import build_model
from nmtcli.run_folder import MODEL_FORMAT_VERSION, RunFolder
from nmtcli.training import (
    MIN_LEARNING_RATE,
    MaskedCrossEntropy,
    RecordHistory,
    ReduceLearningRateOnPlateau,
    SaveBestModel,
    StopAtTimeBudget,
    StopEarly,
    TokenCrossEntropy,
    bleu_sample,
    masked_loss,
    train,
)
from nmtcli.translator import Translator
from nmtcli.vectorizers import PAD_ID
from nmtcli.workspace import Workspace

ARCHS = ["lstm", "gru-attention"]

# For the runs trained here (the session's tiny runs come from conftest.py).
SMALL_MODEL = {"level": "word", "embedding_dim": 8, "units": 16, "dropout": 0.0}
SMALL_TRAINING = {"batch_size": 16, "learning_rate": 0.01, "patience": 0, "seed": 7}


def read_history(run_dir: Path) -> tuple[list[dict], list[dict]]:
    as_json = json.loads((run_dir / "history.json").read_text(encoding="utf-8"))
    with open(run_dir / "history.csv", encoding="utf-8", newline="") as handle:
        as_csv = list(csv.DictReader(handle))
    return as_json, as_csv


@pytest.mark.parametrize("arch", ARCHS)
def test_run_folder_is_complete_and_self_describing(tiny_run_factory, tiny_data, arch) -> None:
    run = tiny_run_factory(arch)
    for name in (
        "config.json",
        "model.keras",
        "vocab/source.txt",
        "vocab/target.txt",
        "data-manifest.json",
        "history.csv",
        "history.json",
        "state.json",
    ):
        assert (run / name).is_file(), name
    assert not (run / "backup").exists()
    assert json.loads((run / "state.json").read_text())["status"] == "complete"
    assert RunFolder(run).is_complete()

    config = json.loads((run / "config.json").read_text(encoding="utf-8"))
    assert config["format_version"] == MODEL_FORMAT_VERSION
    assert config["model"]["arch"] == arch
    assert config["model"]["level"] == "word"
    assert config["training"]["epochs"] == len(json.loads((run / "history.json").read_text()))
    assert Path(config["data"]) == tiny_data.resolve()
    # Vocabulary sizes were filled in from the data, and the copied vocabularies match them.
    for side in ("source", "target"):
        copied = (run / "vocab" / f"{side}.txt").read_bytes()
        assert copied == (tiny_data / "vocab" / f"{side}.word.txt").read_bytes()
        assert config["model"][f"{side}_vocab_size"] == len(copied.decode().splitlines())
    assert (run / "data-manifest.json").read_bytes() == (tiny_data / "manifest.json").read_bytes()

    model = RunFolder(run).load_model()
    assert model.get_config()["units"] == config["model"]["units"]


@pytest.mark.parametrize("arch", ARCHS)
def test_history_has_every_epoch_and_the_loss_falls(tiny_run_factory, arch) -> None:
    run = tiny_run_factory(arch)
    as_json, as_csv = read_history(run)
    epochs = json.loads((run / "config.json").read_text())["training"]["epochs"]
    assert epochs >= 3
    assert [row["epoch"] for row in as_json] == list(range(1, epochs + 1))
    assert [int(row["epoch"]) for row in as_csv] == list(range(1, epochs + 1))
    assert list(as_csv[0]) == list(HISTORY_FIELDS)
    for row_json, row_csv in zip(as_json, as_csv, strict=True):
        assert float(row_csv["objective"]) == pytest.approx(row_json["objective"])
        assert row_json["perplexity"] == pytest.approx(math.exp(row_json["cross_entropy"]), rel=1e-6)
        assert row_json["val_perplexity"] == pytest.approx(math.exp(row_json["val_cross_entropy"]), rel=1e-6)
        # Without label smoothing the objective is the cross-entropy: equal on validation, where the
        # weights do not move (up to batch-mean vs token-mean averaging). With it, the objective is
        # higher: smoothing adds the cross-entropy to a uniform distribution, larger than the target's.
        smoothing = json.loads((run / "config.json").read_text())["training"]["label_smoothing"]
        if smoothing:
            assert row_json["val_objective"] > row_json["val_cross_entropy"]
        else:
            assert row_json["val_cross_entropy"] == pytest.approx(row_json["val_objective"], rel=0.05)
        assert row_json["val_cross_entropy"] is not None  # the tiny data has a validation split
    losses = [row["cross_entropy"] for row in as_json]
    assert losses[-1] < losses[0], losses


def test_latest_points_at_the_finished_run(tiny_run_factory) -> None:
    run = tiny_run_factory("gru-attention")
    workspace = Workspace(run.parent.parent)
    assert (workspace.runs_dir / "LATEST").read_text(encoding="utf-8").strip() == run.name
    assert workspace.latest_run() == run


class InterruptAfterEpoch(keras.callbacks.Callback):
    """Simulates Ctrl-C at the end of epoch ``epoch`` (1-based)."""

    def __init__(self, epoch: int):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epoch:
            raise KeyboardInterrupt


def test_an_interrupted_run_resumes_in_the_same_folder(tmp_path, tiny_data) -> None:
    workspace = Workspace(tmp_path / "ws")
    model_config = ModelConfig(arch="lstm", **SMALL_MODEL)
    train_config = TrainConfig(epochs=4, **SMALL_TRAINING)

    with pytest.raises(KeyboardInterrupt):
        train(
            model_config,
            train_config,
            data_dir=tiny_data,
            workspace=workspace,
            callbacks=[InterruptAfterEpoch(2)],
        )
    (interrupted,) = workspace.runs()
    assert RunFolder(interrupted).status() == "interrupted"
    assert (interrupted / "backup").is_dir()
    assert [row["epoch"] for row in read_history(interrupted)[0]] == [1, 2]
    assert not (workspace.runs_dir / "LATEST").exists()

    seen_epochs: list[int] = []
    recorder = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs=None: seen_epochs.append(epoch + 1)
    )
    notices: list[str] = []
    result = train(
        model_config,
        train_config,
        data_dir=tiny_data,
        workspace=workspace,
        callbacks=[recorder],
        log=notices.append,
    )

    assert result.run_dir == interrupted
    assert workspace.runs() == [interrupted]
    assert result.resumed_from_epoch == 2
    assert seen_epochs == [3, 4]
    assert any("resuming" in notice and "epoch 3" in notice for notice in notices), notices
    as_json, as_csv = read_history(interrupted)
    assert [row["epoch"] for row in as_json] == [1, 2, 3, 4]
    assert [int(row["epoch"]) for row in as_csv] == [1, 2, 3, 4]
    assert [row["epoch"] for row in result.history] == [1, 2, 3, 4]
    assert RunFolder(interrupted).is_complete()
    assert not (interrupted / "backup").exists()
    assert workspace.latest_run() == interrupted
    RunFolder(interrupted).load_model()


def test_different_settings_start_a_new_run_instead_of_resuming(tmp_path, tiny_data) -> None:
    workspace = Workspace(tmp_path / "ws")
    model_config = ModelConfig(arch="lstm", **SMALL_MODEL)
    train_config = TrainConfig(epochs=2, **SMALL_TRAINING)
    with pytest.raises(KeyboardInterrupt):
        train(
            model_config,
            train_config,
            data_dir=tiny_data,
            workspace=workspace,
            callbacks=[InterruptAfterEpoch(1)],
        )
    result = train(
        model_config, replace(train_config, epochs=1), data_dir=tiny_data, workspace=workspace, resume=None
    )
    assert result.resumed_from_epoch == 0
    assert len(workspace.runs()) == 2
    assert result.run_dir != workspace.runs()[0]
    assert RunFolder(workspace.runs()[0]).is_unfinished()


def test_stopping_early_on_bleu_needs_a_translator_to_decode_with(tmp_path, tiny_data) -> None:
    """Training does not import the translator: the caller hands it one, or gets a ConfigError."""
    config = TrainConfig(epochs=1, early_stopping_metric="bleu", bleu_sample=3, **SMALL_TRAINING)
    with pytest.raises(ConfigError, match="translator_factory") as info:
        train(ModelConfig(arch="lstm", **SMALL_MODEL), config, data_dir=tiny_data, run_dir=tmp_path / "run")
    assert info.value.field == "early_stopping_metric"
    assert not (tmp_path / "run").exists()


def test_resume_true_without_an_interrupted_run_is_an_error(tmp_path, tiny_data) -> None:
    workspace = Workspace(tmp_path / "ws")
    with pytest.raises(ModelError, match="no interrupted run"):
        train(
            ModelConfig(arch="lstm", **SMALL_MODEL),
            TrainConfig(epochs=1, **SMALL_TRAINING),
            data_dir=tiny_data,
            workspace=workspace,
            resume=True,
        )
    assert workspace.runs() == []


def test_an_explicit_non_empty_output_folder_is_refused(tmp_path, tiny_data) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("precious", encoding="utf-8")
    with pytest.raises(ConfigError, match="not empty"):
        train(
            ModelConfig(arch="lstm", **SMALL_MODEL),
            TrainConfig(epochs=1, **SMALL_TRAINING),
            data_dir=tiny_data,
            workspace=Workspace(tmp_path / "ws"),
            run_dir=out,
        )
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    assert (out / "keep.txt").read_text(encoding="utf-8") == "precious"


class InterruptMidEpoch(keras.callbacks.Callback):
    """Simulates Ctrl-C after the first batch of epoch ``epoch`` (1-based), before it ends."""

    def __init__(self, epoch: int):
        super().__init__()
        self.epoch = epoch
        self.current = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch + 1

    def on_train_batch_end(self, batch, logs=None):
        if self.current == self.epoch:
            raise KeyboardInterrupt


def test_an_explicit_run_folder_interrupted_mid_epoch_resumes_there(tmp_path, tiny_data) -> None:
    workspace = Workspace(tmp_path / "ws")
    run = tmp_path / "my-run"
    model_config = ModelConfig(arch="lstm", **SMALL_MODEL)
    train_config = TrainConfig(epochs=4, **SMALL_TRAINING)

    with pytest.raises(KeyboardInterrupt):
        train(
            model_config,
            train_config,
            data_dir=tiny_data,
            workspace=workspace,
            run_dir=run,
            callbacks=[InterruptMidEpoch(3)],
        )
    assert RunFolder(run).is_unfinished()
    assert [row["epoch"] for row in read_history(run)[0]] == [1, 2]

    result = train(model_config, train_config, data_dir=tiny_data, workspace=workspace, run_dir=run)
    assert result.run_dir == run
    assert result.resumed_from_epoch == 2
    assert [row["epoch"] for row in read_history(run)[0]] == [1, 2, 3, 4]
    assert RunFolder(run).is_complete()
    assert not (run / "backup").exists()
    # A run folder outside the workspace's runs/ does not become its LATEST.
    assert not (workspace.runs_dir / "LATEST").exists()
    RunFolder(run).load_model()


def test_mixed_precision_trains_and_saves_a_float32_model(tmp_path, tiny_data) -> None:
    from nmtcli.translator import Translator

    result = train(
        ModelConfig(arch="gru-attention", **SMALL_MODEL),
        TrainConfig(epochs=2, mixed_precision=True, **SMALL_TRAINING),
        data_dir=tiny_data,
        run_dir=tmp_path / "run",
    )
    losses = [row["cross_entropy"] for row in result.history]
    assert all(math.isfinite(loss) for loss in losses) and losses[-1] < losses[0]
    assert keras.config.dtype_policy().name == "float32", "the global policy is restored"
    translator = Translator.load(result.run_dir)
    assert translator.model.dtype_policy.name == "float32"
    assert all(weight.dtype == "float32" for weight in translator.model.weights)
    assert len(translator.translate(["red cat.", "big dog runs."])) == 2


# --------------------------------------------------------------------------------------------------
# The loss and the cross-entropy metric

VOCAB = 9
# Three padded target rows: 3, 2 and 5 real tokens, so 10 real tokens in 15 positions.
TARGET_OUT = np.array([[5, 6, 3, 0, 0], [7, 3, 0, 0, 0], [4, 4, 8, 4, 3]], np.int32)


def random_logits(shape: tuple[int, ...], seed: int = 0, scale: float = 2.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(scale=scale, size=shape).astype("float32")


def token_losses_by_hand(targets: np.ndarray, logits: np.ndarray, eps: float) -> np.ndarray:
    """``[B, T]``: ``(1 - eps) * -log p(target) + eps * mean_v(-log p_v)`` per position, in float64."""
    logits = logits.astype(np.float64)
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    nll = -np.take_along_axis(log_probs, targets[..., None], -1)[..., 0]
    return (1 - eps) * nll + eps * -log_probs.mean(-1)


def mean_over_real_tokens(targets: np.ndarray, logits: np.ndarray, eps: float = 0.0) -> float:
    real = targets != PAD_ID
    return float(token_losses_by_hand(targets, logits, eps)[real].sum() / real.sum())


def loss_value(loss: keras.losses.Loss, targets: np.ndarray, logits: np.ndarray) -> float:
    return float(keras.ops.convert_to_numpy(loss(targets, logits)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_unsmoothed_loss_equals_keras_sparse_cross_entropy_ignoring_padding(seed) -> None:
    logits = random_logits((*TARGET_OUT.shape, VOCAB), seed)
    keras_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=PAD_ID)
    ours = loss_value(masked_loss(), TARGET_OUT, logits)
    assert ours == pytest.approx(loss_value(keras_loss, TARGET_OUT, logits), rel=1e-5)
    assert ours == pytest.approx(mean_over_real_tokens(TARGET_OUT, logits), rel=1e-5)


@pytest.mark.parametrize("eps", [0.1, 0.25, 0.9])
def test_label_smoothed_loss_is_the_smoothing_formula_over_real_tokens(eps) -> None:
    logits = random_logits((*TARGET_OUT.shape, VOCAB))
    value = loss_value(masked_loss(eps), TARGET_OUT, logits)
    assert value == pytest.approx(mean_over_real_tokens(TARGET_OUT, logits, eps), rel=1e-5)
    assert value != pytest.approx(mean_over_real_tokens(TARGET_OUT, logits), rel=1e-3)


@pytest.mark.parametrize("eps", [0.0, 0.2])
def test_padding_positions_do_not_change_the_loss(eps) -> None:
    rng = np.random.default_rng(3)
    logits = random_logits((*TARGET_OUT.shape, VOCAB))
    loss = masked_loss(eps)
    base = loss_value(loss, TARGET_OUT, logits)

    noisy = logits.copy()
    padded = TARGET_OUT == PAD_ID
    noisy[padded] = rng.normal(scale=50.0, size=noisy[padded].shape)
    assert loss_value(loss, TARGET_OUT, noisy) == pytest.approx(base, rel=1e-6)

    # More padded steps and an all-padding row: the same real tokens, so the same mean.
    wider = np.pad(TARGET_OUT, [(0, 1), (0, 4)])
    wider_logits = rng.normal(scale=50.0, size=(*wider.shape, VOCAB)).astype("float32")
    wider_logits[:3, :5] = logits
    assert loss_value(loss, wider, wider_logits) == pytest.approx(base, rel=1e-5)


def test_loss_get_config_round_trip_keeps_the_smoothing() -> None:
    loss = masked_loss(0.2)
    clone = MaskedCrossEntropy.from_config(loss.get_config())
    assert clone.label_smoothing == 0.2
    logits = random_logits((*TARGET_OUT.shape, VOCAB))
    assert loss_value(clone, TARGET_OUT, logits) == pytest.approx(loss_value(loss, TARGET_OUT, logits))


def test_token_cross_entropy_weights_each_batch_by_its_real_tokens() -> None:
    few = np.array([[5, 3, 0, 0, 0, 0]], np.int32)  # 2 real tokens, predicted badly
    many = np.array([[4, 5, 6, 7, 8, 3], [4, 4, 4, 3, 0, 0], [6, 6, 6, 6, 6, 3]], np.int32)  # 16
    few_logits = random_logits((*few.shape, VOCAB), seed=4, scale=6.0)
    many_logits = random_logits((*many.shape, VOCAB), seed=5, scale=0.3)
    sums = [
        (token_losses_by_hand(t, x, 0.0)[t != PAD_ID].sum(), (t != PAD_ID).sum())
        for t, x in ((few, few_logits), (many, many_logits))
    ]

    metric = TokenCrossEntropy()
    metric.update_state(few, few_logits)
    metric.update_state(many, many_logits)
    result = float(metric.result())
    token_weighted = sum(total for total, _ in sums) / sum(count for _, count in sums)
    mean_of_means = sum(total / count for total, count in sums) / 2
    assert abs(token_weighted - mean_of_means) > 0.1  # the two averages tell apart here
    assert result == pytest.approx(token_weighted, rel=1e-5)

    metric.reset_state()
    assert float(metric.result()) == 0.0
    metric.update_state(many, many_logits)
    assert float(metric.result()) == pytest.approx(sums[1][0] / sums[1][1], rel=1e-5)


@pytest.mark.parametrize("eps", [0.0, 0.3])
def test_a_compiled_model_reports_the_smoothed_loss_and_the_plain_cross_entropy(eps) -> None:
    """Through Keras' own loss reduction and any padding mask it attaches: no double masking."""
    model = build_model(
        ModelConfig(
            arch="gru-attention",
            embedding_dim=4,
            units=8,
            dropout=0.0,
            source_vocab_size=VOCAB,
            target_vocab_size=VOCAB,
        )
    )
    model.build()
    source = np.array([[4, 5, 6, 0], [7, 8, 0, 0], [4, 4, 4, 4]], np.int32)
    target_in = np.where(TARGET_OUT == PAD_ID, PAD_ID, np.roll(TARGET_OUT, 1, axis=1))
    target_in[:, 0] = 2
    logits = keras.ops.convert_to_numpy(model((source, target_in)))
    model.compile(optimizer="adam", loss=masked_loss(eps), metrics=[TokenCrossEntropy()])
    logs = model.evaluate((source, target_in), TARGET_OUT, batch_size=3, verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx(mean_over_real_tokens(TARGET_OUT, logits, eps), rel=1e-4)
    assert logs["cross_entropy"] == pytest.approx(mean_over_real_tokens(TARGET_OUT, logits), rel=1e-4)


def test_history_row_takes_perplexities_from_the_cross_entropy() -> None:
    logs = {"loss": 3.0, "cross_entropy": 2.0, "val_loss": 2.5, "val_cross_entropy": 1.5, "val_bleu": 12.5}
    row = epoch_row(3, logs, np.float32(0.5))
    assert row == {
        "epoch": 3,
        "objective": 3.0,
        "cross_entropy": 2.0,
        "perplexity": pytest.approx(math.exp(2.0)),
        "val_objective": 2.5,
        "val_cross_entropy": 1.5,
        "val_perplexity": pytest.approx(math.exp(1.5)),
        "val_bleu": 12.5,
        "learning_rate": 0.5,
    }
    assert [*row, "seconds"] == list(HISTORY_FIELDS)
    # Missing or non-finite values are None, not NaN in the JSON.
    empty = epoch_row(1, {"loss": float("nan"), "cross_entropy": float("inf")}, 1e-3)
    assert {k for k, v in empty.items() if v is not None} == {"epoch", "learning_rate"}


# --------------------------------------------------------------------------------------------------
# RunCheckpoint on a tiny real model, fed made-up epoch logs (no fitting)

CHECKPOINT_MODEL = ModelConfig(
    arch="lstm", embedding_dim=4, units=4, dropout=0.0, source_vocab_size=8, target_vocab_size=8
)


@pytest.fixture
def run_dir(tmp_path) -> Path:
    """A run folder holding the files whose checksums save_model records next to model.keras."""
    (tmp_path / "vocab").mkdir()
    for name in ("config.json", "data-manifest.json"):
        (tmp_path / name).write_text("{}", encoding="utf-8")
    for name in ("vocab/source.txt", "vocab/target.txt"):
        (tmp_path / name).write_text("a\nb\n", encoding="utf-8")
    return tmp_path


def compiled_model(learning_rate: float = 1e-3) -> keras.Model:
    model = build_model(CHECKPOINT_MODEL)
    model.build()
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=masked_loss())
    model.stop_training = False
    return model


class Checkpointing:
    """The history-reading callbacks of a training, in ``fit``'s order, driven as one."""

    def __init__(
        self,
        run_dir: Path,
        early_stopping_metric: str = "loss",
        patience: int = 0,
        reduce_lr_factor: float | None = None,
        reduce_lr_patience: int = 1,
        max_seconds: float | None = None,
        log=lambda message: None,
    ):
        self.record = RecordHistory(RunFolder(run_dir), early_stopping_metric)
        self.callbacks = [SaveBestModel(self.record), self.record, StopEarly(self.record, patience)]
        if reduce_lr_factor:
            self.callbacks.append(
                ReduceLearningRateOnPlateau(self.record, reduce_lr_factor, reduce_lr_patience, log)
            )
        if max_seconds:
            self.callbacks.append(StopAtTimeBudget(self.record, max_seconds, log))
        self.model = None

    def set_model(self, model) -> None:
        self.model = model
        for callback in self.callbacks:
            callback.set_model(model)

    def __getattr__(self, hook):  # on_train_begin, on_epoch_begin, on_epoch_end
        def call(*args, **kwargs):
            for callback in self.callbacks:
                getattr(callback, hook)(*args, **kwargs)

        return call

    def best_epoch(self) -> int | None:
        return self.record.history.best_epoch()


def checkpoint(run_dir: Path, metric: str = "loss", patience: int = 0, learning_rate=1e-3, **kw):
    callbacks = Checkpointing(run_dir, metric, patience, **kw)
    callbacks.set_model(compiled_model(learning_rate))
    return callbacks


def epoch_logs(val_cross_entropy: float, val_bleu: float | None = None, validation: bool = True) -> dict:
    logs = {"loss": val_cross_entropy + 0.6, "cross_entropy": val_cross_entropy + 0.5}
    if validation:
        logs |= {
            "val_loss": val_cross_entropy + 0.1,
            "val_cross_entropy": val_cross_entropy,
            "val_bleu": val_bleu,
        }
    return logs


def run_epochs(callback, logs: list[dict], first: int = 0, during=lambda epoch: None) -> list[bool]:
    """Drive ``callback`` as ``model.fit`` would from epoch index ``first``; ``during(epoch)`` runs
    between the epoch's begin and end. Returns, per epoch run, whether training was asked to stop."""
    stops = []
    callback.on_train_begin()
    for epoch, logged in enumerate(logs, first):
        callback.on_epoch_begin(epoch)
        during(epoch)
        callback.on_epoch_end(epoch, dict(logged))
        stops.append(bool(callback.model.stop_training))
        if callback.model.stop_training:
            break
    return stops


def stamp(model: keras.Model, value: float) -> None:
    """Mark the weights, so that a saved model tells which epoch it was saved at."""
    model.output_projection.bias.assign(np.full((8,), value, np.float32))


def saved_stamp(run_dir: Path) -> float:
    return float(keras.ops.convert_to_numpy(RunFolder(run_dir).load_model().output_projection.bias)[0])


@pytest.mark.parametrize(
    ("monitor", "metric", "values", "best"),
    [
        ("val_cross_entropy", "loss", [2.0, 1.5, 1.7, 1.6], 2),
        ("cross_entropy", "loss", [2.0, 1.9, 1.7, 1.8], 3),
        ("val_bleu", "bleu", [10.0, 30.0, 20.0, 29.9], 2),
    ],
)
def test_the_best_epoch_is_saved_for_lower_and_higher_is_better_monitors(
    run_dir, monitor, metric, values, best
) -> None:
    callback = checkpoint(run_dir, metric)
    if monitor == "val_bleu":
        logs = [epoch_logs(1.0, value) for value in values]
    else:
        logs = [epoch_logs(value, validation=monitor.startswith("val_")) for value in values]
    stops = run_epochs(callback, logs, during=lambda epoch: stamp(callback.model, epoch + 1))
    assert callback.record.history.monitor == monitor
    assert stops == [False] * len(values)
    assert callback.best_epoch() == best
    assert saved_stamp(run_dir) == best
    history, as_csv = read_history(run_dir)
    assert [row["epoch"] for row in history] == [1, 2, 3, 4]
    assert [row[monitor] for row in history] == pytest.approx(
        [v + 0.5 if monitor == "cross_entropy" else v for v in values]
    )
    assert list(as_csv[0]) == list(HISTORY_FIELDS)


def test_bleu_ties_go_to_the_lower_validation_cross_entropy(run_dir) -> None:
    callback = checkpoint(run_dir, "bleu")
    logs = [epoch_logs(2.0, 20.0), epoch_logs(1.5, 20.0), epoch_logs(1.8, 20.0), epoch_logs(1.0, 10.0)]
    run_epochs(callback, logs, during=lambda epoch: stamp(callback.model, epoch + 1))
    assert callback.best_epoch() == 2
    assert saved_stamp(run_dir) == 2
    # Equal on both: the earlier epoch; a missing cross-entropy loses the tie.
    callback.record.history.rows = [
        {"epoch": 1, "val_bleu": 20.0, "val_cross_entropy": None},
        {"epoch": 2, "val_bleu": 20.0, "val_cross_entropy": 1.5},
        {"epoch": 3, "val_bleu": 20.0, "val_cross_entropy": 1.5},
    ]
    assert callback.best_epoch() == 2


def learning_rates(run_dir: Path) -> list[float]:
    history, as_csv = read_history(run_dir)
    assert [float(row["learning_rate"]) for row in as_csv] == pytest.approx(
        [row["learning_rate"] for row in history]
    )
    return [row["learning_rate"] for row in history]


def test_learning_rate_is_cut_after_every_reduce_lr_patience_epochs_without_improvement(run_dir) -> None:
    notices: list[str] = []
    callback = checkpoint(run_dir, reduce_lr_factor=0.5, reduce_lr_patience=2, log=notices.append)
    values = [2.0, 1.5, 1.6, 1.7, 1.8, 1.9, 1.4, 1.5, 1.6]
    # Best at 2: cut after epochs 4 and 6; a new best at 7, so the next cut is after epoch 9.
    assert run_epochs(callback, [epoch_logs(v) for v in values]) == [False] * 9
    assert learning_rates(run_dir) == pytest.approx([1e-3] * 4 + [5e-4] * 2 + [2.5e-4] * 3, rel=1e-6)
    assert float(callback.model.optimizer.learning_rate) == pytest.approx(1.25e-4, rel=1e-6)
    assert len(notices) == 3 and all("learning rate" in notice for notice in notices), notices


def test_learning_rate_is_never_cut_below_the_floor(run_dir) -> None:
    callback = checkpoint(run_dir, learning_rate=4e-6, reduce_lr_factor=0.5, reduce_lr_patience=1)
    run_epochs(callback, [epoch_logs(1.0 + epoch / 10) for epoch in range(6)])  # epoch 1 stays best
    rates = learning_rates(run_dir)
    assert rates == pytest.approx([4e-6, 4e-6, 2e-6, 1e-6, 1e-6, 1e-6], rel=1e-6)
    final = float(callback.model.optimizer.learning_rate)
    assert final == pytest.approx(MIN_LEARNING_RATE, rel=1e-6)
    assert min([*rates, final]) >= MIN_LEARNING_RATE * (1 - 1e-6)  # float32 rounding aside


def test_training_stops_after_patience_epochs_without_improvement(run_dir) -> None:
    callback = checkpoint(run_dir, patience=2, reduce_lr_factor=0.5, reduce_lr_patience=1)
    stops = run_epochs(callback, [epoch_logs(v) for v in (1.0, 0.9, 1.0, 1.1, 0.5)])
    assert stops == [False, False, False, True]
    assert [row["epoch"] for row in read_history(run_dir)[0]] == [1, 2, 3, 4]
    # Cut once after epoch 3; not again when stopping after epoch 4.
    assert learning_rates(run_dir) == pytest.approx([1e-3, 1e-3, 1e-3, 5e-4], rel=1e-6)
    assert float(callback.model.optimizer.learning_rate) == pytest.approx(5e-4, rel=1e-6)


def test_a_resumed_checkpoint_carries_on_from_the_history_on_disk(run_dir) -> None:
    first = checkpoint(run_dir, patience=3)
    run_epochs(first, [epoch_logs(1.0), epoch_logs(1.1)])
    # A new process resumes from the backup of epoch 1 (killed before the backup of epoch 2): epoch 2
    # runs again and replaces its row; the patience count goes on from the best epoch on disk.
    second = checkpoint(run_dir, patience=3)
    stops = run_epochs(second, [epoch_logs(1.2), epoch_logs(1.3), epoch_logs(1.4)], first=1)
    assert stops == [False, False, True]
    assert second.best_epoch() == 1
    history = read_history(run_dir)[0]
    assert [row["epoch"] for row in history] == [1, 2, 3, 4]
    assert [row["val_cross_entropy"] for row in history] == pytest.approx([1.0, 1.2, 1.3, 1.4])


class FakeClock:
    """Stands in for the ``time`` module in nmtcli.training: epochs take exactly what a test says."""

    def __init__(self) -> None:
        self.now = 1000.0

    def perf_counter(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("durations", "epochs_run"),
    [([30, 30, 30, 30], 3), ([30, 60, 5], 2), ([10, 10, 10, 10, 10], 5), ([101], 1)],
)
def test_the_time_budget_stops_before_an_epoch_that_would_overrun_it(
    run_dir, monkeypatch, durations, epochs_run
) -> None:
    clock = FakeClock()
    monkeypatch.setattr(training.callbacks, "time", clock)
    notices: list[str] = []
    callback = checkpoint(run_dir, max_seconds=100, log=notices.append)
    stops = run_epochs(
        callback,
        [epoch_logs(2.0 - epoch / 10) for epoch in range(len(durations))],
        during=lambda epoch: setattr(clock, "now", clock.now + durations[epoch]),
    )
    stopped = epochs_run < len(durations) or durations == [101]
    assert stops == [False] * (epochs_run - 1) + [stopped]
    assert [row["seconds"] for row in read_history(run_dir)[0]] == durations[:epochs_run]
    assert any("time budget" in notice for notice in notices) == stopped


def test_the_time_budget_counts_the_epochs_before_a_resume(run_dir, monkeypatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr(training.callbacks, "time", clock)
    advance = lambda epoch: setattr(clock, "now", clock.now + 40)  # noqa: E731
    assert run_epochs(checkpoint(run_dir, max_seconds=100), [epoch_logs(2.0)], during=advance) == [False]
    # Alone, 40 s + another 40 s would fit in 100 s; with the 40 s spent before the resume it does not.
    resumed = checkpoint(run_dir, max_seconds=100)
    assert run_epochs(resumed, [epoch_logs(1.9), epoch_logs(1.8)], first=1, during=advance) == [True]


# --------------------------------------------------------------------------------------------------
# Validation BLEU, early stopping on BLEU and learning-rate cuts in real (tiny) training


def test_bleu_sample_is_seeded_distinct_and_keeps_every_reference(tiny_data) -> None:
    pairs = PreparedData.load(tiny_data).pairs("valid")
    sources, references = bleu_sample(pairs, 5, seed=7)
    assert len(sources) == len(set(sources)) == len(references) == 5
    assert bleu_sample(pairs, 5, seed=7) == (sources, references)
    assert any(bleu_sample(pairs, 5, seed=seed)[0] != sources for seed in range(8, 12))
    for source, refs in zip(sources, references, strict=True):
        assert refs == [target for s, target in pairs if s == source]
    every, every_refs = bleu_sample(pairs, 1000, seed=7)
    assert sorted(every) == sorted({source for source, _ in pairs})
    assert any(len(refs) == 2 for refs in every_refs), "the tiny validation split has multi-reference sources"


class InterruptAfterLearningRateCut(keras.callbacks.Callback):
    """Simulates Ctrl-C at the end of the first epoch after which the learning rate was cut."""

    def on_train_begin(self, logs=None):
        self.initial = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        self.epoch = None

    def on_epoch_end(self, epoch, logs=None):
        if float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)) < 0.99 * self.initial:
            self.epoch = epoch + 1
            raise KeyboardInterrupt


def bleu_rank(row: dict) -> tuple:
    """Best first: higher BLEU, then lower validation cross-entropy, then the earlier epoch."""
    return (-row["val_bleu"], row["val_cross_entropy"], row["epoch"])


def schedule_from_history(history: list[dict], initial: float, factor: float, patience: int) -> list[float]:
    """Each epoch's learning rate as the documented rule derives it from the epochs before it."""
    rates, rate = [], initial
    for end in range(1, len(history) + 1):
        rates.append(rate)
        since_best = end - min(history[:end], key=bleu_rank)["epoch"]
        if since_best and since_best % patience == 0:
            rate = max(rate * factor, MIN_LEARNING_RATE)
    return rates


def test_bleu_monitored_run_saves_the_best_epoch_and_keeps_its_learning_rate_schedule_on_resume(
    tmp_path, tiny_data
) -> None:
    import sacrebleu

    from nmtcli.evaluation import reference_streams, token_cross_entropy

    run = tmp_path / "run"
    model_config = ModelConfig(arch="gru-attention", **SMALL_MODEL)
    # A high learning rate, so that BLEU on 5 sentences soon stops improving and the rate is cut.
    train_config = TrainConfig(
        **{**SMALL_TRAINING, "learning_rate": 0.03},
        epochs=5,
        bleu_sample=5,
        early_stopping_metric="bleu",
        reduce_lr_factor=0.5,
        reduce_lr_patience=1,
    )
    interrupt = InterruptAfterLearningRateCut()
    with pytest.raises(KeyboardInterrupt):
        train(
            model_config,
            train_config,
            data_dir=tiny_data,
            run_dir=run,
            callbacks=[interrupt],
            translator_factory=Translator,
        )
    cut = interrupt.epoch
    assert cut < train_config.epochs, (
        "the learning rate was first cut after the last epoch; nothing to resume"
    )

    result = train(model_config, train_config, data_dir=tiny_data, run_dir=run, translator_factory=Translator)
    assert result.resumed_from_epoch == cut
    history, as_csv = read_history(run)
    assert [row["epoch"] for row in history] == [1, 2, 3, 4, 5]
    for row, row_csv in zip(history, as_csv, strict=True):
        assert row["val_bleu"] is not None and 0.0 <= row["val_bleu"] <= 100.0, row
        assert float(row_csv["val_bleu"]) == pytest.approx(row["val_bleu"])

    rates = [row["learning_rate"] for row in history]
    assert rates[cut] == pytest.approx(rates[cut - 1] * 0.5, rel=1e-5), (
        "the resumed epoch ran at the cut rate"
    )
    assert rates == pytest.approx(schedule_from_history(history, 0.03, 0.5, 1), rel=1e-5)

    best = min(history, key=bleu_rank)
    assert result.best_epoch == best["epoch"]
    # model.keras holds that epoch's weights: same validation cross-entropy and BLEU.
    translator = Translator.load(run)
    valid = PreparedData.load(tiny_data).pairs("valid")
    assert token_cross_entropy(translator, valid) == pytest.approx(best["val_cross_entropy"], rel=1e-4)
    sources, references = bleu_sample(valid, 5, train_config.seed)
    hypotheses = translator.translate(sources)
    assert sacrebleu.corpus_bleu(hypotheses, reference_streams(references)).score == pytest.approx(
        best["val_bleu"], abs=1e-6
    )


# --------------------------------------------------------------------------------------------------
# Tied output embeddings, end to end


@pytest.mark.parametrize("arch", ARCHS)
def test_a_tied_model_trains_saves_and_translates(tmp_path, tiny_data, arch) -> None:
    from nmtcli.models.base import TiedOutput
    from nmtcli.translator import Translator

    result = train(
        ModelConfig(arch=arch, tie_embeddings=True, **SMALL_MODEL),
        TrainConfig(epochs=2, label_smoothing=0.1, **SMALL_TRAINING),
        data_dir=tiny_data,
        run_dir=tmp_path / "run",
    )
    entropies = [row["cross_entropy"] for row in result.history]
    assert all(math.isfinite(value) for value in entropies) and entropies[-1] < entropies[0], entropies
    config = json.loads((result.run_dir / "config.json").read_text(encoding="utf-8"))
    assert config["model"]["tie_embeddings"] is True
    assert config["training"]["label_smoothing"] == 0.1

    translator = Translator.load(result.run_dir)
    assert translator.model.tie_embeddings is True
    assert isinstance(translator.model.output_projection, TiedOutput)
    assert translator.model.count_params() == result.parameters
    outputs = translator.translate(["red cat.", "", "big dog runs."])
    assert len(outputs) == 3 and outputs[1] == "" and all(isinstance(line, str) for line in outputs)


def test_a_spent_time_budget_ends_a_real_run_after_the_epoch_that_spent_it(tmp_path, tiny_data) -> None:
    notices: list[str] = []
    result = train(
        ModelConfig(arch="lstm", **SMALL_MODEL),
        TrainConfig(epochs=3, max_minutes=1e-4, **SMALL_TRAINING),  # 6 ms: one epoch takes longer
        data_dir=tiny_data,
        run_dir=tmp_path / "run",
        log=notices.append,
    )
    assert [row["epoch"] for row in result.history] == [1]
    assert any("time budget" in notice for notice in notices), notices
    assert RunFolder(result.run_dir).is_complete()
    RunFolder(result.run_dir).load_model()


def test_the_loss_is_the_same_when_keras_finds_a_padding_mask_on_the_logits() -> None:
    """Keras layers pass the embedding's padding mask on to the logits; a mean reduction would then
    divide by the real tokens a second time (a bug we had: the loss came out total/real too high)."""
    import numpy as np
    import tensorflow as tf
    from keras.src.backend import set_keras_mask  # what Keras layers do to their outputs

    target = np.array([[5, 6, 7, 0], [4, 0, 0, 0]])
    logits = tf.constant(np.random.default_rng(0).normal(size=(2, 4, 10)).astype("float32"))
    masked = tf.identity(logits)
    set_keras_mask(masked, tf.constant(target != 0))
    reference = keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0)(target, logits)
    for smoothing in (0.0, 0.1):
        plain = float(masked_loss(smoothing)(target, logits))
        assert float(masked_loss(smoothing)(target, masked)) == pytest.approx(plain, rel=1e-6)
    assert float(masked_loss()(target, masked)) == pytest.approx(float(reference), rel=1e-6)


# --------------------------------------------------------------------------------------------------
# Resume restores the state, not only the bookkeeping


class InterruptAtEpochStart(keras.callbacks.Callback):
    """Simulates Ctrl-C as epoch ``epoch`` (1-based) begins, after the backup of the epoch before."""

    def __init__(self, epoch: int):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch + 1 == self.epoch:
            raise KeyboardInterrupt


@pytest.mark.parametrize(
    "settings, interrupted_at",
    [
        ({}, 2),
        # Resumed in the second of two epochs cooling a plain rate down (set before each step).
        ({"cooldown": True, "cooldown_epochs": 2}, 3),
    ],
)
def test_a_resumed_run_ends_where_an_uninterrupted_one_does(tmp_path, tiny_data, settings, interrupted_at) -> None:
    model_config = ModelConfig(arch="lstm", **SMALL_MODEL)
    train_config = TrainConfig(epochs=3, bleu_sample=0, **{**SMALL_TRAINING, **settings})
    straight = train(model_config, train_config, data_dir=tiny_data, run_dir=tmp_path / "straight")
    with pytest.raises(KeyboardInterrupt):
        train(
            model_config,
            train_config,
            data_dir=tiny_data,
            run_dir=tmp_path / "resumed",
            callbacks=[InterruptAtEpochStart(interrupted_at)],
        )
    resumed = train(model_config, train_config, data_dir=tiny_data, run_dir=tmp_path / "resumed")
    assert resumed.resumed_from_epoch == interrupted_at - 1
    for key in ("cross_entropy", "val_cross_entropy", "learning_rate"):
        assert [row[key] for row in resumed.history] == pytest.approx(
            [row[key] for row in straight.history], rel=1e-5
        ), key
    assert resumed.best_epoch == straight.best_epoch
    weights = [RunFolder(run).load_model().get_weights() for run in (straight.run_dir, resumed.run_dir)]
    for a, b in zip(*weights, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
