"""Training progress on stderr with rich: a bar during each epoch, then one summary line per epoch."""

from __future__ import annotations

import time

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

from .history import epoch_row

# The per-epoch line's figures, as history columns, and their decimals.
EPOCH_LINE = (
    ("cross_entropy", 4),
    ("perplexity", 2),
    ("val_cross_entropy", 4),
    ("val_perplexity", 2),
    ("val_bleu", 2),
)


class RichProgress(keras.callbacks.Callback):
    """On a terminal, a live bar per epoch; elsewhere (logs, CI) a plain line at every tenth of an
    epoch. The per-epoch summary lines always go to the console."""

    def __init__(self, console: Console | None = None):
        super().__init__()
        self.console = console or Console(stderr=True)
        self._progress: Progress | None = None
        self._task = None
        self._started = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()
        if not self.console.is_terminal:
            return
        self._progress = Progress(
            TextColumn(f"epoch {epoch + 1}/{self.params.get('epochs')}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        self._progress.start()
        self._task = self._progress.add_task("train", total=self.params.get("steps"), loss="-")

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        shown = f"{float(loss):.4f}" if loss is not None else "-"
        if self._progress is not None:
            self._progress.update(self._task, completed=batch + 1, loss=shown)
            return
        steps = self.params.get("steps") or 0
        tenth = max(1, steps // 10)
        if steps >= 200 and (batch + 1) % tenth == 0 and batch + 1 < steps:
            self.console.print(
                f"  {100 * (batch + 1) // steps:3d}% of epoch ({batch + 1}/{steps} batches)  loss {shown}  "
                f"{time.perf_counter() - self._started:.0f}s",
                highlight=False,
            )

    def on_epoch_end(self, epoch, logs=None):
        self._stop_bar()
        # The figures under their history names: the per-token cross-entropy, never Keras' objective.
        row = epoch_row(epoch + 1, logs or {})
        parts = [f"epoch {epoch + 1}/{self.params.get('epochs')}"]
        for column, digits in EPOCH_LINE:
            if row[column] is not None:
                parts.append(f"{column} {row[column]:.{digits}f}")
        parts.append(f"{time.perf_counter() - self._started:.1f}s")
        self.console.print("  ".join(parts), highlight=False, soft_wrap=True)

    def on_train_end(self, logs=None):
        self._stop_bar()

    def _stop_bar(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
