"""Training curves: read a run's ``history.csv`` and draw it, as a PNG or as a table in the terminal.

Columns are read by name, so columns added later (``val_bleu``) are drawn too. The PNG needs
matplotlib (``pip install 'nmtcli[plot]'``) and is drawn on an Agg canvas, never in a window; the
terminal rendering needs only rich. Several runs overlay on one picture, one colour per run, training
solid and validation dashed.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError, ModelError
from .files import atomic_path
from .history import History
from .run_folder import HISTORY_CSV, RunFolder

HISTORY_FILE = HISTORY_CSV
INSTALL_HINT = "pip install 'nmtcli[plot]'"
# Columns that are not a metric to draw against the epoch, or that have their own treatment. Keras'
# objective is not the loss shown to users; it is drawn only for histories older than the
# cross-entropy columns.
BOOKKEEPING = ("epoch", "learning_rate", "seconds")
OBJECTIVE = ("objective", "val_objective")
# Metrics drawn on a log scale: they span orders of magnitude early in training.
LOG_SCALE = ("perplexity",)
TITLES = {
    "cross_entropy": ("Cross-entropy", "cross-entropy per target token (nats)"),
    "objective": ("Training objective", "objective per token (nats)"),
    "bleu": ("Validation BLEU (sample)", "BLEU"),
    "perplexity": ("Perplexity (log scale)", "perplexity"),
    "learning_rate": ("Learning rate", "learning rate"),
}
METRIC_NAMES = {"bleu": "BLEU", "chrf": "chrF", "ter": "TER"}
SHORT_NAMES = {"perplexity": "ppl", "val_perplexity": "val ppl", "val_bleu": "val BLEU", "seconds": "sec"}
SPARKS = "▁▂▃▄▅▆▇█"
BAR_EIGHTHS = " ▏▎▍▌▋▊▉█"


@dataclass
class RunHistory:
    """One run's history with the name and folder it is drawn under. The best epoch and the column it
    is chosen by are the :class:`~nmtcli.history.History`'s, as training picked them."""

    name: str
    path: Path
    history: History

    @property
    def columns(self) -> list[str]:
        return self.history.columns

    @property
    def rows(self) -> list[dict[str, float | None]]:
        return self.history.rows

    @property
    def epochs(self) -> list[int]:
        return self.history.epochs

    def series(self, column: str) -> list[float | None]:
        return self.history.series(column)

    def has(self, column: str) -> bool:
        return self.history.has(column)

    @property
    def monitor(self) -> str:
        return self.history.monitor

    @property
    def best_epoch(self) -> int | None:
        return self.history.best_epoch()

    def hidden(self) -> tuple[str, ...]:
        """Columns not drawn as metrics: bookkeeping, and the objective when the cross-entropy is there."""
        if self.has("cross_entropy") or self.has("val_cross_entropy"):
            return BOOKKEEPING + OBJECTIVE
        return BOOKKEEPING

    def metrics(self) -> list[str]:
        """Metric names with a value somewhere: ``cross_entropy`` covers it and ``val_cross_entropy``."""
        names: list[str] = []
        for column in self.columns:
            if column in self.hidden() or not self.has(column):
                continue
            name = column.removeprefix("val_")
            if name not in names:
                names.append(name)
        return names

    def best_marker(self) -> tuple[str, int, float] | None:
        """Where the best-epoch star goes: ``(panel, epoch, value)``, on the cross-entropy panel at the
        best epoch's validation cross-entropy (training's without validation); None if not drawn."""
        best = self.best_epoch
        row = self.history.row(best) if best is not None else None
        if row is None:
            return None
        panel = "cross_entropy" if "cross_entropy" in self.metrics() else "objective"
        for column in (f"val_{panel}", panel):
            if row.get(column) is not None:
                return panel, best, float(row[column])
        return None


def read_history(run_dir: str | os.PathLike, name: str | None = None) -> RunHistory:
    """Read ``RUN/history.csv`` (see ``RunFolder.history``); a ModelError if there is none."""
    run_dir = Path(run_dir)
    run = RunFolder(run_dir)
    if not run.has_history():
        raise ModelError(f"{run_dir}: no {HISTORY_FILE} yet; training has not finished an epoch")
    return RunHistory(name or run_dir.resolve().name, run_dir, run.history())


