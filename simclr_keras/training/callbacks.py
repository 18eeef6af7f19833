"""`StopOnNaN`: stop training with a clear error when the loss or a weight is
not finite; `WarnOnChanceLoss`: warn when the loss sits at chance level.
"""

import math
import warnings

import keras
import numpy as np


class NaNLossError(FloatingPointError):
    """Raised by `StopOnNaN` when the training loss is NaN or infinite."""


def _finite(value):
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return True


class StopOnNaN(keras.callbacks.Callback):
    """Stop training with a clear `NaNLossError` when the loss is NaN or inf.

    It checks the loss after every batch, and the trainable weights at the
    end of every epoch, before any later callback (e.g. a checkpoint) can
    save diverged weights. The weight check catches NaN that the loss hides:
    under XLA a ReLU maps NaN to 0, so a backbone full of NaN can give a
    flat, finite loss of log(2B - 1). The message names the likely causes
    with the run's own values: a learning rate too high, a temperature too
    low, or float16 overflow under `mixed_float16`.

    Args:
        monitor: The logged value to check.
        check_weights: Also check the trainable weights at each epoch's end
            (one copy of them to the host per epoch).

    Returns:
        A `keras.callbacks.Callback`.

    Example:
    >>> simclr.fit(x, epochs=5, callbacks=[StopOnNaN()])   # doctest: +SKIP
    """

    def __init__(self, monitor="loss", check_weights=True):
        super().__init__()
        self.monitor = monitor
        self.check_weights = bool(check_weights)
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is not None and not _finite(value):
            raise NaNLossError(self.message(value, f"epoch {self._epoch + 1}, batch {batch + 1}"))

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is not None and not _finite(value):
            raise NaNLossError(self.message(value, f"the end of epoch {epoch + 1}"))
        if self.check_weights:
            for weight in self.model.trainable_weights:
                if not np.isfinite(keras.ops.convert_to_numpy(weight)).all():
                    raise NaNLossError(
                        self.message(
                            value,
                            f"the end of epoch {epoch + 1}",
                            what=f"the weight `{weight.path}` holds NaN or inf (the loss was {value})",
                        )
                    )

    def message(self, value, where, what=None):
        """The error text, with the model's learning rate, temperature and dtype policy."""
        model = self.model
        lr = getattr(getattr(model, "optimizer", None), "learning_rate", None)
        try:
            lr = f"{float(keras.ops.convert_to_numpy(lr)):.3g}"
        except (TypeError, ValueError):
            lr = "a schedule" if lr is not None else "unknown"
        temperature = getattr(model, "temperature", "unknown")
        policy = keras.config.dtype_policy().name
        what = what or f"`{self.monitor}` became {value}"
        return (
            f"Training stopped: {what} at {where}. "
            f"Likely causes: (1) the learning rate is too high (learning_rate={lr}; "
            "try 3-10x lower, or warm-up); (2) the NT-Xent temperature is too low "
            f"(temperature={temperature}; SimCLR uses 0.1-0.5); (3) float16 overflow "
            f"under mixed precision (dtype policy={policy!r}; use 'mixed_bfloat16' or "
            "'float32'). Weights saved before this epoch are unaffected."
        )


class ChanceLossWarning(UserWarning):
    """Issued by `WarnOnChanceLoss` when an epoch's loss sits at chance level."""


class WarnOnChanceLoss(keras.callbacks.Callback):
    """Warn when an epoch's SimCLR loss sits at chance, log(2B - 1).

    With `B` source images per step each view has `2B - 1` candidates; a
    backbone whose features cannot tell them apart (collapsed, or "dead":
    e.g. a plain VGG16 trained from scratch, whose activations vanish) gives
    the same similarity to all of them and an NT-Xent loss of exactly
    log(2B - 1) (4.8442 at B = 64), epoch after epoch. The warning, once per
    `fit`, names the likely causes with the run's own values.

    Args:
        rtol: Relative distance to log(2B - 1) that counts as chance level.
        monitor: The logged loss.

    Returns:
        A `keras.callbacks.Callback` (a no-op for models without `batch_size`).

    Example:
    >>> simclr.fit(x, epochs=5, callbacks=[WarnOnChanceLoss()])   # doctest: +SKIP
    """

    def __init__(self, rtol=0.005, monitor="loss"):
        super().__init__()
        self.rtol = float(rtol)
        self.monitor = monitor
        self.warned_at = None

    def on_train_begin(self, logs=None):
        self.warned_at = None

    def on_epoch_end(self, epoch, logs=None):
        batch = getattr(self.model, "batch_size", None)
        value = (logs or {}).get(self.monitor)
        if self.warned_at is not None or not batch or batch < 2 or not _finite(value):
            return
        chance = math.log(2 * int(batch) - 1)
        if abs(float(value) - chance) <= self.rtol * chance:
            self.warned_at = epoch + 1
            warnings.warn(self.message(float(value), chance, epoch + 1), ChanceLossWarning, 2)

    def message(self, value, chance, epoch):
        """The warning text, with the model's batch size, learning rate and input scaling."""
        model = self.model
        lr = getattr(getattr(model, "optimizer", None), "learning_rate", None)
        try:
            lr = f"{float(keras.ops.convert_to_numpy(lr)):.3g}"
        except (TypeError, ValueError):
            lr = "a schedule" if lr is not None else "unknown"
        prep = getattr(model, "preprocessing", None)
        prep = getattr(prep, "__name__", prep)
        return (
            f"Epoch {epoch}: the loss {value:.4f} sits at chance level, log(2B - 1) = "
            f"{chance:.4f} for batch_size={model.batch_size}: the backbone's features do not "
            "tell the images apart (a collapsed or dead backbone); nothing is being learned. "
            "Likely causes: (1) a backbone without batch normalisation trained from scratch "
            "(e.g. keras.applications.VGG16 with weights=None): start from pretrained weights "
            "or use one with BatchNormalization (resnet18, resnet50, small_cnn); (2) the "
            f"learning rate (learning_rate={lr}): try 3-10x lower; (3) the input scaling "
            f"(preprocessing={prep!r}) does not match what the backbone expects."
        )


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
