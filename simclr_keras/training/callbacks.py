"""`StopOnNaN`: stop training with a clear error when the loss or a weight is not finite."""

import math

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
