"""The transformer trains like the other architectures: with mixed precision, XLA (--jit-compile),
tf.distribute (mirrored on two logical CPUs, in child processes as in test_distribute) and resume,
with the warmup schedule, label smoothing and batches sized in tokens that are its defaults or options."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from conftest import TINY_TRAINING
from nmtcli.config import ModelConfig, TrainConfig
from nmtcli.run_folder import RunFolder
from nmtcli.training import train
from nmtcli.translator import Translator
from test_training import InterruptAtEpochStart

TINY_TRANSFORMER = {"units": 16, "layers": 1, "heads": 2, "ff_dim": 32, "dropout": 0.0}
MODEL = ModelConfig(arch="transformer", level="subword", **TINY_TRANSFORMER)
# The transformer's own defaults (label smoothing, warmup), with a warmup that ends within the run.
TRAINING = {**TINY_TRAINING, "bleu_sample": 0, "warmup_steps": 8, "batch_tokens": 160}


def training(**changes) -> TrainConfig:
    return TrainConfig.for_arch("transformer", **{**TRAINING, **changes})


def assert_learns_and_translates(result) -> Translator:
    losses = [row["cross_entropy"] for row in result.history]
    assert all(math.isfinite(loss) for loss in losses) and losses[-1] < losses[0], losses
    translator = Translator.load(result.run_dir)
    assert all(weight.dtype == "float32" for weight in translator.model.weights)
    translations = translator.translate(["red cat.", "big dog runs."])
    assert len(translations) == 2 and "<unk>" not in " ".join(translations)
    return translator


def test_the_warmup_schedule_is_recorded_in_the_history(tiny_data, tmp_path) -> None:
    config = training(epochs=2, cooldown=False)  # (the cool-down's own test: test_schedule.py)
    assert config.label_smoothing == 0.1
    result = train(MODEL, config, data_dir=tiny_data, run_dir=tmp_path / "run")
    rates = [row["learning_rate"] for row in result.history]
    # The rate at the end of each epoch: the schedule at the optimizer's step by then (below the peak
    # while warming up, then falling), never the constant peak.
    batches = result.history and len(rates)
    assert batches == 2
    assert all(0 < rate < config.learning_rate for rate in rates) and rates[0] != rates[1]
    assert_learns_and_translates(result)


def test_mixed_precision(tiny_data, tmp_path) -> None:
    result = train(
        MODEL, training(epochs=2, mixed_precision=True), data_dir=tiny_data, run_dir=tmp_path / "run"
    )
    assert keras.config.dtype_policy().name == "float32", "the global policy is restored"
    assert assert_learns_and_translates(result).model.dtype_policy.name == "float32"


def test_jit_compile(tiny_data, tmp_path) -> None:
    result = train(MODEL, training(epochs=2, jit_compile=True), data_dir=tiny_data, run_dir=tmp_path / "run")
    assert_learns_and_translates(result)


def test_a_resumed_transformer_ends_where_an_uninterrupted_one_does(tiny_data, tmp_path) -> None:
    """Weights, optimizer step and so the scheduled learning rate continue exactly after a resume."""
    config = training(epochs=3, reduce_lr_factor=0.5)
    straight = train(MODEL, config, data_dir=tiny_data, run_dir=tmp_path / "straight")
    with pytest.raises(KeyboardInterrupt):
        train(
            MODEL,
            config,
            data_dir=tiny_data,
            run_dir=tmp_path / "resumed",
            callbacks=[InterruptAtEpochStart(2)],
        )
    resumed = train(MODEL, config, data_dir=tiny_data, run_dir=tmp_path / "resumed")
    assert resumed.resumed_from_epoch == 1
    for key in ("learning_rate", "cross_entropy", "val_cross_entropy"):
        assert [row[key] for row in resumed.history] == pytest.approx(
            [row[key] for row in straight.history], rel=1e-5
        ), key
    assert straight.history[0]["learning_rate"] != straight.history[-1]["learning_rate"]  # scheduled
    weights = [RunFolder(run).load_model().get_weights() for run in (straight.run_dir, resumed.run_dir)]
    for a, b in zip(*weights, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_mirrored_on_two_logical_cpus_trains_the_same_transformer_as_one_device(tiny_data, tmp_path) -> None:
    """As test_distribute's test for the GRU, one epoch: the replicas' sums differ from one device's
    in float32 summation order only, and the validation cross-entropy agrees to 3e-5 (measured).

    The weights agree to 5e-4, except the embedding rows of pieces absent from the data (the byte
    pieces): with label smoothing their output gradient ``p_v - eps / V`` nearly cancels, so Adam
    normalises rounding noise into steps of up to the learning rate (measured: 4e-3 after 8 steps).
    Over more epochs at the peak rate the runs drift further apart (0.6% after 2 epochs)."""
    from test_distribute import finish, start

    def args(output) -> list[str]:
        options = {**TINY_TRANSFORMER, **TRAINING, "epochs": 1}
        del options["batch_size"]  # batches of batch_tokens
        # float32 compute: on CPUs with native bfloat16 the transformer trains in it by default, and
        # its rounding would swamp the summation-order differences this test bounds.
        listed = ["train", "--data", str(tiny_data), "--output", str(output), "--arch", "transformer"]
        listed.append("--no-bf16-output")
        for name, value in {"level": "subword", **options}.items():
            listed += [f"--{name.replace('_', '-')}", str(value)]
        return listed

    mirrored = start([*args(tmp_path / "mirrored"), "--distribute", "mirrored"], NMT_LOGICAL_CPUS="2")
    single = start(args(tmp_path / "single"))
    log = finish(mirrored)
    finish(single)
    assert "2 replicas (mirrored)" in " ".join(log.split())
    histories = {name: RunFolder(tmp_path / name).history() for name in ("mirrored", "single")}
    for column in ("learning_rate", "val_cross_entropy"):
        assert histories["mirrored"].series(column) == pytest.approx(
            histories["single"].series(column), rel=1e-3
        )
    models = {name: Translator.load(tmp_path / name).model for name in histories}
    weights = [{v.path: v.numpy() for v in models[name].weights} for name in ("mirrored", "single")]
    for path, value in weights[0].items():
        atol = 2e-2 if path.endswith("embeddings") else 2e-3
        np.testing.assert_allclose(value, weights[1][path], atol=atol, err_msg=path)
    assert RunFolder(tmp_path / "single").config().training.label_smoothing == 0.1  # the transformer's
