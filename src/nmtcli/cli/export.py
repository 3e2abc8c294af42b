"""``nmt export``: a TensorFlow SavedModel that translates strings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..run_folder import EXPORT, RunFolder
from . import render
from .options import JsonOpt, ModelOpt, RunArg, WorkspaceOpt, one_run


def export_model(
    run: RunArg = None,
    model: ModelOpt = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help=f"Folder to write the SavedModel to \\[default: RUN/{EXPORT}].",
            show_default=False,
        ),
    ] = None,
    workspace: WorkspaceOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Write a TensorFlow SavedModel that translates strings, for TensorFlow Serving or tf.saved_model.

    Tokenising, greedy decoding and detokenising run inside the graph; loading it needs no nmtcli.
    """
    run_dir = one_run(run, model, workspace)
    from ..runtime import quiet_import

    quiet_import()
    from ..export import export

    result = export(run_dir, output or RunFolder(run_dir).export_dir)
    if json_output:
        render.print_json(result.to_dict())
        return
    typer.echo(f"exported {result.run_dir} to {result.output}")
    typer.echo(f"signature: {result.signature}")
    if result.imports:
        typer.echo(f"before tf.saved_model.load: import {', '.join(result.imports)}")
