"""Image arrays on the host: validation and the one conversion to float32 [0, 1]."""

import numpy as np


def to_unit_range_np(images):
    """float32 [0, 1] images with a channel axis: integer dtypes are divided
    by 255, float images are taken to be in [0, 1] already.
    """
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
