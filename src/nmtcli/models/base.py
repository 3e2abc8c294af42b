"""What every seq2seq model offers: teacher-forced ``call`` for training, ``encode`` + ``next`` for decoding.

Shapes: ``B`` batch, ``S`` source length, ``T`` target length, ``V`` target vocabulary size.
Id 0 is padding everywhere; padded source steps are masked in the encoder and in attention.
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path

import keras
from keras import ops


class Seq2Seq(keras.Model):
    """Base class. Subclasses define ``encode``, ``decode`` and ``next``.

    - ``encode(source [B, S]) -> memory``: a tuple of tensors fixed for the whole decode.
    - ``initial_state(memory) -> state``: a list of tensors carried from step to step.
    - ``decode(target_in [B, T], memory) -> logits [B, T, V]``: teacher forcing over a whole sequence.
    - ``next(tokens [B], state, memory) -> (logits [B, V], state)``: one decoding step.

    Models with attention set ``has_attention`` and also define
    ``next_with_attention(tokens, state, memory) -> (logits [B, V], state, weights [B, S])``.
    """

    has_attention = False

    def __init__(
        self,
        source_vocab_size: int,
        target_vocab_size: int,
        embedding_dim: int,
        units: int,
        dropout: float = 0.0,
        tie_embeddings: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.source_vocab_size = source_vocab_size
        self.target_vocab_size = target_vocab_size
        self.embedding_dim = embedding_dim
        self.units = units
        self.dropout = dropout
        self.tie_embeddings = tie_embeddings
        # Layers every architecture has; subclasses add their recurrent layers.
        self.source_embedding = keras.layers.Embedding(
            source_vocab_size, embedding_dim, mask_zero=True, name="source_embedding"
        )
        self.target_embedding = keras.layers.Embedding(
            target_vocab_size, embedding_dim, mask_zero=True, name="target_embedding"
        )
        self.embedding_dropout = keras.layers.Dropout(dropout)
        self.output_dropout = keras.layers.Dropout(dropout)
        if tie_embeddings:
            # Press & Wolf (2017): the output layer reuses the target embeddings, so the decoder's
            # readout must have embedding_dim features.
            self.output_projection = TiedOutput(target_vocab_size, name="output_projection")
        else:
            self.output_projection = keras.layers.Dense(target_vocab_size, name="output_projection")

    def project(self, features, training=False):
        """``features [..., readout_dim] -> logits [..., V]``.

        The output layer is most of a word-level model's work (``V`` is tens of thousands). While
        training on a CPU that multiplies bfloat16 natively, its products run in bfloat16 (float32
        weights, float32 logits and softmax): the layer about twice as fast, a default-model step 1.38x
        (docs/benchmarks.md); see ``bf16_output``.
        """
        if not training and self._decoding_matrix is not None:
            low, matrix = True, self._decoding_matrix
        else:
            low = training and self.bf16_output and _bf16_applies(features)
            matrix = self.target_embedding.embeddings if self.tie_embeddings else None
        if self.tie_embeddings:
            return self.output_projection(features, matrix, bf16=low)
        if low:
            layer = self.output_projection
            matrix = layer.kernel if matrix is None else matrix
            return ops.add(_bf16_matmul(features, matrix), ops.cast(layer.bias, features.dtype))
        return self.output_projection(features)

    @property
    def output_matrix(self):
        """The output layer's weight matrix: ``[readout_dim, V]``, or with tied embeddings ``[V, E]``."""
        if self.tie_embeddings:
            return self.target_embedding.embeddings
        return self.output_projection.kernel

    def bf16_decoding_applies(self) -> bool:
        """Whether ``bf16_decoding`` would change anything here: a float32 model, a CPU with native
        bfloat16 and no GPU."""
        return self.output_projection.compute_dtype == "float32" and _bf16_applies(self.output_matrix)

    @contextlib.contextmanager
    def bf16_decoding(self, enabled: bool = True):
        """While a decoder is traced inside it, ``project`` at inference runs in bfloat16 as in training,
        with the matrix cast once per call rather than once per step. Only on CPUs with native
        bfloat16 and in float32 models; elsewhere, or with ``enabled`` False, nothing changes.
        """
        import tensorflow as tf

        if not (enabled and self.bf16_decoding_applies()):
            yield
            return
        self._decoding_matrix = tf.cast(self.output_matrix, tf.bfloat16)
        try:
            yield
        finally:
            self._decoding_matrix = None

    @property
    def readout_dim(self) -> int:
        """Features the decoder must hand to ``output_projection``."""
        return self.embedding_dim if self.tie_embeddings else self.units

    def call(self, inputs, training=False):
        """``(source [B, S], target_in [B, T]) -> logits [B, T, V]``."""
        source, target_in = inputs
        memory = self.encode(source, training=training)
        # Logits in float32 even under mixed precision, for a stable softmax and loss.
        return ops.cast(self.decode(target_in, memory, training=training), "float32")

    def train_step(self, data):
        return _with_replica_axis(super().train_step(data))

    def test_step(self, data):
        return _with_replica_axis(super().test_step(data))

    def build(self, input_shape=None):
        # Run once on a tiny batch so that every sublayer creates its weights; shapes are dynamic.
        if self.built:
            return
        dummy = ops.ones((1, 2), dtype="int32")
        self.call((dummy, dummy))
        self.built = True

    def get_config(self):
        config = super().get_config()
        config.update(
            source_vocab_size=self.source_vocab_size,
            target_vocab_size=self.target_vocab_size,
            embedding_dim=self.embedding_dim,
            units=self.units,
            dropout=self.dropout,
            tie_embeddings=self.tie_embeddings,
        )
        return config

    # Not saved: run recurrent layers on nmtcli's CPU path (``models.fast_rnn``) where it computes
    # the same function as the Keras layers; False always calls the layers (for comparisons).
    fast_rnn = True
    # Not saved either: allow bfloat16 products in the output layer while training (``project``).
    # Set from ``TrainConfig.bf16_output``; only used on CPUs with native bfloat16 instructions.
    bf16_output = False
    # Set only while ``bf16_decoding`` traces a decoder: the output matrix in bfloat16.
    _decoding_matrix = None

    @staticmethod
    def source_mask(source):
        return ops.not_equal(source, 0)

    def greedy(
        self,
        source,
        max_length,
        with_attention: bool = False,
        bf16: bool = False,
        drop_finished: bool = True,
    ):
        """Greedy search: ``source [B, S] -> ids [B, T]`` int32, ``T <= max_length``, padded after each
        sentence's end id; ``with_attention``: ``-> (ids, weights [B, T, S])``.

        With ``drop_finished``, sentences leave the batch as they end (see ``decoding``), and the
        encoder outputs travel with the decoder state in the loop; the ids are the same either way.
        ``bf16``: the output layer in bfloat16 where the CPU has it (``bf16_decoding``). Call it
        inside ``tf.function``.
        """
        import tensorflow as tf

        from ..decoding import greedy_search, greedy_search_with_attention

        memory = self.encode(source, training=False)
        batch_size = tf.shape(source)[0]
        state = (self.initial_state(memory), memory)

        def next_fn(tokens, state):
            logits, decoder_state = self.next(tokens, *state)
            return logits, (decoder_state, state[1])

        def attending_fn(tokens, state):
            logits, decoder_state, weights = self.next_with_attention(tokens, *state)
            return logits, (decoder_state, state[1]), weights

        with self.bf16_decoding(bf16):
            if with_attention:
                return greedy_search_with_attention(
                    attending_fn, state, batch_size, max_length, drop_finished=drop_finished
                )
            return greedy_search(next_fn, state, batch_size, max_length, drop_finished=drop_finished)

    def embed_step(self, tokens):
        """``tokens [B] -> [B, E]``: a plain lookup, since the layer would attach a padding mask
        that recurrent cells cannot take."""
        return ops.take(self.target_embedding.embeddings, tokens, axis=0)


