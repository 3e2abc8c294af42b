"""The CPU path for recurrent layers computes what the Keras layers compute: outputs, states, gradients."""

from __future__ import annotations

import contextlib

import keras
import numpy as np
import pytest
import tensorflow as tf

from nmtcli.config import ModelConfig
from nmtcli.models import ARCHITECTURES, build_model, fast_rnn
from nmtcli.models.fast_rnn import (
    _fast_path_applies,
    _keeps_gates,
    keras_layers_only,
    lstm_sequence,
    run_bidirectional_gru,
    run_gru,
    run_lstm,
)
from nmtcli.training import masked_loss
from nmtcli.vectorizers import END_ID, START_ID

BATCH, STEPS, FEATURES, UNITS = 5, 7, 6, 8
# Right padding of every kind: full, partial, a single token, and a row that is all padding.
LENGTHS = np.array([7, 3, 1, 5, 0])


# A model-sized batch: sources and targets of different lengths, right-padded.
SOURCE = np.array([[4, 5, 6, 0, 0], [7, 8, 9, 10, 12]], np.int32)
TARGET_IN = np.array([[START_ID, 4, 5, 6], [START_ID, 7, 8, 0]], np.int32)
TARGET_OUT = np.array([[4, 5, 6, END_ID], [7, 8, END_ID, 0]], np.int32)


def random_case(return_sequences: bool):
    keras.utils.set_random_seed(3)
    layer = keras.layers.LSTM(UNITS, return_sequences=return_sequences, return_state=True)
    inputs = tf.random.normal((BATCH, STEPS, FEATURES))
    state = [tf.random.normal((BATCH, UNITS)), tf.random.normal((BATCH, UNITS))]
    mask = tf.constant(np.arange(STEPS)[None, :] < LENGTHS[:, None])
    layer(inputs, initial_state=state, mask=mask)  # build
    return layer, inputs, state, mask


def outputs_and_gradients(call, layer, inputs, state, mask):
    """Outputs of ``call`` and the gradients of a loss that reads every output, masked where padded."""
    with tf.GradientTape() as tape:
        tape.watch([inputs, *state])
        outputs, h, c = call(inputs, initial_state=state, mask=mask)
        weight = tf.cast(mask, tf.float32)[..., None] if layer.return_sequences else 1.0
        loss = tf.reduce_sum(tf.sin(outputs) * weight) + tf.reduce_sum(h * h) + tf.reduce_sum(tf.cos(c))
    gradients = tape.gradient(loss, [inputs, *state, *layer.trainable_variables])
    return [np.asarray(t) for t in (outputs, h, c)], [np.asarray(g) for g in gradients]


@pytest.mark.parametrize("return_sequences", [False, True])
def test_run_lstm_matches_the_keras_layer_with_padding(return_sequences) -> None:
    layer, inputs, state, mask = random_case(return_sequences)
    assert _fast_path_applies(layer, inputs, training=True)
    expected, expected_gradients = outputs_and_gradients(layer, layer, inputs, state, mask)
    fast = lambda *args, **kwargs: run_lstm(layer, *args, training=True, **kwargs)  # noqa: E731
    if return_sequences:  # the padding mask travels on with the outputs, as from the layer
        attached = getattr(
            run_lstm(layer, inputs, initial_state=state, mask=mask, training=True)[0], "_keras_mask", None
        )
        np.testing.assert_array_equal(np.asarray(attached), np.asarray(mask))
    got, got_gradients = outputs_and_gradients(fast, layer, inputs, state, mask)

    real = np.asarray(mask)
    # Padded steps too: Keras repeats the last real output there (zeros for the all-padding row).
    np.testing.assert_allclose(got[0], expected[0], atol=1e-5)
    # Final states at each row's last real token; the all-padding row keeps its initial state.
    np.testing.assert_allclose(got[1], expected[1], atol=1e-5)
    np.testing.assert_allclose(got[2], expected[2], atol=1e-5)
    np.testing.assert_allclose(got[1][4], np.asarray(state[0])[4], atol=1e-6)
    names = ["inputs", "h0", "c0", "kernel", "recurrent_kernel", "bias"]
    for name, g, e in zip(names, got_gradients, expected_gradients, strict=True):
        np.testing.assert_allclose(g, e, atol=1e-5, err_msg=name)
    # The gradient reaches padded inputs in neither implementation.
    assert not got_gradients[0][~real].any()


