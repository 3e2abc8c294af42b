"""Export a trained model as a TensorFlow SavedModel that translates strings into strings.

::

    export("nmt-workspace/runs/20261121-101500-gru-attention-word", "nmt-export")
    # elsewhere, with TensorFlow alone:
    model = tf.saved_model.load("nmt-export")
    model.signatures["serving_default"](tf.constant(["Go."]))["translations"]

The graph does everything :meth:`Translator.translate` does: normalise, tokenise, look tokens up,
truncate, sort by length into batches of 64, greedy-decode each batch with the model's ``encode`` and
``next`` (``decoding.greedy_decode``, at most ``decoding.default_max_length`` tokens), detokenise and
restore the input order. Loading it needs neither
nmtcli nor Keras, and TensorFlow Serving can serve it.

Tokenisation uses RE2 regular expressions (``tf.strings.regex_replace``) whose character classes are
spelled out code point by code point from the Python side at export time: the word characters from the
``regex`` module that :class:`WordTokenizer` uses, the whitespace and the control/format characters from
``str.isspace`` and ``unicodedata`` as :func:`text.normalize` uses them. So the graph does not depend on
the Unicode version of RE2's own tables, and for text in NFC it tokenises exactly as the Python code.

Where the graph differs from ``nmt translate``:

- No NFC normalisation: core TensorFlow has no Unicode normalisation op. Text already in NFC (what
  keyboards and nearly all files produce; every line of the Tatoeba spa/fra corpora) is unaffected.
  Decomposed text (``"e\\u0301"`` for ``"é"``) or singletons such as U+212B ANGSTROM SIGN are not
  composed, so their words are looked up as they are, usually as unknown.
- Lowercasing (only for data prepared with ``--lowercase``) uses ``tf.strings.lower``, ICU's full
  case mapping, instead of ``str.lower``; they differ on about 40 capital letters added in Unicode 14
  (Vithkuqi and a few Latin letters), which TensorFlow's ICU tables do not yet know, and no NFC
  follows the lowercasing.
- Bytes that are not valid UTF-8 become U+FFFD instead of an error; there is no warning when a line
  is cut to the longest source the translator accepts.

Subword models: the graph holds the run's SentencePiece model(s) and runs them with the ops of
``tensorflow-text`` (an optional extra, ``pip install 'nmtcli[export]'``), so loading such an export
needs ``import tensorflow_text`` before ``tf.saved_model.load`` (it registers the ops); nmtcli is
still not needed. Normalisation is the same graph code as for the other levels; SentencePiece's own
is off in our models (``subwords.train_subwords``), so the pieces are those of ``nmt translate``.
"""

from __future__ import annotations

import functools
import os
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import regex
import tensorflow as tf

from . import __version__
from .decoding import default_max_length, greedy_decode
from .errors import ModelError
from .files import (
    atomic_write_json,
    check_replaceable,
    replacing_folder,
)
from .run_folder import RunFolder
from .subwords import META, META_STANDIN
from .translator import Translator
from .vectorizers import END_ID, JOINER, PAD_ID, START_ID, UNK_ID

SIGNATURE = "serving_default"
INPUT_NAME = "sentences"
OUTPUT_NAME = "translations"
EXPORT_INFO = "nmt-export.json"
# What an export folder holds, for folders written before nmt listed its files (files.WRITTEN_LIST).
EXPORT_FILES = ("saved_model.pb", "fingerprint.pb", "variables/*", "assets/*", EXPORT_INFO)
# Translator.translate's default batch size: batches of the same sentences give the same numbers.
BATCH_SIZE = 64
# Marks piece boundaries while tokenising; a control character, so normalised text never holds it.
_SEP = "\x01"


# --------------------------------------------------------------------------------------------------
# Character classes for RE2


def _all_characters() -> str:
    """Every code point but the surrogates, in order."""
    return "".join(map(chr, range(0xD800))) + "".join(map(chr, range(0xE000, 0x110000)))


def _ranges(codes: list[int]) -> list[tuple[int, int]]:
    ranges: list[list[int]] = []
    for code in codes:
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    return [(low, high) for low, high in ranges]


def code_point_ranges(member: str | Callable[[str], bool]) -> list[tuple[int, int]]:
    """Ranges ``(first, last)`` of the code points (surrogates excepted) that ``member`` accepts:
    a predicate on one character, or a ``regex`` pattern that matches one character."""
    if callable(member):
        return _ranges([ord(c) for c in _all_characters() if member(c)])
    found = regex.compile(f"(?:{member})+")
    runs = []
    for match in found.finditer(_all_characters()):
        low, high = ord(match.group()[0]), ord(match.group()[-1])
        runs.extend([(low, 0xD7FF), (0xE000, high)] if low < 0xD800 < high else [(low, high)])
    return runs


