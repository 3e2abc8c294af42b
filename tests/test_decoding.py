"""greedy_search over fake step functions that return fixed logits: no model needed."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from nmtcli.decoding import (
    beam_search,
    default_max_length,
    greedy_search,
    greedy_search_with_attention,
    repeat_beams,
)
from nmtcli.vectorizers import END_ID, PAD_ID, START_ID

VOCAB = 10


def scripted_step(script: list[list[int]]):
    """A step function whose logits at step ``k`` favour ``script[row][k]`` (the last entry repeats).

    The step counter lives in the state, so the script only advances if the state is threaded through.
    """
    width = max(len(row) for row in script)
    table = np.array([row + [row[-1]] * (width - len(row)) for row in script], np.int32)  # [B, K]
    table = tf.constant(table)

    def next_fn(tokens, state):
        step = tf.minimum(state, table.shape[1] - 1)
        logits = tf.one_hot(table[:, step], VOCAB) * 5.0  # [B, V]
        return logits, state + 1

    return next_fn


def test_rows_stop_at_end_and_are_padded_after_it() -> None:
    # Row 1 ends at its second step; its later logits (token 9) must be ignored.
    next_fn = scripted_step([[5, 6, 7, END_ID, 8], [4, END_ID, 9, 9, 9]])
    ids = greedy_search(next_fn, tf.constant(0), batch_size=2, max_length=20)
    assert ids.dtype == tf.int32
    np.testing.assert_array_equal(ids.numpy(), [[5, 6, 7, END_ID], [4, END_ID, PAD_ID, PAD_ID]])


def test_stops_as_soon_as_every_row_has_ended() -> None:
    next_fn = scripted_step([[6, END_ID, 5], [4, 4, END_ID, 5], [2, END_ID]])
    ids = greedy_search(next_fn, tf.constant(0), batch_size=3, max_length=50).numpy()
    np.testing.assert_array_equal(ids, [[6, END_ID, PAD_ID], [4, 4, END_ID], [2, END_ID, PAD_ID]])


@pytest.mark.parametrize("max_length", [1, 3, 7])
def test_max_length_caps_the_number_of_steps(max_length: int) -> None:
    calls = []

    def never_ends(tokens, state):
        calls.append(1)  # eager mode: one Python call per step
        return tf.one_hot(tf.fill(tf.shape(tokens), 5), VOCAB), state

    ids = greedy_search(never_ends, tf.constant(0), batch_size=2, max_length=max_length).numpy()
    assert ids.shape == (2, max_length)
    assert (ids == 5).all()
    assert len(calls) == max_length


def test_first_input_is_the_start_id_and_each_output_is_fed_back() -> None:
    # The next token is a function of the previous one: START -> 5 -> 6 -> 7 -> END.
    successor = np.full(VOCAB, 9, np.int32)
    successor[[START_ID, 5, 6, 7]] = [5, 6, 7, END_ID]
    successor = tf.constant(successor)
    seen = []

    def next_fn(tokens, state):
        seen.append(tokens.numpy().tolist())
        return tf.one_hot(tf.gather(successor, tokens), VOCAB), state

    ids = greedy_search(next_fn, (), batch_size=2, max_length=10).numpy()
    np.testing.assert_array_equal(ids, [[5, 6, 7, END_ID]] * 2)
    assert seen[0] == [START_ID, START_ID]
    assert seen[1:] == [[5, 5], [6, 6], [7, 7]]


def test_custom_start_and_end_ids() -> None:
    successor = tf.constant([0, 1, 2, 3, 4, 5, 6, 8, 9, 7], tf.int32)  # 7 -> 8 -> 9 -> 7 ...

    def next_fn(tokens, state):
        return tf.one_hot(tf.gather(successor, tokens), VOCAB), state

    ids = greedy_search(next_fn, (), batch_size=1, max_length=10, start_id=7, end_id=9).numpy()
    np.testing.assert_array_equal(ids, [[8, 9]])


def test_a_nested_state_is_threaded_through_every_step() -> None:
    """State: a dict with a step counter and a per-row running sum of the tokens fed in."""

    def next_fn(tokens, state):
        total = state["sum"] + tokens
        # Emit END once the running sum passes 20, else token 4.
        chosen = tf.where(total > 20, END_ID, 4)
        return tf.one_hot(chosen, VOCAB), {"step": state["step"] + 1, "sum": total}

    state = {"step": tf.constant(0), "sum": tf.constant([0, 15], tf.int32)}
    ids = greedy_search(next_fn, state, batch_size=2, max_length=30).numpy()
    # Row 0 sums 2 (start), then 4s: 2, 6, 10, 14, 18, 22 -> END at step 6. Row 1 starts at 15:
    # 17, 21 -> END at step 2.
    np.testing.assert_array_equal(ids, [[4, 4, 4, 4, 4, END_ID], [4, END_ID, PAD_ID, PAD_ID, PAD_ID, PAD_ID]])


def test_works_inside_tf_function_with_dynamic_batch_and_length() -> None:
    @tf.function(input_signature=[tf.TensorSpec([None], tf.int32), tf.TensorSpec([], tf.int32)])
    def decode(row_ends, max_length):
        # Row r emits 5 until step row_ends[r], then END: a scripted decoder with a dynamic batch.
        def next_fn(tokens, step):
            chosen = tf.where(step >= row_ends, END_ID, 5)
            return tf.one_hot(chosen, VOCAB), step + 1

        return greedy_search(next_fn, tf.constant(0), tf.shape(row_ends)[0], max_length)

    ids = decode(tf.constant([2, 1, 1]), tf.constant(10)).numpy()
    np.testing.assert_array_equal(ids, [[5, 5, END_ID], [5, END_ID, PAD_ID], [5, END_ID, PAD_ID]])
    # Same trace, other batch size and a cap that cuts a row short.
    ids = decode(tf.constant([4, 6]), tf.constant(3)).numpy()
    np.testing.assert_array_equal(ids, [[5, 5, 5], [5, 5, 5]])
    assert decode.experimental_get_tracing_count() == 1


# --------------------------------------------------------------------------------------------------
# beam_search


def bigram_step(probabilities: dict[int, dict[int, float]], floor: float = 1e-4):
    """A step function whose next-token distribution depends only on the token fed in.

    ``probabilities[token]`` gives the chance of each next token; the rest share ``floor``.
    Returns ``(next_fn, log_prob)``, the latter scoring a whole output sequence (nats).
    """
    table = np.full((VOCAB, VOCAB), floor)
    for previous, row in probabilities.items():
        for token, p in row.items():
            table[previous, token] = p
    table = np.log(table / table.sum(axis=1, keepdims=True))

    def next_fn(tokens, state):
        return tf.gather(tf.constant(table, tf.float32), tokens), state

    def log_prob(ids) -> float:
        fed = [START_ID, *ids[:-1]]
        return float(sum(table[a, b] for a, b in zip(fed, ids, strict=True)))

    return next_fn, log_prob


def trim(row) -> list[int]:
    """A hypothesis without its padding."""
    row = list(row)
    return row[: row.index(END_ID) + 1] if END_ID in row else row


# Greedy takes 5 (0.5) and then has only poor choices; 6 (0.4) leads to the end with near certainty.
GARDEN_PATH = {START_ID: {5: 0.5, 6: 0.4}, 5: {7: 0.3, 8: 0.3, 9: 0.3}, 6: {END_ID: 0.99}}
for _token in (7, 8, 9):
    GARDEN_PATH[_token] = {END_ID: 0.9}


def test_the_end_id_never_comes_first_so_no_translation_is_empty() -> None:
    # The model's favourite token is always the end; at the first step the runner-up, 4, is taken.
    def prefers_the_end(tokens, state):
        favourite = tf.one_hot(tf.fill(tf.shape(tokens), END_ID), VOCAB) * 5.0
        return favourite + tf.one_hot(tf.fill(tf.shape(tokens), 4), VOCAB) * 2.0, state

    greedy = greedy_search(prefers_the_end, (), batch_size=2, max_length=10).numpy()
    np.testing.assert_array_equal(greedy, [[4, END_ID]] * 2)
    for beam_size in (1, 3):
        beam = beam_search(prefers_the_end, (), batch_size=2, beam_size=beam_size, max_length=10).numpy()
        np.testing.assert_array_equal(beam, [[4, END_ID]] * 2)


def test_beam_finds_a_more_likely_sequence_than_greedy() -> None:
    next_fn, log_prob = bigram_step(GARDEN_PATH)
    greedy = greedy_search(next_fn, (), batch_size=1, max_length=10).numpy()[0]
    beam = beam_search(next_fn, (), batch_size=1, beam_size=2, max_length=10, length_penalty=0.0).numpy()[0]
    assert trim(greedy) == [5, 7, END_ID]
    assert trim(beam) == [6, END_ID]
    assert log_prob(trim(beam)) > log_prob(trim(greedy)) + 0.5


def nested_sum_step(tokens, state):
    """Emits 4 until the per-row running sum of fed tokens passes 20, then END (greedy's nested test)."""
    total = state["sum"] + tokens
    chosen = tf.where(total > 20, END_ID, 4)
    return tf.one_hot(chosen, VOCAB) * 3.0, {"step": state["step"] + 1, "sum": total}


@pytest.mark.parametrize("length_penalty", [0.0, 0.6, 2.0])
@pytest.mark.parametrize("max_length", [2, 4, 30])
def test_beam_size_one_is_exactly_greedy(length_penalty: float, max_length: int) -> None:
    cases = [
        (scripted_step([[5, 6, 7, END_ID, 8], [2, END_ID, 9, 9, 9], [4, 4, 4, 4, 4, 4, END_ID]]), 0, 3),
        (bigram_step(GARDEN_PATH)[0], (), 3),
        (nested_sum_step, {"step": tf.constant(0), "sum": tf.constant([0, 15, 18], tf.int32)}, 3),
    ]
    # A random Markov chain with a moderate chance of ending: many different lengths.
    rng = np.random.default_rng(3)
    table = tf.constant(rng.normal(size=(VOCAB, VOCAB)) * 2, tf.float32)
    cases.append(
        (
            lambda tokens, state: (tf.gather(table, (tokens + state) % VOCAB), state),
            tf.constant([0, 1, 2, 3]),
            4,
        )
    )
    for next_fn, state, batch_size in cases:
        greedy = greedy_search(next_fn, state, batch_size, max_length).numpy()
        beam = beam_search(next_fn, state, batch_size, 1, max_length, length_penalty).numpy()
        np.testing.assert_array_equal(beam, greedy)


def test_ended_hypotheses_are_padded_and_the_output_as_wide_as_the_longest() -> None:
    script = scripted_step([[5, 6, 7, END_ID], [2, END_ID], [4, 4, END_ID]])

    def next_fn(tokens, state):
        # Each beam row reads its own sentence's script.
        logits, step = script(tokens, state["step"])
        return tf.gather(logits, state["sentence"]), {"sentence": state["sentence"], "step": step}

    state = {"sentence": repeat_beams(tf.range(3), 3), "step": tf.constant(0)}
    ids = beam_search(next_fn, state, batch_size=3, beam_size=3, max_length=20).numpy()
    assert ids.dtype == np.int32
    np.testing.assert_array_equal(
        ids, [[5, 6, 7, END_ID], [2, END_ID, PAD_ID, PAD_ID], [4, 4, END_ID, PAD_ID]]
    )


def test_max_length_caps_beam_search_and_returns_the_best_unfinished_prefix() -> None:
    # Never ends: every step prefers 5 over 6.
    def never_ends(tokens, state):
        return tf.one_hot(tf.fill(tf.shape(tokens), 5), VOCAB) + tf.one_hot(
            tf.fill(tf.shape(tokens), 6), VOCAB
        ) * 0.5, state

    for max_length in (1, 3):
        ids = beam_search(never_ends, (), batch_size=2, beam_size=4, max_length=max_length).numpy()
        np.testing.assert_array_equal(ids, [[5] * max_length] * 2)


def sentence_step(lexicon: np.ndarray):
    """Sentence ``s`` follows its own bigram table ``lexicon[s]`` ([S, V, V] log-probabilities).

    The state holds each beam row's sentence id, so the step works for any batch of sentences.
    """
    lexicon = tf.constant(lexicon, tf.float32)

    def next_fn(tokens, sentence):
        return tf.gather_nd(lexicon, tf.stack([sentence, tokens], axis=1)), sentence

    return next_fn


def test_a_sentence_decodes_the_same_alone_or_in_any_batch() -> None:
    rng = np.random.default_rng(0)
    lexicon = rng.normal(size=(5, VOCAB, VOCAB)) * 2.0
    lexicon[:, :, END_ID] += np.linspace(-3, 1, 5)[:, None]  # sentences end early to late
    next_fn = sentence_step(lexicon)
    beam_size = 3

    def decode(sentences: list[int]) -> list[list[int]]:
        state = repeat_beams(tf.constant(sentences, tf.int32), beam_size)
        ids = beam_search(next_fn, state, len(sentences), beam_size, max_length=12).numpy()
        return [trim(row) for row in ids]

    alone = [decode([s])[0] for s in range(5)]
    assert len({len(row) for row in alone}) > 1, alone  # the test needs different lengths
    assert decode([0, 1, 2, 3, 4]) == alone
    assert decode([4, 2, 0]) == [alone[4], alone[2], alone[0]]
    assert decode([3, 3, 1]) == [alone[3], alone[3], alone[1]]


def test_length_penalty_decides_between_a_short_and_a_long_hypothesis() -> None:
    # Short: 4 END, p 0.45 (log -0.80, 2 tokens). Long: 5 6 7 8 END, p 0.55 * 0.9^4 = 0.36 (log
    # -1.02, 5 tokens). Plain log-probability prefers the short one; alpha 1 divides the short score
    # by (5 + 2) / 6, giving -0.68, and the long one by (5 + 5) / 6, giving -0.61: the long one wins.
    chain = {
        START_ID: {4: 0.45, 5: 0.55},
        4: {END_ID: 1.0},
        5: {6: 0.9, 9: 0.1},
        6: {7: 0.9, 9: 0.1},
        7: {8: 0.9, 9: 0.1},
        8: {END_ID: 0.9, 9: 0.1},
    }
    next_fn, log_prob = bigram_step(chain, floor=1e-9)
    assert log_prob([4, END_ID]) > log_prob([5, 6, 7, 8, END_ID])

    def best(alpha: float) -> list[int]:
        ids = beam_search(next_fn, (), batch_size=1, beam_size=4, max_length=10, length_penalty=alpha)
        return trim(ids.numpy()[0])

    assert best(0.0) == [4, END_ID]
    assert best(1.0) == [5, 6, 7, 8, END_ID]


HASH_ROWS = 101


def prefix_hash(previous, token):
    """A hash of the prefix fed so far, updated with the next token; int32 in ``[0, 2**20)``."""
    return (previous * 31 + token + 1) % (1 << 20)


def test_the_state_is_reordered_with_the_chosen_beams() -> None:
    """The state holds a hash of each row's whole prefix, and the logits depend on it alone.

    With enough beams to keep every prefix (10 tokens, 3 steps), beam search with no length penalty is
    exhaustive, so it must find the most likely sequence that brute force finds. It can only do so if
    each row's state moves with its beam: otherwise scores would belong to other prefixes.
    """
    rng = np.random.default_rng(1)
    weights = rng.normal(size=(HASH_ROWS, VOCAB)) * 2.0
    log_softmax = weights - np.log(np.exp(weights).sum(axis=1, keepdims=True))
    table = tf.constant(weights, tf.float32)

    def next_fn(tokens, history):
        history = prefix_hash(history, tokens)
        return tf.gather(table, history % HASH_ROWS), history

    def log_prob(sentence: int, ids: list[int]) -> float:
        history, total = sentence, 0.0
        for fed, token in zip([START_ID, *ids[:-1]], ids, strict=True):
            history = prefix_hash(history, fed)
            total += log_softmax[history % HASH_ROWS, token]
        return total

    max_length, beam_size, sentences = 3, 1000, [0, 1, 2]
    state = repeat_beams(tf.constant(sentences, tf.int32), beam_size)  # each sentence its own seed
    ids = beam_search(next_fn, state, len(sentences), beam_size, max_length, length_penalty=0.0).numpy()
    others = [t for t in range(VOCAB) if t != END_ID]
    for sentence, row in zip(sentences, ids, strict=True):
        candidates = [[a, END_ID] for a in others] + [[a, b, END_ID] for a in others for b in others]
        best = max(log_prob(sentence, c) for c in candidates)
        assert trim(row)[-1] == END_ID
        assert log_prob(sentence, trim(row)) == pytest.approx(best, abs=1e-4)
    # And the winners differ between sentences, so the sentence seeds were kept apart.
    assert len({tuple(trim(row)) for row in ids}) > 1


def test_beam_search_inside_tf_function_traces_once() -> None:
    rng = np.random.default_rng(2)
    lexicon = rng.normal(size=(4, VOCAB, VOCAB)) * 2.0

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int32), tf.TensorSpec([], tf.int32)])
    def decode(sentences, max_length):
        state = repeat_beams(sentences, 3)
        return beam_search(sentence_step(lexicon), state, tf.shape(sentences)[0], 3, max_length)

    together = decode(tf.constant([0, 1, 2, 3]), tf.constant(10)).numpy()
    for s in range(4):
        assert trim(decode(tf.constant([s]), tf.constant(10)).numpy()[0]) == trim(together[s])
    capped = decode(tf.constant([2, 1]), tf.constant(2)).numpy()
    assert capped.shape[1] <= 2
    assert decode.experimental_get_tracing_count() == 1


