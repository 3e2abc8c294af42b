"""Both seq2seq architectures, with and without tied output embeddings: shapes, serialization, step-wise
decoding, masking, and the loss."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from nmtcli.config import ModelConfig
from nmtcli.models import ARCHITECTURES, build_model
from nmtcli.models.base import TiedOutput
from nmtcli.training import masked_loss
from nmtcli.vectorizers import START_ID

SOURCE_VOCAB, TARGET_VOCAB = 13, 11

# Two sources of different lengths (row 0 padded), two targets of different lengths (row 1 padded).
SOURCE = np.array([[4, 5, 6, 0, 0], [7, 8, 9, 10, 12]], np.int32)
TARGET_IN = np.array([[START_ID, 4, 5, 6], [START_ID, 7, 8, 0]], np.int32)
TARGET_LENGTHS = [4, 3]


def tiny_config(arch: str, **changes) -> ModelConfig:
    settings = {"embedding_dim": 8, "units": 16, "dropout": 0.0, **changes}
    return ModelConfig(arch=arch, source_vocab_size=SOURCE_VOCAB, target_vocab_size=TARGET_VOCAB, **settings)


def built_model(arch: str, **changes):
    keras.utils.set_random_seed(0)
    built = build_model(tiny_config(arch, **changes))
    built.build()
    return built


# Tied models have embedding_dim (8) != units (16), so the decoder needs its extra readout layer.
VARIANTS = [(arch, tied) for arch in sorted(ARCHITECTURES) for tied in (False, True)]


@pytest.fixture(
    scope="module", params=VARIANTS, ids=[f"{arch}-{'tied' if tied else 'untied'}" for arch, tied in VARIANTS]
)
def model(request):
    """An untrained, built model of each architecture, untied and tied (random weights are enough here)."""
    arch, tied = request.param
    return built_model(arch, tie_embeddings=tied)


def logits_of(model, source, target_in) -> np.ndarray:
    return keras.ops.convert_to_numpy(model((source, target_in), training=False))


def test_build_model_picks_the_configured_architecture() -> None:
    for arch, cls in ARCHITECTURES.items():
        built = build_model(tiny_config(arch))
        assert type(built) is cls
        # The transformer's embeddings are d_model (units) wide.
        assert (built.units, built.embedding_dim) == (16, 16 if arch == "transformer" else 8)


def test_output_shape_is_batch_by_time_by_target_vocab(model) -> None:
    logits = logits_of(model, SOURCE, TARGET_IN)
    assert logits.shape == (2, 4, TARGET_VOCAB)
    assert np.isfinite(logits).all()
    # Target length need not match source length.
    assert logits_of(model, SOURCE[:, :2], TARGET_IN[:1].repeat(2, 0)).shape == (2, 4, TARGET_VOCAB)


def test_get_config_from_config_round_trip(model) -> None:
    config = model.get_config()
    for key in (
        "source_vocab_size",
        "target_vocab_size",
        "embedding_dim",
        "units",
        "dropout",
        "tie_embeddings",
    ):
        assert config[key] == getattr(model, key)
    clone = type(model).from_config(config)
    clone.build()
    assert clone.get_config() == config
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(
        logits_of(clone, SOURCE, TARGET_IN), logits_of(model, SOURCE, TARGET_IN), atol=1e-6
    )


def test_keras_file_reloads_in_safe_mode_with_the_same_outputs(model, tmp_path) -> None:
    path = tmp_path / "model.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True, compile=False)
    assert type(reloaded) is type(model)
    assert reloaded.tie_embeddings == model.tie_embeddings
    assert type(reloaded.output_projection) is type(model.output_projection)
    assert reloaded.count_params() == model.count_params()
    np.testing.assert_allclose(
        logits_of(reloaded, SOURCE, TARGET_IN), logits_of(model, SOURCE, TARGET_IN), atol=1e-6
    )


def test_step_by_step_next_matches_teacher_forced_call(model) -> None:
    expected = logits_of(model, SOURCE, TARGET_IN)
    memory = model.encode(SOURCE, training=False)
    state = model.initial_state(memory)
    for t in range(TARGET_IN.shape[1]):
        step_logits, state = model.next(TARGET_IN[:, t], state, memory)
        step_logits = keras.ops.convert_to_numpy(step_logits)
        assert step_logits.shape == (2, TARGET_VOCAB)
        for row, length in enumerate(TARGET_LENGTHS):
            if t < length:  # padded target positions are not predicted
                np.testing.assert_allclose(
                    step_logits[row], expected[row, t], atol=1e-5, err_msg=f"row {row}, step {t}"
                )


def test_extra_source_padding_does_not_change_outputs(model) -> None:
    padded = np.pad(SOURCE, [(0, 0), (0, 4)])
    np.testing.assert_allclose(
        logits_of(model, padded, TARGET_IN), logits_of(model, SOURCE, TARGET_IN), atol=1e-5
    )


def test_a_sentence_alone_and_padded_in_a_batch_give_the_same_outputs(model) -> None:
    batched = logits_of(model, SOURCE, TARGET_IN)
    alone = logits_of(model, SOURCE[:1, :3], TARGET_IN[:1])
    np.testing.assert_allclose(alone[0], batched[0], atol=1e-5)
    # And a padded target row agrees with the same target unpadded, where it is defined.
    alone = logits_of(model, SOURCE[1:], TARGET_IN[1:, :3])
    np.testing.assert_allclose(alone[0], batched[1, :3], atol=1e-5)


def test_the_source_matters(model) -> None:
    """Guards the masking tests against a model that ignores its source altogether."""
    other = SOURCE.copy()
    other[:, 0] = [11, 11]
    assert not np.allclose(logits_of(model, other, TARGET_IN), logits_of(model, SOURCE, TARGET_IN))


def test_masked_loss_is_the_mean_over_real_tokens() -> None:
    rng = np.random.default_rng(0)
    target_out = np.array([[5, 6, 3, 0, 0], [7, 3, 0, 0, 0], [4, 4, 4, 4, 3]], np.int32)
    logits = rng.normal(size=(3, 5, TARGET_VOCAB)).astype("float32")

    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    token_nll = -np.take_along_axis(log_probs, target_out[..., None], -1)[..., 0]
    real = target_out != 0
    expected = token_nll[real].sum() / real.sum()  # 10 real tokens, not 15 positions

    loss = float(keras.ops.convert_to_numpy(masked_loss()(target_out, logits)))
    assert loss == pytest.approx(expected, rel=1e-5)

    # Changing the logits at padded positions changes nothing.
    noisy = logits.copy()
    noisy[~real] = rng.normal(scale=50.0, size=noisy[~real].shape)
    assert float(keras.ops.convert_to_numpy(masked_loss()(target_out, noisy))) == pytest.approx(
        loss, rel=1e-6
    )


def test_next_with_attention_returns_next_s_logits_and_weights_over_real_source_tokens() -> None:
    keras.utils.set_random_seed(0)
    model = build_model(tiny_config("gru-attention"))
    model.build()
    assert model.has_attention and not build_model(tiny_config("lstm")).has_attention
    memory = model.encode(SOURCE, training=False)
    state = model.initial_state(memory)
    logits, _ = model.next(TARGET_IN[:, 0], state, memory)
    attended_logits, _, weights = model.next_with_attention(TARGET_IN[:, 0], state, memory)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(attended_logits), keras.ops.convert_to_numpy(logits)
    )
    weights = keras.ops.convert_to_numpy(weights)
    assert weights.shape == SOURCE.shape  # [B, S]
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-5)
    assert (weights[SOURCE == 0] < 1e-6).all()  # padding gets no attention


# --------------------------------------------------------------------------------------------------
# Tied output embeddings


def readout_growth(arch: str, embedding_dim: int, units: int) -> int:
    """Parameters tying adds to the decoder, which must hand ``embedding_dim`` features to the output."""
    if embedding_dim == units:
        return 0
    if arch == "lstm":  # a readout Dense units -> embedding_dim appears
        return units * embedding_dim + embedding_dim
    # gru-attention: attention_output maps [decoder output; context] (3u) to embedding_dim, not to u
    return (3 * units * embedding_dim + embedding_dim) - (3 * units * units + units)


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
@pytest.mark.parametrize(("embedding_dim", "units"), [(16, 16), (8, 16)], ids=["E=u", "E<u"])
def test_tying_drops_exactly_the_output_kernel(arch, embedding_dim, units) -> None:
    if arch == "transformer" and embedding_dim != units:
        pytest.skip("the transformer's embedding size is its units (d_model)")
    untied = built_model(arch, embedding_dim=embedding_dim, units=units, tie_embeddings=False)
    tied = built_model(arch, embedding_dim=embedding_dim, units=units, tie_embeddings=True)
    kernel = units * TARGET_VOCAB
    assert untied.count_params() - tied.count_params() == kernel - readout_growth(arch, embedding_dim, units)
    # The tied output owns only its bias; the matrix is the target embedding's, stored once.
    assert isinstance(tied.output_projection, TiedOutput)
    assert [tuple(w.shape) for w in tied.output_projection.weights] == [(TARGET_VOCAB,)]
    assert len({id(w) for w in tied.weights}) == len(tied.weights)
    has_readout = arch == "lstm" and embedding_dim != units
    assert any(
        layer.name == "readout" and isinstance(layer, keras.layers.Dense) for layer in tied.layers
    ) == (has_readout)


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied"])
def test_tied_logits_read_the_target_embedding_matrix(arch, tied) -> None:
    model = built_model(arch, tie_embeddings=tied)
    before = logits_of(model, SOURCE, TARGET_IN)
    unused = TARGET_VOCAB - 1  # never a decoder input here, so only the output layer can see its row
    assert unused not in TARGET_IN
    matrix = keras.ops.convert_to_numpy(model.target_embedding.embeddings).copy()
    # Not a constant shift: the transformer's layer-normed features sum to zero, so it would cancel.
    matrix[unused] += np.linspace(0.1, 0.9, matrix.shape[1])
    model.target_embedding.embeddings.assign(matrix)
    after = logits_of(model, SOURCE, TARGET_IN)

    others = np.arange(TARGET_VOCAB) != unused
    np.testing.assert_allclose(after[..., others], before[..., others], atol=1e-6)
    if tied:
        # logit_v = features . embedding_v + bias_v, so only that token's logit moves.
        assert np.abs(after[..., unused] - before[..., unused]).min() > 1e-4
    else:
        np.testing.assert_allclose(after[..., unused], before[..., unused], atol=1e-6)
    # Step-wise decoding reads the same matrix.
    memory = model.encode(SOURCE, training=False)
    step, _ = model.next(TARGET_IN[:, 0], model.initial_state(memory), memory)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(step), after[:, 0], atol=1e-5)


def test_tied_output_get_config_round_trip() -> None:
    layer = TiedOutput(TARGET_VOCAB, name="output_projection")
    clone = TiedOutput.from_config(layer.get_config())
    assert (clone.vocab_size, clone.name) == (TARGET_VOCAB, "output_projection")


def test_label_smoothed_loss_mixes_in_the_mean_over_the_vocabulary() -> None:
    rng = np.random.default_rng(1)
    target_out = np.array([[5, 6, 3, 0], [7, 3, 0, 0]], np.int32)
    logits = rng.normal(size=(2, 4, TARGET_VOCAB)).astype("float32")
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    token_nll = -np.take_along_axis(log_probs, target_out[..., None], -1)[..., 0]
    smoothed = 0.9 * token_nll - 0.1 * log_probs.mean(-1)
    real = target_out != 0
    loss = float(keras.ops.convert_to_numpy(masked_loss(0.1)(target_out, logits)))
    assert loss == pytest.approx(smoothed[real].sum() / real.sum(), rel=1e-5)


@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied"])
def test_bf16_output_changes_only_training_logits_and_only_by_rounding(tied) -> None:
    """With ``bf16_output`` the output layer's products run in bfloat16 while training, on CPUs that
    have it; inference stays float32, and elsewhere nothing changes at all."""
    from nmtcli.models import bf16
    from nmtcli.models.bf16 import cpu_has_bf16

    built = built_model("gru-attention", tie_embeddings=tied, units=64, embedding_dim=64)
    # Large enough that rounding the operands to bfloat16 shows in the logits.
    for variable in (built.output_projection.trainable_variables or []) + [built.target_embedding.embeddings]:
        variable.assign(variable * 4.0)

    def logits(low: bool, training: bool) -> np.ndarray:
        with bf16.for_training(low):
            return keras.ops.convert_to_numpy(built((SOURCE, TARGET_IN), training=training))

    exact = logits(False, training=True)
    assert np.array_equal(logits(True, training=False), logits(False, training=False))
    low = logits(True, training=True)
    assert np.array_equal(logits(False, training=True), exact)  # the switch is off after its block
    assert low.dtype == np.float32 and low.shape == exact.shape
    if cpu_has_bf16():
        assert not np.array_equal(low, exact)
        np.testing.assert_allclose(low, exact, atol=0.05 * np.abs(exact).max())
    else:
        assert np.array_equal(low, exact)


def test_greedy_decodes_like_a_loop_over_next(model) -> None:
    """``greedy_decode`` (ended sentences leave the batch) gives the ids of a plain step-by-step loop."""
    import tensorflow as tf

    from nmtcli.decoding import greedy_decode
    from nmtcli.vectorizers import END_ID

    source = np.concatenate([SOURCE, SOURCE[::-1], SOURCE[:, ::-1]])  # 6 sentences
    ids = tf.function(lambda s: greedy_decode(model, s, tf.constant(8)))(source).numpy()
    memory = model.encode(source)
    state = model.initial_state(memory)
    tokens = np.full(len(source), START_ID, np.int32)
    expected, done = [], np.zeros(len(source), bool)
    for _ in range(8):
        logits, state = model.next(tokens, state, memory)
        tokens = np.where(done, 0, np.argmax(keras.ops.convert_to_numpy(logits), -1)).astype(np.int32)
        expected.append(tokens)
        done |= tokens == END_ID
        if done.all():
            break
    np.testing.assert_array_equal(ids, np.stack(expected, 1))


@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied"])
def test_bf16_decoding_rounds_only_the_output_layer_and_only_inside(tied, monkeypatch) -> None:
    """``bf16.for_decoding`` (``nmt translate --bf16-output``) runs the output product of a step in
    bfloat16; outside it, or on a CPU without native bfloat16, decoding is float32 as before."""
    import tensorflow as tf

    from nmtcli.models import bf16

    built = built_model("gru-attention", tie_embeddings=tied, units=64, embedding_dim=64)
    for variable in (built.output_projection.trainable_variables or []) + [built.target_embedding.embeddings]:
        variable.assign(variable * 4.0)  # large enough logits that bfloat16's rounding shows
    memory = built.encode(SOURCE)
    tokens = tf.constant([START_ID, START_ID])

    @tf.function
    def step(low: bool):
        with bf16.for_decoding(built, low):
            return built.next(tokens, built.initial_state(memory), memory)[0]

    exact = step(False).numpy()
    monkeypatch.setattr(bf16, "cpu_has_bf16", lambda: False)
    assert not bf16.decoding_applies(built)
    np.testing.assert_array_equal(step(True).numpy(), exact)  # retraced: nothing to change here
    monkeypatch.setattr(bf16, "cpu_has_bf16", lambda: True)  # emulated where the CPU lacks it
    assert bf16.decoding_applies(built)
    low = tf.function(step.python_function)(True).numpy()
    assert low.dtype == np.float32 and not np.array_equal(low, exact)
    np.testing.assert_allclose(low, exact, atol=0.05 * np.abs(exact).max())
    assert not getattr(bf16._decoding, "matrices", {})  # the context left nothing behind
    np.testing.assert_array_equal(step(False).numpy(), exact)


def test_the_training_switch_reaches_the_step_that_fit_traces(monkeypatch) -> None:
    """``bf16.for_training`` (how ``train`` applies ``TrainConfig.bf16_output``) is seen by the train
    step Keras traces inside it, and by no step traced outside it."""
    from nmtcli.models import bf16

    monkeypatch.setattr(bf16, "cpu_has_bf16", lambda: True)  # the path is taken on any CPU here
    products = []
    plain_matmul = bf16.matmul
    monkeypatch.setattr(
        bf16, "matmul", lambda *args, **kwargs: products.append(1) or plain_matmul(*args, **kwargs)
    )
    target_out = np.concatenate([TARGET_IN[:, 1:], np.zeros((2, 1), np.int32)], axis=1)
    for enabled in (False, True):
        built = built_model("lstm")
        built.compile(optimizer="adam", loss=masked_loss())
        products.clear()
        with bf16.for_training(enabled):
            built.train_on_batch((SOURCE, TARGET_IN), target_out)
        assert bool(products) is enabled
