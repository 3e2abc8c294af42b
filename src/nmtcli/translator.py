"""The library entry point: load a model folder and translate lists of strings.

::

    translator = Translator.load("nmt-workspace/runs/20261121-101500-gru-attention-word")
    translator.translate(["Go.", "I am hungry."])
    translator.attend(["Go."])  # GRU-attention models: translations with their attention weights
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from .attention import Alignment
from .config import DEFAULT_LENGTH_PENALTY, ModelConfig, check_decoding
from .corpus import normalize
from .decoding import beam_search, repeat_beams
from .errors import ModelError
from .files import read_json
from .model_folder import load_model, load_vectorizers, read_config, verify_folder
from .vectorizers import END, END_ID, Vectorizer

# Greedy batches of at most this many sentences decode every sentence to the batch's last step.
FEW = 16


class Translator:
    def __init__(
        self,
        model: Any,
        source: Vectorizer,
        target: Vectorizer,
        config: ModelConfig,
        lowercase: bool = False,
        run_dir: Path | None = None,
        bf16_output: bool = False,
    ):
        """``bf16_output``: the output layer's product in bfloat16 while decoding, as in training, on
        CPUs that have it natively (see ``Seq2Seq.bf16_decoding``): faster with a large vocabulary, and
        where two words score within bfloat16's rounding the other may be chosen. Off by default."""
        self.model = model
        self.source = source
        self.target = target
        self.config = config
        self.lowercase = lowercase
        self.run_dir = run_dir
        self.bf16_output = bf16_output
        # Inputs far longer than anything seen in training are cut, so one huge line cannot stall
        # a batch; ``truncated`` counts them in the last ``translate`` call.
        self.max_source_tokens = max(64, 2 * config.max_source_length) if config.max_source_length else 1024
        self.truncated = 0
        signature = [tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([], tf.int32)]
        # Batches of at most FEW sentences use the plain loop: the same ids, from a loop that takes
        # less time to compile than dropping ended sentences could save (a third of a second of
        # `echo "Go." | nmt translate`).
        self._decode = tf.function(functools.partial(self._greedy_batch, True), input_signature=signature)
        self._decode_few = tf.function(
            functools.partial(self._greedy_batch, False), input_signature=signature
        )
        self._decode_attending = tf.function(self._greedy_attending_batch, input_signature=signature)
        self._beam_decoders: dict[int, Any] = {}  # beam size -> its compiled decoder

    @property
    def bf16_active(self) -> bool:
        """Whether decoding runs the output layer in bfloat16: asked for, and possible here."""
        return self.bf16_output and self.model.bf16_decoding_applies()

    @classmethod
    def load(cls, run_dir: str | os.PathLike, bf16_output: bool = False) -> Translator:
        run_dir = Path(run_dir)
        if not run_dir.is_dir():
            raise ModelError(f"{run_dir}: model folder not found")
        config = read_config(run_dir)
        verify_folder(run_dir)
        model_config: ModelConfig = config["model"]
        source, target = load_vectorizers(run_dir, model_config.level)
        if (len(source), len(target)) != (
            model_config.source_vocab_size,
            model_config.target_vocab_size,
        ):
            raise ModelError(
                f"{run_dir}: vocabulary files do not match the model "
                f"({len(source)}/{len(target)} tokens, model expects "
                f"{model_config.source_vocab_size}/{model_config.target_vocab_size})"
            )
        model = load_model(run_dir)
        lowercase = False
        manifest = run_dir / "data-manifest.json"
        if manifest.is_file():
            lowercase = bool(read_json(manifest).get("settings", {}).get("lowercase", False))
        return cls(
            model, source, target, model_config, lowercase=lowercase, run_dir=run_dir, bf16_output=bf16_output
        )

    def _greedy_batch(self, drop_finished: bool, source: tf.Tensor, max_length: tf.Tensor) -> tf.Tensor:
        return self.model.greedy(source, max_length, bf16=self.bf16_output, drop_finished=drop_finished)

    def _greedy_attending_batch(self, source: tf.Tensor, max_length: tf.Tensor):
        return self.model.greedy(source, max_length, with_attention=True, bf16=self.bf16_output)

    def _beam_decoder(self, beam_size: int):
        """A compiled beam search for this beam size: ``(source [B, S], max_length, alpha) -> [B, T]``."""
        if beam_size not in self._beam_decoders:

            def beam_batch(source: tf.Tensor, max_length: tf.Tensor, length_penalty: tf.Tensor) -> tf.Tensor:
                # Every beam of a sentence attends to the same encoder outputs: K copies per sentence.
                memory = repeat_beams(self.model.encode(source, training=False), beam_size)
                state = self.model.initial_state(memory)

                def next_fn(tokens, state):
                    return self.model.next(tokens, state, memory)

                batch_size = tf.shape(source)[0]
                with self.model.bf16_decoding(self.bf16_output):
                    return beam_search(next_fn, state, batch_size, beam_size, max_length, length_penalty)

            self._beam_decoders[beam_size] = tf.function(
                beam_batch,
                input_signature=[
                    tf.TensorSpec([None, None], tf.int32),
                    tf.TensorSpec([], tf.int32),
                    tf.TensorSpec([], tf.float32),
                ],
            )
        return self._beam_decoders[beam_size]

    def default_max_length(self, source_length: int) -> int:
        """Decode at most twice the source length plus 10, within twice the longest training target."""
        cap = max(16, 2 * self.config.max_target_length)
        return min(cap, 2 * source_length + 10)

    def _padded(
        self, sources: Sequence[Sequence[int]], max_length: int | None
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """One padded batch ``[B, S]`` and its step limit (the default follows the longest source)."""
        width = max(len(ids) for ids in sources)
        batch = np.zeros((len(sources), width), np.int32)
        for row, ids in enumerate(sources):
            batch[row, : len(ids)] = ids
        steps = max_length if max_length is not None else self.default_max_length(width)
        return tf.constant(batch), tf.constant(steps, tf.int32)

    def translate_ids(
        self,
        sources: Sequence[Sequence[int]],
        max_length: int | None = None,
        beam_size: int = 1,
        length_penalty: float = DEFAULT_LENGTH_PENALTY,
    ) -> list[list[int]]:
        """Decode one batch of source id sequences; returns target ids, the end id and padding included.

        ``beam_size`` 1 is greedy search; more runs beam search with that many beams per sentence
        (see ``decoding.beam_search`` for ``length_penalty``).
        """
        batch, steps = self._padded(sources, max_length)
        if beam_size == 1:
            decode = self._decode_few if len(sources) <= FEW else self._decode
            return decode(batch, steps).numpy().tolist()
        alpha = tf.constant(length_penalty, tf.float32)
        return self._beam_decoder(beam_size)(batch, steps, alpha).numpy().tolist()

    def _source_tokens(self, lines: Iterable[str]) -> list[list[str]]:
        """Each line normalised and tokenized, cut to ``max_source_tokens``; counts ``truncated``."""
        tokens = [self.source.tokenizer.tokenize(normalize(line, self.lowercase)) for line in lines]
        self.truncated = sum(len(line) > self.max_source_tokens for line in tokens)
        return [line[: self.max_source_tokens] for line in tokens]

    @staticmethod
    def _batches(encoded: Sequence[Sequence[int]], batch_size: int) -> Iterator[list[int]]:
        """Indices of the non-empty inputs, sorted by length so that each batch pads little."""
        order = sorted((i for i, ids in enumerate(encoded) if ids), key=lambda i: len(encoded[i]))
        for start in range(0, len(order), batch_size):
            yield order[start : start + batch_size]

    def translate(
        self,
        lines: Iterable[str],
        batch_size: int = 64,
        max_length: int | None = None,
        beam_size: int = 1,
        length_penalty: float = DEFAULT_LENGTH_PENALTY,
    ) -> list[str]:
        """One translation per input line, in order. Empty or blank lines translate to ``""``.

        Greedy search by default; ``beam_size`` > 1 keeps that many hypotheses per sentence, so a
        batch decodes ``batch_size * beam_size`` rows at once.
        """
        check_decoding(batch_size, max_length, beam_size, length_penalty)
        encoded = [self.source.vocabulary.encode(tokens) for tokens in self._source_tokens(lines)]
        outputs = [""] * len(encoded)
        for chunk in self._batches(encoded, batch_size):
            decoded = self.translate_ids([encoded[i] for i in chunk], max_length, beam_size, length_penalty)
            for i, ids in zip(chunk, decoded, strict=True):
                outputs[i] = self.target.decode(ids)
        return outputs

    def attend(
        self, lines: Iterable[str], batch_size: int = 64, max_length: int | None = None
    ) -> list[Alignment]:
        """One :class:`~nmtcli.attention.Alignment` per input line, in order: the greedy translation
        (decoded in the same batches as :meth:`translate`, so it is the same) with the attention
        weights of every output step. A blank line gives an empty alignment. Needs a model with
        attention (``gru-attention``); an LSTM model is a ``ModelError``.
        """
        if not getattr(self.model, "has_attention", False):
            where = f"{self.run_dir}: " if self.run_dir else ""
            raise ModelError(
                f"{where}this {self.config.arch} model has no attention to show; "
                "train one with `arch` gru-attention"
            )
        check_decoding(batch_size, max_length)
        lines = list(lines)
        tokens = self._source_tokens(lines)
        vocabulary = self.source.vocabulary
        encoded = [vocabulary.encode(line) for line in tokens]
        empty = np.zeros((0, 0), np.float32)
        alignments = [Alignment(line, "", [], [], empty, []) for line in lines]
        for chunk in self._batches(encoded, batch_size):
            ids, weights = self._decode_attending(*self._padded([encoded[i] for i in chunk], max_length))
            for row, i in enumerate(chunk):
                alignments[i] = self._alignment(lines[i], tokens[i], ids[row].numpy(), weights[row].numpy())
        return alignments

    def _alignment(self, line: str, tokens: list[str], ids: np.ndarray, weights: np.ndarray) -> Alignment:
        """``ids [steps]`` and ``weights [steps, S_batch]`` of one sentence -> its Alignment."""
        ended = np.flatnonzero(ids == END_ID)
        steps = int(ended[0]) + 1 if ended.size else len(ids)
        names = self.target.vocabulary.tokens
        target_tokens = [END if i == END_ID else names[i] for i in ids[:steps].tolist()]
        return Alignment(
            source=line,
            translation=self.target.decode(ids.tolist()),
            source_tokens=tokens,
            target_tokens=target_tokens,
            weights=np.asarray(weights[:steps, : len(tokens)], np.float32),
            unknown=[i not in self.source.vocabulary.index for i in tokens],
        )
