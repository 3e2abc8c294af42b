"""``nmt plot``: training curves of one or more runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import ConfigError
from . import render
from .options import WorkspaceOpt


def plot(
    runs: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Run folders to draw; several are overlaid \\[default: the workspace's latest run].",
            show_default=False,
        ),
    ] = None,
    model: Annotated[
        list[Path] | None,
        typer.Option(
            "--model",
            "-m",
            help="Run folder to draw, as the arguments; repeat to overlay several.",
            show_default=False,
        ),
    ] = None,
    workspace: WorkspaceOpt = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Picture to write: .png, .svg or .pdf \\[default: RUN/curves.png for one run].",
            show_default=False,
        ),
    ] = None,
    terminal: Annotated[
        bool, typer.Option("--terminal", help="Show a table in the terminal instead of a picture.")
    ] = False,
) -> None:
    """Draw training curves: cross-entropy and perplexity per epoch, training solid and validation dashed."""
    from ..curves import INSTALL_HINT, have_matplotlib, read_histories, render_png, render_terminal
    from ..run_folder import RunFolder
    from ..workspace import Workspace, check_output, resolve_model_dir

    if terminal and output is not None:
        raise ConfigError("--terminal shows the curves here; it takes no --output")
    ws = Workspace(workspace)
    run_dirs: list[Path] = []
    for run in [*(runs or []), *(model or [])] or [None]:
        run_dir = resolve_model_dir(run, ws)
        if run_dir.resolve() not in [r.resolve() for r in run_dirs]:
            run_dirs.append(run_dir)
    if output is not None:
        check_output(output, allowed=[RunFolder(run_dir).curves_path for run_dir in run_dirs])
    histories = read_histories(run_dirs)
    if not terminal and not have_matplotlib():
        render.notice(f"matplotlib is not installed, so here is a table; for a picture: {INSTALL_HINT}")
        terminal = True
    if terminal:
        console = render.stdout_console()
        if not console.is_terminal:  # a file or a pipe: no screen to fit, so never cut a column
            console.width = max(console.width, 160)
        console.print(render_terminal(histories))
        return
    if output is None:
        if len(run_dirs) > 1:
            raise ConfigError("several runs: say where the picture goes with --output FILE.png")
        output = RunFolder(run_dirs[0]).curves_path
    render_png(histories, output)
    typer.echo(f"curves saved to {output}")
