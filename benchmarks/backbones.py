"""Keras backbones for the benchmarks, each with a PyTorch twin in peer_lightly.py.

`small_cnn`: 3 conv-BN-ReLU layers (32, 64, 128 filters; the last two stride 2).
`resnet18`: ResNet-18 with basic blocks; at 64 px or less the CIFAR stem
(3x3 conv, stride 1, no max-pool), as in SimCLR's CIFAR-10 runs.
`resnet50`: `keras.applications.ResNet50(include_top=False, weights=None)`.
"""

import keras
from keras import layers

# Projection head sizes per backbone (hidden, output), SimCLR's 2-layer MLP.
HEAD_DIMS = {"small_cnn": [128, 64], "resnet18": [512, 128], "resnet50": [2048, 128]}
SMALL_IMAGE = 64


def _conv_bn_relu(x, filters, kernel, strides, relu=True):
    x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization(epsilon=1e-5, momentum=0.9)(x)
    return layers.ReLU()(x) if relu else x


def small_cnn(input_shape):
    """Three conv-BN-ReLU layers; output `(H/4, W/4, 128)`."""
    inputs = keras.Input(input_shape)
    x = _conv_bn_relu(inputs, 32, 3, 1)
    x = _conv_bn_relu(x, 64, 3, 2)
    x = _conv_bn_relu(x, 128, 3, 2)
    return keras.Model(inputs, x, name="small_cnn")


def _basic_block(x, filters, strides):
    shortcut = x
    y = _conv_bn_relu(x, filters, 3, strides)
    y = _conv_bn_relu(y, filters, 3, 1, relu=False)
    if strides != 1 or x.shape[-1] != filters:
        shortcut = _conv_bn_relu(x, filters, 1, strides, relu=False)
    return layers.ReLU()(layers.Add()([y, shortcut]))


def resnet18(input_shape):
    """ResNet-18 (He et al. 2016), torchvision's layout; CIFAR stem when small."""
    inputs = keras.Input(input_shape)
    if max(input_shape[:2]) <= SMALL_IMAGE:
        x = _conv_bn_relu(inputs, 64, 3, 1)
    else:
        x = _conv_bn_relu(inputs, 64, 7, 2)
        x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
    for i, filters in enumerate((64, 128, 256, 512)):
        x = _basic_block(x, filters, 1 if i == 0 else 2)
        x = _basic_block(x, filters, 1)
    return keras.Model(inputs, x, name="resnet18")


def resnet50(input_shape):
    """Keras' ResNet-50 without its classifier, randomly initialised."""
    return keras.applications.ResNet50(include_top=False, weights=None, input_shape=input_shape)


BACKBONES = {"small_cnn": small_cnn, "resnet18": resnet18, "resnet50": resnet50}


def build(name, image_size):
    """The backbone `name` for `(image_size, image_size, 3)` images."""
    if name not in BACKBONES:
        raise ValueError(f"`backbone` must be one of {sorted(BACKBONES)}. Received: backbone={name!r}")
    return BACKBONES[name]((image_size, image_size, 3))
