"""The cosine-similarity logits that NT-Xent and `SoftmaxCosineSim` share.

One small module below both `losses` and `layers`, so neither imports the
other.
"""

from keras import ops

from simclr_keras._checks import check_temperature

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
