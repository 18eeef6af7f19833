"""Gradual unfreezing of the backbone: inside one `fit()` or round by round.

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
epoch on. The checkpoint resume uses `rebuild_optimizer` too.
"""

import json

import keras

from simclr_keras.backbones import freezing as bb


def rebuild_optimizer(model, learning_rate=None):
    """Rebuild `model.optimizer` over the current trainable variables.

    Call it after changing `trainable` flags. The new optimizer is a copy of
    the old one (same class and config); every optimizer variable whose path
    matches one of the old optimizer's (the iteration counter, the slots of
    variables that stay trainable) keeps its value, slots of newly trainable
    variables start at zero. The compiled train function is rebuilt.

    Args:
        model: A compiled `keras.Model`.
        learning_rate: Optional new learning rate (a float); the optimizer
            must not use a `LearningRateSchedule` then.

    Returns:
        The new optimizer, also set as `model.optimizer`.

    Example:
    >>> set_unfrozen_layers(simclr.base_model, 3)           # doctest: +SKIP
    >>> rebuild_optimizer(simclr, learning_rate=1e-4)       # doctest: +SKIP
    """
    old = model.optimizer
    if old is None:
        raise ValueError(
            "`model` must be compiled with an optimizer before its "
            "optimizer can be rebuilt. Received: model.optimizer=None"
        )
    _check_learning_rate(old, learning_rate)
    new = old.__class__.from_config(old.get_config())
    new.build(model.trainable_variables)
    if old.built:
        saved = {v.path: v for v in old.variables}
        for variable in new.variables:
            source = saved.get(variable.path)
            if source is not None and tuple(source.shape) == tuple(variable.shape):
                # A host copy: on JAX, sharing the buffer would let the train
                # step's buffer donation delete the old optimizer's values.
                variable.assign(keras.ops.convert_to_numpy(source))
    if learning_rate is not None:
        new.learning_rate = float(learning_rate)
    model.optimizer = new
    # `.keras` files store the optimizer's config from the compile config.
    compile_config = getattr(model, "_compile_config", None)
    if compile_config is not None and compile_config.config.get("optimizer") is old:
        compile_config.config["optimizer"] = new
    if getattr(model, "compiled", False):
        model.make_train_function(force=True)
    return new


def _check_learning_rate(optimizer, learning_rate):
    if learning_rate is None:
        return
    if (
        isinstance(learning_rate, bool)
        or not isinstance(learning_rate, (int, float))
        or learning_rate <= 0
    ):
        raise ValueError(
            "A stage's learning rate must be a positive float. Received: "
            f"learning_rate={learning_rate!r}"
        )
    schedule = keras.optimizers.schedules.LearningRateSchedule
    if isinstance(getattr(optimizer, "_learning_rate", None), schedule):
        raise ValueError(
            "A stage's learning rate cannot replace a LearningRateSchedule; "
            "drop the per-stage learning rate or use a float learning rate. "
            f"Received: learning_rate={learning_rate!r} for an optimizer with "
            f"a {type(optimizer._learning_rate).__name__}"
        )


def _apply_stage(model, base_model, n_unfrozen, learning_rate, freeze_batch_norm=False):
    """Set the stage; rebuild the optimizer only when the trainable set moves."""
    before = bb.trainable_flags(base_model)
    bb.set_unfrozen_layers(base_model, n_unfrozen)
    if freeze_batch_norm:
        bb.freeze_batch_norm(base_model)
    if hasattr(model, "num_of_unfrozen_layers"):
        model.num_of_unfrozen_layers = n_unfrozen
    if bb.trainable_flags(base_model) != before or not model.optimizer.built:
        rebuild_optimizer(model, learning_rate)
    elif learning_rate is not None:
        _check_learning_rate(model.optimizer, learning_rate)
        model.optimizer.learning_rate = float(learning_rate)


def _parse_stage(value, base_model, where):
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(
                f"{where} must be n_unfrozen or (n_unfrozen, learning_rate). Received: {value!r}"
            )
        n, lr = value
    else:
        n, lr = value, None
    n = bb.check_unfrozen(base_model, n)
    if lr is not None and (isinstance(lr, bool) or not isinstance(lr, (int, float)) or lr <= 0):
        raise ValueError(f"The learning rate in {where} must be a positive float. Received: {lr!r}")
    return n, lr