def read_histories(run_dirs: Sequence[Path]) -> list[RunHistory]:
    """Histories of several runs, named by folder (by parent/folder where two share a name)."""
    resolved = [run.resolve() for run in run_dirs]
    names = [run.name for run in resolved]
    histories = []
    for run, full in zip(run_dirs, resolved, strict=True):
        name = full.name if names.count(full.name) == 1 else f"{full.parent.name}/{full.name}"
        history = read_history(run, name)
        if not history.rows:
            raise ModelError(f"{history.path / HISTORY_FILE}: no epochs recorded yet")
        histories.append(history)
    return histories


# --------------------------------------------------------------------------------------------------
# PNG


def have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _panels(histories: Sequence[RunHistory]) -> list[str]:
    """Cross-entropy and perplexity first, then other metrics; the learning rate only if it changed."""
    found: list[str] = []
    for history in histories:
        found += [name for name in history.metrics() if name not in found]
    panels = [name for name in ("cross_entropy", "objective", "perplexity") if name in found]
    panels += [name for name in found if name not in panels]
    rates = {rate for h in histories for rate in h.series("learning_rate") if rate is not None}
    if len(rates) > 1:
        panels.append("learning_rate")
    return panels


def _title(metric: str) -> tuple[str, str]:
    """Panel title and y-axis label of a metric."""
    if metric in TITLES:
        return TITLES[metric]
    label = METRIC_NAMES.get(metric, metric.replace("_", " "))
    return label[:1].upper() + label[1:], label


