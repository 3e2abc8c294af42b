"""The warmup then inverse-square-root learning rate: its curve, safe-mode reloading, learning-rate cuts
on plateaus that scale the whole curve, a resumed run that continues the curve where it stopped, and
the last epoch's cool-down (``--cooldown``)."""

from __future__ import annotations

import math
from pathlib import Path

import keras
import numpy as np
import pytest

from conftest import TINY_MODEL, TINY_TRAINING
from nmtcli.config import ModelConfig, TrainConfig
from nmtcli.models import build_model
from nmtcli.run_folder import RunFolder
from nmtcli.training import (
    MIN_LEARNING_RATE,
    CoolDown,
    RecordHistory,
    ReduceLearningRateOnPlateau,
    WarmupInverseSquareRoot,
    make_optimizer,
    masked_loss,
    schedule_of,
)


def rate(schedule: WarmupInverseSquareRoot, step: int) -> float:
    return float(keras.ops.convert_to_numpy(schedule(step)))


def test_the_rate_rises_linearly_to_the_peak_then_falls_as_the_inverse_square_root() -> None:
    schedule = WarmupInverseSquareRoot(0.002, 100)
    # Step 0 is the first update: 1/100 of the peak, then +1/100 per step up to the peak at step 99.
    assert rate(schedule, 0) == pytest.approx(0.002 / 100, rel=1e-5)
    assert rate(schedule, 49) == pytest.approx(0.001, rel=1e-5)
    assert rate(schedule, 99) == pytest.approx(0.002, rel=1e-5)
    assert rate(schedule, 399) == pytest.approx(0.001, rel=1e-5)  # 4 x the warmup: half the peak
    assert rate(schedule, 9999) == pytest.approx(0.0002, rel=1e-5)
    rates = [rate(schedule, step) for step in range(0, 1000, 7)]
    assert max(rates) <= 0.002 * (1 + 1e-6)
    peak_at = int(np.argmax(rates))
    assert all(np.diff(rates[: peak_at + 1]) > 0) and all(np.diff(rates[peak_at:]) < 0)
    with pytest.raises(ValueError):
        WarmupInverseSquareRoot(0.001, 0)


def test_warmup_steps_choose_the_schedule_and_zero_keeps_a_constant_rate() -> None:
    assert schedule_of(make_optimizer(TrainConfig())) is None
    assert float(make_optimizer(TrainConfig(learning_rate=0.01)).learning_rate) == pytest.approx(0.01)
    optimizer = make_optimizer(TrainConfig(learning_rate=0.01, warmup_steps=10))
    schedule = schedule_of(optimizer)
    assert isinstance(schedule, WarmupInverseSquareRoot)
    assert (schedule.peak, schedule.warmup_steps) == (0.01, 10)
    assert float(optimizer.learning_rate) == pytest.approx(0.001)  # step 0: 1/10 of the peak
    # Inside a mixed-precision wrapper too.
    assert schedule_of(keras.optimizers.LossScaleOptimizer(optimizer)) is schedule


def test_a_model_compiled_with_the_schedule_reloads_in_safe_mode(tmp_path) -> None:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    schedule = WarmupInverseSquareRoot(0.01, 4, scale=0.5)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss="mse")
    x, y = np.ones((8, 3), "float32"), np.zeros((8, 2), "float32")
    model.fit(x, y, batch_size=2, epochs=1, verbose=0)  # 4 steps
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    reloaded = schedule_of(loaded.optimizer)
    assert isinstance(reloaded, WarmupInverseSquareRoot)
    assert reloaded.get_config() == {"peak": 0.01, "warmup_steps": 4, "scale": 0.5}
    assert int(loaded.optimizer.iterations) == 4
    assert float(loaded.optimizer.learning_rate) == pytest.approx(float(model.optimizer.learning_rate))
    assert float(model.optimizer.learning_rate) == pytest.approx(0.01 * 0.5 * math.sqrt(4 / 5), rel=1e-5)


# --------------------------------------------------------------------------------------------------
# Cuts on plateaus, driven as model.fit would (no fitting): each epoch takes STEPS optimizer steps.

STEPS = 10
PEAK, WARMUP = 0.01, 15
MODEL = ModelConfig(
    arch="lstm", embedding_dim=4, units=4, dropout=0.0, source_vocab_size=8, target_vocab_size=8
)


def scheduled_model(peak: float = PEAK) -> keras.Model:
    model = build_model(MODEL)
    model.build()
    model.compile(
        optimizer=make_optimizer(TrainConfig(learning_rate=peak, warmup_steps=WARMUP)), loss=masked_loss()
    )
    model.optimizer.build(model.trainable_variables)
    model.stop_training = False
    return model


