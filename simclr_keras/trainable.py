"""Changing which backbone layers train on a compiled model, optimizer state kept.

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
`unfreeze.py` (stage changes) and `checkpoint.py` (resuming) build on it.
"""

import keras

from simclr_keras import backbone as bb


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
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float)) or learning_rate <= 0:
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


def trainable_flags(base_model):
    """`trainable` of each of the backbone's weighted layers, in order."""
    return [bool(layer.trainable) for layer in bb.weighted_layers(base_model)]


def set_trainable_flags(base_model, flags):
    """Inverse of `trainable_flags` (the backbone itself stays trainable)."""
    layers = bb.weighted_layers(base_model)
    if len(flags) != len(layers):
        raise ValueError(
            "`flags` must hold one entry per weighted backbone layer "
            f"({len(layers)}). Received: {len(flags)} flags"
        )
    bb.set_unfrozen_layers(base_model, -1)
    for layer, flag in zip(layers, flags):
        layer.trainable = bool(flag)
