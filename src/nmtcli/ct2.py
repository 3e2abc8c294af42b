"""CTranslate2 as the inference engine of Transformer runs: conversion, the cached copy, translation.

:func:`convert` reads a transformer run's ``model.keras`` through Keras (this one imports TensorFlow)
and fills a ``ctranslate2.specs.TransformerSpec`` with its weights, laid out as the module docstring
of ``models.transformer`` says; the SentencePiece model(s) are copied beside it. A CTranslate2 folder
holds CTranslate2's own files (``model.bin``, ``config.json``, ``*_vocabulary.json``), the
SentencePiece models of a subword run (``source.model``, ``target.model``) and ``nmt-ctranslate2.json``
(:data:`RECORD`): the SHA-256 of every other file and of the ``model.keras`` it was made from.

:class:`CT2Translator` translates with such a folder and never imports TensorFlow. The run keeps a
float32 copy in ``RUN/ctranslate2`` (``RunFolder.ctranslate2_dir``), written at the end of
``nmt train`` or on first use, and rewritten when it no longer matches the run's ``model.keras`` or
its checksums; a run folder that cannot be written to is translated from a temporary conversion. The
folder's files are read (bounded, regular files, checked against the record) and handed to
CTranslate2 from memory, so what is checked is what runs. Quantized computation (``compute_type``
int8 or int16) is chosen when loading: CTranslate2 quantizes the float32 weights as it reads them.

Decoding matches ``decoding``'s loops, so that float32 outputs equal the TensorFlow path's:

- inputs are normalised, tokenized, cut at ``max_source_tokens`` and batched by length exactly as in
  ``Translator`` (``translation.length_batches``), and each batch gets the same default step limit;
  steps count the end token, as ``max_decoding_length`` does; EOS may not come first
  (``min_decoding_length`` 1, ``decoding.no_end_at_first_step``);
- greedy search is CTranslate2's (``beam_size`` 1);
- beam search: CTranslate2 normalises an ended hypothesis's score by ``length ** length_penalty``,
  ours by GNMT's ``((5 + length) / 6) ** length_penalty``. We ask CTranslate2 for its ``beam_size``
  finished hypotheses with their scores and the end token, undo its normalisation and rank them by
  ours; a hypothesis that did not end (``max_length`` reached) counts only when none ended, by its raw
  log-probability, as in ``decoding.beam_search``. Both searches keep the same live beams (the best
  ``K`` of ``2K`` candidates that do not end, an end counting only among the top ``K``) and stop once
  ``K`` hypotheses ended, so the candidates are the same; the outputs can still differ where
  CTranslate2 keeps more than ``K`` ended hypotheses and drops some by its own normalisation before we
  rank them (several end in one step), and where scores tie or round differently.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .config import DecodingConfig, ModelConfig, decoding_config
from .errors import ConfigError, ModelError, NmtError
from .files import (
    atomic_write_json,
    check_replaceable,
    file_digests,
    read_json_file,
    read_listed_files,
    replacing_folder,
    sha256_file,
)
from .logs import logger
from .run_folder import CT2_FILES, CT2_RECORD, CT2_SUBWORD_MODELS, MODEL, SUBWORD_MODELS, RunFolder
from .text import normalize
from .translation import STREAM_CHUNK, Translation, default_max_length, length_batches, max_source_tokens
from .vectorizers import END, UNK_ID, Vectorizer

RECORD = CT2_RECORD
RECORD_FORMAT = 1
QUANTIZATIONS = ("float32", "int16", "int8")
COMPUTE_TYPES = QUANTIZATIONS
# What a CTranslate2 folder we wrote may hold (for replacing one: nothing else is deleted).
KNOWN_FILES = (*CT2_FILES, *CT2_SUBWORD_MODELS.values(), RECORD)
MAX_FILE_BYTES = 4 * 2**30  # a model.bin of a billion float32 weights
# Position encodings written out, at least; more when the run's limits need them.
MIN_POSITIONS = 1024


def _ctranslate2() -> Any:
    # OpenMP's threads wait for work spinning a bounded while (300,000 spins), then sleeping: sleeping
    # at once (PASSIVE) made batch decoding several times slower, and spinning without bound slowed
    # both batch decoding and a short translation on a busy machine (docs/benchmarks.md, "OpenMP's
    # wait policy"). Set before CTranslate2's OpenMP starts, and only where the user has chosen neither.
    if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
        os.environ["OMP_WAIT_POLICY"] = "ACTIVE"
        os.environ["GOMP_SPINCOUNT"] = "300000"
    try:
        import ctranslate2
    except ImportError:  # a broken install; it is a dependency of nmtcli
        raise ModelError("the ctranslate2 package is missing; reinstall nmtcli") from None
    return ctranslate2


def check_convertible(run_dir: str | os.PathLike, config: ModelConfig | None = None) -> ModelConfig:
    """The run's model config, if it is a Transformer; else a one-line ModelError."""
    config = config or RunFolder(run_dir).config().model
    if config.arch != "transformer":
        raise ModelError(
            f"{run_dir}: a {config.arch} model has no CTranslate2 form; only transformer models convert"
        )
    return config


