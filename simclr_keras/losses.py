"""NT-Xent, the SimCLR contrastive loss, in backend-agnostic `keras.ops`.

Two equivalent forms are offered:

* `nt_xent(z_a, z_b, temperature)`: a plain function of the projections of
  the two views.
* `IOIOCrossEntropy`: a `keras.losses.Loss` against the `[I|O|I|O]` target,
  applied to the `(B, 4B)` log-softmax block of `SoftmaxCosineSim`. With that
  target it is exactly NT-Xent averaged over all `2B` anchors.

Everything is computed in float32 from logits with a log-softmax, so the loss
stays finite under `mixed_float16` / `mixed_bfloat16` policies.
"""

import keras
from keras import ops

from simclr_keras._checks import check_temperature
from simclr_keras._export import simclr_export

# Masks self-similarity. Finite on purpose: `0 * -inf` would be NaN where the
# target is zero, while `exp(-1e9 - max)` is exactly 0 in float32.
MASK_VALUE = -1e9


def contrastive_logits(z_a, z_b, temperature=0.1):
    """Temperature-scaled cosine logits of each view against all candidates.

    Args:
        z_a: Projections of the first view, shape `(B, d)`.
        z_b: Projections of the second view, shape `(B, d)`.
        temperature: Softmax temperature, > 0.

    Returns:
        A pair `(logits_a, logits_b)`, each of shape `(B, 2B)` in float32.
        Row `i` of `logits_a` is anchor `a_i` against `[b_1..b_B | a_1..a_B]`
        with `a_i` itself masked; `logits_b` is anchor `b_i` against
        `[a_1..a_B | b_1..b_B]` with `b_i` masked. The positive of row `i` is
        column `i` in both.

    Example:
    >>> la, lb = contrastive_logits(ops.ones((4, 8)), ops.ones((4, 8)))
    """
    check_temperature(temperature)
    z_a = ops.normalize(ops.cast(z_a, "float32"), axis=-1, order=2)
    z_b = ops.normalize(ops.cast(z_b, "float32"), axis=-1, order=2)
    inv_t = 1.0 / float(temperature)
    ab = ops.matmul(z_a, ops.transpose(z_b)) * inv_t
    aa = ops.matmul(z_a, ops.transpose(z_a)) * inv_t
    bb = ops.matmul(z_b, ops.transpose(z_b)) * inv_t
    self_mask = ops.eye(ops.shape(z_a)[0], dtype="bool")
    aa = ops.where(self_mask, MASK_VALUE, aa)
    bb = ops.where(self_mask, MASK_VALUE, bb)
    logits_a = ops.concatenate([ab, aa], axis=1)
    logits_b = ops.concatenate([ops.transpose(ab), bb], axis=1)
    return logits_a, logits_b


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


def ioio_target(batch_size, dtype="float32"):
    """The `[I|O|I|O]` target of shape `(B, 4B)` for `SoftmaxCosineSim`.

    Args:
        batch_size: `B`, the number of source images (an int or a scalar
            tensor).
        dtype: Output dtype.

    Returns:
        A `(B, 4B)` tensor: identity, zeros, identity, zeros.

    Example:
    >>> ops.shape(ioio_target(3))
    (3, 12)
    """
    eye = ops.eye(batch_size, dtype=dtype)
    zeros = ops.zeros_like(eye)
    return ops.concatenate([eye, zeros, eye, zeros], axis=1)


@simclr_export("simclr_keras.losses.IOIOCrossEntropy")
class IOIOCrossEntropy(keras.losses.Loss):
    """Cross-entropy against `[I|O|I|O]`, equal to NT-Xent over 2B anchors.

    Takes the log-softmax block of `SoftmaxCosineSim(output_mode="log_softmax")`.
    Each row holds two anchors (one per view), so the per-row cross-entropy is
    halved: the mean over rows is then the mean over all `2B` anchors.

    Args:
        name: Loss name.
        reduction: Keras reduction, default `"sum_over_batch_size"`.
        dtype: Loss dtype, float32 by default even under mixed precision.

    Returns:
        A loss object: `loss(y_true, log_probs)` is a float32 scalar.

    Example:
    >>> from simclr_keras.layers import SoftmaxCosineSim
    >>> z = keras.random.normal((4, 8), seed=1)
    >>> logp = SoftmaxCosineSim(0.1, output_mode="log_softmax")(
    ...     ops.concatenate([z, z]))
    >>> loss = IOIOCrossEntropy()(ioio_target(4), logp)
    >>> bool(loss > 0)
    True

    Reference:
        Chen et al., "A Simple Framework for Contrastive Learning of Visual
        Representations", ICML 2020.
    """

    def __init__(
        self,
        name="ioio_cross_entropy",
        reduction="sum_over_batch_size",
        dtype="float32",
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, "float32")
        y_pred = ops.cast(y_pred, "float32")
        return -0.5 * ops.sum(y_true * y_pred, axis=-1)


@simclr_export("simclr_keras.losses.contrastive_accuracy")
@keras.saving.register_keras_serializable(package="simclr_keras")
def contrastive_accuracy(y_true, y_pred):
    """Share of anchors whose positive is ranked first of its 2B-1 candidates.

    Args:
        y_true: The `[I|O|I|O]` target, `(B, 4B)`.
        y_pred: The `(B, 4B)` block of `SoftmaxCosineSim` (probabilities or
            log-probabilities: only the ranking matters).

    Returns:
        A `(B,)` float32 tensor, the mean over the two anchors of each row.

    Example:
    >>> acc = contrastive_accuracy(ioio_target(4), ioio_target(4))
    """
    half = ops.shape(y_pred)[1] // 2
    hits = []
    for start in (0, 1):
        pred = y_pred[:, start * half : (start + 1) * half]
        true = y_true[:, start * half : (start + 1) * half]
        hits.append(
            ops.cast(
                ops.equal(ops.argmax(pred, axis=1), ops.argmax(true, axis=1)),
                "float32",
            )
        )
    return 0.5 * (hits[0] + hits[1])
