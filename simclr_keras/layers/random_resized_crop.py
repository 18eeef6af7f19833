"""Random resized crop with a folded-in horizontal flip, batched per image.

Keras has no random resized crop layer. This one builds a per-image affine
matrix and resamples the whole batch with one `ops.image.affine_transform`;
the flip is folded into the same matrix so each view is resampled once.
"""

import math

import keras
from keras import ops

from simclr_keras._checks import check_range
from simclr_keras._export import simclr_export


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
        **kwargs: Standard layer arguments.

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
        **kwargs,
    ):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.height, self.width = int(height), int(width)
        # `scale` is a fraction of the image area, at most 1.
        self.scale = check_range(scale, "scale", upper=1)
        self.ratio = check_range(ratio, "ratio")
        self.flip = bool(flip)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape):
        self.built = True

    def call(self, images, training=True):
        images = ops.cast(images, "float32")
        if not training:
            return self._resize(images)
        shape = ops.shape(images)
        batch, src_h, src_w = shape[0], shape[1], shape[2]
        h_f, w_f = float(src_h), float(src_w)

        def uniform(low, high):
            return keras.random.uniform((batch,), low, high, seed=self.seed_generator)

        area = uniform(*self.scale) * (h_f * w_f)
        log_ratio = uniform(math.log(self.ratio[0]), math.log(self.ratio[1]))
        aspect = ops.exp(log_ratio)
        # Where a sampled box does not fit, it is clipped to the image rather
        # than re-drawn (torchvision loops 10 times; a loop cannot batch).
        crop_w = ops.minimum(ops.sqrt(area * aspect), w_f)
        crop_h = ops.minimum(ops.sqrt(area / aspect), h_f)
        x0 = uniform(0.0, 1.0) * (w_f - crop_w)
        y0 = uniform(0.0, 1.0) * (h_f - crop_h)
        sx, sy = crop_w / w_f, crop_h / h_f
        # Output pixel centre x maps to x0 + (x + 0.5) * sx - 0.5; a flip
        # reads column w - 1 - x instead.
        ax = sx
        bx = x0 + 0.5 * sx - 0.5
        if self.flip:
            flipped = uniform(0.0, 1.0) < 0.5
            ax = ops.where(flipped, -sx, sx)
            bx = ops.where(flipped, x0 + (w_f - 0.5) * sx - 0.5, bx)
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
        return self._resize(images)

    def _resize(self, images):
        if tuple(images.shape[1:3]) == (self.height, self.width):
            return images
        return ops.image.resize(
            images,
            (self.height, self.width),
            interpolation="bilinear",
            antialias=True,
            data_format="channels_last",
        )

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
                "seed": self.seed,
            }
        )
        return config
