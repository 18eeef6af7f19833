"""What a backbone takes and outputs, and how its output becomes one feature vector.

`describe_backbone` is the one check every wrapped backbone goes through
(`SimCLR`, `extract_features`, fine-tuning): it builds a model that has no
`Input` yet (a `keras.Sequential` without one, a subclassed model) on the
image shape, refuses models with several inputs or outputs with one message
that shows how to pick one, checks the image shape against the one the
backbone declares, and classifies the output:

- `(B, d)`: a feature vector, used as it is;
- `(B, H, W, C)` (or `(B, C, H, W)` for a `channels_first` backbone): a
  feature map, average-pooled;
- `(B, T, D)`: a token sequence (vision transformers), pooled by the class
  token or the mean of the patch tokens (`token_pooling`), as timm and
  keras-hub pool ViTs.

A `channels_first` backbone (one with a layer whose `data_format` is
`"channels_first"`, e.g. built after
`keras.config.set_image_data_format("channels_first")`) is fed transposed
images: simclr_keras itself always works on `(H, W, C)` images.
"""

import dataclasses

import keras

from simclr_keras._checks import check_choice

TOKEN_POOLINGS = ("class", "mean")
# Tokens before the patch tokens that a ViT may have: class, distillation
# (DeiT) and register tokens (DINOv2 has 4; DINOv3 4).
MAX_PREFIX_TOKENS = 8


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    """What `describe_backbone` found.

    Attributes:
        output_shape: The backbone's output shape (batch axis 2 or None).
        layout: `"vector"` `(B, d)`, `"map"` (a 4-D feature map) or
            `"tokens"` `(B, T, D)`.
        channels_first: The backbone takes `(B, C, H, W)` images (and a
            4-D output is `(B, C, H, W)`).
        prefix_tokens: For tokens: how many come before the patch tokens
            (class, distillation, register tokens), or None when the
            token count does not tell.
        token_pooling: For tokens: `"class"` or `"mean"`; else None.
        width: Length of the pooled feature vector.
        input_shape: The `(H, W, C)` images it was checked on.
        unwrap_output: The one output comes in a one-element list or dict
            (see `single_output_model`).
    """

    output_shape: tuple
    layout: str
    channels_first: bool
    prefix_tokens: int | None
    token_pooling: str | None
    width: int
    input_shape: tuple = ()
    unwrap_output: bool = False


def check_input_shape(input_shape, name="input_shape"):
    """`input_shape` as a tuple of 3 positive ints `(H, W, C)`, or a clear error."""
    try:
        shape = tuple(int(d) for d in input_shape)
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError("rank")
    except (TypeError, ValueError):
        raise ValueError(
            f"`{name}` must be (height, width, channels) of positive ints, e.g. "
            f"(96, 96, 3). Received: {name}={input_shape!r}"
        ) from None
    return shape


def is_channels_first(model):
    """True when `model` takes `(B, C, H, W)` images: the first of its layers
    (in call order, nested ones entered) that has a `data_format` says
    `"channels_first"`. A `Permute` met before any such layer means the model
    transposes its own channels-last input (as an exported backbone does).
    """
    return _first_data_format(model) == "channels_first"


def _first_data_format(layer):
    if isinstance(layer, keras.Model):
        children = list(layer.layers)
    else:
        try:
            children = list(layer._flatten_layers(include_self=False, recursive=False))
        except (AttributeError, TypeError):
            children = []
    for child in children:
        if isinstance(child, keras.layers.InputLayer):
            continue
        if isinstance(child, keras.layers.Permute):
            return "channels_last"
        fmt = getattr(child, "data_format", None)
        if fmt in ("channels_first", "channels_last"):
            return fmt
        nested = _first_data_format(child)
        if nested is not None:
            return nested
    return None


def declared_input_shape(model):
    """The `(H, W, C)` a built model declares (None for free sizes), or None.

    A `channels_first` model's `(C, H, W)` input is returned as `(H, W, C)`.
    """
    try:
        inputs = model.inputs
        shape = tuple(inputs[0].shape) if inputs and len(inputs) == 1 else None
    except (AttributeError, TypeError, ValueError):
        shape = None
    if shape is None:
        config = model.get_build_config() if model.built else None
        config = config or {}
        shape = config.get("input_shape") or next(
            iter(config.get("shapes_dict", {}).values()), None
        )
        if shape is not None and (
            not isinstance(shape, (list, tuple)) or any(isinstance(s, (list, tuple)) for s in shape)
        ):
            shape = None
    if shape is None or len(shape) != 4:
        return None
    shape = tuple(None if s is None else int(s) for s in shape[1:])
    if is_channels_first(model):
        shape = shape[1:] + shape[:1]
    return shape


