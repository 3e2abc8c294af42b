"""The tf.data pipeline: teacher-forcing shift, padding, bucketing, and exact batch counts."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from nmtcli.pipeline import (
    EncodedPairs,
    bucket_batch_sizes,
    bucket_boundaries,
    count_batches,
    make_dataset,
)
from nmtcli.vectorizers import END_ID, PAD_ID, START_ID, Vectorizer, Vocabulary, WordTokenizer


@pytest.fixture(scope="module")
def pairs(tiny_pairs) -> list[tuple[str, str]]:
    return tiny_pairs[:45]


@pytest.fixture(scope="module")
def encoded(pairs) -> EncodedPairs:
    tokenizer = WordTokenizer()
    source = Vectorizer("word", Vocabulary.build(tokenizer.tokenize(s) for s, _ in pairs))
    target = Vectorizer("word", Vocabulary.build(tokenizer.tokenize(t) for _, t in pairs))
    return EncodedPairs(pairs, source, target)


def examples(encoded: EncodedPairs) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """The id sequences (source, target with start and end) that went into ``encoded``."""
    source_cuts = np.cumsum(encoded.source_lengths)[:-1]
    target_cuts = np.cumsum(encoded.target_lengths)[:-1]
    sources = np.split(encoded.source_values, source_cuts)
    targets = np.split(encoded.target_values, target_cuts)
    return [(tuple(s.tolist()), tuple(t.tolist())) for s, t in zip(sources, targets, strict=True)]


def unpad(row: np.ndarray) -> tuple[int, ...]:
    ids = row.tolist()
    while ids and ids[-1] == PAD_ID:
        ids.pop()
    return tuple(ids)


def batches(dataset) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    return [
        (source.numpy(), target_in.numpy(), target_out.numpy()) for (source, target_in), target_out in dataset
    ]


def test_encoded_pairs_hold_start_and_end_on_targets_only(encoded, pairs) -> None:
    assert len(encoded) == len(pairs)
    for source, target in examples(encoded):
        assert START_ID not in source and END_ID not in source
        assert target[0] == START_ID and target[-1] == END_ID


def test_elements_are_source_and_shifted_target(encoded) -> None:
    for source, target_in, target_out in batches(make_dataset(encoded, batch_size=8)):
        assert source.dtype == target_in.dtype == target_out.dtype == np.int32
        assert source.ndim == target_in.ndim == 2
        assert target_in.shape == target_out.shape
        assert len(source) == len(target_in)
        assert (target_in[:, 0] == START_ID).all()
        # target_out is target_in moved one step to the left, padding included.
        np.testing.assert_array_equal(target_out[:, :-1], target_in[:, 1:])
        # Each row ends exactly once, and only padding follows the end.
        for row in target_out:
            real = unpad(row)
            assert real[-1] == END_ID and END_ID not in real[:-1]
            assert PAD_ID not in real
        # Padded to the longest row of the batch, not beyond.
        assert max(len(unpad(row)) for row in source) == source.shape[1]
        assert max(len(unpad(row)) for row in target_out) == target_out.shape[1]


@pytest.mark.parametrize("shuffle", [False, True])
def test_every_example_appears_exactly_once_per_epoch(encoded, shuffle: bool) -> None:
    expected = Counter(examples(encoded))
    dataset = make_dataset(encoded, batch_size=4, shuffle=shuffle, seed=3)
    for _ in range(2):  # two epochs over the same dataset
        seen = Counter()
        for source, target_in, target_out in batches(dataset):
            for s, t_in, t_out in zip(source, target_in, target_out, strict=True):
                seen[unpad(s), (int(t_in[0]), *unpad(t_out))] += 1
        assert seen == expected


def test_shuffling_is_seeded_and_differs_from_epoch_to_epoch(encoded) -> None:
    def order(dataset) -> list[tuple[int, ...]]:
        return [unpad(row) for source, _, _ in batches(dataset) for row in source]

    dataset = make_dataset(encoded, batch_size=4, shuffle=True, seed=3)
    first, second = order(dataset), order(dataset)  # two epochs of one dataset
    assert first != second and sorted(first) == sorted(second)
    assert order(make_dataset(encoded, batch_size=4, shuffle=True, seed=3)) == first  # same seed
    assert order(make_dataset(encoded, batch_size=4, shuffle=True, seed=4)) != first


@pytest.mark.parametrize("batch_size", [1, 3, 8, 1000])
def test_count_batches_equals_the_number_of_batches(encoded, batch_size: int) -> None:
    boundaries = bucket_boundaries(encoded.lengths)
    counted = count_batches(encoded.lengths, boundaries, batch_size)
    dataset = make_dataset(encoded, batch_size, shuffle=True, boundaries=boundaries)
    assert len(batches(dataset)) == counted
    assert int(dataset.cardinality()) == counted
    assert all(len(b[0]) <= batch_size for b in batches(dataset))


def test_count_batches_with_lengths_on_the_boundaries(encoded) -> None:
    # Boundaries equal to existing lengths: a length equal to a bound goes to the next bucket.
    lengths = sorted(set(encoded.lengths.tolist()))
    assert len(lengths) >= 3, "the fixture corpus should have several lengths"
    boundaries = lengths[1:3]
    counted = count_batches(encoded.lengths, boundaries, batch_size=2)
    assert len(batches(make_dataset(encoded, 2, boundaries=boundaries))) == counted


def test_count_batches_by_hand() -> None:
    lengths = np.array([1, 1, 1, 2, 2, 5, 9, 9])
    # Buckets: [.., 2) holds 3, [2, 6) holds 3, [6, ..) holds 2.
    assert count_batches(lengths, [2, 6], batch_size=2) == 2 + 2 + 1
    assert count_batches(lengths, [2, 6], batch_size=3) == 1 + 1 + 1
    assert count_batches(np.array([], np.int64), [1], batch_size=4) == 0


def test_bucket_boundaries_are_increasing_and_cover_lengths() -> None:
    lengths = np.arange(1, 101)
    boundaries = bucket_boundaries(lengths, buckets=4)
    assert boundaries == sorted(set(boundaries))
    assert boundaries[0] > 1 and boundaries[-1] <= 101
    assert bucket_boundaries(np.array([], np.int64)) == [1]
    assert bucket_boundaries(np.array([3, 3, 3])) == [4]


def test_a_far_tail_of_long_sentences_gets_buckets_of_its_own() -> None:
    """Nine in ten sentences of 5-14 tokens, a tail up to 300: from twice the last quantile bound
    on, each bucket spans at most 20%, so no batch pads a 40-token sentence to 300."""
    rng = np.random.default_rng(0)
    short = rng.integers(5, 15, 900)
    lengths = np.concatenate([short, rng.integers(15, 301, 100)])
    plain = bucket_boundaries(short)
    boundaries = bucket_boundaries(lengths)
    assert boundaries == sorted(set(boundaries)) and boundaries[-1] <= lengths.max()
    quantile_bounds = [b for b in boundaries if b < 2 * boundaries[len(plain) - 1]]
    tail = boundaries[len(quantile_bounds) :]
    assert tail[0] == 2 * quantile_bounds[-1] and len(tail) >= 5
    assert all(high <= 1.2 * low + 1 for low, high in zip(tail, tail[1:], strict=False))
    assert lengths.max() <= 1.2 * tail[-1] + 1  # the last, open bucket too
    assert bucket_boundaries(short) == plain == [b for b in plain if b < 2 * plain[-1]]  # no tail, none added


def test_fixed_shapes_pad_each_batch_to_its_bucket_boundary(encoded) -> None:
    boundaries = [4, 6]
    dataset = make_dataset(encoded, 8, boundaries=boundaries, fixed_shapes=True)
    shapes, seen = set(), []
    for (source, target_in), target_out in dataset:
        assert source.shape[1] == target_in.shape[1] + 1 == target_out.shape[1] + 1
        shapes.add(source.shape[1])
        for s, t_in, t_out in zip(source.numpy(), target_in.numpy(), target_out.numpy(), strict=True):
            seen.append((unpad(s), unpad(np.append(t_in[:1], t_out))))
    # Padded to boundary - 1 of each bucket, the last bucket bounded by the longest example.
    top = max(boundaries[-1], int(encoded.lengths.max())) + 1
    assert shapes <= {3, 5, top - 1}
    assert Counter(seen) == Counter(examples(encoded))
    assert len(list(dataset)) == count_batches(encoded.lengths, boundaries, 8)


# --------------------------------------------------------------------------------------------------
# Batches sized in tokens


def test_bucket_batch_sizes_fit_the_tokens_at_each_buckets_longest_length() -> None:
    assert bucket_batch_sizes([4, 8], longest=20, batch_size=5) == [5, 5, 5]
    # Longest lengths 3, 7 and 20 (the last bucket's: the longest pair).
    assert bucket_batch_sizes([4, 8], longest=20, batch_size=5, batch_tokens=60) == [20, 8, 3]
    # At least one pair, even when one pair is longer than the budget.
    assert bucket_batch_sizes([4, 8], longest=20, batch_size=5, batch_tokens=10) == [3, 1, 1]
    # The last bucket's bound when no pair is longer (the fixed shapes' extra bucket).
    assert bucket_batch_sizes([4, 8], longest=5, batch_size=5, batch_tokens=64) == [21, 9, 8]


@pytest.mark.parametrize("fixed_shapes", [False, True])
@pytest.mark.parametrize("batch_tokens", [7, 20, 64])
def test_token_batches_stay_within_their_budget_and_hold_every_pair_once(
    encoded, batch_tokens: int, fixed_shapes: bool
) -> None:
    boundaries = bucket_boundaries(encoded.lengths, buckets=4)
    dataset = make_dataset(
        encoded,
        1000,  # unused with batch_tokens
        boundaries=boundaries,
        shuffle=True,
        seed=5,
        batch_tokens=batch_tokens,
        fixed_shapes=fixed_shapes,
    )
    seen, sizes = [], []
    for source, target_in, target_out in batches(dataset):
        rows, longest = len(source), max(source.shape[1], target_in.shape[1] + 1)
        # Over the budget only with a single pair too long for it.
        assert rows * longest <= batch_tokens or rows == 1
        sizes.append(rows)
        for s, t_in, t_out in zip(source, target_in, target_out, strict=True):
            seen.append((unpad(s), unpad(np.append(t_in[:1], t_out))))
    assert Counter(seen) == Counter(examples(encoded))
    assert len(sizes) == count_batches(encoded.lengths, boundaries, 1000, batch_tokens)
    assert int(dataset.cardinality()) == len(sizes)
    if batch_tokens == 64:
        assert max(sizes) > 2 * min(sizes)  # short pairs come in bigger batches


def test_token_batches_are_the_same_for_the_same_seed(encoded) -> None:
    def order(seed: int) -> list[list[tuple[int, ...]]]:
        dataset = make_dataset(encoded, 8, shuffle=True, seed=seed, batch_tokens=30)
        return [[unpad(row) for row in source] for source, _, _ in batches(dataset)]

    first = order(3)
    assert order(3) == first
    assert order(4) != first
