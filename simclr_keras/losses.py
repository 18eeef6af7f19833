"""NT-Xent, the SimCLR contrastive loss, in backend-agnostic `keras.ops`.

One implementation: the function `nt_xent(z_a, z_b, temperature)` of the
projections of the two views, and `NTXent`, the thin `keras.losses.Loss`
that `SimCLR` trains with (it takes the `(2B, d)` projections, view a then
view b). `contrastive_accuracy` is the metric logged beside it.

The `[I|O|I|O]` form of the original Keras SimCLR code is the same loss: the
cross-entropy of `SoftmaxCosineSim(output_mode="log_softmax")`'s `(B, 4B)`
block against the target `[I|O|I|O]` (identity, zeros, identity, zeros),
halved, is NT-Xent averaged over the `2B` anchors. The tests check the two
are equal; it is not a second implementation.

Everything is computed in float32 from logits with a log-softmax, so the loss
stays finite under `mixed_float16` / `mixed_bfloat16` policies.
"""

import keras
from keras import ops

from simclr_keras._checks import check_temperature
from simclr_keras._export import simclr_export
from simclr_keras.contrastive import contrastive_logits, split_views


def nt_xent(z_a, z_b, temperature=0.1):
    """NT-Xent loss of two batches of projections, averaged over 2B anchors.

    Args:
        z_a: Projections of the first augmented view, shape `(B, d)`.
        z_b: Projections of the second view of the same images, `(B, d)`.
        temperature: Softmax temperature, > 0.

    Returns:
        A float32 scalar.

    Example:
    >>> z = keras.random.normal((8, 16), seed=0)
    >>> float(nt_xent(z, z + 0.01, temperature=0.5)) > 0
    True

    Reference:
        Chen, Kornblith, Norouzi, Hinton. "A Simple Framework for Contrastive
        Learning of Visual Representations", ICML 2020, eq. (1).
    """
    logits_a, logits_b = contrastive_logits(z_a, z_b, temperature)
    pos_a = ops.diagonal(ops.log_softmax(logits_a, axis=1))
    pos_b = ops.diagonal(ops.log_softmax(logits_b, axis=1))
    return -0.5 * (ops.mean(pos_a) + ops.mean(pos_b))


@simclr_export("simclr_keras.losses.NTXent")
class NTXent(keras.losses.Loss):
    """`nt_xent` as a Keras loss of the `(2B, d)` projections of two views.

    `y_pred` holds view a of the `B` images in rows `0..B-1` and view b in
    rows `B..2B-1`; `y_true` is unused (self-supervised: the positives are
    known from the layout).

    Args:
        temperature: Softmax temperature, > 0.
        name: Loss name.
        reduction: Keras reduction (the value is already a mean).
        dtype: Loss dtype, float32 by default even under mixed precision.

    Returns:
        A loss object: `loss(placeholder, projections)` is a float32 scalar
        (`placeholder`: any tensor, e.g. zeros of shape `(2B,)`).

    Example:
    >>> z = keras.random.normal((8, 16), seed=1)   # B = 4
    >>> bool(NTXent(0.1)(ops.zeros((8,)), z) > 0)
    True

    Reference:
        Chen et al., "A Simple Framework for Contrastive Learning of Visual
        Representations", ICML 2020, eq. (1).
    """

    def __init__(
        self, temperature=0.1, name="nt_xent", reduction="sum_over_batch_size", dtype="float32"
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.temperature = check_temperature(temperature)

    def call(self, y_true, y_pred):
        z_a, z_b = split_views(y_pred)
        return nt_xent(z_a, z_b, self.temperature)

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature}


@simclr_export("simclr_keras.losses.contrastive_accuracy")
@keras.saving.register_keras_serializable(package="simclr_keras")
def contrastive_accuracy(y_true, y_pred):
    """Share of anchors whose positive is ranked first of its 2B-1 candidates.

    Args:
        y_true: Unused (the positives are known from the layout).
        y_pred: The `(2B, d)` projections, view a then view b.

    Returns:
        A `(B,)` float32 tensor, the mean over the two anchors of each image.

    Example:
    >>> z = keras.random.normal((8, 16), seed=2)
    >>> float(ops.mean(contrastive_accuracy(None, ops.concatenate([z[:4], z[:4]]))))
    1.0
    """
    logits_a, logits_b = contrastive_logits(*split_views(y_pred), temperature=1.0)
    positive = ops.arange(ops.shape(logits_a)[0])
    hits = [
        ops.cast(ops.equal(ops.argmax(logits, axis=1), positive), "float32")
        for logits in (logits_a, logits_b)
    ]
    return 0.5 * (hits[0] + hits[1])