def _input_names(model):
    """Names of the model's inputs (its `InputLayer`s), or [] if it declares none."""
    try:
        inputs = list(model.inputs or [])
    except (AttributeError, TypeError, ValueError):
        return []
    layers = [l.name for l in model.layers if isinstance(l, keras.layers.InputLayer)]
    if len(layers) == len(inputs):
        return layers
    return [getattr(t, "name", "?") for t in inputs]


def _outputs_error(model, outputs):
    if isinstance(outputs, dict):
        listing = ", ".join(f"{k!r}: {tuple(v.shape)}" for k, v in outputs.items())
        first = next(iter(outputs))
        pick = f"keras.Model(base.inputs, base.output[{first!r}])"
        what = f"a dict of {len(outputs)} outputs {{{listing}}}"
    else:
        known = getattr(model, "output_names", None) or []
        names = []
        for i, tensor in enumerate(outputs):
            name = known[i] if len(known) == len(outputs) else f"output {i}"
            names.append(f"[{i}] {name} {tuple(tensor.shape)}")
        pick = "keras.Model(base.inputs, base.outputs[0])"
        what = f"{len(outputs)} outputs ({'; '.join(names)})"
    return ValueError(
        f"`base_model` must have one output, the image features; {model.name} has {what}. "
        f"Pick the one to train, e.g. `base = {pick}`, and wrap that. "
        "Received: base_model with several outputs"
    )


def _single_output(model, outputs):
    """The one output tensor (a one-element list or dict is unwrapped), or an error."""
    if isinstance(outputs, dict):
        if len(outputs) != 1:
            raise _outputs_error(model, outputs)
        return next(iter(outputs.values()))
    if isinstance(outputs, (list, tuple)):
        if len(outputs) != 1:
            raise _outputs_error(model, outputs)
        return outputs[0]
    return outputs


def single_output_model(model, spec):
    """`model`, or when its one output comes in a list or dict, a functional
    model over the same layers (the same weights) that returns the tensor.
    """
    if not spec.unwrap_output:
        return model
    feed = spec.input_shape
    if spec.channels_first:
        feed = (feed[2],) + feed[:2]
    inputs = keras.Input(feed)
    return keras.Model(inputs, _single_output(model, model(inputs)), name=model.name)


def _check_declared_shape(model, shape):
    declared = declared_input_shape(model)
    if declared is None:
        return
    if declared[2] is not None and declared[2] != shape[2]:
        grey = (
            " Greyscale images go to a 3-channel backbone with "
            f"input_shape={shape[:2] + (declared[2],)} after `np.repeat(images, 3, axis=-1)`."
            if shape[2] == 1 and declared[2] == 3
            else ""
        )
        raise ValueError(
            f"`input_shape` must end with the {declared[2]} channel(s) the backbone "
            f"{model.name} takes (its input is (H, W, C) = {declared}).{grey} "
            f"Received: input_shape={shape}"
        )
    for axis, name in ((0, "height"), (1, "width")):
        if declared[axis] is not None and declared[axis] != shape[axis]:
            raise ValueError(
                f"`input_shape` must match the image size the backbone {model.name} was "
                f"built for, (H, W, C) = {declared}: its {name} is {declared[axis]}. "
                "Pass that shape, or build the backbone for your size (e.g. "
                "keras.applications with input_shape=...). "
                f"Received: input_shape={shape}"
            )


