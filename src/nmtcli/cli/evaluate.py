"""``nmt evaluate``: score a model with sacrebleu and perplexity."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from ..errors import ConfigError, NmtError
from . import render
from .options import (
    BatchOpt,
    BeamSizeOpt,
    Bf16DecodingOpt,
    ComputeTypeOpt,
    DataOpt,
    EngineOpt,
    JsonOpt,
    LengthPenaltyOpt,
    MaxLengthOpt,
    ModelOpt,
    QuietOpt,
    WorkspaceOpt,
)
from .train import check_mlflow_options


def evaluate(
    model: ModelOpt = None,
    workspace: WorkspaceOpt = None,
    data: DataOpt = None,
    split: Annotated[
        Literal["test", "valid", "train"], typer.Option(help="Split of the prepared data to score.")
    ] = "test",
    source: Annotated[
        Path | None,
        typer.Option(
            help="Score this source file instead of a split (one sentence per line).",
            show_default=False,
            readable=False,
        ),
    ] = None,
    reference: Annotated[
        list[Path] | None,
        typer.Option(
            help="Reference translations of --source, line-aligned; repeat for several references.",
            show_default=False,
            readable=False,
        ),
    ] = None,
    bleu: Annotated[bool, typer.Option("--bleu", help="Report BLEU.")] = False,
    chrf: Annotated[bool, typer.Option("--chrf", help="Report chrF.")] = False,
    ter: Annotated[bool, typer.Option("--ter", help="Report TER.")] = False,
    batch_size: BatchOpt = 64,
    max_length: MaxLengthOpt = None,
    beam_size: BeamSizeOpt = 1,
    length_penalty: LengthPenaltyOpt = None,
    bf16_output: Bf16DecodingOpt = False,
    engine: EngineOpt = "auto",
    compute_type: ComputeTypeOpt = "float32",
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the hypotheses to this file.", show_default=False),
    ] = None,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
    mlflow: Annotated[
        bool, typer.Option("--mlflow", help="Add the scores to the model's MLflow run (nmt train --mlflow).")
    ] = False,
    mlflow_uri: Annotated[
        str | None,
        typer.Option(
            "--mlflow-uri",
            help="MLflow tracking URI \\[default: the one the model was trained with].",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Score a model with sacrebleu (BLEU, chrF, TER) and perplexity; default metrics BLEU and chrF.

    Transformer models are scored with CTranslate2 by default (perplexity too); --engine tensorflow
    scores them as training did.
    """
    from ..config import DecodingConfig
    from ..workspace import Workspace, check_output, resolve_model

    metrics = [name for name, chosen in (("bleu", bleu), ("chrf", chrf), ("ter", ter)) if chosen]
    metrics = metrics or ["bleu", "chrf"]
    if (source is None) != (not reference):
        raise ConfigError("--source and --reference go together")
    decoding = DecodingConfig(batch_size, max_length, beam_size, length_penalty, bf16_output)
    check_mlflow_options(mlflow, mlflow_uri)
    check_output(output, [source, *(reference or [])])
    # Every path before TensorFlow loads, so a mistake is reported at once.
    ws = Workspace(workspace)
    run_dir, note = resolve_model(model, ws)
    if note and not quiet:
        render.notice(note)
    if source is not None:
        sources, references = _own_files(source, reference or [])
        scored, key = str(source), str(source)
    else:
        sources, references, scored = _split_references(run_dir, data, ws, split)
        key = split

    from ..engines import engine_for, open_translator

    chosen = engine_for(run_dir, engine)
    from ..evaluation import evaluate as evaluate_model
    from ..files import atomic_write_text

    tracker = None
    if mlflow:  # find the MLflow run before the long part
        from ..tracking import MlflowTracker

        tracker = MlflowTracker.for_run(run_dir, mlflow_uri)
    with render.library_notices(quiet):
        translator = open_translator(run_dir, chosen, compute_type)
    result = evaluate_model(translator, sources, references, metrics, decoding, model_name=run_dir.name)
    if output is not None:
        atomic_write_text(output, "".join(h + "\n" for h in result.hypotheses))
    _record_scores(run_dir, key, result, scored)
    if tracker is not None:
        tracker.log_evaluation(split if source is None else source.stem, {"data": scored, **result.to_dict()})
    render.print_result({"data": scored, **result.to_dict()}, json_output, render.scores(result, scored))


def _read_text_lines(path: Path, what: str) -> list[str]:
    from ..corpus import check_readable, read_lines

    with open(check_readable(path, what), "rb") as handle:
        return [line for _, line in read_lines(handle, str(path))]


def _own_files(source: Path, reference: list[Path]) -> tuple[list[str], list[list[str]]]:
    """``--source`` and its ``--reference`` files, checked to be line-aligned."""
    sources = _read_text_lines(source, "source")
    columns = [_read_text_lines(path, "reference") for path in reference]
    for path, lines in zip(reference, columns, strict=True):
        if len(lines) != len(sources):
            raise ConfigError(f"{path} has {len(lines)} lines but {source} has {len(sources)}")
    return sources, [list(refs) for refs in zip(*columns, strict=True)]


def _split_references(run_dir: Path, data: Path | None, ws, split: str):
    """A prepared split to score: the data the run was trained on unless ``--data`` says otherwise."""
    from ..corpus import PreparedData
    from ..run_folder import RunFolder

    run = RunFolder(run_dir)
    if data is None:
        trained_on = Path(run.config().data)
        data = trained_on if PreparedData.is_data_folder(trained_on) else ws.data_dir
    sources, references = PreparedData.load(data).held_out(split, run.manifest(), str(run_dir))
    return sources, references, f"{data}/{split}.tsv"


def _record_scores(run_dir: Path, key: str, result, scored: str) -> None:
    """Keep the scores in the run folder for `nmt info`; a folder we cannot write to only warns."""
    from ..evaluation import record_evaluation

    try:
        record_evaluation(run_dir, key, result, scored)
    except (NmtError, OSError) as exc:
        detail = f"{exc.filename}: {exc.strerror}" if isinstance(exc, OSError) and exc.filename else exc
        render.warn(f"scores not recorded in the model folder: {detail}")