@keras.saving.register_keras_serializable(package="nmtcli")
class TiedOutput(keras.layers.Layer):
    """``(x [..., E], embeddings [V, E]) -> logits [..., V]``: the embedding matrix transposed, plus a
    bias. Owns only the bias; the matrix stays the embedding layer's, so it is trained and saved once."""

    def __init__(self, vocab_size: int, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.supports_masking = True  # the padding mask passes through to the loss

    def build(self, input_shape=None):
        self.bias = self.add_weight(shape=(self.vocab_size,), initializer="zeros", name="bias")

    def call(self, inputs, embeddings, bf16=False):
        bias = ops.cast(self.bias, inputs.dtype)
        if bf16:
            return ops.add(_bf16_matmul(inputs, embeddings, transpose_b=True), bias)
        matrix = ops.cast(embeddings, inputs.dtype)
        return ops.matmul(inputs, ops.transpose(matrix)) + bias

    def get_config(self):
        config = super().get_config()
        config.update(vocab_size=self.vocab_size)
        return config


@functools.cache
def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX512-BF16 or AMX); elsewhere bfloat16 products
    are emulated and slower than float32."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _bf16_applies(features) -> bool:
    import tensorflow as tf

    return (
        features.dtype == "float32"
        and keras.backend.backend() == "tensorflow"
        and not tf.config.list_logical_devices("GPU")
        and cpu_has_bf16()
    )


def _bf16_matmul(x, matrix, transpose_b=False):
    """``x @ matrix`` with bfloat16 operands and float32 accumulation (oneDNN), as float32.

    Gradients flow through the casts: both backward products run in bfloat16 too."""
    import tensorflow as tf

    low = tf.matmul(
        tf.reshape(tf.cast(x, tf.bfloat16), [-1, tf.shape(x)[-1]]),
        tf.cast(matrix, tf.bfloat16),
        transpose_b=transpose_b,
    )
    columns = tf.shape(matrix)[0 if transpose_b else 1]
    return tf.reshape(tf.cast(low, tf.float32), tf.concat([tf.shape(x)[:-1], [columns]], axis=0))


def _with_replica_axis(logs: dict) -> dict:
    """A step's scalar logs as shape ``[1]`` when training across several workers.

    Keras 3.15 averages them across workers along axis 0, which a scalar lacks (tensorflow/tensorflow
    issue 72388); the result is a scalar again. Elsewhere the logs are left as they are.
    """
    import tensorflow as tf

    extended = tf.distribute.get_strategy().extended
    if not getattr(extended, "_in_multi_worker_mode", lambda: False)():  # Keras' own test for the case
        return logs
    return {name: ops.reshape(value, (1,)) for name, value in logs.items()}
