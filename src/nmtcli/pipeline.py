"""The tf.data input pipeline: encode, bucket by length, pad per batch, shift for teacher forcing.

Each element is ``((source [B, S], target_in [B, T]), target_out [B, T])`` with id 0 as padding; the
target shift (``<start> a b`` in, ``a b <end>`` out) happens here and nowhere else.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable

import numpy as np
import tensorflow as tf

from .vectorizers import PAD_ID, Vectorizer


class EncodedPairs:
    """Id sequences for pairs, stored flat: values plus row lengths.

    ``pairs`` is read once, one pair at a time, so an iterator over a file never has all of its
    text (or lists of Python ints) in memory at once: 4 bytes per id and 8 per sentence remain.
    """

    def __init__(self, pairs: Iterable[tuple[str, str]], source: Vectorizer, target: Vectorizer):
        values = {"source": array("i"), "target": array("i")}
        lengths = {"source": array("q"), "target": array("q")}
        for source_text, target_text in pairs:
            for side, ids in (
                ("source", source.encode(source_text)),
                ("target", target.encode(target_text, start=True, end=True)),
            ):
                values[side].extend(ids)
                lengths[side].append(len(ids))
        self.source_values = np.frombuffer(values["source"], np.int32)
        self.target_values = np.frombuffer(values["target"], np.int32)
        self.source_lengths = np.frombuffer(lengths["source"], np.int64)
        self.target_lengths = np.frombuffer(lengths["target"], np.int64)

    def __len__(self) -> int:
        return len(self.source_lengths)

    @property
    def lengths(self) -> np.ndarray:
        """The bucketing length of each pair: the longer of source and target (with start and end)."""
        return np.maximum(self.source_lengths, self.target_lengths)


# Lengths past twice the last quantile bound get bounds of their own, each this much above the last.
TAIL_RATIO = 1.2


def bucket_boundaries(lengths: np.ndarray, buckets: int = 10) -> list[int]:
    """Upper length bounds so that ``buckets`` buckets hold about equal numbers of pairs; and for a
    long tail, more bounds from twice the last one on, each ``TAIL_RATIO`` times the one before.

    The last equal bucket runs from a common length to the longest (in fra.txt at character level,
    from 59 to 265 ids), and a batch drawn from it pads every row to its longest sentence: the batch that
    holds the longest sentences sets the memory peak of training (docs/benchmarks.md). Splitting
    that bucket from its lower bound on instead cost 0.09 nats of validation cross-entropy after 3
    epochs of 10,000 pairs (more small end-of-epoch batches), hence only the far tail.
    """
    if len(lengths) == 0:
        return [1]
    quantiles = np.quantile(lengths, np.linspace(0, 1, buckets + 1)[1:-1])
    bounds = sorted({int(q) + 1 for q in quantiles}) or [int(lengths.max()) + 1]
    longest, tail = int(lengths.max()), 2 * bounds[-1]
    while tail <= longest:
        bounds.append(tail)
        tail = math.ceil(tail * TAIL_RATIO)
    return bounds


def bucket_batch_sizes(
    boundaries: list[int], longest: int, batch_size: int, batch_tokens: int | None = None
) -> list[int]:
    """Rows per batch in each of the ``len(boundaries) + 1`` buckets.

    ``batch_size`` pairs in every bucket; or, with ``batch_tokens``, as many pairs as fit that many
    tokens at the bucket's longest length (its boundary minus 1; the last bucket's, ``longest``),
    counting the longer side of each pair with its start and end ids, and at least one pair. So short
    sentences come in big batches and long ones in small: the padded tokens per batch, and with them
    a step's time and memory, stay about even (fairseq's ``--max-tokens``).
    """
    if batch_tokens is None:
        return [batch_size] * (len(boundaries) + 1)
    uppers = [bound - 1 for bound in boundaries] + [max(longest, boundaries[-1])]
    return [max(1, batch_tokens // max(upper, 1)) for upper in uppers]


def count_batches(
    lengths: np.ndarray, boundaries: list[int], batch_size: int, batch_tokens: int | None = None
) -> int:
    """Exactly how many batches ``make_dataset`` yields for these lengths."""
    bucket_of = np.searchsorted(np.asarray(boundaries), lengths, side="right")
    counts = np.bincount(bucket_of, minlength=len(boundaries) + 1)
    sizes = bucket_batch_sizes(boundaries, int(lengths.max(initial=0)), batch_size, batch_tokens)
    return int(sum(math.ceil(c / size) for c, size in zip(counts, sizes, strict=True)))


def make_dataset(
    data: EncodedPairs,
    batch_size: int,
    *,
    shuffle: bool = False,
    seed: int = 0,
    boundaries: list[int] | None = None,
    fixed_shapes: bool = False,
    replicas: int | None = None,
    first_epoch: int = 0,
    batch_tokens: int | None = None,
) -> tf.data.Dataset:
    """Batches of similar-length pairs, padded to the longest in each batch.

    ``batch_size`` pairs per batch; with ``batch_tokens``, batches sized in tokens per length bucket
    instead (see :func:`bucket_batch_sizes`), ``batch_size`` then unused.

    ``shuffle``: a new order on every pass, the n-th pass's order fixed by ``seed``; ``first_epoch``
    passes are skipped (a resumed training), so that its next epoch sees the order it would have.

    With ``fixed_shapes`` every batch is padded to its bucket's boundary instead, so there are only
    as many batch shapes as buckets: what XLA (``--jit-compile``) needs to compile once per shape.

    With ``replicas`` (training under ``tf.distribute``) elements gain a third part, per-token
    weights ``[B, T]`` (see :func:`share_between_replicas`), and each batch has a multiple of
    ``replicas`` rows, so that a global batch splits into equal shares.
    """
    # Shuffled are the pairs' indices, not the pairs: tf.data's buffer holds every element it
    # shuffles, about 1 KB for a pair of id tensors against 0.25 KB for an index (fra.txt: 33 MiB
    # instead of 151 MiB). Each index is then sliced out of the flat id arrays.
    order = tf.data.Dataset.range(len(data))
    if shuffle:
        order = order.shuffle(len(data), seed=seed, reshuffle_each_iteration=True)
        for _ in range(first_epoch):
            # Every new iterator draws its pass's seeds from the dataset's seed generator: drawing
            # those of the passes done (reading nothing) lets a resumed run continue the sequence.
            iter(order)
    sides = [
        (tf.constant(values), tf.constant(np.cumsum(lengths) - lengths), tf.constant(lengths))
        for values, lengths in (
            (data.source_values, data.source_lengths),
            (data.target_values, data.target_lengths),
        )
    ]

    def pair(index):
        return tuple(tf.slice(values, [starts[index]], [lengths[index]]) for values, starts, lengths in sides)

    dataset = order.map(pair)
    boundaries = boundaries or bucket_boundaries(data.lengths)
    longest = int(data.lengths.max(initial=0))
    if fixed_shapes:  # the last bucket needs an upper bound to pad to
        boundaries = [*boundaries, max(boundaries[-1], longest) + 1]
    sizes = bucket_batch_sizes(boundaries, longest, batch_size, batch_tokens)
    dataset = dataset.bucket_by_sequence_length(
        lambda s, t: tf.maximum(tf.shape(s)[0], tf.shape(t)[0]),
        bucket_boundaries=boundaries,
        bucket_batch_sizes=sizes,
        pad_to_bucket_boundary=fixed_shapes,
    )
    dataset = dataset.map(lambda s, t: ((s, t[:, :-1]), t[:, 1:]), num_parallel_calls=tf.data.AUTOTUNE)
    if replicas is not None:
        dataset = dataset.map(
            lambda inputs, target_out: share_between_replicas(inputs, target_out, replicas),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    # The batch count is known exactly; telling tf.data lets Keras size its progress and epochs.
    batches = count_batches(data.lengths, boundaries, batch_size, batch_tokens)
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(batches))
    return dataset.prefetch(tf.data.AUTOTUNE)


def share_between_replicas(inputs: tuple[tf.Tensor, tf.Tensor], target_out: tf.Tensor, replicas: int):
    """One global batch made ready to split between ``replicas``: ``(inputs, target_out, weights)``.

    Rows of padding (all id 0, so fully masked) are appended up to a multiple of ``replicas`` rows:
    Keras splits a batch row-wise and needs equal shares. ``weights [B, T]`` is ``1 / N`` on each of
    the batch's ``N`` real target tokens and 0 on padding, so a loss *summed* over every replica's
    share adds up to the mean token loss of the whole batch, exactly as on one device (Keras'
    default, a mean per replica averaged over replicas, would weigh replicas with fewer tokens more).
    """
    source, target_in = inputs
    extra = (-tf.shape(source)[0]) % replicas

    def pad(ids: tf.Tensor) -> tf.Tensor:
        return tf.pad(ids, [[0, extra], [0, 0]], constant_values=PAD_ID)

    target_out = pad(target_out)
    real = tf.cast(tf.not_equal(target_out, PAD_ID), tf.float32)
    return (pad(source), pad(target_in)), target_out, real / tf.reduce_sum(real)
