"""What every translation engine shares, without TensorFlow: the result record and the input rules.

``Translator`` (TensorFlow) and ``ct2.CT2Translator`` (CTranslate2) both return :class:`Translation`
records, cut inputs at ``max_source_tokens`` and sort lines into length batches the same way, so that
their outputs can be compared line for line (and equal, decoding in float32).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .alignment import Alignment

# translate_stream reads, sorts by length and decodes this many lines at a time.
STREAM_CHUNK = 1024


@dataclass(frozen=True)
class Translation:
    """One input line's result. ``truncated``: the line was longer than ``max_source_tokens`` tokens
    and only its start was translated. ``alignment``: where the model looked (only when asked for).
    ``hypotheses``: with n-best decoding, the ``n`` best translations, best first (the first is
    ``translation``); empty otherwise."""

    source: str
    translation: str
    truncated: bool = False
    alignment: Alignment | None = None
    hypotheses: tuple[str, ...] = ()


def max_source_tokens(max_source_length: int | None) -> int:
    """How many source tokens a translator reads of one line: twice the longest training source (at
    least 64), or 1,024 when the config does not say. Inputs far longer than anything seen in training
    are cut, so one huge line cannot stall a batch; each result says whether its line was."""
    return max(64, 2 * max_source_length) if max_source_length else 1024


def default_max_length(source_length: Any, max_target_length: int, minimum: Callable = min) -> Any:
    """The step limit when none is given: twice the source length (tokens) plus 10, within twice the
    longest training target (at least 16). ``source_length`` a Python int, or a tensor with ``minimum``
    its framework's element-wise minimum (``tf.minimum``)."""
    return minimum(max(16, 2 * max_target_length), 2 * source_length + 10)


def length_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices of the non-empty inputs (``lengths[i] > 0``), sorted by length (stable) and cut into
    batches of ``batch_size``, so that each batch pads little. Both engines batch with this, so a
    sentence meets the same batch, and the same default step limit, in either."""
    order = sorted((i for i, length in enumerate(lengths) if length), key=lambda i: lengths[i])
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
