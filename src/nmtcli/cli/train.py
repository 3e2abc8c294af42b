"""``nmt train``: fit a model on prepared data into a new (or resumed) run folder."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Literal

import typer

from ..config import ARCH_TRAINING_DEFAULTS, ARCHITECTURES, LEVELS, ModelConfig, TrainConfig
from ..errors import ConfigError
from . import render
from .options import PresetName, given, preset_help

# Help panels: `nmt train --help` groups its options by what they are about.
DATA, MODEL, TRAINING, QUALITY, SPEED, TRACKING = (
    "Data and run folder",
    "Model",
    "Training",
    "Quality: early stopping, schedule, regularisation",
    "Speed",
    "Output and tracking",
)
M, T = ModelConfig(), TrainConfig()  # the defaults shown, read from the configs so they cannot drift
# The field's own default: ModelConfig() is a transformer, whose embeddings are --units wide instead.
EMBEDDING_DIM = next(f.default for f in dataclasses.fields(ModelConfig) if f.name == "embedding_dim")


def default_note(name: str, off: str | None = None) -> str:
    """The help's default of training setting ``name`` for each architecture, the default one first:
    an architecture's own (``config.ARCH_TRAINING_DEFAULTS``), else the config's:
    ``[default: transformer: 0.1; lstm, gru-attention: 0.0]``; one value when all share it."""

    def shown(value) -> str:
        return off if off is not None and not value else str(value)

    values = {
        arch: ARCH_TRAINING_DEFAULTS.get(arch, {}).get(name, getattr(T, name)) for arch in ARCHITECTURES
    }
    order = [M.arch, *(arch for arch in ARCHITECTURES if arch != M.arch)]
    groups: dict[str, list[str]] = {}
    for arch in order:
        groups.setdefault(shown(values[arch]), []).append(arch)
    if len(groups) == 1:
        return f"\\[default: {next(iter(groups))}]"
    parts = [", ".join(archs) + ": " + value for value, archs in groups.items()]
    return f"\\[default: {'; '.join(parts)}]"


MODEL_SETTINGS = (
    "arch",
    "level",
    "embedding_dim",
    "units",
    "dropout",
    "layers",
    "heads",
    "ff_dim",
    "tie_embeddings",
)
TRAINING_SETTINGS = [
    "epochs",
    "batch_size",
    "batch_tokens",
    "optimizer",
    "learning_rate",
    "warmup_steps",
    "clipnorm",
    "seed",
    "patience",
    "label_smoothing",
    "reduce_lr_factor",
    "reduce_lr_patience",
    "bleu_sample",
    "early_stopping_metric",
    "max_minutes",
    "cooldown",
    "cooldown_epochs",
    "jit_compile",
    "mixed_precision",
    "bf16_output",
    "distribute",
]


def train(
    ctx: typer.Context,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            "-d",
            help="Prepared data folder \\[default: WORKSPACE/data].",
            show_default=False,
            rich_help_panel=DATA,
        ),
    ] = None,
    workspace: Annotated[
        Path | None,
        typer.Option(
            "--workspace",
            "-w",
            help="Workspace folder \\[default: $NMT_WORKSPACE or ./nmt-workspace].",
            show_default=False,
            rich_help_panel=DATA,
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Run folder to write \\[default: a new folder in WORKSPACE/runs].",
            show_default=False,
            rich_help_panel=DATA,
        ),
    ] = None,
    resume: Annotated[
        bool | None,
        typer.Option(
            "--resume/--no-resume",
            help="Resume the newest interrupted run / always start anew \\[default: resume an interrupted "
            "run with the same settings].",
            show_default=False,
            rich_help_panel=DATA,
        ),
    ] = None,
    init_from: Annotated[
        Path | None,
        typer.Option(
            "--init-from",
            help="Fine-tune: start from this run's weights, on data prepared with `nmt prepare --vocab-from "
            "RUN`; the model settings are the run's (dropout may change).",
            show_default=False,
            rich_help_panel=DATA,
        ),
    ] = None,
    preset: Annotated[
        PresetName | None, typer.Option(help=preset_help(), show_default=False, rich_help_panel=MODEL)
    ] = None,
    arch: Annotated[
        Literal[ARCHITECTURES], typer.Option(help="Architecture.", rich_help_panel=MODEL)
    ] = M.arch,
    level: Annotated[
        Literal[LEVELS],
        typer.Option(help="Tokens: words, characters or subwords (SentencePiece).", rich_help_panel=MODEL),
    ] = M.level,
    embedding_dim: Annotated[
        int,
        typer.Option(
            help="Embedding size of the recurrent models (lstm, gru-attention); ignored by the transformer, "
            "whose embeddings are --units wide.",
            rich_help_panel=MODEL,
        ),
    ] = EMBEDDING_DIM,
    units: Annotated[
        int,
        typer.Option(
            help="The transformer's d_model (its embedding and layer width); recurrent units (per "
            "direction in the encoder) for lstm and gru-attention.",
            rich_help_panel=MODEL,
        ),
    ] = M.units,
    dropout: Annotated[
        float, typer.Option(help="Dropout on embeddings and outputs.", rich_help_panel=MODEL)
    ] = M.dropout,
    layers: Annotated[
        int, typer.Option(help="Transformer: layers per stack.", rich_help_panel=MODEL)
    ] = M.layers,
    heads: Annotated[
        int, typer.Option(help="Transformer: attention heads.", rich_help_panel=MODEL)
    ] = M.heads,
    ff_dim: Annotated[
        int, typer.Option(help="Transformer: feed-forward width.", rich_help_panel=MODEL)
    ] = M.ff_dim,
    tie_embeddings: Annotated[
        bool,
        typer.Option(
            help="Output layer shares the target embedding matrix (fewer parameters). A transformer on a "
            "joint subword vocabulary always shares one matrix for source, target and output.",
            rich_help_panel=MODEL,
        ),
    ] = M.tie_embeddings,
    epochs: Annotated[int, typer.Option(help="Most epochs to train.", rich_help_panel=TRAINING)] = T.epochs,
    batch_size: Annotated[
        int,
        typer.Option(
            "--batch-size",
            "-b",
            help="Sentence pairs per batch; the transformer's batches are sized by --batch-tokens unless "
            "--batch-size is given.",
            rich_help_panel=TRAINING,
        ),
    ] = T.batch_size,
    batch_tokens: Annotated[
        int | None,
        typer.Option(
            help="Batches of about this many tokens instead of --batch-size pairs (not both; --batch-size "
            "alone turns the default off): more short sentences per batch than long ones; counts the "
            "longer side, padded. " + default_note("batch_tokens", "off"),
            show_default=False,
            rich_help_panel=TRAINING,
        ),
    ] = None,
    optimizer: Annotated[
        Literal["adam", "rmsprop"], typer.Option(help="Optimizer.", rich_help_panel=TRAINING)
    ] = T.optimizer,
    learning_rate: Annotated[
        float,
        typer.Option(help="Learning rate; the peak after --warmup-steps.", rich_help_panel=TRAINING),
    ] = T.learning_rate,
    clipnorm: Annotated[
        float, typer.Option(help="Gradient norm clipping; 0 = off.", rich_help_panel=TRAINING)
    ] = T.clipnorm or 0.0,
    seed: Annotated[int, typer.Option(help="Random seed.", rich_help_panel=TRAINING)] = T.seed,
    max_minutes: Annotated[
        float,
        typer.Option(
            help="Time budget: stop before an epoch that would end past it; 0 = none.",
            rich_help_panel=TRAINING,
        ),
    ] = T.max_minutes or 0.0,
    cooldown: Annotated[
        bool,
        typer.Option(
            help="In the last --cooldown-epochs epochs (of --epochs, or the last that fit --max-minutes) "
            "lower the learning rate linearly to zero, then stop. " + default_note("cooldown"),
            show_default=False,
            rich_help_panel=TRAINING,
        ),
    ] = T.cooldown,
    cooldown_epochs: Annotated[
        int,
        typer.Option(
            help="How many of the last epochs the --cooldown spans. " + default_note("cooldown_epochs"),
            show_default=False,
            rich_help_panel=TRAINING,
        ),
    ] = T.cooldown_epochs,
    early_stopping_metric: Annotated[
        Literal["loss", "bleu"],
        typer.Option(
            help="What picks the best epoch and stops training early: validation cross-entropy (loss) or "
            "BLEU on the validation sample (bleu, needs --bleu-sample).",
            rich_help_panel=QUALITY,
        ),
    ] = T.early_stopping_metric,
    patience: Annotated[
        int,
        typer.Option(
            help="Stop after this many epochs without a better --early-stopping-metric (validation "
            "cross-entropy or validation BLEU); 0 = never.",
            rich_help_panel=QUALITY,
        ),
    ] = T.patience,
    bleu_sample: Annotated[
        int,
        typer.Option(
            help="Validation sentences translated after each epoch for val_bleu; 0 = off.",
            rich_help_panel=QUALITY,
        ),
    ] = T.bleu_sample,
    label_smoothing: Annotated[
        float,
        typer.Option(
            help="Spread this share of the target probability over the vocabulary. "
            + default_note("label_smoothing"),
            show_default=False,
            rich_help_panel=QUALITY,
        ),
    ] = T.label_smoothing,
    warmup_steps: Annotated[
        int | None,
        typer.Option(
            help="Raise the learning rate linearly over this many steps, then lower it with the inverse "
            "square root of the step; 0 = a constant rate. " + default_note("warmup_steps", "0"),
            show_default=False,
            rich_help_panel=QUALITY,
        ),
    ] = T.warmup_steps,
    reduce_lr_factor: Annotated[
        float,
        typer.Option(
            help="Multiply the learning rate (with --warmup-steps: the whole schedule) by this after "
            "--reduce-lr-patience epochs without a better --early-stopping-metric; 0 = off.",
            rich_help_panel=QUALITY,
        ),
    ] = T.reduce_lr_factor or 0.0,
    reduce_lr_patience: Annotated[
        int,
        typer.Option(
            help="Epochs without improvement before the learning rate is reduced.", rich_help_panel=QUALITY
        ),
    ] = T.reduce_lr_patience,
    jit_compile: Annotated[
        bool, typer.Option(help="Compile the training step with XLA.", rich_help_panel=SPEED)
    ] = T.jit_compile,
    mixed_precision: Annotated[
        bool,
        typer.Option(
            help="Compute in float16 with float32 weights (for GPUs); saved in float32.",
            rich_help_panel=SPEED,
        ),
    ] = T.mixed_precision,
    bf16_output: Annotated[
        bool,
        typer.Option(
            help="On a CPU with native bfloat16 (AVX512-BF16, AMX): the output layer's products in bfloat16 "
            "while training, and for the transformer all its products (weights, logits and softmax stay "
            "float32); ignored elsewhere.",
            rich_help_panel=SPEED,
        ),
    ] = T.bf16_output,
    distribute: Annotated[
        Literal["mirrored", "multi-worker"] | None,
        typer.Option(
            help="mirrored: one replica per local GPU | multi-worker: one process per machine, cluster from "
            "TF_CONFIG (give the same --output to every worker). --batch-size is the global batch.",
            show_default=False,
            rich_help_panel=SPEED,
        ),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the result as JSON on stdout.", rich_help_panel=TRACKING)
    ] = False,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet",
            "-q",
            help="No progress or notices on stderr; warnings and errors still show.",
            rich_help_panel=TRACKING,
        ),
    ] = False,
    mlflow: Annotated[
        bool,
        typer.Option(
            "--mlflow", help="Log parameters, metrics and the run folder to MLflow.", rich_help_panel=TRACKING
        ),
    ] = False,
    mlflow_uri: Annotated[
        str | None,
        typer.Option(
            "--mlflow-uri",
            help="MLflow tracking URI \\[default: $MLFLOW_TRACKING_URI or sqlite:///WORKSPACE/mlflow.db].",
            show_default=False,
            rich_help_panel=TRACKING,
        ),
    ] = None,
    experiment: Annotated[
        str | None,
        typer.Option(
            help="MLflow experiment \\[default: $MLFLOW_EXPERIMENT_NAME or nmtcli].",
            show_default=False,
            rich_help_panel=TRACKING,
        ),
    ] = None,
    tensorboard: Annotated[
        bool,
        typer.Option(
            "--tensorboard", help="Write TensorBoard logs to RUN/tensorboard.", rich_help_panel=TRACKING
        ),
    ] = False,
) -> None:
    """Train a seq2seq model (a subword Transformer by default, or an LSTM or a GRU with attention) on
    the prepared data, or fine-tune a trained one (--init-from)."""
    from ..corpus import PreparedData
    from ..presets import apply_preset
    from ..workspace import Workspace, resolve_model_dir

    values = locals()
    ws = Workspace(workspace)
    model_settings = given(ctx, values, MODEL_SETTINGS)
    training_settings = given(ctx, values, TRAINING_SETTINGS)
    if "batch_size" in training_settings and "batch_tokens" in training_settings:
        raise ConfigError("give --batch-size or --batch-tokens, not both")
    if init_from is not None:
        from ..fine_tuning import parent_model_settings

        parent = resolve_model_dir(init_from, ws)
        model_settings = parent_model_settings(parent, model_settings)
        training_settings["init_from"] = str(parent)
    configs = apply_preset(preset, model=model_settings, training=training_settings)
    if resume:
        # How this process runs (--distribute) is the command's; the rest is the run's own.
        _warn_ignored_on_resume(
            ctx, [*MODEL_SETTINGS, *(s for s in TRAINING_SETTINGS if s != "distribute"), "init_from"]
        )
    PreparedData.load(data or ws.data_dir)  # say what is missing before TF loads
    check_mlflow_options(mlflow, mlflow_uri, experiment)
    if configs.training.distribute == "multi-worker":
        from ..distribution import read_cluster

        read_cluster()  # say what is wrong with TF_CONFIG before TF loads
    from ..runtime import quiet_import

    quiet_import()
    from ..logs import to_console
    from ..progress import RichProgress
    from ..training import train as train_model
    from ..translator import Translator

    stderr = render.stderr_console()
    with to_console(stderr, enabled=not quiet):  # the library's log records, rendered by rich
        result = train_model(
            configs.model,
            configs.training,
            data_dir=data,
            workspace=ws,
            run_dir=output,
            resume=resume,
            callbacks=[] if quiet else [RichProgress(stderr, max_minutes=configs.training.max_minutes)],
            log=render.ignore if quiet else None,
            run_callbacks=tracking_callbacks(mlflow, mlflow_uri, experiment, tensorboard, ws),
            translator_factory=Translator,
        )
        if configs.model.arch == "transformer" and result.history:
            from ..ct2 import ensure_cached

            ensure_cached(result.run_dir)  # RUN/ctranslate2, what nmt translate runs (see ct2)
        elif result.history:
            from ..decoder_cache import ensure_cached

            ensure_cached(result.run_dir)  # RUN/decoder, the traced decoders (see decoder_cache)
    summary = {
        "run": str(result.run_dir),
        "parameters": result.parameters,
        "epochs": len(result.history),
        "best_epoch": result.best_epoch,
        "best": result.best if result.history else None,
        "train_seconds": round(sum(row["seconds"] for row in result.history), 1),
    }
    if json_output:
        render.print_json(summary)
    else:
        typer.echo(render.train_summary_line(summary))


def _warn_ignored_on_resume(ctx: typer.Context, settings) -> None:
    """``--resume`` continues a run with the settings it was started with: say which options given
    on this command line are therefore ignored."""
    given = [
        name for name in settings if getattr(ctx.get_parameter_source(name), "name", "") == "COMMANDLINE"
    ]
    if given:
        options = ", ".join("--" + name.replace("_", "-") for name in given)
        render.warn(f"--resume continues the run with the settings it was started with; {options} ignored")


def check_mlflow_options(mlflow: bool, mlflow_uri: str | None, experiment: str | None = None) -> None:
    if not mlflow and (mlflow_uri is not None or experiment is not None):
        raise ConfigError(f"{'--mlflow-uri' if mlflow_uri is not None else '--experiment'} needs --mlflow")


def tracking_callbacks(mlflow: bool, mlflow_uri: str | None, experiment: str | None, tensorboard: bool, ws):
    """``run_callbacks`` for ``training.train``: MLflow (connected now, before training) and TensorBoard."""
    if not (mlflow or tensorboard):
        return None
    from ..tracking import MlflowTracker, run_callbacks, tracking_uri

    tracker = None
    if mlflow:
        tracker = MlflowTracker(tracking_uri(mlflow_uri, ws), experiment)
        tracker.connect()
    return run_callbacks(tracker, tensorboard, warn=render.warn)
