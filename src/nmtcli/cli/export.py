"""``nmt export``: a TensorFlow SavedModel, or a CTranslate2 model, that translates strings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from ..errors import ConfigError
from ..run_folder import CTRANSLATE2_EXPORT, EXPORT, RunFolder
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
            help=f"Folder to write to \\[default: RUN/{EXPORT} (savedmodel), RUN/{CTRANSLATE2_EXPORT} "
            "(ctranslate2)].",
            show_default=False,
        ),
    ] = None,
    format: Annotated[
        Literal["savedmodel", "ctranslate2"],
        typer.Option(
            "--format",
            help="savedmodel: TensorFlow, greedy decoding inside the graph | ctranslate2: a CTranslate2 "
            "model with its SentencePiece models (transformer models).",
        ),
    ] = "savedmodel",
    quantization: Annotated[
        Literal["float32", "int16", "int8"] | None,
        typer.Option(
            "--quantization",
            help="ctranslate2: the weights' type \\[default: float32].",
            show_default=False,
        ),
    ] = None,
    workspace: WorkspaceOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Write a model that translates strings: a TensorFlow SavedModel (for TensorFlow Serving or
    tf.saved_model; tokenising, greedy decoding and detokenising run inside the graph, loading it needs
    no nmtcli), or a CTranslate2 model (--format ctranslate2, transformer models)."""
    if quantization is not None and format != "ctranslate2":
        raise ConfigError("--quantization is for --format ctranslate2")
    run_dir = one_run(run, model, workspace)
    if format == "ctranslate2":
        _export_ctranslate2(run_dir, output, quantization or "float32", json_output)
        return
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


def _export_ctranslate2(run_dir: Path, output: Path | None, quantization: str, json_output: bool) -> None:
    from ..ct2 import check_convertible, convert

    check_convertible(run_dir)  # before TensorFlow loads
    from ..runtime import quiet_import

    quiet_import()
    written = convert(run_dir, output or RunFolder(run_dir).ctranslate2_export_dir, quantization)
    result = {
        "run_dir": str(run_dir),
        "output": str(written),
        "format": "ctranslate2",
        "quantization": quantization,
    }
    if json_output:
        render.print_json(result)
        return
    typer.echo(f"exported {run_dir} to {written} (CTranslate2, {quantization})")
