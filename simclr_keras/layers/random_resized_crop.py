"""Random resized crop with a folded-in horizontal flip, batched per image.

Keras has no random resized crop layer. This one draws a box per image and
resamples the whole batch bilinearly: with two batched matrix products (the
box is axis-aligned, so the resampling is separable) when the source has
the output's size, else with one `ops.image.affine_transform` followed by
a resize; the flip is folded into the same matrices so each view is
resampled once.
"""

import math

import keras
from keras import ops

from simclr_keras._checks import check_int, check_range
from simclr_keras._export import simclr_export
from simclr_keras.layers.input_scaling import fit_to_size


def bilinear_matrix(start, step, out_size, in_size):
    """Per-image bilinear resampling of one image axis, as a matrix.

    Output pixel `i` of image `b` reads the source at `start[b] + i *
    step[b]`, clamped to `[0, in_size - 1]` (edge pixels repeat, as
    `affine_transform`'s `fill_mode="nearest"`), by linear interpolation
    between its two neighbours: weight `max(0, 1 - |coordinate - j|)` on
    source pixel `j`. Resampling is then `einsum("bij,bj...->bi...")`, a
    batched matrix product: at 80 px on the CPU, TensorFlow's and JAX's
    gathers and PyTorch's per-image `map_coordinates` loop behind
    `ops.image.affine_transform` were 1.6x, 4x and 9x slower.

    Args:
        start: `(B,)` source coordinate of output pixel 0.
        step: `(B,)` source pixels per output pixel (negative flips).
        out_size: Output length (an int or a scalar tensor).
        in_size: Source length (an int or a scalar tensor).

    Returns:
        float32 `(B, out_size, in_size)`; each row sums to 1.

    Example:
    >>> m = bilinear_matrix(ops.array([0.0]), ops.array([0.5]), 3, 2)
    >>> ops.convert_to_numpy(m)[0].tolist()
    [[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]]
    """
    start = ops.reshape(ops.cast(start, "float32"), (-1, 1))
    step = ops.reshape(ops.cast(step, "float32"), (-1, 1))
    last = ops.cast(in_size, "float32") - 1.0
    coordinates = ops.clip(start + ops.arange(out_size, dtype="float32")[None, :] * step, 0.0, last)
    source = ops.arange(in_size, dtype="float32")
    return ops.relu(1.0 - ops.abs(coordinates[:, :, None] - source[None, None, :]))


