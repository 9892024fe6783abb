"""Label-smoothed sparse cross-entropy over padded sequences.

Written here because Keras offers label smoothing only on one-hot targets
(`CategoricalCrossentropy`), which for a translation batch means a
`(B, T, V)` float tensor of targets per step; this computes the same loss
from integer ids. Padding is excluded through `sample_weight` (the data
pipelines yield `labels != pad`) and the `"mean_with_sample_weight"`
reduction, so the loss is the mean over real tokens only.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="zoo")
class SparseCrossentropyWithSmoothing(keras.losses.Loss):
    """Cross-entropy from logits with integer targets and label smoothing.

    With smoothing `e` over `V` classes the target distribution is
    `(1 - e) * onehot(y) + e / V`, so the loss per token is
    `-(1 - e) * log p_y - (e / V) * sum_k log p_k` (Szegedy et al., 2016;
    0.1 in Vaswani et al., 2017).

    Args:
        label_smoothing: float in `[0, 1)`. Defaults to `0.1`.
        reduction: Keras reduction. Defaults to `"mean_with_sample_weight"`.
        name: str.

    Example:
    >>> loss = SparseCrossentropyWithSmoothing(0.0)
    >>> round(float(loss([[1]], [[[0.0, 0.0]]])), 4)
    0.6931
    """

    def __init__(
        self,
        label_smoothing=0.1,
        reduction="mean_with_sample_weight",
        name="sparse_crossentropy_with_smoothing",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1). Received: label_smoothing={label_smoothing}")
        self.label_smoothing = label_smoothing

    def call(self, y_true, y_pred):
        log_probs = ops.log_softmax(ops.cast(y_pred, "float32"), axis=-1)  # (B, T, V)
        vocab = ops.shape(log_probs)[-1]
        y_true = ops.cast(y_true, "int32")
        true_log_prob = ops.take_along_axis(log_probs, y_true[..., None], axis=-1)[..., 0]
        loss = -(1.0 - self.label_smoothing) * true_log_prob
        if self.label_smoothing:
            loss -= self.label_smoothing * ops.sum(log_probs, axis=-1) / ops.cast(vocab, "float32")
        return loss  # (B, T)

    def get_config(self):
        return {"label_smoothing": self.label_smoothing, "reduction": self.reduction, "name": self.name}
