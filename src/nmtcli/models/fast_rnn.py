"""A faster way to run Keras LSTM and GRU layers on the CPU, with the layers' own weights.

On a CPU, Keras runs an LSTM (or a GRU) as a generic ``tf.while_loop``: every step multiplies both
the input and the state by their weights, applies the padding mask, and automatic differentiation
records every intermediate and multiplies by the weight gradients again at every step.
:func:`run_lstm` computes the same function in fewer, larger operations:

- the input projection ``x @ kernel + bias`` of all steps is one matrix product before the loop;
- the loop does one ``h @ recurrent_kernel`` and the gate arithmetic per step, and no masking: with
  right padding, steps past a sentence's end only change outputs nobody reads (the final state is
  taken at each sentence's last real token, and the loss ignores padded target positions);
- a hand-written gradient runs one reverse loop (one product by ``recurrent_kernel`` transposed per
  step) and then forms the weight gradients as three large products over all steps at once.

:func:`run_gru` and :func:`run_bidirectional_gru` do the same for GRU layers (``reset_after=True``,
Keras' default), except that for long batches the reverse loop recomputes each step's gates
instead of keeping them from the forward pass (memory at character level; see
``_gru_sigmoid_gates``). The layers stay plain Keras layers: they save and load as before, and on a
GPU (where Keras picks cuDNN), at inference, or in any configuration this module does not reproduce,
the ``run_*`` functions simply call them. Models call the ``run_*`` functions and nothing else: the
choice of path is made here. :func:`keras_layers_only` makes them call the Keras layers everywhere,
to compare the two paths (tests, ``benchmarks/rnn_step.py``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import keras
import tensorflow as tf

# Keras layers pass the padding mask on as a tensor attribute; so do the run_* functions here.
from keras.src.backend.common.masking import set_keras_mask

_keras_only = {"on": False}  # process-wide: tf.distribute traces replica steps in threads of their own


@contextlib.contextmanager
def keras_layers_only() -> Iterator[None]:
    """Graphs traced inside the block run the Keras recurrent layers, never the fast path."""
    previous = _keras_only["on"]
    _keras_only["on"] = True
    try:
        yield
    finally:
        _keras_only["on"] = previous


def run_lstm(layer: keras.layers.LSTM, inputs, initial_state=None, mask=None, training=False):
    """Call ``layer`` on ``inputs [B, T, I]``, on the fast path when it computes the same result.

    Returns what the layer returns with ``return_state=True``: ``(outputs, h [B, H], c [B, H])``,
    where ``outputs`` is ``[B, T, H]`` with ``return_sequences`` and the final ``h`` otherwise.
    ``mask [B, T]`` must be right-padded (as cuDNN also requires); as with Keras, the final states
    are those after each sequence's last unmasked step, ``outputs`` at masked steps repeat the last
    real output, and ``outputs`` carry the mask on to the layers after.
    """
    if layer.go_backwards or not _fast_path_applies(layer, inputs, training):
        return layer(inputs, initial_state=initial_state, mask=mask, training=training)
    cell = layer.cell
    batch = tf.shape(inputs)[0]
    if initial_state is None:
        zeros = tf.zeros([batch, cell.units], inputs.dtype)
        initial_state = (zeros, zeros)
    h0, c0 = (tf.convert_to_tensor(state) for state in initial_state)
    hs, cs = lstm_sequence(
        tf.transpose(inputs, [1, 0, 2]),
        h0,
        c0,
        tf.convert_to_tensor(cell.kernel),
        tf.convert_to_tensor(cell.recurrent_kernel),
        tf.convert_to_tensor(cell.bias),
    )
    if mask is None:
        h, c = hs[-1], cs[-1]
        last_output = h
    else:
        # Row b's state after its last real step: index length[b] in [state 0, step 1, ..., step T].
        lengths = tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)
        where = tf.stack([lengths, tf.range(batch)], axis=1)
        h, c = tf.gather_nd(hs, where), tf.gather_nd(cs, where)
        # Keras' last output of an all-padding row is zeros, while its state stays the initial one.
        last_output = tf.where((lengths > 0)[:, None], h, tf.zeros_like(h))
    if layer.return_sequences:
        return _as_keras_sequence(tf.transpose(hs[1:], [1, 0, 2]), mask, layer, last_output), h, c
    return last_output, h, c


def _as_keras_sequence(outputs, mask, layer, last_output):
    """``outputs [B, T, H]`` as the Keras ``layer`` returns them: at masked steps zeros with
    ``zero_output_for_mask`` (which Bidirectional sets), else the last real output ``[B, H]``; and
    the mask attached for the layers after."""
    if mask is None:
        return outputs
    fill = tf.zeros_like(last_output) if layer.zero_output_for_mask else last_output
    outputs = tf.where(mask[:, :, None], outputs, fill[:, None, :])
    set_keras_mask(outputs, mask)
    return outputs


def _fast_path_applies(layer: keras.layers.LSTM | keras.layers.GRU, inputs, training: bool) -> bool:
    """Only training (the hand-written gradient is the point; inference keeps Keras' loop, which a
    SavedModel export can serialise), and only configurations the loops here reproduce exactly, on a
    CPU, in float32."""
    cell = layer.cell
    return (
        training
        and not _keras_only["on"]
        and keras.backend.backend() == "tensorflow"
        and layer.built
        and not tf.config.list_logical_devices("GPU")
        and inputs.dtype == tf.float32
        and cell.compute_dtype == "float32"
        and cell.use_bias
        and cell.activation is keras.activations.tanh
        and cell.recurrent_activation is keras.activations.sigmoid
        and getattr(cell, "reset_after", True)
        and not (training and (cell.dropout or cell.recurrent_dropout))
        and not (layer.stateful or layer.unroll)
    )


def run_gru(layer: keras.layers.GRU, inputs, initial_state=None, mask=None, training=False):
    """Call the GRU ``layer`` on ``inputs [B, T, I]``, on the fast path when it computes the same result.

    Returns what the layer returns with ``return_state=True``: ``(outputs, h [B, H])``, where
    ``outputs`` is ``[B, T, H]`` with ``return_sequences`` and the final ``h`` otherwise. Masks as
    for :func:`run_lstm`. A ``go_backwards`` layer is left to Keras; see :func:`run_bidirectional_gru`.
    """
    if layer.go_backwards or not _fast_path_applies(layer, inputs, training):
        return layer(inputs, initial_state=initial_state, mask=mask, training=training)
    if isinstance(initial_state, (list, tuple)):
        (initial_state,) = initial_state
    outputs, h, lengths = _gru_fast(layer, inputs, initial_state, mask, reverse=False)
    # Keras' last output of an all-padding row is zeros, while its state stays the initial one.
    last_output = tf.where((lengths > 0)[:, None], h, tf.zeros_like(h))
    if layer.return_sequences:
        return _as_keras_sequence(outputs, mask, layer, last_output), h
    return last_output, h


def run_bidirectional_gru(layer: keras.layers.Bidirectional, inputs, mask=None, training=False):
    """``Bidirectional(GRU(return_sequences=True, return_state=True))`` with concatenated outputs:
    ``inputs [B, T, I] -> (outputs [B, T, 2H], forward h [B, H], backward h [B, H])``."""
    forward, backward = layer.forward_layer, layer.backward_layer
    if not (
        layer.merge_mode == "concat"
        and isinstance(forward, keras.layers.GRU)
        and forward.return_sequences
        and forward.zero_output_for_mask
        and not forward.go_backwards
        and _fast_path_applies(forward, inputs, training)
        and _fast_path_applies(backward, inputs, training)
    ):
        return layer(inputs, mask=mask, training=training)
    forward_outputs, forward_h, _ = _gru_fast(forward, inputs, None, mask, reverse=False)
    backward_outputs, backward_h, _ = _gru_fast(backward, inputs, None, mask, reverse=True)
    outputs = tf.concat([forward_outputs, backward_outputs], axis=-1)
    return _as_keras_sequence(outputs, mask, forward, tf.zeros_like(outputs[:, 0])), forward_h, backward_h


def _gru_fast(layer: keras.layers.GRU, inputs, initial_state, mask, reverse: bool):
    """``inputs [B, T, I] -> (outputs [B, T, H], final h [B, H], lengths [B])``; with ``reverse``,
    each sequence's real steps are read last to first, and outputs are returned in input order."""
    batch, steps = tf.shape(inputs)[0], tf.shape(inputs)[1]
    if initial_state is None:
        h0 = tf.zeros([batch, layer.cell.units], inputs.dtype)
    else:
        h0 = tf.convert_to_tensor(initial_state)
    lengths = tf.fill([batch], steps) if mask is None else tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)
    time_major = tf.transpose(inputs, [1, 0, 2])
    if reverse:
        # Each sentence's real tokens reversed in place, so that its padding stays at the end.
        time_major = tf.reverse_sequence(time_major, lengths, seq_axis=0, batch_axis=1)
    hs = gru_sequence(
        time_major,
        h0,
        tf.convert_to_tensor(layer.cell.kernel),
        tf.convert_to_tensor(layer.cell.recurrent_kernel),
        tf.convert_to_tensor(layer.cell.bias),
    )
    h = tf.gather_nd(hs, tf.stack([lengths, tf.range(batch)], axis=1))
    outputs = hs[1:]
    if reverse:
        outputs = tf.reverse_sequence(outputs, lengths, seq_axis=0, batch_axis=1)
    return tf.transpose(outputs, [1, 0, 2]), h, lengths


