"""The input scalings a `preprocessing` argument names, and its check (no
Keras needed; the scaling itself is `simclr_keras.layers.input_scaling`).
"""

# Names of `keras.applications` families mapped to the scaling their
# `preprocess_input` performs, so that users can pass the family name.
PREPROCESSING_MODES = {
    "unit": "unit",  # [0, 1], the default
    "symmetric": "symmetric",  # [-1, 1]
    "caffe": "caffe",  # BGR, 0-255, ImageNet mean subtracted
    "torch": "torch",  # [0, 1], ImageNet mean/std standardised
    "raw255": "raw255",  # [0, 255]: models that rescale internally
    "efficientnet_lite": "efficientnet_lite",  # (x - 127) / 128 for x in [0, 255]
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
    if isinstance(preprocessing, str) and preprocessing.lower() in PREPROCESSING_MODES:
        return preprocessing.lower()
    raise ValueError(
        "`preprocessing` must be None, a callable taking images in [0, 255] "
        "(e.g. keras.applications.vgg16.preprocess_input) or one of "
        f"{sorted(PREPROCESSING_MODES)}. Received: "
        f"preprocessing={preprocessing!r}"
    )
