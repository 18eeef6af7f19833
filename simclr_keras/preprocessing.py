"""Input scaling: uint8 or [0, 1] images in, what the backbone expects out."""

import keras
from keras import ops

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)

# Names of `keras.applications` families mapped to the scaling their
# `preprocess_input` performs, so that users can pass the family name.
PREPROCESSING_MODES = {
    "unit": "unit",  # [0, 1], the default
    "symmetric": "symmetric",  # [-1, 1]
    "caffe": "caffe",  # BGR, 0-255, ImageNet mean subtracted
    "torch": "torch",  # [0, 1], ImageNet mean/std standardised
    "raw255": "raw255",  # [0, 255]: models that rescale internally
    "vgg16": "caffe",
    "vgg19": "caffe",
    "resnet50": "caffe",
    "resnet101": "caffe",
    "resnet152": "caffe",
    "resnet50v2": "symmetric",
    "resnet101v2": "symmetric",
    "resnet152v2": "symmetric",
    "inception_v3": "symmetric",
    "inception_resnet_v2": "symmetric",
    "xception": "symmetric",
    "mobilenet": "symmetric",
    "mobilenet_v2": "symmetric",
    "nasnet": "symmetric",
    "densenet": "torch",
    "mobilenet_v3": "raw255",
    "efficientnet": "raw255",
    "efficientnet_v2": "raw255",
    "convnext": "raw255",
    "regnet": "raw255",
}


def to_unit_range(images):
    """Cast images to float32 in [0, 1]: integer dtypes are divided by 255,
    float images are taken to be in [0, 1] already."""
    if "int" in str(images.dtype):
        return ops.cast(images, "float32") / 255.0
    return ops.cast(images, "float32")


def check_preprocessing(preprocessing):
    """Validate a `preprocessing` argument; return it unchanged.

    Args:
        preprocessing: `None`, a mode or `keras.applications` family name
            (see `PREPROCESSING_MODES`), or a callable that takes float
            images in [0, 255], such as
            `keras.applications.vgg16.preprocess_input`.

    Returns:
        The argument.
    """
    if preprocessing is None or callable(preprocessing):
        return preprocessing
    if (
        isinstance(preprocessing, str)
        and preprocessing.lower() in PREPROCESSING_MODES
    ):
        return preprocessing.lower()
    raise ValueError(
        "`preprocessing` must be None, a callable taking images in [0, 255] "
        "(e.g. keras.applications.vgg16.preprocess_input) or one of "
        f"{sorted(PREPROCESSING_MODES)}. Received: "
        f"preprocessing={preprocessing!r}"
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
    if mode == "torch":
        mean = ops.convert_to_tensor(_IMAGENET_MEAN, dtype=images.dtype)
        std = ops.convert_to_tensor(_IMAGENET_STD, dtype=images.dtype)
        return (images - mean) / std
    # caffe: RGB -> BGR, 0-255, mean subtracted
    mean = ops.convert_to_tensor(_CAFFE_MEAN_BGR, dtype=images.dtype)
    return ops.flip(images, axis=-1) * 255.0 - mean


def serialize_preprocessing(preprocessing):
    """Config form of `preprocessing`: strings as is, callables by Keras
    serialization when registered, else by name (with a warning on load)."""
    if preprocessing is None or isinstance(preprocessing, str):
        return preprocessing
    return keras.saving.serialize_keras_object(preprocessing)


def deserialize_preprocessing(config):
    """Inverse of `serialize_preprocessing`."""
    if config is None or isinstance(config, str):
        return config
    return keras.saving.deserialize_keras_object(config)
