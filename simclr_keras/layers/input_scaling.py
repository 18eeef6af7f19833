"""Input scaling: uint8 or [0, 1] images in, what the backbone expects out."""

import keras
from keras import ops

from simclr_keras._export import simclr_export
from simclr_keras_rules.preprocessing_modes import PREPROCESSING_MODES, check_preprocessing

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


def to_unit_range(images):
    """Cast images to float32 in [0, 1]: integer dtypes are divided by 255,
    float images are taken to be in [0, 1] already.
    """
    if "int" in str(images.dtype):
        return ops.cast(images, "float32") / 255.0
    return ops.cast(images, "float32")


def fit_to_size(images, size):
    """Centre-crop images to the aspect ratio of `size`, then resize to it.

    Bilinear; antialiased when the images shrink (a source decoded larger
    than the model's input). Images already of that size are returned as
    they are.

    Args:
        images: float `(B, H, W, C)` with static H and W.
        size: `(height, width)`.

    Returns:
        `(B, height, width, C)` images.
    """
    size = tuple(int(s) for s in size)
    source = tuple(images.shape[1:3])
    if source == size:
        return images
    shrink = source[0] > size[0] or source[1] > size[1]
    return ops.image.resize(
        images,
        size,
        interpolation="bilinear",
        antialias=shrink,
        crop_to_aspect_ratio=True,
        data_format="channels_last",
    )


# `keras.applications` model names (as they build them) and their family in
# `PREPROCESSING_MODES`, to warn when such a network gets no `preprocessing`.
APPLICATION_NAMES = (
    (r"vgg16", "vgg16"),
    (r"vgg19", "vgg19"),
    (r"resnet(50|101|152)", "resnet50"),
    (r"resnet(50|101|152)v2", "resnet50v2"),
    (r"inception_v3", "inception_v3"),
    (r"inception_resnet_v2", "inception_resnet_v2"),
    (r"xception", "xception"),
    (r"mobilenet_[\d.]+_\d+", "mobilenet"),
    (r"mobilenetv2_[\d.]+_\d+", "mobilenet_v2"),
    (r"mobilenetv3(small|large)", "mobilenet_v3"),
    (r"nasnet(mobile|large)?", "nasnet"),
    (r"densenet\d+", "densenet"),
    (r"efficientnetb\d", "efficientnet"),
    (r"efficientnetv2-\w+", "efficientnet_v2"),
    (r"convnext_\w+", "convnext"),
    (r"regnet[xy]\d+", "regnet"),
)


def expected_preprocessing(model):
    """The `preprocessing` a known pretrained network needs, or None.

    A `keras.applications` model is recognised by the name it is built with
    (`"vgg16"`, `"resnet50"`, `"mobilenetv2_1.00_224"`, ...): its family
    name is returned. A keras-hub backbone returns `"preset"` (its scaling
    comes with the preset: `preset_preprocessing(preset)`).

    Example:
    >>> expected_preprocessing(keras.Sequential(name="vgg16"))
    'vgg16'
    """
    import re

    if type(model).__module__.startswith("keras_hub"):
        return "preset"
    name = str(getattr(model, "name", "")).lower()
    for pattern, family in APPLICATION_NAMES:
        if re.fullmatch(pattern, name):
            return family
    return None


def warn_missing_preprocessing(model, preprocessing):
    """Warn when a known pretrained network gets no `preprocessing` (then it
    sees images in [0, 1], not the scaling it was trained on).
    """
    import warnings

    if preprocessing is not None:
        return
    family = expected_preprocessing(model)
    if family is None:
        return
    if family == "preset":
        hint = (
            "pass `preprocessing=preset_preprocessing(PRESET)` "
            "(simclr_keras.backbones) for the preset's own scaling"
        )
    else:
        hint = (
            f"pass `preprocessing={family!r}` (its keras.applications family: "
            f"{PREPROCESSING_MODES[family]!r} scaling)"
        )
    warnings.warn(
        f"`preprocessing` is None, so the backbone {model.name!r} gets images in [0, 1], "
        f"but it looks like a pretrained network that expects its own input scaling: {hint}, "
        "or preprocessing='unit' if [0, 1] is what it was trained on.",
        UserWarning,
        stacklevel=3,
    )


