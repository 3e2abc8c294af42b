"""Named recipes (presets.py) and how ``nmt prepare --preset`` and ``nmt train --preset`` apply them:
a preset fills in only the options left at their default."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import typer.main

from conftest import make_tiny_pairs, write_tsv
from nmtcli.cli import app
from nmtcli.config import ModelConfig, PrepareConfig, TrainConfig
from nmtcli.errors import ConfigError
from nmtcli.presets import PRESETS, Preset, apply_preset, get_preset
from test_cli import assert_ok, nmt

# Which command takes each section of a preset, and which config it fills.
SECTIONS = {
    "prepare": ("prepare", PrepareConfig),
    "model": ("train", ModelConfig),
    "training": ("train", TrainConfig),
}


def command_defaults(command: str) -> dict[str, Any]:
    """Every option of ``nmt COMMAND`` with its default, by parameter name."""
    return {param.name: param.default for param in typer.main.get_command(app).commands[command].params}


def preset_config(preset: Preset, section: str):
    """The config ``apply_preset(NAME)`` builds for ``section`` when the caller gives nothing."""
    return getattr(apply_preset(preset.name), section)


def test_presets_are_found_by_their_names() -> None:
    assert {"default", "seed-000", "seed-002", "seed-003"} <= set(PRESETS)
    for name, preset in PRESETS.items():
        assert preset.name == name
        assert preset.description.strip()
        assert get_preset(name) is preset


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_setting_is_an_option_of_its_command_and_a_config_field(name) -> None:
    preset = PRESETS[name]
    for section, (command, cls) in SECTIONS.items():
        options = command_defaults(command)
        fields = {field.name for field in dataclasses.fields(cls)}
        for key in getattr(preset, section):
            assert key in options, f"{name}: {section}.{key} is not an option of nmt {command}"
            assert key in fields, f"{name}: {section}.{key} is not a {cls.__name__} field"


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_builds_valid_configs_holding_its_settings(name) -> None:
    preset = PRESETS[name]
    for section in SECTIONS:
        config = preset_config(preset, section)
        for key, value in getattr(preset, section).items():
            assert getattr(config, key) == value, (section, key)


def test_apply_preset_fills_only_what_the_caller_did_not_give() -> None:
    """The library applies a preset without the command line: the caller's values win, the preset
    fills the rest, the config defaults fill what neither sets."""
    configs = apply_preset(
        "seed-003",
        model={"dropout": 0.1, "units": 32},
        training={"epochs": 2, "reduce_lr_factor": 0.5},
        prepare={"limit": 50},
    )
    assert (configs.model.arch, configs.model.level, configs.model.embedding_dim) == ("lstm", "char", 64)
    assert (configs.model.dropout, configs.model.units) == (0.1, 32)
    assert configs.training.epochs == 2 and configs.training.optimizer == "rmsprop"
    assert configs.training.reduce_lr_factor == 0.5  # given; the preset turns it off
    assert configs.training.learning_rate == TrainConfig().learning_rate  # neither sets it
    assert configs.prepare.limit == 50 and configs.prepare.min_count == 1
    # No preset: the default model (a transformer) with its architecture's training defaults.
    assert apply_preset(None, training={"epochs": 3}).training == TrainConfig.for_arch(
        "transformer", epochs=3
    )
    assert apply_preset(None).model == ModelConfig()
    assert apply_preset(None, model={"arch": "gru-attention"}).training == TrainConfig()


def test_the_chosen_architecture_fills_its_own_training_defaults_below_the_preset_and_the_caller() -> None:
    transformer = apply_preset(None, model={"arch": "transformer"}).training
    assert (transformer.label_smoothing, transformer.warmup_steps) == (0.1, 1000)
    assert apply_preset(None, model={"arch": "gru-attention"}).training.label_smoothing == 0.0
    given = apply_preset(None, model={"arch": "transformer"}, training={"label_smoothing": 0.2}).training
    assert (given.label_smoothing, given.warmup_steps) == (0.2, 1000)
    # A preset's setting wins over the architecture's (the seeds turn label smoothing off).
    seed = apply_preset("seed-000", model={"arch": "transformer", "units": 32, "heads": 4}).training
    assert (seed.label_smoothing, seed.warmup_steps) == (0.0, 1000)
    # Its batches of 8 pairs too: a batch size set alone turns the transformer's batch_tokens off.
    assert (seed.batch_size, seed.batch_tokens) == (8, None)
    assert transformer.batch_tokens == 2500


def test_apply_preset_reports_an_invalid_given_value_by_its_field() -> None:
    with pytest.raises(ConfigError) as info:
        apply_preset("seed-000", training={"epochs": 0})
    assert info.value.field == "epochs"


def test_the_default_preset_gives_what_its_description_promises() -> None:
    model = preset_config(PRESETS["default"], "model")
    training = preset_config(PRESETS["default"], "training")
    description = PRESETS["default"].description
    assert (model.arch, model.level) == ("transformer", "subword")
    assert "subword-level Transformer" in description
    assert f"d_model {model.units}, {model.layers}+{model.layers} layers" in description
    assert "label smoothing" in description and training.label_smoothing > 0
    assert "warmup" in description and training.warmup_steps
    assert "token batches" in description and training.batch_tokens
    assert "halving" in PRESETS["default"].description and training.reduce_lr_factor == 0.5
    assert "BLEU" in PRESETS["default"].description
    assert training.bleu_sample > 0 and training.early_stopping_metric == "loss"


def test_an_unknown_preset_is_a_config_error_listing_the_choices() -> None:
    with pytest.raises(ConfigError) as info:
        get_preset("seed-999")
    assert info.value.field == "preset"
    message = info.value.for_command_line()
    assert message.startswith("--preset "), message
    assert "'seed-999'" in message
    for name in PRESETS:
        assert name in message


@pytest.mark.parametrize("command", ["prepare", "train"])
def test_the_preset_option_help_says_what_each_preset_is(command) -> None:
    (option,) = [p for p in typer.main.get_command(app).commands[command].params if p.name == "preset"]
    for name, preset in PRESETS.items():
        assert f"{name}: {preset.description}" in option.help, name
    assert "character-level LSTM, 256 units, RMSprop" in PRESETS["seed-003"].description


# --------------------------------------------------------------------------------------------------
# On the command line


@pytest.mark.parametrize("command", ["prepare", "train"])
def test_an_unknown_preset_on_the_command_line_is_a_usage_error_listing_the_choices(
    tmp_path, tiny_corpus, command
) -> None:
    args = [command, tiny_corpus] if command == "prepare" else [command]
    result = nmt(*args, "--workspace", tmp_path / "ws", "--preset", "seed-999")
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.splitlines()
    assert line.startswith("nmt: error: ") and "--preset" in line and "seed-999" in line
    for name in PRESETS:
        assert name in line
    assert not (tmp_path / "ws").exists()


@pytest.fixture(scope="module")
def corpus_of_1700(tmp_path_factory) -> Path:
    """A synthetic corpus of more than 1,700 pairs (some sources have two translations)."""
    return write_tsv(tmp_path_factory.mktemp("big") / "big.tsv", make_tiny_pairs(sources=1700, seed=3))


def prepared_counts(tmp_path: Path, corpus: Path, *options: str) -> tuple[int, Any]:
    out = tmp_path / f"data{len(list(tmp_path.iterdir()))}"
    result = nmt("prepare", corpus, "--output", out, "--workspace", tmp_path / "ws", *options, "--json")
    assert_ok(result)
    manifest = json.loads(result.stdout)
    assert json.loads((out / "manifest.json").read_text(encoding="utf-8"))["counts"] == manifest["counts"]
    return manifest["counts"]["read"], manifest["settings"]["limit"]


def test_prepare_preset_applies_its_limit_unless_limit_is_given(tmp_path, corpus_of_1700) -> None:
    total = len(corpus_of_1700.read_text(encoding="utf-8").splitlines())
    assert total > 1700
    assert prepared_counts(tmp_path, corpus_of_1700) == (total, None)
    assert prepared_counts(tmp_path, corpus_of_1700, "--preset", "seed-000") == (1500, 1500)
    assert prepared_counts(tmp_path, corpus_of_1700, "--preset", "seed-000", "--limit", "1600") == (
        1600,
        1600,
    )
    # Presets without prepare settings change nothing.
    assert prepared_counts(tmp_path, corpus_of_1700, "--preset", "default") == (total, None)


def test_train_preset_fills_in_only_the_options_not_given(tmp_path, tiny_data) -> None:
    run = tmp_path / "run"
    result = nmt(
        "train",
        "--data",
        tiny_data,
        "--workspace",
        tmp_path / "ws",
        "--output",
        run,
        "--preset",
        "seed-003",
        "--epochs",
        "1",
        "--dropout",
        "0.1",  # given, though equal to the default: it beats the preset's 0.0
        "--label-smoothing",
        "0.1",  # beats the preset's 0.0
        "--bleu-sample",
        "3",  # beats the preset's 0 (off)
        "--tie-embeddings",  # given; the preset says untied
        "--json",
    )
    assert_ok(result)
    assert json.loads(result.stdout)["epochs"] == 1
    config = json.loads((run / "config.json").read_text(encoding="utf-8"))
    model, training = config["model"], config["training"]
    assert {
        k: model[k] for k in ("arch", "level", "embedding_dim", "units", "dropout", "tie_embeddings")
    } == {
        "arch": "lstm",
        "level": "char",
        "embedding_dim": 64,
        "units": 256,
        "dropout": 0.1,
        "tie_embeddings": True,
    }
    assert training == {
        **TrainConfig().to_dict(),
        "epochs": 1,  # given
        "batch_size": 64,
        "optimizer": "rmsprop",
        "patience": 0,
        "label_smoothing": 0.1,
        "reduce_lr_factor": None,  # the preset's 0 = off
        "bleu_sample": 3,
        "early_stopping_metric": "loss",  # the preset's
    }
    assert (run / "vocab" / "source.txt").read_bytes() == (
        tiny_data / "vocab" / "source.char.txt"
    ).read_bytes()
    (row,) = json.loads((run / "history.json").read_text(encoding="utf-8"))
    assert 0.0 <= row["val_bleu"] <= 100.0
    assert row["learning_rate"] == pytest.approx(1e-3)  # the default: seed-003 does not set it
