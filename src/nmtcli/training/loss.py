"""The training objective and the figure users see: masked, optionally label-smoothed cross-entropy
(``MaskedCrossEntropy``, Keras' ``loss``, recorded as ``objective``) and the plain cross-entropy per
real target token over an epoch (``TokenCrossEntropy``, recorded as ``cross_entropy``).

Both are registered Keras objects (``nmtcli>MaskedCrossEntropy``, ``nmtcli>TokenCrossEntropy``).
"""

from __future__ import annotations

import keras
from keras import ops

from ..vectorizers import PAD_ID


@keras.saving.register_keras_serializable(package="nmtcli")
class MaskedCrossEntropy(keras.losses.Loss):
    """Cross-entropy on logits averaged over real (non-padding) target tokens, with optional label
    smoothing: ``(1 - e) * nll + e * mean_v(-log p_v)`` (Szegedy et al., 2016).

    Each position's share is divided by the batch's real-token count here and the shares summed
    (reduction ``sum``). That stays right whether or not Keras finds a padding mask on the logits:
    with ``sum`` a mask only multiplies by 0/1, where a mean reduction would rescale a second time.
    """

    def __init__(
        self,
        label_smoothing: float = 0.0,
        weighted: bool = False,
        name: str = "masked_cross_entropy",
        **kwargs,
    ):
        kwargs["reduction"] = "sum"
        super().__init__(name=name, **kwargs)
        self.label_smoothing = label_smoothing
        self.weighted = weighted

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, "int32")
        logits = ops.cast(y_pred, "float32")
        nll = ops.sparse_categorical_crossentropy(y_true, logits, from_logits=True)  # one fused op
        if self.label_smoothing:  # mean_v(-log p_v) = logsumexp(logits) - mean(logits)
            uniform = ops.logsumexp(logits, axis=-1) - ops.mean(logits, axis=-1)
            nll = (1.0 - self.label_smoothing) * nll + self.label_smoothing * uniform
        mask = ops.cast(ops.not_equal(y_true, PAD_ID), "float32")
        if self.weighted:  # the batch's sample weights already divide by its real tokens
            return nll * mask
        return nll * mask / ops.maximum(ops.sum(mask), 1.0)

    def get_config(self):
        config = super().get_config()
        config.pop("reduction", None)  # always sum; see the class docstring
        return {**config, "label_smoothing": self.label_smoothing, "weighted": self.weighted}


def masked_loss(label_smoothing: float = 0.0, weighted: bool = False) -> keras.losses.Loss:
    """The training objective: cross-entropy over real target tokens, optionally label-smoothed.

    ``weighted``: for batches whose per-token weights already divide by the batch's token count
    (``make_dataset(replicas=...)``, under ``tf.distribute``): the weighted losses are summed.
    """
    return MaskedCrossEntropy(label_smoothing, weighted=weighted)


@keras.saving.register_keras_serializable(package="nmtcli")
class TokenCrossEntropy(keras.metrics.Metric):
    """Plain cross-entropy per real target token over a whole epoch (not a mean of batch means), so
    ``exp`` of it is the perplexity whatever the training objective."""

    def __init__(self, name: str = "cross_entropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.total = self.add_variable(shape=(), initializer="zeros", name="total", dtype="float32")
        self.tokens = self.add_variable(shape=(), initializer="zeros", name="tokens", dtype="float32")

    def update_state(self, y_true, y_pred, sample_weight=None):
        # Padding targets are id 0, a valid class, so no remapping is needed before the fused op;
        # their loss is masked out below.
        y_true = ops.cast(y_true, "int32")
        nll = ops.sparse_categorical_crossentropy(y_true, ops.cast(y_pred, "float32"), from_logits=True)
        mask = ops.cast(ops.not_equal(y_true, PAD_ID), "float32")
        self.total.assign_add(ops.sum(nll * mask))
        self.tokens.assign_add(ops.sum(mask))

    def result(self):
        return ops.divide_no_nan(self.total, self.tokens)

    def reset_state(self):
        self.total.assign(0.0)
        self.tokens.assign(0.0)