def positions_for(config: ModelConfig) -> int:
    """How many position encodings the converted model holds: enough for the longest source a
    translator reads and the longest default output, and at least :data:`MIN_POSITIONS`."""
    return max(
        MIN_POSITIONS,
        max_source_tokens(config.max_source_length),
        default_max_length(10**9, config.max_target_length),
    )


# --------------------------------------------------------------------------------------------------
# Conversion (imports TensorFlow)


def convert(run_dir: str | os.PathLike, output_dir: str | os.PathLike, quantization: str = "float32") -> Path:
    """Write the Transformer of ``run_dir`` to the folder ``output_dir`` as a CTranslate2 model with
    weights in ``quantization`` (float32, int16 or int8), with the run's SentencePiece models beside
    it and :data:`RECORD`. Written to a temporary sibling and moved into place; an existing folder is
    replaced only if it is empty or one of ours. Returns ``output_dir``."""
    run_dir, output_dir = Path(run_dir), Path(output_dir)
    if quantization not in QUANTIZATIONS:
        raise ConfigError(
            f"quantization must be one of {', '.join(QUANTIZATIONS)}; got {quantization!r}",
            field="quantization",
        )
    run = RunFolder(run_dir)
    if not run_dir.is_dir():
        raise ModelError(f"{run_dir}: model folder not found")
    config = check_convertible(run_dir, run.config().model)
    check_replaceable(output_dir, RECORD, "a CTranslate2 model", ModelError, known=KNOWN_FILES)
    run.verify()
    spec = _spec(run, config)
    try:
        with replacing_folder(output_dir, KNOWN_FILES) as tmp_dir:  # a killed conversion's is cleared
            try:
                spec.validate()
                spec.optimize(quantization=quantization)
                spec.save(str(tmp_dir))
            except (ValueError, RuntimeError) as exc:  # CTranslate2's own checks of the weights
                detail = " ".join(str(exc).split())[:300]
                raise ModelError(f"{run_dir}: cannot convert the model to CTranslate2 ({detail})") from None
            if config.level == "subword":
                for side, name in SUBWORD_MODELS.items():
                    shutil.copyfile(run.file(name), tmp_dir / CT2_SUBWORD_MODELS[side])
            files = sorted(p.name for p in tmp_dir.iterdir() if p.is_file())
            atomic_write_json(
                tmp_dir / RECORD,
                {
                    "format": RECORD_FORMAT,
                    "model_sha256": sha256_file(run.file(MODEL)),
                    "quantization": quantization,
                    "positions": positions_for(config),
                    "arch": config.arch,
                    "level": config.level,
                    "lowercase": run.lowercase,
                    "max_source_tokens": max_source_tokens(config.max_source_length),
                    "files": file_digests(tmp_dir, files),
                    "nmtcli_version": __version__,
                    "ctranslate2_version": _ctranslate2().__version__,
                },
            )
    except OSError as exc:
        raise ModelError(
            f"{output_dir}: cannot write the CTranslate2 model ({exc.strerror or exc}); nothing was changed"
        ) from None
    return output_dir


