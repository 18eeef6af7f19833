"""The backbone as a standalone model: what `SimCLR.export_backbone` saves."""

import keras

from simclr_keras.backbones.spec import input_adapter, pooling_layer
from simclr_keras.layers.input_scaling import ImagePreprocess


def standalone_backbone(base_model, spec, preprocessing=None):
    """The backbone as a model that takes `(B, H, W, C)` images in [0, 1].

    With `preprocessing`, it is `ImagePreprocess(preprocessing)` followed
    by the backbone, so a user of the file scales images the way SimCLR
    trained it (keras-hub likewise keeps its image converter with the
    model); loading it takes `import simclr_keras` (which registers the
    layer). Without `preprocessing`, a backbone that takes channels-last
    images and outputs a feature vector or map is returned as it is (it
    loads with plain Keras). A backbone that outputs tokens gets its token
    pooling (plain Keras layers), so the model outputs the `(B, D)`
    features SimCLR trained; a `channels_first` backbone sits between two
    `Permute` layers, so it takes and returns channels-last tensors.

    Args:
        base_model: The backbone.
        spec: Its `BackboneSpec` (`backbones.describe_backbone`).
        preprocessing: The input scaling SimCLR fed it with (a mode name,
            a `keras.applications` family or a callable), or None.

    Returns:
        A `keras.Model` (`base_model` itself when nothing is added).
    """
    if preprocessing is None and not spec.channels_first and spec.layout != "tokens":
        return base_model
    inputs = keras.Input(spec.input_shape, name="images")
    x = inputs
    if preprocessing is not None:
        x = ImagePreprocess(preprocessing=preprocessing, name="input_scaling")(x)
    adapter = input_adapter(spec)
    if adapter is not None:
        x = adapter(x)
    x = base_model(x)
    if spec.layout == "tokens":
        x = pooling_layer(spec, name="token_pooling")(x)
    elif spec.layout == "map" and spec.channels_first:
        x = keras.layers.Permute((2, 3, 1), name="to_channels_last")(x)
    suffix = "_with_input_scaling" if preprocessing is not None else "_export"
    return keras.Model(inputs, x, name=f"{base_model.name}{suffix}")
