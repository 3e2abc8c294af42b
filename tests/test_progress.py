"""The training progress display: the whole run's estimate, labelled times, one warning for long runs."""

from __future__ import annotations

import io
from datetime import datetime

import pytest
from rich.console import Console

from nmtcli import progress
from nmtcli.progress import RichProgress, RunEstimate, finish_time, format_duration


def test_durations_and_finish_times_read_naturally() -> None:
    assert [format_duration(s) for s in (0, 42, 425, 11520, 3 * 86400 + 7200)] == [
        "0s",
        "42s",
        "7m05s",
        "3h12m",
        "3d02h",
    ]
    noon = datetime(2026, 11, 30, 12, 0)
    assert finish_time(3600, noon) == "13:00"
    assert finish_time(86400, noon) == "Tue 12:00"


def test_the_estimate_counts_the_epochs_left_and_respects_the_time_budget() -> None:
    estimate = RunEstimate(epochs=10, steps=100)
    assert estimate.seconds_left(0, 10, 50.0) == (None, None), "nothing to go on before the pace settles"
    # The first epoch: 20 batches in 10 s after compilation -> 0.5 s a batch, 50 s an epoch.
    epoch_left, run_left = estimate.seconds_left(0, 40, 30.0, settled=(20, 20.0))
    assert epoch_left == pytest.approx(30.0) and run_left == pytest.approx(30.0 + 9 * 50.0)
    # Finished epochs set the pace (the first, slowed by compilation, only while it is alone).
    estimate.epoch_seconds += [90.0, 60.0, 60.0]
    epoch_left, run_left = estimate.seconds_left(3, 50, 30.0)
    assert epoch_left == pytest.approx(30.0) and run_left == pytest.approx(30.0 + 6 * 60.0)
    bounded = RunEstimate(epochs=10, steps=100, max_seconds=120.0)
    bounded.epoch_seconds.append(60.0)
    assert bounded.seconds_left(1, 0, 0.0)[1] <= 120.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def drive(callback: RichProgress, clock: Clock, epochs: int, steps: int, seconds_per_batch: float) -> None:
    callback.set_params({"epochs": epochs, "steps": steps})
    callback.on_train_begin()
    for epoch in range(2):
        callback.on_epoch_begin(epoch)
        for batch in range(steps):
            clock.now += seconds_per_batch
            callback.on_train_batch_end(batch, {"loss": 1.0})
        callback.on_epoch_end(epoch, {"loss": 1.0, "cross_entropy": 1.0})
    callback.on_train_end()


def test_lines_show_the_run_and_label_the_times_and_a_long_run_is_warned_of_once(monkeypatch) -> None:
    clock = Clock()
    monkeypatch.setattr(progress.time, "perf_counter", clock)
    out = io.StringIO()
    callback = RichProgress(Console(file=out, width=300, force_terminal=False))
    drive(callback, clock, epochs=100, steps=400, seconds_per_batch=1.0)  # 400 s an epoch, 11 h in all
    text = out.getvalue()
    assert "% of epoch 1/100 (" in text and "elapsed " in text and "epoch left ~" in text
    assert "run left ~" in text and "(ends " in text
    assert text.count("warning: at this pace the run needs about") == 1
    assert "--max-minutes" in text and "--limit" in text
    summary = [line for line in text.splitlines() if line.startswith("epoch 1/100")]
    assert summary and "run left ~11h00m" in summary[0], summary  # 99 epochs of 400 s


def test_a_short_run_or_a_bounded_one_is_not_warned_of(monkeypatch) -> None:
    clock = Clock()
    monkeypatch.setattr(progress.time, "perf_counter", clock)
    for epochs, max_minutes in ((3, None), (100, 30.0)):
        out = io.StringIO()
        callback = RichProgress(Console(file=out, width=300, force_terminal=False), max_minutes=max_minutes)
        drive(callback, clock, epochs=epochs, steps=400, seconds_per_batch=1.0)
        assert "warning" not in out.getvalue()


def test_the_live_bar_labels_its_columns(monkeypatch) -> None:
    clock = Clock()
    monkeypatch.setattr(progress.time, "perf_counter", clock)
    out = io.StringIO()
    callback = RichProgress(Console(file=out, width=300, force_terminal=True))
    callback.set_params({"epochs": 4, "steps": 50})
    callback.on_train_begin()
    callback.on_epoch_begin(0)
    for batch in range(30):
        clock.now += 0.5
        callback.on_train_batch_end(batch, {"loss": 2.0})
    callback._progress.refresh()
    shown = out.getvalue()
    callback.on_train_end()
    assert "epoch 1/4" in shown and "elapsed" in shown and "epoch left" in shown and "run left" in shown
