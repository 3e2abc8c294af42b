"""GRU encoder-decoder with additive (Bahdanau) attention over the encoder outputs.

The encoder is a bidirectional GRU; its two final states, projected, initialise the decoder GRU.
Attention is applied to each decoder output (Luong et al., 2015, with Bahdanau's additive score), so
teacher-forced training runs the decoder over the whole sequence at once.
"""

from __future__ import annotations

import keras
from keras import ops

from .additive_score import ChunkedAdditiveAttention
from .base import Seq2Seq
from .fast_rnn import run_bidirectional_gru, run_gru


@keras.saving.register_keras_serializable(package="nmtcli")
class AdditiveAttention(keras.layers.Layer):
    """``score(q, k) = v . tanh(W_q q + W_k k)``, softmax over unmasked source steps.

    ``project_keys`` runs once per sentence; ``call`` runs per decoder step or sequence.
    """

    def __init__(self, units: int, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.supports_masking = True  # the query's padding mask passes through to the output
        self.query_projection = keras.layers.Dense(units, use_bias=False, name="query_projection")
        self.key_projection = keras.layers.Dense(units, use_bias=False, name="key_projection")
        # Keras's AdditiveAttention, computed without a [B, T, S, units] tensor (same weights).
        self.score = ChunkedAdditiveAttention(use_scale=True, name="score")

    def project_keys(self, values):
        """``values [B, S, D] -> keys [B, S, units]``."""
        return self.key_projection(values)

    def call(self, query, values, keys, values_mask):
        """``query [B, T, Q], values [B, S, D], keys [B, S, units]``
        ``-> (context [B, T, D], weights [B, T, S])``."""
        projected = self.query_projection(query)
        return self.score([projected, values, keys], mask=[None, values_mask], return_attention_scores=True)

    def get_config(self):
        config = super().get_config()
        config.update(units=self.units)
        return config


@keras.saving.register_keras_serializable(package="nmtcli")
class GruAttentionSeq2Seq(Seq2Seq):
    has_attention = True

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        units = self.units
        self.encoder_rnn = keras.layers.Bidirectional(
            keras.layers.GRU(units, return_sequences=True, return_state=True), name="encoder_gru"
        )
        self.bridge = keras.layers.Dense(units, activation="tanh", name="bridge")
        self.decoder_rnn = keras.layers.GRU(
            units, return_sequences=True, return_state=True, name="decoder_gru"
        )
        self.attention = AdditiveAttention(units, name="attention")
        self.attention_output = keras.layers.Dense(
            self.readout_dim, activation="tanh", name="attention_output"
        )

    def encode(self, source, training=False):
        """``source [B, S] -> (values [B, S, 2u], keys [B, S, u], mask [B, S], state [B, u])``."""
        mask = self.source_mask(source)
        embedded = self.embedding_dropout(self.source_embedding(source), training=training)
        values, forward, backward = run_bidirectional_gru(
            self.encoder_rnn, embedded, mask=mask, training=training
        )
        state = self.bridge(ops.concatenate([forward, backward], axis=-1))
        return (values, self.attention.project_keys(values), mask, state)

    def initial_state(self, memory):
        return [memory[3]]

    def _readout(self, outputs, memory, training=False):
        values, keys, mask, _ = memory
        context, weights = self.attention(outputs, values, keys, mask)
        combined = self.attention_output(ops.concatenate([outputs, context], axis=-1))
        logits = self.project(self.output_dropout(combined, training=training), training=training)
        return logits, weights

    def decode(self, target_in, memory, training=False):
        embedded = self.embedding_dropout(self.target_embedding(target_in), training=training)
        outputs, _ = run_gru(
            self.decoder_rnn,
            embedded,
            initial_state=self.initial_state(memory),
            mask=self.source_mask(target_in),
            training=training,
        )
        logits, _ = self._readout(outputs, memory, training=training)
        return logits

    def next(self, tokens, state, memory):
        logits, state, _ = self.next_with_attention(tokens, state, memory)
        return logits, state

    def next_with_attention(self, tokens, state, memory):
        """``next`` that also returns where it looked: ``-> (logits [B, V], state, weights [B, S])``.

        ``weights`` sum to 1 over each sentence's unmasked source tokens.
        """
        output, state = self.decoder_rnn.cell(self.embed_step(tokens), state, training=False)
        logits, weights = self._readout(ops.expand_dims(output, 1), memory)
        state = list(state) if isinstance(state, (list, tuple)) else [state]
        return ops.squeeze(logits, 1), state, ops.squeeze(weights, 1)