def test_more_beams_than_tokens_still_gives_valid_hypotheses() -> None:
    next_fn, _ = bigram_step(GARDEN_PATH)
    ids = beam_search(next_fn, (), batch_size=2, beam_size=12, max_length=6).numpy()
    assert trim(ids[0]) == trim(ids[1]) == [6, END_ID]


def test_with_attention_gives_the_same_ids_and_stacks_each_step_s_weights() -> None:
    script = [[5, 6, END_ID], [7, END_ID]]
    plain = scripted_step(script)

    def attending(tokens, state):
        logits, next_state = plain(tokens, state)
        # Step k puts all weight on source position k (of 4), so the stacked order is checkable.
        weights = tf.one_hot(tf.fill([2], tf.minimum(state, 3)), 4)  # [B, S]
        return logits, next_state, weights

    expected = greedy_search(plain, tf.constant(0), batch_size=2, max_length=10).numpy()
    ids, weights = greedy_search_with_attention(attending, tf.constant(0), batch_size=2, max_length=10)
    np.testing.assert_array_equal(ids.numpy(), expected)
    assert weights.dtype == tf.float32 and weights.shape == (2, 3, 4)  # [B, steps, S]
    np.testing.assert_array_equal(weights.numpy()[0], np.eye(4, dtype=np.float32)[:3])