def apply_preprocessing(images, preprocessing):
    """Map float32 images in [0, 1] to the backbone's expected input.

    Args:
        images: float32 `(B, H, W, C)` in [0, 1].
        preprocessing: See `check_preprocessing`.

    Returns:
        The preprocessed images.

    Example:
    >>> x = apply_preprocessing(ops.ones((1, 2, 2, 3)), "vgg16")
    """
    if preprocessing is None:
        return images
    images = ops.convert_to_tensor(images)
    if callable(preprocessing):
        return preprocessing(images * 255.0)
    mode = PREPROCESSING_MODES[preprocessing]
    if mode == "unit":
        return images
    if mode == "symmetric":
        return images * 2.0 - 1.0
    if mode == "raw255":
        return images * 255.0
    if mode == "efficientnet_lite":
        return (images * 255.0 - 127.0) / 128.0
    if mode == "torch":
        mean = ops.convert_to_tensor(_IMAGENET_MEAN, dtype=images.dtype)
        std = ops.convert_to_tensor(_IMAGENET_STD, dtype=images.dtype)
        return (images - mean) / std
    # caffe: RGB -> BGR, 0-255, mean subtracted
    mean = ops.convert_to_tensor(_CAFFE_MEAN_BGR, dtype=images.dtype)
    return ops.flip(images, axis=-1) * 255.0 - mean


def serialize_preprocessing(preprocessing):
    """Config form of `preprocessing`: strings as is, callables by Keras
    serialization when registered, else by name (with a warning on load).
    """
    if preprocessing is None or isinstance(preprocessing, str):
        return preprocessing
    return keras.saving.serialize_keras_object(preprocessing)


def deserialize_preprocessing(config):
    """Inverse of `serialize_preprocessing`."""
    if config is None or isinstance(config, str):
        return config
    return keras.saving.deserialize_keras_object(config)


@simclr_export("simclr_keras.layers.ImagePreprocess")
class ImagePreprocess(keras.layers.Layer):
    """Map float [0, 1] images to the backbone's input, without augmentation.

    Grayscale images are repeated to the backbone's channel count, images are
    brought to `image_size` when they differ (`fit_to_size`: centre crop to
    its aspect ratio, then a bilinear resize, antialiased when shrinking),
    then scaled by `apply_preprocessing`: the same path `SimCLR` takes after
    its augmentation.

    Args:
        image_size: `(height, width)` the backbone takes, or None to keep
            the images' size.
        channels: Channels the backbone takes, or None to keep them.
        preprocessing: See `simclr_keras_rules.preprocessing_modes.check_preprocessing`.
        **kwargs: Standard layer arguments.

    Returns:
        float32 `(B, height, width, channels)` images.

    Example:
    >>> tuple(ImagePreprocess((32, 32), 3)(ops.ones((2, 8, 8, 1))).shape)
    (2, 32, 32, 3)
    """

    def __init__(self, image_size=None, channels=None, preprocessing=None, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.image_size = None if image_size is None else tuple(int(s) for s in image_size)
        self.channels = None if channels is None else int(channels)
        self.preprocessing = check_preprocessing(preprocessing)

    def call(self, images):
        x = ops.cast(images, "float32")
        if self.channels is not None and x.shape[-1] == 1 and self.channels != 1:
            x = ops.repeat(x, self.channels, axis=-1)
        if self.image_size is not None:
            x = fit_to_size(x, self.image_size)
        return apply_preprocessing(x, self.preprocessing)

    def compute_output_shape(self, input_shape):
        size = self.image_size or tuple(input_shape[1:3])
        return (input_shape[0],) + tuple(size) + (self.channels or input_shape[-1],)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "image_size": self.image_size,
                "channels": self.channels,
                "preprocessing": serialize_preprocessing(self.preprocessing),
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["preprocessing"] = deserialize_preprocessing(config.get("preprocessing"))
        return cls(**config)
