"""Everything the commands print: results on stdout (rich tables or JSON), notices on stderr.

Results go to stdout and diagnostics to stderr, so ``nmt translate < in > out`` stays clean.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer


def notice(message: str) -> None:
    """A progress note or warning on stderr, prefixed ``nmt: ``."""
    typer.echo(f"nmt: {message}", err=True)


def warn(message: str) -> None:
    notice(f"warning: {message}")


def ignore(message: str) -> None:
    """A log function for --quiet."""


def stdout_console():
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


def stderr_console(whole_tables: bool = False):
    from rich.console import Console

    console = Console(stderr=True, highlight=False, soft_wrap=True)
    if whole_tables and not console.is_terminal:
        console.width = 1000  # a pipe or file gets whole tables, never squeezed to 80 columns
    return console


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def print_result(data: dict[str, Any], as_json: bool, table=None) -> None:
    """The one output helper: ``data`` as JSON, or else ``table`` (a rich renderable, or a callable
    printing to a console) on stdout."""
    if as_json:
        print_json(data)
        return
    console = stdout_console()
    if callable(table):
        table(console)
    elif table is not None:
        console.print(table)


def prepare_summary(manifest: dict[str, Any], output: Path):
    from rich.table import Table

    counts, dropped = manifest["counts"], manifest["dropped"]
    table = Table(title=f"Prepared {Path(manifest['corpus']['path']).name} -> {output}", title_justify="left")
    table.add_column("", style="bold")
    table.add_column("value", justify="right")
    table.add_row("pairs read", f"{counts['read']:,}")
    table.add_row("pairs kept", f"{counts['kept']:,}")
    for reason, count in dropped.items():
        if count:
            table.add_row(f"  dropped: {reason.replace('_', ' ')}", f"{count:,}")
    for split in ("train", "valid", "test"):
        table.add_row(f"{split} pairs (sources)", f"{counts[split]:,} ({counts[split + '_sources']:,})")
    for level in ("word", "char", "subword"):
        if level not in manifest["vocab_size"]:  # data prepared before the subword level
            continue
        sizes = manifest["vocab_size"][level]
        unk = manifest["unk_rate"][level]["valid"]
        table.add_row(f"{level} vocab source / target", f"{sizes['source']:,} / {sizes['target']:,}")
        table.add_row(f"{level} unknown rate on valid", f"{unk['source']:.2%} / {unk['target']:.2%}")
    return table


def train_summary_line(summary: dict[str, Any]) -> str:
    best = summary["best"] or {}
    line = f"model saved to {summary['run']} (best epoch {summary['best_epoch']}"
    for column, digits in (("val_cross_entropy", 4), ("val_perplexity", 2), ("val_bleu", 2)):
        if best.get(column) is not None:
            line += f", {column} {best[column]:.{digits}f}"
    return line + ")"


def scores(result, scored: str):
    """A printer of ``result`` (an ``EvaluationResult``): the table, then the signatures."""
    from rich.table import Table

    table = Table(
        title=f"{result.model} on {scored}: {result.sentences:,} sentences, {result.references:,} references",
        title_justify="left",
    )
    table.add_column("metric", style="bold")
    table.add_column("multi-reference", justify="right")
    table.add_column("first reference", justify="right")
    for name, value in result.scores.items():
        table.add_row(
            name.upper() if name != "chrf" else "chrF",
            f"{value:.2f}",
            f"{result.single_reference_scores[name]:.2f}",
        )
    if result.perplexity is not None:
        table.add_row("perplexity", f"{result.perplexity:.2f}", "")

    def show(console) -> None:
        console.print(table)
        for name, signature in result.signatures.items():
            console.print(f"{name}: {signature}")
        console.print(f"nmtcli: {result.signature()}")

    return show


@contextlib.contextmanager
def library_notices(quiet: bool) -> Iterator[None]:
    """The library's log records while a model opens (such as writing its CTranslate2 copy) as
    ``nmt:`` notices on stderr; warnings even with ``--quiet``."""

    class Notices(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.WARNING:
                warn(record.getMessage())
            elif not quiet:
                notice(record.getMessage())

    from ..logs import handled_by

    with handled_by(Notices(logging.INFO)):
        yield
