"""Images on their way into a backbone, without augmentation.

`check_images` validates an image array, `to_unit_range_np` and
`UnitRangeBatches` turn it into float32 [0, 1] batches on the host, and the
`ImagePreprocess` layer maps those to the backbone's input (channels, size,
scaling): the path feature extraction, fine-tuning and the kNN monitor share.
"""

import keras
import numpy as np
from keras import ops

from simclr_keras.preprocessing import (
    apply_preprocessing,
    check_preprocessing,
    deserialize_preprocessing,
    serialize_preprocessing,
)


@keras.saving.register_keras_serializable(package="simclr_keras")
class ImagePreprocess(keras.layers.Layer):
    """Map float [0, 1] images to the backbone's input, without augmentation.

    Grayscale images are repeated to the backbone's channel count, images are
    resized to `image_size` when they differ (bilinear,
    `keras.ops.image.resize`), then scaled by `apply_preprocessing`: the same
    path `SimCLR` takes after its augmentation.

    Args:
        image_size: `(height, width)` the backbone takes, or None to keep
            the images' size.
        channels: Channels the backbone takes, or None to keep them.
        preprocessing: See `simclr_keras.preprocessing.check_preprocessing`.
        **kwargs: Standard layer arguments.

    Returns:
        float32 `(B, height, width, channels)` images.

    Example:
    >>> ImagePreprocess((32, 32), 3)(ops.ones((2, 8, 8, 1))).shape
    (2, 32, 32, 3)
    """

    def __init__(self, image_size=None, channels=None, preprocessing=None, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.image_size = None if image_size is None else tuple(int(s) for s in image_size)
        self.channels = None if channels is None else int(channels)
        self.preprocessing = check_preprocessing(preprocessing)

    def call(self, images):
        x = ops.cast(images, "float32")
        if self.channels is not None and x.shape[-1] == 1 and self.channels != 1:
            x = ops.repeat(x, self.channels, axis=-1)
        if self.image_size is not None and tuple(x.shape[1:3]) != self.image_size:
            x = ops.image.resize(x, self.image_size)
        return apply_preprocessing(x, self.preprocessing)

    def compute_output_shape(self, input_shape):
        size = self.image_size or tuple(input_shape[1:3])
        return (input_shape[0],) + tuple(size) + (self.channels or input_shape[-1],)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "image_size": self.image_size,
                "channels": self.channels,
                "preprocessing": serialize_preprocessing(self.preprocessing),
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["preprocessing"] = deserialize_preprocessing(config.get("preprocessing"))
        return cls(**config)


class UnitRangeBatches(keras.utils.PyDataset):
    """Batches of an image array as float32 in [0, 1] (uint8 is divided by 255
    on the host, one batch at a time), with optional labels and shuffling.
    `pad_last` repeats the last image to fill the last batch (slice the
    outputs to `len(images)`), so that every batch has one shape and a
    compiled step is not traced again for the remainder."""

    def __init__(self, images, labels=None, batch_size=256, shuffle=False, seed=None, pad_last=False,
                 **kwargs):
        super().__init__(**kwargs)
        self.images, self.labels = images, labels
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.pad_last = bool(pad_last)
        self._rng = np.random.default_rng(seed)
        self._order = np.arange(len(images))
        self.on_epoch_end()

    def __len__(self):
        return -(-len(self.images) // self.batch_size)

    def __getitem__(self, index):
        idx = self._order[index * self.batch_size : (index + 1) * self.batch_size]
        if self.pad_last and len(idx) < self.batch_size:
            idx = np.concatenate([idx, np.full(self.batch_size - len(idx), idx[-1])])
        x = to_unit_range_np(self.images[idx])
        return x if self.labels is None else (x, self.labels[idx])

    def on_epoch_end(self):
        if self.shuffle:
            self._order = self._rng.permutation(len(self.images))


def to_unit_range_np(images):
    """float32 [0, 1] images with a channel axis: integer dtypes are divided
    by 255, float images are taken to be in [0, 1] already."""
    images = np.asarray(images)
    x = images.astype("float32")
    if np.issubdtype(images.dtype, np.integer):
        x /= 255.0
    return x[..., None] if x.ndim == 3 else x


def check_images(images, name="images"):
    """Raise a clear `ValueError` unless `images` is `(N, H, W)` or `(N, H, W, C)`."""
    shape = getattr(images, "shape", None)
    if shape is None or len(shape) not in (3, 4) or shape[0] == 0:
        raise ValueError(
            f"`{name}` must be a non-empty array of shape (N, H, W) or "
            "(N, H, W, C), uint8 in [0, 255] or float in [0, 1]. Received: "
            f"{name} with shape {shape}"
        )
    dtype = np.dtype(getattr(images, "dtype", "float32"))
    if np.issubdtype(dtype, np.floating):
        peak = float(np.max(images[:64]))
        if peak > 1.0 + 1e-3:
            raise ValueError(
                f"Float `{name}` must be in [0, 1] (or pass uint8 in [0, 255]). "
                f"Received: {name} with values up to {peak:g}"
            )
    return images