def render_png(histories: Sequence[RunHistory], path: str | os.PathLike, dpi: int = 110) -> Path:
    """Draw the curves of ``histories`` into ``path`` (PNG, or SVG/PDF by extension); return the path.

    One panel per metric; x is the epoch (integer ticks), one colour per run, training solid and
    validation dashed; a star marks each run's best epoch on the cross-entropy panel.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import LogFormatter, MaxNLocator

    path = Path(path)
    fig = Figure(figsize=(1, 1), layout="constrained")
    canvas = FigureCanvasAgg(fig)
    formats = canvas.get_supported_filetypes()
    extension = path.suffix.lower().lstrip(".")
    if extension not in formats:
        raise ConfigError(
            f"{path}: unknown picture type; end the name with .png, .svg or .pdf", field="output"
        )
    panels = _panels(histories)
    columns = len(panels) if len(panels) <= 3 else 2
    rows = math.ceil(len(panels) / columns)
    legend_rows = 1 if len(histories) == 1 else len(histories) + 3  # one line per run and per style
    fig.set_size_inches(5.2 * columns + 0.4, 3.9 * rows + 0.25 * legend_rows + 0.6)
    axes = fig.subplots(rows, columns, squeeze=False).flatten()
    colours = [f"C{i % 10}" for i in range(len(histories))]
    first = min(min(h.epochs) for h in histories)
    last = max(max(h.epochs) for h in histories)
    for ax, metric in zip(axes, panels, strict=False):
        title, ylabel = _title(metric)
        for history, colour in zip(histories, colours, strict=True):
            _plot_metric(ax, history, metric, colour)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        if metric in LOG_SCALE or metric == "learning_rate":
            ax.set_yscale("log")
            # Plain numbers (4, 6, 10) rather than 4x10^0; minor ticks labelled only on narrow ranges.
            ax.yaxis.set_major_formatter(LogFormatter())
            ax.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5)))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if last - first < 3:  # otherwise the locator, short of whole numbers, ticks at 0.975, 1.0 ...
            ax.set_xlim(first - 0.5, last + 0.5)
        ax.grid(True, alpha=0.3)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    if len(histories) == 1:
        fig.suptitle(f"Training curves: {histories[0].name}")
    else:
        fig.suptitle(f"Training curves: {len(histories)} runs")

    handles = [Line2D([], [], color=c, lw=2, label=h.name) for h, c in zip(histories, colours, strict=True)]
    styles = [Line2D([], [], color="black", ls="-", label="training")]
    if any(c.startswith("val_") and h.has(c) for h in histories for c in h.columns):
        styles.append(Line2D([], [], color="black", ls="--", label="validation"))
    styles.append(Line2D([], [], color="black", ls="", marker="*", markersize=10, label="best epoch"))
    fig.legend(handles=handles + styles, loc="outside lower center", ncols=1 if len(histories) > 1 else 4)
    with atomic_path(path, suffix=path.suffix) as tmp:
        fig.savefig(tmp, format=extension, dpi=dpi)
    return path


def _plot_metric(ax, history: RunHistory, metric: str, colour: str) -> None:
    epochs = history.epochs
    nan = float("nan")
    variants = [(metric, "-")] if metric == "learning_rate" else [(metric, "-"), (f"val_{metric}", "--")]
    for column, style in variants:
        if not history.has(column):
            continue
        values = [nan if v is None else v for v in history.series(column)]
        marker = "o" if len(epochs) <= 30 else None  # dots only where they can be told apart
        ax.plot(epochs, values, ls=style, color=colour, marker=marker, markersize=3)
    marker = history.best_marker()
    if marker is not None and marker[0] == metric:
        _, best, value = marker
        ax.plot([best], [value], ls="", marker="*", markersize=12, color=colour, mec="black", mew=0.6)


# --------------------------------------------------------------------------------------------------
# Terminal


def sparkline(values: Sequence[float | None], width: int = 30) -> str:
    """One block character per value, scaled from the lowest (▁) to the highest (█); gaps stay blank.

    Longer series are thinned to ``width`` marks."""
    if len(values) > width:  # one mark per group of epochs: the group's last value
        step = len(values) / width
        values = [values[min(len(values) - 1, math.ceil((i + 1) * step) - 1)] for i in range(width)]
    known = [v for v in values if v is not None]
    if not known:
        return ""
    low, high = min(known), max(known)
    span = high - low
    marks = []
    for value in values:
        if value is None:
            marks.append(" ")
        else:
            level = 0 if span == 0 else round((value - low) / span * (len(SPARKS) - 1))
            marks.append(SPARKS[level])
    return "".join(marks)


def bar(value: float | None, high: float, width: int = 20) -> str:
    """A horizontal bar of ``value / high`` of ``width`` cells, in eighths of a cell."""
    if value is None or high <= 0:
        return ""
    eighths = round(max(0.0, min(value / high, 1.0)) * width * 8)
    full, part = divmod(eighths, 8)
    return "█" * full + (BAR_EIGHTHS[part] if part else "")


def _shown_rows(history: RunHistory, most: int) -> list[int]:
    """Indexes of the rows to show: all, or every k-th plus the best and the last."""
    count = len(history.rows)
    if count <= most:
        return list(range(count))
    step = math.ceil(count / (most - 2))
    chosen = set(range(0, count, step)) | {count - 1}
    chosen |= {i for i, e in enumerate(history.epochs) if e == history.best_epoch}
    return sorted(chosen)


def _format(value: float | None, column: str) -> str:
    if value is None:
        return "-"
    if column == "seconds":
        return f"{value:.1f}"
    if "cross_entropy" in column or "objective" in column:
        return f"{value:.4f}" if abs(value) < 100 else f"{value:.1f}"
    return f"{value:.2f}" if abs(value) < 1e5 else f"{value:.2e}"


def render_terminal(histories: Sequence[RunHistory], most_rows: int = 20):
    """A rich renderable: per run, a table of epochs with a bar for the column the best epoch is chosen
    by, the best epoch starred, and sparklines of each series in the caption."""
    from rich.console import Group
    from rich.table import Table

    tables = []
    for history in histories:
        monitor, best = history.monitor, history.best_epoch
        shown = _shown_rows(history, most_rows)
        values = [c for c in history.columns if c not in history.hidden() and history.has(c)]
        values += ["seconds"] if history.has("seconds") else []
        high = max((v for v in history.series(monitor) if v is not None), default=0.0)
        table = Table(
            title=f"{history.name}: {len(history.rows)} epoch(s), best {best}", title_justify="left"
        )
        table.add_column("epoch", justify="right")
        for column in values:
            table.add_column(SHORT_NAMES.get(column, column.replace("_", " ")), justify="right")
        table.add_column("", justify="left", no_wrap=True)  # the bar: named in the caption
        for i in shown:
            row = history.rows[i]
            epoch = int(row["epoch"] or 0)
            cells = [f"{epoch}*" if epoch == best else str(epoch)]
            cells += [_format(row.get(c), c) for c in values]
            cells.append(bar(row.get(monitor), high))
            table.add_row(*cells, style="bold" if epoch == best else None)
        lines = [
            f"{c.replace('_', ' ')} {sparkline(history.series(c))}"
            for c in values
            if c != "seconds" and "perplexity" not in c
        ]
        if len(shown) < len(history.rows):
            lines.append(f"showing {len(shown)} of {len(history.rows)} epochs")
        lines.append(f"* best epoch, by {monitor.replace('_', ' ')} (the bar)")
        table.caption = "\n".join(lines)
        table.caption_justify = "left"
        tables.append(table)
    return Group(*tables)