def test_lstm_sequence_is_the_plain_recurrence() -> None:
    """Against a NumPy LSTM written from the equations (gates i, f, c, o), for one step."""
    rng = np.random.default_rng(0)
    x, h0, c0 = rng.normal(size=(1, 2, 3)), rng.normal(size=(2, 4)), rng.normal(size=(2, 4))
    kernel, recurrent, bias = rng.normal(size=(3, 16)), rng.normal(size=(4, 16)), rng.normal(size=16)
    z = x[0] @ kernel + h0 @ recurrent + bias
    sigmoid = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    i, f, g, o = sigmoid(z[:, :4]), sigmoid(z[:, 4:8]), np.tanh(z[:, 8:12]), sigmoid(z[:, 12:])
    c = f * c0 + i * g
    args = [tf.constant(a, tf.float32) for a in (x, h0, c0, kernel, recurrent, bias)]
    hs, cs = lstm_sequence(*args)
    assert hs.shape == cs.shape == (2, 2, 4)
    np.testing.assert_allclose(np.asarray(cs[1]), c, atol=1e-5)
    np.testing.assert_allclose(np.asarray(hs[1]), o * np.tanh(c), atol=1e-5)
    np.testing.assert_allclose(np.asarray(hs[0]), h0, atol=1e-6)


def test_configurations_the_fast_path_does_not_reproduce_call_the_layer() -> None:
    keras.utils.set_random_seed(5)
    inputs = tf.random.normal((2, 3, 4))
    for options in ({"recurrent_dropout": 0.5}, {"dropout": 0.5}):
        layer = keras.layers.LSTM(5, return_state=True, **options)
        layer(inputs)
        assert not _fast_path_applies(layer, inputs, training=True)
        # Inference always keeps Keras' own loop (and so a SavedModel export can serialise it).
        assert not _fast_path_applies(layer, inputs, training=False)
    for options in ({"activation": "relu"}, {"use_bias": False}):
        layer = keras.layers.LSTM(5, return_state=True, **options)
        layer(inputs)
        assert not _fast_path_applies(layer, inputs, training=True), options
    for options in ({"go_backwards": True}, {"activation": "relu"}, {"use_bias": False}):
        for layer_class, run in ((keras.layers.LSTM, run_lstm), (keras.layers.GRU, run_gru)):
            layer = layer_class(5, return_state=True, **options)
            expected = np.asarray(layer(inputs)[1])
            np.testing.assert_allclose(np.asarray(run(layer, inputs)[1]), expected, atol=1e-6)
    unbuilt = keras.layers.LSTM(5, return_state=True)
    assert not _fast_path_applies(unbuilt, inputs, training=True)
    assert run_lstm(unbuilt, inputs)[1].shape == (2, 5)  # built on the way, by Keras


def gru_outputs_and_gradients(call, layer, inputs, state, mask, traced=False):
    def compute():
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            if state is not None:
                tape.watch(state)
            outputs, *final = call(inputs, mask=mask, **({} if state is None else {"initial_state": state}))
            weight = tf.cast(mask, tf.float32)[..., None] if outputs.shape.rank == 3 else 1.0
            loss = tf.reduce_sum(tf.sin(outputs) * weight) + sum(tf.reduce_sum(h * h) for h in final)
        sources = [inputs] + ([] if state is None else [state])
        return [outputs, *final], tape.gradient(loss, sources + layer.trainable_variables)

    # Traced, the gradient is a graph whose ops may run in any order their inputs allow.
    values, gradients = tf.function(compute)() if traced else compute()
    return [np.asarray(t) for t in values], [np.asarray(g) for g in gradients]


