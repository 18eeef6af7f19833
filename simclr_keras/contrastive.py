"""The cosine-similarity logits that NT-Xent and `SoftmaxCosineSim` share.

One small module below both `losses` and `layers`, so neither imports the
other.
"""

from keras import ops

from simclr_keras._checks import check_temperature

# Masks self-similarity. Finite on purpose: `0 * -inf` would be NaN where a
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
    >>> tuple(la.shape)
    (4, 8)
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


def split_views(projections):
    """`(z_a, z_b)`: the two halves of a `(2B, d)` batch of projections
    (view a of every image first, then view b, as `SimCLR` stacks them).
    """
    half = ops.shape(projections)[0] // 2
    return projections[:half], projections[half:]
