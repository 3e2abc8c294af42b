"""Fine-tuning: `nmt prepare --vocab-from RUN` writes the run's vocabularies (and SentencePiece models)
for new data; `nmt train --init-from RUN` starts from the run's weights, records where it came from,
and refuses a run that does not fit in one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import TINY_TRAINING, make_tiny_pairs, write_tsv
from nmtcli.config import ModelConfig, PrepareConfig, TrainConfig
from nmtcli.corpus import prepare
from nmtcli.errors import ConfigError
from nmtcli.fine_tuning import SHAPE_SETTINGS, parent_model_settings, run_vocabularies
from nmtcli.run_folder import RunFolder
from test_cli import assert_error, assert_ok, nmt

TINY_TRANSFORMER = {"units": 16, "layers": 1, "heads": 2, "ff_dim": 32, "dropout": 0.0}


@pytest.fixture(scope="module")
def new_corpus(tmp_path_factory) -> Path:
    """Other pairs of the same toy language: the "new domain"."""
    return write_tsv(tmp_path_factory.mktemp("new") / "new.tsv", make_tiny_pairs(sources=60, seed=11))


@pytest.fixture(scope="module")
def transformer_parent(tmp_path_factory, tiny_data) -> Path:
    from nmtcli.training import train

    return train(
        ModelConfig(arch="transformer", level="subword", **TINY_TRANSFORMER),
        TrainConfig(**{**TINY_TRAINING, "epochs": 2, "bleu_sample": 0}),
        data_dir=tiny_data,
        run_dir=tmp_path_factory.mktemp("parent") / "run",
    ).run_dir


def prepared_with(corpus: Path, out: Path, run: Path | None) -> Path:
    vocabularies = run_vocabularies(run) if run is not None else None
    prepare(corpus, out, PrepareConfig(valid_size=5, test_size=5, seed=2), vocabularies=vocabularies)
    return out


def test_vocab_from_writes_the_runs_subword_models_byte_for_byte(transformer_parent, new_corpus, tmp_path):
    data = prepared_with(new_corpus, tmp_path / "data", transformer_parent)
    for side in ("source", "target"):
        for suffix in ("txt", "model"):
            ours = (data / "vocab" / f"{side}.subword.{suffix}").read_bytes()
            assert ours == (transformer_parent / "vocab" / f"{side}.{suffix}").read_bytes(), (side, suffix)
    manifest = json.loads((data / "manifest.json").read_text())
    assert manifest["vocab_from"] == {"run": str(transformer_parent.resolve()), "level": "subword"}
    assert manifest["subword"]["joint"] is True
    # The other levels are built from the new data as usual.
    assert (data / "vocab" / "source.word.txt").is_file()


def test_vocab_from_a_word_level_run_writes_its_word_vocabularies(tiny_run, new_corpus, tmp_path):
    data = prepared_with(new_corpus, tmp_path / "data", tiny_run)
    for side in ("source", "target"):
        assert (data / "vocab" / f"{side}.word.txt").read_bytes() == (
            tiny_run / "vocab" / f"{side}.txt"
        ).read_bytes()
    # New data prepared on its own builds its own vocabulary (smaller: 60 sources instead of 90).
    own = prepared_with(new_corpus, tmp_path / "own", None)
    assert (own / "vocab" / "source.word.txt").read_bytes() != (
        data / "vocab" / "source.word.txt"
    ).read_bytes()


def test_a_fine_tuned_run_starts_from_the_parents_weights_and_says_so(tiny_run, new_corpus, tmp_path):
    from nmtcli.training import train
    from nmtcli.translator import Translator

    data = prepared_with(new_corpus, tmp_path / "data", tiny_run)
    parent = RunFolder(tiny_run).config().model
    result = train(
        ModelConfig(**parent_model_settings(tiny_run, {})),
        # So small a step that the weights stay the parent's, to within float32 rounding.
        TrainConfig(epochs=1, batch_size=16, learning_rate=1e-9, bleu_sample=0, init_from=str(tiny_run)),
        data_dir=data,
        run_dir=tmp_path / "child",
    )
    child = RunFolder(result.run_dir)
    assert child.config().training.init_from == str(tiny_run.resolve())
    for name in (*SHAPE_SETTINGS, "dropout", "source_vocab_size", "target_vocab_size"):
        assert getattr(child.config().model, name) == getattr(parent, name), name
    for mine, theirs in zip(
        child.load_model().get_weights(), RunFolder(tiny_run).load_model().get_weights(), strict=True
    ):
        np.testing.assert_allclose(mine, theirs, atol=1e-5)
    translations = Translator.load(result.run_dir).translate(["red cat.", "big dog runs."])
    assert translations == Translator.load(tiny_run).translate(["red cat.", "big dog runs."])


def test_data_with_its_own_vocabulary_is_refused_in_one_line(tiny_run, new_corpus, tmp_path):
    from nmtcli.training import train

    data = prepared_with(new_corpus, tmp_path / "data", None)
    with pytest.raises(ConfigError) as caught:
        train(
            ModelConfig(**parent_model_settings(tiny_run, {})),
            TrainConfig(epochs=1, init_from=str(tiny_run)),
            data_dir=data,
            run_dir=tmp_path / "child",
        )
    message = caught.value.for_command_line()
    assert message.startswith("--init-from: the prepared data's source vocabulary is not the one of")
    assert "nmt prepare --vocab-from" in message and "\n" not in message
    assert not (tmp_path / "child").exists()


def test_other_architecture_or_sizes_are_refused(tiny_run, tiny_data, tmp_path):
    from nmtcli.training import train

    settings = parent_model_settings(tiny_run, {})
    for change in ({"arch": "lstm"}, {"units": settings["units"] * 2}):
        with pytest.raises(ConfigError) as caught:
            train(
                ModelConfig(**{**settings, **change}),
                TrainConfig(epochs=1, init_from=str(tiny_run)),
                data_dir=tiny_data,
                run_dir=tmp_path / "child",
            )
        (name,) = change
        assert str(caught.value).startswith(f"init_from: {tiny_run} has {name} "), caught.value
    # Given on the command line, a differing size names its option; dropout may change.
    with pytest.raises(ConfigError) as caught:
        parent_model_settings(tiny_run, {"units": 8})
    assert caught.value.for_command_line().startswith("--units must be the value of the run fine-tuned from")
    assert parent_model_settings(tiny_run, {"dropout": 0.3})["dropout"] == 0.3
    assert not (tmp_path / "child").exists()


def test_the_command_line_prepares_fine_tunes_and_translates(transformer_parent, new_corpus, tmp_path):
    data = tmp_path / "data"
    assert_ok(nmt("prepare", new_corpus, "-o", data, "--vocab-from", transformer_parent, "--valid-size", "5"))
    assert (data / "vocab" / "source.subword.model").read_bytes() == (
        transformer_parent / "vocab" / "source.model"
    ).read_bytes()
    # A size other than the parent's: one line, before any training.
    line = assert_error(nmt("train", "-d", data, "--init-from", transformer_parent, "--layers", "3"))
    assert line.startswith("nmt: error: --layers must be the value of the run fine-tuned from, 1, not 3")
    child = tmp_path / "child"
    result = nmt(
        "train", "-d", data, "-o", child, "--init-from", transformer_parent, "--epochs", "1",
        "--batch-tokens", "200", "--bleu-sample", "0", "--dropout", "0.1", "-q",
    )  # fmt: skip
    assert_ok(result)
    config = RunFolder(child).config()
    assert config.training.init_from == str(transformer_parent.resolve())
    assert (config.model.arch, config.model.level, config.model.layers, config.model.dropout) == (
        "transformer", "subword", 1, 0.1,
    )  # fmt: skip
    # The transformer's training defaults, as for a transformer trained from scratch.
    assert (config.training.label_smoothing, config.training.warmup_steps) == (0.1, 1000)
    translated = nmt("translate", "-m", child, input="red cat.\n")
    assert_ok(translated)
    assert len(translated.stdout.splitlines()) == 1
    # Not a run folder at all: one line.
    line = assert_error(nmt("prepare", new_corpus, "-o", tmp_path / "d2", "--vocab-from", tmp_path))
    assert "not an nmtcli model folder" in line
