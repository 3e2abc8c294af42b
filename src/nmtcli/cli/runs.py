"""``nmt runs``: the workspace's runs in a table, newest last."""

from __future__ import annotations

from .options import JsonOpt, WorkspaceOpt


def runs(workspace: WorkspaceOpt = None, json_output: JsonOpt = False) -> None:
    """List the workspace's runs: architecture, level, epochs done, best epoch and score, status, size."""
    from ..workspace import Workspace
    from . import render

    ws = Workspace(workspace)
    summaries = ws.run_summaries()
    data = {"runs_dir": str(ws.runs_dir), "runs": [summary.to_dict() for summary in summaries]}
    render.print_result(data, json_output, _table(summaries, ws.runs_dir))


# The history column a best epoch was chosen by (History.monitor), as the table shows it.
LABELS = {"val_cross_entropy": "val CE", "cross_entropy": "train CE", "val_objective": "val loss"}


def _score(summary) -> str:
    """The best epoch's score in the column it was chosen by, and its perplexity unless that is BLEU."""
    if summary.best_score is None:
        return ""
    if summary.monitor == "val_bleu":
        return f"val BLEU {summary.best_score:.2f}"
    text = f"{LABELS.get(summary.monitor, summary.monitor)} {summary.best_score:.4f}"
    return text + (f" (ppl {summary.perplexity:.2f})" if summary.perplexity is not None else "")


def _size(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return ""  # pragma: no cover


def _table(summaries, runs_dir):
    from rich.markup import escape
    from rich.table import Table

    if not summaries:
        return f"no runs in {runs_dir}; `nmt train` makes one"
    table = Table(title=f"Runs in {runs_dir}", title_justify="left")
    for name, justify in (
        ("run", "left"),
        ("arch", "left"),
        ("level", "left"),
        ("epochs", "right"),
        ("best", "right"),
        ("score", "left"),
        ("status", "left"),
        ("size", "right"),
    ):
        table.add_column(name, justify=justify, no_wrap=name != "score")
    for s in summaries:
        if s.status == "damaged":
            row = [escape(s.name), "", "", "", "", escape(s.problem or ""), "[red]damaged[/red]"]
            table.add_row(*row, _size(s.size_bytes))
            continue
        table.add_row(
            escape(s.name),
            s.arch,
            s.level,
            f"{s.epochs_done}/{s.epochs_planned}",
            "" if s.best_epoch is None else str(s.best_epoch),
            _score(s),
            s.status,
            _size(s.size_bytes),
        )

    def show(console) -> None:
        if not console.is_terminal:
            console.width = 1000  # a pipe or file gets whole rows, never squeezed to 80 columns
        console.print(table)

    return show
