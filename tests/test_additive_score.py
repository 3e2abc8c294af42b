"""The additive attention score computed in chunks: Keras's function and weights, less memory."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from nmtcli.models import additive_score
from nmtcli.models.additive_score import ChunkedAdditiveAttention


@pytest.mark.parametrize("traced", [False, True], ids=["eager", "traced"])
@pytest.mark.parametrize("chunk_elements", [1 << 23, 50, 1], ids=["one-chunk", "a-few", "one-step-each"])
def test_same_outputs_and_gradients_as_keras_additive_attention(chunk_elements, traced, monkeypatch) -> None:
    monkeypatch.setattr(additive_score, "CHUNK_ELEMENTS", chunk_elements)
    rng = np.random.default_rng(0)
    query = tf.constant(rng.normal(size=(3, 7, 5)), tf.float32)
    keys = tf.constant(rng.normal(size=(3, 4, 5)), tf.float32)
    values = tf.constant(rng.normal(size=(3, 4, 6)), tf.float32)
    mask = tf.constant([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]]) > 0
    reference = keras.layers.AdditiveAttention(use_scale=True)
    chunked = ChunkedAdditiveAttention(use_scale=True)
    for layer in (reference, chunked):
        layer.build([query.shape, values.shape, keys.shape])
    chunked.scale.assign(rng.normal(size=5).astype("float32"))
    reference.set_weights(chunked.get_weights())  # the same weights, so an old model loads as is

    def outputs_and_gradients(layer):
        with tf.GradientTape() as tape:
            tape.watch([query, keys, values])
            context, weights = layer([query, values, keys], mask=[None, mask], return_attention_scores=True)
            loss = tf.reduce_sum(context * context) + tf.reduce_sum(weights * tf.range(4.0))
        return [context, weights, *tape.gradient(loss, [query, keys, values, layer.scale])]

    # Traced, the backward loop runs in a graph (one slice at a time there: parallel_iterations=1).
    compute = tf.function(outputs_and_gradients) if traced else outputs_and_gradients
    results = [compute(reference), compute(chunked)]
    for expected, got in zip(*results, strict=True):
        np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)


def test_traced_with_unknown_lengths_and_one_decoding_step_keep_static_shapes() -> None:
    layer = ChunkedAdditiveAttention(use_scale=True)
    layer.build([(None, None, 4), (None, None, 4), (None, None, 4)])
    spec = tf.TensorSpec([None, None, 4])
    traced = tf.function(layer._calculate_scores, input_signature=[spec, spec])
    rng = np.random.default_rng(1)
    query, keys = (tf.constant(rng.normal(size=shape), tf.float32) for shape in ((2, 5, 4), (2, 3, 4)))
    np.testing.assert_allclose(
        traced(query, keys).numpy(),
        keras.layers.AdditiveAttention._calculate_scores(layer, query, keys).numpy(),
        rtol=1e-5,
        atol=1e-6,
    )
    step = layer._calculate_scores(tf.zeros([2, 1, 4]), keys)
    assert step.shape == (2, 1, 3)


def test_the_gru_attention_model_uses_it_and_keeps_its_weight_names(tiny_run) -> None:
    from nmtcli.translator import Translator

    model = Translator.load(tiny_run).model
    assert isinstance(model.attention.score, ChunkedAdditiveAttention)
    [scale] = model.attention.score.weights
    assert scale.path.endswith("/attention/score/scale")