def count_prefix_tokens(num_tokens, height, width, model=None):
    """Tokens before the patch tokens of a `(B, T, D)` output, or None if unknown.

    A keras-hub ViT that says it has no class token (`use_class_token=False`)
    has none; otherwise the patch tokens are taken to fill the largest grid
    `(H // s) x (W // s)` (s a patch size) that fits in `T`, and the rest,
    at most `MAX_PREFIX_TOKENS`, come first (class, distillation, register
    tokens), as in ViT, DeiT and DINOv2.

    Args:
        num_tokens: `T`.
        height: Image height.
        width: Image width.
        model: The backbone, read for a declared `use_class_token`.

    Returns:
        An int, or None.

    Example:
    >>> count_prefix_tokens(197, 224, 224)  # ViT-B/16: 14 x 14 patches + class
    1
    >>> count_prefix_tokens(64, 32, 32)  # 8 x 8 patch tokens only (Swin)
    0
    """
    if model is not None and getattr(model, "use_class_token", None) is False:
        return 0
    best = None
    for s in range(1, max(height, width) + 1):
        grid = (height // s) * (width // s)
        if 0 < grid <= num_tokens and (best is None or grid > best):
            best = grid
    if best is None or num_tokens - best > MAX_PREFIX_TOKENS:
        return None
    return num_tokens - best


def _token_pooling(model, token_pooling, shape, num_tokens, prefix):
    if token_pooling is None:
        return "class" if prefix else "mean"
    if token_pooling == "class" and prefix == 0:
        raise ValueError(
            f"`token_pooling='class'` needs a class token, and the backbone {model.name} "
            f"has none: its {num_tokens} tokens are all patch tokens for images of "
            f"{shape[:2]}. Use token_pooling='mean' (or None). "
            f"Received: token_pooling={token_pooling!r}"
        )
    return token_pooling


def describe_backbone(model, input_shape, token_pooling=None, name="base_model"):
    """Check a backbone against an image shape; build it first if it has no Input.

    Args:
        model: A `keras.Model`: functional, Sequential (with or without an
            `Input`), subclassed, `keras.applications`, keras-hub.
        input_shape: `(H, W, C)` of the images the backbone takes (always
            channels last, also for a `channels_first` backbone).
        token_pooling: For token outputs `(B, T, D)`: `"class"` (the first
            token), `"mean"` (the mean of the patch tokens) or None (the
            class token when the backbone has one, else the mean).
        name: The argument's name, for messages.

    Returns:
        A `BackboneSpec`.

    Example:
    >>> base = keras.Sequential([keras.layers.Conv2D(4, 3)])  # no Input
    >>> spec = describe_backbone(base, (8, 8, 3))
    >>> spec.layout, spec.width, base.built
    ('map', 4, True)
    """
    _check_one_image_input(model, name)
    shape = check_input_shape(input_shape)
    check_choice(token_pooling, "token_pooling", (None,) + TOKEN_POOLINGS)
    _check_declared_shape(model, shape)
    channels_first = is_channels_first(model)
    if channels_first:
        _check_channels_first_runs(model, name)
    feed = (shape[2],) + shape[:2] if channels_first else shape
    outputs = _symbolic_output(model, feed, shape, name)
    output = _single_output(model, outputs)
    out_shape = tuple(output.shape)
    layout, width, prefix, pooling = _read_output(
        model, out_shape, shape, channels_first, token_pooling, name
    )
    return BackboneSpec(
        out_shape, layout, channels_first, prefix, pooling, int(width), shape, output is not outputs
    )


def _check_one_image_input(model, name):
    """Raise unless `model` is a Keras 3 model with one input."""
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"`{name}` must be a Keras 3 model (functional, Sequential, subclassed, "
            "keras.applications or keras-hub). Received: "
            f"{name} of type {type(model).__name__}"
        )
    inputs = _input_names(model)
    if len(inputs) > 1:
        raise ValueError(
            f"`{name}` must take one input, the images; {model.name} takes {len(inputs)} "
            f"({', '.join(inputs)}). Wrap its image part (e.g. a keras-hub CLIP's "
            "`vision_encoder`). Received: a model with several inputs"
        )


def _check_channels_first_runs(model, name):
    """Raise when a channels_first backbone meets TensorFlow without a GPU."""
    if keras.backend.backend() != "tensorflow":
        return
    devices = [d.lower() for d in keras.distribution.list_devices()]
    if not any("gpu" in d or "cuda" in d for d in devices):
        raise ValueError(
            f"`{name}` ({model.name}) is channels_first, and TensorFlow runs "
            "channels_first convolutions only on a GPU. Build it channels_last "
            "(keras.config.set_image_data_format('channels_last') before building it, "
            "or data_format='channels_last'), or use the JAX or PyTorch backend, "
            "which run it. Received: a channels_first backbone on a TensorFlow CPU"
        )


