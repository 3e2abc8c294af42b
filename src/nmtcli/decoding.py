"""Batched greedy and beam-search decoding over a step function, each in one TensorFlow loop, and the
one adapter that turns a model into such a step function (:class:`ModelSteps`).

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

Every tensor of ``state`` has the batch axis first (scalars are passed on unchanged); between steps
its rank and dtype stay, while any other axis may change size (the loops declare those axes free), so
a key/value cache may grow by one position per step. :func:`greedy_decode`,
:func:`greedy_decode_with_attention` and :func:`beam_decode` run a model through :class:`ModelSteps`;
``Translator`` and the SavedModel export call them inside their ``tf.function``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tensorflow as tf

from . import translation
from .config import DEFAULT_LENGTH_PENALTY
from .models import bf16
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
    """Pick the most likely token at every step (at the first, never the end id: see
    :func:`no_end_at_first_step`). Returns ids ``[B, steps]``, int32.

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


def no_end_at_first_step(logits: tf.Tensor, step: tf.Tensor, end_id: int) -> tf.Tensor:
    """``logits [N, V]`` with the end id ruled out at step 0, so that no translation is empty.

    As CTranslate2's ``min_decoding_length=1`` (and fairseq's ``min_len``): the end id's logit is set
    to -inf before any softmax, so a beam's first log-probabilities are those of the other tokens."""
    is_end = tf.equal(tf.range(tf.shape(logits)[-1]), end_id)
    ruled_out = tf.logical_and(tf.equal(step, 0), is_end)
    return tf.where(ruled_out, tf.constant(float("-inf"), logits.dtype), logits)


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
        chosen = tf.argmax(no_end_at_first_step(logits, step, end_id), axis=-1, output_type=tf.int32)
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
    invariants = (*invariants[:2], tf.nest.map_structure(_free_but_batch, state), *invariants[3:])
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


def _free_but_batch(x: tf.Tensor) -> tf.TensorShape:
    """A state tensor's loop invariant: its rank and batch axis kept, its other axes free to change
    size between steps (a growing key/value cache)."""
    shape = x.shape
    if shape.rank is None or shape.rank == 0:
        return shape
    return tf.TensorShape([shape[0]] + [None] * (shape.rank - 1))


def _batch_axis_free(shape: tf.TensorShape) -> tf.TensorShape:
    """``shape`` with its first axis unknown (scalars, and unknown ranks, unchanged)."""
    if shape.rank is None or shape.rank == 0:
        return shape
    return tf.TensorShape([None, *shape[1:]])


