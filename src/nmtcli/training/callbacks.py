"""The Keras callbacks of a training, one job each, all reading one :class:`RecordHistory`.

:class:`RecordHistory` loads the run's history from disk when training starts (after a resume: the
epochs already done) and appends each epoch's row; the others derive their decisions from that
history alone, so a resumed run saves, cuts the learning rate and stops exactly as an uninterrupted
one would. The order in the callback list (see ``fit``): ``ValidationBleu`` (puts ``val_bleu`` into
the logs), ``SaveBestModel``, ``RecordHistory``, ``StopEarly``, ``CoolDown`` (its stop comes before
a plateau cut), ``ReduceLearningRateOnPlateau``, ``StopAtTimeBudget``, then Keras'
``BackupAndRestore``: the best model is on disk before the history names it, and both before the
backup marks the epoch done.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import keras

from ..corpus import group_references, reference_streams
from ..history import History, epoch_row
from ..logs import read_scalar
from ..run_folder import RunFolder
from .schedule import schedule_of

MIN_LEARNING_RATE = 1e-6
# The share of an epoch's time kept to spare when judging how many more epochs fit the time budget.
COOLDOWN_MARGIN = 0.2


class RecordHistory(keras.callbacks.Callback):
    """Appends every epoch's row (see ``history.epoch_row``, plus ``seconds``) to the run's history
    and writes ``history.json``/``history.csv``. ``early_stopping_metric`` (``loss`` or ``bleu``)
    decides the history's best epoch."""

    def __init__(self, run: RunFolder, early_stopping_metric: str = "loss"):
        super().__init__()
        self.run = run
        self.history = History([], early_stopping_metric)
        self._epoch_start = 0.0

    def on_train_begin(self, logs=None):
        on_disk = self.run.history()
        self.history = History(on_disk.rows, self.history.early_stopping_metric)

    def on_epoch_begin(self, epoch, logs=None):
        # After a resume, epochs from `epoch` on are run again: forget what they logged before.
        self.history = self.history.until(epoch)
        self._epoch_start = time.perf_counter()

    def add(self, epoch: int, logs: dict[str, Any] | None) -> dict[str, Any]:
        """The row of ``epoch`` (0-based, as Keras counts), appended once however often asked."""
        if self.history.rows and self.history.rows[-1]["epoch"] == epoch + 1:
            return self.history.rows[-1]
        row = epoch_row(epoch + 1, logs or {}, self.model.optimizer.learning_rate)
        row["seconds"] = round(time.perf_counter() - self._epoch_start, 3)
        self.history.append(row)
        return row

    def since_best(self) -> int:
        """Epochs finished since the best one (0: the last epoch is the best)."""
        return self.history.rows[-1]["epoch"] - (self.history.best_epoch() or 0)

    def on_epoch_end(self, epoch, logs=None):
        self.add(epoch, logs)
        self.run.write_history(self.history)


class SaveBestModel(keras.callbacks.Callback):
    """Writes ``model.keras`` after every epoch that is the history's best so far."""

    def __init__(self, record: RecordHistory):
        super().__init__()
        self.record = record

    def on_epoch_end(self, epoch, logs=None):
        row = self.record.add(epoch, logs)
        if self.record.history.best_epoch() == row["epoch"]:
            self.record.run.save_model(self.model)


class StopEarly(keras.callbacks.Callback):
    """Stops training after ``patience`` epochs without a better best epoch (0: never)."""

    def __init__(self, record: RecordHistory, patience: int):
        super().__init__()
        self.record = record
        self.patience = patience

    def on_epoch_end(self, epoch, logs=None):
        self.record.add(epoch, logs)
        if self.patience and self.record.since_best() >= self.patience:
            self.model.stop_training = True