def _symbolic_output(model, feed, shape, name):
    """The backbone's symbolic output for images of shape `feed`, building it if needed."""
    try:
        if model.built and getattr(model, "inputs", None):
            return model.compute_output_spec(keras.KerasTensor((2,) + feed))
        # A Sequential without an Input or a subclassed model: a symbolic
        # call creates every variable now, before the optimizer is built
        # over them.
        return model(keras.KerasTensor((None,) + feed))
    except Exception as error:  # the backend's own message follows
        raise ValueError(
            f"`{name}` ({model.name}) cannot take images of `input_shape`; pass the shape "
            "the backbone was built for (e.g. its `input_shape` without the batch "
            f"dimension). Received: input_shape={shape}. Backend error: "
            f"{str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__}"
        ) from None


def _read_output(model, out_shape, shape, channels_first, token_pooling, name):
    """`(layout, width, prefix_tokens, token_pooling)` of an output shape, or a ValueError."""
    rank = len(out_shape)
    if rank == 2:
        layout, width, prefix, pooling = "vector", out_shape[1], None, None
    elif rank == 4:
        layout, prefix, pooling = "map", None, None
        width = out_shape[1] if channels_first else out_shape[3]
    elif rank == 3:
        layout, width = "tokens", out_shape[2]
        prefix = None
        if out_shape[1] is not None:
            prefix = count_prefix_tokens(out_shape[1], shape[0], shape[1], model)
        pooling = _token_pooling(model, token_pooling, shape, out_shape[1], prefix)
    else:
        raise ValueError(
            f"`{name}` must output features of rank 2 (B, d), rank 3 tokens (B, T, D), "
            "pooled by the class token or the mean of the patch tokens, or rank 4 "
            f"(B, H, W, C), average-pooled. Received: output shape {out_shape} for "
            f"input_shape={shape}"
        )
    if token_pooling is not None and layout != "tokens":
        raise ValueError(
            f"`token_pooling` applies to backbones that output tokens (B, T, D); "
            f"{model.name} outputs {out_shape}. Leave it None. "
            f"Received: token_pooling={token_pooling!r}"
        )
    if width is None:
        raise ValueError(
            f"`{name}` must have a fixed feature width (the last axis of its output). "
            f"Received: output shape {out_shape} for input_shape={shape}"
        )
    return layout, width, prefix, pooling


def input_adapter(spec):
    """A layer from `(B, H, W, C)` images to what the backbone takes (a
    `Permute` for a `channels_first` backbone), or None.
    """
    if spec.channels_first:
        return keras.layers.Permute((3, 1, 2), name="to_channels_first")
    return None


def pooling_layer(spec, name="backbone_pool"):
    """Standard Keras layers from the backbone's output to `(B, width)`.

    Built from `Cropping1D`, `GlobalAveragePooling1D/2D` with their data
    format given explicitly, so a model that contains them loads without
    simclr_keras and ignores the global image data format.

    Args:
        spec: A `BackboneSpec`.
        name: The layer's name.

    Returns:
        A `keras.Sequential` (an `Identity` layer for a feature vector).
    """
    shape = spec.output_shape[1:]
    if spec.layout == "vector":
        return keras.layers.Identity(name=name)
    if spec.layout == "map":
        fmt = "channels_first" if spec.channels_first else "channels_last"
        layers = [keras.layers.GlobalAveragePooling2D(data_format=fmt)]
    else:
        num_tokens = shape[0]
        if spec.token_pooling == "class":
            crop = (0, num_tokens - 1) if num_tokens is not None else None
        else:
            crop = (spec.prefix_tokens or 0, 0)
        layers = [keras.layers.GlobalAveragePooling1D(data_format="channels_last")]
        if crop is None:
            raise ValueError(
                "Token pooling by the class token needs a fixed token count. "
                f"Received: output shape {spec.output_shape}"
            )
        if crop != (0, 0):
            layers.insert(0, keras.layers.Cropping1D(crop))
    return keras.Sequential([keras.Input(shape)] + layers, name=name)
