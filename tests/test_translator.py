"""Translator.load(run).translate(lines): one output per input, robust input, damaged model folders."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from nmtcli.errors import ConfigError, ModelError
from nmtcli.files import sha256_file
from nmtcli.run_folder import RunFolder
from nmtcli.translator import Translator
from nmtcli.vectorizers import END_ID, PAD_ID, START_ID, WordTokenizer

LINES = ["red cat.", "big dog runs.", "small blue cat eats.", "dog.", "green dog sleeps."]


@pytest.fixture(scope="module", params=["gru-attention", "lstm"])
def run_dir(request, tiny_run_factory) -> Path:
    return tiny_run_factory(request.param)


@pytest.fixture(scope="module")
def translator(run_dir) -> Translator:
    return Translator.load(run_dir)


def damaged_copy(run_dir: Path, tmp_path: Path) -> Path:
    copy = tmp_path / run_dir.name
    shutil.copytree(run_dir, copy)
    return copy


def test_one_translation_per_input_in_order(translator) -> None:
    together = translator.translate(LINES)
    assert len(together) == len(LINES)
    assert all(isinstance(line, str) for line in together)
    # Batching (sorting by length, padding) does not change any translation or its place.
    one_by_one = [translator.translate([line])[0] for line in LINES]
    assert together == one_by_one
    assert translator.translate(LINES, batch_size=2) == together
    assert translator.translate(list(reversed(LINES))) == list(reversed(together))


def test_greedy_decoding_drops_ended_sentences_and_decodes_as_the_plain_loop(translator) -> None:
    """The translator's greedy decoder (ended sentences leave the batch) gives the ids of the plain
    loop that computes every row at every step, and it is compiled once for any batch size. (The
    Keras path: ``translator`` itself decodes from the run's decoder cache, see test_decoder_cache.)"""
    import tensorflow as tf

    from nmtcli.decoding import ModelSteps, greedy_search

    cached = translator
    translator = Translator(cached.model, cached.source, cached.target, cached.config, cached.lowercase)
    lines = LINES * 4
    encoded = [translator.source.encode(line) for line in lines]
    batch, steps = translator._padded(encoded, None)
    model_steps = ModelSteps(translator.model)
    plain = tf.function(
        lambda source: greedy_search(
            model_steps.next, model_steps.start(source), tf.shape(source)[0], steps, drop_finished=False
        )
    )(batch)
    assert translator.translate_ids(encoded) == plain.numpy().tolist()
    assert translator.translate(lines, batch_size=3) == translator.translate(lines)
    assert cached.translate_ids(encoded) == plain.numpy().tolist()
    assert list(translator._decoders) == [("greedy", 1, False)]
    assert translator._decoders["greedy", 1, False].experimental_get_tracing_count() == 1


def test_translate_stream_gives_the_translations_and_says_which_inputs_were_cut(translator) -> None:
    long_line = " ".join(["dog"] * (translator.max_source_tokens + 5)) + "."
    lines = [*LINES, "", long_line]
    results = list(translator.translate_stream(iter(lines), batch_size=2, chunk_size=3))
    assert [r.source for r in results] == lines
    assert [r.translation for r in results] == translator.translate(lines)
    assert [r.truncated for r in results] == [False] * (len(lines) - 1) + [True]
    assert all(r.alignment is None for r in results)
    with pytest.raises(ConfigError, match="chunk_size"):
        next(translator.translate_stream(lines, chunk_size=0))


def test_the_model_produces_words_from_its_vocabulary(translator) -> None:
    translations = translator.translate(LINES)
    assert any(translations), translations
    for translation in translations:
        assert "<unk>" not in translation and "<end>" not in translation and "<pad>" not in translation


def test_empty_and_blank_lines_give_empty_strings(translator) -> None:
    lines = ["", "red cat.", "   ", "\t", "dog.", ""]
    out = translator.translate(lines)
    assert len(out) == len(lines)
    assert out[0] == out[2] == out[3] == out[5] == ""
    assert out[1] == translator.translate(["red cat."])[0]
    assert translator.translate([]) == []
    assert translator.translate(["", " "]) == ["", ""]


def test_unknown_words_characters_and_emoji_do_not_fail(translator) -> None:
    lines = [
        "zebra giraffe.",
        "red 😀 cat.",
        "日本語のテキスト",
        "ñandú ß Ω \u200b\u2028 x",
        "🦓🦓🦓",
        "\x00\x07",
    ]
    out = translator.translate(lines)
    assert len(out) == len(lines)
    assert all(isinstance(line, str) for line in out)


def test_max_length_caps_the_output(translator) -> None:
    tokenizer = WordTokenizer()
    for cap in (1, 2):
        for line in translator.translate(LINES, max_length=cap):
            assert len(tokenizer.tokenize(line)) <= cap, line
    ids = translator.translate_ids([[4, 5, 6], [7]], max_length=3)
    assert len(ids) == 2 and all(len(row) <= 3 for row in ids)
    # The default bound depends on the source length.
    source = [[4] * 6]
    assert len(translator.translate_ids(source)[0]) <= translator.default_max_length(6)


def test_invalid_batch_size_or_max_length_is_a_config_error(translator) -> None:
    with pytest.raises(ConfigError, match="batch_size"):
        translator.translate(LINES, batch_size=0)
    with pytest.raises(ConfigError, match="max_length"):
        translator.translate(LINES, max_length=0)


def test_a_fresh_process_gives_identical_translations(run_dir, translator, tmp_path) -> None:
    script = textwrap.dedent(
        """
        import json, sys
        from nmtcli import Translator
        lines = json.loads(sys.argv[2])
        print(json.dumps(Translator.load(sys.argv[1]).translate(lines)))
        """
    )
    lines = [*LINES, "", "zebra 😀."]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-c", script, str(run_dir), json.dumps(lines)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == translator.translate(lines)


def test_missing_folder_is_a_model_error(tmp_path) -> None:
    with pytest.raises(ModelError, match="not found"):
        Translator.load(tmp_path / "nowhere")
    with pytest.raises(ModelError, match="config.json"):
        Translator.load(tmp_path)


@pytest.mark.parametrize("side", ["source", "target"])
def test_a_vocabulary_with_a_line_removed_is_a_model_error(run_dir, tmp_path, side) -> None:
    run = damaged_copy(run_dir, tmp_path)
    vocab = run / "vocab" / f"{side}.txt"
    lines = vocab.read_text(encoding="utf-8").split("\n")
    del lines[5]  # a real token, after the four specials
    vocab.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(ModelError, match="vocabulary"):
        Translator.load(run)


def test_a_vocabulary_without_its_specials_is_a_model_error(run_dir, tmp_path) -> None:
    run = damaged_copy(run_dir, tmp_path)
    vocab = run / "vocab" / "target.txt"
    vocab.write_text(vocab.read_text(encoding="utf-8").split("\n", 1)[1], encoding="utf-8")
    with pytest.raises(ModelError):
        Translator.load(run)


def test_a_truncated_model_file_is_a_model_error(run_dir, tmp_path) -> None:
    run = damaged_copy(run_dir, tmp_path)
    data = (run / "model.keras").read_bytes()
    (run / "model.keras").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="model.keras"):
        Translator.load(run)


