"""Real test data: sklearn's bundled digits as small RGB uint8 images
(`simclr_keras.demo.load_digits_rgb`, cached and read-only for the tests).
"""

import functools

from simclr_keras.demo import load_digits_rgb


@functools.cache
def digits_rgb(size=16):
    """All 1797 digits as uint8 `(N, size, size, 3)` and int labels."""
    images, labels = load_digits_rgb(size)
    images.setflags(write=False)
    return images, labels
