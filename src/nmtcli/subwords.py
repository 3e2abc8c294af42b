"""Subword vocabularies with SentencePiece: train on the training split, encode, decode, save, load.

A subword model splits text into pieces from a fixed inventory (unigram language model or BPE), so
every word can be written: rare words become several pieces, and a character never seen in training
becomes its UTF-8 bytes (byte fallback), never ``<unk>``. Ids 0-3 are ``<pad> <unk> <start> <end>``
as in the word and character vocabularies, so models, the pipeline and decoding need no change.

Our own normalisation (``text.normalize``) runs first; SentencePiece's is off (rule ``identity``,
extra whitespace kept), so decoding the encoding of a normalised text gives back exactly that text.

Files: a subword vocabulary is two files side by side, ``NAME.txt`` (the pieces, one per line, as a
word vocabulary: readable and covered by the run folder's checksums) and ``NAME.model`` (the
SentencePiece model). Loading checks that they agree. With a joint model (the default) the source
and target files are identical copies.

This module needs no TensorFlow: ``nmt prepare`` runs without it.
"""

from __future__ import annotations

import io
import os
import random
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from .config import SUBWORD_TYPES, PrepareConfig
from .errors import DataError
from .files import atomic_open
from .vectorizers import END, END_ID, PAD, PAD_ID, SPECIALS, START, START_ID, UNK, UNK_ID, Vocabulary, framed

MODEL_SUFFIX = ".model"
MAX_MODEL_BYTES = 64 * 2**20  # 8,000 pieces take ~0.2 MB; a million still fit
# SentencePiece's own limit on one training sentence, in bytes; longer ones it skips.
MAX_SENTENCE_BYTES = 4192
# SentencePiece reads U+2581 in its input as a space; our text passes it as a noncharacter (which
# becomes bytes) and gets it back on decoding, so that a literal U+2581 survives the round trip.
META, META_STANDIN = "\u2581", "\ufdd0"


def _escape(text: str) -> str:
    return text.replace(META, META_STANDIN) if META in text else text


def _unescape(text: str) -> str:
    return text.replace(META_STANDIN, META) if META_STANDIN in text else text


def _sentencepiece() -> Any:
    try:
        import sentencepiece
    except ImportError:  # a broken install; it is a dependency of nmtcli
        raise DataError("the sentencepiece package is missing; reinstall nmtcli") from None
    return sentencepiece


def train_subwords(
    sentences: Iterable[str],
    size: int = PrepareConfig.subword_size,
    model_type: str = PrepareConfig.subword_type,
    sample: int = PrepareConfig.subword_sample,
    seed: int = PrepareConfig.seed,
) -> bytes:
    """Train a SentencePiece model on ``sentences``; returns the serialized model.

    ``size`` is the number of pieces, specials and the 256 byte pieces included; it is an upper bound
    (a small corpus gets fewer pieces instead of an error). ``sample`` caps the sentences used: a
    uniform random sample of that many is kept while the rest streams past (``sample_sentences``), so
    a corpus of any size is read once and never held whole. The same sentences, settings and ``seed``
    give the same model, byte for byte, in any process: we sample, not SentencePiece, whose own
    sampling drew another sample in each process whatever its seed; and one training thread, since
    with two the model changed from run to run (and took longer on 2 shared cores). Nothing is written
    to disk: the model comes back as bytes.
    """
    if model_type not in SUBWORD_TYPES:
        raise ValueError(f"model_type must be one of {', '.join(SUBWORD_TYPES)}; got {model_type!r}")
    spm = _sentencepiece()
    model = io.BytesIO()
    counted = _Counting(sentences)
    sampled = sample_sentences(counted, sample, seed)
    spm.set_random_generator_seed(seed)
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sampled),
            model_writer=model,
            model_type=model_type,
            vocab_size=size,
            hard_vocab_limit=False,
            byte_fallback=True,
            normalization_rule_name="identity",
            remove_extra_whitespaces=False,
            pad_id=PAD_ID,
            unk_id=UNK_ID,
            bos_id=START_ID,
            eos_id=END_ID,
            pad_piece=PAD,
            unk_piece=UNK,
            bos_piece=START,
            eos_piece=END,
            input_sentence_size=0,  # all of `sampled`
            shuffle_input_sentence=False,
            max_sentence_length=MAX_SENTENCE_BYTES,
            num_threads=1,
            minloglevel=2,
        )
    except RuntimeError as exc:
        raise DataError(f"cannot train a subword model on {counted.count} sentences ({exc})") from None
    return model.getvalue()


