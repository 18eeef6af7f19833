"""SimCLR's colour jitter: per-image factors, a random order per image, float32.

Keras' preprocessing layers read a single `factor` as a range that starts at
the identity (`RandomContrast(0.8)` only raises contrast) and apply their
operations in a fixed order; this layer draws what SimCLR's official code
draws (`data_util.color_jitter_rand`), for every image of a batch at once.
"""

import keras
from keras import ops

from simclr_keras._checks import check_jitter_strength, check_probability
from simclr_keras._export import simclr_export

# The order index of each operation in `order` (`sample_parameters`).
OPERATIONS = ("brightness", "contrast", "saturation", "hue")


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
            `hue`, `apply` (bool) and `order`, a `(B, 4)` int permutation of
            the indices of `OPERATIONS` (column k: the k-th operation applied).
        """
        low, high = self.factor_range()
        gen = self.seed_generator

        def uniform(shape, lo, hi):
            return keras.random.uniform(shape, lo, hi, dtype="float32", seed=gen)

        params = {name: uniform((batch_size,), low, high) for name in OPERATIONS[:3]}
        params["hue"] = uniform((batch_size,), -0.2 * self.strength, 0.2 * self.strength)
        # argsort of i.i.d. uniforms: each of the 24 orders with probability 1/24.
        params["order"] = ops.cast(
            ops.argsort(uniform((batch_size, 4), 0.0, 1.0), axis=-1), "int32"
        )
        params["apply"] = uniform((batch_size,), 0.0, 1.0) < self.probability
        return params

    def transform(self, images, params):
        """Apply drawn parameters (see `sample_parameters`) to float32 images."""
        x = ops.cast(images, "float32")
        adjust = (
            lambda v: adjust_brightness(v, params["brightness"]),
            lambda v: adjust_contrast(v, params["contrast"]),
            lambda v: adjust_saturation(v, params["saturation"]),
            lambda v: adjust_hue(v, params["hue"]),
        )
        order = params["order"]
        out = x
        for step in range(4):
            which = ops.reshape(order[:, step], (-1, 1, 1, 1))
            stepped = out
            for index, fn in enumerate(adjust):
                if self.strength == 0:
                    break
                stepped = ops.where(which == index, fn(out), stepped)
            out = ops.clip(stepped, 0.0, 1.0)
        return ops.where(ops.reshape(params["apply"], (-1, 1, 1, 1)), out, x)

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