def drive(run_dir: Path, model: keras.Model, values: list[float], first: int = 0, factor: float = 0.5):
    """RecordHistory and ReduceLearningRateOnPlateau over epochs ``first``, ``first + 1``, ... whose
    validation cross-entropy is ``values``; the optimizer's step is set as after that many epochs."""
    record = RecordHistory(RunFolder(run_dir))
    reduce = ReduceLearningRateOnPlateau(record, factor, 1)
    callbacks = [record, reduce]
    for callback in callbacks:
        callback.set_model(model)
        callback.on_train_begin()
    model.optimizer.iterations.assign(first * STEPS)  # what BackupAndRestore restores
    scales = []
    for epoch, value in enumerate(values, first):
        for callback in callbacks:
            callback.on_epoch_begin(epoch)
        scales.append(float(schedule_of(model.optimizer).scale.numpy()))
        model.optimizer.iterations.assign((epoch + 1) * STEPS)
        logs = {"loss": value, "cross_entropy": value, "val_loss": value, "val_cross_entropy": value}
        for callback in callbacks:
            callback.on_epoch_end(epoch, dict(logs))
    return record.history, scales


def expected_rate(scale: float, epoch: int) -> float:
    """The rate at the end of ``epoch`` (1-based) with ``scale``."""
    s = epoch * STEPS + 1
    return PEAK * scale * min(s / WARMUP, math.sqrt(WARMUP / s))


VALUES = [2.0, 1.5, 1.6, 1.7, 1.4, 1.5]  # best at 2, then 5: cuts after epochs 3, 4 and 6
SCALES = [1.0, 1.0, 1.0, 0.5, 0.25, 0.25]  # in force during each epoch


def test_a_plateau_cut_scales_the_whole_schedule(tmp_path) -> None:
    model = scheduled_model()
    history, scales = drive(tmp_path, model, VALUES)
    assert scales == SCALES
    assert float(schedule_of(model.optimizer).scale.numpy()) == 0.125
    recorded = [row["learning_rate"] for row in history.rows]
    assert recorded == pytest.approx([expected_rate(s, e) for e, s in enumerate(SCALES, 1)], rel=1e-5)


def test_a_resumed_run_restores_the_scale_from_the_history(tmp_path) -> None:
    straight = drive(tmp_path / "straight", scheduled_model(), VALUES)[0]
    # Interrupted after the backup of epoch 4 (epoch 5's row may be on disk: it is run again).
    (tmp_path / "resumed").mkdir()
    drive(tmp_path / "resumed", scheduled_model(), VALUES[:5])
    model = scheduled_model()  # a new process: the optimizer's step is restored, the scale is not
    history, scales = drive(tmp_path / "resumed", model, VALUES[4:], first=4)
    assert scales == SCALES[4:]
    assert [row["learning_rate"] for row in history.rows] == pytest.approx(
        [row["learning_rate"] for row in straight.rows], rel=1e-6
    )


def test_the_schedule_peak_is_never_cut_below_the_floor(tmp_path) -> None:
    model = scheduled_model(peak=4 * MIN_LEARNING_RATE)
    drive(tmp_path, model, [1.0, 1.1, 1.2, 1.3, 1.4])  # cut after epochs 2-5
    schedule = schedule_of(model.optimizer)
    assert schedule.peak * float(schedule.scale.numpy()) == pytest.approx(MIN_LEARNING_RATE)


# --------------------------------------------------------------------------------------------------
# The cool-down of the last epoch


def test_the_cool_down_falls_linearly_to_zero_from_its_start() -> None:
    schedule = WarmupInverseSquareRoot(0.002, 100)
    before = [rate(schedule, step) for step in (300, 310, 339, 340, 400)]
    schedule.cool_down(300, 40)
    assert rate(schedule, 300) == pytest.approx(before[0], rel=1e-5)  # the first step at the full rate
    assert rate(schedule, 310) == pytest.approx(before[1] * 30 / 40, rel=1e-5)
    assert rate(schedule, 339) == pytest.approx(before[2] / 40, rel=1e-5)  # the last: 1/steps of it
    assert rate(schedule, 340) == rate(schedule, 400) == 0.0
    assert rate(schedule, 299) > 0
    schedule.cool_down(0, 0)  # none
    assert [rate(schedule, step) for step in (300, 310, 339, 340, 400)] == pytest.approx(before, rel=1e-6)