def re2_class(ranges: list[tuple[int, int]], negate: bool = False, extra: str = "") -> str:
    """An RE2 bracket expression of code point ``ranges`` plus the RE2 class items in ``extra``."""
    items = "".join(
        f"\\x{{{low:x}}}" if low == high else f"\\x{{{low:x}}}-\\x{{{high:x}}}" for low, high in ranges
    )
    return f"[{'^' if negate else ''}{items}{extra}]"


def _is_dropped(char: str) -> bool:
    """What normalize removes: control and format characters that are not whitespace, and joiners."""
    return char == JOINER or (not char.isspace() and unicodedata.category(char) in ("Cc", "Cf"))


@functools.cache
def _normalize_classes() -> tuple[str, str]:
    """RE2 classes of what normalize turns into a space, and of what it removes."""
    return re2_class(code_point_ranges(str.isspace)), re2_class(code_point_ranges(_is_dropped))


@dataclass(frozen=True)
class _WordPatterns:
    piece: str  # one piece of WordTokenizer: a word with inner apostrophes/hyphens, or a punctuation mark
    before_word: str  # a piece boundary followed by a word character
    before_punctuation: str  # a piece boundary followed by anything else


@functools.cache
def _word_patterns() -> _WordPatterns:
    word_chars = code_point_ranges(r"[\w\p{M}]")  # as vectorizers._PIECE spells a word character
    word = re2_class(word_chars)
    # After normalize, a space is the only whitespace left.
    not_word = re2_class(word_chars, negate=True, extra=" " + _SEP)
    marks = re2_class(code_point_ranges(r"\p{M}"))
    return _WordPatterns(
        piece=f"({word}+(?:['\\x{{2019}}\\-]{word}+)*|{not_word}{marks}*)",
        before_word=f"{_SEP}({word})",
        before_punctuation=f"{_SEP}({not_word})",
    )


# --------------------------------------------------------------------------------------------------
# Text in the graph


class GraphNormalizer:
    """:func:`text.normalize` in TensorFlow ops: ``normalize(lines [N] string) -> [N] string``.
    Differences from the Python code: see the module docstring."""

    def __init__(self, lowercase: bool = False):
        self.lowercase = lowercase
        self._space, self._drop = _normalize_classes()

    def normalize(self, lines: tf.Tensor) -> tf.Tensor:
        text = tf.strings.unicode_transcode(
            lines, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD
        )
        # Drop before collapsing, so that "a \x00 b" gives one space, as in normalize.
        text = tf.strings.regex_replace(text, self._drop, "")
        text = tf.strings.regex_replace(text, self._space + "+", " ")
        text = tf.strings.regex_replace(text, "^ | $", "")
        if self.lowercase:
            text = tf.strings.lower(text, encoding="utf-8")
        return text


class GraphText(GraphNormalizer):
    """:func:`text.normalize` plus a word or character tokenizer, and detokenisation, in TensorFlow ops.

    ``normalize(lines [N] string) -> [N] string``; ``tokenize(lines [N]) -> tokens [N, (T)] string``
    (ragged); ``detokenize(tokens [N, (T)]) -> [N] string``. Differences from the Python code: see the
    module docstring.
    """

    def __init__(self, level: str, lowercase: bool = False):
        if level not in ("word", "char"):
            raise ModelError(f"cannot tokenise {level!r}-level text with GraphText")
        super().__init__(lowercase)
        self.level = level
        self.patterns = _word_patterns() if level == "word" else None

    def tokenize(self, text: tf.Tensor) -> tf.RaggedTensor:
        """Tokens of normalised text."""
        if self.level == "char":
            return tf.strings.unicode_split(text, "UTF-8")
        p = self.patterns
        # Each piece is followed by a separator; within a chunk (no space), the joiner goes on the
        # punctuation side of each boundary: "¿Qué?" -> "¿￭|Qué|￭?|".
        marked = tf.strings.regex_replace(text, p.piece, "\\1" + _SEP)
        marked = tf.strings.regex_replace(marked, p.before_word, JOINER + _SEP + "\\1")
        marked = tf.strings.regex_replace(marked, p.before_punctuation, _SEP + JOINER + "\\1")
        # Every space now follows a separator, so it is redundant.
        pieces = tf.strings.split(tf.strings.regex_replace(marked, " ", ""), sep=_SEP)
        return tf.ragged.boolean_mask(pieces, tf.strings.length(pieces) > 0)

    def detokenize(self, tokens: tf.RaggedTensor) -> tf.Tensor:
        if self.level == "char":
            return tf.strings.reduce_join(tokens, axis=-1)
        joined = tf.strings.reduce_join(tokens, axis=-1, separator=" ")
        # A joiner glues its token to the neighbour on its side: drop it and the space there.
        return tf.strings.regex_replace(joined, f"{JOINER} {JOINER}|{JOINER} | {JOINER}|{JOINER}", "")


