"""`WarnOnChanceLoss`: warn when the SimCLR loss sits at chance level, log(2B - 1)."""

import math
import warnings

import keras

from simclr_keras.callbacks.stop_on_nan import is_finite


class ChanceLossWarning(UserWarning):
    """Issued by `WarnOnChanceLoss` when an epoch's loss sits at chance level."""


class WarnOnChanceLoss(keras.callbacks.Callback):
    """Warn when the SimCLR loss stays at chance, log(2B - 1), epoch after epoch.

    With `B` source images per step each view has `2B - 1` candidates; a
    backbone whose features cannot tell them apart (collapsed, or "dead":
    e.g. a plain VGG16 trained from scratch, whose activations vanish) gives
    the same similarity to all of them and an NT-Xent loss of exactly
    log(2B - 1) (4.8442 at B = 64), epoch after epoch. A model that is
    learning also starts there, so one epoch at chance says nothing (a
    3-step first epoch sits at chance as a rule): the warning needs
    `min_epochs` consecutive epochs at chance holding `min_steps` training
    steps together. It is given once per `fit` and names the likely causes
    with the run's own values.

    Args:
        rtol: Relative distance to log(2B - 1) that counts as chance level.
        monitor: The logged loss.
        min_epochs: Consecutive epochs at chance before the warning.
        min_steps: Training steps those epochs must hold together.

    Returns:
        A `keras.callbacks.Callback` (a no-op for models without `batch_size`).

    Example:
    >>> simclr.fit(x, epochs=5, callbacks=[WarnOnChanceLoss()])   # doctest: +SKIP
    """

    def __init__(self, rtol=0.005, monitor="loss", min_epochs=2, min_steps=10):
        super().__init__()
        self.rtol = float(rtol)
        self.monitor = monitor
        self.min_epochs = int(min_epochs)
        self.min_steps = int(min_steps)
        self.warned_at = None
        self._streak = self._streak_steps = self._steps = 0

    def on_train_begin(self, logs=None):
        self.warned_at = None
        self._streak = self._streak_steps = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._steps = 0

    def on_train_batch_end(self, batch, logs=None):
        self._steps += 1

    def on_epoch_end(self, epoch, logs=None):
        batch = getattr(self.model, "batch_size", None)
        value = (logs or {}).get(self.monitor)
        if self.warned_at is not None or not batch or batch < 2:
            return
        chance = math.log(2 * int(batch) - 1)
        if not (is_finite(value) and abs(float(value) - chance) <= self.rtol * chance):
            self._streak = self._streak_steps = 0
            return
        self._streak += 1
        self._streak_steps += self._steps
        if self._streak >= self.min_epochs and self._streak_steps >= self.min_steps:
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
            f"Epoch {epoch}: the loss {value:.4f} has sat at chance level, log(2B - 1) = "
            f"{chance:.4f} for batch_size={model.batch_size}, for {self._streak} epochs "
            f"({self._streak_steps} steps): the backbone's features do not "
            "tell the images apart (a collapsed or dead backbone); nothing is being learned. "
            "Likely causes: (1) a backbone without batch normalisation trained from scratch "
            "(e.g. keras.applications.VGG16 with weights=None): start from pretrained weights "
            "or use one with BatchNormalization (resnet18, resnet50, small_cnn); (2) the "
            f"learning rate (learning_rate={lr}): try 3-10x lower; (3) the input scaling "
            f"(preprocessing={prep!r}) does not match what the backbone expects."
        )
