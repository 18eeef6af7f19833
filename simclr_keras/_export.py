"""The one decorator that makes a symbol part of the public API.

`simclr_export("simclr_keras.SimCLR")` does two things:

* classes that Keras serialises (layers, models, losses, optimizers) are
  registered for `.keras` saving under the package `simclr_keras`, so a saved
  model loads with plain `keras.saving.load_model`;
* the public path is recorded on the symbol (`symbol._simclr_export_path`),
  and a test checks that every exported name is reachable there.
"""

import keras

PACKAGE = "simclr_keras"

# Every exported symbol, by public path, in the order they were decorated.
EXPORTED = {}


class simclr_export:  # noqa: N801 (used as a decorator, lower case like keras-rs)
    """Register a public symbol and, for Keras objects, for `.keras` saving.

    Args:
        path: the public dotted path, e.g. `"simclr_keras.SimCLR"` or
            `"simclr_keras.data.guided_batches"`.

    Example:
    >>> @simclr_export("simclr_keras.layers.Identity")
    ... class Identity(keras.layers.Layer):
    ...     def call(self, x):
    ...         return x
    >>> Identity._simclr_export_path
    'simclr_keras.layers.Identity'
    >>> EXPORTED.pop("simclr_keras.layers.Identity") is Identity  # an example only
    True
    """

    def __init__(self, path):
        self.path = path

    def __call__(self, symbol):
        if isinstance(symbol, type) and _is_keras_serializable(symbol):
            symbol = keras.saving.register_keras_serializable(package=PACKAGE)(symbol)
        symbol._simclr_export_path = self.path
        EXPORTED[self.path] = symbol
        return symbol


def _is_keras_serializable(cls):
    bases = (
        keras.layers.Layer,
        keras.losses.Loss,
        keras.optimizers.Optimizer,
        keras.metrics.Metric,
        keras.optimizers.schedules.LearningRateSchedule,
    )
    return issubclass(cls, bases)
