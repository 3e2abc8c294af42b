"""Scoring: sacrebleu's reference layout, metrics with signatures, and perplexity."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import tensorflow as tf

from nmtcli.corpus import PreparedData, group_references
from nmtcli.errors import NmtError
from nmtcli.evaluation import evaluate, reference_streams, token_cross_entropy
from nmtcli.translator import Translator


@pytest.fixture(scope="module")
def translator(tiny_run) -> Translator:
    return Translator.load(tiny_run)


@pytest.fixture(scope="module")
def test_split(tiny_data) -> tuple[list[str], list[list[str]]]:
    return group_references(PreparedData.load(tiny_data).pairs("test"))


def test_reference_streams_hold_the_kth_reference_of_every_sentence() -> None:
    references = [["a1", "a2"], ["b1"], ["c1", "c2", "c3"]]
    assert reference_streams(references) == [
        ["a1", "b1", "c1"],
        ["a2", None, "c2"],
        [None, None, "c3"],
    ]
    assert reference_streams([["x"], ["y"]]) == [["x", "y"]]
    assert reference_streams([]) == []


def test_evaluate_reports_the_chosen_metrics_with_signatures(translator, test_split) -> None:
    sources, references = test_split
    result = evaluate(translator, sources, references, metrics=("bleu", "chrf", "ter"))
    assert set(result.scores) == set(result.single_reference_scores) == {"bleu", "chrf", "ter"}
    assert set(result.signatures) == {"bleu", "chrf", "ter"}
    for name, signature in result.signatures.items():
        assert "nrefs:" in signature, (name, signature)
    assert 0 <= result.scores["bleu"] <= 100 and 0 <= result.scores["chrf"] <= 100
    assert result.scores["ter"] >= 0
    assert result.sentences == len(sources)
    assert result.references == sum(len(refs) for refs in references)
    assert len(result.hypotheses) == len(sources)
    assert result.model == translator.run_dir.name
    assert result.decoding == {
        "method": "greedy",
        "beam_size": 1,
        "length_penalty": None,
        "max_length": "auto",
        "batch_size": 64,
        "bf16_output": False,
    }
    assert "|decode:greedy|max_len:auto|" in result.signature()
    assert f"nsents:{len(sources)}" in result.signature()


def test_default_metrics_are_bleu_and_chrf(translator, test_split) -> None:
    sources, references = test_split
    result = evaluate(translator, sources[:3], references[:3], metrics=("bleu", "chrf"))
    assert set(result.scores) == {"bleu", "chrf"}
    data = result.to_dict()
    json.dumps(data)  # serialisable
    assert "hypotheses" not in data and data["nmtcli_signature"] == result.signature()
    assert result.to_dict(with_hypotheses=True)["hypotheses"] == result.hypotheses


def test_beam_search_settings_are_in_the_result_and_the_signature(translator, test_split) -> None:
    sources, references = test_split
    result = evaluate(translator, sources, references, beam_size=4, length_penalty=1.0, max_length=20)
    assert result.decoding == {
        "method": "beam",
        "beam_size": 4,
        "length_penalty": 1.0,
        "max_length": 20,
        "batch_size": 64,
        "bf16_output": False,
    }
    assert "|decode:beam|beam:4|lenpen:1.0|max_len:20|" in result.signature()
    assert result.hypotheses == translator.translate(sources, beam_size=4, length_penalty=1.0, max_length=20)
    assert result.to_dict()["decoding"]["beam_size"] == 4


def test_perplexity_is_exp_of_cross_entropy(translator, test_split) -> None:
    sources, references = test_split
    result = evaluate(translator, sources, references, metrics=("chrf",))
    pairs = [(s, r) for s, refs in zip(sources, references, strict=True) for r in refs]
    exact = token_cross_entropy(translator, pairs)
    assert result.cross_entropy == pytest.approx(exact, abs=1e-4)
    assert result.perplexity == pytest.approx(math.exp(exact), abs=1e-3)
    assert result.perplexity == pytest.approx(math.exp(result.cross_entropy), rel=1e-3)
    assert result.perplexity > 1


def test_cross_entropy_is_summed_over_tokens_then_divided(translator) -> None:
    # Pairs of very different lengths: a mean of per-sentence means would differ.
    pairs = [("red cat.", "gato rojo."), ("big dog runs fast.", "perro grande corre."), ("dog.", "perro.")]
    total = tokens = 0.0
    for source, target in pairs:
        src = np.array([translator.source.encode(source)], np.int32)
        tgt = np.array([translator.target.encode(target, start=True, end=True)], np.int32)
        logits = translator.model((src, tgt[:, :-1]), training=False)
        nll = tf.keras.losses.sparse_categorical_crossentropy(tgt[:, 1:], logits, from_logits=True)
        total += float(tf.reduce_sum(nll))
        tokens += tgt.shape[1] - 1
    assert token_cross_entropy(translator, pairs, batch_size=2) == pytest.approx(total / tokens, rel=1e-5)
    assert token_cross_entropy(translator, []) is None


def test_a_hypothesis_matching_the_second_reference_scores_higher_with_both(translator) -> None:
    sources = ["red cat.", "big dog runs.", "small blue cat eats.", "green dog sleeps."]
    hypotheses = translator.translate(sources)
    kept = [(s, h) for s, h in zip(sources, hypotheses, strict=True) if h.strip()]
    assert kept, f"the tiny model translated everything to nothing: {hypotheses}"
    sources = [s for s, _ in kept]
    references = [["zzz qqq xxx www.", h] for _, h in kept]  # the second reference is exact

    result = evaluate(translator, sources, references, metrics=("bleu", "chrf", "ter"))
    assert result.hypotheses == [h for _, h in kept]
    assert result.scores["chrf"] == pytest.approx(100.0)
    assert result.scores["chrf"] > result.single_reference_scores["chrf"]
    assert result.scores["bleu"] >= result.single_reference_scores["bleu"]
    assert result.scores["ter"] == pytest.approx(0.0)
    assert result.scores["ter"] < result.single_reference_scores["ter"]
    assert "nrefs:2" in result.signatures["bleu"]


def test_nothing_to_score_is_a_clear_error(translator) -> None:
    with pytest.raises(NmtError):
        evaluate(translator, [], [])
