"""`StopOnNaN`: stop training with a clear error when the loss or a weight is
not finite, naming the causes that apply to the run.
"""

import math

import keras
import numpy as np

from simclr_keras.recipe import paper_learning_rate


class NaNLossError(FloatingPointError):
    """Raised by `StopOnNaN` when the training loss is NaN or infinite."""


def is_finite(value):
    """Whether a logged value is a finite number (a value that is no number counts as finite)."""
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
    flat, finite loss of log(2B - 1). The message names the causes that can
    apply to the run, with its own values: a learning rate above what its
    optimizer usually takes, a temperature below 0.1, float16 overflow under
    a float16 policy; when none applies, it says so and points at the data
    and the model.

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
        if value is not None and not is_finite(value):
            raise NaNLossError(self.message(value, f"epoch {self._epoch + 1}, batch {batch + 1}"))

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is not None and not is_finite(value):
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
        """The error text: the causes that can apply to this run, with its values.

        A cause is named only when the run's own settings make it possible:
        float16 overflow under a float16 dtype policy; a temperature below
        SimCLR's 0.1; a learning rate above what its optimizer usually
        takes (`typical_max_learning_rate`). When none applies the message
        says so and points at the data and the model instead.
        """
        model = self.model
        optimizer = getattr(model, "optimizer", None)
        lr = current_learning_rate(optimizer)
        typical = typical_max_learning_rate(optimizer, getattr(model, "batch_size", None))
        temperature = getattr(model, "temperature", None)
        policy = keras.config.dtype_policy()
        settings = (
            f"learning_rate={_fmt(lr)}, temperature={temperature}, dtype policy={policy.name!r}"
        )
        causes = []
        if lr is not None and typical is not None and lr > typical * (1 + 1e-6):  # float32
            causes.append(
                f"the learning rate is high for {type(optimizer).__name__} "
                f"(learning_rate={_fmt(lr)}, above the usual {_fmt(typical)}; try 3-10x "
                "lower, or warm-up)"
            )
        if isinstance(temperature, (int, float)) and temperature < LOW_TEMPERATURE:
            causes.append(
                f"the NT-Xent temperature is low (temperature={temperature}; SimCLR uses 0.1-0.5)"
            )
        if "float16" in (policy.compute_dtype, policy.variable_dtype):
            causes.append(
                f"float16 overflow under mixed precision (dtype policy={policy.name!r}; use "
                "'mixed_bfloat16' or 'float32')"
            )
        what = what or f"`{self.monitor}` became {value}"
        if causes:
            why = "Likely causes: " + "; ".join(
                f"({i}) {cause}" for i, cause in enumerate(causes, 1)
            )
        else:
            why = (
                f"The usual causes do not apply here ({settings}): look at the data (a "
                "batch with NaN or inf values, e.g. from a custom data set) and at the "
                "model (a backbone or a custom layer whose output overflows: check "
                "`simclr.encode(batch)` on a batch)"
            )
        return f"Training stopped: {what} at {where}. {why}. Weights saved before this epoch are unaffected."


# Below SimCLR's range of temperatures (0.1 to 0.5) the logits grow as 1/T.
LOW_TEMPERATURE = 0.1
# The largest learning rate an optimizer family usually trains with.
ADAPTIVE_MAX_LEARNING_RATE = 1e-3
SGD_MAX_LEARNING_RATE = 0.1


def _fmt(value):
    return "unknown" if value is None else f"{value:.3g}"


def current_learning_rate(optimizer):
    """The optimizer's learning rate now, as a float (a schedule's current value), or None."""
    rate = getattr(optimizer, "learning_rate", None)
    try:
        return float(keras.ops.convert_to_numpy(rate))
    except (TypeError, ValueError):
        return None


def typical_max_learning_rate(optimizer, batch_size=None):
    """The largest learning rate `optimizer`'s family usually trains with, or None.

    LARS: SimCLR's own peak for the batch size (the larger of `0.3 * B / 256`
    and `0.075 * sqrt(B)`); plain SGD: 0.1; adaptive optimizers (Adam and
    the others): 1e-3, Adam's default.
    """
    if optimizer is None:
        return None
    name = type(optimizer).__name__
    if name == "LARS":
        if not batch_size:
            return None
        return max(paper_learning_rate(batch_size, s) for s in ("sqrt", "linear"))
    if name == "SGD":
        return SGD_MAX_LEARNING_RATE
    return ADAPTIVE_MAX_LEARNING_RATE