def lstm_sequence(inputs, h0, c0, kernel, recurrent_kernel, bias):
    """All steps of an LSTM with Keras' weight layout (gates ``i, f, c, o``; sigmoid and tanh).

    ``inputs [T, B, I]`` (time major), ``h0, c0 [B, H]``, ``kernel [I, 4H]``,
    ``recurrent_kernel [H, 4H]``, ``bias [4H]`` -> ``(hs, cs)``, each ``[T + 1, B, H]``: the
    initial state then the state after every step. Differentiable with respect to every argument.
    """
    # tanh(x) = 2 sigmoid(2x) - 1: with the candidate gate's columns doubled, one sigmoid over all
    # four gates replaces three sigmoids and a tanh per step (and their four gradients).
    units = tf.shape(h0)[1]
    scale = tf.concat([tf.ones([2 * units]), tf.fill([units], 2.0), tf.ones([units])], axis=0)
    scale = tf.cast(scale, kernel.dtype)
    return _lstm_sigmoid_gates(inputs, h0, c0, kernel * scale, recurrent_kernel * scale, bias * scale)


@tf.custom_gradient
def _lstm_sigmoid_gates(inputs, h0, c0, kernel, recurrent_kernel, bias):
    """``lstm_sequence`` with the candidate gate computed as ``2 sigmoid(z) - 1``."""
    steps, batch = tf.shape(inputs)[0], tf.shape(inputs)[1]
    units = tf.shape(h0)[1]
    dtype = inputs.dtype
    flat_inputs = tf.reshape(inputs, [-1, tf.shape(inputs)[2]])
    projected = tf.reshape(tf.matmul(flat_inputs, kernel) + bias, [steps, batch, 4 * units])

    def sequence(size, first=None):
        array = tf.TensorArray(dtype, size=size, element_shape=[None, None], clear_after_read=False)
        return array if first is None else array.write(0, first)

    def forward(t, h, c, hs, cs, gates):
        a = tf.sigmoid(projected[t] + tf.matmul(h, recurrent_kernel))  # [B, 4H]
        i, f, g, o = tf.split(a, 4, axis=1)
        c = f * c + i * (2.0 * g - 1.0)
        h = o * tf.tanh(c)
        return t + 1, h, c, hs.write(t + 1, h), cs.write(t + 1, c), gates.write(t, a)

    _, _, _, hs, cs, gates = tf.while_loop(
        lambda t, *_: t < steps,
        forward,
        (tf.constant(0), h0, c0, sequence(steps + 1, h0), sequence(steps + 1, c0), sequence(steps)),
    )
    all_h, all_c = hs.stack(), cs.stack()

    def gradient(d_all_h, d_all_c):
        # An output nothing depends on (the decoder's cell states) may come without a gradient.
        d_all_h = tf.zeros_like(all_h) if d_all_h is None else d_all_h
        d_all_c = tf.zeros_like(all_c) if d_all_c is None else d_all_c
        recurrent_t = tf.transpose(recurrent_kernel)  # once, so each step multiplies untransposed

        def backward(t, dh_next, dc_next, dzs):
            # Step t maps (h, c) at index t of all_h / all_c to index t + 1.
            a = gates.read(t)
            i, f, g, o = tf.split(a, 4, axis=1)
            tanh_c = tf.tanh(all_c[t + 1])
            dh = dh_next + d_all_h[t + 1]
            dc = dc_next + d_all_c[t + 1] + dh * o * (1.0 - tanh_c * tanh_c)
            d_gates = tf.concat([dc * (2.0 * g - 1.0), dc * all_c[t], 2.0 * dc * i, dh * tanh_c], axis=1)
            dz = d_gates * a * (1.0 - a)  # [B, 4H], through the sigmoid
            return t - 1, tf.matmul(dz, recurrent_t), dc * f, dzs.write(t, dz)

        zeros = tf.zeros_like(h0)
        _, dh0, dc0, dzs = tf.while_loop(
            lambda t, *_: t >= 0, backward, (steps - 1, zeros, zeros, sequence(steps))
        )
        # The weight gradients as three products over all steps at once.
        dz = tf.reshape(dzs.stack(), [-1, 4 * units])  # [T * B, 4H]
        d_inputs = tf.reshape(tf.matmul(dz, kernel, transpose_b=True), tf.shape(inputs))
        d_kernel = tf.matmul(flat_inputs, dz, transpose_a=True)
        d_recurrent = tf.matmul(tf.reshape(all_h[:-1], [-1, units]), dz, transpose_a=True)
        d_bias = tf.reduce_sum(dz, axis=0)
        return d_inputs, dh0 + d_all_h[0], dc0 + d_all_c[0], d_kernel, d_recurrent, d_bias

    return (all_h, all_c), gradient


