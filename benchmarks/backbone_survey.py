"""Survey: wrap many Keras backbones in `SimCLR`, train one epoch, extract features.

For each backbone (keras.applications, keras-hub CNNs and transformers, a
few hand-written kinds, and malformed ones that must be refused with one
clear message) it builds `SimCLR(base, shape, 4, [32, 16])`, fits one epoch
of two steps on random images, extracts P3 features and checks they are
finite and as wide as the backbone's feature width. Prints one row per
backbone: ok / refused (with the first line of the message) / FAILED.

Views are drawn by a cheap stand-in (a `Rescaling` layer) unless `--augment`
is given: the survey is about backbones, and the default augmentation
multiplies the XLA compile time of every model.

Usage: KERAS_BACKEND=jax python benchmarks/backbone_survey.py [--augment] [NAME_SUBSTRING ...]
"""

import sys
import time
import traceback

import keras
import numpy as np

from simclr_keras import SimCLR, extract_features

S = (32, 32, 3)


def apps(factory, shape=S, **kw):
    return lambda: (factory(include_top=False, weights=None, input_shape=shape, **kw), shape)


def hub(name, shape=S, **kw):
    def build():
        import keras_hub

        return getattr(keras_hub.models, name)(**kw), shape

    return build


def seq_no_input():
    return keras.Sequential(
        [keras.layers.Conv2D(8, 3, activation="relu"), keras.layers.GlobalAveragePooling2D()]
    ), S


