"""What the library reports, through the standard ``logging`` module (logger ``"nmtcli"``).

:func:`nmtcli.train` logs its notices (which run folder, resumed or not, learning-rate changes) and
one INFO record per finished epoch. Python's default shows only warnings, so to watch a training::

    import logging
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    model = nmtcli.ModelConfig()  # a subword Transformer; for_arch adds its training defaults
    nmtcli.train(model, nmtcli.TrainConfig.for_arch(model.arch, epochs=10))

or, for nmtcli's records alone, ``nmtcli.logs.show_progress()``. The command line renders the same
records with rich on stderr (:class:`ConsoleHandler`); its live progress bar stands in for the epoch
records there.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from typing import Any

LOGGER_NAME = "nmtcli"
logger = logging.getLogger(LOGGER_NAME)


# The per-epoch line's figures, as history columns, and their decimals: the per-token cross-entropy
# and its perplexity, never Keras' training objective (label-smoothed, a mean of batch means).
EPOCH_LINE = (
    ("cross_entropy", 4),
    ("perplexity", 2),
    ("val_cross_entropy", 4),
    ("val_perplexity", 2),
    ("val_bleu", 2),
)


def epoch_message(
    epoch: int, epochs: int, logs: dict[str, Any], seconds: float, learning_rate: Any = None
) -> str:
    """``epoch 3/10  cross_entropy 1.2345  perplexity 3.44  val_cross_entropy ...  learning_rate
    0.000447  8.1s`` (``epoch`` from 1): the figures under their history names (see
    ``history.epoch_row``); ``learning_rate`` is the rate the next step uses (a number or a scalar
    tensor), left out when None."""
    from .history import epoch_row

    row = epoch_row(epoch, logs, learning_rate)
    parts = [f"epoch {epoch}/{epochs}"]
    parts += [
        f"{column} {row[column]:.{digits}f}" for column, digits in EPOCH_LINE if row[column] is not None
    ]
    if row["learning_rate"] is not None:
        parts.append(f"learning_rate {row['learning_rate']:.3g}")
    parts.append(f"{seconds:.1f}s")
    return "  ".join(parts)


def last_step_rate(callback: Any, batch: int) -> float | None:
    """For a callback's ``on_train_batch_end``: the learning rate after the epoch's last batch (the
    one ``history.csv`` records, read before a plateau cut at the epoch's end), else None."""
    optimizer = getattr(callback.model, "optimizer", None)
    if optimizer is None or batch + 1 != (callback.params or {}).get("steps"):
        return None
    return read_scalar(optimizer.learning_rate)


def read_scalar(variable: Any) -> float:
    """A scalar variable's value (a step count, a learning rate) as a Python float: ``np.asarray``
    also reads a mirrored variable (``tf.distribute``), which ``float()`` and ``int()`` refuse."""
    import numpy as np

    return float(np.asarray(variable))


def epoch_logger():
    """A Keras callback that logs one INFO record per finished epoch on the ``nmtcli`` logger.

    The record carries ``epoch`` (from 1), ``epochs``, ``metrics`` (the epoch's logs) and ``seconds``
    as attributes, for handlers that want the numbers rather than the text.
    """
    import keras

    class EpochLogger(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self._started = time.perf_counter()
            self._rate = None

        def on_train_batch_end(self, batch, logs=None):
            self._rate = last_step_rate(self, batch) or getattr(self, "_rate", None)

        def on_epoch_end(self, epoch, logs=None):
            seconds = time.perf_counter() - getattr(self, "_started", time.perf_counter())
            metrics = {key: float(value) for key, value in (logs or {}).items()}
            epochs = self.params.get("epochs") or 0
            logger.info(
                epoch_message(epoch + 1, epochs, metrics, seconds, getattr(self, "_rate", None)),
                extra={"epoch": epoch + 1, "epochs": epochs, "metrics": metrics, "seconds": seconds},
            )

    return EpochLogger()


def shows_epochs(callbacks: list[Any]) -> bool:
    """Whether one of ``callbacks`` displays epochs itself (the CLI's progress bar), so that the
    library need not log them too."""
    return any(getattr(callback, "shows_epochs", False) for callback in callbacks)


class ConsoleHandler(logging.Handler):
    """Prints records on a rich console: INFO as they are, warnings as ``nmt: warning: ...`` in yellow."""

    def __init__(self, console, level: int = logging.INFO):
        super().__init__(level)
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            if record.levelno >= logging.WARNING:
                self.console.print(f"nmt: warning: {text}", style="yellow", highlight=False, soft_wrap=True)
            else:
                self.console.print(text, highlight=False, soft_wrap=True)
        except Exception:  # noqa: BLE001 - logging's own convention: report, never raise
            self.handleError(record)


@contextlib.contextmanager
def to_console(console, enabled: bool = True) -> Iterator[None]:
    """While inside, the ``nmtcli`` logger's records go to ``console``."""
    if not enabled:
        yield
        return
    with handled_by(ConsoleHandler(console)):
        yield


@contextlib.contextmanager
def handled_by(handler: logging.Handler) -> Iterator[None]:
    """While inside, the ``nmtcli`` logger's records of INFO and above go to ``handler`` (and not on
    to the root logger, which would print them twice); the logger is restored after."""
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


def show_progress(level: int = logging.INFO) -> logging.Handler:
    """For library users: print the ``nmtcli`` logger's records at ``level`` and above on stderr.
    Returns the handler (``logging.getLogger("nmtcli").removeHandler(handler)`` undoes it)."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level)
    return handler
