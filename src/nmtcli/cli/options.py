"""Options shared by several commands, declared once, and the command line's own conventions.

On the command line 0 turns some settings off where the configs say ``None``; that conversion
happens here (``zero_is_none``) and nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from ..config import ARCH_LENGTH_PENALTY, DEFAULT_LENGTH_PENALTY
from ..presets import PRESETS

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
RunArg = Annotated[
    Path | None,
    typer.Argument(
        help="Run folder from `nmt train`, the same as --model \\[default: the workspace's latest run].",
        show_default=False,
        metavar="[RUN]",
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


def length_penalty_help() -> str:
    own = ", ".join(f"{arch} {alpha}" for arch, alpha in ARCH_LENGTH_PENALTY.items())
    return (
        "Beam search: GNMT length penalty alpha; 0 = plain log-probability, more favours longer output "
        f"\\[default: the model's architecture's: {own}, others {DEFAULT_LENGTH_PENALTY}]."
    )


LengthPenaltyOpt = Annotated[
    float | None, typer.Option("--length-penalty", help=length_penalty_help(), show_default=False)
]


def preset_help() -> str:
    recipes = "\n\n".join(f"{preset.name}: {preset.description}." for preset in PRESETS.values())
    return f"A named recipe filling in the options not given (results in docs/results.md):\n\n{recipes}"


PresetName = Literal[tuple(PRESETS)]  # the names, shown as choices; presets.py owns them
PresetOpt = Annotated[PresetName | None, typer.Option(help=preset_help(), show_default=False)]


# Settings whose "off" is None in the configs and 0 on the command line.
ZERO_IS_NONE = frozenset({"max_vocab", "clipnorm", "reduce_lr_factor", "max_minutes"})


def zero_is_none(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` in config terms: a 0 given for a setting in ``ZERO_IS_NONE`` becomes None (off)."""
    return {name: (value or None) if name in ZERO_IS_NONE else value for name, value in values.items()}


def given(ctx: typer.Context, values: dict[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """The options among ``names`` that the user gave (on the command line or from the environment),
    in config terms; options left at their default are left out, for a preset or the config to fill."""
    chosen = {}
    for name in names:
        source = ctx.get_parameter_source(name)
        if source is not None and source.name != "DEFAULT":
            chosen[name] = values[name]
    return zero_is_none(chosen)


def one_run(
    run: Path | None,
    model: Path | None,
    workspace: Path | None,
    notice: Callable[[str], None] | None = None,
) -> Path:
    """The run folder named by the RUN argument or ``--model`` (not both), else the workspace's latest;
    ``notice`` gets the workspace's note on a newer interrupted run, if any."""
    from ..errors import ConfigError
    from ..workspace import Workspace, resolve_model

    if run is not None and model is not None:
        raise ConfigError("give the run as an argument or with --model, not both")
    run_dir, note = resolve_model(run or model, Workspace(workspace))
    if note and notice is not None:
        notice(note)
    return run_dir


EngineOpt = Annotated[
    Literal["auto", "ctranslate2", "tensorflow"],
    typer.Option(
        "--engine",
        help="Inference engine: ctranslate2 (transformer models; no TensorFlow, faster), tensorflow, "
        "or auto (ctranslate2 for transformer models, tensorflow for the others).",
    ),
]
ComputeTypeOpt = Annotated[
    Literal["float32", "int16", "int8"],
    typer.Option(
        "--compute-type",
        help="CTranslate2 engine: weights in float32 (the same translations as tensorflow), or "
        "quantized to int16 or int8 as they load (faster).",
    ),
]