def _spec(run: RunFolder, config: ModelConfig) -> Any:
    """A filled ``TransformerSpec`` of the run's model (see ``models.transformer`` for the layout)."""
    from .runtime import quiet_import

    quiet_import()  # TensorFlow's C++ start-up notices stay off stderr
    import keras
    import numpy as np

    from .models.transformer import LAYER_NORM_EPSILON, sinusoidal_positions

    specs = _ctranslate2().specs
    model = run.load_model()
    source, target = run.load_vectorizers(config.level)
    for side, vocabulary in (("source", source.vocabulary), ("target", target.vocabulary)):
        if len(vocabulary) != getattr(config, f"{side}_vocab_size"):
            raise ModelError(f"{run.path}: the {side} vocabulary does not match the model")

    def array(variable) -> np.ndarray:
        return np.asarray(keras.ops.convert_to_numpy(variable), np.float32)

    def linear(spec, weight: np.ndarray, bias: np.ndarray) -> None:
        spec.weight = np.ascontiguousarray(weight)
        spec.bias = np.ascontiguousarray(bias)

    def dense(layer) -> tuple[np.ndarray, np.ndarray]:
        """A Keras ``Dense``/``EinsumDense`` as CTranslate2's ``[out, in]`` weight and ``[out]`` bias:
        an attention projection's kernel ``[units, H, D]`` (or ``[H, D, units]``) is a matrix."""
        kernel = array(layer.kernel)
        kernel = kernel.reshape(-1, kernel.shape[-1]) if kernel.shape[-1] == units else kernel
        kernel = kernel.reshape(units, -1) if kernel.shape[0] == units else kernel
        return kernel.T, array(layer.bias).reshape(-1)

    def norm(spec, layer) -> None:
        spec.gamma = array(layer.gamma)
        spec.beta = array(layer.beta)

    def attention(spec, layer, fuse_all: bool) -> None:
        q, k, v = dense(layer.query_dense), dense(layer.key_dense), dense(layer.value_dense)
        if fuse_all:
            linear(spec.linear[0], np.concatenate([q[0], k[0], v[0]]), np.concatenate([q[1], k[1], v[1]]))
            linear(spec.linear[1], *dense(layer.output_dense))
        else:
            linear(spec.linear[0], *q)
            linear(spec.linear[1], np.concatenate([k[0], v[0]]), np.concatenate([k[1], v[1]]))
            linear(spec.linear[2], *dense(layer.output_dense))

    def layer_weights(spec, layer, decoder: bool) -> None:
        attention(spec.self_attention, layer.self_attention, fuse_all=True)
        norm(spec.self_attention.layer_norm, layer.self_attention_norm)
        if decoder:
            attention(spec.attention, layer.cross_attention, fuse_all=False)
            norm(spec.attention.layer_norm, layer.cross_attention_norm)
        norm(spec.ffn.layer_norm, layer.ffn_norm)
        linear(spec.ffn.linear_0, *dense(layer.ffn_inner))
        linear(spec.ffn.linear_1, *dense(layer.ffn_outer))

    units = config.units
    spec = specs.TransformerSpec.from_config(
        (config.layers, config.layers), config.heads, pre_norm=True, activation=specs.Activation.RELU
    )
    positions = array(sinusoidal_positions(keras.ops.arange(positions_for(config)), units))
    for stack, embedding in ((spec.encoder, model.source_embedding), (spec.decoder, model.target_embedding)):
        embeddings = stack.embeddings[0] if isinstance(stack.embeddings, list) else stack.embeddings
        embeddings.weight = array(embedding.embeddings)
        stack.scale_embeddings = True
        stack.position_encodings.encodings = positions
    for layer_spec, layer in zip(spec.encoder.layer, model.encoder_layers, strict=True):
        layer_weights(layer_spec, layer, decoder=False)
    for layer_spec, layer in zip(spec.decoder.layer, model.decoder_layers, strict=True):
        layer_weights(layer_spec, layer, decoder=True)
    norm(spec.encoder.layer_norm, model.encoder_norm)
    norm(spec.decoder.layer_norm, model.decoder_norm)
    projection = model.output_projection
    weight = array(model.output_matrix) if model.tie_embeddings else array(projection.kernel).T
    linear(spec.decoder.projection, weight, array(projection.bias))
    spec.register_source_vocabulary(list(source.vocabulary.tokens))
    spec.register_target_vocabulary(list(target.vocabulary.tokens))
    for key, value in {
        "unk_token": "<unk>",
        "bos_token": "<start>",
        "eos_token": "<end>",
        "decoder_start_token": "<start>",
        "add_source_bos": False,
        "add_source_eos": False,
        "layer_norm_epsilon": LAYER_NORM_EPSILON,
    }.items():
        setattr(spec.config, key, value)
    return spec