def test_a_model_keras_cannot_rebuild_is_a_model_error(run_dir, tmp_path, monkeypatch) -> None:
    """Keras only warns when a saved model's build fails, and loads no weights into the layers it
    could not build; nmtcli refuses such a model rather than translate with random weights."""
    from nmtcli.models.base import Seq2Seq

    def failing_build(self, input_shape=None):
        raise ValueError("cannot build")

    monkeypatch.setattr(Seq2Seq, "build", failing_build)
    run = damaged_copy(run_dir, tmp_path)
    shutil.rmtree(RunFolder(run).decoder_dir)  # else greedy search never builds the Keras model
    with pytest.raises(ModelError, match="cannot rebuild the model"):
        Translator.load(run)


def test_a_missing_model_file_is_a_model_error(run_dir, tmp_path) -> None:
    run = damaged_copy(run_dir, tmp_path)
    (run / "model.keras").unlink()
    with pytest.raises(ModelError, match="no model.keras"):
        Translator.load(run)


def test_an_unknown_format_version_is_a_model_error(run_dir, tmp_path) -> None:
    run = damaged_copy(run_dir, tmp_path)
    config = json.loads((run / "config.json").read_text(encoding="utf-8"))
    config["format_version"] = 999
    (run / "config.json").write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(ModelError, match="999"):
        Translator.load(run)


