"""The library entry point: load a model folder and translate lists of strings.

::

    translator = Translator.load("nmt-workspace/runs/20261121-101500-gru-attention-word")
    translator.translate(["Go.", "I am hungry."])
    translator.translate(lines, beam_size=4)  # keyword shortcuts for the fields of DecodingConfig
    for result in translator.translate_stream(open("in.txt"), DecodingConfig(batch_size=128)):
        print(result.translation)  # result.truncated: the input was cut to max_source_tokens
    translator.attend(["Go."])  # GRU-attention models: translations with their attention weights

``Translation`` (the result record) lives in ``translation``, which imports no TensorFlow; it is
re-exported here. ``Translator.load`` of a recurrent run decodes greedily (and draws attention) with
the run's cached traced decoders (``decoder_cache``), building the Keras model only for requests the
cache does not serve (beam search, bfloat16 output, perplexity).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from . import decoder_cache
from . import decoding as search
from .alignment import Alignment
from .config import DecodingConfig, ModelConfig, decoding_config
from .decoder_cache import CachedDecoders
from .errors import ConfigError, ModelError
from .logs import logger
from .models import bf16
from .run_folder import RunFolder
from .text import normalize
from .translation import STREAM_CHUNK, Translation, length_batches, max_source_tokens
from .vectorizers import END, END_ID, Vectorizer

__all__ = ["STREAM_CHUNK", "Translation", "Translator"]


class Translator:
    engine = "tensorflow"  # see engines.open_translator

    def __init__(
        self,
        model: Any,
        source: Vectorizer,
        target: Vectorizer,
        config: ModelConfig,
        lowercase: bool = False,
        run_dir: Path | None = None,
        decoders: CachedDecoders | None = None,
    ):
        self._model = model
        self.decoders = decoders
        self.source = source
        self.target = target
        self.config = config
        self.lowercase = lowercase
        self.run_dir = run_dir
        self.max_source_tokens = max_source_tokens(config.max_source_length)
        # One compiled decoder per search kind, made on first use: greedy search (ended sentences leave
        # the batch), greedy search that also returns attention weights, and beam search for each beam
        # size (the width fixes the loop's shapes). bfloat16 output changes the graph, so it is in the key.
        self._decoders: dict[tuple[str, int, bool], Any] = {}

    @property
    def model(self) -> Any:
        """The Keras model; a translator opened from the run's decoder cache loads it (checked
        against ``checksums.json``) only when a request needs it: beam search, bfloat16 output,
        perplexity."""
        if self._model is None:
            if self.run_dir is None:
                raise ModelError("this translator has no model to load")
            run = RunFolder(self.run_dir)
            run.verify()
            self._model = run.load_model()
        return self._model

    @property
    def has_attention(self) -> bool:
        """Whether the model has attention weights to show (``attend``)."""
        if self.decoders is not None:
            return self.decoders.has_attention
        return bool(getattr(self.model, "has_attention", False))

    @property
    def bf16_available(self) -> bool:
        """Whether ``DecodingConfig.bf16_output`` takes effect here (see ``models.bf16``)."""
        return bf16.decoding_applies(self.model)

    def effective(self, decoding: DecodingConfig) -> DecodingConfig:
        """``decoding`` as it runs here: the length penalty of this model's architecture when none is
        chosen (``DecodingConfig.for_arch``), ``bf16_output`` only where this CPU and model allow it."""
        decoding = decoding.for_arch(self.config.arch)
        if decoding.bf16_output and not self.bf16_available:
            return decoding.with_options(bf16_output=False)
        return decoding

    @classmethod
    def load(cls, run_dir: str | os.PathLike) -> Translator:
        """The translator of the run in ``run_dir``. A recurrent run's greedy decoders come from its
        decoder cache (``decoder_cache``: no Keras model is built and nothing is traced), which is
        written first when missing or stale and the folder can be written to."""
        run_dir = Path(run_dir)
        if not run_dir.is_dir():
            raise ModelError(f"{run_dir}: model folder not found")
        run = RunFolder(run_dir)
        model_config = run.config().model
        cached = decoder_cache.serves(model_config.arch)
        run.verify()
        source, target = run.load_vectorizers(model_config.level)
        if (len(source), len(target)) != (
            model_config.source_vocab_size,
            model_config.target_vocab_size,
        ):
            raise ModelError(
                f"{run_dir}: vocabulary files do not match the model "
                f"({len(source)}/{len(target)} tokens, model expects "
                f"{model_config.source_vocab_size}/{model_config.target_vocab_size})"
            )
        decoders = None
        if cached:
            try:
                decoders = decoder_cache.read(run)
            except decoder_cache.StaleCache as exc:
                if not isinstance(exc, decoder_cache.OutdatedCache):
                    logger.warning(f"{' '.join(str(exc).split())}; tracing the decoder again")
            else:
                return cls(None, source, target, model_config, run.lowercase, run_dir, decoders)
        model = run.load_model()
        if cached:
            decoders = decoder_cache.make(run, model)
        return cls(model, source, target, model_config, run.lowercase, run_dir, decoders)

    def _decoder(self, kind: str, beam_size: int, bf16_output: bool) -> Any:
        """The compiled decoder ``(source [B, S], max_length, length_penalty) -> ids [B, T]`` (with
        ``kind`` "attention": ``-> (ids, weights [B, T, S])``); ``length_penalty`` only for "beam"."""
        key = (kind, beam_size, bf16_output)
        if key not in self._decoders:
            model = self.model

            def decode(source: tf.Tensor, max_length: tf.Tensor, length_penalty: tf.Tensor) -> Any:
                if kind == "beam":
                    return search.beam_decode(
                        model, source, max_length, beam_size, length_penalty, bf16_output
                    )
                if kind == "attention":
                    return search.greedy_decode_with_attention(model, source, max_length, bf16_output)
                return search.greedy_decode(model, source, max_length, bf16_output)

            signature = [
                tf.TensorSpec([None, None], tf.int32),
                tf.TensorSpec([], tf.int32),
                tf.TensorSpec([], tf.float32),
            ]
            self._decoders[key] = tf.function(decode, input_signature=signature)
        return self._decoders[key]

    def _run(self, batch: tf.Tensor, steps: tf.Tensor, decoding: DecodingConfig, attention: bool = False):
        decoding = self.effective(decoding)
        if self.decoders is not None and decoding.method == "greedy" and not decoding.bf16_output:
            cached = self.decoders.attention if attention else self.decoders.greedy
            if cached is not None:
                return cached(batch, steps)
        kind = "attention" if attention else decoding.method
        decoder = self._decoder(kind, decoding.beam_size, decoding.bf16_output)
        return decoder(batch, steps, tf.constant(decoding.length_penalty, tf.float32))

    def default_max_length(self, source_length: int) -> int:
        """The step limit for a source of ``source_length`` tokens (``decoding.default_max_length``)."""
        return search.default_max_length(source_length, self.config.max_target_length)

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
        self, sources: Sequence[Sequence[int]], decoding: DecodingConfig | None = None, **options: Any
    ) -> list[list[int]]:
        """Decode one batch of source id sequences; returns target ids, the end id and padding included.
        ``options``: fields of :class:`DecodingConfig` (``beam_size=4``) applied to ``decoding``."""
        decoding = decoding_config(decoding, **options)
        return self._run(*self._padded(sources, decoding.max_length), decoding).numpy().tolist()

    def translate(
        self, lines: Iterable[str], decoding: DecodingConfig | None = None, **options: Any
    ) -> list[str]:
        """One translation per input line, in order. Empty or blank lines translate to ``""``.

        Greedy search by default; ``decoding`` (or keyword ``options``, its field names:
        ``translate(lines, beam_size=4, batch_size=32)``) chooses otherwise; see :class:`DecodingConfig`.
        """
        decoding = decoding_config(decoding, **options)
        return [result.translation for result in self._translate_all(list(lines), decoding, False)]

    def translate_stream(
        self,
        lines: Iterable[str],
        decoding: DecodingConfig | None = None,
        attention: bool = False,
        chunk_size: int = STREAM_CHUNK,
        **options: Any,
    ) -> Iterator[Translation]:
        """One :class:`Translation` per input line, in order, reading ``lines`` lazily: ``chunk_size``
        lines at a time are read, sorted into batches and decoded, and their results yielded. The
        translations are those of :meth:`translate`. ``attention``: each result also carries its
        :class:`Alignment` (greedy search only, and a model with attention)."""
        decoding = decoding_config(decoding, **options)
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise ConfigError(f"chunk_size must be an integer >= 1; got {chunk_size!r}", field="chunk_size")
        if attention:
            self._check_attention(decoding)
        lines = iter(lines)
        while chunk := list(itertools.islice(lines, chunk_size)):
            yield from self._translate_all(chunk, decoding, attention)

    def attend(
        self, lines: Iterable[str], decoding: DecodingConfig | None = None, **options: Any
    ) -> list[Alignment]:
        """One :class:`~nmtcli.alignment.Alignment` per input line, in order: the greedy translation
        (decoded in the same batches as :meth:`translate`, so it is the same) with the attention
        weights of every output step. A blank line gives an empty alignment. Needs a model with
        attention (``transformer``, ``gru-attention``); an LSTM model is a ``ModelError``.
        """
        decoding = decoding_config(decoding, **options)
        self._check_attention(decoding)
        return [result.alignment for result in self._translate_all(list(lines), decoding, True)]

    def _check_attention(self, decoding: DecodingConfig) -> None:
        if not self.has_attention:
            where = f"{self.run_dir}: " if self.run_dir else ""
            raise ModelError(
                f"{where}this {self.config.arch} model has no attention to show; "
                "train one with `arch` transformer or gru-attention"
            )
        if decoding.beam_size != 1:
            raise ConfigError("attention weights come from greedy search; use beam_size 1", field="beam_size")

    def _translate_all(
        self, lines: list[str], decoding: DecodingConfig, attention: bool
    ) -> list[Translation]:
        """``lines`` normalised, tokenized, cut to ``max_source_tokens``, sorted by length into batches
        (so that each pads little) and decoded; results in input order."""
        tokens = [self.source.tokenizer.tokenize(normalize(line, self.lowercase)) for line in lines]
        cut = [len(line) > self.max_source_tokens for line in tokens]
        tokens = [line[: self.max_source_tokens] for line in tokens]
        encoded = [self.source.vocabulary.encode(line) for line in tokens]
        empty = np.zeros((0, 0), np.float32)
        results = [
            Translation(line, "", cut[i], Alignment(line, "", [], [], empty, []) if attention else None)
            for i, line in enumerate(lines)
        ]
        for chunk in length_batches([len(ids) for ids in encoded], decoding.batch_size):
            decoded = self._run(
                *self._padded([encoded[i] for i in chunk], decoding.max_length), decoding, attention
            )
            if attention:
                ids, weights = decoded
                for row, i in enumerate(chunk):
                    alignment = self._alignment(lines[i], tokens[i], ids[row].numpy(), weights[row].numpy())
                    results[i] = Translation(lines[i], alignment.translation, cut[i], alignment)
            else:
                for i, ids in zip(chunk, decoded.numpy().tolist(), strict=True):
                    results[i] = Translation(lines[i], self.target.decode(ids), cut[i])
        return results

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