def test_the_gru_keeps_its_gates_up_to_the_threshold_in_bytes() -> None:
    limit = fast_rnn.KEEP_GATES_MAX_BYTES // (64 * 4 * 256 * 4)  # steps at batch 64, 256 units, float32
    assert 20 < limit < 283  # word-level batches keep them, the longest character-level ones do not
    assert bool(_keeps_gates(tf.constant(limit), 64, 256, tf.float32))
    assert not bool(_keeps_gates(tf.constant(limit + 1), 64, 256, tf.float32))
    assert bool(_keeps_gates(tf.constant(2 * limit), 64, 256, tf.float16))
    assert not bool(_keeps_gates(tf.constant(2**20), 2**12, 2**10, tf.float32))  # no int32 overflow


@pytest.mark.parametrize("keep_gates", [False, True], ids=["recompute", "keep"])
@pytest.mark.parametrize("traced", [False, True], ids=["eager", "traced"])
@pytest.mark.parametrize("kind", ["final", "sequences", "bidirectional"])
def test_run_gru_matches_the_keras_layer_with_padding(kind, traced, keep_gates, monkeypatch) -> None:
    """The gradient keeps each step's gates or recomputes them (by the batch's size): same values."""
    monkeypatch.setattr(fast_rnn, "KEEP_GATES_MAX_BYTES", 2**40 if keep_gates else 0)
    keras.utils.set_random_seed(4)
    inputs = tf.random.normal((BATCH, STEPS, FEATURES))
    mask = tf.constant(np.arange(STEPS)[None, :] < LENGTHS[:, None])
    if kind == "bidirectional":
        layer = keras.layers.Bidirectional(keras.layers.GRU(UNITS, return_sequences=True, return_state=True))
        state, fast = (
            None,
            lambda *args, **kwargs: run_bidirectional_gru(layer, *args, training=True, **kwargs),
        )
    else:
        layer = keras.layers.GRU(UNITS, return_sequences=kind == "sequences", return_state=True)
        state, fast = (
            tf.random.normal((BATCH, UNITS)),
            lambda *args, **kwargs: run_gru(layer, *args, training=True, **kwargs),
        )
    layer(inputs, mask=mask, **({} if state is None else {"initial_state": state}))  # build
    expected, expected_gradients = gru_outputs_and_gradients(layer, layer, inputs, state, mask)
    got, got_gradients = gru_outputs_and_gradients(fast, layer, inputs, state, mask, traced)

    for index, (g, e) in enumerate(zip(got, expected, strict=True)):  # padded steps included
        np.testing.assert_allclose(g, e, atol=1e-5, err_msg=f"output {index}")
    for variable, g, e in zip(
        ["inputs", "state"][: 1 if state is None else 2] + [v.path for v in layer.trainable_variables],
        got_gradients,
        expected_gradients,
        strict=True,
    ):
        np.testing.assert_allclose(g, e, atol=1e-5, err_msg=variable)


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_a_model_trains_the_same_on_either_path(arch) -> None:
    """Same logits (padded positions too), same loss and same gradients for every weight."""
    keras.utils.set_random_seed(0)
    fast = build_model(
        ModelConfig(
            arch=arch, embedding_dim=8, units=16, dropout=0.0, source_vocab_size=13, target_vocab_size=11
        )
    )
    fast.build()
    plain = type(fast).from_config(fast.get_config())
    plain.build()
    plain.set_weights(fast.get_weights())

    results = []
    for model, path in ((fast, contextlib.nullcontext()), (plain, keras_layers_only())):
        with path, tf.GradientTape() as tape:
            logits = model((SOURCE, TARGET_IN), training=True)
            loss = masked_loss()(TARGET_OUT, logits)
        gradients = tape.gradient(loss, model.trainable_variables)
        gradients = [np.asarray(tf.convert_to_tensor(g)) for g in gradients]  # embeddings: sparse
        results.append((np.asarray(logits), float(loss), gradients))
    (fast_logits, fast_loss, fast_grads), (plain_logits, plain_loss, plain_grads) = results
    np.testing.assert_allclose(fast_logits, plain_logits, atol=1e-5)  # padded positions included
    assert fast_loss == pytest.approx(plain_loss, abs=1e-6)
    assert len(fast_grads) == len(plain_grads) == len(fast.trainable_variables)
    for variable, g, e in zip(fast.trainable_variables, fast_grads, plain_grads, strict=True):
        np.testing.assert_allclose(g, e, atol=1e-5, err_msg=variable.path)
