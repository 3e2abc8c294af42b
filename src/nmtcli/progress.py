"""Training progress on stderr with rich: a bar during each epoch, then one summary line per epoch.

Both show the whole run as well as the epoch: which epoch of how many, the time an epoch takes, and
an estimate of the time left and of the clock time the run ends. When that estimate first passes
``WARN_HOURS``, one warning says how to bound the run.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import keras
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from . import interrupts
from .logs import epoch_message, last_step_rate

WARN_HOURS = 3.0  # a run estimated to need longer than this gets one warning
SETTLE_BATCHES = 20  # the first batches include tracing and compilation: too slow to extrapolate


def format_duration(seconds: float) -> str:
    """``42s``, ``7m05s``, ``3h12m``, ``2d04h``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def finish_time(seconds_left: float, now: datetime | None = None) -> str:
    """The local clock time ``seconds_left`` from now: ``17:42``, or ``Tue 17:42`` on another day."""
    now = now or datetime.now()
    end = now + timedelta(seconds=seconds_left)
    return end.strftime("%H:%M") if end.date() == now.date() else end.strftime("%a %H:%M")


class RunEstimate:
    """Time left in a run of ``epochs`` epochs of ``steps`` batches, from the pace so far.

    Finished epochs give the time per epoch (the first one, which includes compilation, only while no
    other is finished); within an epoch, the pace of its batches after the first ``SETTLE_BATCHES``.
    ``max_seconds`` (``--max-minutes``) caps the estimate: the run stops then.
    """

    def __init__(self, epochs: int, steps: int, max_seconds: float | None = None):
        self.epochs = epochs
        self.steps = steps
        self.max_seconds = max_seconds
        self.epoch_seconds: list[float] = []
        self.first_epoch: int | None = None  # the first epoch this process runs (after a resume)
        self.run_started = time.perf_counter()

    def epoch_pace(self) -> float | None:
        """Seconds per epoch from finished epochs, or None."""
        if not self.epoch_seconds:
            return None
        settled = self.epoch_seconds[1:] or self.epoch_seconds
        return sum(settled) / len(settled)

    def seconds_left(
        self,
        epoch: int,
        batches_done: int,
        epoch_elapsed: float,
        settled: tuple[int, float] | None = None,
    ) -> tuple[float | None, float | None]:
        """``(epoch left, run left)`` in seconds, in epoch ``epoch`` (0-based) with ``batches_done`` of
        its batches done in ``epoch_elapsed`` seconds; None where there is nothing to go on yet.

        ``settled`` is ``(batches, seconds)`` into the epoch when its pace settled (past compilation).
        Once an epoch has finished, its time (validation included) sets the pace; before, the batches
        since ``settled`` do.
        """
        pace = self.epoch_pace()
        steps = self.steps or 0
        fraction_left = (steps - min(batches_done, steps)) / steps if steps else 1.0
        if pace is not None:
            in_epoch = max(pace * fraction_left, 0.0)
        elif steps and settled is not None and batches_done > settled[0]:
            per_batch = (epoch_elapsed - settled[1]) / (batches_done - settled[0])
            in_epoch = per_batch * (steps - batches_done)
            pace = per_batch * steps
        else:
            return None, None
        left = in_epoch + pace * max(0, self.epochs - epoch - 1)
        if self.max_seconds is not None:
            left = min(left, max(0.0, self.max_seconds - (time.perf_counter() - self.run_started)))
        return in_epoch, left

    def describe(self, seconds_left: float | None) -> str:
        """``run left ~3h12m (ends 17:42)``, or ``run left ?``."""
        if seconds_left is None:
            return "run left ?"
        return f"run left ~{format_duration(seconds_left)} (ends {finish_time(seconds_left)})"


def long_run_warning(seconds_left: float, epochs_left: int, pace: float) -> str:
    """The one warning for a run estimated to outlast ``WARN_HOURS``."""
    return (
        f"nmt: warning: at this pace the run needs about {format_duration(seconds_left)} more "
        f"({epochs_left} epoch(s) of ~{format_duration(pace)}). Bound it with --max-minutes M (stops "
        "after the epoch running at M minutes, keeping the best epoch), fewer --epochs, or train on "
        "fewer pairs: nmt prepare --limit N (the N shortest) or --sample N (N at random)."
    )