# --------------------------------------------------------------------------------------------------
# Reading a CTranslate2 folder (no TensorFlow)


def is_ct2_file(name: str) -> bool:
    """Whether a CTranslate2 folder's record may list ``name``."""
    return name in KNOWN_FILES and name != RECORD


class StaleCopy(ModelError):
    """A CTranslate2 folder that is missing, damaged, or made from another ``model.keras``."""


def read_folder(folder: Path, model_sha256: str | None = None) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The record and CTranslate2's files of ``folder``, each read once (bounded, regular, inside the
    folder) and checked against the record; with ``model_sha256``, the folder must have been made
    from that ``model.keras``. :class:`StaleCopy` saying what is wrong otherwise."""
    if not (folder / RECORD).exists() and not os.path.lexists(folder / RECORD):
        raise StaleCopy(f"{folder}: no CTranslate2 model ({RECORD} missing)")
    try:
        record = read_json_file(
            folder / RECORD,
            {"format": int, "model_sha256": str, "positions": int, "files": {}},
            error=StaleCopy,
        )
    except (OSError, ValueError, NmtError) as exc:
        raise StaleCopy(f"{folder / RECORD}: unreadable ({exc})") from None
    files = record.get("files")
    if record.get("format") != RECORD_FORMAT or not isinstance(files, dict) or CT2_FILES[0] not in files:
        raise StaleCopy(f"{folder / RECORD}: not a CTranslate2 record of this nmtcli")
    if model_sha256 is not None and record.get("model_sha256") != model_sha256:
        raise StaleCopy(f"{folder}: made from another model.keras")
    contents = read_listed_files(folder, RECORD, files, is_ct2_file, MAX_FILE_BYTES, StaleCopy)
    return record, contents


def _load_ct2(identifier: str, contents: dict[str, bytes], compute_type: str) -> Any:
    """A ``ctranslate2.Translator`` on the CPU from files in memory (CTranslate2 reads nothing on disk)."""
    ctranslate2 = _ctranslate2()
    files = {name: data for name, data in contents.items() if name in CT2_FILES}
    try:
        return ctranslate2.Translator(identifier, device="cpu", compute_type=compute_type, files=files)
    except (RuntimeError, ValueError, OSError) as exc:
        detail = " ".join(str(exc).split())[:300]
        raise StaleCopy(f"{identifier}: CTranslate2 cannot load it ({detail})") from None


# --------------------------------------------------------------------------------------------------
# The cached copy inside a run


def read_cached(run: RunFolder) -> tuple[dict[str, Any], dict[str, bytes]]:
    """:func:`read_folder` of the run's copy, which must be its own folder (not a symlink) and made
    from the ``model.keras`` that ``checksums.json`` names."""
    folder = run.ctranslate2_dir
    if folder.is_symlink():
        raise StaleCopy(f"{folder}: a symlink, not the run's own copy")
    return read_folder(folder, run.model_digest())


def ensure_cached(run_dir: str | os.PathLike) -> Path | None:
    """Make sure ``RUN/ctranslate2`` is a float32 copy of the run's current model (converting once);
    returns its path, or None (with a warning logged) when the run folder cannot hold it. For the end
    of ``nmt train``; translators call :meth:`CT2Translator.load`, which does the same on demand."""
    run = RunFolder(run_dir)
    check_convertible(run_dir)
    try:
        read_cached(run)
        return run.ctranslate2_dir
    except StaleCopy:
        pass
    logger.info(f"writing the CTranslate2 copy of the model to {run.ctranslate2_dir}")
    try:
        return convert(run_dir, run.ctranslate2_dir)
    except (NmtError, OSError, ValueError, RuntimeError) as exc:  # never fails the training before it
        detail = " ".join(str(exc).split())
        logger.warning(f"no CTranslate2 copy kept in the run folder ({detail}); nmt translate makes one")
        return None


class CT2Translator:
    """Translates with a CTranslate2 copy of a Transformer run; the interface of ``Translator``
    (``translate``, ``translate_stream``, ``max_source_tokens``, ``effective``), without TensorFlow.

    ``compute_type``: float32 (the same outputs as TensorFlow), int16 or int8 (faster; weights
    quantized as they load). ``translate_stream(..., n_best=K)`` also returns the ``K`` best
    hypotheses of a beam of at least ``K``. A ``max_length`` beyond the position encodings the copy
    holds (``positions``, at least 1,024) is lowered to that many steps.
    """

    engine = "ctranslate2"

    def __init__(
        self,
        ct2: Any,
        source: Vectorizer,
        target: Vectorizer,
        config: ModelConfig,
        lowercase: bool = False,
        run_dir: Path | None = None,
        positions: int = MIN_POSITIONS,
        compute_type: str = "float32",
    ):
        self.ct2 = ct2
        self.source = source
        self.target = target
        self.config = config
        self.lowercase = lowercase
        self.run_dir = run_dir
        self.positions = positions
        self.compute_type = compute_type
        self.max_source_tokens = min(max_source_tokens(config.max_source_length), positions)

    @classmethod
    def load(cls, run_dir: str | os.PathLike, compute_type: str = "float32") -> CT2Translator:
        """The run's CTranslate2 copy, converted first (once, imports TensorFlow) when missing, damaged
        or older than ``model.keras``; a run folder that cannot hold it is converted to a temporary
        folder for this translator alone (a warning is logged)."""
        run_dir = Path(run_dir)
        if compute_type not in COMPUTE_TYPES:
            raise ConfigError(
                f"compute type must be one of {', '.join(COMPUTE_TYPES)}; got {compute_type!r}",
                field="compute_type",
            )
        if not run_dir.is_dir():
            raise ModelError(f"{run_dir}: model folder not found")
        run = RunFolder(run_dir)
        config = check_convertible(run_dir, run.config().model)
        run.verify(hash_model=False)
        source, target = run.load_vectorizers(config.level)
        folder = run.ctranslate2_dir
        try:
            record, contents = read_cached(run)
        except StaleCopy as exc:
            if os.path.lexists(folder):
                logger.warning(f"{exc}; converting the model again")
            record, contents = cls._convert_for(run_dir, folder)
        ct2 = _load_ct2(str(folder), contents, compute_type)
        return cls(ct2, source, target, config, run.lowercase, run_dir, record["positions"], compute_type)

    @staticmethod
    def _convert_for(run_dir: Path, folder: Path) -> tuple[dict[str, Any], dict[str, bytes]]:
        """Convert into the run folder; where that fails, into a temporary folder read and removed."""
        logger.info(f"writing the CTranslate2 copy of the model to {folder} (once)")
        try:
            convert(run_dir, folder)
            return read_folder(folder)
        except (ModelError, OSError) as exc:
            reason = " ".join(str(exc).split())
        logger.warning(
            f"cannot keep a CTranslate2 copy in the run folder ({reason}); converted for this call"
        )
        with tempfile.TemporaryDirectory(prefix="nmt-ct2-") as tmp:
            converted = convert(run_dir, Path(tmp) / "ctranslate2")
            return read_folder(converted)

    # ---------------------------------------------------------------------------------------------

    def effective(self, decoding: DecodingConfig) -> DecodingConfig:
        """``decoding`` as it runs here: the length penalty of this model's architecture when none is
        chosen (``DecodingConfig.for_arch``); ``bf16_output`` is TensorFlow's and off."""
        decoding = decoding.for_arch(self.config.arch)
        return decoding.with_options(bf16_output=False) if decoding.bf16_output else decoding

    def default_max_length(self, source_length: int) -> int:
        return default_max_length(source_length, self.config.max_target_length)

    def translate(
        self, lines: Iterable[str], decoding: DecodingConfig | None = None, **options: Any
    ) -> list[str]:
        """One translation per input line, in order; blank lines translate to ``""``. ``decoding`` (or
        keyword ``options``, its field names) as for ``Translator.translate``."""
        decoding = self.effective(decoding_config(decoding, **options))
        return [result.translation for result in self._translate_all(list(lines), decoding, 1)]

    def translate_stream(
        self,
        lines: Iterable[str],
        decoding: DecodingConfig | None = None,
        attention: bool = False,
        chunk_size: int = STREAM_CHUNK,
        n_best: int = 1,
        **options: Any,
    ) -> Iterator[Translation]:
        """One :class:`Translation` per input line, in order, ``chunk_size`` lines read at a time.
        ``n_best`` > 1: each result's ``hypotheses`` holds that many translations, best first (needs
        ``beam_size >= n_best``). Attention weights are the TensorFlow engine's (``attention``
        must stay False)."""
        decoding = self.effective(decoding_config(decoding, **options))
        if attention:
            raise ConfigError("attention pictures come from the tensorflow engine; use `engine` tensorflow")
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise ConfigError(f"chunk_size must be an integer >= 1; got {chunk_size!r}", field="chunk_size")
        check_n_best(n_best, decoding)
        lines = iter(lines)
        while chunk := list(itertools.islice(lines, chunk_size)):
            yield from self._translate_all(chunk, decoding, n_best)

    def _encode(self, line: str) -> tuple[list[str], bool]:
        """A line as CTranslate2 tokens (our vocabulary's, unknown ones as ``<unk>``) cut to
        ``max_source_tokens``, and whether it was cut."""
        tokens = self.source.tokenizer.tokenize(normalize(line, self.lowercase))
        cut = len(tokens) > self.max_source_tokens
        names = self.source.vocabulary.tokens
        return [names[i] for i in self.source.vocabulary.encode(tokens[: self.max_source_tokens])], cut

    def _translate_all(self, lines: list[str], decoding: DecodingConfig, n_best: int) -> list[Translation]:
        encoded = [self._encode(line) for line in lines]
        results = [Translation(line, "", cut) for line, (_, cut) in zip(lines, encoded, strict=True)]
        for chunk in length_batches([len(tokens) for tokens, _ in encoded], decoding.batch_size):
            batch = [encoded[i][0] for i in chunk]
            steps = decoding.max_length or self.default_max_length(max(len(t) for t in batch))
            for i, texts in zip(
                chunk, self._decode(batch, min(steps, self.positions), decoding, n_best), strict=True
            ):
                results[i] = Translation(
                    lines[i], texts[0], encoded[i][1], None, tuple(texts) if n_best > 1 else ()
                )
        return results

    def _decode(
        self, batch: list[list[str]], steps: int, decoding: DecodingConfig, n_best: int
    ) -> list[list[str]]:
        """``n_best`` translations per source of ``batch``, best first."""
        beam = decoding.beam_size
        options = dict(
            beam_size=beam,
            max_decoding_length=steps,
            min_decoding_length=1,
            max_input_length=0,
            max_batch_size=0,
        )
        if beam == 1:
            results = self.ct2.translate_batch(batch, **options)
            return [[self._detokenize(result.hypotheses[0])] for result in results]
        alpha = decoding.length_penalty
        results = self.ct2.translate_batch(
            batch,
            num_hypotheses=beam,
            length_penalty=alpha,
            return_scores=True,
            return_end_token=True,
            **options,
        )
        return [
            [self._detokenize(tokens) for tokens in rerank(result.hypotheses, result.scores, alpha)[:n_best]]
            for result in results
        ]

    def _detokenize(self, tokens: Sequence[str]) -> str:
        index = self.target.vocabulary.index
        return self.target.decode([index.get(token, UNK_ID) for token in tokens])

    # ---------------------------------------------------------------------------------------------

    def cross_entropy(self, pairs: Sequence[tuple[str, str]], batch_size: int = 64) -> float | None:
        """Mean cross-entropy per target token (nats), the end token included, of ``pairs`` (source,
        reference): ``evaluation.token_cross_entropy``'s definition, scored by CTranslate2. Pairs whose
        source encodes to no token are left out."""
        total, count = 0.0, 0
        limit = self.positions - 1
        sources, targets = [], []
        for source_text, target_text in pairs:
            source_ids = self.source.encode(source_text)
            if not source_ids:
                continue
            sources.append([self.source.vocabulary.tokens[i] for i in source_ids[:limit]])
            target_ids = self.target.encode(target_text)[:limit]
            targets.append([self.target.vocabulary.tokens[i] for i in target_ids])
        for start in range(0, len(sources), batch_size):
            scored = self.ct2.score_batch(
                sources[start : start + batch_size], targets[start : start + batch_size], max_input_length=0
            )
            for result in scored:
                total -= sum(result.log_probs)
                count += len(result.log_probs)
        return total / count if count else None


