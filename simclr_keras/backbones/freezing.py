"""Backbone helpers: checking a model, counting its weighted layers, freezing."""

import keras

from simclr_keras._checks import is_int


def check_base_model(base_model):
    """Raise a clear `TypeError` unless `base_model` is a `keras.Model`."""
    if not isinstance(base_model, keras.Model):
        raise TypeError(
            "`base_model` must be a Keras 3 model (functional, Sequential, "
            "subclassed or from keras.applications). Received: "
            f"base_model of type {type(base_model).__name__}"
        )


def weighted_layers(model):
    """The layers of `model` that hold weights, in order, nested models
    flattened.

    Pooling, activation and other weightless layers are not counted (the old
    Keras 2 template counted them). A nested `keras.Model` is entered; any
    other layer that holds weights counts as one.

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
            found.append(layer)
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


def backbone_output_shape(base_model, input_shape):
    """Output shape of the backbone for `input_shape`, or a clear error.

    Args:
        base_model: The backbone.
        input_shape: `(H, W, C)` without the batch dimension.

    Returns:
        The output shape including the batch dimension.
    """
    try:
        input_shape = tuple(int(d) for d in input_shape)
        if len(input_shape) != 3 or min(input_shape) < 1:
            raise ValueError("rank")
    except (TypeError, ValueError):
        raise ValueError(
            "`input_shape` must be (height, width, channels) of positive ints"
            f", e.g. (96, 96, 3). Received: input_shape={input_shape!r}"
        ) from None
    try:
        spec = base_model.compute_output_spec(
            keras.KerasTensor((2,) + input_shape, dtype="float32")
        )
    except Exception as error:  # the backend's own message follows
        raise ValueError(
            f"`base_model` ({base_model.name}) cannot take images of "
            "`input_shape`; pass the shape the backbone was built for (e.g. "
            "its `input_shape` without the batch dimension). Received: "
            f"input_shape={input_shape}. Backend error: {error}"
        ) from None
    shape = tuple(spec.shape)
    if len(shape) not in (2, 4):
        raise ValueError(
            "`base_model` must output features of rank 2 (B, d) or rank 4 "
            "(B, H, W, C), which is average-pooled. Received: output shape "
            f"{shape} for input_shape={input_shape}"
        )
    return shape


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
    clone = keras.models.clone_model(model)
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
