"""Training a model into a run folder, split by concern:

- ``loss``: the training objective (``MaskedCrossEntropy``) and the per-token cross-entropy metric;
- ``callbacks``: the history recorder and the callbacks that read it (best model, learning-rate cuts,
  early stopping, the last epoch's cool-down, time budget, validation BLEU);
- ``schedule``: the warmup then inverse-square-root learning rate (``WarmupInverseSquareRoot``);
- ``workers``: multi-worker handling beside ``nmtcli.distribution``;
- ``fit``: ``train()``, the one entry point.
"""

from __future__ import annotations

from .callbacks import (
    MIN_LEARNING_RATE,
    CoolDown,
    RecordHistory,
    ReduceLearningRateOnPlateau,
    SaveBestModel,
    StopAtTimeBudget,
    StopEarly,
    ValidationBleu,
    bleu_sample,
)
from .fit import TrainResult, TranslatorFactory, dtype_policy, make_optimizer, train
from .loss import MaskedCrossEntropy, TokenCrossEntropy, masked_loss
from .schedule import WarmupInverseSquareRoot, schedule_of

__all__ = [
    "MIN_LEARNING_RATE",
    "CoolDown",
    "MaskedCrossEntropy",
    "RecordHistory",
    "ReduceLearningRateOnPlateau",
    "SaveBestModel",
    "StopAtTimeBudget",
    "StopEarly",
    "TokenCrossEntropy",
    "TrainResult",
    "TranslatorFactory",
    "ValidationBleu",
    "WarmupInverseSquareRoot",
    "bleu_sample",
    "dtype_policy",
    "make_optimizer",
    "masked_loss",
    "schedule_of",
    "train",
]