# --------------------------------------------------------------------------------------------------
# drop_finished: ended sentences leave the batch


def markov_step(seed: int = 3):
    """A random Markov chain whose next token depends on the token fed in and on a per-row offset in
    the state (so rows differ); each row's end id wins once its own countdown in the state runs
    out, if the chain has not reached it before. The state also carries a scalar step counter and a
    per-row ``[B, 2, 3]`` tag that must follow its row."""
    rng = np.random.default_rng(seed)
    table = tf.constant(rng.normal(size=(VOCAB, VOCAB)) * 2, tf.float32)
    sizes = []

    def next_fn(tokens, state):
        sizes.append(int(tf.shape(tokens)[0]))  # eager mode: one Python call per step
        offset, left = state["offset"], state["left"]
        tf.debugging.assert_equal(state["tag"][:, 1, 2], offset)  # the row's tag stayed with it
        logits = tf.gather(table, (tokens + offset) % VOCAB)
        logits += (
            100.0
            * tf.one_hot(tf.fill(tf.shape(tokens), END_ID), VOCAB)
            * tf.cast(left <= 0, tf.float32)[:, None]
        )
        return logits, {"offset": offset, "left": left - 1, "tag": state["tag"], "step": state["step"] + 1}

    def state(batch_size: int):
        offset = tf.range(batch_size, dtype=tf.int32) % VOCAB
        tag = tf.tile(offset[:, None, None], [1, 2, 3])
        countdowns = tf.constant(np.random.default_rng(seed).integers(0, 30, size=64), tf.int32)
        left = countdowns[:batch_size]
        return {"offset": offset, "left": left, "tag": tag, "step": tf.constant(0)}

    return next_fn, state, sizes


