"""Attention alignments of a GRU-attention model and their pictures: a PNG heatmap or a terminal table.

``Translator.attend(lines)`` returns one :class:`~nmtcli.alignment.Alignment` per line; this module
draws them. It needs no TensorFlow; matplotlib (the ``plot`` extra) is imported only to write a
picture, and rich only to build a table.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .alignment import Alignment
from .errors import ConfigError, NmtError
from .files import atomic_path

if TYPE_CHECKING:  # pragma: no cover
    from rich.table import Table

PICTURE_FORMATS = (".png", ".svg", ".pdf")


# --------------------------------------------------------------------------------------------------
# Picture files


def picture_paths(path: str | os.PathLike, count: int) -> list[Path]:
    """Where the pictures of ``count`` sentences go: ``path`` itself for one, else ``stem-1.png``,
    ``stem-2.png``, ... beside it (numbered by input line)."""
    path = Path(path)
    if count == 1:
        return [path]
    return [path.with_name(f"{path.stem}-{i}{path.suffix}") for i in range(1, count + 1)]


def check_picture_path(path: str | os.PathLike) -> None:
    """Refuse a file name whose extension matplotlib would not write, or a missing matplotlib."""
    suffix = Path(path).suffix.lower()
    if suffix not in PICTURE_FORMATS:
        raise ConfigError(
            f"--attention {path}: the file name must end in {', '.join(PICTURE_FORMATS)} "
            "(or give - for a table on stderr)"
        )
    require_matplotlib()


def require_matplotlib() -> None:
    """Fail with the install command, before any work, when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise NmtError("drawing attention pictures needs matplotlib: pip install 'nmtcli[plot]'") from None


def save_picture(alignment: Alignment, path: str | os.PathLike, dpi: int = 150) -> Path:
    """Draw ``alignment`` as a heatmap (source tokens across, output tokens down, weights 0 to 1)
    and write it atomically to ``path``; the format follows the extension (.png, .svg, .pdf)."""
    path = Path(path)
    check_picture_path(path)
    if alignment.empty:
        raise NmtError(f"{path}: nothing to draw for an empty sentence")
    figure = _heatmap_figure(alignment)
    with atomic_path(path, suffix=path.suffix) as tmp:
        # "tight" trims the margins to what the labels and colour bar need, whatever the first guess.
        figure.savefig(
            tmp, dpi=dpi, format=path.suffix.lstrip(".").lower(), bbox_inches="tight", pad_inches=0.15
        )
    return path


