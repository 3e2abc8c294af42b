"""Validation and serialisation of PrepareConfig, ModelConfig and TrainConfig."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from nmtcli.config import DecodingConfig, ModelConfig, PrepareConfig, TrainConfig, decoding_config
from nmtcli.errors import ConfigError, NmtError

CONFIGS = (PrepareConfig, ModelConfig, TrainConfig, DecodingConfig)


@pytest.mark.parametrize("cls", CONFIGS)
def test_defaults_are_valid(cls) -> None:
    cls()


def test_config_error_is_an_nmt_error_and_a_value_error() -> None:
    with pytest.raises(NmtError):
        TrainConfig(epochs=0)
    with pytest.raises(ValueError):
        TrainConfig(epochs=0)


# (config class, keyword arguments, field the message must name)
INVALID = [
    (PrepareConfig, {"format": "xml"}, "format"),
    (PrepareConfig, {"on_bad_line": "ignore"}, "on_bad_line"),
    (PrepareConfig, {"limit": 0}, "limit"),
    (PrepareConfig, {"limit": True}, "limit"),
    (PrepareConfig, {"min_words": 0}, "min_words"),
    (PrepareConfig, {"min_words": 5, "max_words": 3}, "max_words"),
    (PrepareConfig, {"max_words": 2.5}, "max_words"),
    (PrepareConfig, {"max_chars": 0}, "max_chars"),
    (PrepareConfig, {"valid_size": -0.1}, "valid_size"),
    (PrepareConfig, {"valid_size": "0.1"}, "valid_size"),
    (PrepareConfig, {"test_size": 1.5}, "test_size"),
    (PrepareConfig, {"test_size": -1}, "test_size"),
    (PrepareConfig, {"valid_size": 0.5, "test_size": 0.5}, "valid_size + test_size"),
    (PrepareConfig, {"max_vocab": 4}, "max_vocab"),
    (PrepareConfig, {"min_count": 0}, "min_count"),
    (PrepareConfig, {"seed": -1}, "seed"),
    (ModelConfig, {"arch": "mamba"}, "arch"),
    (ModelConfig, {"level": "byte"}, "level"),
    (ModelConfig, {"embedding_dim": 0}, "embedding_dim"),
    (ModelConfig, {"embedding_dim": 4097}, "embedding_dim"),
    (ModelConfig, {"embedding_dim": 1.5}, "embedding_dim"),
    (ModelConfig, {"units": 0}, "units"),
    (ModelConfig, {"units": 8193}, "units"),
    (ModelConfig, {"dropout": -0.1}, "dropout"),
    (ModelConfig, {"dropout": 1.0}, "dropout"),
    (ModelConfig, {"dropout": 1.5}, "dropout"),
    (ModelConfig, {"source_vocab_size": -1}, "source_vocab_size"),
    (ModelConfig, {"target_vocab_size": -1}, "target_vocab_size"),
    (ModelConfig, {"max_target_length": -1}, "max_target_length"),
    (TrainConfig, {"epochs": 0}, "epochs"),
    (TrainConfig, {"epochs": "10"}, "epochs"),
    (TrainConfig, {"batch_size": 0}, "batch_size"),
    (TrainConfig, {"batch_size": 65_537}, "batch_size"),
    (TrainConfig, {"optimizer": "sgd"}, "optimizer"),
    (TrainConfig, {"learning_rate": 0}, "learning_rate"),
    (TrainConfig, {"learning_rate": -1e-3}, "learning_rate"),
    (TrainConfig, {"learning_rate": 11.0}, "learning_rate"),
    (TrainConfig, {"clipnorm": 0.0}, "clipnorm"),
    (TrainConfig, {"clipnorm": -1.0}, "clipnorm"),
    (TrainConfig, {"patience": -1}, "patience"),
    (TrainConfig, {"seed": -1}, "seed"),
]


@pytest.mark.parametrize(
    ("cls", "kwargs", "field"),
    INVALID,
    ids=[f"{cls.__name__}-{'-'.join(f'{k}={v!r}' for k, v in kw.items())}" for cls, kw, _ in INVALID],
)
def test_invalid_value_raises_config_error_naming_the_field(cls, kwargs, field) -> None:
    with pytest.raises(ConfigError) as info:
        cls(**kwargs)
    message = str(info.value)
    assert message.startswith(field), message
    # The offending value is shown, so the user sees what was wrong.
    if len(kwargs) == 1:
        assert repr(next(iter(kwargs.values()))) in message or str(kwargs[field]) in message


def test_choice_error_lists_the_choices() -> None:
    with pytest.raises(ConfigError, match="adam, rmsprop"):
        TrainConfig(optimizer="sgd")


@pytest.mark.parametrize(
    ("cls", "kwargs"),
    [
        (PrepareConfig, {"limit": 1, "min_words": 3, "max_words": 3, "max_vocab": 5}),
        (PrepareConfig, {"valid_size": 0, "test_size": 0, "max_vocab": None, "limit": None}),
        (PrepareConfig, {"valid_size": 100, "test_size": 2.0}),  # whole counts
        (PrepareConfig, {"valid_size": 0.49, "test_size": 0.5}),
        (ModelConfig, {"arch": "lstm", "level": "char", "embedding_dim": 4096, "units": 8192}),
        (ModelConfig, {"arch": "gru-attention", "embedding_dim": 1, "units": 1, "dropout": 0}),
        (ModelConfig, {"dropout": 0.999}),
        (TrainConfig, {"optimizer": "rmsprop", "learning_rate": 10, "clipnorm": None}),
        (TrainConfig, {"epochs": 1, "batch_size": 65_536, "patience": 0, "seed": 0}),
    ],
)
def test_boundary_values_are_accepted(cls, kwargs) -> None:
    config = cls(**kwargs)
    for name, value in kwargs.items():
        assert getattr(config, name) == value


NON_DEFAULT = [
    PrepareConfig(
        format="csv",
        source_column="en",
        target_column=3,
        on_bad_line="skip",
        limit=10,
        reverse=True,
        lowercase=True,
        valid_size=2,
        seed=7,
        max_vocab=None,
    ),
    ModelConfig(arch="lstm", level="char", units=16, dropout=0.0, target_vocab_size=40),
    TrainConfig(epochs=2, optimizer="rmsprop", clipnorm=None, jit_compile=True, bf16_output=False),
    DecodingConfig(batch_size=8, max_length=30, beam_size=4, length_penalty=1.0, bf16_output=True),
]


@pytest.mark.parametrize("config", NON_DEFAULT, ids=lambda c: type(c).__name__)
def test_to_dict_from_dict_round_trip(config) -> None:
    data = config.to_dict()
    assert type(config).from_dict(data) == config
    # Through JSON too, which is how configs are saved next to what they produced.
    assert type(config).from_dict(json.loads(json.dumps(data))) == config


@pytest.mark.parametrize("config", NON_DEFAULT, ids=lambda c: type(c).__name__)
def test_from_dict_ignores_unknown_keys(config) -> None:
    data = {**config.to_dict(), "added_in_a_later_version": 1, "another": {"x": []}}
    assert type(config).from_dict(data) == config


def test_from_dict_fills_missing_keys_with_defaults() -> None:
    assert TrainConfig.from_dict({"epochs": 3}) == TrainConfig(epochs=3)


def test_from_dict_validates() -> None:
    with pytest.raises(ConfigError, match="^units"):
        ModelConfig.from_dict({**ModelConfig().to_dict(), "units": 0})


def test_library_modules_do_not_import_tensorflow(tmp_path) -> None:
    code = (
        "import nmtcli.corpus, nmtcli.vectorizers, nmtcli.config, nmtcli.workspace, nmtcli.cli; "
        "import nmtcli.fine_tuning; "
        "import sys; assert 'tensorflow' not in sys.modules, 'tensorflow was imported'"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr


# --------------------------------------------------------------------------------------------------
# The training-quality options: each bad value names its field, which the command line shows as --flag.

NEW_FIELDS_INVALID = [
    (TrainConfig, {"label_smoothing": -0.1}, "label_smoothing"),
    (TrainConfig, {"label_smoothing": 1.0}, "label_smoothing"),
    (TrainConfig, {"label_smoothing": 1.5}, "label_smoothing"),
    (TrainConfig, {"label_smoothing": "0.1"}, "label_smoothing"),
    (TrainConfig, {"label_smoothing": True}, "label_smoothing"),
    (TrainConfig, {"reduce_lr_factor": 0.0}, "reduce_lr_factor"),
    (TrainConfig, {"reduce_lr_factor": -0.5}, "reduce_lr_factor"),
    (TrainConfig, {"reduce_lr_factor": 1.0}, "reduce_lr_factor"),
    (TrainConfig, {"reduce_lr_factor": 2.0}, "reduce_lr_factor"),
    (TrainConfig, {"reduce_lr_patience": 0}, "reduce_lr_patience"),
    (TrainConfig, {"reduce_lr_patience": 1.5}, "reduce_lr_patience"),
    (TrainConfig, {"early_stopping_metric": "accuracy"}, "early_stopping_metric"),
    (TrainConfig, {"early_stopping_metric": "BLEU"}, "early_stopping_metric"),
    (TrainConfig, {"bleu_sample": -1}, "bleu_sample"),
    (TrainConfig, {"bleu_sample": 2.5}, "bleu_sample"),
    (TrainConfig, {"bleu_sample": 1_000_001}, "bleu_sample"),
    (TrainConfig, {"max_minutes": 0}, "max_minutes"),
    (TrainConfig, {"max_minutes": -1.0}, "max_minutes"),
    (TrainConfig, {"max_minutes": "5"}, "max_minutes"),
    (ModelConfig, {"tie_embeddings": "yes"}, "tie_embeddings"),
    (TrainConfig, {"warmup_steps": -1}, "warmup_steps"),
    (TrainConfig, {"warmup_steps": 1.5}, "warmup_steps"),
    (TrainConfig, {"batch_tokens": 0}, "batch_tokens"),
    (TrainConfig, {"batch_tokens": 10_000_001}, "batch_tokens"),
    (TrainConfig, {"init_from": ""}, "init_from"),
]


@pytest.mark.parametrize(
    ("cls", "kwargs", "field"),
    NEW_FIELDS_INVALID,
    ids=[
        "-".join(f"{k}={v!r}" for k, v in (case.values[1] if hasattr(case, "values") else case[1]).items())
        for case in NEW_FIELDS_INVALID
    ],
)
def test_new_training_options_reject_bad_values_naming_the_field(cls, kwargs, field) -> None:
    with pytest.raises(ConfigError) as info:
        cls(**kwargs)
    value = next(iter(kwargs.values()))
    assert str(info.value).startswith(field), info.value
    assert repr(value) in str(info.value) or str(value) in str(info.value)
    assert info.value.field == field
    flag = "--" + field.replace("_", "-")
    assert info.value.for_command_line().startswith(flag + " "), info.value.for_command_line()


def test_bleu_early_stopping_needs_a_bleu_sample() -> None:
    with pytest.raises(ConfigError, match="bleu_sample") as info:
        TrainConfig(early_stopping_metric="bleu", bleu_sample=0)
    assert info.value.field == "bleu_sample"
    assert TrainConfig().early_stopping_metric == "loss" and TrainConfig().bleu_sample > 0
    assert TrainConfig(early_stopping_metric="bleu", bleu_sample=1).bleu_sample == 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"label_smoothing": 0.0},
        {"label_smoothing": 0.999},
        {"label_smoothing": 0},
        {"reduce_lr_factor": None, "reduce_lr_patience": 1},
        {"reduce_lr_factor": 1e-9, "reduce_lr_patience": 100},
        {"reduce_lr_factor": 0.999},
        {"early_stopping_metric": "loss", "bleu_sample": 0},
        {"early_stopping_metric": "bleu", "bleu_sample": 1_000_000},
        {"max_minutes": None},
        {"max_minutes": 0.01},
        {"max_minutes": 1e6},
        {"warmup_steps": None},
        {"warmup_steps": 1},
        {"warmup_steps": 10_000_000},
        {"batch_tokens": None},
        {"batch_tokens": 1},
        {"init_from": "/runs/parent"},
    ],
    ids=repr,
)
def test_new_training_options_accept_their_boundaries(kwargs) -> None:
    config = TrainConfig(**kwargs)
    for name, value in kwargs.items():
        assert getattr(config, name) == value
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_tie_embeddings_round_trips_and_defaults_to_untied() -> None:
    assert ModelConfig().tie_embeddings is False
    assert ModelConfig.from_dict(ModelConfig(tie_embeddings=False).to_dict()).tie_embeddings is False
    tied = ModelConfig(tie_embeddings=True)
    assert ModelConfig.from_dict(json.loads(json.dumps(tied.to_dict()))) == tied
    # A config.json from before the option existed loads as untied.
    old = {k: v for k, v in tied.to_dict().items() if k != "tie_embeddings"}
    assert ModelConfig.from_dict(old).tie_embeddings is False


def test_bf16_output_is_on_by_default_and_old_configs_get_it() -> None:
    assert TrainConfig().bf16_output is True
    old = {k: v for k, v in TrainConfig().to_dict().items() if k != "bf16_output"}
    assert TrainConfig.from_dict(old).bf16_output is True


# (command-line arguments, the flag the one error line must start with)
CLI_INVALID = [
    (["--label-smoothing", "1.5"], "--label-smoothing"),
    (["--label-smoothing", "-0.1"], "--label-smoothing"),
    (["--reduce-lr-factor", "1.5"], "--reduce-lr-factor"),
    (["--reduce-lr-factor", "-0.5"], "--reduce-lr-factor"),
    (["--reduce-lr-patience", "0"], "--reduce-lr-patience"),
    (["--bleu-sample", "-1"], "--bleu-sample"),
    (["--max-minutes", "-1"], "--max-minutes"),
    (["--early-stopping-metric", "bleu", "--bleu-sample", "0"], "--bleu-sample"),
    (["--warmup-steps", "-1"], "--warmup-steps"),
    (["--batch-tokens", "0"], "--batch-tokens"),
    (["--cooldown-epochs", "0"], "--cooldown-epochs"),
]


@pytest.mark.parametrize(
    ("args", "flag"), CLI_INVALID, ids=lambda v: " ".join(v) if isinstance(v, list) else v
)
def test_train_command_reports_a_bad_new_option_on_one_line(tmp_path, args, flag) -> None:
    from test_cli import assert_error, nmt

    # Settings are checked before the data folder, so no prepared data is needed.
    line = assert_error(nmt("train", "--workspace", tmp_path / "ws", *args))
    assert line.startswith(f"nmt: error: {flag} "), line
    assert not (tmp_path / "ws").exists()


def test_batch_size_and_batch_tokens_exclude_each_other_on_the_command_line(tmp_path) -> None:
    from test_cli import assert_error, nmt

    line = assert_error(nmt("train", "-w", tmp_path / "ws", "--batch-size", "8", "--batch-tokens", "500"))
    assert line == "nmt: error: give --batch-size or --batch-tokens, not both"


def test_a_batch_size_given_alone_turns_the_transformers_default_batch_tokens_off(
    tiny_data, tmp_path, monkeypatch
) -> None:
    """Only --batch-size and --batch-tokens both typed are refused; --batch-size with the transformer
    (whose default sizes batches in tokens) trains batches of that many pairs."""
    import nmtcli.training
    from test_cli import assert_error, nmt

    seen = []

    def fake_train(model, training, **_):  # stands in for training: the configs are what is checked
        seen.append(training)
        raise ConfigError("configs received")

    monkeypatch.setattr(nmtcli.training, "train", fake_train)
    common = ["train", "--data", tiny_data, "-w", tmp_path / "ws", "--arch", "transformer", "-q"]
    for extra in (["--batch-size", "16"], [], ["--batch-tokens", "300"]):
        assert_error(nmt(*common, "--level", "subword", *extra), "configs received")
    assert [(t.batch_size, t.batch_tokens) for t in seen] == [(16, None), (64, 2500), (64, 300)]
    assert_error(nmt(*common, "--cooldown-epochs", "2"), "configs received")
    assert (seen[-1].cooldown, seen[-1].cooldown_epochs) == (True, 2)
    assert_error(nmt(*common, "--batch-size", "16", "--batch-tokens", "300"), "not both")


def test_architecture_training_defaults_are_owned_by_the_config() -> None:
    from nmtcli.config import ARCH_TRAINING_DEFAULTS

    # The recurrent models keep the measured defaults; the transformer smooths labels and warms up.
    for arch in ("lstm", "gru-attention"):
        assert TrainConfig.for_arch(arch) == TrainConfig()
        assert arch not in ARCH_TRAINING_DEFAULTS
    transformer = TrainConfig.for_arch("transformer")
    assert (transformer.label_smoothing, transformer.warmup_steps) == (0.1, 1000)
    # ... and cools down in its last epoch (docs/results.md); a config saved before that reads as off.
    assert transformer.cooldown and not TrainConfig().cooldown
    assert not TrainConfig.from_dict(
        {k: v for k, v in transformer.to_dict().items() if k != "cooldown"}
    ).cooldown
    assert transformer.cooldown_epochs == 2 and TrainConfig().cooldown_epochs == 1
    # A config saved before the cool-down could span several epochs reads as one epoch.
    older = {k: v for k, v in transformer.to_dict().items() if k != "cooldown_epochs"}
    assert TrainConfig.from_dict(older).cooldown_epochs == 1
    # ... and sizes batches in tokens (its memory peak follows the longest batch, docs/benchmarks.md).
    assert transformer.batch_tokens == ARCH_TRAINING_DEFAULTS["transformer"]["batch_tokens"] == 2500
    assert TrainConfig().batch_tokens is None
    assert TrainConfig().label_smoothing == 0.0 and TrainConfig().warmup_steps is None
    assert TrainConfig(warmup_steps=0) == TrainConfig()  # 0 is off, stored as None
    # A config saved before warmup_steps existed reads as today's defaults.
    assert (
        TrainConfig.from_dict({k: v for k, v in TrainConfig().to_dict().items() if k != "warmup_steps"})
        == TrainConfig()
    )
    # Given settings win over the architecture's.
    assert (
        TrainConfig.for_arch(
            "transformer",
            label_smoothing=0.0,
            warmup_steps=0,
            batch_tokens=None,
            cooldown=False,
            cooldown_epochs=1,
        )
        == TrainConfig()
    )
    # A batch size given alone asks for batches of that many pairs: no default batch_tokens on top.
    pairs = TrainConfig.for_arch("transformer", batch_size=32)
    assert (pairs.batch_size, pairs.batch_tokens, pairs.label_smoothing) == (32, None, 0.1)
    both = TrainConfig.for_arch("transformer", batch_size=32, batch_tokens=900)
    assert (both.batch_size, both.batch_tokens) == (32, 900)
    assert TrainConfig.for_arch("transformer", batch_tokens=900).batch_tokens == 900
    with pytest.raises(ConfigError, match="arch must be one of"):
        TrainConfig.for_arch("rnn")


def test_the_default_model_is_a_subword_transformer() -> None:
    """Chosen by measurement (issue 15, docs/results.md): a deliberate default, asserted as such."""
    model = ModelConfig()
    assert (model.arch, model.level) == ("transformer", "subword")
    assert (model.units, model.layers, model.heads, model.ff_dim, model.dropout) == (256, 3, 4, 1024, 0.1)
    assert model.embedding_dim == model.units  # a transformer's embeddings are d_model wide
    assert model.tie_embeddings is False and model.shared_embeddings is False  # set by training if joint
    # The recurrent architectures keep their own embedding size and the level they are given.
    assert ModelConfig(arch="gru-attention").embedding_dim == 128
    assert ModelConfig(arch="lstm", level="char").level == "char"


def test_the_train_help_shows_the_architecture_defaults() -> None:
    from typer.testing import CliRunner

    from nmtcli.cli import app

    result = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "300"})
    text = " ".join(result.stdout.replace("\u2502", " ").split())  # a cell's wrapped lines joined
    # The default architecture's value first.
    assert "[default: transformer: 0.1; lstm, gru-attention: 0.0]" in text  # --label-smoothing
    assert "[default: transformer: 1000; lstm, gru-attention: 0]" in text  # --warmup-steps
    assert "[default: transformer: 2500; lstm, gru-attention: off]" in text  # --batch-tokens
    assert "[default: transformer: True; lstm, gru-attention: False]" in text  # --cooldown
    assert "[default: transformer: 2; lstm, gru-attention: 1]" in text  # --cooldown-epochs
    assert "--batch-tokens" in text and "--init-from" in text
    assert "[default: transformer]" in text and "[default: subword]" in text
    assert "ignored by the transformer" in text and "[default: 128]" in text  # --embedding-dim


# --------------------------------------------------------------------------------------------------
# Decoding settings: validated once, recorded with scores, and the source of nmtcli's signature.


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"max_length": 0}, "max_length"),
        ({"beam_size": 65}, "beam_size"),
        ({"beam_size": 2.5}, "beam_size"),
        ({"length_penalty": -0.1}, "length_penalty"),
        ({"length_penalty": float("nan")}, "length_penalty"),
        ({"bf16_output": "yes"}, "bf16_output"),
    ],
)
def test_decoding_config_rejects_bad_values_naming_the_field(kwargs, field) -> None:
    with pytest.raises(ConfigError, match=f"^{field}") as caught:
        DecodingConfig(**kwargs)
    assert caught.value.field == field


def test_an_unset_length_penalty_is_the_architectures() -> None:
    from nmtcli.config import ARCH_LENGTH_PENALTY, DEFAULT_LENGTH_PENALTY

    unset = DecodingConfig(beam_size=4)
    assert unset.length_penalty is None and "lenpen:auto" in unset.signature()
    assert unset.for_arch("transformer").length_penalty == ARCH_LENGTH_PENALTY["transformer"]
    assert unset.for_arch("gru-attention").length_penalty == DEFAULT_LENGTH_PENALTY
    chosen = DecodingConfig(beam_size=4, length_penalty=0.0)
    assert chosen.for_arch("transformer") is chosen  # a chosen value, 0 included, is kept


def test_decoding_signature_parts_and_record() -> None:
    assert DecodingConfig().signature() == ["decode:greedy", "max_len:auto"]
    beam = DecodingConfig(max_length=40, beam_size=4, length_penalty=0.0, bf16_output=True)
    assert "|".join(beam.signature()) == "decode:beam|beam:4|lenpen:0.0|output:bf16|max_len:40"
    assert DecodingConfig(length_penalty=2.0).to_dict() == {
        "method": "greedy",
        "beam_size": 1,
        "length_penalty": None,  # not used by greedy search
        "max_length": "auto",
        "batch_size": 64,
        "bf16_output": False,
    }
    assert DecodingConfig.from_dict(beam.to_dict()) == beam


def test_decoding_keyword_shortcuts_are_validated_and_unknown_ones_refused() -> None:
    assert decoding_config(beam_size=3) == DecodingConfig(beam_size=3)
    assert decoding_config(DecodingConfig(batch_size=8), beam_size=3) == DecodingConfig(
        batch_size=8, beam_size=3
    )
    with pytest.raises(ConfigError, match="beam_size"):
        decoding_config(beam_size=0)
    with pytest.raises(TypeError):
        decoding_config(beams=3)