def test_an_unreadable_config_is_a_model_error(run_dir, tmp_path) -> None:
    run = damaged_copy(run_dir, tmp_path)
    (run / "config.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ModelError, match="unreadable"):
        Translator.load(run)


def test_a_character_level_model_takes_unseen_characters(tiny_run_factory) -> None:
    translator = Translator.load(tiny_run_factory("lstm", "char"))
    lines = ["red cat.", "ÿ€😀 日本", "", "RED CAT!"]
    out = translator.translate(lines, max_length=12)
    assert len(out) == len(lines)
    assert out[2] == ""
    assert all(len(line) <= 12 for line in out)


def test_input_is_lowercased_when_the_training_data_was(run_dir, translator, tmp_path) -> None:
    run = damaged_copy(run_dir, tmp_path)
    manifest = json.loads((run / "data-manifest.json").read_text(encoding="utf-8"))
    manifest["settings"]["lowercase"] = True
    (run / "data-manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    RunFolder(run).write_checksums([sha256_file(run / "model.keras")])  # as if trained on lowercased data
    lowercasing = Translator.load(run)
    assert lowercasing.lowercase and not translator.lowercase
    assert lowercasing.translate(["RED Cat.", "Big  DOG\truns."]) == translator.translate(
        ["red cat.", "big dog runs."]
    )


# --------------------------------------------------------------------------------------------------
# Beam search on the real models


def sequence_log_prob(translator: Translator, source: list[int], target: list[int]) -> float:
    """The model's log-probability (nats) of ``target`` (end id included) given ``source``, teacher-forced."""
    import numpy as np
    import tensorflow as tf

    target_in = tf.constant([[START_ID, *target[:-1]]], tf.int32)
    logits = translator.model((tf.constant([source], tf.int32), target_in), training=False)
    log_probs = tf.nn.log_softmax(logits[0]).numpy()
    return float(np.sum(log_probs[np.arange(len(target)), target]))


def hypothesis(row: list[int]) -> list[int]:
    return row[: row.index(END_ID) + 1] if END_ID in row else [t for t in row if t != PAD_ID]


def test_beam_search_gives_one_translation_per_input_in_order(translator) -> None:
    together = translator.translate(LINES, beam_size=4)
    assert len(together) == len(LINES)
    assert all(isinstance(line, str) for line in together)
    for translation in together:
        assert "<unk>" not in translation and "<end>" not in translation and "<pad>" not in translation
    # A sentence's beams never mix with another sentence's: any batch gives the same translations.
    assert [translator.translate([line], beam_size=4)[0] for line in LINES] == together
    assert translator.translate(LINES, batch_size=2, beam_size=4) == together
    assert translator.translate(list(reversed(LINES)), beam_size=4) == list(reversed(together))
    assert translator.translate(["", "red cat.", " "], beam_size=4) == ["", together[0], ""]


def test_beam_search_scores_at_least_as_high_as_greedy(translator) -> None:
    """With no length penalty beam search maximises the model's log-probability, which greedy search
    only approximates. Pruning can lose greedy's path on some sentence, so only the sum is compared."""
    sources = [translator.source.encode(line) for line in LINES]
    greedy = translator.translate_ids(sources, max_length=12)
    beam = translator.translate_ids(sources, max_length=12, beam_size=4, length_penalty=0.0)
    greedy_total = beam_total = 0.0
    for source, greedy_row, beam_row in zip(sources, greedy, beam, strict=True):
        greedy_total += sequence_log_prob(translator, source, hypothesis(greedy_row))
        beam_total += sequence_log_prob(translator, source, hypothesis(beam_row))
    assert beam_total >= greedy_total - 1e-4, (greedy, beam)
    # Beam size 1 is greedy search, whatever the length penalty.
    assert translator.translate(LINES, beam_size=1, length_penalty=2.0) == translator.translate(LINES)


def test_beam_search_respects_max_length(translator) -> None:
    tokenizer = WordTokenizer()
    for line in translator.translate(LINES, max_length=2, beam_size=3):
        assert len(tokenizer.tokenize(line)) <= 2, line


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"beam_size": 0}, "beam_size"),
        ({"beam_size": 65}, "beam_size"),
        ({"beam_size": 2.5}, "beam_size"),
        ({"beam_size": 4, "length_penalty": -0.1}, "length_penalty"),
        ({"beam_size": 4, "length_penalty": float("nan")}, "length_penalty"),
        ({"beam_size": 4, "length_penalty": float("inf")}, "length_penalty"),
    ],
)
def test_invalid_beam_options_are_config_errors(translator, options, field) -> None:
    with pytest.raises(ConfigError, match=field) as caught:
        translator.translate(LINES, **options)
    assert caught.value.field == field
