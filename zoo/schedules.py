"""Learning-rate schedules that Keras does not ship.

Keras' `CosineDecay` already does linear warm-up + cosine decay (the ViT
recipe uses it); the Transformer paper's inverse-square-root schedule is not
in Keras or keras-hub, so it is written here.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="zoo")
class InverseSqrtSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """`lr = scale * d_model^-0.5 * min(step^-0.5, step * warmup^-1.5)`.

    Linear warm-up for `warmup_steps`, then decay with the inverse square
    root of the step (Vaswani et al., 2017, equation 3). Peak
    `scale * (d_model * warmup_steps)^-0.5` at the end of warm-up.

    Args:
        d_model: int. Model width.
        warmup_steps: int. Defaults to `4000` (the paper's).
        scale: float. Multiplies the whole schedule. Defaults to `1.0`.

    Example:
    >>> schedule = InverseSqrtSchedule(d_model=512, warmup_steps=4000)
    >>> round(float(schedule(4000)), 6)
    0.000699
    """

    def __init__(self, d_model, warmup_steps=4000, scale=1.0):
        if warmup_steps < 1 or d_model < 1:
            raise ValueError(
                f"d_model and warmup_steps must be >= 1. Received: d_model={d_model}, warmup_steps={warmup_steps}"
            )
        self.d_model = d_model
        self.warmup_steps = warmup_steps
        self.scale = scale

    def __call__(self, step):
        step = ops.maximum(ops.cast(step, "float32"), 1.0)
        warmup = ops.cast(self.warmup_steps, "float32")
        rate = ops.minimum(ops.rsqrt(step), step * ops.power(warmup, -1.5))
        return self.scale * (self.d_model**-0.5) * rate

    def get_config(self):
        return {"d_model": self.d_model, "warmup_steps": self.warmup_steps, "scale": self.scale}