def sample_sentences(sentences: Iterable[str], size: int, seed: int) -> list[str]:
    """A uniform random sample of ``size`` of ``sentences`` (all of them when there are no more),
    drawn while they stream past (reservoir sampling) with a generator seeded by ``seed``: the same
    sentences and seed give the same sample."""
    rng = random.Random(seed)
    kept: list[str] = []
    for seen, sentence in enumerate(sentences):
        if seen < size:
            kept.append(sentence)
        elif (slot := rng.randrange(seen + 1)) < size:
            kept[slot] = sentence
    return kept


class _Counting:
    """An iterator over non-empty sentences that counts them (for messages)."""

    def __init__(self, sentences: Iterable[str]):
        self._it = iter(sentences)
        self.count = 0

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        while True:
            sentence = next(self._it)
            if sentence:
                self.count += 1
                return _escape(sentence)


class SubwordTokenizer:
    """Text <-> SentencePiece pieces (strings); what ``Translator`` shows as source tokens."""

    level = "subword"

    def __init__(self, processor: Any):
        self.processor = processor

    def tokenize(self, text: str) -> list[str]:
        return self.processor.encode(_escape(text), out_type=str)

    def detokenize(self, tokens: Iterable[str]) -> str:
        return _unescape(self.processor.decode_pieces(list(tokens)))


def model_path(path: str | os.PathLike) -> Path:
    """Where the SentencePiece model of the piece list ``path`` lies: ``vocab/x.txt -> vocab/x.model``."""
    return Path(path).with_suffix(MODEL_SUFFIX)


class SubwordVectorizer:
    """A SentencePiece model as a vectorizer: the interface of ``vectorizers.Vectorizer``."""

    level = "subword"

    def __init__(self, model: bytes):
        spm = _sentencepiece()
        processor = spm.SentencePieceProcessor()
        try:
            processor.LoadFromSerializedProto(model)
        except (RuntimeError, OSError, TypeError) as exc:
            raise DataError(f"not a SentencePiece model ({' '.join(str(exc).split())[:200]})") from None
        pieces = [processor.id_to_piece(i) for i in range(processor.get_piece_size())]
        if tuple(pieces[: len(SPECIALS)]) != SPECIALS or not processor.is_byte(len(SPECIALS)):
            raise DataError(
                "this SentencePiece model was not made by nmtcli (ids 0-3 must be "
                f"{', '.join(SPECIALS)}, with byte fallback); run `nmt prepare` again"
            )
        self.model = model
        self.processor = processor
        self.tokenizer = SubwordTokenizer(processor)
        self.vocabulary = Vocabulary(pieces)

    def __len__(self) -> int:
        return len(self.vocabulary)

    def encode(self, text: str, *, start: bool = False, end: bool = False) -> list[int]:
        return framed(self.processor.encode(_escape(text), out_type=int), start, end)

    def decode(self, ids: Iterable[int]) -> str:
        """The text of ``ids`` up to the first end id; pad and start ids are dropped, ids out of range
        read as ``<unk>`` (as ``Vocabulary.decode``)."""
        size = len(self.vocabulary)
        kept = []
        for i in ids:
            i = int(i)
            if i == END_ID:
                break
            if i in (PAD_ID, START_ID):
                continue
            kept.append(i if 0 <= i < size else UNK_ID)
        return _unescape(self.processor.decode(kept))

    def save(self, path: str | os.PathLike) -> None:
        """The piece list at ``path`` and the model beside it (``model_path``), each written atomically."""
        with atomic_open(model_path(path), "wb") as handle:
            handle.write(self.model)
        self.vocabulary.save(path)

    @classmethod
    def load(cls, path: str | os.PathLike, model: str | os.PathLike | None = None) -> SubwordVectorizer:
        """Read ``path`` (piece list) and its model, ``model`` (default: beside it, ``model_path``);
        they must agree."""
        path = Path(path)
        listed = Vocabulary.load(path)
        model_file = Path(model) if model is not None else model_path(path)
        try:
            if not model_file.is_file():
                raise DataError(f"{model_file}: subword model is missing; run `nmt prepare` again")
            if model_file.stat().st_size > MAX_MODEL_BYTES:
                raise DataError(f"{model_file}: too large for a subword model")
            serialized = model_file.read_bytes()
        except OSError as exc:
            raise DataError(f"{model_file}: cannot read the subword model ({exc.strerror or exc})") from None
        try:
            vectorizer = cls(serialized)
        except DataError as exc:
            raise DataError(f"{model_file}: {exc}") from None
        if vectorizer.vocabulary.tokens != listed.tokens:
            raise DataError(
                f"{model_file}: does not match its piece list {path.name}; run `nmt prepare` again"
            )
        return vectorizer