def subclassed():
    class Net(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.conv = keras.layers.Conv2D(8, 3)
            self.dense = keras.layers.Dense(12)

        def call(self, x):
            return self.dense(keras.ops.mean(self.conv(x), axis=(1, 2)))

    return Net(), S


def functional(outputs_fn, shape=S):
    def build():
        inputs = keras.Input(shape)
        x = keras.layers.Rescaling(2.0, -1.0)(inputs)
        x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(x)
        return keras.Model(inputs, outputs_fn(x)), shape

    return build


def two_outputs(x):
    return [x, keras.layers.GlobalAveragePooling2D()(x)]


def dict_outputs(x):
    return {"map": x, "vector": keras.layers.GlobalAveragePooling2D()(x)}


def multi_input():
    a, b = keras.Input(S), keras.Input(S)
    return keras.Model([a, b], keras.layers.Add()([a, b])), S


def rank5():
    inputs = keras.Input(S)
    return keras.Model(inputs, keras.layers.Reshape((2, 16, 32, 3))(inputs)), S


def grey_backbone():
    inputs = keras.Input((32, 32, 1))
    return keras.Model(inputs, keras.layers.Conv2D(4, 3)(inputs)), S


def fixed_64():
    return keras.applications.MobileNetV2(
        include_top=False, weights=None, input_shape=(64, 64, 3), pooling="avg"
    ), S


def channels_first():
    inputs = keras.Input((3, 32, 32))
    x = keras.layers.Conv2D(8, 3, data_format="channels_first")(inputs)
    return keras.Model(inputs, x), S


def a_layer():
    return keras.layers.Conv2D(4, 3), S


TINY_VIT = dict(image_shape=S, patch_size=8, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=32)

CANDIDATES = {
    # hand-written kinds
    "keras.Sequential.no_input": seq_no_input,
    "keras.subclassed": subclassed,
    "keras.functional.rescaling_inside": functional(lambda x: x),
    "keras.functional.2d_output": functional(keras.layers.GlobalAveragePooling2D()),
    # malformed: each must be refused with one clear message
    "bad.two_outputs": functional(two_outputs),
    "bad.dict_outputs": functional(dict_outputs),
    "bad.multi_input": multi_input,
    "bad.rank5_output": rank5,
    "bad.grey_backbone_rgb_shape": grey_backbone,
    "bad.fixed_64px_given_32": fixed_64,
    "bad.not_a_model": a_layer,
    "cf.channels_first": channels_first,
    # keras-hub, random weights
    "hub.ResNetBackbone": hub(
        "ResNetBackbone",
        input_conv_filters=[64],
        input_conv_kernel_sizes=[3],
        stackwise_num_filters=[64, 32],
        stackwise_num_blocks=[1, 1],
        stackwise_num_strides=[1, 2],
        block_type="basic_block",
        image_shape=S,
    ),
    "hub.ViTBackbone": hub("ViTBackbone", **TINY_VIT),
    "hub.ViTBackbone.no_cls": hub("ViTBackbone", use_class_token=False, **TINY_VIT),
    "hub.DeiTBackbone": hub(
        "DeiTBackbone",
        image_shape=S,
        patch_size=8,
        num_layers=2,
        num_heads=2,
        hidden_dim=16,
        intermediate_dim=32,
    ),
    "hub.DINOV2Backbone": hub(
        "DINOV2Backbone",
        patch_size=8,
        num_layers=2,
        hidden_dim=16,
        num_heads=2,
        intermediate_dim=32,
        num_register_tokens=2,
        image_shape=S,
        position_embedding_shape=S,
    ),
    "hub.SwinTransformerBackbone": hub(
        "SwinTransformerBackbone",
        image_shape=S,
        embed_dim=16,
        depths=[1, 1],
        num_heads=[1, 2],
        window_size=4,
        patch_size=2,
    ),
    "hub.CLIPVisionEncoder": hub(
        "CLIPVisionEncoder",
        patch_size=8,
        hidden_dim=16,
        num_layers=2,
        num_heads=2,
        intermediate_dim=32,
        image_shape=S,
    ),
    "hub.MiTBackbone": hub(
        "MiTBackbone",
        layerwise_depths=[1, 1],
        num_layers=2,
        layerwise_num_heads=[1, 2],
        layerwise_sr_ratios=[2, 1],
        max_drop_path_rate=0.0,
        layerwise_patch_sizes=[7, 3],
        layerwise_strides=[4, 2],
        hidden_dims=[8, 16],
        image_shape=S,
    ),
    "hub.VGGBackbone": hub(
        "VGGBackbone", stackwise_num_repeats=[1, 1], stackwise_num_filters=[8, 16], image_shape=S
    ),
    "hub.DenseNetBackbone": hub("DenseNetBackbone", stackwise_num_repeats=[1, 1], image_shape=S),
    # keras.applications at (about) their minimum sizes, weights=None
    "apps.ResNet50": apps(keras.applications.ResNet50),
    "apps.ResNet50.avg": apps(keras.applications.ResNet50, pooling="avg"),
    "apps.MobileNetV3Small": apps(keras.applications.MobileNetV3Small),
    "apps.MobileNetV2.max": apps(keras.applications.MobileNetV2, pooling="max"),
    "apps.EfficientNetB0": apps(keras.applications.EfficientNetB0),
    "apps.EfficientNetV2B0": apps(keras.applications.EfficientNetV2B0),
    "apps.ConvNeXtTiny": apps(keras.applications.ConvNeXtTiny),
    "apps.DenseNet121": apps(keras.applications.DenseNet121),
    "apps.VGG16": apps(keras.applications.VGG16),
    "apps.Xception": apps(keras.applications.Xception, shape=(71, 71, 3)),
    "apps.InceptionV3": apps(keras.applications.InceptionV3, shape=(75, 75, 3)),
}


def run(name, build, augment=False):
    start = time.time()
    try:
        base, shape = build()
    except Exception as error:  # the candidate itself cannot be built here
        return "skip", f"not constructible: {type(error).__name__}: {str(error)[:100]}"
    try:
        kwargs = {} if augment else {"augmentation": keras.layers.Rescaling(1.0)}
        simclr = SimCLR(base, shape, 4, [32, 16], None, seed=0, **kwargs)
    except (ValueError, TypeError) as error:
        return "refused", str(error).splitlines()[0][:300]
    except Exception as error:
        return "CRASH", f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
    try:
        x = np.random.default_rng(0).integers(0, 256, (8,) + shape, dtype="uint8")
        history = simclr.fit(x, epochs=1, verbose=0)
        loss = history.history["loss"][-1]
        feats = extract_features(simclr, x, verbose=0)
        width = simclr.projection_head.input_shape[-1]
        ok = feats.shape == (8, width) and np.isfinite(feats).all() and np.isfinite(loss)
        return (
            "ok" if ok else "WRONG"
        ), f"features {feats.shape}, loss {loss:.3f}, {time.time() - start:.0f} s"
    except Exception as error:
        tb = traceback.format_exc().strip().splitlines()
        return (
            "FAILED",
            f"{type(error).__name__}: {str(error).splitlines()[0][:200]} | {tb[-3][:150]}",
        )


def main(args):
    augment = "--augment" in args
    filters = [a for a in args if a != "--augment"]
    print(f"backend {keras.backend.backend()}, keras {keras.__version__}, augment={augment}")
    for name, build in CANDIDATES.items():
        if filters and not any(f in name for f in filters):
            continue
        status, detail = run(name, build, augment)
        print(f"{name:32s} {status:8s} {detail}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
