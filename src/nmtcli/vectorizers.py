"""Word- and character-level vectorizers: tokenize, index, encode, decode, save, load.

The subword level lives in ``subwords.py``; ``Vectorizer.load`` hands it over.

Word tokenization splits punctuation off words and is exactly reversible. A punctuation token that
was written against its neighbour without a space carries a joiner mark (U+FFED) on that side, so
``"¿Qué?"`` becomes ``["¿￭", "Qué", "￭?"]`` and ``detokenize`` restores ``"¿Qué?"``, while a French
``"Va !"`` keeps its space: ``["Va", "!"]``. Apostrophes and hyphens inside words stay
(``"J'ai"``, ``"well-known"``). Character level treats every character, spaces included, as a token.

This module needs no TensorFlow: ``nmt prepare`` runs without it.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import regex

from .errors import DataError
from .files import atomic_write_text
from .text import JOINER

PAD, UNK, START, END = "<pad>", "<unk>", "<start>", "<end>"
SPECIALS = (PAD, UNK, START, END)
PAD_ID, UNK_ID, START_ID, END_ID = range(4)

# Words are letters, digits and combining marks (so Devanagari or Thai words stay whole), with
# apostrophes and hyphens inside; any other character is a punctuation piece with its marks.
_PIECE = regex.compile(r"[\w\p{M}]+(?:['’\-][\w\p{M}]+)*|[^\w\s\p{M}]\p{M}*")
_WORD_START = regex.compile(r"[\w\p{M}]")


def _is_word(piece: str) -> bool:
    return _WORD_START.match(piece) is not None


class WordTokenizer:
    """Whitespace and punctuation tokenizer with joiner marks; see the module docstring."""

    level = "word"

    def tokenize(self, text: str) -> list[str]:
        tokens: list[str] = []
        for chunk in text.split():
            pieces = _PIECE.findall(chunk)
            if len(pieces) == 1:
                tokens.append(pieces[0])
                continue
            marked = list(pieces)
            # One mark per boundary inside the chunk, always on a punctuation piece: words stay clean.
            for i in range(len(pieces) - 1):
                if not _is_word(pieces[i + 1]):
                    marked[i + 1] = JOINER + marked[i + 1]
                else:
                    marked[i] = marked[i] + JOINER
            tokens.extend(marked)
        return tokens

    def detokenize(self, tokens: Iterable[str]) -> str:
        out: list[str] = []
        glue_next = True  # no space before the first token
        for token in tokens:
            if not token:
                continue
            starts = token.startswith(JOINER)
            ends = token.endswith(JOINER) and len(token) > 1
            core = token.strip(JOINER)
            if out and not (glue_next or starts):
                out.append(" ")
            out.append(core)
            glue_next = ends
        return "".join(out)


class CharTokenizer:
    """Every character is a token; detokenizing is concatenation."""

    level = "char"

    def tokenize(self, text: str) -> list[str]:
        return list(text)

    def detokenize(self, tokens: Iterable[str]) -> str:
        return "".join(tokens)


def make_tokenizer(level: str) -> WordTokenizer | CharTokenizer:
    if level == "word":
        return WordTokenizer()
    if level == "char":
        return CharTokenizer()
    raise ValueError(f"unknown level {level!r}")


class Vocabulary:
    """A fixed token <-> id mapping whose first four entries are pad, unk, start and end."""

    def __init__(self, tokens: Sequence[str]):
        if tuple(tokens[: len(SPECIALS)]) != SPECIALS:
            raise DataError(f"a vocabulary must start with {', '.join(SPECIALS)}")
        self.tokens = list(tokens)
        self.index = {token: i for i, token in enumerate(self.tokens)}
        if len(self.index) != len(self.tokens):
            raise DataError("a vocabulary lists the same token twice")

    def __len__(self) -> int:
        return len(self.tokens)

    @classmethod
    def build(
        cls, token_lists: Iterable[Sequence[str]], max_size: int | None = None, min_count: int = 1
    ) -> Vocabulary:
        """Most frequent tokens first (ties broken by the token), specials reserved at the front."""
        counts: Counter[str] = Counter()
        for tokens in token_lists:
            counts.update(tokens)
        return cls.from_counts(counts, max_size, min_count)

    @classmethod
    def from_counts(cls, counts: Counter[str], max_size: int | None = None, min_count: int = 1) -> Vocabulary:
        """Like :meth:`build`, from token counts already made."""
        counts = Counter(counts)
        for special in SPECIALS:
            counts.pop(special, None)
        ranked = sorted((t for t, c in counts.items() if c >= min_count), key=lambda t: (-counts[t], t))
        if max_size is not None:
            ranked = ranked[: max(0, max_size - len(SPECIALS))]
        return cls([*SPECIALS, *ranked])

    def encode(self, tokens: Iterable[str]) -> list[int]:
        index = self.index
        return [index.get(token, UNK_ID) for token in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Tokens up to the first end id; pad and start ids are dropped."""
        tokens = []
        for i in ids:
            i = int(i)
            if i == END_ID:
                break
            if i in (PAD_ID, START_ID):
                continue
            tokens.append(self.tokens[i] if 0 <= i < len(self.tokens) else UNK)
        return tokens

    def save(self, path: str | os.PathLike) -> None:
        if any("\n" in token for token in self.tokens):
            raise DataError("a vocabulary token contains a line break and cannot be saved")
        atomic_write_text(path, "".join(token + "\n" for token in self.tokens))

    @classmethod
    def load(cls, path: str | os.PathLike) -> Vocabulary:
        path = Path(path)
        try:
            with open(path, encoding="utf-8", newline="") as handle:  # keep "\r" tokens intact
                text = handle.read()
        except FileNotFoundError:
            raise DataError(f"{path}: vocabulary file is missing") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"{path}: cannot read vocabulary ({exc})") from None
        # split("\n"), not splitlines(): a character vocabulary may hold U+2028 and friends.
        tokens = text.split("\n")
        if tokens and tokens[-1] == "":
            tokens.pop()
        try:
            return cls(tokens)
        except DataError as exc:
            raise DataError(f"{path}: {exc}") from None


def framed(ids: list[int], start: bool, end: bool) -> list[int]:
    """``ids`` with the start id before them and the end id after them, as asked."""
    return [START_ID] * start + ids + [END_ID] * end


class Vectorizer:
    """A tokenizer plus a vocabulary: text <-> id sequences for one side of the corpus."""

    def __init__(self, level: str, vocabulary: Vocabulary):
        self.level = level
        self.tokenizer = make_tokenizer(level)
        self.vocabulary = vocabulary

    def __len__(self) -> int:
        return len(self.vocabulary)

    def encode(self, text: str, *, start: bool = False, end: bool = False) -> list[int]:
        return framed(self.vocabulary.encode(self.tokenizer.tokenize(text)), start, end)

    def decode(self, ids: Iterable[int]) -> str:
        return self.tokenizer.detokenize(self.vocabulary.decode(ids))

    def save(self, path: str | os.PathLike) -> None:
        self.vocabulary.save(path)

    @classmethod
    def load(cls, level: str, path: str | os.PathLike) -> Vectorizer:
        """The vectorizer saved at ``path``; at subword level a ``subwords.SubwordVectorizer`` (same
        interface), whose SentencePiece model lies beside ``path``."""
        if level == "subword":
            from .subwords import SubwordVectorizer

            return SubwordVectorizer.load(path)  # type: ignore[return-value]
        return cls(level, Vocabulary.load(path))