def gru_sequence(inputs, h0, kernel, recurrent_kernel, bias):
    """All steps of a GRU with Keras' weight layout (``reset_after=True``; gates ``z, r, h``).

    ``inputs [T, B, I]``, ``h0 [B, H]``, ``kernel [I, 3H]``, ``recurrent_kernel [H, 3H]``,
    ``bias [2, 3H]`` (input bias, recurrent bias) -> ``hs [T + 1, B, H]``: the initial state then
    the state after every step. Differentiable with respect to every argument.
    """
    # As for the LSTM: the candidate's columns doubled, so tanh(x) = 2 sigmoid(2x) - 1.
    units = tf.shape(h0)[1]
    scale = tf.cast(tf.concat([tf.ones([2 * units]), tf.fill([units], 2.0)], axis=0), kernel.dtype)
    return _gru_sigmoid_gates(inputs, h0, kernel * scale, recurrent_kernel * scale, bias * scale)


# Above this many bytes of gates per GRU layer and batch (steps x batch x 4 units floats), the gradient
# recomputes each step's gates rather than keeping them: see _gru_sigmoid_gates. 16 MB is 64 steps at
# batch 64 and 256 units: word-level batches (about 20 steps, 5 MB) keep them, character-level ones of
# longer sentences recompute (docs/benchmarks.md, "Character level, the default architecture").
KEEP_GATES_MAX_BYTES = 16 * 2**20


