"""Tiny backbones and a tiny SimCLR shared by the tests (see conftest.py).

Importable (`from tiny_models import tiny_simclr`) for module-level helpers
and `parametrize` lists; conftest.py wraps them as fixtures.
"""

import keras

from simclr_keras import SimCLR

SHAPE = (16, 16, 3)
TINY_SHAPE = (8, 8, 3)


def sequential_backbone(shape=SHAPE):
    """Two convolutions and a global pool: a 2-D output."""
    return keras.Sequential(
        [
            keras.Input(shape),
            keras.layers.Conv2D(16, 3, activation="relu"),
            keras.layers.Conv2D(32, 3, strides=2, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
        ],
        name="seq_backbone",
    )


def functional_backbone(shape=SHAPE):
    """Conv, BatchNorm, pool, conv: a 4-D output that SimCLR pools."""
    inputs = keras.Input(shape)
    x = keras.layers.Conv2D(16, 3, padding="same")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(32, 3, activation="relu")(x)
    return keras.Model(inputs, x, name="functional_backbone")


@keras.saving.register_keras_serializable(package="simclr_keras_tests")
class SubclassedBackbone(keras.Model):
    """Records the batch size it is called with, to check the 2B batch."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.conv = keras.layers.Conv2D(16, 3, activation="relu")
        self.pool = keras.layers.GlobalAveragePooling2D()
        self.dense = keras.layers.Dense(24)
        self.seen_batches = []

    def call(self, x):
        self.seen_batches.append(x.shape[0])
        return self.dense(self.pool(self.conv(x)))


BACKBONES = {
    "sequential": sequential_backbone,
    "functional": functional_backbone,
    "subclassed": SubclassedBackbone,
}


def bn_backbone(shape=TINY_SHAPE):
    """The smallest backbone with BatchNorm: conv `c1`, `bn`, conv `c2`."""
    inputs = keras.Input(shape)
    x = keras.layers.Conv2D(4, 3, padding="same", name="c1")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU()(x)
    return keras.Model(inputs, keras.layers.Conv2D(8, 3, name="c2")(x), name="tiny")


def tiny_simclr(shape=TINY_SHAPE, **kwargs):
    """A seeded `SimCLR` around `bn_backbone` that compiles fast on every backend.

    Rescaling stands in for the augmentation (it keeps JAX/XLA compiles
    short); keyword arguments override `SimCLR`'s.
    """
    keras.utils.set_random_seed(0)
    kwargs.setdefault("batch_size", 8)
    kwargs.setdefault("feat_dims_ph", [8, 4])
    kwargs.setdefault("seed", 0)
    kwargs.setdefault("augmentation", keras.layers.Rescaling(1 / 255.0))
    return SimCLR(bn_backbone(shape), shape, **kwargs)