class RichProgress(keras.callbacks.Callback):
    """On a terminal, a live bar per epoch; elsewhere (logs, CI) a plain line at every tenth of an
    epoch. The per-epoch summary lines always go to the console. ``max_minutes`` is the run's time
    budget (``--max-minutes``), which caps the estimate of the time left."""

    shows_epochs = True  # the library logs no epoch records beside it (logs.shows_epochs)

    def __init__(self, console: Console | None = None, max_minutes: float | None = None):
        super().__init__()
        self.console = console or Console(stderr=True)
        self.max_minutes = max_minutes
        self._progress: Progress | None = None
        self._task = None
        self._started = 0.0
        self._estimate: RunEstimate | None = None
        self._warned = False
        self._remove_hook = None
        self._settled: tuple[int, float] | None = None
        self._rate: float | None = None  # the learning rate after the epoch's last batch

    def on_train_begin(self, logs=None):
        self._estimate = RunEstimate(
            self.params.get("epochs") or 0,
            self.params.get("steps") or 0,
            self.max_minutes * 60 if self.max_minutes else None,
        )
        self._remove_hook = interrupts.on_interrupt(self._stop_bar)

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()
        self._settled = None
        self._rate = None
        if self._estimate is None:  # used without on_train_begin (a test driving it by hand)
            self.on_train_begin()
        if self._estimate.first_epoch is None:
            self._estimate.first_epoch = epoch
        if not self.console.is_terminal or interrupts.received():
            return
        self._progress = Progress(
            TextColumn(f"epoch {epoch + 1}/{self.params.get('epochs')}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("elapsed"),
            TimeElapsedColumn(),
            TextColumn("epoch left"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[run]}"),
            console=self.console,
            transient=True,
        )
        self._progress.start()
        self._task = self._progress.add_task(
            "train", total=self.params.get("steps"), loss="-", run=self._describe(epoch, 0)
        )

    def on_train_batch_end(self, batch, logs=None):
        self._rate = last_step_rate(self, batch) or self._rate
        loss = (logs or {}).get("loss")
        shown = f"{float(loss):.4f}" if loss is not None else "-"
        epoch = self._current_epoch()
        epoch_left, run = self._estimates(epoch, batch + 1)
        if self._progress is not None:
            self._progress.update(self._task, completed=batch + 1, loss=shown, run=run)
            return
        steps = self.params.get("steps") or 0
        tenth = max(1, steps // 10)
        if steps >= 200 and (batch + 1) % tenth == 0 and batch + 1 < steps:
            elapsed = time.perf_counter() - self._started
            epoch_left = "?" if epoch_left is None else f"~{format_duration(epoch_left)}"
            self.console.print(
                f"  {100 * (batch + 1) // steps:3d}% of epoch {epoch + 1}/{self.params.get('epochs')} "
                f"({batch + 1}/{steps} batches)  loss {shown}  elapsed {format_duration(elapsed)}  "
                f"epoch left {epoch_left}  {run}",
                highlight=False,
            )

    def on_epoch_end(self, epoch, logs=None):
        self._stop_bar()
        seconds = time.perf_counter() - self._started
        parts = [epoch_message(epoch + 1, self.params.get("epochs"), logs or {}, seconds, self._rate)]
        if self._estimate is not None:
            self._estimate.epoch_seconds.append(seconds)
            if epoch + 1 < self._estimate.epochs:
                parts.append(self._describe(epoch + 1, 0))
        self.console.print("  ".join(parts), highlight=False, soft_wrap=True)

    def on_train_end(self, logs=None):
        self._stop_bar()
        if self._remove_hook is not None:
            self._remove_hook()
            self._remove_hook = None

    def _current_epoch(self) -> int:
        estimate = self._estimate
        if estimate is None or estimate.first_epoch is None:
            return 0
        return estimate.first_epoch + len(estimate.epoch_seconds)

    def _describe(self, epoch: int, batches_done: int) -> str:
        return self._estimates(epoch, batches_done)[1]

    def _estimates(self, epoch: int, batches_done: int) -> tuple[float | None, str]:
        """The run's estimate for the bar and lines; warns the first time it passes ``WARN_HOURS``."""
        if self._estimate is None:
            return None, ""
        elapsed = time.perf_counter() - self._started
        # Later epochs run compiled code from their first batch; the first one compiles for a while.
        if self._settled is None and batches_done >= (1 if self._estimate.epoch_seconds else SETTLE_BATCHES):
            self._settled = (batches_done, elapsed)
        epoch_left, left = self._estimate.seconds_left(epoch, batches_done, elapsed, self._settled)
        if left is not None and left > WARN_HOURS * 3600 and not self._warned:
            self._warned = True
            pace = self._estimate.epoch_pace() or left / max(1, self._estimate.epochs - epoch)
            warning = long_run_warning(left, self._estimate.epochs - epoch, pace)
            self.console.print(warning, highlight=False, soft_wrap=True, style="yellow")
        return epoch_left, self._estimate.describe(left)

    def _stop_bar(self) -> None:
        progress, self._progress = self._progress, None
        if progress is not None:
            progress.stop()
