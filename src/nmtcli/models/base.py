"""What every seq2seq model offers: teacher-forced ``call`` for training, ``encode`` + ``next`` for decoding.

Shapes: ``B`` batch, ``S`` source length, ``T`` target length, ``V`` target vocabulary size.
Id 0 is padding everywhere; padded source steps are masked in the encoder and in attention.
The search loops and their glue to a model live in ``decoding``; CPU speed paths in ``fast_rnn`` (the
recurrent layers) and ``bf16`` (the output layer).
"""

from __future__ import annotations

import keras
from keras import ops

from . import bf16


class Seq2Seq(keras.Model):
    """Base class. Subclasses define ``encode``, ``initial_state``, ``decode`` and ``next``.

    - ``encode(source [B, S]) -> memory``: a tuple of tensors fixed for the whole decode.
    - ``initial_state(memory) -> state``: a list of tensors carried from step to step.
    - ``decode(target_in [B, T], memory) -> logits [B, T, V]``: teacher forcing over a whole sequence.
    - ``next(tokens [B], state, memory) -> (logits [B, V], state)``: one decoding step.

    Models with attention set ``has_attention`` and also define
    ``next_with_attention(tokens, state, memory) -> (logits [B, V], state, weights [B, S])``.
    ``decoding.ModelSteps`` turns these into greedy and beam search; its docstring says what a
    ``state`` and a ``memory`` may hold (batch axis first; what may change between steps).
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

        On CPUs with native bfloat16 the product may run in bfloat16 (float32 weights, float32
        logits): while training, or while a decoder is traced, when the caller switched it on
        (``models.bf16``).
        """
        low = bf16.output_matrix(self, features, training)
        if self.tie_embeddings:
            matrix = self.target_embedding.embeddings if low is None else low
            return self.output_projection(features, matrix, in_bf16=low is not None)
        if low is None:
            return self.output_projection(features)
        return ops.add(bf16.matmul(features, low), ops.cast(self.output_projection.bias, features.dtype))

    @property
    def output_matrix(self):
        """The output layer's weight matrix: ``[readout_dim, V]``, or with tied embeddings ``[V, E]``."""
        if self.tie_embeddings:
            return self.target_embedding.embeddings
        return self.output_projection.kernel

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

    @staticmethod
    def source_mask(source):
        return ops.not_equal(source, 0)

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

    def call(self, inputs, embeddings, in_bf16=False):
        bias = ops.cast(self.bias, inputs.dtype)
        if in_bf16:
            return ops.add(bf16.matmul(inputs, embeddings, transpose_b=True), bias)
        matrix = ops.cast(embeddings, inputs.dtype)
        return ops.matmul(inputs, ops.transpose(matrix)) + bias

    def get_config(self):
        config = super().get_config()
        config.update(vocab_size=self.vocab_size)
        return config


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