class ReduceLearningRateOnPlateau(keras.callbacks.Callback):
    """Multiplies the learning rate by ``factor`` after every ``patience`` epochs without a better
    best epoch, never below ``MIN_LEARNING_RATE``; not when training stops after this epoch anyway.

    A plain rate: the rate in force comes from the optimizer, which ``BackupAndRestore`` restores on
    resume. A warmup schedule (``schedule.WarmupInverseSquareRoot``): the cut multiplies the whole
    curve (its ``scale``), its peak never below ``MIN_LEARNING_RATE``; the scale is not saved with the
    optimizer, so a resumed run recomputes it from the epochs in the history before its first epoch.
    """

    def __init__(
        self,
        record: RecordHistory,
        factor: float,
        patience: int = 1,
        log: Callable[[str], None] = lambda message: None,
    ):
        super().__init__()
        self.record = record
        self.factor = factor
        self.patience = max(1, patience)
        self.log = log
        self._scale_restored = False

    def _cuts_after(self, since_best: int) -> bool:
        return bool(since_best) and not since_best % self.patience

    def scale_after(self, history: History, peak: float) -> float:
        """The schedule's scale after the cuts this callback made over ``history``'s epochs."""
        scale = 1.0
        for count in range(1, len(history.rows) + 1):
            part = History(history.rows[:count], history.early_stopping_metric)
            if self._cuts_after(part.rows[-1]["epoch"] - (part.best_epoch() or 0)):
                scale = max(scale * self.factor, MIN_LEARNING_RATE / peak)
        return scale

    def on_epoch_begin(self, epoch, logs=None):
        schedule = schedule_of(self.model.optimizer)
        if schedule is not None and not self._scale_restored:
            # After RecordHistory has dropped the rows of epochs about to be run again.
            schedule.scale.assign(self.scale_after(self.record.history, schedule.peak))
        self._scale_restored = True

    def on_epoch_end(self, epoch, logs=None):
        row = self.record.add(epoch, logs)
        since_best = self.record.since_best()
        if self.model.stop_training or not self._cuts_after(since_best):
            return
        monitor = self.record.history.monitor
        schedule = schedule_of(self.model.optimizer)
        if schedule is not None:
            scale = max(float(schedule.scale.numpy()) * self.factor, MIN_LEARNING_RATE / schedule.peak)
            schedule.scale.assign(scale)
            self.log(
                f"no better {monitor} for {since_best} epoch(s): learning rate schedule x {scale:.3g} "
                f"(peak {schedule.peak * scale:.3g})"
            )
            return
        rate = max(row["learning_rate"] * self.factor, MIN_LEARNING_RATE)
        self.model.optimizer.learning_rate = rate
        self.log(f"no better {monitor} for {since_best} epoch(s): learning rate -> {rate:.3g}")


