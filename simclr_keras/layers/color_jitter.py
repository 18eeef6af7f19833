"""SimCLR's colour jitter: per-image factors, a random order per image, float32.

Keras' preprocessing layers read a single `factor` as a range that starts at
the identity (`RandomContrast(0.8)` only raises contrast) and apply their
operations in a fixed order; this layer draws what SimCLR's official code
draws (`data_util.color_jitter_rand`), for every image of a batch at once,
and computes each adjustment once per image: at every step each operation
goes to a fixed quarter of the batch (`balanced_orders`), which the step
gathers and adjusts on its own, with static shapes (`ColorJitter`).
"""

import itertools

import keras
import numpy as np
from keras import ops

from simclr_keras._checks import check_jitter_strength, check_probability
from simclr_keras._export import simclr_export

# The order index of each operation in `order` (`sample_parameters`).
OPERATIONS = ("brightness", "contrast", "saturation", "hue")


def latin_squares(n=4):
    """Every Latin square of order `n`: `n` permutations of `range(n)` as
    rows, no symbol twice in a column.

    Args:
        n: The order.

    Returns:
        A `(count, n, n)` int32 array, rows in lexicographic order (576
        squares for `n = 4`).

    Example:
    >>> squares = latin_squares(4)
    >>> squares.shape
    (576, 4, 4)
    >>> squares[0].tolist()
    [[0, 1, 2, 3], [1, 0, 3, 2], [2, 3, 0, 1], [3, 2, 1, 0]]
    """
    rows = list(itertools.permutations(range(n)))
    squares = [()]
    for _ in range(n):
        squares = [
            square + (row,)
            for square in squares
            for row in rows
            if all(row[c] != above[c] for above in square for c in range(n))
        ]
    return np.array(squares, dtype="int32").reshape(-1, n, n)


# Rows: the images of a block; columns: the steps; symbols: `OPERATIONS`.
LATIN_SQUARES = latin_squares(4)


def padded_size(batch_size):
    """The batch size rounded up to a multiple of 4, the size of the blocks.

    Args:
        batch_size: An int, or a scalar int tensor (a batch size unknown
            while tracing).

    Returns:
        `4 * ceil(batch_size / 4)`, of `batch_size`'s kind.

    Example:
    >>> padded_size(5)
    8
    """
    return (batch_size + 3) // 4 * 4