def check_n_best(n_best: int, decoding: DecodingConfig) -> None:
    if isinstance(n_best, bool) or not isinstance(n_best, int) or n_best < 1:
        raise ConfigError(f"n_best must be an integer >= 1; got {n_best!r}", field="n_best")
    if n_best > decoding.beam_size:
        raise ConfigError(
            f"n-best {n_best} needs a beam of at least {n_best} (beam size is {decoding.beam_size})",
            field="n_best",
        )


def rerank(hypotheses: Sequence[Sequence[str]], scores: Sequence[float], alpha: float) -> list[list[str]]:
    """CTranslate2's finished hypotheses (tokens, the end token included where one ended) ranked as
    ``decoding.beam_search`` ranks them; returned without the end token, best first.

    CTranslate2's ``score`` is ``log p / n ** alpha``, ``n`` the tokens with the end token; ours is
    ``log p / ((5 + n) / 6) ** alpha`` (GNMT). A hypothesis cut at the step limit (no end token) ranks
    after every ended one, by its plain log-probability.
    """
    ranked = []
    for tokens, score in zip(hypotheses, scores, strict=True):
        n = len(tokens)
        log_p = score * n**alpha if alpha and n else score
        ended = n > 0 and tokens[-1] == END
        key = (1, log_p / ((5.0 + n) / 6.0) ** alpha) if ended else (0, log_p)
        ranked.append((key, list(tokens[:-1]) if ended else list(tokens)))
    ranked.sort(key=lambda item: item[0], reverse=True)
    return [tokens for _, tokens in ranked]


__all__ = ["CT2Translator", "QUANTIZATIONS", "convert", "ensure_cached", "rerank"]
