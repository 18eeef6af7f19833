"""`GradualUnfreeze`: unfreeze more of the backbone as training goes on, inside one `fit()`.

Flipping `layer.trainable` in the middle of `fit()` breaks Keras 3's
optimizer (TF: "Unknown variable"; JAX: the state no longer matches). The
fix used here works on TF, JAX and PyTorch: the layers' `trainable` flags
change, the optimizer is replaced by a copy of itself built over the new
trainable variables with its state (iteration count, Adam moments of the
variables that stay trainable) carried over, and the compiled train function
is rebuilt. Frozen variables are then not in the optimizer's list at all, so
neither gradients, momentum nor weight decay move them, and frozen
BatchNormalization layers run in inference mode with fixed moving statistics
(Keras 3 does so for any BatchNormalization with `trainable=False`).
`GradualUnfreeze` applies a stage change at a boundary in `on_epoch_begin`,
after the trainers have synced their state. The TF and PyTorch trainers call
`model.train_function` each step and the JAX trainer re-reads its state at
each epoch start, so the new function and optimizer take effect from the next
epoch on. `rebuild_optimizer` lives in `simclr_keras.optimizers` (the
checkpoint resume uses it too); `simclr_keras.training.fit_in_rounds` runs
rounds through this callback.
"""

import keras

from simclr_keras._checks import check_int, check_number
from simclr_keras.backbones import freezing
from simclr_keras.optimizers import check_stage_learning_rate, rebuild_optimizer


def _apply_stage(model, base_model, n_unfrozen, learning_rate, freeze_batch_norm=False):
    """Set the stage; rebuild the optimizer only when the trainable set moves."""
    before = freezing.trainable_flags(base_model)
    freezing.set_unfrozen_layers(base_model, n_unfrozen)
    if freeze_batch_norm:
        freezing.freeze_batch_norm(base_model)
    if freezing.trainable_flags(base_model) != before or not model.optimizer.built:
        rebuild_optimizer(model, learning_rate)
    elif learning_rate is not None:
        check_stage_learning_rate(model.optimizer, learning_rate)
        model.optimizer.learning_rate = float(learning_rate)


def parse_stage(value, base_model, where):
    """`(n_unfrozen, learning_rate or None)` of a schedule entry; `where` names it in errors."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(
                f"{where} must be n_unfrozen or (n_unfrozen, learning_rate). Received: {value!r}"
            )
        n, lr = value
    else:
        n, lr = value, None
    n = freezing.check_unfrozen(base_model, n)
    check_number(lr, "learning_rate", positive=True, allow_none=True, why=f"(in {where})")
    return n, lr


class GradualUnfreeze(keras.callbacks.Callback):
    """Unfreeze more of the backbone as training goes on, inside one `fit()`.

    Args:
        schedule: Dict mapping an epoch (0-based) to the number of the
            backbone's last weighted layers that train from that epoch on
            (`simclr_keras.backbones.weighted_layers` counts them; -1 = all),
            or to `(n_unfrozen, learning_rate)` to also set the learning rate.
            Before the first listed epoch the model keeps its own setting.
        base_model: The backbone whose layers the schedule unfreezes, a
            part of the trained model; default `model.base_model` (a
            SimCLR's backbone), so any Keras model works when it is given.
        verbose: Print a line at each stage change.
        freeze_batch_norm: Keep every BatchNormalization layer of the
            backbone frozen (inference mode: its ImageNet statistics, gamma
            and beta stay) while the layers around it train, as Keras'
            transfer-learning guide advises for pretrained backbones.

    Returns:
        A `keras.callbacks.Callback`.

    Example:
    >>> simclr.fit(x, epochs=6, callbacks=[GradualUnfreeze(
    ...     {0: 0, 2: 2, 4: (-1, 1e-4)})])                   # doctest: +SKIP

    Reference:
        Howard & Ruder, "Universal Language Model Fine-tuning for Text
        Classification" (gradual unfreezing), ACL 2018.
    """

    def __init__(self, schedule, base_model=None, verbose=0, freeze_batch_norm=False):
        super().__init__()
        if not isinstance(schedule, dict) or not schedule:
            raise ValueError(
                "`schedule` must be a non-empty dict {epoch: n_unfrozen or "
                f"(n_unfrozen, learning_rate)}}. Received: schedule={schedule!r}"
            )
        why = "(`schedule` keys must be epochs, counted from 0)"
        self.schedule = {check_int(k, "epoch", minimum=0, why=why): v for k, v in schedule.items()}
        self._base_model = base_model
        self.verbose = verbose
        self.freeze_batch_norm = bool(freeze_batch_norm)
        self._active = None

    @property
    def base_model(self):
        """The backbone given to the constructor (None: the model's `base_model`)."""
        return self._base_model

    def _backbone(self):
        base = self._base_model
        if base is None:
            base = getattr(self.model, "base_model", None)
        if base is None:
            raise ValueError(
                "`base_model` must be the backbone to unfreeze when the model has no "
                f"`base_model` attribute (as SimCLR has). Received: base_model=None for a "
                f"{type(self.model).__name__}"
            )
        return base

    def stage_for(self, epoch):
        """The schedule key in force at `epoch`, or None before the first."""
        keys = [k for k in self.schedule if k <= epoch]
        return max(keys) if keys else None

    def on_train_begin(self, logs=None):
        base = self._backbone()
        for epoch, value in self.schedule.items():
            parse_stage(value, base, f"`schedule[{epoch}]`")
        self._active = None

    def on_epoch_begin(self, epoch, logs=None):
        key = self.stage_for(epoch)
        if key is None or key == self._active:
            return
        base = self._backbone()
        n, lr = parse_stage(self.schedule[key], base, f"`schedule[{key}]`")
        _apply_stage(self.model, base, n, lr, self.freeze_batch_norm)
        self._active = key
        if self.verbose:
            print(
                f"GradualUnfreeze: epoch {epoch + 1}: {n} backbone layers train"
                + (f", lr={lr}" if lr else "")
            )