def balanced_orders(batch_size, seed=None):
    """Random orders of the 4 operations, one per image, each uniform over
    the 24 permutations, with every operation at most `ceil(B / 4)` times at
    each step.

    The batch, padded to a multiple of 4, is grouped at random into blocks
    of 4 places, and each block gets a Latin square drawn uniformly from
    the 576 of order 4 (rows: its places, columns: the steps, symbols: the
    operations); image `i` takes the row of its place. Relabelling the
    symbols maps the Latin squares onto themselves, so each row, and hence
    each image's order, is uniform over the 24 permutations. The orders of
    the images of one block are dependent: no two of them apply the same
    operation at the same step.

    Args:
        batch_size: Number of images `B` (an int or a scalar tensor).
        seed: A `keras.random.SeedGenerator`, or an int or None to start
            one from (outside a traced function).

    Returns:
        A `(B, 4)` int32 tensor; row `i` is the order of image `i` (column
        k: the index in `OPERATIONS` of its k-th operation).

    Example:
    >>> order = ops.convert_to_numpy(balanced_orders(8, seed=0))
    >>> sorted(order[0].tolist())
    [0, 1, 2, 3]
    >>> [np.bincount(order[:, k], minlength=4).tolist() for k in range(4)]
    [[2, 2, 2, 2], [2, 2, 2, 2], [2, 2, 2, 2], [2, 2, 2, 2]]

    Reference:
        Chen et al., SimCLR, ICML 2020, appendix A; google-research/simclr
        `data_util.color_jitter_rand` (a random order per image).
    """
    if not isinstance(seed, keras.random.SeedGenerator):
        seed = keras.random.SeedGenerator(seed)
    padded = padded_size(batch_size)
    # argsort of i.i.d. uniforms: a uniform random permutation; place[i] is
    # the place of image i, and places 4b..4b+3 form block b.
    place = ops.argsort(keras.random.uniform((padded,), dtype="float32", seed=seed))
    square = keras.random.randint((padded // 4,), 0, len(LATIN_SQUARES), dtype="int32", seed=seed)
    by_place = ops.reshape(ops.take(LATIN_SQUARES, square, axis=0), (-1, 4))
    return ops.cast(ops.take(by_place, place[:batch_size], axis=0), "int32")


def pad_orders(order, padded):
    """Add rows to `order` up to `padded` rows so that at every step each
    operation is in exactly `padded / 4` rows.

    Args:
        order: `(B, 4)` int orders in which no operation is in more than
            `padded / 4` rows of a column (as `balanced_orders` draws them).
        padded: `B` rounded up to a multiple of 4 (`padded_size`).

    Returns:
        A `(padded, 4)` int32 tensor: `order`, then up to 3 rows that fill
        each column's missing operations (rows that need not be
        permutations: the images they stand for are dropped).

    Example:
    >>> order = np.array([[0, 1, 2, 3], [1, 2, 3, 0], [2, 3, 0, 1]], "int32")
    >>> ops.convert_to_numpy(pad_orders(order, 4))[3].tolist()
    [3, 0, 1, 2]
    """
    order = ops.cast(order, "int32")
    counts = ops.sum(
        ops.cast(ops.expand_dims(order, -1) == ops.arange(4, dtype="int32"), "int32"), axis=0
    )
    # free[k, op]: the places left at step k for operations 0..op together;
    # padding row p takes the first operation whose `free` exceeds p.
    free = ops.cast(ops.cumsum(padded // 4 - counts, axis=-1), "int32")
    row = ops.reshape(ops.arange(3, dtype="int32"), (3, 1, 1))
    extra = ops.sum(ops.cast(free <= row, "int32"), axis=-1)
    return ops.concatenate([order, extra], axis=0)[:padded]


def check_order(order):
    """Raise unless host-side orders (a NumPy array or list) hold one
    permutation of 0..3 per image with no operation in more than
    `ceil(B / 4)` rows of a column; tensors pass unchecked (reading them
    would stall the device, and traced ones cannot be read).

    Args:
        order: `params["order"]` of `ColorJitter.transform`.

    Returns:
        None.

    Example:
    >>> check_order([[0, 1, 2, 3], [0, 1, 2, 3]])
    Traceback (most recent call last):
    ...
    ValueError: `params['order']` must ...
    """
    if not isinstance(order, (np.ndarray, list, tuple)):
        return
    order = np.asarray(order)
    rows_ok = (
        order.ndim == 2
        and order.shape[1] == 4
        and np.array_equal(np.sort(order, axis=1), np.broadcast_to(np.arange(4), order.shape))
    )
    limit = -(-order.shape[0] // 4) if order.ndim else 0
    most = max(np.bincount(order[:, k], minlength=4).max() for k in range(4)) if rows_ok else 0
    if not rows_ok or most > limit:
        found = (
            f"{most} images on one operation at one step"
            if rows_ok
            else f"shape {order.shape}, not one permutation of 0..3 per row"
        )
        raise ValueError(
            "`params['order']` must hold one permutation of 0..3 per image with each "
            f"operation at most ceil(B / 4) = {limit} times in every column (step), as "
            f"`sample_parameters` draws it. Received: params['order'] with {found}"
        )


def adjust_brightness(images, factor):
    """Multiply every pixel by a per-image factor (SimCLR v2 brightness)."""
    return images * ops.reshape(factor, (-1, 1, 1, 1))


def adjust_contrast(images, factor):
    """`(x - mean) * factor + mean`, mean per image and channel
    (`tf.image.adjust_contrast`).
    """
    mean = ops.mean(images, axis=(1, 2), keepdims=True)
    return (images - mean) * ops.reshape(factor, (-1, 1, 1, 1)) + mean


def adjust_saturation(images, factor):
    """Scale the HSV saturation by a per-image factor, clipped to 1
    (`tf.image.adjust_saturation`), without an HSV round trip.

    For a fixed hue and value every channel is `V - V * S * g(H)`, so scaling
    S by `f` moves each channel to `V - (V - c) * f`; clipping S at 1 caps
    `f` at `1 / S = V / (V - min)`.
    """
    value = ops.max(images, axis=-1, keepdims=True)
    chroma = value - ops.min(images, axis=-1, keepdims=True)
    factor = ops.reshape(factor, (-1, 1, 1, 1))
    cap = value / ops.maximum(chroma, 1e-12)
    scale = ops.where(chroma > 0, ops.minimum(factor, cap), 1.0)
    return value - (value - images) * scale


def adjust_hue(images, delta):
    """Rotate the hue by a per-image `delta`, a fraction of the colour circle
    (`tf.image.adjust_hue`).
    """
    hsv = ops.image.rgb_to_hsv(images, data_format="channels_last")
    hue = ops.mod(hsv[..., 0] + ops.reshape(delta, (-1, 1, 1)), 1.0)
    hsv = ops.stack([hue, hsv[..., 1], hsv[..., 2]], axis=-1)
    return ops.image.hsv_to_rgb(hsv, data_format="channels_last")


@simclr_export("simclr_keras.layers.ColorJitter")
class ColorJitter(keras.layers.Layer):
    """SimCLR colour jitter of strength `s`, drawn per image, in random order.

    With probability `probability` an image gets, in an order drawn
    uniformly from the 24 permutations for that image, with a clip to
    [0, 1] after each step:

    - brightness: multiply by `b ~ U[max(0, 1 - 0.8 s), 1 + 0.8 s]` (the
      official code's default `impl='simclrv2'`; SimCLR v1's paper used
      TF's additive `random_brightness`),
    - contrast: `(x - mean) * c + mean`, `c ~ U[max(0, 1 - 0.8 s), 1 + 0.8 s]`,
    - saturation: HSV saturation times `f ~ U[max(0, 1 - 0.8 s), 1 + 0.8 s]`,
    - hue: shift by `h ~ U[-0.2 s, 0.2 s]` of the colour circle.

    Each adjustment is computed once per image (4 per image, not the 16 of
    applying all 4 at each step and selecting): the orders are drawn by
    blocks (`balanced_orders`) so that at every step each operation goes to
    exactly a quarter of the batch padded to a multiple of 4 (the padding
    repeats the last image and is dropped), and the step gathers each
    quarter and applies its operation to it alone, with static shapes. The
    price: the batch is grouped at random into blocks of 4 images whose
    orders are a random Latin square, so two images of one block never
    apply the same operation at the same step (and never share an order,
    which independent draws do with probability 1/24); two given images
    share a block with probability 3 / (B' - 1) for a padded batch of B'.
    Each image's order is still uniform over the 24 permutations, and the
    factors and the `probability` coin are independent across images; the
    images the coin leaves alone are jittered too, then dropped (skipping
    them would need a fixed count of them per batch).

    Computes in float32 whatever the dtype policy.

    Args:
        strength: Jitter strength `s` (SimCLR: 1.0 on ImageNet, 0.5 on CIFAR).
        probability: Probability that an image is jittered at all.
        seed: Integer seed.
        **kwargs: Standard layer arguments.

    Returns:
        float32 RGB images in [0, 1], shaped like the input.

    Example:
    >>> jitter = ColorJitter(strength=0.5, seed=0)
    >>> out = jitter(ops.ones((4, 8, 8, 3)) * 0.5)

    Reference:
        Chen et al., SimCLR, ICML 2020, appendix A; google-research/simclr
        `data_util.color_jitter_rand` and `random_brightness`.
    """

    def __init__(self, strength=1.0, probability=0.8, seed=None, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.strength = check_jitter_strength(strength)
        self.probability = check_probability(probability, "probability")
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape):
        self.built = True

    def factor_range(self):
        """`(low, high)` of the brightness, contrast and saturation factors."""
        return max(1.0 - 0.8 * self.strength, 0.0), 1.0 + 0.8 * self.strength

    def sample_parameters(self, batch_size):
        """Draw one set of jitter parameters per image.

        Args:
            batch_size: Number of images.

        Returns:
            A dict of `(B,)` tensors `brightness`, `contrast`, `saturation`,
            `hue`, `apply` (bool) and `order`, a `(B, 4)` int32 permutation
            of the indices of `OPERATIONS` per image (column k: the k-th
            operation applied), drawn by `balanced_orders`.
        """
        low, high = self.factor_range()
        gen = self.seed_generator

        def uniform(shape, lo, hi):
            return keras.random.uniform(shape, lo, hi, dtype="float32", seed=gen)

        params = {name: uniform((batch_size,), low, high) for name in OPERATIONS[:3]}
        params["hue"] = uniform((batch_size,), -0.2 * self.strength, 0.2 * self.strength)
        params["order"] = balanced_orders(batch_size, seed=gen)
        params["apply"] = uniform((batch_size,), 0.0, 1.0) < self.probability
        return params

    def transform(self, images, params):
        """Apply drawn parameters (see `sample_parameters`) to float32 images.

        At each step the images are sorted by their operation, each quarter
        of the padded batch gets its operation (with its images' factors)
        and a clip; the output is put back in the input's order at the end.

        Args:
            images: `(B, H, W, 3)` RGB images in [0, 1].
            params: The dict of `sample_parameters`. Its `order` must give no
                operation to more than `ceil(B / 4)` images at any step, as
                `balanced_orders` draws it: NumPy orders are checked
                (`ValueError`), tensors are not, and other orders put images
                in the wrong quarter.

        Returns:
            float32 images shaped like `images`.
        """
        x = ops.cast(images, "float32")
        keep = ops.reshape(params["apply"], (-1, 1, 1, 1))
        if self.strength == 0:
            return ops.where(keep, ops.clip(x, 0.0, 1.0), x)
        check_order(params["order"])
        batch = ops.shape(x)[0]
        padded = padded_size(batch)
        steps = pad_orders(params["order"], padded)
        last = batch - 1
        factors = [ops.cast(params[name], "float32") for name in OPERATIONS]
        adjust = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)
        group_shape = (4, -1) + tuple(ops.shape(x)[1:])
        # Row r of `y` holds image source[r] of the padded batch (indices past
        # the batch stand for copies of its last image).
        source, y = None, None
        for step in range(4):
            if source is None:
                source = ops.argsort(steps[:, step])
                y = ops.take(x, ops.minimum(source, last), axis=0)
            else:
                rank = ops.argsort(ops.take(steps[:, step], source, axis=0))
                source = ops.take(source, rank, axis=0)
                y = ops.take(y, rank, axis=0)
            # Sorted by operation: quarter q of the rows is operation q's.
            groups = ops.reshape(y, group_shape)
            image = ops.minimum(source, last)
            y = ops.concatenate(
                [
                    fn(groups[op], ops.reshape(ops.take(factors[op], image, axis=0), (4, -1))[op])
                    for op, fn in enumerate(adjust)
                ],
                axis=0,
            )
            y = ops.clip(y, 0.0, 1.0)
        out = ops.take(y, ops.argsort(source)[:batch], axis=0)
        return ops.where(keep, out, x)

    def call(self, images, training=True):
        images = ops.cast(images, "float32")
        if not training or self.strength == 0 or self.probability == 0:
            return images
        return self.transform(images, self.sample_parameters(ops.shape(images)[0]))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {"strength": self.strength, "probability": self.probability, "seed": self.seed}
        )
        return config
