"""The Transformer: serialization, cached incremental decoding against recomputing the prefix, padding
masks, shared embeddings, and a tiny training run through the library and the translator."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import TINY_TRAINING
from nmtcli.config import ModelConfig, TrainConfig
from nmtcli.decoding import beam_decode, greedy_decode, greedy_search
from nmtcli.models import build_model
from nmtcli.models.transformer import TransformerSeq2Seq
from nmtcli.vectorizers import END_ID, START_ID

VOCAB = 17
SOURCE = np.array([[4, 5, 6, 0, 0], [7, 8, 9, 10, 12], [13, 4, 0, 0, 0]], np.int32)
TINY_TRANSFORMER = {"units": 16, "layers": 2, "heads": 2, "ff_dim": 32, "dropout": 0.0}


def transformer(shared: bool = False, **changes) -> TransformerSeq2Seq:
    keras.utils.set_random_seed(0)
    config = ModelConfig(
        arch="transformer",
        source_vocab_size=VOCAB,
        target_vocab_size=VOCAB,
        shared_embeddings=shared,
        **{**TINY_TRANSFORMER, **changes},
    )
    model = build_model(config)
    model.build()
    return model


@pytest.fixture(scope="module", params=[False, True], ids=["separate", "shared"])
def model(request) -> TransformerSeq2Seq:
    return transformer(shared=request.param)


def logits(model, source, target_in) -> np.ndarray:
    return keras.ops.convert_to_numpy(model((source, target_in), training=False))


def test_config_round_trip_and_layout(model):
    clone = TransformerSeq2Seq.from_config(model.get_config())
    clone.build()
    assert clone.get_config() == model.get_config()
    assert [w.shape for w in clone.weights] == [w.shape for w in model.weights]
    assert (model.num_layers, model.num_heads, model.ff_dim, model.embedding_dim) == (2, 2, 32, 16)
    assert len(model.encoder_layers) == len(model.decoder_layers) == 2


def test_shared_embeddings_are_one_matrix_for_source_target_and_output():
    shared, separate = transformer(shared=True), transformer(shared=False)
    assert shared.source_embedding is shared.target_embedding
    matrices = [w for w in shared.weights if w.path.endswith("embeddings")]
    assert len(matrices) == 1
    # Two embedding matrices and an output kernel fewer; the output bias stays.
    assert separate.count_params() - shared.count_params() == 2 * VOCAB * 16
    source = SOURCE[:1]
    before = logits(shared, source, np.array([[START_ID, 5]], np.int32))
    matrix = shared.target_embedding.embeddings
    matrix.assign(matrix.numpy() * 1.5)  # the one matrix embeds the source, the target and the output
    assert not np.allclose(before, logits(shared, source, np.array([[START_ID, 5]], np.int32)))


def test_keras_file_reloads_in_safe_mode_with_the_same_outputs(model, tmp_path):
    target_in = np.array([[START_ID, 4, 5], [START_ID, 6, 0], [START_ID, 7, 8]], np.int32)
    path = tmp_path / "model.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path, compile=False, safe_mode=True)
    assert type(reloaded) is TransformerSeq2Seq
    np.testing.assert_allclose(
        logits(reloaded, SOURCE, target_in), logits(model, SOURCE, target_in), atol=1e-6
    )


def test_each_cached_step_gives_the_logits_of_the_whole_prefix_recomputed(model):
    prefix = np.array([[START_ID, 9, 4, 11, 5, 6]] * len(SOURCE), np.int32)
    teacher_forced = logits(model, SOURCE, prefix)  # [B, T, V]
    memory = model.encode(SOURCE)
    state = model.initial_state(memory)
    for step in range(prefix.shape[1]):
        step_logits, state = model.next(prefix[:, step], state, memory)
        assert state[0].shape[1] == step + 1  # one cached position more per step, per layer
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(step_logits), teacher_forced[:, step], atol=1e-5
        )


def test_greedy_over_next_in_a_compiled_loop_equals_argmax_of_the_recomputed_prefix(model):
    """The cache grows inside tf.while_loop (greedy search, with and without dropping ended rows)."""
    steps = 7

    @tf.function
    def greedy(source, drop_finished):
        memory = model.encode(source)
        state = (model.initial_state(memory), memory)

        def next_fn(tokens, state):
            step_logits, cache = model.next(tokens, state[0], state[1])
            return step_logits, (cache, state[1])

        return greedy_search(next_fn, state, tf.shape(source)[0], steps, drop_finished=drop_finished)

    # Without the cache: the whole prefix decoded again at every step.
    prefix = np.full((len(SOURCE), 1), START_ID, np.int32)
    done = np.zeros(len(SOURCE), bool)
    expected = []
    for _ in range(steps):
        chosen = logits(model, SOURCE, prefix)[:, -1].argmax(-1).astype(np.int32)
        chosen = np.where(done, 0, chosen)
        expected.append(chosen)
        done |= chosen == END_ID
        prefix = np.concatenate([prefix, chosen[:, None]], 1)
        if done.all():
            break
    expected = np.stack(expected, 1)
    for drop_finished in (False, True):
        np.testing.assert_array_equal(greedy(tf.constant(SOURCE), drop_finished).numpy(), expected)


def test_beam_search_gathers_the_cache_and_one_beam_is_greedy(model):
    search = tf.function(lambda source, beam_size: beam_decode(model, source, 6, beam_size))
    greedy = tf.function(lambda source: greedy_decode(model, source, 6))(tf.constant(SOURCE)).numpy()
    one = search(tf.constant(SOURCE), 1).numpy()
    np.testing.assert_array_equal(one, greedy[:, : one.shape[1]])
    assert search(tf.constant(SOURCE), 3).numpy().shape[0] == len(SOURCE)


def test_a_sentence_alone_and_padded_in_a_batch_give_the_same_outputs(model):
    alone_source = SOURCE[2:3, :2]
    alone_target = np.array([[START_ID, 5, 6]], np.int32)
    batch_target = np.array(
        [[START_ID, 5, 6, 0, 0], [START_ID, 7, 8, 9, 10], [START_ID, 5, 6, 0, 0]], np.int32
    )
    batch = logits(model, SOURCE, batch_target)
    np.testing.assert_allclose(batch[2, :3], logits(model, alone_source, alone_target)[0], atol=1e-5)
    # The source matters: another sentence in the same row changes the outputs.
    assert not np.allclose(batch[0, :3], batch[2, :3], atol=1e-3)


def test_attention_weights_cover_the_real_source_tokens_only(model):
    memory = model.encode(SOURCE)
    state = model.initial_state(memory)
    _, _, weights = model.next_with_attention(np.full(len(SOURCE), START_ID, np.int32), state, memory)
    weights = keras.ops.convert_to_numpy(weights)
    assert weights.shape == SOURCE.shape
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(weights[SOURCE == 0], 0.0, atol=1e-7)


def test_heads_must_divide_units():
    from nmtcli.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        ModelConfig(arch="transformer", units=30, heads=4)
    assert caught.value.field == "heads"
    with pytest.raises(ConfigError):
        ModelConfig(arch="gru-attention", shared_embeddings=True)
    assert ModelConfig(arch="transformer", embedding_dim=128, units=64).embedding_dim == 64
    # The shared matrix is the output layer too; config.json says so, as model.keras does.
    assert ModelConfig(arch="transformer", shared_embeddings=True).tie_embeddings is True


@pytest.fixture(scope="module")
def transformer_run(tmp_path_factory, tiny_data):
    from nmtcli.training import train
    from nmtcli.workspace import Workspace

    workspace = Workspace(tmp_path_factory.mktemp("ws-transformer"))
    return train(
        ModelConfig(arch="transformer", level="subword", **TINY_TRANSFORMER),
        TrainConfig(**{**TINY_TRAINING, "learning_rate": 0.003, "epochs": 5, "bleu_sample": 0}),
        data_dir=tiny_data,
        workspace=workspace,
    )


def test_training_lowers_validation_loss_and_shares_the_joint_vocabulary(transformer_run):
    from nmtcli.run_folder import RunFolder

    history = transformer_run.history
    assert history[-1]["val_cross_entropy"] < history[0]["val_cross_entropy"]
    model_config = RunFolder(transformer_run.run_dir).config().model
    assert model_config.shared_embeddings is True  # the tiny data's default subword model is joint
    assert (transformer_run.run_dir / "vocab" / "source.model").is_file()


def test_the_trained_run_translates_greedy_beam_and_with_attention(transformer_run):
    from nmtcli.translator import Translator

    translator = Translator.load(transformer_run.run_dir)
    lines = ["red cat runs.", "small dog.", ""]
    greedy = translator.translate(lines)
    assert len(greedy) == 3 and greedy[2] == "" and all(isinstance(line, str) for line in greedy)
    assert "<unk>" not in " ".join(greedy)
    assert translator.translate(lines, beam_size=1) == greedy
    assert len(translator.translate(lines, beam_size=3)) == 3
    alignment = translator.attend(lines[:1])[0]
    assert alignment.translation == greedy[0]
    np.testing.assert_allclose(alignment.weights.sum(-1), 1.0, atol=1e-4)


def test_mixed_precision_gives_float32_logits_and_decodes():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = transformer(shared=True, dropout=0.1)
        out = model((SOURCE, np.array([[START_ID, 5]] * len(SOURCE), np.int32)), training=True)
        assert out.dtype == "float32" and np.isfinite(keras.ops.convert_to_numpy(out)).all()
        assert model.initial_state(model.encode(SOURCE))[0].dtype == "float16"
        ids = tf.function(lambda s: greedy_decode(model, s, tf.constant(4)))(tf.constant(SOURCE))
        assert ids.shape[0] == len(SOURCE)
    finally:
        keras.config.set_dtype_policy(previous)
