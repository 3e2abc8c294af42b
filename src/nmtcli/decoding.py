"""Batched greedy decoding over a step function, in one TensorFlow loop.

The loop knows nothing about models: it calls ``next_fn(tokens [B], state) -> (logits [B, V], state)``
until every sentence has produced the end id or ``max_length`` steps have run. A test drives it with
a fake step function that returns fixed logits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tensorflow as tf

from .vectorizers import END_ID, PAD_ID, START_ID

StepFn = Callable[[tf.Tensor, Any], tuple[tf.Tensor, Any]]


def greedy_search(
    next_fn: StepFn,
    state: Any,
    batch_size: tf.Tensor | int,
    max_length: tf.Tensor | int,
    start_id: int = START_ID,
    end_id: int = END_ID,
) -> tf.Tensor:
    """Pick the most likely token at every step. Returns ids ``[B, steps]``, int32.

    A sentence that has ended is padded with ``PAD_ID``; ``steps <= max_length``. ``state`` is any
    nest of tensors whose shapes stay fixed from step to step. Wrap the caller in ``tf.function``.
    """
    tokens = tf.fill([batch_size], tf.constant(start_id, tf.int32))
    finished = tf.zeros([batch_size], tf.bool)
    outputs = tf.TensorArray(tf.int32, size=0, dynamic_size=True)

    def keep_going(step, tokens, state, finished, outputs):
        return tf.logical_not(tf.reduce_all(finished))

    def one_step(step, tokens, state, finished, outputs):
        logits, state = next_fn(tokens, state)
        chosen = tf.argmax(logits, axis=-1, output_type=tf.int32)
        chosen = tf.where(finished, tf.constant(PAD_ID, tf.int32), chosen)
        finished = tf.logical_or(finished, tf.equal(chosen, end_id))
        return step + 1, chosen, state, finished, outputs.write(step, chosen)

    _, _, _, _, outputs = tf.while_loop(
        keep_going,
        one_step,
        (tf.constant(0), tokens, state, finished, outputs),
        maximum_iterations=max_length,
    )
    ids = outputs.stack()  # [steps, B]
    return tf.transpose(tf.reshape(ids, [-1, batch_size]))
