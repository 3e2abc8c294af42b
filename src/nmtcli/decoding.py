"""Batched greedy and beam-search decoding over a step function, each in one TensorFlow loop.

The loops know nothing about models: they call ``next_fn(tokens [N], state) -> (logits [N, V], state)``
until every sentence has produced the end id or ``max_length`` steps have run; ``N`` is the batch
``B`` for greedy search and ``B * K`` (K beams per sentence, sentence-major) for beam search. Tests
drive them with fake step functions that return fixed logits.
``greedy_search_with_attention`` runs the greedy loop over a step function that also returns
attention weights, and stacks them.

With ``drop_finished`` the greedy loop stops computing sentences that have ended: their rows leave
``tokens`` and every tensor of ``state`` (so per-sentence data the step needs, such as encoder
outputs, must travel in ``state``, not in a closure). In a batch of a few hundred sentences the
longest one decides how many steps run, and most rows have long ended by then.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tensorflow as tf

from .config import DEFAULT_LENGTH_PENALTY
from .vectorizers import END_ID, PAD_ID, START_ID

StepFn = Callable[[tf.Tensor, Any], tuple[tf.Tensor, Any]]
AttendingStepFn = Callable[[tf.Tensor, Any], tuple[tf.Tensor, Any, tf.Tensor]]


def greedy_search(
    next_fn: StepFn,
    state: Any,
    batch_size: tf.Tensor | int,
    max_length: tf.Tensor | int,
    start_id: int = START_ID,
    end_id: int = END_ID,
    drop_finished: bool = False,
) -> tf.Tensor:
    """Pick the most likely token at every step. Returns ids ``[B, steps]``, int32.

    A sentence that has ended is padded with ``PAD_ID``; ``steps <= max_length``. ``state`` is any
    nest of tensors whose shapes stay fixed from step to step, or, with ``drop_finished``, whose
    first axis holds the batch and shrinks as sentences end (scalars are passed on unchanged); the
    ids are the same either way. Wrap the caller in ``tf.function``.
    """

    def with_nothing(tokens, state):
        logits, state = next_fn(tokens, state)
        return logits, state, None

    ids, _ = _greedy_loop(with_nothing, state, batch_size, max_length, start_id, end_id, False, drop_finished)
    return ids


def greedy_search_with_attention(
    next_fn: AttendingStepFn,
    state: Any,
    batch_size: tf.Tensor | int,
    max_length: tf.Tensor | int,
    start_id: int = START_ID,
    end_id: int = END_ID,
    drop_finished: bool = False,
) -> tuple[tf.Tensor, tf.Tensor]:
    """:func:`greedy_search` over ``next_fn(tokens, state) -> (logits [B, V], state, weights [B, S])``.

    Returns ``(ids [B, steps] int32, weights [B, steps, S] float32)``: the same ids as
    ``greedy_search`` over the same logits, and the weights each step returned (rows after a
    sentence's end id are as the step function gave them, or zeros once ``drop_finished`` has
    dropped the sentence).
    """
    return _greedy_loop(next_fn, state, batch_size, max_length, start_id, end_id, True, drop_finished)


# With ``drop_finished``, ended rows are dropped once they are at least this share of the rows still
# computed: each drop copies the whole state (encoder outputs included), so it is not done every step.
DROP_SHARE = 0.25


def _greedy_loop(next_fn, state, batch_size, max_length, start_id, end_id, collect, drop_finished):
    """The one decoding loop. ``next_fn`` returns ``(logits, state, extra)``; with ``collect`` the
    ``[B, ...]`` extras are stacked into ``[B, steps, ...]`` float32, else ``extra`` is ignored.

    ``rows`` holds each computed row's place in the batch; without ``drop_finished`` it stays
    ``range(B)`` and every step computes every row."""
    batch_size = tf.convert_to_tensor(batch_size, tf.int32)
    tokens = tf.fill([batch_size], tf.constant(start_id, tf.int32))
    finished = tf.zeros([batch_size], tf.bool)
    rows = tf.range(batch_size)
    outputs = tf.TensorArray(tf.int32, size=0, dynamic_size=True)
    extras = tf.TensorArray(tf.float32, size=0, dynamic_size=True) if collect else tf.constant(0)
    state = tf.nest.map_structure(tf.convert_to_tensor, state)

    def in_batch_order(values, rows, fill):
        """``values [R, ...]`` of the computed ``rows`` -> ``[B, ...]``, ``fill`` in the dropped rows."""
        if not drop_finished:
            return values
        shape = tf.concat([[batch_size], tf.shape(values)[1:]], axis=0)
        return tf.tensor_scatter_nd_update(tf.fill(shape, fill), rows[:, None], values)

    def keep_going(step, tokens, state, finished, rows, outputs, extras):
        return tf.logical_not(tf.reduce_all(finished))

    def one_step(step, tokens, state, finished, rows, outputs, extras):
        logits, state, extra = next_fn(tokens, state)
        chosen = tf.argmax(logits, axis=-1, output_type=tf.int32)
        chosen = tf.where(finished, tf.constant(PAD_ID, tf.int32), chosen)
        finished = tf.logical_or(finished, tf.equal(chosen, end_id))
        outputs = outputs.write(step, in_batch_order(chosen, rows, PAD_ID))
        if collect:
            extras = extras.write(step, in_batch_order(tf.cast(extra, tf.float32), rows, 0.0))
        if drop_finished:
            chosen, state, finished, rows = _drop_rows_if_due(chosen, state, finished, rows)
        return step + 1, chosen, state, finished, rows, outputs, extras

    loop_vars = (tf.constant(0), tokens, state, finished, rows, outputs, extras)
    invariants = tf.nest.map_structure(_shape_invariant, loop_vars)
    if drop_finished:
        invariants = tf.nest.map_structure(_batch_axis_free, invariants)
    _, _, _, _, _, outputs, extras = tf.while_loop(
        keep_going,
        one_step,
        loop_vars,
        shape_invariants=invariants,
        maximum_iterations=max_length,
    )
    ids = tf.transpose(tf.reshape(outputs.stack(), [-1, batch_size]))  # [steps, B] -> [B, steps]
    if not collect:
        return ids, None
    stacked = extras.stack()  # [steps, B, ...]
    rank = len(stacked.shape)
    return ids, tf.transpose(stacked, [1, 0, *range(2, rank)])


def _drop_rows_if_due(tokens, state, finished, rows):
    """Keep only the rows not ``finished``, once the finished ones are ``DROP_SHARE`` of all."""
    count = tf.shape(finished)[0]
    due = tf.cast(tf.reduce_sum(tf.cast(finished, tf.int32)), tf.float32) >= DROP_SHARE * tf.cast(
        count, tf.float32
    )

    def drop():
        live = tf.reshape(tf.where(tf.logical_not(finished)), [-1])
        kept = tf.nest.map_structure(lambda x: tf.gather(x, live) if x.shape.rank else x, state)
        return tf.gather(tokens, live), kept, tf.gather(finished, live), tf.gather(rows, live)

    return tf.cond(due, drop, lambda: (tokens, state, finished, rows))


def _shape_invariant(x):
    # TensorArrays are loop variables too; their shape_invariants entry is ignored but must exist.
    return x.shape if isinstance(x, tf.Tensor) else tf.TensorShape(None)


def _batch_axis_free(shape: tf.TensorShape) -> tf.TensorShape:
    """``shape`` with its first axis unknown (scalars, and unknown ranks, unchanged)."""
    if shape.rank is None or shape.rank == 0:
        return shape
    return tf.TensorShape([None, *shape[1:]])


def repeat_beams(nest: Any, beam_size: int) -> Any:
    """Repeat every tensor of ``nest`` ``beam_size`` times along axis 0: ``[B, ...] -> [B * K, ...]``.

    Rows come out sentence-major (sentence 0's K copies first), the layout ``beam_search`` expects.
    Scalars are left alone.
    """
    return tf.nest.map_structure(
        lambda x: tf.repeat(x, beam_size, axis=0) if x.shape.rank else x,
        tf.nest.map_structure(tf.convert_to_tensor, nest),
    )


def length_penalty_factor(length: tf.Tensor, alpha: tf.Tensor | float) -> tf.Tensor:
    """GNMT's length penalty ``((5 + length) / 6) ** alpha`` (Wu et al., 2016); 1 when alpha is 0."""
    return tf.pow((5.0 + tf.cast(length, tf.float32)) / 6.0, tf.cast(alpha, tf.float32))


def beam_search(
    next_fn: StepFn,
    state: Any,
    batch_size: tf.Tensor | int,
    beam_size: int,
    max_length: tf.Tensor | int,
    length_penalty: tf.Tensor | float = DEFAULT_LENGTH_PENALTY,
    start_id: int = START_ID,
    end_id: int = END_ID,
) -> tf.Tensor:
    """Keep the ``beam_size`` most likely prefixes of each sentence. Returns ids ``[B, steps]``, int32.

    Each row is the best hypothesis of its sentence, its end id included, padded with ``PAD_ID``, as
    in ``greedy_search``; ``steps <= max_length``. ``state`` is any nest of tensors whose first axis
    holds the ``B * K`` beams sentence-major (see ``repeat_beams``); after each step it is reordered
    with ``tf.gather`` by each beam's parent. Scalars in it are passed on unchanged.

    Scores are sums of log-softmax probabilities (nats). A hypothesis that ends scores ``log p / ((5 +
    n) / 6) ** length_penalty``, ``n`` its length in tokens with the end id (GNMT); ``length_penalty``
    >= 0: 0 compares plain log-probabilities, larger values favour longer outputs. As in fairseq, an end
    id counts only where it ranks among the top K of the 2K candidates of a step, so ``beam_size=1``
    gives exactly ``greedy_search``'s output. A sentence is done when K hypotheses have ended, or when
    its best ended hypothesis beats the best score any live one could still reach; if none has ended
    after ``max_length`` steps, the best live prefix is returned. The model must have at least 2 target
    tokens. Wrap the caller in ``tf.function``; ``beam_size`` is a Python int.
    """
    k = int(beam_size)
    if k < 1:
        raise ValueError(f"beam_size must be at least 1; got {beam_size}")
    batch_size = tf.convert_to_tensor(batch_size, tf.int32)
    max_length = tf.convert_to_tensor(max_length, tf.int32)
    state = tf.nest.map_structure(tf.convert_to_tensor, state)
    neg_inf = tf.constant(float("-inf"), tf.float32)
    # Only beam 0 is live at first; the others start at -inf, so the first step's K best candidates
    # are K distinct continuations of the start token rather than K copies of the best.
    alive_scores = tf.tile(tf.concat([[0.0], tf.fill([k - 1], neg_inf)], 0)[None, :], [batch_size, 1])
    alive_seqs = tf.zeros([batch_size, k, 0], tf.int32)  # [B, K, steps so far]
    tokens = tf.fill([batch_size * k], tf.constant(start_id, tf.int32))
    finished_scores = tf.fill([batch_size, k], neg_inf)  # normalised; -inf marks an empty slot
    finished_seqs = tf.zeros([batch_size, k, 0], tf.int32)
    finished_lengths = tf.zeros([batch_size, k], tf.int32)
    done = tf.zeros([batch_size], tf.bool)
    best_possible_factor = length_penalty_factor(max_length, length_penalty)
    rank_in_top_k = tf.range(2 * k) < k  # [2K]
    beam_offsets = tf.range(batch_size)[:, None] * k  # [B, 1]: row of each sentence's beam 0

    def keep_going(step, tokens, state, alive_scores, alive_seqs, f_scores, f_seqs, f_lengths, done):
        return tf.logical_not(tf.reduce_all(done))

    def one_step(step, tokens, state, alive_scores, alive_seqs, f_scores, f_seqs, f_lengths, done):
        logits, state = next_fn(tokens, state)
        log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32))  # [B*K, V]
        vocab = tf.shape(log_probs)[-1]
        scores = alive_scores[:, :, None] + tf.reshape(log_probs, [batch_size, k, vocab])
        # 2K candidates: at most K of them end (one end id per beam), so K live ones always remain.
        top_scores, top_ids = tf.math.top_k(tf.reshape(scores, [batch_size, k * vocab]), k=2 * k)
        parents, chosen = top_ids // vocab, top_ids % vocab  # [B, 2K]
        candidates = tf.concat([tf.gather(alive_seqs, parents, batch_dims=1), chosen[:, :, None]], 2)
        ends = tf.equal(chosen, end_id)

        # Ended candidates join the sentence's finished pool, which keeps its K best.
        length = step + 1
        new_finished = ends & rank_in_top_k[None, :] & tf.logical_not(done)[:, None]
        new_scores = tf.where(
            new_finished, top_scores / length_penalty_factor(length, length_penalty), neg_inf
        )
        f_seqs = tf.pad(f_seqs, [[0, 0], [0, 0], [0, 1]], constant_values=PAD_ID)
        f_scores, keep = tf.math.top_k(tf.concat([f_scores, new_scores], 1), k=k)
        f_seqs = tf.gather(tf.concat([f_seqs, candidates], 1), keep, batch_dims=1)
        f_lengths = tf.gather(
            tf.concat([f_lengths, tf.fill(tf.shape(new_scores), length)], 1), keep, batch_dims=1
        )

        # The K best candidates that did not end stay live.
        alive_scores, keep = tf.math.top_k(tf.where(ends, neg_inf, top_scores), k=k)
        alive_seqs = tf.gather(candidates, keep, batch_dims=1)
        tokens = tf.reshape(tf.gather(chosen, keep, batch_dims=1), [-1])
        rows = tf.reshape(tf.gather(parents, keep, batch_dims=1) + beam_offsets, [-1])  # [B*K]
        state = tf.nest.map_structure(lambda x: tf.gather(x, rows) if x.shape.rank else x, state)

        # Log-probabilities only fall as a prefix grows and the penalty factor only grows with
        # length, so a live beam can reach at most its score now over the factor at max_length.
        enough = tf.reduce_sum(tf.cast(f_scores > neg_inf, tf.int32), 1) >= k
        unbeatable = f_scores[:, 0] >= alive_scores[:, 0] / best_possible_factor
        done = done | enough | unbeatable
        return step + 1, tokens, state, alive_scores, alive_seqs, f_scores, f_seqs, f_lengths, done

    loop_vars = (
        tf.constant(0),
        tokens,
        state,
        alive_scores,
        alive_seqs,
        finished_scores,
        finished_seqs,
        finished_lengths,
        done,
    )
    growing = tf.TensorShape([None, k, None])
    invariants = tf.nest.map_structure(lambda x: x.shape, loop_vars)
    invariants = (*invariants[:4], growing, invariants[5], growing, *invariants[7:])
    steps, _, _, alive_scores, alive_seqs, f_scores, f_seqs, f_lengths, _ = tf.while_loop(
        keep_going,
        one_step,
        loop_vars,
        shape_invariants=invariants,
        maximum_iterations=max_length,
    )
    # The best ended hypothesis of each sentence, else (none ended by max_length) its best live prefix.
    any_finished = f_scores[:, 0] > neg_inf
    alive_best = tf.argmax(alive_scores, axis=1, output_type=tf.int32)
    best = tf.where(any_finished[:, None], f_seqs[:, 0], tf.gather(alive_seqs, alive_best, batch_dims=1))
    lengths = tf.where(any_finished, f_lengths[:, 0], steps)
    return best[:, : tf.reduce_max(lengths)]