def _keeps_gates(steps, batch, units, dtype: tf.DType):
    """Scalar bool tensor: whether ``steps x batch x 4 units`` floats of ``dtype`` fit the limit."""
    gate_bytes = tf.reduce_prod(tf.cast([steps, batch, 4 * units], tf.int64)) * dtype.size
    return gate_bytes <= KEEP_GATES_MAX_BYTES


@tf.custom_gradient
def _gru_sigmoid_gates(inputs, h0, kernel, recurrent_kernel, bias):
    """``gru_sequence`` with the candidate computed as ``2 sigmoid(u) - 1``.

    Each step's gates (``zr``, ``s`` and ``h @ recurrent_kernel``: 4H floats a row) are kept for the
    gradient when all of them fit in ``KEEP_GATES_MAX_BYTES``, decided at run time on the batch's
    shape. Otherwise only the states are kept and the reverse loop recomputes each step's gates from
    the state before it (one more ``h @ recurrent_kernel`` a step, and the input projection once):
    long character-level batches would keep hundreds of MB in pieces of one step each, where short
    word-level ones keep a few MB and would pay about 40% more CPU time a layer to recompute them.
    One forward and one reverse loop serve both, choosing per step with a ``tf.cond`` on ``keep``
    (the forward writes the gates only when kept; the reverse reads or recomputes them, and writes the
    kept mode's faster two pieces of 3H a step or the recomputing mode's smaller one of 4H). Whole
    loops under one ``tf.cond`` peaked 150-200 MB higher at character level (probably because a
    branch's inputs stay alive until it returns).
    """
    steps, batch = tf.shape(inputs)[0], tf.shape(inputs)[1]
    units = tf.shape(h0)[1]
    dtype = inputs.dtype
    flat_inputs = tf.reshape(inputs, [-1, tf.shape(inputs)[2]])
    recurrent_bias = bias[1]
    keep = _keeps_gates(steps, batch, units, dtype)

    def sequence(size, first=None):
        array = tf.TensorArray(dtype, size=size, element_shape=[None, None], clear_after_read=False)
        return array if first is None else array.write(0, first)

    def input_projection():  # [T, B, 3H]
        return tf.reshape(tf.matmul(flat_inputs, kernel) + bias[0], [steps, batch, 3 * units])

    def gates(x, h):
        """One step's ``(zr [B, 2H], s [B, H], m_h [B, H])`` from its input projection and previous state."""
        x_zr, x_h = tf.split(x, [2 * units, units], axis=1)
        m_zr, m_h = tf.split(tf.matmul(h, recurrent_kernel) + recurrent_bias, [2 * units, units], axis=1)
        zr = tf.sigmoid(x_zr + m_zr)
        s = tf.sigmoid(x_h + zr[:, units:] * m_h)
        return zr, s, m_h

    projected = input_projection()

    def forward(t, h, hs, *kept):
        zr, s, m_h = gates(projected[t], h)
        candidate = 2.0 * s - 1.0
        h = candidate + zr[:, :units] * (h - candidate)
        kept = tf.cond(
            keep,
            lambda: [array.write(t, value) for array, value in zip(kept, (zr, s, m_h), strict=True)],
            lambda: list(kept),
        )
        return t + 1, h, hs.write(t + 1, h), *kept

    # The gates, written only when kept: zr [B, 2H], s [B, H], m_h [B, H] a step.
    arrays = [sequence(steps) for _ in range(3)]
    _, _, hs, *kept = tf.while_loop(
        lambda t, *_: t < steps, forward, (tf.constant(0), h0, sequence(steps + 1, h0), *arrays)
    )
    all_h = hs.stack()

    def gradient(d_all_h):
        recurrent_t = tf.transpose(recurrent_kernel)

        def step_gradients(t, dh_next, zr, s, m_h):
            """Step t's ``dh [B, H]`` and the gradients of its gates' pre-activations ``d_zr [B, 2H]``,
            ``d_u [B, H]`` (the candidate's) and ``d_ur [B, H]`` (its recurrent product's)."""
            h_prev = all_h[t]
            z, r = tf.split(zr, 2, axis=1)
            dh = dh_next + d_all_h[t + 1]
            d_u = dh * (1.0 - z) * 2.0 * s * (1.0 - s)  # through h = c + z (h_prev - c), c = 2 s - 1
            d_zr = tf.concat([dh * (h_prev - (2.0 * s - 1.0)), d_u * m_h], axis=1) * zr * (1.0 - zr)
            return dh * z, d_zr, d_u, d_u * r

        # Not before the gradient arrives: else the graph may run it during the forward pass.
        with tf.control_dependencies([d_all_h]):
            projected = tf.cond(keep, lambda: tf.zeros([0, batch, 3 * units], dtype), input_projection)

        def kept_step(t, dh_next, d_inner, d_projected, d_gates):
            # Two pieces of 3H a step (the input projection's gradient, the recurrent product's): the
            # fastest layout, and these sequences are short.
            dh_z, d_zr, d_u, d_ur = step_gradients(t, dh_next, *(array.read(t) for array in kept))
            dm = tf.concat([d_zr, d_ur], axis=1)
            dh = dh_z + tf.matmul(dm, recurrent_t)
            return dh, d_inner.write(t, dm), d_projected.write(t, tf.concat([d_zr, d_u], axis=1)), d_gates

        def recomputed_step(t, dh_next, d_inner, d_projected, d_gates):
            # One piece of 4H a step: the input projection's gradient is the first 3H, the recurrent
            # product's the first 2H and the last H. Less memory held than two of 3H.
            dh_z, d_zr, d_u, d_ur = step_gradients(t, dh_next, *gates(projected[t], all_h[t]))
            dh = dh_z + tf.matmul(tf.concat([d_zr, d_ur], axis=1), recurrent_t)
            return dh, d_inner, d_projected, d_gates.write(t, tf.concat([d_zr, d_u, d_ur], axis=1))

        def backward(t, *carried):
            step = tf.cond(keep, lambda: kept_step(t, *carried), lambda: recomputed_step(t, *carried))
            return t - 1, *step

        _, dh0, dm, dp, d_gates = tf.while_loop(
            lambda t, *_: t >= 0,
            backward,
            (steps - 1, tf.zeros_like(h0), sequence(steps), sequence(steps), sequence(steps)),
        )

        def from_kept_gates():
            d_inner = tf.reshape(dm.stack(), [-1, 3 * units])  # [T * B, 3H]
            d_projected = tf.reshape(dp.stack(), [-1, 3 * units])
            return (
                tf.reshape(tf.matmul(d_projected, kernel, transpose_b=True), tf.shape(inputs)),
                tf.matmul(flat_inputs, d_projected, transpose_a=True),
                tf.matmul(tf.reshape(all_h[:-1], [-1, units]), d_inner, transpose_a=True),
                tf.stack([tf.reduce_sum(d_projected, axis=0), tf.reduce_sum(d_inner, axis=0)]),
            )

        def from_recomputed_gates():
            columns = tf.reshape(d_gates.stack(), [-1, 4 * units])  # [T * B, 4H]

            def recurrent_part(values):  # [..., 4H] -> [..., 3H]: the z, r and recurrent-product columns
                return tf.concat([values[..., : 2 * units], values[..., 3 * units :]], axis=-1)

            # Products with all 4H columns, then columns dropped: cheaper than slicing [T * B, 4H].
            padded_kernel = tf.concat([kernel, tf.zeros_like(kernel[:, :units])], axis=1)
            column_sums = tf.reduce_sum(columns, axis=0)
            return (
                tf.reshape(tf.matmul(columns, padded_kernel, transpose_b=True), tf.shape(inputs)),
                tf.matmul(flat_inputs, columns, transpose_a=True)[:, : 3 * units],
                recurrent_part(tf.matmul(tf.reshape(all_h[:-1], [-1, units]), columns, transpose_a=True)),
                tf.stack([column_sums[: 3 * units], recurrent_part(column_sums)]),
            )

        d_inputs, d_kernel, d_recurrent, d_bias = tf.cond(keep, from_kept_gates, from_recomputed_gates)
        return d_inputs, dh0 + d_all_h[0], d_kernel, d_recurrent, d_bias

    return all_h, gradient
