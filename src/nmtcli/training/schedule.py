"""The learning rate over training steps: linear warmup, then the inverse square root of the step.

``rate(step) = peak * scale * min(s / warmup, sqrt(warmup / s))`` with ``s = step + 1``: it rises
linearly to ``peak`` at step ``warmup`` and falls as ``1 / sqrt(s)`` after (Vaswani et al., 2017,
with the peak given directly instead of through d_model). ``step`` is the optimizer's ``iterations``,
the updates applied so far, which Keras' ``BackupAndRestore`` restores with the optimizer: a resumed
run continues the curve where it stopped.

``scale`` is what ``ReduceLearningRateOnPlateau`` multiplies when the validation figure stalls,
instead of replacing the rate (Keras refuses to set a scheduled rate). It is a variable, so a cut
reaches the compiled training step at once; it is not saved with the optimizer, so after a resume
the callback sets it again from the history (see ``callbacks``). The cool-down of the last epoch
(``callbacks.CoolDown``, ``--cooldown``) multiplies the curve by a factor falling linearly to zero,
through two more such variables.

Registered as ``nmtcli>WarmupInverseSquareRoot``: an optimizer or compiled model saved with it
reloads in Keras' safe mode.
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="nmtcli")
class WarmupInverseSquareRoot(keras.optimizers.schedules.LearningRateSchedule):
    """``peak`` (the rate at step ``warmup_steps``, > 0) times ``scale`` times the warmup-then-
    inverse-square-root curve; ``warmup_steps`` >= 1. Called with the optimizer's step (a scalar
    integer tensor), returns a float32 scalar."""

    def __init__(self, peak: float, warmup_steps: int, scale: float = 1.0):
        if warmup_steps < 1:
            raise ValueError(f"warmup_steps must be at least 1; got {warmup_steps}")
        self.peak = float(peak)
        self.warmup_steps = int(warmup_steps)
        self.scale = keras.Variable(
            float(scale), trainable=False, dtype="float32", name="learning_rate_scale"
        )
        # The cool-down (``callbacks.CoolDown``): from step ``cooldown_start`` the rate falls linearly
        # to zero over ``cooldown_steps`` steps; 0 steps: none. Set per epoch, never saved, as ``scale``.
        self.cooldown_start = keras.Variable(0.0, trainable=False, dtype="float32", name="cooldown_start")
        self.cooldown_steps = keras.Variable(0.0, trainable=False, dtype="float32", name="cooldown_steps")

    def curve(self, step):
        """The unscaled factor at ``step`` (0 for the first update), in ``(0, 1]``."""
        s = ops.cast(step, "float32") + 1.0
        warmup = float(self.warmup_steps)
        return ops.minimum(s / warmup, ops.sqrt(warmup / s))

    def cooldown_factor(self, step):
        """1 outside a cool-down; inside, ``1 - (step - start) / steps``, down to ``1 / steps`` at its
        last step (as ``callbacks.CoolDown`` lowers a plain rate), and 0 after it."""
        steps = ops.convert_to_tensor(self.cooldown_steps)
        left = ops.convert_to_tensor(self.cooldown_start) + steps - ops.cast(step, "float32")
        return ops.where(steps > 0, ops.clip(left / ops.maximum(steps, 1.0), 0.0, 1.0), 1.0)

    def cool_down(self, start: int, steps: int) -> None:
        """Fall to zero over the ``steps`` steps from ``start`` (the optimizer's iterations then)."""
        self.cooldown_start.assign(float(start))
        self.cooldown_steps.assign(float(steps))

    def __call__(self, step):
        return self.peak * ops.convert_to_tensor(self.scale) * self.curve(step) * self.cooldown_factor(step)

    def get_config(self):
        return {
            "peak": self.peak,
            "warmup_steps": self.warmup_steps,
            "scale": float(ops.convert_to_numpy(self.scale)),
        }


def schedule_of(optimizer: keras.optimizers.Optimizer) -> WarmupInverseSquareRoot | None:
    """The warmup schedule driving ``optimizer`` (looking inside a mixed-precision loss-scale
    wrapper), or None when its learning rate is a plain value."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    rate = getattr(inner, "_learning_rate", None)
    return rate if isinstance(rate, WarmupInverseSquareRoot) else None
