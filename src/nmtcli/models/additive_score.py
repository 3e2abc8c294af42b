"""Bahdanau's additive attention score without the ``[B, T, S, units]`` tensor in memory.

``score[b, t, s] = sum_u scale[u] * tanh(q[b, t, u] + k[b, s, u])``. Keras's ``AdditiveAttention``
computes it by broadcasting, which holds a ``[B, T, S, units]`` tensor (and keeps it for the
gradient): at character level, 64 sentences of 300 characters with 256 units make 5.9 GB. Here the
target positions are taken a chunk at a time, forward and backward (the gradient recomputes the
``tanh`` per chunk instead of keeping it), so at most about ``CHUNK_ELEMENTS`` values of that tensor
exist at once whatever the sentence lengths. Same values as Keras to float rounding, same weights.
"""

from __future__ import annotations

import keras

# Elements of the [B, chunk, S, units] slice alive at once (x4 bytes in float32): 32 MB.
CHUNK_ELEMENTS = 1 << 23


def additive_score(query, key, scale):
    """``query [B, T, U], key [B, S, U], scale [U] -> scores [B, T, S]``, in ``query``'s dtype."""
    import tensorflow as tf

    @tf.custom_gradient
    def score(query, key, scale):
        batch, target, units = tf.unstack(tf.shape(query))
        source = tf.shape(key)[1]
        per_step = tf.maximum(batch * source * units, 1)
        chunk = tf.clip_by_value(CHUNK_ELEMENTS // per_step, 1, tf.maximum(target, 1))
        chunks = (target + chunk - 1) // chunk
        padded = tf.pad(query, [[0, 0], [0, chunks * chunk - target], [0, 0]])
        # [chunks, B, chunk, U]: map_fn walks the first axis one slice at a time.
        pieces = tf.transpose(tf.reshape(padded, [batch, chunks, chunk, units]), [1, 0, 2, 3])
        scale_ = tf.cast(scale, query.dtype)

        def tanh_of(piece):  # [B, chunk, U] -> [B, chunk, S, U]
            return tf.tanh(piece[:, :, None, :] + key[:, None, :, :])

        def forward(piece):
            return tf.tensordot(tanh_of(piece), scale_, 1)  # [B, chunk, S]

        # One slice at a time: the default lets up to 10 run at once, each with its own tanh slice.
        scores = tf.map_fn(forward, pieces, fn_output_signature=query.dtype, parallel_iterations=1)
        scores = tf.reshape(tf.transpose(scores, [1, 0, 2, 3]), [batch, chunks * chunk, source])
        scores = scores[:, :target]
        scores.set_shape([query.shape[0], query.shape[1], key.shape[1]])  # what shapes are known statically

        def gradient(upstream):
            # d score / d (q + k) = upstream * scale * (1 - tanh^2), summed over s for the query and
            # over t for the key; scale, the same for every term of a sum, is multiplied in after.
            padded_up = tf.pad(upstream, [[0, 0], [0, chunks * chunk - target], [0, 0]])
            grads = tf.transpose(tf.reshape(padded_up, [batch, chunks, chunk, source]), [1, 0, 2, 3])

            def backward(i, slopes_query, slopes_key, d_scale):
                grad = grads[i]  # [B, chunk, S]
                tanh = tanh_of(pieces[i])
                d_scale += tf.tensordot(grad, tanh, [[0, 1, 2], [0, 1, 2]])
                weighted = grad[..., None] * (1.0 - tf.square(tanh))
                # Summed as it goes: a stack of per-chunk key terms would be [T, B, S, U] again.
                slopes_key += tf.reduce_sum(weighted, axis=1)
                return i + 1, slopes_query.write(i, tf.reduce_sum(weighted, axis=2)), slopes_key, d_scale

            _, slopes_query, slopes_key, d_scale = tf.while_loop(
                lambda i, *_: i < chunks,
                backward,
                (
                    tf.constant(0),
                    tf.TensorArray(query.dtype, size=chunks),
                    tf.zeros_like(key),
                    tf.zeros_like(scale_),
                ),
                parallel_iterations=1,  # as in the forward map_fn
            )
            slopes_query = tf.reshape(
                tf.transpose(slopes_query.stack(), [1, 0, 2, 3]), [batch, chunks * chunk, units]
            )[:, :target]
            d_query = scale_ * slopes_query
            d_key = scale_ * slopes_key
            d_query.set_shape(query.shape)
            return d_query, d_key, tf.cast(d_scale, scale.dtype)

        return scores, gradient

    if query.shape[1] == 1:  # one decoding step: [B, 1, S, units] is small, and a loop costs time
        return keras.ops.sum(scale * keras.ops.tanh(query[:, :, None, :] + key[:, None, :, :]), axis=-1)
    # A tensor, not the variable: the gradient reaches the variable through this read.
    return score(query, key, tf.identity(scale))


@keras.saving.register_keras_serializable(package="nmtcli")
class ChunkedAdditiveAttention(keras.layers.AdditiveAttention):
    """Keras's ``AdditiveAttention(use_scale=True)`` with the score computed by :func:`additive_score`.

    Same weights (one ``scale`` vector) and same outputs; only the memory differs.
    """

    def _calculate_scores(self, query, key):
        if not self.use_scale:
            return super()._calculate_scores(query, key)
        return additive_score(query, key, self.scale)