@pytest.mark.parametrize("batch_size", [1, 5, 40])
def test_dropping_finished_rows_gives_the_same_ids_on_ever_fewer_rows(batch_size) -> None:
    next_fn, state, sizes = markov_step()
    kept = greedy_search(next_fn, state(batch_size), batch_size, max_length=25).numpy()
    steps_kept = len(sizes)
    sizes.clear()
    dropped = greedy_search(next_fn, state(batch_size), batch_size, 25, drop_finished=True).numpy()
    np.testing.assert_array_equal(dropped, kept)
    assert len(sizes) == steps_kept  # the same number of steps...
    assert sizes[0] == batch_size and sizes == sorted(sizes, reverse=True)  # ...on fewer rows
    if batch_size == 40:
        ended = (kept == END_ID).any(axis=1)
        assert 0 < ended.sum() < batch_size and sizes[-1] < batch_size
        # Every row computed at a step was live at most DROP_SHARE ago: the work tracks live rows.
        live = [(~(kept[:, :step] == END_ID).any(axis=1)).sum() for step in range(len(sizes))]
        assert all(size * 0.75 <= count + 1 for size, count in zip(sizes, live, strict=True))


def test_dropping_finished_rows_works_inside_tf_function_with_a_dynamic_batch() -> None:
    next_fn, state, _ = markov_step(seed=8)

    @tf.function(input_signature=[tf.TensorSpec([], tf.int32), tf.TensorSpec([], tf.int32)])
    def decode(batch_size, max_length):
        return greedy_search(next_fn, state(batch_size), batch_size, max_length, drop_finished=True)

    for batch_size, max_length in ((30, 20), (7, 4)):
        expected = greedy_search(next_fn, state(batch_size), batch_size, max_length).numpy()
        np.testing.assert_array_equal(decode(batch_size, max_length).numpy(), expected)
    assert decode.experimental_get_tracing_count() == 1


