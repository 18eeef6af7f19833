"""Backbone helpers: counting a backbone's weighted layers, freezing, copying."""

import keras

from simclr_keras._checks import is_int


def weighted_layers(model):
    """The layers of `model` that hold weights, in order, nested models
    flattened.

    Pooling, activation and other weightless layers are not counted (the old
    Keras 2 template counted them). A nested `keras.Model` is entered, and
    so is a layer that holds a stack of blocks (two or more sub-layers of
    one class that are themselves made of weighted layers, such as the
    transformer blocks of a keras-hub `ViTEncoder`): each block then counts
    as one, so a vision transformer is frozen block by block. Any other
    layer that holds weights counts as one.

    Args:
        model: A `keras.Model`.

    Returns:
        A list of layers.

    Example:
    >>> m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3),
    ...                       keras.layers.ReLU(), keras.layers.Dense(2)])
    >>> [l.name for l in weighted_layers(m)] == [m.layers[0].name,
    ...                                          m.layers[2].name]
    True
    """
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found.extend(weighted_layers(layer))
        elif layer.weights:
            found.extend(_blocks_or_self(layer))
    return found


def _children(layer):
    """The layers `layer` tracks directly (Keras keeps no public list for a
    plain `Layer`).
    """
    try:
        return list(layer._flatten_layers(include_self=False, recursive=False))
    except (AttributeError, TypeError):
        return []


def _is_composite(layer):
    return sum(1 for child in _children(layer) if child.weights) >= 2


def _blocks_or_self(layer):
    """`[layer]`, or its weighted parts when it holds a stack of blocks."""
    children = [c for c in _children(layer) if c.weights]
    by_class = {}
    for child in children:
        if _is_composite(child):
            by_class[type(child)] = by_class.get(type(child), 0) + 1
    own = {id(v) for v in layer.weights} - {id(v) for c in children for v in c.weights}
    if own or not any(count >= 2 for count in by_class.values()):
        return [layer]
    found = []
    for child in children:
        found.extend(_blocks_or_self(child))
    return found


def check_unfrozen(base_model, num_of_unfrozen_layers):
    """Validate `num_of_unfrozen_layers` against the backbone; return it as an
    int, with -1 meaning "train the whole backbone".
    """
    if num_of_unfrozen_layers is None:
        return -1
    n_weighted = len(weighted_layers(base_model))
    if (
        not is_int(num_of_unfrozen_layers)
        or num_of_unfrozen_layers < -1
        or num_of_unfrozen_layers > n_weighted
    ):
        raise ValueError(
            "`num_of_unfrozen_layers` must be an int from 0 to the number of "
            f"the backbone's layers with weights ({n_weighted}), or None / -1 "
            "to train the whole backbone. Received: "
            f"num_of_unfrozen_layers={num_of_unfrozen_layers!r}"
        )
    return int(num_of_unfrozen_layers)


def set_unfrozen_layers(base_model, num_of_unfrozen_layers):
    """Let only the last `num_of_unfrozen_layers` weighted layers train.

    Frozen BatchNormalization layers then also run in inference mode (Keras 3
    does so for any BatchNormalization with `trainable=False`).

    Args:
        base_model: The backbone, changed in place.
        num_of_unfrozen_layers: How many of the last weighted layers train;
            -1 or None trains all of them.

    Returns:
        The list of layers left trainable.
    """
    layers = weighted_layers(base_model)
    n = len(layers) if num_of_unfrozen_layers in (None, -1) else int(num_of_unfrozen_layers)
    base_model.trainable = True
    for sub in _nested_models(base_model):
        sub.trainable = True
    first_trainable = len(layers) - n
    for i, layer in enumerate(layers):
        layer.trainable = i >= first_trainable
    return layers[first_trainable:]


def unfrozen_count(base_model):
    """How many of the backbone's last weighted layers train, read from their
    `trainable` flags: -1 when all of them do, else the count from the
    lowest trainable one to the top (the inverse of `set_unfrozen_layers`).

    Example:
    >>> m = keras.Sequential([keras.Input((4,))] + [keras.layers.Dense(2) for _ in range(3)])
    >>> _ = set_unfrozen_layers(m, 2)
    >>> unfrozen_count(m), (set_unfrozen_layers(m, -1) and unfrozen_count(m))
    (2, -1)
    """
    flags = trainable_flags(base_model)
    if all(flags):
        return -1
    return len(flags) - next((i for i, flag in enumerate(flags) if flag), len(flags))


def freeze_batch_norm(base_model):
    """Freeze every BatchNormalization layer of the backbone (nested ones too).

    Keras 3 runs a BatchNormalization with `trainable=False` in inference
    mode: its moving statistics, gamma and beta stay as they are, whatever
    trains around it.

    Args:
        base_model: The backbone, changed in place.

    Returns:
        The number of layers frozen.
    """
    count = 0
    for layer in weighted_layers(base_model):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
            count += 1
    return count


def _nested_models(model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield layer
            yield from _nested_models(layer)


def snapshot_backbone(model):
    """An independent copy of a backbone with the same weights.

    Take one before `SimCLR.fit` (which trains the backbone in place) to keep
    the "same backbone at random init" baseline, and before fine-tuning so
    the user's model is never changed. Works for functional, Sequential and
    subclassed models (subclassed ones need a working `get_config`, which
    Keras writes itself when the constructor takes plain arguments).

    Args:
        model: A built `keras.Model`.

    Returns:
        A new `keras.Model`; changing it leaves `model` untouched.

    Example:
    >>> backbone = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3)])
    >>> baseline = snapshot_backbone(backbone)
    >>> np.array_equal(baseline.get_weights()[0], backbone.get_weights()[0])
    True
    >>> simclr = SimCLR(backbone, (8, 8, 3), 128)            # doctest: +SKIP
    """
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"`model` must be a keras.Model. Received: model of type {type(model).__name__}"
        )
    try:
        clone = keras.models.clone_model(model)
    except Exception:  # e.g. a keras-hub layer whose config its constructor refuses
        clone = _from_own_config(model)
    if len(clone.weights) != len(model.weights):
        build_config = model.get_build_config()
        if build_config is None:
            raise ValueError(
                f"`model` ({model.name}) is not built: call it on a batch of "
                "images (or `model.build(input_shape)`) before copying it."
            )
        clone.build_from_config(build_config)
    clone.set_weights(model.get_weights())
    return clone


def _from_own_config(model):
    """A new model from `model`'s own config (as `.keras` loading builds it),
    or a clear error.
    """
    try:
        return type(model).from_config(model.get_config())
    except Exception as error:
        raise ValueError(
            f"`model` ({model.name}) cannot be copied: neither keras.models.clone_model nor "
            f"{type(model).__name__}.from_config(model.get_config()) rebuilds it. Give the "
            "model a working `get_config`. Backend error: "
            f"{str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__}"
        ) from None


def trainable_flags(base_model):
    """`trainable` of each of the backbone's weighted layers, in order."""
    return [bool(layer.trainable) for layer in weighted_layers(base_model)]


def set_trainable_flags(base_model, flags):
    """Inverse of `trainable_flags` (the backbone itself stays trainable)."""
    layers = weighted_layers(base_model)
    if len(flags) != len(layers):
        raise ValueError(
            "`flags` must hold one entry per weighted backbone layer "
            f"({len(layers)}). Received: {len(flags)} flags"
        )
    set_unfrozen_layers(base_model, -1)
    for layer, flag in zip(layers, flags):
        layer.trainable = bool(flag)