def _heatmap_figure(alignment: Alignment):
    # A bare Figure, not pyplot: no global state, no GUI backend, and a caller's own pyplot setup
    # (a notebook's backend) is left alone.
    import matplotlib.ticker
    from matplotlib.figure import Figure

    weights = alignment.weights
    rows, columns = weights.shape
    sources, targets = alignment.source_labels, alignment.target_labels
    longest_source = max(len(label) for label in sources)
    longest_target = max(len(label) for label in targets)
    slanted = longest_source > 2

    # Square cells of a fixed size, so that long sentences give bigger pictures, not smaller text;
    # margins grow with the longest labels. Sizes in inches.
    large = max(rows, columns) > 30
    cell = 0.28 if large else 0.42
    label_width = 0.09 * longest_target + 0.6
    label_height = (0.07 * longest_source if slanted else 0.1) + 0.6
    width = max(4.5, label_width + columns * cell + 1.3)
    title = _wrapped_title(alignment, width)
    height = max(3.0, 0.25 * title.count("\n") + 0.8 + label_height + rows * cell)

    figure = Figure(figsize=(width, height))
    axes = figure.subplots()
    # Diffuse attention (character models) would be all pale on a 0-1 scale: stop the scale at the
    # largest weight, rounded up to a tenth; the colour bar says where.
    top = min(1.0, max(0.1, np.ceil(float(weights.max()) * 10) / 10))
    image = axes.imshow(weights, cmap="Blues", vmin=0.0, vmax=top, aspect="equal", interpolation="nearest")
    # The colour bar sits beside the cells (axes coordinates follow the square-celled image) and is
    # as tall as the grid, but at most 8 rows, from the top.
    bar_height = min(1.0, 8 / rows)
    bar = axes.inset_axes(
        [1.0 + 0.15 / (columns * cell), 1.0 - bar_height, 0.18 / (columns * cell), bar_height]
    )
    colorbar = figure.colorbar(image, cax=bar)
    colorbar.locator = matplotlib.ticker.MaxNLocator(5)
    colorbar.set_label("attention weight", fontsize=9)
    colorbar.ax.tick_params(labelsize=8)

    font = 8 if large else 10
    axes.set_xticks(range(columns), sources, fontsize=font)
    axes.set_yticks(range(rows), targets, fontsize=font)
    if slanted:
        axes.tick_params(axis="x", labelrotation=50)
        for label in axes.get_xticklabels():
            label.set_horizontalalignment("right")
            label.set_rotation_mode("anchor")
    for label, unknown in zip(axes.get_xticklabels(), alignment.unknown, strict=True):
        if unknown:
            label.set_color("0.5")
            label.set_fontstyle("italic")
    axes.xaxis.set_ticks_position("bottom")
    axes.tick_params(length=0)
    axes.set_xticks(np.arange(-0.5, columns), minor=True)
    axes.set_yticks(np.arange(-0.5, rows), minor=True)
    axes.grid(which="minor", color="white", linewidth=0.8)
    axes.tick_params(which="minor", length=0)
    for spine in axes.spines.values():
        spine.set_visible(False)

    if rows * columns <= 400 and not large:
        # Values in the cells when they fit; near-zero cells stay blank so the pattern stands out.
        for t in range(rows):
            for s in range(columns):
                value = float(weights[t, s])
                if value >= 0.005:
                    axes.text(
                        s,
                        t,
                        f"{value:.2f}".removeprefix("0"),
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if value > 0.55 * top else "0.15",
                    )

    xlabel = "source tokens"
    if any(alignment.unknown):
        xlabel += " (grey italic: unknown to the model)"
    axes.set_xlabel(xlabel, fontsize=10)
    axes.set_ylabel("output tokens", fontsize=10)
    axes.set_title(title, fontsize=11, loc="left")
    return figure


def _wrapped_title(alignment: Alignment, width_inches: float) -> str:
    chars = max(30, int(width_inches * 9))  # about 9 characters of 11-point text per inch
    source = textwrap.fill(alignment.source, chars, subsequent_indent="  ")
    translation = textwrap.fill(alignment.translation or "(empty)", chars, subsequent_indent="  ")
    return f"{source}\n\u2192 {translation}"


# --------------------------------------------------------------------------------------------------
# Terminal table


def heatmap_table(alignment: Alignment) -> Table:
    """A rich table: one column per source token, one row per output token, each cell the weight
    in percent on a background shaded by it (the shading shows only on a colour terminal)."""
    from rich import box
    from rich.color import Color
    from rich.style import Style
    from rich.table import Table
    from rich.text import Text

    caption = "% of each output token's attention per source token"
    if any(alignment.unknown):
        caption += "; * unknown to the model (it saw <unk>)"
    # Text objects throughout: a sentence is data, never rich markup ("[b]" must print as typed).
    table = Table(
        title=Text(f"{alignment.source}\n\u2192 {alignment.translation}"),
        title_justify="left",
        caption=Text(caption, no_wrap=True, overflow="ignore"),
        caption_justify="left",
        box=box.SIMPLE_HEAD,
        padding=(0, 0),
        pad_edge=False,
        collapse_padding=True,
    )
    table.add_column("", style="bold", justify="right", no_wrap=True)
    for label, unknown in zip(alignment.source_labels, alignment.unknown, strict=True):
        header = Text(label + "*", style="dim italic") if unknown else Text(label, style="bold")
        table.add_column(header, justify="right", no_wrap=True, min_width=3)
    for label, row in zip(alignment.target_labels, alignment.weights, strict=True):
        cells = []
        for value in row.tolist():
            percent = round(100 * value)
            if not percent:
                cells.append(Text(" \u00b7", style="dim"))  # the terminal's own background
                continue
            shade = round(255 * (1.0 - 0.8 * value))  # near white (0) to dark blue (1)
            style = Style(
                bgcolor=Color.from_rgb(shade, shade, round(255 - 100 * value)),
                color="white" if value > 0.55 else "black",
            )
            cells.append(Text(f" {percent}", style=style))
        table.add_row(Text(label + " "), *cells)
    return table
