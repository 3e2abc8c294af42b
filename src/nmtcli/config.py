"""Typed, validated settings for each stage; saved as JSON next to what they produced.

Each dataclass checks its own values on construction, so the library and the command line share
one set of rules and one set of messages.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

from .errors import ConfigError

FORMATS = ("auto", "tsv", "csv", "aligned")
LEVELS = ("word", "char", "subword")
ARCHITECTURES = ("lstm", "gru-attention", "transformer")
SUBWORD_TYPES = ("unigram", "bpe")
OPTIMIZERS = ("adam", "rmsprop")
EARLY_STOPPING_METRICS = ("loss", "bleu")
BAD_LINE_POLICIES = ("error", "warn", "skip")
DISTRIBUTIONS = ("mirrored", "multi-worker")

Level = Literal["word", "char", "subword"]


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {value!r}", field=name)


def _check_range(
    name: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    *,
    integer: bool = True,
    low_inclusive: bool = True,
) -> None:
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
        raise ConfigError(f"{name} must be {kind}; got {value!r}", field=name)
    too_low = low is not None and (value < low if low_inclusive else value <= low)
    too_high = high is not None and value > high
    if too_low or too_high:
        bounds = []
        if low is not None:
            bounds.append(f"{'>=' if low_inclusive else '>'} {low}")
        if high is not None:
            bounds.append(f"<= {high}")
        raise ConfigError(f"{name} must be {kind} {' and '.join(bounds)}; got {value!r}", field=name)


class _Serializable:
    """Round trip through plain dicts, ignoring unknown keys from newer versions."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True)
