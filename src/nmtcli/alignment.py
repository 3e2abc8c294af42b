"""Where a model looked while translating one sentence: a plain record (NumPy, no TensorFlow).

``Translator.attend`` makes them; ``attention`` draws them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .text import JOINER

# Characters that would be invisible or break a label, shown as a visible stand-in.
_VISIBLE = {" ": "\u2423", "\t": "\u21e5"}


@dataclass(frozen=True, eq=False)
class Alignment:
    """Where the model looked in the source while writing each output token, for one sentence.

    ``source_tokens``: the model's tokens of the (normalised, possibly cut) input, words or characters,
    joiner marks kept. ``unknown[i]``: source token ``i`` is outside the vocabulary (the model saw
    ``<unk>``). ``target_tokens``: the generated tokens, ending with ``<end>`` when the model ended the
    sentence before ``max_length``. ``weights [len(target_tokens), len(source_tokens)]`` float32: row
    ``t`` is the attention of output step ``t``; each row sums to 1. ``translation`` is exactly what
    ``Translator.translate`` returns for the line.
    """

    source: str
    translation: str
    source_tokens: list[str]
    target_tokens: list[str]
    weights: np.ndarray
    unknown: list[bool]

    @property
    def source_labels(self) -> list[str]:
        """Source tokens as shown in pictures: joiner marks dropped, spaces visible."""
        return [display_token(token) for token in self.source_tokens]

    @property
    def target_labels(self) -> list[str]:
        return [display_token(token) for token in self.target_tokens]

    @property
    def empty(self) -> bool:
        """No source tokens (a blank line): nothing to draw."""
        return not self.source_tokens


def display_token(token: str) -> str:
    """A token as a readable label: ``"¿￭"`` -> ``"¿"``, ``" "`` -> ``"␣"``."""
    if token in _VISIBLE:
        return _VISIBLE[token]
    stripped = token.strip(JOINER)
    if not stripped:
        return token
    return "".join(c if c.isprintable() else f"U+{ord(c):04X}" for c in stripped)
