"""Three classes of near-constant red, green and blue images, and a tiny SimCLR
cheap enough to fit on them in a test (the callback tests use both)."""

import keras
import numpy as np

from simclr_keras import SimCLR

SHAPE = (8, 8, 3)


def colour_set(n_per_class=12, seed=0):
    """Three classes of near-constant red, green and blue images."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(3), n_per_class)
    x = np.full((len(labels),) + SHAPE, 20.0)
    x[np.arange(len(labels)), :, :, labels] = 220.0
    x += rng.normal(0, 3, size=x.shape)
    return np.clip(x, 0, 255).astype("uint8"), labels


def tiny_simclr(**kwargs):
    keras.utils.set_random_seed(0)
    base = keras.Sequential(
        [
            keras.Input(SHAPE),
            keras.layers.Conv2D(8, 1, activation="relu"),
            keras.layers.Conv2D(8, 3),
        ],
        name="tiny",
    )
    return SimCLR(
        base,
        SHAPE,
        batch_size=8,
        feat_dims_ph=[8, 4],
        seed=0,
        augmentation=keras.layers.Rescaling(1 / 255.0),
        **kwargs,
    )  # cheap to compile