@simclr_export("simclr_keras.layers.RandomResizedCrop")
class RandomResizedCrop(keras.layers.Layer):
    """Crop a random area and aspect ratio of each image, resize it, and flip.

    Args:
        height: Output height.
        width: Output width.
        scale: Range of the crop's area as a fraction of the image
            (SimCLR: `(0.08, 1.0)`).
        ratio: Range of the crop's aspect ratio width / height.
        flip: Also flip each image horizontally with probability 0.5.
        seed: Integer seed.
        attempts: Candidate boxes drawn per image; the first that fits the
            image is used (torchvision: 10), and when none does, the largest
            centred box whose aspect ratio is clamped to `ratio`. Boxes are
            never clipped, so areas and aspect ratios stay in range.
        **kwargs: Standard layer arguments.

    The source may be larger than the output (views cropped from a larger
    decoded image, as the paper crops the full-resolution image): the box
    is resampled at the source's resolution and resized down with
    antialiasing. With `training=False` the image is centre-cropped to the
    output's aspect ratio and resized.

    Returns:
        Float images of shape `(B, height, width, C)` (channels last).

    Example:
    >>> crop = RandomResizedCrop(32, 32, seed=0)
    >>> tuple(crop(ops.ones((2, 40, 40, 3)), training=True).shape)
    (2, 32, 32, 3)

    Reference:
        Szegedy et al., "Going Deeper with Convolutions", CVPR 2015 (the
        crop); Chen et al., SimCLR, ICML 2020, appendix A.
    """

    def __init__(
        self,
        height,
        width,
        scale=(0.08, 1.0),
        ratio=(3 / 4, 4 / 3),
        flip=True,
        seed=None,
        attempts=10,
        **kwargs,
    ):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.height, self.width = int(height), int(width)
        # `scale` is a fraction of the image area, at most 1.
        self.scale = check_range(scale, "scale", upper=1)
        self.ratio = check_range(ratio, "ratio")
        self.flip = bool(flip)
        self.attempts = check_int(attempts, "attempts", minimum=1)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape):
        self.built = True

    def call(self, images, training=True):
        images = ops.cast(images, "float32")
        if not training:
            return self._resize(images)
        # Source sizes may be unknown while tracing (TensorFlow generalises the
        # shape when fit() meets a second source size), so the box maths
        # works on tensors.
        shape = ops.shape(images)
        batch = shape[0]
        h_f, w_f = ops.cast(shape[1], "float32"), ops.cast(shape[2], "float32")

        def uniform(low, high):
            return keras.random.uniform((batch,), low, high, seed=self.seed_generator)

        crop_w, crop_h, x0, y0 = self._sample_boxes(batch, h_f, w_f, uniform)
        sx, sy = crop_w / w_f, crop_h / h_f
        # Output pixel centre x maps to x0 + (x + 0.5) * sx - 0.5; a flip
        # reads column w - 1 - x instead.
        ax = sx
        bx = x0 + 0.5 * sx - 0.5
        if self.flip:
            flipped = uniform(0.0, 1.0) < 0.5
            ax = ops.where(flipped, -sx, sx)
            bx = ops.where(flipped, x0 + (w_f - 0.5) * sx - 0.5, bx)
        if tuple(images.shape[1:3]) == (self.height, self.width):
            # Sources of the output size (the usual case): two matrix
            # products of (size x size) per image, much faster on the CPU.
            rows = bilinear_matrix(y0 + 0.5 * sy - 0.5, sy, self.height, self.height)
            columns = bilinear_matrix(bx, ax, self.width, self.width)
            images = ops.einsum("bij,bjwc->biwc", rows, images)
            return ops.einsum("bij,bhjc->bhic", columns, images)
        # Larger (or unknown) sources: the matrices would grow with the
        # source side, so the box is resampled by a gather, into a
        # source-sized frame, then stretched to the output.
        zeros = ops.zeros_like(sx)
        transform = ops.stack(
            [ax, zeros, bx, zeros, sy, y0 + 0.5 * sy - 0.5, zeros, zeros],
            axis=1,
        )
        images = ops.image.affine_transform(
            images,
            transform,
            interpolation="bilinear",
            fill_mode="nearest",
            data_format="channels_last",
        )
        return ops.image.resize(
            images,
            (self.height, self.width),
            interpolation="bilinear",
            antialias=True,
            data_format="channels_last",
        )

    def _sample_boxes(self, batch, h_f, w_f, uniform):
        """Per-image crop boxes: `attempts` candidates each, the first that
        fits, else the largest centred box with the aspect ratio clamped to
        `ratio` (torchvision's `RandomResizedCrop.get_params`, vectorised).
        """
        tries = self.attempts

        def uniform_2d(low, high):
            return keras.random.uniform((batch, tries), low, high, seed=self.seed_generator)

        area = uniform_2d(*self.scale) * (h_f * w_f)
        aspect = ops.exp(uniform_2d(math.log(self.ratio[0]), math.log(self.ratio[1])))
        widths = ops.sqrt(area * aspect)
        heights = ops.sqrt(area / aspect)
        fits = ops.logical_and(widths <= w_f, heights <= h_f)
        first = ops.expand_dims(ops.argmax(ops.cast(fits, "int32"), axis=1), 1)
        found = ops.any(fits, axis=1)
        # The fallback: the whole image, cut to the nearest allowed aspect.
        source_ratio = w_f / h_f
        too_tall = source_ratio < self.ratio[0]
        too_wide = source_ratio > self.ratio[1]
        fallback_w = ops.where(too_wide, h_f * self.ratio[1], w_f)
        fallback_h = ops.where(too_tall, w_f / self.ratio[0], h_f)
        crop_w = ops.where(found, ops.take_along_axis(widths, first, axis=1)[:, 0], fallback_w)
        crop_h = ops.where(found, ops.take_along_axis(heights, first, axis=1)[:, 0], fallback_h)
        x0 = uniform(0.0, 1.0) * (w_f - crop_w)
        y0 = uniform(0.0, 1.0) * (h_f - crop_h)
        x0 = ops.where(found, x0, 0.5 * (w_f - fallback_w))
        y0 = ops.where(found, y0, 0.5 * (h_f - fallback_h))
        return crop_w, crop_h, x0, y0

    def _resize(self, images):
        return fit_to_size(images, (self.height, self.width))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.height, self.width, input_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "height": self.height,
                "width": self.width,
                "scale": self.scale,
                "ratio": self.ratio,
                "flip": self.flip,
                "attempts": self.attempts,
                "seed": self.seed,
            }
        )
        return config
