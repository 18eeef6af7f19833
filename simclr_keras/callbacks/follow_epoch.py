"""`FollowEpoch`: keep a seeded data set's batch order on a resumed `fit()`."""

import keras


class FollowEpoch(keras.callbacks.Callback):
    """Keep a data set's seeded batch order on the epoch that `fit()` runs.

    A data set with `epoch` and `set_epoch(epoch)` (e.g. `DataGeneratorSimCLR`)
    plans its batches from its seed and its epoch counter, which Keras moves
    on with `on_epoch_end()`. When `fit()` starts at a later epoch `k` (a
    resumed run) with a fresh data set (counter at 0 when this callback is
    made), the counter moves on by `k` at that first epoch, so the run sees
    the same batches as one that was never interrupted. A data set already
    past epoch 0 is left alone.

    Args:
        data: The data set passed to `fit()`; make the callback before `fit()`.

    Returns:
        A `keras.callbacks.Callback`.

    Example:
    >>> model.fit(data, epochs=10, callbacks=[FollowEpoch(data)])  # doctest: +SKIP
    """

    def __init__(self, data):
        super().__init__()
        self.data = data
        self._fresh = data.epoch == 0
        self._first = True

    def on_train_begin(self, logs=None):
        self._first = True

    def on_epoch_begin(self, epoch, logs=None):
        # Keras' data adapter may already have called `on_epoch_end()` once
        # (TensorFlow does, after peeking at a batch): move on from there.
        if self._first and self._fresh and epoch:
            self.data.set_epoch(self.data.epoch + epoch)
        self._first = False
