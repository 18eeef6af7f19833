"""Real test data: sklearn's bundled digits as small RGB uint8 images."""

import functools

import numpy as np
from PIL import Image


@functools.cache
def digits_rgb(size=16):
    """All 1797 digits as uint8 `(N, size, size, 3)` and int labels."""
    from sklearn.datasets import load_digits

    data = load_digits()
    gray = (data.images / 16.0 * 255.0).round().astype("uint8")
    resized = np.stack(
        [np.asarray(Image.fromarray(img).resize((size, size), Image.BILINEAR)) for img in gray]
    )
    rgb = np.repeat(resized[..., None], 3, axis=-1)
    rgb.setflags(write=False)
    return rgb, data.target.astype("int64")
