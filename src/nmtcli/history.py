"""A run's per-epoch history and the rules read from it: the best epoch and perplexity.

These rules are written here once; training, the progress line, curves, MLflow and the model card ask
this module. The figure users see as the loss is the plain cross-entropy per real target token in nats
(``cross_entropy``, ``val_cross_entropy``); its exponential is the perplexity. Keras' training
objective (label-smoothed when ``--label-smoothing`` is set) is kept as ``objective`` and
``val_objective`` for reference and never shown as the loss. Histories written before this naming
called the objective ``loss``/``val_loss``; :func:`rename_old_columns` maps them on reading.

TensorFlow-free: the model card and ``nmt plot`` read histories without it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# The columns `nmt train` writes, in order (history.csv's header, history.json's keys).
FIELDS = (
    "epoch",
    "objective",
    "cross_entropy",
    "perplexity",
    "val_objective",
    "val_cross_entropy",
    "val_perplexity",
    "val_bleu",
    "learning_rate",
    "seconds",
)
# Names in histories written by earlier versions -> today's names.
OLD_NAMES = {"loss": "objective", "val_loss": "val_objective"}


def perplexity(cross_entropy: float | None) -> float | None:
    """``exp`` of a cross-entropy per token in nats; None for a missing or non-finite one."""
    if cross_entropy is None or not math.isfinite(cross_entropy):
        return None
    return math.exp(min(cross_entropy, 700.0))


def rename_old_columns(name: str) -> str:
    return OLD_NAMES.get(name, name)


def _float(value: Any) -> float | None:
    """A finite float from a Keras log value (Python or NumPy scalar, 0-d tensor), else None."""
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        import numpy as np  # a tensor that float() does not take directly

        number = float(np.asarray(value))
    return number if math.isfinite(number) else None


def epoch_row(epoch: int, logs: Mapping[str, Any], learning_rate: Any = None) -> dict[str, Any]:
    """One epoch's history row from Keras' epoch ``logs`` (``epoch`` counts from 1); perplexities come
    from the plain cross-entropy. ``seconds`` is left for the caller."""
    row: dict[str, Any] = {"epoch": epoch}
    for prefix in ("", "val_"):
        row[prefix + "objective"] = _float(logs.get(prefix + "loss"))
        entropy = _float(logs.get(prefix + "cross_entropy"))
        row[prefix + "cross_entropy"] = entropy
        row[prefix + "perplexity"] = perplexity(entropy)
    row["val_bleu"] = _float(logs.get("val_bleu"))
    row["learning_rate"] = _float(learning_rate)
    return row


@dataclass
class History:
    """Per-epoch rows (``rows[i][column]``: a number, or None where nothing was logged), oldest first.

    ``early_stopping_metric`` is the run's setting (``loss`` or ``bleu``): with ``bleu`` and BLEU
    scores in the history, the best epoch is the one of highest ``val_bleu``.
    """

    rows: list[dict[str, Any]] = field(default_factory=list)
    early_stopping_metric: str = "loss"
    columns: list[str] = field(default_factory=lambda: list(FIELDS))

    @property
    def epochs(self) -> list[int]:
        return [int(row["epoch"]) for row in self.rows]

    def series(self, column: str) -> list[float | None]:
        return [row.get(column) for row in self.rows]

    def has(self, column: str) -> bool:
        return any(value is not None for value in self.series(column))

    def row(self, epoch: int) -> dict[str, Any] | None:
        return next((row for row in self.rows if row["epoch"] == epoch), None)

    @property
    def monitor(self) -> str:
        """The column the best epoch is chosen by: ``val_bleu`` when the run stops early by BLEU and
        has BLEU scores, else ``val_cross_entropy`` when there is validation, else ``cross_entropy``.
        Histories older than the cross-entropy columns fall back to the objective."""
        if self.early_stopping_metric == "bleu" and self.has("val_bleu"):
            return "val_bleu"
        for column in ("val_cross_entropy", "cross_entropy", "val_objective"):
            if self.has(column):
                return column
        return "objective"

    @property
    def higher_is_better(self) -> bool:
        return self.monitor == "val_bleu"

    def best_epoch(self) -> int | None:
        """The best epoch by ``monitor``: highest BLEU or lowest cross-entropy. Ties (BLEU on a small
        sample often ties) go to the lower validation cross-entropy, then to the earlier epoch. With
        nothing scored, the last epoch; None for an empty history."""
        if not self.rows:
            return None
        monitor = self.monitor
        scored = [row for row in self.rows if row.get(monitor) is not None]
        if not scored:
            return int(self.rows[-1]["epoch"])
        sign = -1.0 if self.higher_is_better else 1.0

        def key(row: dict[str, Any]) -> tuple[float, float, int]:
            return (sign * row[monitor], row.get("val_cross_entropy") or math.inf, row["epoch"])

        return int(min(scored, key=key)["epoch"])

    def best(self) -> dict[str, Any] | None:
        best = self.best_epoch()
        return None if best is None else self.row(best)

    def perplexity(self, epoch: int | None = None, validation: bool = True) -> float | None:
        """The perplexity of ``epoch`` (default: the best), on validation when it was measured there,
        else on training: ``exp`` of that epoch's cross-entropy."""
        epoch = self.best_epoch() if epoch is None else epoch
        row = self.row(epoch) if epoch is not None else None
        if row is None:
            return None
        if validation and row.get("val_cross_entropy") is not None:
            return perplexity(row["val_cross_entropy"])
        return perplexity(row.get("cross_entropy"))

    def seconds(self) -> float:
        return sum(value for value in self.series("seconds") if value is not None)

    def until(self, epoch: int) -> History:
        """The rows of epochs up to ``epoch`` (what a run resumed after ``epoch`` carries on from)."""
        return History(
            [r for r in self.rows if r["epoch"] <= epoch], self.early_stopping_metric, self.columns
        )

    def append(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
