"""``nmt info``: the model card of a run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import NmtError
from . import render
from .options import JsonOpt, ModelOpt, RunArg, WorkspaceOpt, one_run


def info(
    run: RunArg = None,
    model: ModelOpt = None,
    workspace: WorkspaceOpt = None,
    plot_model: Annotated[
        Path | None,
        typer.Option(
            "--plot-model",
            help="Also draw the model's layers to this picture (.png, .svg, .pdf); needs pydot and Graphviz.",
            show_default=False,
        ),
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Print a model card: architecture, sizes, parameters, training, data, scores and versions."""
    from ..model_card import (
        check_picture_path,
        model_card,
        plot_model_picture,
        plot_model_requirements,
        render_text,
    )

    if plot_model is not None:
        check_picture_path(plot_model)
        missing = plot_model_requirements()
        if missing:
            raise NmtError(missing)
    run_dir = one_run(run, model, workspace)
    card = model_card(run_dir)
    if plot_model is not None:
        from ..runtime import quiet_import

        quiet_import()
        plot_model_picture(run_dir, plot_model)

    def show(console) -> None:
        console.print(render_text(card))
        if plot_model is not None:
            console.print(f"model picture saved to {plot_model}")

    render.print_result({**card, "model_picture": str(plot_model) if plot_model else None}, json_output, show)