def test_dropped_rows_get_zero_attention_weights_and_the_same_ids() -> None:
    next_fn, state, _ = markov_step(seed=5)

    def attending(tokens, state):
        logits, next_state = next_fn(tokens, state)
        weights = tf.one_hot(state["offset"] % 4, 4) + 1.0  # [B, S], never zero while computed
        return logits, next_state, weights

    expected, full = greedy_search_with_attention(attending, state(30), 30, max_length=25)
    ids, weights = greedy_search_with_attention(attending, state(30), 30, 25, drop_finished=True)
    ids, weights, full = ids.numpy(), weights.numpy(), full.numpy()
    np.testing.assert_array_equal(ids, expected.numpy())
    for row in range(30):
        ends = np.flatnonzero(ids[row] == END_ID)
        last = ends[0] if ends.size else ids.shape[1] - 1
        # Up to the end id, the weights the step gave; dropped later, zeros (or still computed).
        np.testing.assert_array_equal(weights[row, : last + 1], full[row, : last + 1])
        after = weights[row, last + 1 :]
        assert all(not step.any() or np.array_equal(step, full[row, 0]) for step in after)
    assert (~weights.any(axis=2)).any()  # some rows were dropped


# --------------------------------------------------------------------------------------------------
# A state that grows by one position per step (a key/value cache) goes through both loops.