def cool_down(tmp_path: Path, seconds: list[float], max_minutes: float | None, span: int = 1) -> CoolDown:
    """A CoolDown of ``span`` epochs over a run folder whose history holds epochs of ``seconds``."""
    record = RecordHistory(RunFolder(tmp_path))
    for epoch, spent in enumerate(seconds):
        record.history.append({"epoch": epoch + 1, "val_cross_entropy": 1.0, "seconds": spent})
    return CoolDown(record, max_minutes * 60 if max_minutes else None, span=span)


def test_the_cool_down_spans_the_last_epochs_of_epochs(tmp_path) -> None:
    assert cool_down(tmp_path, [], None).plan(4, 5) == (4, 1)
    assert cool_down(tmp_path, [10.0] * 3, None).plan(3, 5) is None
    assert cool_down(tmp_path, [10.0] * 3, None, span=2).plan(3, 5) == (3, 2)
    assert cool_down(tmp_path, [10.0] * 4, None, span=2).plan(4, 5) == (3, 2)  # its second epoch
    assert cool_down(tmp_path, [], None, span=3).plan(0, 2) == (0, 2)  # fewer epochs than its span


def test_the_cool_down_spans_the_last_epochs_to_fit_the_budget(tmp_path) -> None:
    # A 70 s budget, epochs of 20 s (the first, traced) then 10 s. As the third begins, three more
    # would end at 30 + 3 * 10 + 2 (20% of one to spare) = 62 s; as the fifth begins, only one fits.
    assert cool_down(tmp_path, [20.0, 10.0], 70 / 60).plan(2, 50) is None
    assert cool_down(tmp_path, [20.0, 10.0, 10.0], 70 / 60).plan(3, 50) is None  # 40 + 20 + 2 = 62 s
    assert cool_down(tmp_path, [20.0, 10.0, 10.0, 10.0], 70 / 60).plan(4, 50) == (4, 1)
    # The pace is the traced first epoch while it is alone (60 s: 20 + 2 * 20 + 4 = 64 s) ...
    assert cool_down(tmp_path, [20.0], 1.0).plan(1, 50) == (1, 1)
    # ... then the longer of the last two (57 s: 32 + 2 * 12 + 2.4 > 57; at a pace of 5 s four fit).
    assert cool_down(tmp_path, [15.0, 12.0], 57 / 60).plan(2, 50) is None
    assert cool_down(tmp_path, [15.0, 12.0, 5.0], 57 / 60).plan(3, 50) == (3, 1)
    # Two epochs of cool-down begin once at most two fit (100 s: 40 + 3 * 20 + 4 > 100), and a run
    # resumed in the second finds where it began in the history.
    assert cool_down(tmp_path, [20.0], 100 / 60, span=2).plan(1, 50) is None
    assert cool_down(tmp_path, [20.0, 20.0], 100 / 60, span=2).plan(2, 50) == (2, 2)
    assert cool_down(tmp_path, [20.0, 20.0, 25.0], 100 / 60, span=2).plan(3, 50) == (2, 2)


@pytest.mark.parametrize("span", [1, 2])
@pytest.mark.parametrize("warmup_steps", [None, 3])
def test_a_run_with_cool_down_ends_its_last_epoch_near_a_zero_rate(
    tiny_data, tmp_path, warmup_steps, span
) -> None:
    from nmtcli.training import train
    from nmtcli.workspace import Workspace

    settings = {
        **TINY_TRAINING,
        "epochs": 3,
        "learning_rate": 0.01,
        "bleu_sample": 0,
        "reduce_lr_factor": None,
        "warmup_steps": warmup_steps,
        "cooldown": True,
        "cooldown_epochs": span,
    }
    result = train(
        ModelConfig(**TINY_MODEL), TrainConfig(**settings), data_dir=tiny_data, workspace=Workspace(tmp_path)
    )
    rates = [row["learning_rate"] for row in result.history]
    assert len(rates) == 3
    if warmup_steps is None:  # a plain rate: set before each step, 1/steps of it for the last one
        assert rates[0] == pytest.approx(0.01)
        if span == 1:
            assert rates[1] == pytest.approx(0.01)
        else:  # halfway down after the first of two epochs (4 or more steps each), in a straight line
            assert 0.01 / 2 < rates[1] <= 0.01 * 5 / 8
            assert rates[2] == pytest.approx(rates[1] - 0.01 / 2, rel=1e-4)
        assert 0 < rates[2] < 0.01 / (4 * span)
    else:  # the schedule after the cool-down's last step
        assert rates[1] > 0 and rates[2] == 0.0
