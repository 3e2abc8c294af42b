"""The BASELINE users copy today, written here only to be measured against: not part of nmtcli.

It follows the keras.io character-level ``lstm_seq2seq`` example as the seed documents describe it:
the first N pairs, each target wrapped in "\\t" (start) and "\\n" (end), global one-hot float arrays
padded to the corpus maximum, LSTM(256) encoder and decoder, softmax with categorical cross-entropy
(padding not masked), RMSprop, batch 64, ``validation_split=0.2``; inference with a separate encoder
and decoder model and one ``predict`` call per character.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np


def read_pairs(corpus: Path, limit: int | None = None) -> tuple[list[str], list[str]]:
    """The first ``limit`` pairs (all without one); targets wrapped in the seed's start and end marks."""
    sources, targets = [], []
    with open(corpus, encoding="utf-8") as handle:
        for line in handle:
            fields = line.rstrip("\n").split("\t")
            if len(fields) < 2:
                continue
            sources.append(fields[0])
            targets.append("\t" + fields[1] + "\n")
            if limit is not None and len(sources) >= limit:
                break
    return sources, targets


class SeedRecipe:
    def __init__(self, sources: list[str], targets: list[str], units: int = 256):
        import keras

        self.source_chars = sorted({c for s in sources for c in s})
        self.target_chars = sorted({c for t in targets for c in t})
        self.source_index = {c: i for i, c in enumerate(self.source_chars)}
        self.target_index = {c: i for i, c in enumerate(self.target_chars)}
        self.max_source = max(len(s) for s in sources)
        self.max_target = max(len(t) for t in targets)
        n = len(sources)
        self.encoder_input = np.zeros((n, self.max_source, len(self.source_chars)), "float32")
        self.decoder_input = np.zeros((n, self.max_target, len(self.target_chars)), "float32")
        self.decoder_target = np.zeros((n, self.max_target, len(self.target_chars)), "float32")
        for i, (source, target) in enumerate(zip(sources, targets, strict=True)):
            for t, c in enumerate(source):
                self.encoder_input[i, t, self.source_index[c]] = 1.0
            for t, c in enumerate(target):
                self.decoder_input[i, t, self.target_index[c]] = 1.0
                if t > 0:
                    self.decoder_target[i, t - 1, self.target_index[c]] = 1.0

        encoder_inputs = keras.Input(shape=(None, len(self.source_chars)))
        _, h, c = keras.layers.LSTM(units, return_state=True)(encoder_inputs)
        decoder_inputs = keras.Input(shape=(None, len(self.target_chars)))
        decoder_lstm = keras.layers.LSTM(units, return_sequences=True, return_state=True)
        outputs, _, _ = decoder_lstm(decoder_inputs, initial_state=[h, c])
        decoder_dense = keras.layers.Dense(len(self.target_chars), activation="softmax")
        self.model = keras.Model([encoder_inputs, decoder_inputs], decoder_dense(outputs))
        self.model.compile(optimizer="rmsprop", loss="categorical_crossentropy")

        self.encoder = keras.Model(encoder_inputs, [h, c])
        state_h, state_c = keras.Input(shape=(units,)), keras.Input(shape=(units,))
        step_out, step_h, step_c = decoder_lstm(decoder_inputs, initial_state=[state_h, state_c])
        self.decoder = keras.Model(
            [decoder_inputs, state_h, state_c], [decoder_dense(step_out), step_h, step_c]
        )

    @property
    def bytes_of_arrays(self) -> int:
        return self.encoder_input.nbytes + self.decoder_input.nbytes + self.decoder_target.nbytes

    def fit(self, epochs: int, validation_rows: int | None = None, callbacks=()) -> tuple[float, list]:
        """Seconds and the Keras history, batch 64. The seed holds out the last fifth
        (``validation_split=0.2``); ``validation_rows`` holds out exactly that many last rows instead,
        so that a comparison can validate both sides on the same pairs (the same work per epoch)."""
        options = {"validation_split": 0.2}
        if validation_rows is not None:
            start = len(self.encoder_input) - validation_rows
            self.validation_start = start
            options = {
                "validation_data": (
                    [self.encoder_input[start:], self.decoder_input[start:]],
                    self.decoder_target[start:],
                )
            }
            inputs = [self.encoder_input[:start], self.decoder_input[:start]]
            targets = self.decoder_target[:start]
        else:
            inputs, targets = [self.encoder_input, self.decoder_input], self.decoder_target
        started = time.perf_counter()
        history = self.model.fit(
            inputs, targets, batch_size=64, epochs=epochs, verbose=0, callbacks=list(callbacks), **options
        )
        return time.perf_counter() - started, history.history

    validation_start: int | None = None

    def masked_validation_cross_entropy(self) -> float:
        """Per-token cross-entropy on the validation rows, padding excluded (comparable to nmtcli's)."""
        start = self.validation_start
        if start is None:
            start = int(len(self.encoder_input) * 0.8)
        probs = self.model.predict(
            [self.encoder_input[start:], self.decoder_input[start:]], batch_size=256, verbose=0
        )
        target = self.decoder_target[start:]
        real = target.sum(-1) > 0
        picked = (probs * target).sum(-1)
        return float(-np.log(np.clip(picked[real], 1e-12, None)).mean())

    def translate(self, sentence: str) -> str:
        """One sentence, one predict call per character: the seed's inference loop."""
        x = np.zeros((1, self.max_source, len(self.source_chars)), "float32")
        for t, c in enumerate(sentence[: self.max_source]):
            if c in self.source_index:
                x[0, t, self.source_index[c]] = 1.0
        h, c = self.encoder.predict(x, verbose=0)
        token = np.zeros((1, 1, len(self.target_chars)), "float32")
        token[0, 0, self.target_index["\t"]] = 1.0
        out = []
        for _ in range(self.max_target):
            probs, h, c = self.decoder.predict([token, h, c], verbose=0)
            char = self.target_chars[int(np.argmax(probs[0, -1]))]
            if char == "\n":
                break
            out.append(char)
            token = np.zeros_like(token)
            token[0, 0, self.target_index[char]] = 1.0
        return "".join(out)