# --------------------------------------------------------------------------------------------------
# Text <-> ids in the graph, per level


class TokenCodec(tf.Module):
    """Word or character text <-> ids in the graph: :class:`GraphText` and the two vocabularies.

    ``encode(lines [N] string) -> ids [N, (S)] int64`` (normalised, tokenised, looked up; unknown
    tokens ``UNK_ID``); ``decode(ids [N, (T)]) -> [N] string`` (special ids already dropped).
    """

    def __init__(self, level: str, lowercase: bool, source_tokens: list[str], target_tokens: list[str]):
        super().__init__(name="token_codec")
        self.text = GraphText(level, lowercase)
        self.source_vocabulary = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(source_tokens), tf.range(len(source_tokens), dtype=tf.int64)
            ),
            default_value=UNK_ID,
        )
        self.target_tokens = tf.constant(target_tokens)

    def encode(self, lines: tf.Tensor) -> tf.RaggedTensor:
        tokens = self.text.tokenize(self.text.normalize(lines))
        return tf.ragged.map_flat_values(self.source_vocabulary.lookup, tokens)

    def decode(self, ids: tf.RaggedTensor) -> tf.Tensor:
        return self.text.detokenize(tf.gather(self.target_tokens, ids))


def _tensorflow_text() -> Any:
    """The ``tensorflow_text`` module, or a one-line ModelError saying how to install it."""
    try:
        import tensorflow_text
    except ImportError:
        raise ModelError(
            "exporting a subword model needs the tensorflow-text package: pip install 'nmtcli[export]'"
        ) from None
    except Exception as exc:  # its ops library may not load into this TensorFlow (a mismatched release)
        raise ModelError(
            f"tensorflow-text does not load with TensorFlow {tf.__version__} "
            f"({' '.join(str(exc).split())[:200]}); install the tensorflow-text release that matches "
            "TensorFlow: pip install 'nmtcli[export]'"
        ) from None
    return tensorflow_text


class SubwordCodec(tf.Module):
    """Subword text <-> ids in the graph, with ``tensorflow_text.SentencepieceTokenizer`` over the run's
    SentencePiece model(s) (one when joint): the same interface as :class:`TokenCodec`.

    As ``subwords.SubwordVectorizer``: a literal U+2581 passes as U+FDD0 (SentencePiece would read it
    as a space) and comes back on decoding.
    """

    def __init__(self, lowercase: bool, source_model: bytes, target_model: bytes):
        super().__init__(name="subword_codec")
        text = _tensorflow_text()
        self.normalizer = GraphNormalizer(lowercase)
        self.source_pieces = text.SentencepieceTokenizer(model=source_model, out_type=tf.int32)
        self.target_pieces = (
            self.source_pieces
            if target_model == source_model
            else text.SentencepieceTokenizer(model=target_model, out_type=tf.int32)
        )

    def encode(self, lines: tf.Tensor) -> tf.RaggedTensor:
        text = self.normalizer.normalize(lines)
        escaped = tf.strings.regex_replace(text, _re2_char(META), META_STANDIN)
        return tf.cast(self.source_pieces.tokenize(escaped), tf.int64)

    def decode(self, ids: tf.RaggedTensor) -> tf.Tensor:
        text = self.target_pieces.detokenize(tf.cast(ids, tf.int32))
        return tf.strings.regex_replace(text, _re2_char(META_STANDIN), META)


def _re2_char(char: str) -> str:
    return f"\\x{{{ord(char):x}}}"


def make_codec(translator: Translator) -> TokenCodec | SubwordCodec:
    """The text <-> ids codec of ``translator``'s level; subword needs tensorflow-text (ModelError)."""
    if translator.config.level == "subword":
        return SubwordCodec(translator.lowercase, translator.source.model, translator.target.model)
    return TokenCodec(
        translator.config.level,
        translator.lowercase,
        translator.source.vocabulary.tokens,
        translator.target.vocabulary.tokens,
    )


# --------------------------------------------------------------------------------------------------
# The exported module