class GradualUnfreeze(keras.callbacks.Callback):
    """Unfreeze more of the backbone as training goes on, inside one `fit()`.

    Args:
        schedule: Dict mapping an epoch (0-based) to the number of the
            backbone's last weighted layers that train from that epoch on
            (`simclr_keras.backbones.weighted_layers` counts them; -1 = all),
            or to `(n_unfrozen, learning_rate)` to also set the learning rate.
            Before the first listed epoch the model keeps its own setting.
        base_model: The backbone; default `model.base_model`.
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
        for epoch in schedule:
            if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
                raise ValueError(
                    "`schedule` keys must be epochs (ints >= 0). Received: "
                    f"key {epoch!r} in schedule={schedule!r}"
                )
        self.schedule = dict(schedule)
        self._base_model = base_model
        self.verbose = verbose
        self.freeze_batch_norm = bool(freeze_batch_norm)
        self._active = None

    def _backbone(self):
        base = self._base_model or getattr(self.model, "base_model", None)
        if base is None:
            raise ValueError(
                "GradualUnfreeze needs the backbone: pass `base_model=` or use "
                "a model with a `base_model` attribute (SimCLR)."
            )
        return base

    def stage_for(self, epoch):
        """The schedule key in force at `epoch`, or None before the first."""
        keys = [k for k in self.schedule if k <= epoch]
        return max(keys) if keys else None

    def on_train_begin(self, logs=None):
        base = self._backbone()
        for epoch, value in self.schedule.items():
            _parse_stage(value, base, f"`schedule[{epoch}]`")
        self._active = None

    def on_epoch_begin(self, epoch, logs=None):
        key = self.stage_for(epoch)
        if key is None or key == self._active:
            return
        base = self._backbone()
        n, lr = _parse_stage(self.schedule[key], base, f"`schedule[{key}]`")
        _apply_stage(self.model, base, n, lr, self.freeze_batch_norm)
        self._active = key
        if self.verbose:
            print(
                f"GradualUnfreeze: epoch {epoch + 1}: {n} backbone layers train"
                + (f", lr={lr}" if lr else "")
            )


def fit_in_rounds(simclr, x, rounds, callbacks=None, verbose="auto", **fit_kwargs):
    """Train in rounds, unfreezing more of the backbone between them.

    Each round sets the number of trainable weighted backbone layers (the
    optimizer is rebuilt with its state carried over, and an optional new
    learning rate) for its epochs. The rounds run as one `fit()` with a
    `GradualUnfreeze` whose stages start at the rounds' first epochs, so a
    run with `save_path` (or a `ResumableCheckpoint`) that is killed in any
    round resumes in that round when called again; with other `rounds`
    (except more rounds after the same ones) it raises `CheckpointError`
    rather than train a mix of both schedules.

    Args:
        simclr: A compiled `SimCLR` (or any model with `base_model`).
        x: Training images, as for `simclr.fit`.
        rounds: List of `(epochs, n_unfrozen)` or `(epochs, n_unfrozen,
            learning_rate)`; `n_unfrozen` -1 trains the whole backbone.
        callbacks: Other callbacks for the `fit()` (not a `GradualUnfreeze`:
            the rounds are the schedule).
        verbose: As in `fit()`.
        **fit_kwargs: Other `fit()` arguments (not `epochs` or
            `initial_epoch`: the rounds give them).

    Returns:
        The `keras.callbacks.History` of all rounds (epochs numbered on).

    Example:
    >>> history = fit_in_rounds(simclr, images, [(2, 0, 1e-3), (3, -1, 1e-4)])
    ... # doctest: +SKIP
    """
    if not isinstance(rounds, (list, tuple)) or not rounds:
        raise ValueError(
            "`rounds` must be a non-empty list of (epochs, n_unfrozen[, "
            f"learning_rate]). Received: rounds={rounds!r}"
        )
    for name in ("epochs", "initial_epoch"):
        if name in fit_kwargs:
            raise ValueError(
                f"`{name}` is set by `rounds` in fit_in_rounds; leave it out. "
                f"Received: {name}={fit_kwargs[name]!r}"
            )
    callbacks = list(callbacks or [])
    if any(isinstance(c, GradualUnfreeze) for c in callbacks):
        raise ValueError(
            "`callbacks` must not hold a GradualUnfreeze: the rounds are the unfreeze "
            "schedule of fit_in_rounds. Received: callbacks with a GradualUnfreeze"
        )
    schedule = {}
    start = 0
    for i, spec in enumerate(rounds):
        if not isinstance(spec, (list, tuple)) or len(spec) not in (2, 3):
            raise ValueError(
                f"`rounds[{i}]` must be (epochs, n_unfrozen[, learning_rate]). Received: {spec!r}"
            )
        epochs = spec[0]
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"`rounds[{i}]` epochs must be an int >= 1. Received: {epochs!r}")
        stage = tuple(spec[1:]) if len(spec) == 3 else spec[1]
        _parse_stage(stage, simclr.base_model, f"`rounds[{i}]`")  # fail before training
        schedule[start] = stage
        start += epochs
    unfreeze = GradualUnfreeze(schedule, verbose=int(verbose in (1, "auto")))
    # Part of the checkpoints' run signature (`training.checkpoint.run_signature`):
    # a run killed in one round resumes only with the same rounds (or more after them).
    # Kept as JSON text, which Keras does not track as model state.
    simclr._fit_rounds = json.dumps([[_plain(v) for v in spec] for spec in rounds])
    try:
        return simclr.fit(
            x, epochs=start, callbacks=[unfreeze] + callbacks, verbose=verbose, **fit_kwargs
        )
    finally:
        del simclr._fit_rounds


def _plain(value):
    """A number of `rounds` as JSON keeps it (NumPy scalars as Python ones)."""
    return value.item() if hasattr(value, "item") else value
