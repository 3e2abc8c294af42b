"""Text conventions shared by every stage: normalisation, the same for training data and for the
sentences a model translates, and the joiner mark of word tokens."""

from __future__ import annotations

import unicodedata

# Marks the side of a punctuation token that was written against its neighbour (see vectorizers);
# normalisation removes it from input text, so a token never carries one by accident.
JOINER = "\uffed"


def normalize(text: str, lowercase: bool = False) -> str:
    """Control and format characters removed; every run of whitespace one space; then NFC."""
    if any(unicodedata.category(c) in ("Cc", "Cf") or c == JOINER for c in text):
        text = "".join(
            " " if c.isspace() else c
            for c in text
            if c.isspace() or (unicodedata.category(c) not in ("Cc", "Cf") and c != JOINER)
        )
    text = unicodedata.normalize("NFC", " ".join(text.split()))
    return unicodedata.normalize("NFC", text.lower()) if lowercase else text