class ExportedTranslator(tf.Module):
    """A translator as a ``tf.Module``.

    ``translate(sentences [N] string) -> {"translations": [N] string}``, also the serving signature.
    """

    def __init__(self, translator: Translator):
        super().__init__(name="nmt_translator")
        self.model = translator.model
        self.codec = make_codec(translator)
        self.max_source_tokens = translator.max_source_tokens
        self.max_target_length = translator.config.max_target_length

    def encode(self, lines: tf.Tensor) -> tf.RaggedTensor:
        """``lines [N] string -> ids [N, (S)] int32``, cut to ``max_source_tokens``."""
        return tf.cast(self.codec.encode(lines)[:, : self.max_source_tokens], tf.int32)

    def decode(self, ids: tf.Tensor) -> tf.Tensor:
        """``ids [B, T] int32 -> [B] string``; as the target vectorizer's ``decode``, given that greedy
        search pads after the end id."""
        keep = (ids != PAD_ID) & (ids != START_ID) & (ids != END_ID)
        return self.codec.decode(tf.ragged.boolean_mask(ids, keep))

    def greedy(self, source: tf.Tensor) -> tf.Tensor:
        """``source [B, S] int32 -> ids [B, T]``, with ``decoding.default_max_length`` steps at most."""
        max_length = default_max_length(tf.shape(source)[1], self.max_target_length)
        return greedy_decode(self.model, source, max_length)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=INPUT_NAME)])
    def translate(self, sentences: tf.Tensor) -> dict[str, tf.Tensor]:
        ids = self.encode(sentences)
        lengths = ids.row_lengths()
        nonempty = tf.reshape(tf.where(lengths > 0), [-1])
        empty = tf.reshape(tf.where(lengths == 0), [-1])
        # As Translator.translate: non-empty lines sorted by length (stable), in batches of 64.
        order = tf.gather(nonempty, tf.argsort(tf.gather(lengths, nonempty), stable=True))
        count = tf.size(order, out_type=tf.int64)

        def batch(start, done):
            chunk = order[start : start + BATCH_SIZE]
            translated = self.decode(self.greedy(tf.gather(ids, chunk).to_tensor(default_value=PAD_ID)))
            return start + BATCH_SIZE, tf.concat([done, translated], axis=0)

        _, translated = tf.while_loop(
            lambda start, done: start < count,
            batch,
            (tf.constant(0, tf.int64), tf.zeros([0], tf.string)),
            shape_invariants=(tf.TensorShape([]), tf.TensorShape([None])),
        )
        # Back to the input order; empty lines translate to "".
        everything = tf.concat([translated, tf.fill(tf.shape(empty), "")], axis=0)
        position = tf.math.invert_permutation(tf.concat([order, empty], axis=0))
        return {OUTPUT_NAME: tf.gather(everything, position)}


# --------------------------------------------------------------------------------------------------
# Writing the export folder


@dataclass(frozen=True)
class ExportResult:
    output: Path
    run_dir: Path
    arch: str
    level: str
    lowercase: bool

    @property
    def imports(self) -> tuple[str, ...]:
        """Modules to import before ``tf.saved_model.load`` (they register the graph's custom ops)."""
        return ("tensorflow_text",) if self.level == "subword" else ()

    @property
    def signature(self) -> str:
        return f"{SIGNATURE}({INPUT_NAME}: string [N]) -> {{{OUTPUT_NAME}: string [N]}}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "output": str(self.output),
            "run": str(self.run_dir),
            "arch": self.arch,
            "level": self.level,
            "lowercase": self.lowercase,
            "imports": list(self.imports),
            "signature": SIGNATURE,
            "inputs": {INPUT_NAME: "string [N]"},
            "outputs": {OUTPUT_NAME: "string [N]"},
        }


def export(run_dir: str | os.PathLike, output: str | os.PathLike) -> ExportResult:
    """Write the model in ``run_dir`` to the folder ``output`` as a SavedModel with one signature,
    ``serving_default(sentences: string [N]) -> {"translations": string [N]}``.

    The folder also holds ``nmt-export.json`` (where it came from). Nothing at ``output`` changes
    unless the whole export succeeds; an existing folder is replaced only if it is empty or an export.
    """
    run_dir, output = Path(run_dir), Path(output)
    check_replaceable(output, EXPORT_INFO, "an nmt export", ModelError, known=EXPORT_FILES)
    translator = Translator.load(run_dir)
    module = ExportedTranslator(translator)
    result = ExportResult(
        output, run_dir, translator.config.arch, translator.config.level, translator.lowercase
    )
    try:
        with replacing_folder(output, EXPORT_FILES) as tmp_dir:  # a killed export's is cleared first
            tf.saved_model.save(module, str(tmp_dir), signatures={SIGNATURE: module.translate})
            atomic_write_json(
                tmp_dir / EXPORT_INFO,
                {
                    **result.to_dict(),
                    "output": output.name,
                    "run": str(run_dir.resolve()),
                    "config": RunFolder(run_dir).config().model.to_dict(),
                    "batch_size": BATCH_SIZE,
                    "max_source_tokens": translator.max_source_tokens,
                    "nmtcli_version": __version__,
                    "tensorflow_version": tf.__version__,
                },
            )
    except OSError as exc:
        raise ModelError(
            f"{output}: cannot write the export ({exc.strerror or exc}); nothing was changed"
        ) from None
    return result
