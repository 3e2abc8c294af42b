"""The `nmt` command: a thin layer that parses options, calls the library and prints.

Results go to stdout, progress and diagnostics to stderr. Library errors (``NmtError``) become one
line on stderr and exit code 1 in one place, ``NmtGroup.invoke``; ``NMT_DEBUG=1`` shows the traceback.
TensorFlow is imported only inside the commands that need it, so ``nmt --help`` stays fast.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

try:  # recent Typer releases carry their own copy of Click
    from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
except ImportError:  # pragma: no cover - older Typer on Click
    from click.exceptions import ClickException, NoArgsIsHelpError, UsageError

from . import __version__
from .config import DEFAULT_LENGTH_PENALTY, ModelConfig, PrepareConfig, TrainConfig
from .errors import ConfigError, NmtError

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _fail(message: str, code: int = EXIT_ERROR) -> None:
    typer.echo(f"nmt: error: {message}", err=True)
    raise typer.Exit(code)


class NmtGroup(TyperGroup):
    """Maps the project's errors to one line on stderr and a non-zero exit code."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except NoArgsIsHelpError as exc:
            typer.echo(exc.ctx.get_help() if exc.ctx else str(exc))
            sys.exit(EXIT_USAGE)
        except UsageError as exc:
            # A value of the wrong type, an unknown option, a missing argument: one line, not a box.
            command = exc.ctx.command_path if exc.ctx else "nmt"
            typer.echo(f"nmt: error: {exc.format_message()} (see '{command} --help')", err=True)
            sys.exit(EXIT_USAGE)
        except ClickException as exc:
            typer.echo(f"nmt: error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except typer.Abort:
            typer.echo("nmt: aborted", err=True)
            sys.exit(EXIT_ERROR)
        sys.exit(code if isinstance(code, int) else 0)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            if os.environ.get("NMT_DEBUG"):
                raise
            _fail(exc.for_command_line())
        except NmtError as exc:
            if os.environ.get("NMT_DEBUG"):
                raise
            _fail(str(exc))
        except OSError as exc:
            if os.environ.get("NMT_DEBUG"):
                raise
            where = f"{exc.filename}: " if exc.filename else ""
            _fail(f"{where}{exc.strerror or exc}")
        except KeyboardInterrupt as exc:
            from .interrupts import exit_now

            exit_now(exc)  # ends the process when main() installed the signal handlers
            typer.echo("nmt: interrupted", err=True)
            raise typer.Exit(EXIT_INTERRUPTED) from None


app = typer.Typer(
    cls=NmtGroup,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Train and run neural machine translation models on your own parallel corpus.\n\n"
    "Quick start: nmt prepare spa.txt && nmt train && nmt evaluate && echo 'Go.' | nmt translate",
)

# Options shared by several commands, declared once.
WorkspaceOpt = Annotated[
    Path | None,
    typer.Option(
        "--workspace",
        "-w",
        help="Workspace folder \\[default: $NMT_WORKSPACE or ./nmt-workspace].",
        show_default=False,
    ),
]
ModelOpt = Annotated[
    Path | None,
    typer.Option(
        "--model",
        "-m",
        help="Run folder from `nmt train` \\[default: the workspace's latest].",
        show_default=False,
    ),
]
DataOpt = Annotated[
    Path | None,
    typer.Option(
        "--data", "-d", help="Prepared data folder \\[default: WORKSPACE/data].", show_default=False
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
QuietOpt = Annotated[
    bool,
    typer.Option("--quiet", "-q", help="No progress or notices on stderr; warnings and errors still show."),
]
BatchOpt = Annotated[int, typer.Option("--batch-size", "-b", help="Sentences per decoding batch.")]
MaxLengthOpt = Annotated[
    int | None,
    typer.Option(
        "--max-length",
        help="Most tokens to generate per sentence \\[default: 2 x source + 10].",
        show_default=False,
    ),
]
BeamSizeOpt = Annotated[
    int, typer.Option("--beam-size", help="Hypotheses kept per sentence; 1 = greedy search.")
]
Bf16DecodingOpt = Annotated[
    bool,
    typer.Option(
        "--bf16-output",
        help="On a CPU with native bfloat16 (AVX512-BF16, AMX): the output layer's product in bfloat16, "
        "as in training; faster with large vocabularies, and a near tie may pick the other word. "
        "Ignored elsewhere.",
    ),
]
LengthPenaltyOpt = Annotated[
    float,
    typer.Option(
        "--length-penalty",
        help="Beam search: GNMT length penalty alpha; 0 = plain log-probability, more favours longer output.",
    ),
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"nmtcli {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit."),
    ] = False,
) -> None:
    """Train and run neural machine translation models on your own parallel corpus."""


def _workspace(path: Path | None):
    from .workspace import Workspace

    return Workspace(path)


def _stdout_console():
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def _load_tensorflow() -> None:
    from .runtime import quiet_import

    quiet_import()


# --------------------------------------------------------------------------------------------------


PresetOpt = Annotated[
    str | None,
    typer.Option(
        help="A named recipe (default, seed-000, seed-002, seed-003) filling in the options not given; "
        "see docs/results.md.",
        show_default=False,
    ),
]


def _with_preset(
    ctx: typer.Context, preset: str | None, section: str, values: dict[str, Any]
) -> dict[str, Any]:
    """``values`` with the preset's settings for ``section`` wherever the option was left at its default."""
    if preset is None:
        return values
    from .presets import get_preset

    chosen = getattr(get_preset(preset), section)
    merged = dict(values)
    for name, value in chosen.items():
        source = ctx.get_parameter_source(name)
        if source is None or source.name == "DEFAULT":
            merged[name] = value
    return merged


@app.command()
def prepare(
    ctx: typer.Context,
    corpus: Annotated[
        Path,
        typer.Argument(
            help="Corpus: anki/Tatoeba TSV (spa.txt), CSV with a header, or the source of aligned files; "
            "- reads stdin.",
            show_default=False,
            readable=False,
        ),
    ],
    target_file: Annotated[
        Path | None,
        typer.Argument(
            help="Target file, when CORPUS and it are aligned plain-text files.",
            show_default=False,
            readable=False,
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Data folder to write \\[default: WORKSPACE/data].",
            show_default=False,
        ),
    ] = None,
    workspace: WorkspaceOpt = None,
    format: Annotated[str, typer.Option(help="auto | tsv | csv | aligned.")] = "auto",
    source_column: Annotated[
        str | None,
        typer.Option(
            help="Source column: header name (CSV) or number counting from 1 \\[default: 1].",
            show_default=False,
        ),
    ] = None,
    target_column: Annotated[
        str | None,
        typer.Option(
            help="Target column: header name (CSV) or number counting from 1 \\[default: 2].",
            show_default=False,
        ),
    ] = None,
    encoding: Annotated[str, typer.Option(help="Text encoding of the corpus.")] = "utf-8",
    on_bad_line: Annotated[str, typer.Option(help="Malformed lines: error | warn | skip.")] = "error",
    limit: Annotated[
        int | None, typer.Option(help="Read only the first N pairs.", show_default=False)
    ] = None,
    reverse: Annotated[
        bool, typer.Option(help="Swap the direction: translate column 2 into column 1.")
    ] = False,
    lowercase: Annotated[bool, typer.Option(help="Lower-case both sides.")] = False,
    min_words: Annotated[int, typer.Option(help="Drop pairs with a side shorter than this (words).")] = 1,
    max_words: Annotated[int, typer.Option(help="Drop pairs with a side longer than this (words).")] = 50,
    max_chars: Annotated[
        int, typer.Option(help="Drop pairs with a side longer than this (characters).")
    ] = 300,
    dedupe: Annotated[bool, typer.Option(help="Drop exact duplicate pairs.")] = True,
    valid_size: Annotated[
        float,
        typer.Option(help="Validation share of source sentences: a fraction below 1, or a count."),
    ] = 0.05,
    test_size: Annotated[
        float, typer.Option(help="Test share of source sentences: a fraction below 1, or a count.")
    ] = 0.05,
    seed: Annotated[int, typer.Option(help="Seed of the shuffled split.")] = 1234,
    max_vocab: Annotated[
        int,
        typer.Option(help="Largest vocabulary per side and level, specials included; 0 = no limit."),
    ] = 30000,
    min_count: Annotated[
        int, typer.Option(help="Keep tokens seen at least this often in training data.")
    ] = 2,
    subword_size: Annotated[
        int, typer.Option(help="Pieces per subword (SentencePiece) model, 256 byte pieces included.")
    ] = 8000,
    subword_type: Annotated[str, typer.Option(help="Subword model: unigram | bpe.")] = "unigram",
    joint_subwords: Annotated[
        bool, typer.Option(help="One subword model for both sides (--no-joint-subwords: one per side).")
    ] = True,
    subword_sample: Annotated[
        int, typer.Option(help="Most training sentences the subword model learns from (both sides count).")
    ] = PrepareConfig.subword_sample,
    preset: PresetOpt = None,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Read a parallel corpus, clean it, split train/valid/test and build word and char vocabularies."""
    from .corpus import prepare as prepare_corpus

    chosen = _with_preset(ctx, preset, "prepare", dict(limit=limit, max_vocab=max_vocab, min_count=min_count))
    limit, max_vocab, min_count = chosen["limit"], chosen["max_vocab"], chosen["min_count"]
    config = PrepareConfig(
        format=format,
        source_column=source_column,
        target_column=target_column,
        encoding=encoding,
        on_bad_line=on_bad_line,
        limit=limit,
        reverse=reverse,
        lowercase=lowercase,
        min_words=min_words,
        max_words=max_words,
        max_chars=max_chars,
        dedupe=dedupe,
        valid_size=valid_size,
        test_size=test_size,
        seed=seed,
        max_vocab=max_vocab or None,
        min_count=min_count,
        subword_size=subword_size,
        subword_type=subword_type,
        joint_subwords=joint_subwords,
        subword_sample=subword_sample,
    )
    output = output or _workspace(workspace).data_dir
    manifest = prepare_corpus(
        corpus,
        output,
        config,
        target_path=target_file,
        warn=lambda message: typer.echo(f"nmt: {message}", err=True),
    )
    if json_output:
        _print_json({"output": str(output), **manifest})
        return
    _print_prepare_summary(manifest, output)


def _print_prepare_summary(manifest: dict[str, Any], output: Path) -> None:
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
        if level not in manifest["vocab_size"]:
            continue
        sizes = manifest["vocab_size"][level]
        unk = manifest["unk_rate"][level]["valid"]
        table.add_row(f"{level} vocab source / target", f"{sizes['source']:,} / {sizes['target']:,}")
        table.add_row(f"{level} unknown rate on valid", f"{unk['source']:.2%} / {unk['target']:.2%}")
    _stdout_console().print(table)


# --------------------------------------------------------------------------------------------------


@app.command()
def train(
    ctx: typer.Context,
    data: DataOpt = None,
    workspace: WorkspaceOpt = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Run folder to write \\[default: a new folder in WORKSPACE/runs].",
            show_default=False,
        ),
    ] = None,
    arch: Annotated[str, typer.Option(help="lstm | gru-attention | transformer.")] = ModelConfig.arch,
    level: Annotated[str, typer.Option(help="word | char | subword.")] = ModelConfig.level,
    epochs: Annotated[int, typer.Option(help="Most epochs to train.")] = TrainConfig.epochs,
    batch_size: Annotated[
        int, typer.Option("--batch-size", "-b", help="Sentence pairs per batch.")
    ] = TrainConfig.batch_size,
    embedding_dim: Annotated[int, typer.Option(help="Embedding size.")] = ModelConfig.embedding_dim,
    units: Annotated[
        int, typer.Option(help="Recurrent units (per direction in the encoder).")
    ] = ModelConfig.units,
    dropout: Annotated[float, typer.Option(help="Dropout on embeddings and outputs.")] = ModelConfig.dropout,
    layers: Annotated[int, typer.Option(help="Transformer: layers per stack.")] = ModelConfig.layers,
    heads: Annotated[int, typer.Option(help="Transformer: attention heads.")] = ModelConfig.heads,
    ff_dim: Annotated[int, typer.Option(help="Transformer: feed-forward width.")] = ModelConfig.ff_dim,
    tie_embeddings: Annotated[
        bool, typer.Option(help="Output layer shares the target embedding matrix (fewer parameters).")
    ] = ModelConfig.tie_embeddings,
    optimizer: Annotated[str, typer.Option(help="adam | rmsprop.")] = TrainConfig.optimizer,
    learning_rate: Annotated[float, typer.Option(help="Learning rate.")] = TrainConfig.learning_rate,
    clipnorm: Annotated[float, typer.Option(help="Gradient norm clipping; 0 = off.")] = TrainConfig.clipnorm
    or 0.0,
    seed: Annotated[int, typer.Option(help="Random seed.")] = TrainConfig.seed,
    patience: Annotated[
        int,
        typer.Option(help="Stop after this many epochs without a better validation loss; 0 = never."),
    ] = TrainConfig.patience,
    label_smoothing: Annotated[
        float, typer.Option(help="Spread this share of the target probability over the vocabulary.")
    ] = TrainConfig.label_smoothing,
    reduce_lr_factor: Annotated[
        float,
        typer.Option(
            help="Multiply the learning rate by this after --reduce-lr-patience epochs without "
            "improvement; 0 = off.",
        ),
    ] = TrainConfig.reduce_lr_factor or 0.0,
    reduce_lr_patience: Annotated[
        int, typer.Option(help="Epochs without improvement before the learning rate is reduced.")
    ] = TrainConfig.reduce_lr_patience,
    bleu_sample: Annotated[
        int,
        typer.Option(help="Validation sentences translated after each epoch for val_bleu; 0 = off."),
    ] = TrainConfig.bleu_sample,
    early_stopping_metric: Annotated[
        str,
        typer.Option(help="loss | bleu: what picks the best epoch and stops training early."),
    ] = TrainConfig.early_stopping_metric,
    max_minutes: Annotated[
        float,
        typer.Option(help="Time budget: stop before an epoch that would end past it; 0 = none."),
    ] = TrainConfig.max_minutes or 0.0,
    preset: PresetOpt = None,
    jit_compile: Annotated[
        bool, typer.Option(help="Compile the training step with XLA.")
    ] = TrainConfig.jit_compile,
    mixed_precision: Annotated[
        bool, typer.Option(help="Compute in float16 with float32 weights (for GPUs); saved in float32.")
    ] = TrainConfig.mixed_precision,
    bf16_output: Annotated[
        bool,
        typer.Option(
            help="On a CPU with native bfloat16 (AVX512-BF16, AMX): the output layer's products in bfloat16 "
            "while training (weights, logits and softmax stay float32); ignored elsewhere."
        ),
    ] = TrainConfig.bf16_output,
    distribute: Annotated[
        str | None,
        typer.Option(
            help="mirrored: one replica per local GPU | multi-worker: one process per machine, cluster from "
            "TF_CONFIG (give the same --output to every worker). --batch-size is the global batch.",
            show_default=False,
        ),
    ] = None,
    resume: Annotated[
        bool | None,
        typer.Option(
            "--resume/--no-resume",
            help="Resume the newest interrupted run / always start anew \\[default: resume an interrupted "
            "run with the same settings].",
            show_default=False,
        ),
    ] = None,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
    mlflow: Annotated[
        bool, typer.Option("--mlflow", help="Log parameters, metrics and the run folder to MLflow.")
    ] = False,
    mlflow_uri: Annotated[
        str | None,
        typer.Option(
            "--mlflow-uri",
            help="MLflow tracking URI \\[default: $MLFLOW_TRACKING_URI or sqlite:///WORKSPACE/mlflow.db].",
            show_default=False,
        ),
    ] = None,
    experiment: Annotated[
        str | None,
        typer.Option(
            help="MLflow experiment \\[default: $MLFLOW_EXPERIMENT_NAME or nmtcli].", show_default=False
        ),
    ] = None,
    tensorboard: Annotated[
        bool, typer.Option("--tensorboard", help="Write TensorBoard logs to RUN/tensorboard.")
    ] = False,
) -> None:
    """Train a seq2seq model (LSTM, or GRU with attention) on the prepared data."""

    model_options = _with_preset(
        ctx,
        preset,
        "model",
        dict(
            arch=arch,
            level=level,
            embedding_dim=embedding_dim,
            units=units,
            dropout=dropout,
            tie_embeddings=tie_embeddings,
            layers=layers,
            heads=heads,
            ff_dim=ff_dim,
        ),
    )
    options = _with_preset(
        ctx,
        preset,
        "training",
        dict(
            epochs=epochs,
            batch_size=batch_size,
            optimizer=optimizer,
            learning_rate=learning_rate,
            clipnorm=clipnorm,
            seed=seed,
            patience=patience,
            label_smoothing=label_smoothing,
            reduce_lr_factor=reduce_lr_factor,
            reduce_lr_patience=reduce_lr_patience,
            bleu_sample=bleu_sample,
            early_stopping_metric=early_stopping_metric,
            max_minutes=max_minutes,
            jit_compile=jit_compile,
            mixed_precision=mixed_precision,
            bf16_output=bf16_output,
            distribute=distribute,
        ),
    )
    model_config = ModelConfig(**model_options)
    train_config = TrainConfig(
        **{
            **options,
            "clipnorm": options["clipnorm"] or None,
            "reduce_lr_factor": options["reduce_lr_factor"] or None,
            "max_minutes": options["max_minutes"] or None,
        }
    )
    if resume:
        _warn_ignored_on_resume(ctx, [*model_options, *options])
    from .corpus import PreparedData

    PreparedData.load(data or _workspace(workspace).data_dir)  # say what is missing before TF loads
    _check_mlflow_options(mlflow, mlflow_uri, experiment)
    if distribute == "multi-worker":
        from .distribution import read_cluster

        read_cluster()  # say what is wrong with TF_CONFIG before TF loads
    _load_tensorflow()
    from rich.console import Console

    from .logs import to_console
    from .progress import RichProgress
    from .training import train as train_model
    from .translator import Translator

    stderr = Console(stderr=True, highlight=False, soft_wrap=True)
    tracking = _tracking_callbacks(mlflow, mlflow_uri, experiment, tensorboard, workspace)
    with to_console(stderr, enabled=not quiet):  # the library's log records, rendered by rich
        result = train_model(
            model_config,
            train_config,
            data_dir=data,
            workspace=_workspace(workspace),
            run_dir=output,
            resume=resume,
            callbacks=[] if quiet else [RichProgress(stderr, max_minutes=train_config.max_minutes)],
            log=_ignore if quiet else None,
            run_callbacks=tracking,
            translator_factory=Translator,
        )
    summary = {
        "run": str(result.run_dir),
        "parameters": result.parameters,
        "epochs": len(result.history),
        "best_epoch": result.best_epoch,
        "best": result.best if result.history else None,
        "train_seconds": round(sum(row["seconds"] for row in result.history), 1),
    }
    if json_output:
        _print_json(summary)
        return
    best = summary["best"] or {}
    line = f"model saved to {result.run_dir} (best epoch {result.best_epoch}"
    for column, digits in (("val_cross_entropy", 4), ("val_perplexity", 2)):
        if best.get(column) is not None:
            line += f", {column} {best[column]:.{digits}f}"
    if best.get("val_bleu") is not None:
        line += f", val_bleu {best['val_bleu']:.2f}"
    typer.echo(line + ")")


def _warn_ignored_on_resume(ctx: typer.Context, settings: list[str]) -> None:
    """``--resume`` continues a run with the settings it was started with: say which options given
    on this command line are therefore ignored."""
    given = [
        name for name in settings if getattr(ctx.get_parameter_source(name), "name", "") == "COMMANDLINE"
    ]
    if given:
        options = ", ".join("--" + name.replace("_", "-") for name in given)
        typer.echo(
            f"nmt: warning: --resume continues the run with the settings it was started with; "
            f"{options} ignored",
            err=True,
        )


def _check_mlflow_options(mlflow: bool, mlflow_uri: str | None, experiment: str | None = None) -> None:
    if not mlflow and (mlflow_uri is not None or experiment is not None):
        raise ConfigError(f"{'--mlflow-uri' if mlflow_uri is not None else '--experiment'} needs --mlflow")


def _tracking_callbacks(
    mlflow: bool, mlflow_uri: str | None, experiment: str | None, tensorboard: bool, workspace: Path | None
):
    """``run_callbacks`` for ``training.train``: MLflow (connected now, before training) and TensorBoard."""
    if not (mlflow or tensorboard):
        return None
    from .tracking import MlflowTracker, run_callbacks, tracking_uri

    tracker = None
    if mlflow:
        tracker = MlflowTracker(tracking_uri(mlflow_uri, _workspace(workspace)), experiment)
        tracker.connect()
    return run_callbacks(
        tracker, tensorboard, warn=lambda message: typer.echo(f"nmt: warning: {message}", err=True)
    )


# --------------------------------------------------------------------------------------------------


def _read_text_lines(path: Path, what: str) -> list[str]:
    from .corpus import check_readable, read_lines

    with open(check_readable(path, what), "rb") as handle:
        return [line for _, line in read_lines(handle, str(path))]


@app.command()
def evaluate(
    model: ModelOpt = None,
    workspace: WorkspaceOpt = None,
    data: DataOpt = None,
    split: Annotated[str, typer.Option(help="Split of the prepared data to score: test | valid.")] = "test",
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
    length_penalty: LengthPenaltyOpt = DEFAULT_LENGTH_PENALTY,
    bf16_output: Bf16DecodingOpt = False,
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
    """Score a model with sacrebleu (BLEU, chrF, TER) and perplexity; default metrics BLEU and chrF."""
    from .config import DecodingConfig
    from .errors import ConfigError

    metrics = [name for name, chosen in (("bleu", bleu), ("chrf", chrf), ("ter", ter)) if chosen]
    metrics = metrics or ["bleu", "chrf"]
    if split not in ("test", "valid", "train"):
        raise ConfigError(f"--split must be test, valid or train; got {split!r}")
    if (source is None) != (not reference):
        raise ConfigError("--source and --reference go together")
    decoding = DecodingConfig(batch_size, max_length, beam_size, length_penalty, bf16_output)
    _check_mlflow_options(mlflow, mlflow_uri)
    from .workspace import check_output

    check_output(output, [source, *(reference or [])])

    _load_tensorflow()
    from .workspace import resolve_model_dir

    ws = _workspace(workspace)
    run_dir = resolve_model_dir(model, ws)
    tracker = None
    if mlflow:  # find the MLflow run before the long part
        from .tracking import MlflowTracker

        tracker = MlflowTracker.for_run(run_dir, mlflow_uri)
    if source is not None:
        sources = _read_text_lines(source, "source")
        columns = [_read_text_lines(path, "reference") for path in reference or []]
        for path, lines in zip(reference or [], columns, strict=True):
            if len(lines) != len(sources):
                raise ConfigError(f"{path} has {len(lines)} lines but {source} has {len(sources)}")
        references = [list(refs) for refs in zip(*columns, strict=True)]
        scored = str(source)
    else:
        sources, references, scored = _split_references(run_dir, data, ws, split)

    from .evaluation import evaluate as evaluate_model
    from .files import atomic_write_text
    from .translator import Translator

    translator = Translator.load(run_dir)
    result = evaluate_model(translator, sources, references, metrics, decoding, model_name=run_dir.name)
    if output is not None:
        atomic_write_text(output, "".join(h + "\n" for h in result.hypotheses))
    _record_scores(run_dir, split if source is None else str(source), result, scored)
    if tracker is not None:
        tracker.log_evaluation(split if source is None else source.stem, {"data": scored, **result.to_dict()})
    if json_output:
        _print_json({"data": scored, **result.to_dict()})
        return
    _print_scores(result, scored)


def _record_scores(run_dir: Path, key: str, result, scored: str) -> None:
    """Keep the scores in the run folder for `nmt info`; a folder we cannot write to only warns."""
    from .evaluation import record_evaluation

    try:
        record_evaluation(run_dir, key, result, scored)
    except (NmtError, OSError) as exc:
        detail = f"{exc.filename}: {exc.strerror}" if isinstance(exc, OSError) and exc.filename else exc
        typer.echo(f"nmt: warning: scores not recorded in the model folder: {detail}", err=True)


def _split_references(run_dir: Path, data: Path | None, ws, split: str):
    from .corpus import PreparedData, group_references
    from .errors import DataError
    from .run_folder import RunFolder

    run = RunFolder(run_dir)
    if data is None:
        trained_on = Path(run.config().data)
        data = trained_on if (trained_on / "manifest.json").is_file() else ws.data_dir
    prepared = PreparedData.load(data)
    trained = run.manifest()
    if trained is not None and (trained.get("corpus"), trained.get("settings")) != (
        prepared.manifest.get("corpus"),
        prepared.manifest.get("settings"),
    ):
        raise DataError(
            f"{data} was prepared from other data or settings than {run_dir} was "
            "trained on, so its test split may overlap training; pass --source/--reference"
        )
    sources, references = group_references(prepared.pairs(split))
    return sources, references, f"{data}/{split}.tsv"


def _print_scores(result, scored: str) -> None:
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
    console = _stdout_console()
    console.print(table)
    for name, signature in result.signatures.items():
        console.print(f"{name}: {signature}")
    console.print(f"nmtcli: {result.signature()}")


# --------------------------------------------------------------------------------------------------


@app.command()
def translate(
    sentences: Annotated[
        list[str] | None,
        typer.Argument(
            help="Sentences to translate \\[default: lines from --input or stdin].",
            show_default=False,
        ),
    ] = None,
    input: Annotated[
        Path | None,
        typer.Option(
            "--input",
            "-i",
            help="Read sentences from this file, one per line.",
            show_default=False,
            readable=False,
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write translations to this file \\[default: stdout].",
            show_default=False,
        ),
    ] = None,
    model: ModelOpt = None,
    workspace: WorkspaceOpt = None,
    batch_size: BatchOpt = 64,
    max_length: MaxLengthOpt = None,
    beam_size: BeamSizeOpt = 1,
    length_penalty: LengthPenaltyOpt = DEFAULT_LENGTH_PENALTY,
    bf16_output: Bf16DecodingOpt = False,
    attention: Annotated[
        str | None,
        typer.Option(
            "--attention",
            help="Also draw where a gru-attention model looked: FILE.png (.svg, .pdf; FILE-1.png, "
            "FILE-2.png ... for several lines), or - for a table on stderr.",
            metavar="FILE|-",
            show_default=False,
        ),
    ] = None,
    quiet: QuietOpt = False,
) -> None:
    """Translate sentences with greedy or beam search: exactly one output line per input line."""
    from .config import DecodingConfig
    from .corpus import check_readable
    from .errors import ConfigError
    from .workspace import check_output

    if sentences and input is not None:
        raise ConfigError("give sentences as arguments or with --input, not both")
    decoding = DecodingConfig(batch_size, max_length, beam_size, length_penalty, bf16_output)
    if input is not None:
        check_readable(input, "input")
    check_output(output, [input], option="--output")
    if attention is not None:
        if beam_size != 1:
            raise ConfigError("--attention shows greedy decoding; leave out --beam-size")
        lines = _attention_lines(sentences, input, output, attention)
    else:
        lines = itertools.chain.from_iterable(_input_chunks(sentences, input, chunk=1024))
    interactive = not sentences and input is None and sys.stdin.isatty()
    _load_tensorflow()
    from .translator import Translator

    translator = Translator.load(_resolve_model(model, workspace))
    results = translator.translate_stream(
        lines, decoding, attention=attention is not None, chunk_size=1 if interactive else 1024
    )
    alignments, truncated = [], 0

    def translations():
        nonlocal truncated
        for result in results:
            truncated += result.truncated
            if result.alignment is not None:
                alignments.append(result.alignment)
            yield result.translation + "\n"

    if output is None:
        for line in translations():
            sys.stdout.write(line)
            sys.stdout.flush()
    else:
        from .files import atomic_open

        with atomic_open(output) as handle:
            handle.writelines(translations())
    if truncated:
        typer.echo(
            f"nmt: warning: {truncated} input line(s) longer than {translator.max_source_tokens} tokens "
            "were cut to that length",
            err=True,
        )
    if attention is not None:
        _draw_attention(alignments, attention, quiet)


MAX_ATTENTION_LINES = 100


def _attention_lines(sentences, input, output, attention: str) -> list[str]:
    """``translate --attention``: the input lines, at most ``MAX_ATTENTION_LINES``, once the picture
    path is known to be writable."""
    from .attention import check_picture_path
    from .errors import ConfigError

    if attention != "-":
        check_picture_path(attention)
        from .workspace import check_output

        check_output(attention, [input, output], option="--attention")
    lines: list[str] = []
    for chunk in _input_chunks(sentences, input, chunk=MAX_ATTENTION_LINES + 1):
        lines += chunk
        if len(lines) > MAX_ATTENTION_LINES:  # stop reading: a huge input is not read to the end
            raise ConfigError(
                f"--attention draws at most {MAX_ATTENTION_LINES} lines; translate longer inputs without it"
            )
    return lines


def _draw_attention(alignments, attention: str, quiet: bool) -> None:
    """One picture (or table on stderr, for ``-``) per line."""
    from rich.console import Console

    from .attention import heatmap_table, picture_paths, save_picture

    stderr = Console(stderr=True, highlight=False, soft_wrap=True)
    if not stderr.is_terminal:
        stderr.width = 1000  # a pipe or file gets whole tables, never squeezed to 80 columns
    paths = picture_paths(attention, len(alignments)) if attention != "-" else [None] * len(alignments)
    for number, (alignment, path) in enumerate(zip(alignments, paths, strict=True), start=1):
        if alignment.empty:
            typer.echo(f"nmt: warning: line {number} is empty: no attention to draw", err=True)
        elif path is None:
            stderr.print(heatmap_table(alignment))
        else:
            save_picture(alignment, path)
            if not quiet:
                typer.echo(f"nmt: attention of line {number} written to {path}", err=True)


def _ignore(message: str) -> None:
    """A log function for --quiet."""


def _resolve_model(model: Path | None, workspace: Path | None) -> Path:
    from .workspace import resolve_model_dir

    return resolve_model_dir(model, _workspace(workspace))


def _input_chunks(sentences: list[str] | None, path: Path | None, chunk: int):
    """Lists of input lines: all arguments at once, or a file/stdin streamed in chunks.

    An interactive stdin is answered line by line.
    """
    from .corpus import read_lines

    if sentences:
        yield list(sentences)
        return
    with contextlib.ExitStack() as stack:
        if path is not None and str(path) != "-":
            handle, name = stack.enter_context(open(path, "rb")), str(path)
        else:
            handle, name = sys.stdin.buffer, "<stdin>"
            if sys.stdin.isatty():
                chunk = 1
        batch: list[str] = []
        for _, line in read_lines(handle, name):
            batch.append(line)
            if len(batch) >= chunk:
                yield batch
                batch = []
        if batch:
            yield batch


@app.command("export")
def export_model(
    output: Annotated[
        Path,
        typer.Option("--output", "-o", help="Folder to write the SavedModel to.", show_default=False),
    ],
    run: Annotated[
        Path | None,
        typer.Argument(
            help="Run folder from `nmt train` \\[default: the workspace's latest].",
            show_default=False,
            metavar="RUN",
        ),
    ] = None,
    model: ModelOpt = None,
    workspace: WorkspaceOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Write a TensorFlow SavedModel that translates strings, for TensorFlow Serving or tf.saved_model.

    Tokenising, greedy decoding and detokenising run inside the graph; loading it needs no nmtcli.
    """
    from .errors import ConfigError

    if run is not None and model is not None:
        raise ConfigError("give the run as an argument or with --model, not both")
    run_dir = _resolve_model(run or model, workspace)
    _load_tensorflow()
    from .export import export

    result = export(run_dir, output)
    if json_output:
        _print_json(result.to_dict())
        return
    typer.echo(f"exported {result.run_dir} to {result.output}")
    typer.echo(f"signature: {result.signature}")


# --------------------------------------------------------------------------------------------------


@app.command()
def plot(
    runs: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Run folders to draw; several are overlaid \\[default: the workspace's latest run].",
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
    from .curves import INSTALL_HINT, have_matplotlib, read_histories, render_png, render_terminal
    from .workspace import resolve_model_dir

    if terminal and output is not None:
        raise ConfigError("--terminal shows the curves here; it takes no --output")
    ws = _workspace(workspace)
    run_dirs: list[Path] = []
    for run in runs or [None]:
        run_dir = resolve_model_dir(run, ws)
        if run_dir.resolve() not in [r.resolve() for r in run_dirs]:
            run_dirs.append(run_dir)
    if output is not None:
        from .run_folder import RunFolder
        from .workspace import check_output

        check_output(output, allowed=[RunFolder(run_dir).curves_path for run_dir in run_dirs])
    histories = read_histories(run_dirs)
    if not terminal and not have_matplotlib():
        typer.echo(
            f"nmt: matplotlib is not installed, so here is a table; for a picture: {INSTALL_HINT}", err=True
        )
        terminal = True
    if terminal:
        console = _stdout_console()
        if not console.is_terminal:  # a file or a pipe: no screen to fit, so never cut a column
            console.width = max(console.width, 160)
        console.print(render_terminal(histories))
        return
    if output is None:
        if len(run_dirs) > 1:
            raise ConfigError("several runs: say where the picture goes with --output FILE.png")
        from .run_folder import RunFolder

        output = RunFolder(run_dirs[0]).curves_path
    render_png(histories, output)
    typer.echo(f"curves saved to {output}")


@app.command()
def info(
    run: Annotated[
        Path | None,
        typer.Argument(help="Run folder \\[default: the workspace's latest run].", show_default=False),
    ] = None,
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
    from .model_card import (
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
    run_dir = _resolve_model(run, workspace)
    card = model_card(run_dir)
    if plot_model is not None:
        _load_tensorflow()
        plot_model_picture(run_dir, plot_model)
    if json_output:
        _print_json({**card, "model_picture": str(plot_model) if plot_model else None})
        return
    console = _stdout_console()
    console.print(render_text(card))
    if plot_model is not None:
        console.print(f"model picture saved to {plot_model}")


def main() -> None:
    from .interrupts import install

    install()
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