def growing_cache_step(script: list[list[int]]):
    """Like ``scripted_step``, but the step counts the positions of a ``[N, steps, 2]`` cache that
    grows by one per step, and checks that the row's cache holds its own sentence id at every place."""
    table = tf.constant(np.array(script, np.int32))

    def next_fn(tokens, state):
        cache, sentence = state
        step = tf.minimum(tf.shape(cache)[1], table.shape[1] - 1)
        # Every position of a row's cache holds that row's sentence id: reordering kept rows whole.
        tf.debugging.assert_equal(cache[:, :, 0], tf.cast(sentence[:, None], tf.float32))
        logits = tf.one_hot(tf.gather(table, sentence)[:, step], VOCAB) * 5.0
        entry = tf.stack([tf.cast(sentence, tf.float32), tf.cast(tokens, tf.float32)], axis=-1)
        return logits, (tf.concat([cache, entry[:, None, :]], axis=1), sentence)

    return next_fn


def test_a_growing_cache_in_the_state_works_in_greedy_and_beam_search() -> None:
    script = [[5, 6, END_ID, 9], [7, END_ID, 9, 9], [4, 4, 4, END_ID]]
    next_fn = growing_cache_step(script)
    sentences = tf.range(3)
    empty = tf.zeros([3, 0, 2])
    expected = [[5, 6, END_ID, PAD_ID], [7, END_ID, PAD_ID, PAD_ID], [4, 4, 4, END_ID]]
    for drop_finished in (False, True):
        ids = tf.function(
            lambda drop=drop_finished: greedy_search(next_fn, (empty, sentences), 3, 10, drop_finished=drop)
        )()
        np.testing.assert_array_equal(ids.numpy(), expected)
    state = repeat_beams((empty, sentences), 2)
    ids = tf.function(lambda: beam_search(next_fn, state, 3, 2, 10, length_penalty=0.0))()
    np.testing.assert_array_equal(ids.numpy(), expected)


def test_default_max_length_is_the_same_rule_for_ints_and_tensors() -> None:
    for source_length, longest in [(1, 0), (3, 30), (40, 30), (7, 5)]:
        python = default_max_length(source_length, longest)
        assert python == min(max(16, 2 * longest), 2 * source_length + 10)
        assert int(default_max_length(tf.constant(source_length), longest)) == python
