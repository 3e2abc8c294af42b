"""LSTM encoder-decoder: the encoder's final states initialise the decoder (Sutskever et al., 2014)."""

from __future__ import annotations

import keras

from .base import Seq2Seq
from .fast_rnn import run_lstm


@keras.saving.register_keras_serializable(package="nmtcli")
class LstmSeq2Seq(Seq2Seq):
    """Unidirectional LSTM encoder and decoder with embeddings; no attention.

    Dropout is applied to embeddings and decoder outputs only (no recurrent dropout), so the
    recurrent layers stay eligible for cuDNN kernels on a GPU.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.encoder_rnn = keras.layers.LSTM(self.units, return_state=True, name="encoder_lstm")
        self.decoder_rnn = keras.layers.LSTM(
            self.units, return_sequences=True, return_state=True, name="decoder_lstm"
        )
        # Tied output embeddings need the decoder's output brought down to embedding_dim.
        self.readout = (
            keras.layers.Dense(self.readout_dim, name="readout")
            if self.readout_dim != self.units
            else keras.layers.Identity(name="readout")
        )

    def encode(self, source, training=False):
        """``source [B, S] -> (h [B, units], c [B, units])``."""
        mask = self.source_mask(source)
        embedded = self.embedding_dropout(self.source_embedding(source), training=training)
        _, h, c = run_lstm(self.encoder_rnn, embedded, mask=mask, training=training)
        return (h, c)

    def initial_state(self, memory):
        return list(memory)

    def decode(self, target_in, memory, training=False):
        embedded = self.embedding_dropout(self.target_embedding(target_in), training=training)
        outputs, _, _ = run_lstm(
            self.decoder_rnn,
            embedded,
            initial_state=list(memory),
            mask=self.source_mask(target_in),
            training=training,
        )
        return self.project(self.readout(self.output_dropout(outputs, training=training)), training=training)

    def next(self, tokens, state, memory):
        output, state = self.decoder_rnn.cell(self.embed_step(tokens), state, training=False)
        return self.project(self.readout(output)), list(state)
