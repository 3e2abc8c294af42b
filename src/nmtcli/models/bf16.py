"""The output layer's product in bfloat16, on CPUs that multiply bfloat16 natively: a CPU speed path
kept out of the model definitions.

The output layer is most of a word-level model's work (``V`` is tens of thousands). On a CPU with
AVX512-BF16 or AMX its product runs about twice as fast with bfloat16 operands (float32 weights,
float32 accumulation, float32 logits and softmax); a default-model training step 1.38x
(docs/benchmarks.md). Models ask :func:`output_matrix`; whether it rounds to bfloat16 is decided by
two switches that the callers own, each a ``with`` block around the code that traces the graphs:

- :func:`for_training` (``TrainConfig.bf16_output``, on by default): products of ``training=True``
  calls. Process-wide, because ``tf.distribute`` traces a replica's step in a thread of its own.
- :func:`for_decoding` (``DecodingConfig.bf16_output``, off by default): products of inference calls
  of one model, traced in this thread; the output matrix is cast once when the block starts (once per
  decoder call), not at every step. Where two words score within bfloat16's rounding, the other may
  be chosen.

Elsewhere (no native bfloat16, a GPU, a model computing in float16) both switches change nothing.

The Transformer goes further (:func:`training_policy`): on such a CPU it trains entirely under Keras'
``mixed_bfloat16`` policy (float32 weights and optimizer, bfloat16 products and activations, float32
attention softmax, logits and loss), by default, since ``TrainConfig.bf16_output`` is on. Measured on
spa.txt (docs/benchmarks.md, "Transformer on CPU"): a training step 1.29x faster than float32 on one
batch shape (0.76x-1.28x in three runs over variable shapes under a moving load), and the
validation cross-entropy after one epoch 0.56% above and 0.39% below float32's on two subsets (the
criterion: within 1%). The saved
``model.keras`` is float32 all the same (``RunFolder.save_model``), so translating is unchanged.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keras

_training = {"on": False}  # process-wide, see for_training
_decoding = threading.local()  # .matrices: {id(model): output matrix in bfloat16}


@functools.cache
def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX512-BF16 or AMX); elsewhere bfloat16 products
    are emulated and slower than float32."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def applies(features: Any) -> bool:
    """Whether a product of float32 ``features`` would run in bfloat16 here: the TensorFlow backend,
    no GPU, a CPU with native bfloat16."""
    return features.dtype == "float32" and cpu_native()


def cpu_native() -> bool:
    """Whether bfloat16 products run natively here: the TensorFlow backend, no GPU, a CPU with them."""
    import tensorflow as tf

    return (
        keras.backend.backend() == "tensorflow"
        and not tf.config.list_logical_devices("GPU")
        and cpu_has_bf16()
    )


# Architectures that train under mixed_bfloat16 on a CPU with native bfloat16 (see training_policy).
BF16_COMPUTE_ARCHS = ("transformer",)


def training_policy(arch: str, mixed_precision: bool, bf16_output: bool) -> str:
    """The Keras dtype policy a model of ``arch`` trains under: ``mixed_float16`` when mixed precision
    is asked for; ``mixed_bfloat16`` for the Transformer when ``bf16_output`` is on (the default) and
    this CPU multiplies bfloat16 natively; else ``float32``."""
    if mixed_precision:
        return "mixed_float16"
    if bf16_output and arch in BF16_COMPUTE_ARCHS and cpu_native():
        return "mixed_bfloat16"
    return "float32"


def decoding_applies(model: Any) -> bool:
    """Whether :func:`for_decoding` would change anything for ``model``: a float32 model here."""
    return model.output_projection.compute_dtype == "float32" and applies(model.output_matrix)


@contextlib.contextmanager
def for_training(enabled: bool = True) -> Iterator[None]:
    """Training graphs traced inside the block (``model.fit``) multiply the output layer in bfloat16
    where it applies. Process-wide while the block runs; the previous setting comes back after."""
    previous = _training["on"]
    _training["on"] = enabled
    try:
        yield
    finally:
        _training["on"] = previous


@contextlib.contextmanager
def for_decoding(model: Any, enabled: bool = True) -> Iterator[None]:
    """Inference steps of ``model`` traced inside the block, in this thread, multiply the output layer
    in bfloat16 where it applies. Use it inside the ``tf.function`` of a decoder, around the loop."""
    if not (enabled and decoding_applies(model)):
        yield
        return
    import tensorflow as tf

    matrices = _decoding.__dict__.setdefault("matrices", {})
    previous = matrices.get(id(model))
    matrices[id(model)] = tf.cast(model.output_matrix, tf.bfloat16)
    try:
        yield
    finally:
        if previous is None:
            del matrices[id(model)]
        else:
            matrices[id(model)] = previous


def output_matrix(model: Any, features: Any, training: bool) -> Any:
    """The matrix for a bfloat16 output product of ``model`` on ``features`` in this call (the
    model's ``output_matrix``, or its copy already in bfloat16), or None: the float32 layer as usual.
    Models pass it to :func:`matmul`."""
    if training:
        return model.output_matrix if _training["on"] and applies(features) else None
    return getattr(_decoding, "matrices", {}).get(id(model))


def matmul(x: Any, matrix: Any, transpose_b: bool = False) -> Any:
    """``x @ matrix`` with bfloat16 operands and float32 accumulation (oneDNN), as float32.

    Gradients flow through the casts: both backward products run in bfloat16 too."""
    import tensorflow as tf

    low = tf.matmul(
        tf.reshape(tf.cast(x, tf.bfloat16), [-1, tf.shape(x)[-1]]),
        tf.cast(matrix, tf.bfloat16),
        transpose_b=transpose_b,
    )
    columns = tf.shape(matrix)[0 if transpose_b else 1]
    return tf.reshape(tf.cast(low, tf.float32), tf.concat([tf.shape(x)[:-1], [columns]], axis=0))