class CoolDown(keras.callbacks.Callback):
    """The run's last ``span`` epochs lower the learning rate linearly to zero over their steps (a
    "cool-down": a falling rate gains most at the end of training), then training stops.

    The cool-down begins with the first epoch that has at most ``span`` epochs left, itself included
    (``epochs_left``): of ``epochs`` or, with a time budget of ``max_seconds``, of those that fit
    with ``COOLDOWN_MARGIN`` of an epoch to spare, ``spent + n * pace + margin * pace <= max_seconds``
    as it begins, ``pace`` being the longest of the last two epochs (the first, which traces the step,
    only while it is the only one). A misjudged pace costs either the end of the cool-down
    (``StopAtTimeBudget`` stops first) or the time of an epoch it would have fitted. Decided from the
    history, replayed from the first epoch as each epoch begins (``plan``), so a resumed run decides
    as an uninterrupted one. A warmup schedule is lowered through its cool-down variables; a plain
    rate is set before each step and left at its last value.
    """

    def __init__(
        self,
        record: RecordHistory,
        max_seconds: float | None = None,
        log: Callable[[str], None] = lambda message: None,
        span: int = 1,
    ):
        super().__init__()
        self.record = record
        self.max_seconds = max_seconds
        self.log = log
        self.span = span
        self._last = None  # the 0-based epoch the cool-down ends with, once it has begun
        self._done = 0  # the cool-down's steps before the current epoch
        self._steps = 0  # all of its steps; 0 before it begins
        self._rate = 0.0  # a plain rate's value as the cool-down began

    def epochs_left(self, epoch: int, epochs: int, history: History) -> int:
        """How many epochs, ``epoch`` (0-based) included, the run has left as it begins after the
        epochs of ``history`` (at least 1)."""
        left = max(1, epochs - epoch)
        rows = history.rows
        paces = rows[-2:] if len(rows) > 2 else rows[-1:]
        pace = max((row["seconds"] or 0.0 for row in paces), default=0.0)
        if self.max_seconds is None or pace <= 0:
            return left
        fit = int((self.max_seconds - history.seconds() - COOLDOWN_MARGIN * pace) // pace)
        return max(1, min(left, fit))

    def plan(self, epoch: int, epochs: int) -> tuple[int, int] | None:
        """As ``epoch`` (0-based) begins: the cool-down's first epoch and how many it spans, or None
        while it has not begun."""
        history = self.record.history
        for first in range(epoch + 1):
            left = self.epochs_left(first, epochs, history.until(first))
            if left <= self.span:
                return first, left
        return None

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.optimizer
        schedule = schedule_of(optimizer)
        steps = self.params.get("steps") or 0
        plan = self.plan(epoch, self.params.get("epochs") or 0) if steps else None
        if plan is None:
            self._last, self._steps = None, 0
            if schedule is not None:
                schedule.cool_down(0, 0)
            return
        first, span = plan
        self._last, self._done, self._steps = first + span - 1, (epoch - first) * steps, span * steps
        if schedule is not None:
            schedule.cool_down(int(read_scalar(optimizer.iterations)) - self._done, self._steps)
        else:  # the rate left by the cool-down's last step so far, (1 - (done - 1) / steps) of its start
            rate = read_scalar(optimizer.learning_rate)
            self._rate = rate / (1 - (self._done - 1) / self._steps) if self._done else rate
        if epoch == first:
            self.log(
                f"the last {span} epoch(s): the learning rate falls to zero over their {self._steps} steps"
            )

    def on_train_batch_begin(self, batch, logs=None):
        if self._steps and schedule_of(self.model.optimizer) is None:
            self.model.optimizer.learning_rate = self._rate * (1 - (self._done + batch) / self._steps)

    def on_epoch_end(self, epoch, logs=None):
        if self._last is not None and epoch >= self._last:
            self.model.stop_training = True


class StopAtTimeBudget(keras.callbacks.Callback):
    """Stops training when another epoch as long as the last would overrun ``max_seconds`` of
    epoch time, counting the epochs before a resume."""

    def __init__(
        self, record: RecordHistory, max_seconds: float, log: Callable[[str], None] = lambda message: None
    ):
        super().__init__()
        self.record = record
        self.max_seconds = max_seconds
        self.log = log

    def on_epoch_end(self, epoch, logs=None):
        row = self.record.add(epoch, logs)
        spent = self.record.history.seconds()
        if not self.model.stop_training and spent + row["seconds"] > self.max_seconds:
            self.model.stop_training = True
            self.log(
                f"time budget: {spent / 60:.1f} of {self.max_seconds / 60:g} minutes spent; "
                "another epoch would not fit, stopping"
            )


class SentenceTranslator(Protocol):
    def translate(self, lines: Sequence[str], batch_size: int = ...) -> list[str]: ...


class ValidationBleu(keras.callbacks.Callback):
    """After each epoch, decodes a fixed sample of validation sources and puts the multi-reference
    BLEU (sacrebleu, detokenized, cased, 13a) into the logs as ``val_bleu``.

    ``translator_factory(model)`` makes the translator of the model being trained (once); training
    does not import the translator. Must come before the callbacks that read the history.
    """

    def __init__(
        self,
        translator_factory: Callable[[keras.Model], SentenceTranslator],
        sources: list[str],
        references: list[list[str]],
        batch_size: int,
    ):
        super().__init__()
        self.translator_factory = translator_factory
        self.sources = sources
        self.references = references
        self.batch_size = batch_size
        self._translator: SentenceTranslator | None = None

    def on_epoch_end(self, epoch, logs=None):
        import sacrebleu

        if self._translator is None:
            self._translator = self.translator_factory(self.model)
        hypotheses = self._translator.translate(self.sources, batch_size=self.batch_size)
        if logs is not None:
            logs["val_bleu"] = sacrebleu.corpus_bleu(hypotheses, reference_streams(self.references)).score


def bleu_sample(pairs: list[tuple[str, str]], size: int, seed: int) -> tuple[list[str], list[list[str]]]:
    """A fixed, seeded sample of ``size`` distinct sources with all of their references."""
    import random

    sources, references = group_references(pairs)
    chosen = sorted(random.Random(seed).sample(range(len(sources)), min(size, len(sources))))
    return [sources[i] for i in chosen], [references[i] for i in chosen]
