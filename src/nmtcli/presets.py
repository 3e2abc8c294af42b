"""Named recipes: prepare, model and training settings known to work together.

A preset is a set of config overrides in library terms (``None`` turns a setting off, as in the
configs). ``apply_preset`` builds the configs: the caller's own settings first, then the preset's,
then the architecture's training defaults (``config.ARCH_TRAINING_DEFAULTS``), then the configs'
defaults, so ``apply_preset("seed-003", training={"epochs": 5})`` runs the
seed-003 recipe for 5 epochs. ``nmt prepare --preset`` and ``nmt train --preset`` pass the options
the user typed. The measured results of each recipe are in docs/results.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .config import ModelConfig, PrepareConfig, TrainConfig
from .errors import ConfigError


@dataclass(frozen=True)
class Preset:
    """A recipe: ``description`` says what it is in a line; each section overrides one config's fields."""

    name: str
    description: str
    prepare: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)


class PresetConfigs(NamedTuple):
    """The configs a preset and the caller's settings make together."""

    prepare: PrepareConfig
    model: ModelConfig
    training: TrainConfig


DEFAULT_MODEL = ModelConfig()  # the sizes the "default" preset's description names, from their owner

# The seeds' plain settings, shared by their presets: no dropout, untied output layer, no label
# smoothing, no learning-rate schedule, no validation BLEU, every epoch run, best epoch by loss.
SEED_MODEL = {"dropout": 0.0, "tie_embeddings": False}
SEED_TRAINING = {
    "patience": 0,
    "label_smoothing": 0.0,
    "reduce_lr_factor": None,
    "bleu_sample": 0,
    "early_stopping_metric": "loss",
}

PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset(
            "default",
            f"nmtcli's defaults: {DEFAULT_MODEL.level}-level Transformer (d_model {DEFAULT_MODEL.units}, "
            f"{DEFAULT_MODEL.layers}+{DEFAULT_MODEL.layers} layers), label smoothing, warmup then inverse "
            "square root, token batches, learning-rate halving on plateaus, BLEU on a validation sample "
            "after every epoch",
        ),
        Preset(
            "seed-000",
            "word-level LSTM, 256 units, Adam, batch 8, 35 epochs, first 1,500 pairs (seed 000)",
            prepare={"limit": 1500, "min_count": 1},
            model={
                "arch": "lstm",
                "level": "word",
                "embedding_dim": 256,
                "units": 256,
                **SEED_MODEL,
            },
            training={
                "batch_size": 8,
                "epochs": 35,
                "optimizer": "adam",
                **SEED_TRAINING,
            },
        ),
        Preset(
            "seed-002",
            "word-level GRU with attention, 1024 units, Adam, batch 64, 10 epochs, first 30,000 pairs "
            "(seed 002, TensorFlow's NMT-with-attention tutorial)",
            prepare={"limit": 30000, "min_count": 1},
            model={
                "arch": "gru-attention",
                "level": "word",
                "embedding_dim": 256,
                "units": 1024,
                **SEED_MODEL,
            },
            training={
                "batch_size": 64,
                "epochs": 10,
                "optimizer": "adam",
                **SEED_TRAINING,
            },
        ),
        Preset(
            "seed-003",
            "character-level LSTM, 256 units, RMSprop, batch 64, 100 epochs, first 10,000 pairs "
            "(seed 003, keras.io lstm_seq2seq)",
            prepare={"limit": 10000, "min_count": 1},
            model={
                "arch": "lstm",
                "level": "char",
                "embedding_dim": 64,
                "units": 256,
                **SEED_MODEL,
            },
            training={
                "batch_size": 64,
                "epochs": 100,
                "optimizer": "rmsprop",
                **SEED_TRAINING,
            },
        ),
    )
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(
            f"preset must be one of {', '.join(PRESETS)}; got {name!r}", field="preset"
        ) from None


def apply_preset(
    name: str | None,
    model: Mapping[str, Any] | None = None,
    training: Mapping[str, Any] | None = None,
    prepare: Mapping[str, Any] | None = None,
) -> PresetConfigs:
    """The configs of preset ``name`` (None: no preset) with the caller's settings on top.

    ``model``, ``training`` and ``prepare`` hold only the settings the caller chose, by config field
    name; the preset fills the rest, then the chosen architecture's training defaults
    (``TrainConfig.for_arch``), and the configs' defaults fill what none sets. Raises
    ``ConfigError`` for an unknown preset or an invalid value (its ``field`` names the setting).
    """
    preset = get_preset(name) if name is not None else Preset("none", "")
    model_config = ModelConfig(**{**preset.model, **(model or {})})
    return PresetConfigs(
        prepare=PrepareConfig(**{**preset.prepare, **(prepare or {})}),
        model=model_config,
        training=TrainConfig.for_arch(model_config.arch, **{**preset.training, **(training or {})}),
    )