# --------------------------------------------------------------------------------------------------
# Preparing: what ``corpus.prepare`` calls once the splits are written


def _split_sentences(path: Path, column: int | None) -> Iterator[str]:
    """The sentences of a prepared split file: one side (``column`` 0 or 1), or both in turn."""
    with open(path, encoding="utf-8", newline="\n") as handle:
        for line in handle:
            fields = line.rstrip("\n").split("\t")
            if column is None:
                yield from fields
            else:
                yield fields[column]


def prepare_subwords(
    out: Path, config: Any, given: tuple[SubwordVectorizer, SubwordVectorizer] | None = None
) -> dict[str, Any]:
    """Train the subword model(s) on ``out/train.tsv`` and save them as ``out/vocab/{side}.subword.*``.

    ``config`` is the ``PrepareConfig``. ``given`` (source, target): save those models instead of
    training new ones (``nmt prepare --vocab-from``). Returns the manifest entries: ``vocab_size``,
    ``max_length`` (longest training sentence in pieces, per side), ``unk_rate`` (valid and test; zero
    by construction with byte fallback, measured all the same) and ``subword`` (the settings used).
    """
    sides = ("source", "target")
    train = out / "train.tsv"
    common = dict(
        size=config.subword_size,
        model_type=config.subword_type,
        sample=config.subword_sample,
        seed=config.seed,
    )
    if given is not None:
        vectorizers = dict(zip(sides, given, strict=True))
    elif config.joint_subwords:
        joint = SubwordVectorizer(train_subwords(_split_sentences(train, None), **common))
        vectorizers = dict.fromkeys(sides, joint)
    else:
        vectorizers = {
            side: SubwordVectorizer(train_subwords(_split_sentences(train, column), **common))
            for column, side in enumerate(sides)
        }
    for side in sides:
        vectorizers[side].save(out / "vocab" / f"{side}.subword.txt")
    longest = dict.fromkeys(sides, 0)
    for column, side in enumerate(sides):
        for sentence in _split_sentences(train, column):
            longest[side] = max(longest[side], len(vectorizers[side].encode(sentence)))
    unk_rate = {}
    for split in ("valid", "test"):
        rates = {}
        for column, side in enumerate(sides):
            total = unknown = 0
            for sentence in _split_sentences(out / f"{split}.tsv", column):
                ids = vectorizers[side].encode(sentence)
                total += len(ids)
                unknown += ids.count(UNK_ID)
            rates[side] = unknown / total if total else 0.0
        unk_rate[split] = rates
    return {
        "vocab_size": {side: len(vectorizers[side]) for side in sides},
        "max_length": longest,
        "unk_rate": unk_rate,
        "subword": _settings(config, given),
    }


def _settings(config: Any, given: tuple[SubwordVectorizer, SubwordVectorizer] | None) -> dict[str, Any]:
    """The manifest's ``subword`` entry: the settings trained with, or what the given models are."""
    if given is not None:
        source, target = given
        return {
            "type": None,  # the run's, not recorded in its models' readable parts
            "size": len(source),
            "joint": source.model == target.model,
            "sample": None,
            "byte_fallback": True,
        }
    return {
        "type": config.subword_type,
        "size": config.subword_size,
        "joint": config.joint_subwords,
        "sample": config.subword_sample,
        "byte_fallback": True,
    }
