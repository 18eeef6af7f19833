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

Both are built on `contrastive_logits`, the masked cosine logits of each view
against all candidates, which `SoftmaxCosineSim` shows as a layer too.
Everything is computed in float32 from logits with a log-softmax, so the loss
stays finite under `mixed_float16` / `mixed_bfloat16` policies.
"""

import keras
from keras import ops

from simclr_keras._checks import check_temperature
from simclr_keras._export import simclr_export

# Masks self-similarity. Finite on purpose: `0 * -inf` would be NaN where a
# target is zero, while `exp(-1e9 - max)` is exactly 0 in float32.
MASK_VALUE = -1e9
# Floor of the squared norm in `l2_normalize`: tf.math.l2_normalize's default,
# which SimCLR's reference code uses on its projections.
NORM_EPSILON_SQUARED = 1e-12


def l2_normalize(x, axis=-1):
    """Rows scaled to unit L2 norm; finite, value and gradient, at a zero row.

    `x / sqrt(max(sum(x ** 2), 1e-12))`: the square root only ever sees a
    positive number, so a row that is exactly zero (a dead ReLU, a zero
    bias at initialisation) maps to zero with a finite gradient, where
    `x / norm(x)` (or `keras.ops.normalize`) differentiates `sqrt` at 0 and
    gives NaN on JAX and PyTorch.

    Args:
        x: A float tensor.
        axis: The axis normalised.

    Returns:
        A tensor of the shape and dtype of `x`.

    Example:
    >>> ops.convert_to_numpy(l2_normalize(ops.zeros((1, 3)))).tolist()
    [[0.0, 0.0, 0.0]]
    """
    x = ops.convert_to_tensor(x)
    squared = ops.sum(ops.square(x), axis=axis, keepdims=True)
    return x * ops.rsqrt(ops.maximum(squared, NORM_EPSILON_SQUARED))


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
    >>> tuple(la.shape)
    (4, 8)
    """
    check_temperature(temperature)
    z_a = l2_normalize(ops.cast(z_a, "float32"))
    z_b = l2_normalize(ops.cast(z_b, "float32"))
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


def split_views(projections):
    """`(z_a, z_b)`: the two halves of a `(2B, d)` batch of projections
    (view a of every image first, then view b, as `SimCLR` stacks them).
    """
    half = ops.shape(projections)[0] // 2
    return projections[:half], projections[half:]


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