class PrepareConfig(_Serializable):
    """How ``nmt prepare`` reads, cleans, splits and indexes a corpus."""

    format: str = "auto"
    source_column: str | int | None = None
    target_column: str | int | None = None
    encoding: str = "utf-8"
    on_bad_line: str = "error"
    limit: int | None = None
    sample: int | None = None  # pairs drawn at random (with ``seed``) from those kept after cleaning
    reverse: bool = False
    lowercase: bool = False
    min_words: int = 1
    max_words: int = 50
    max_chars: int = 300
    dedupe: bool = True
    valid_size: float = 0.05
    test_size: float = 0.05
    seed: int = 1234
    max_vocab: int | None = 30000
    min_count: int = 2  # a word seen once in training is rarely learnt; it costs output-layer time
    # The subword level (SentencePiece, see subwords.py): pieces per model, specials and 256 bytes included.
    subword_size: int = 8000
    subword_type: str = "unigram"
    joint_subwords: bool = True  # one model for both sides, so a Transformer can share its embeddings
    # Training sentences sampled for the subword model (both sides count). Its time and memory grow with
    # the sample; 100,000 made spa-eng's pieces 1% longer than all 214,078 did, and every line still
    # round-trips (the README has the figures).
    subword_sample: int = 100_000

    def __post_init__(self) -> None:
        _check_choice("format", self.format, FORMATS)
        _check_choice("on_bad_line", self.on_bad_line, BAD_LINE_POLICIES)
        if self.limit is not None:
            _check_range("limit", self.limit, 1)
        if self.sample is not None:
            _check_range("sample", self.sample, 1)
            if self.limit is not None:
                raise ConfigError("`limit` and `sample` exclude each other: give one")
        _check_range("min_words", self.min_words, 1)
        _check_range("max_words", self.max_words, self.min_words)
        _check_range("max_chars", self.max_chars, 1)
        for name in ("valid_size", "test_size"):
            value = getattr(self, name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(
                    f"{name} must be a fraction below 1 or a whole count; got {value}", field=name
                )
            _check_range(name, value, 0, integer=False)
            if isinstance(value, float) and value >= 1 and not value.is_integer():
                raise ConfigError(
                    f"{name} must be a fraction below 1 or a whole count; got {value}", field=name
                )
        if 0 < self.valid_size < 1 and 0 < self.test_size < 1 and self.valid_size + self.test_size >= 1:
            raise ConfigError("valid_size + test_size must leave some data for training")
        if self.max_vocab is not None:
            _check_range("max_vocab", self.max_vocab, 5)
        _check_range("min_count", self.min_count, 1)
        _check_range("seed", self.seed, 0)
        _check_range("subword_size", self.subword_size, 300, 1_000_000)  # 4 specials + 256 bytes + some
        _check_choice("subword_type", self.subword_type, SUBWORD_TYPES)
        if not isinstance(self.joint_subwords, bool):
            raise ConfigError(
                f"joint_subwords must be true or false; got {self.joint_subwords!r}", field="joint_subwords"
            )
        _check_range("subword_sample", self.subword_sample, 1000)


@dataclass(frozen=True)
class ModelConfig(_Serializable):
    """The architecture and sizes of a seq2seq model."""

    # The default by measurement (issue 15, docs/results.md): in the same CPU hour on spa-eng, a subword
    # Transformer scored higher than the word and subword GRUs with attention.
    arch: str = "transformer"
    level: str = "subword"
    # The recurrent models' embedding size; the transformer's embeddings are d_model (``units``) wide.
    embedding_dim: int = 128
    # Recurrent units, or the transformer's d_model. Sized for a CPU hour: on spa.txt, 256 units learnt
    # faster per hour than 512 for the GRU (docs/results.md), and 256 is the Transformer probe's.
    units: int = 256
    dropout: float = 0.1
    # The output layer reusing the target embedding matrix: off by default, since it learnt far
    # slower in our measurement (docs/results.md).
    tie_embeddings: bool = False
    source_vocab_size: int = 0
    target_vocab_size: int = 0
    max_source_length: int = 0  # longest training source in tokens; longer inputs are truncated
    max_target_length: int = 0  # longest training target in tokens; bounds decoding
    # The Transformer only (units is its d_model, and embedding_dim is set to it): layers per stack,
    # attention heads (dividing units) and the feed-forward width.
    layers: int = 3
    heads: int = 4
    ff_dim: int = 1024
    # The Transformer only: one embedding matrix for source, target and output, which needs one
    # vocabulary for both sides (a joint subword model); set by training when the two are the same.
    shared_embeddings: bool = False

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        # Models saved before output embeddings could be tied have untied ones.
        return super().from_dict({"tie_embeddings": False, **data})

    def __post_init__(self) -> None:
        _check_choice("arch", self.arch, ARCHITECTURES)
        _check_choice("level", self.level, LEVELS)
        _check_range("embedding_dim", self.embedding_dim, 1, 4096)
        _check_range("units", self.units, 1, 8192)
        _check_range("dropout", self.dropout, 0, 1, integer=False)
        if self.dropout >= 1:
            raise ConfigError(f"dropout must be below 1; got {self.dropout}", field="dropout")
        if not isinstance(self.tie_embeddings, bool):
            raise ConfigError(
                f"tie_embeddings must be true or false; got {self.tie_embeddings!r}", field="tie_embeddings"
            )
        _check_range("source_vocab_size", self.source_vocab_size, 0)
        _check_range("target_vocab_size", self.target_vocab_size, 0)
        _check_range("max_source_length", self.max_source_length, 0)
        _check_range("max_target_length", self.max_target_length, 0)
        if self.arch == "transformer" and self.embedding_dim != self.units:
            # Its embeddings are d_model wide: recorded as such, so the config says what was built.
            object.__setattr__(self, "embedding_dim", self.units)
        _check_range("layers", self.layers, 1, 64)
        _check_range("heads", self.heads, 1, 256)
        _check_range("ff_dim", self.ff_dim, 1, 65_536)
        if self.arch == "transformer" and self.units % self.heads:
            raise ConfigError(
                f"units ({self.units}) must be a multiple of heads ({self.heads}) for a transformer",
                field="heads",
            )
        if not isinstance(self.shared_embeddings, bool):
            raise ConfigError(
                f"shared_embeddings must be true or false; got {self.shared_embeddings!r}",
                field="shared_embeddings",
            )
        if self.shared_embeddings and self.arch != "transformer":
            raise ConfigError("shared_embeddings is for the transformer only", field="shared_embeddings")
        if self.shared_embeddings and not self.tie_embeddings:
            # The shared matrix is the output layer too: recorded as tied, as the model is built.
            object.__setattr__(self, "tie_embeddings", True)
        if self.shared_embeddings and self.source_vocab_size != self.target_vocab_size:
            raise ConfigError(
                "shared_embeddings needs one vocabulary for both sides (a joint subword model)",
                field="shared_embeddings",
            )


# Training settings whose default depends on the architecture: written here once. ``TrainConfig``'s own
# defaults are the recurrent models' (measured, docs/results.md); the transformer's are the recipe of
# issue 15's probe (label smoothing 0.1, 1,000 warmup steps then inverse square root) and a cool-down
# over the last two epochs (each step of it measured on spa-eng in the CPU hour, docs/results.md),
# with batches sized in tokens: the peak memory of training follows the longest batch's [B, T,
# vocabulary] logits, which token batches bound (measured in docs/benchmarks.md, "Transformer on
# CPU"). Presets and the command line fill them in through ``TrainConfig.for_arch``; ``nmt train
# --help`` shows them.
ARCH_TRAINING_DEFAULTS: dict[str, dict[str, Any]] = {
    "transformer": {
        "label_smoothing": 0.1,
        "warmup_steps": 1000,
        "batch_tokens": 2500,
        "cooldown": True,
        "cooldown_epochs": 2,
    },
}


@dataclass(frozen=True)
class TrainConfig(_Serializable):
    """How a model is fitted.

    ``batch_size`` counts sentence pairs per batch; ``batch_tokens``, when set, sizes batches in tokens
    per length bucket instead (``pipeline.bucket_batch_sizes``) and ``batch_size`` is not used for
    training batches. ``warmup_steps`` set: the learning rate rises linearly to ``learning_rate``
    over that many steps, then falls with the inverse square root of the step (``training.schedule``).
    ``init_from``: the run folder whose weights (and vocabularies) a fine-tuning starts from, as
    resolved when training started; None for a model trained from scratch.
    """

    epochs: int = 10
    batch_size: int = 64
    batch_tokens: int | None = None
    optimizer: str = "adam"
    learning_rate: float = 1e-3  # the peak, after warmup, when warmup_steps is set
    # None (or 0, stored as None) = a constant rate; None, not 0, so configs saved before the setting
    # existed read as the same settings (an interrupted run of an older version still resumes).
    warmup_steps: int | None = None
    clipnorm: float | None = 1.0
    patience: int = 3
    seed: int = 1234
    jit_compile: bool = False
    mixed_precision: bool = False
    bf16_output: bool = True  # output layer in bfloat16 while training, on CPUs that have it natively
    label_smoothing: float = 0.0
    reduce_lr_factor: float | None = 0.5  # multiply the learning rate by this on a plateau; None = off
    reduce_lr_patience: int = 1  # epochs without improvement before the learning rate is reduced
    # Validation cross-entropy, or BLEU on the validation sample (noisy when the sample is small).
    early_stopping_metric: str = "loss"
    bleu_sample: int = 500  # validation sources decoded for BLEU after every epoch; 0 = none
    max_minutes: float | None = None  # stop before an epoch that would end past this budget
    # The last `cooldown_epochs` epochs (of `epochs`, or the last to fit `max_minutes`) lower the
    # learning rate linearly to zero, then training stops (training.callbacks.CoolDown).
    cooldown: bool = False
    cooldown_epochs: int = 1

    distribute: str | None = None  # None (one device), "mirrored" or "multi-worker"; see distribution.py
    init_from: str | None = None

    @classmethod
    def for_arch(cls, arch: str, **settings: Any) -> TrainConfig:
        """A config for ``arch`` with ``settings`` on top of that architecture's defaults
        (``ARCH_TRAINING_DEFAULTS``), then the class defaults: ``TrainConfig.for_arch("transformer")``
        smooths labels by 0.1, warms up for 1,000 steps and sizes batches in tokens.

        A ``batch_size`` in ``settings`` without a ``batch_tokens`` asks for batches of that many
        pairs: the architecture's default ``batch_tokens`` is then left out, not used instead."""
        _check_choice("arch", arch, ARCHITECTURES)
        defaults = dict(ARCH_TRAINING_DEFAULTS.get(arch, {}))
        if "batch_size" in settings and "batch_tokens" not in settings:
            defaults.pop("batch_tokens", None)
        return cls(**{**defaults, **settings})

    def __post_init__(self) -> None:
        _check_range("epochs", self.epochs, 1, 100_000)
        _check_range("batch_size", self.batch_size, 1, 65_536)
        if self.batch_tokens is not None:
            _check_range("batch_tokens", self.batch_tokens, 1, 10_000_000)
        if self.warmup_steps is not None:
            _check_range("warmup_steps", self.warmup_steps, 0, 10_000_000)
            if not self.warmup_steps:
                object.__setattr__(self, "warmup_steps", None)
        if self.init_from is not None and (not isinstance(self.init_from, str) or not self.init_from):
            raise ConfigError(f"init_from must name a run folder; got {self.init_from!r}", field="init_from")
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        _check_range("learning_rate", self.learning_rate, 0, 10, integer=False, low_inclusive=False)
        if self.clipnorm is not None:
            _check_range("clipnorm", self.clipnorm, 0, integer=False, low_inclusive=False)
        _check_range("patience", self.patience, 0)
        _check_range("seed", self.seed, 0)
        _check_range("label_smoothing", self.label_smoothing, 0, 1, integer=False)
        if self.label_smoothing >= 1:
            raise ConfigError(
                f"label_smoothing must be below 1; got {self.label_smoothing}", field="label_smoothing"
            )
        if self.reduce_lr_factor is not None:
            _check_range("reduce_lr_factor", self.reduce_lr_factor, 0, 1, integer=False, low_inclusive=False)
            if self.reduce_lr_factor >= 1:
                raise ConfigError(
                    f"reduce_lr_factor must be below 1; got {self.reduce_lr_factor}", field="reduce_lr_factor"
                )
        _check_range("reduce_lr_patience", self.reduce_lr_patience, 1)
        _check_range("cooldown_epochs", self.cooldown_epochs, 1, 100_000)
        _check_choice("early_stopping_metric", self.early_stopping_metric, EARLY_STOPPING_METRICS)
        _check_range("bleu_sample", self.bleu_sample, 0, 1_000_000)
        if self.early_stopping_metric == "bleu" and not self.bleu_sample:
            raise ConfigError(
                "bleu_sample must be above 0 to stop early on BLEU; choose a sample size, or stop early "
                "on the validation loss",
                field="bleu_sample",
            )
        if self.max_minutes is not None:
            _check_range("max_minutes", self.max_minutes, 0, 1e6, integer=False, low_inclusive=False)

        if self.distribute is not None:
            _check_choice("distribute", self.distribute, DISTRIBUTIONS)


MAX_BEAM_SIZE = 64
MAX_LENGTH_PENALTY = 10.0
# Beam search's length penalty (GNMT's alpha; decoding.beam_search) when none is chosen: the
# architecture's own where it has one, else the default. Each was the best of a sweep on the validation
# split of the CPU-hour models (docs/results.md, "Beam search is too short").
ARCH_LENGTH_PENALTY: dict[str, float] = {"transformer": 2.0}
DEFAULT_LENGTH_PENALTY = 0.6


def default_length_penalty(arch: str) -> float:
    """The length penalty beam search uses for a model of ``arch`` when none is chosen."""
    return ARCH_LENGTH_PENALTY.get(arch, DEFAULT_LENGTH_PENALTY)


@dataclass(frozen=True)
class DecodingConfig(_Serializable):
    """How sentences are decoded, for ``translate``, ``evaluate`` and the BLEU sample while training.

    ``beam_size`` 1 is greedy search; more keeps that many hypotheses per sentence (beam search, scored
    with GNMT's ``length_penalty``; see ``decoding.beam_search``; None: the model's architecture's,
    ``default_length_penalty``, filled in by ``for_arch``). ``max_length`` None decodes at most
    ``decoding.default_max_length`` tokens (twice the source plus 10, capped). ``bf16_output``: the
    output layer's product in bfloat16 on CPUs that have it natively (``models.bf16``), ignored
    elsewhere. ``batch_size`` counts sentences; beam search decodes ``batch_size * beam_size`` rows.
    """

    batch_size: int = 64
    max_length: int | None = None
    beam_size: int = 1
    length_penalty: float | None = None
    bf16_output: bool = False

    def __post_init__(self) -> None:
        _check_range("batch_size", self.batch_size, 1, 65_536)
        if self.max_length is not None:
            _check_range("max_length", self.max_length, 1, 100_000)
        _check_range("beam_size", self.beam_size, 1, MAX_BEAM_SIZE)
        if self.length_penalty is not None:
            _check_range("length_penalty", self.length_penalty, 0, MAX_LENGTH_PENALTY, integer=False)
            if math.isnan(self.length_penalty):
                raise ConfigError("length_penalty must be a number; got nan", field="length_penalty")
        if not isinstance(self.bf16_output, bool):
            raise ConfigError(
                f"bf16_output must be true or false; got {self.bf16_output!r}", field="bf16_output"
            )

    def for_arch(self, arch: str) -> DecodingConfig:
        """These settings for a model of ``arch``: an unset ``length_penalty`` becomes that
        architecture's (``default_length_penalty``)."""
        if self.length_penalty is not None:
            return self
        return dataclasses.replace(self, length_penalty=default_length_penalty(arch))

    @property
    def method(self) -> str:
        """``"greedy"`` or ``"beam"``."""
        return "greedy" if self.beam_size == 1 else "beam"

    def signature(self) -> list[str]:
        """nmtcli's signature parts for these settings, e.g. ``["decode:beam", "beam:4", "lenpen:0.6",
        "output:bf16", "max_len:auto"]``; join them with ``|``. ``output:bf16`` only where bfloat16 ran
        (see ``Translator.effective``); the batch size changes no output and is left out."""
        parts = [f"decode:{self.method}"]
        if self.method == "beam":
            alpha = "auto" if self.length_penalty is None else self.length_penalty
            parts += [f"beam:{self.beam_size}", f"lenpen:{alpha}"]
        if self.bf16_output:
            parts.append("output:bf16")
        return [*parts, f"max_len:{self.max_length or 'auto'}"]

    def to_dict(self) -> dict[str, Any]:
        """The settings as recorded with scores (``--json``, ``evaluation.json``)."""
        return {
            "method": self.method,
            "beam_size": self.beam_size,
            "length_penalty": self.length_penalty if self.method == "beam" else None,
            "max_length": self.max_length or "auto",
            "batch_size": self.batch_size,
            "bf16_output": self.bf16_output,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        """The inverse of ``to_dict`` (also reads the plain field names)."""
        data = {k: v for k, v in data.items() if v is not None}
        if data.get("max_length") == "auto":
            data.pop("max_length")
        return super().from_dict(data)

    def with_options(self, **options: Any) -> DecodingConfig:
        """A copy with some fields changed (and validated): ``config.with_options(beam_size=4)``."""
        return dataclasses.replace(self, **options) if options else self


def decoding_config(decoding: DecodingConfig | None = None, **options: Any) -> DecodingConfig:
    """``decoding`` (default settings when None) with the keyword ``options`` applied: the shortcut
    behind ``Translator.translate(lines, beam_size=4)``. An unknown option is a TypeError."""
    return (decoding or DecodingConfig()).with_options(**options)