def gather_rows(nest: Any, rows: tf.Tensor) -> Any:
    """Every tensor of ``nest`` gathered along axis 0 by ``rows``; scalars left alone."""
    return tf.nest.map_structure(lambda x: tf.gather(x, rows) if x.shape.rank else x, nest)


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
    reorder: Callable[[Any, tf.Tensor], Any] | None = None,
) -> tf.Tensor:
    """Keep the ``beam_size`` most likely prefixes of each sentence. Returns ids ``[B, steps]``, int32.

    Each row is the best hypothesis of its sentence, its end id included, padded with ``PAD_ID``, as
    in ``greedy_search``; ``steps <= max_length``. ``state`` is any nest of tensors whose first axis
    holds the ``B * K`` beams sentence-major (see ``repeat_beams``); after each step it is reordered
    by each beam's parent: ``reorder(state, rows [B * K]) -> state`` (default :func:`gather_rows`, every
    tensor gathered along axis 0; scalars passed on unchanged).

    Scores are sums of log-softmax probabilities (nats). A hypothesis that ends scores ``log p / ((5 +
    n) / 6) ** length_penalty``, ``n`` its length in tokens with the end id (GNMT); ``length_penalty``
    >= 0: 0 compares plain log-probabilities, larger values favour longer outputs. The end id cannot
    come first (:func:`no_end_at_first_step`), so no hypothesis is empty. As in fairseq, an end
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
    reorder = reorder or gather_rows
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
        logits = no_end_at_first_step(tf.cast(logits, tf.float32), step, end_id)
        log_probs = tf.nn.log_softmax(logits)  # [B*K, V]
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
        state = reorder(state, rows)

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
    state_invariants = tf.nest.map_structure(_free_but_batch, state)
    invariants = (
        *invariants[:2],
        state_invariants,
        invariants[3],
        growing,
        invariants[5],
        growing,
        *invariants[7:],
    )
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


# --------------------------------------------------------------------------------------------------
# The glue between a model and the loops


def default_max_length(source_length: Any, max_target_length: int) -> Any:
    """The step limit when none is given (``translation.default_max_length``: twice the source length
    plus 10, capped). ``source_length`` a Python int or a scalar int32 tensor."""
    minimum = min if isinstance(source_length, int) else tf.minimum
    return translation.default_max_length(source_length, max_target_length, minimum)


class ModelSteps:
    """A model's decoding steps as the loops above call them: the one place where a model meets search.

    A model offers ``encode(source [B, S]) -> memory``, ``initial_state(memory) -> state`` and
    ``next(tokens [B], state, memory) -> (logits [B, V], state)`` (and, for attention pictures,
    ``next_with_attention`` that also returns ``weights [B, S]``); a new architecture writes only
    these. Here the loop state is ``(state, memory)``, so that memory travels with its sentence when
    greedy search drops ended rows. What ``state`` and ``memory`` may hold:

    - every tensor has the batch axis first (scalars are passed on unchanged): the loops drop, repeat
      and reorder rows along it;
    - ``memory`` never changes during a decode: beam search does not reorder it, since all beams of a
      sentence share it and a beam's parent is always a beam of the same sentence;
    - a tensor of ``state`` keeps its rank and dtype from step to step, while its other axes may change
      size: a key/value cache may grow by one position per step (concatenated along its time axis)
      or be allocated once and written in place.
    """

    def __init__(self, model: Any, with_attention: bool = False):
        self.model = model
        self.with_attention = with_attention

    def start(self, source: tf.Tensor, beam_size: int = 1) -> Any:
        """``source [B, S] -> (state, memory)``, rows repeated ``beam_size`` times (sentence-major)."""
        memory = self.model.encode(source, training=False)
        if beam_size > 1:
            memory = repeat_beams(memory, beam_size)
        return self.model.initial_state(memory), memory

    def next(self, tokens: tf.Tensor, carried: Any) -> tuple:
        """One step: ``(logits [N, V], (state, memory))``, with ``weights [N, S]`` after them when made
        ``with_attention``."""
        state, memory = carried
        if self.with_attention:
            logits, state, weights = self.model.next_with_attention(tokens, state, memory)
            return logits, (state, memory), weights
        logits, state = self.model.next(tokens, state, memory)
        return logits, (state, memory)

    @staticmethod
    def reorder(carried: Any, rows: tf.Tensor) -> Any:
        """Beam search's reordering: the decoder state follows each beam's parent, memory stays."""
        state, memory = carried
        return gather_rows(state, rows), memory


def greedy_decode(model: Any, source: tf.Tensor, max_length: Any, bf16_output: bool = False) -> tf.Tensor:
    """Greedy search with ``model``: ``source [B, S] int32 -> ids [B, T]``, ``T <= max_length``, padded
    after each sentence's end id; sentences leave the batch as they end. ``bf16_output``: see
    ``models.bf16``. Call it inside ``tf.function``."""
    steps = ModelSteps(model)
    with bf16.for_decoding(model, bf16_output):
        return greedy_search(
            steps.next, steps.start(source), tf.shape(source)[0], max_length, drop_finished=True
        )


def greedy_decode_with_attention(
    model: Any, source: tf.Tensor, max_length: Any, bf16_output: bool = False
) -> tuple[tf.Tensor, tf.Tensor]:
    """:func:`greedy_decode` that also returns the attention weights: ``(ids [B, T], weights [B, T, S])``
    (the same ids). Needs a model with ``next_with_attention``."""
    steps = ModelSteps(model, with_attention=True)
    with bf16.for_decoding(model, bf16_output):
        return greedy_search_with_attention(
            steps.next, steps.start(source), tf.shape(source)[0], max_length, drop_finished=True
        )


def beam_decode(
    model: Any,
    source: tf.Tensor,
    max_length: Any,
    beam_size: int,
    length_penalty: Any = DEFAULT_LENGTH_PENALTY,
    bf16_output: bool = False,
) -> tf.Tensor:
    """Beam search with ``model``: ``source [B, S] int32 -> ids [B, T]``, the best hypothesis of each
    sentence (see :func:`beam_search`). ``beam_size`` is a Python int: each size is its own graph."""
    steps = ModelSteps(model)
    with bf16.for_decoding(model, bf16_output):
        return beam_search(
            steps.next,
            steps.start(source, beam_size),
            tf.shape(source)[0],
            beam_size,
            max_length,
            length_penalty,
            reorder=steps.reorder,
        )
