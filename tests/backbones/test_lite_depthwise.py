"""EfficientNet-Lite's `DepthwiseConv2D`: its shifted-slice form gives the outputs and the
gradients of `keras.layers.DepthwiseConv2D` on every backend, `"auto"` picks
it on JAX on the CPU only, and `efficientnet_lite0` builds either.
"""

import keras
import numpy as np
import pytest
import testing
from keras import ops

from simclr_keras.backbones.efficientnet_lite import DepthwiseConv2D as LiteDepthwise
from simclr_keras.backbones.efficientnet_lite import efficientnet_lite0


def outputs_and_gradients(layer, x, upstream):
    """`layer(x)`, and the gradients of `sum(layer(x) * upstream)` with respect
    to `x` and to each of the layer's trainable weights, on the active backend.
    """
    backend = keras.backend.backend()
    weights = layer.trainable_weights
    if backend == "jax":
        import jax

        def loss(x, values):
            y, _ = layer.stateless_call(values, [], x)
            return ops.sum(y * upstream), y

        values = [w.value for w in weights]
        (dx, dws), y = jax.grad(loss, argnums=(0, 1), has_aux=True)(
            ops.convert_to_tensor(x), values
        )
    elif backend == "tensorflow":
        import tensorflow as tf

        x = tf.Variable(x)
        with tf.GradientTape() as tape:
            y = layer(x)
            loss = tf.reduce_sum(y * upstream)
        dx, *dws = tape.gradient(loss, [x, *[w.value for w in weights]])
    else:
        import torch

        x = torch.tensor(x, requires_grad=True)
        y = layer(x)
        torch.sum(y * torch.as_tensor(upstream)).backward()
        dx, dws = x.grad, [w.value.grad for w in weights]
    return [ops.convert_to_numpy(t) for t in (y, dx, *dws)]


def twin_layers(kernel, strides, use_bias, activation=None, channels=5):
    """A plain Keras `DepthwiseConv2D` and a shifted Lite one with the same weights."""
    kwargs = dict(strides=strides, use_bias=use_bias, activation=activation)
    conv = keras.layers.DepthwiseConv2D(kernel, **kwargs)
    shifted = LiteDepthwise(kernel, implementation="shifted", **kwargs)
    conv.build((None, None, None, channels))
    shifted.build((None, None, None, channels))
    rng = np.random.default_rng(kernel * 10 + strides)
    shifted.set_weights([rng.normal(size=w.shape).astype("float32") for w in conv.weights])
    conv.set_weights(shifted.get_weights())
    return conv, shifted


class TestLiteDepthwise(testing.TestCase):
    @pytest.mark.parametrize(
        "kernel,strides,size", [(3, 1, 7), (3, 2, 9), (5, 1, 9), (5, 2, 12), (1, 1, 4)]
    )
    @pytest.mark.parametrize("use_bias", [False, True])
    def test_shifted_outputs_and_gradients_match_depthwise_conv2d(
        self, kernel, strides, size, use_bias
    ):
        conv, shifted = twin_layers(kernel, strides, use_bias, activation="relu6")
        rng = np.random.default_rng(size)
        x = rng.normal(size=(2, size, size, 5)).astype("float32")
        out = (size - kernel) // strides + 1
        upstream = rng.normal(size=(2, out, out, 5)).astype("float32")
        want = outputs_and_gradients(conv, x, upstream)
        got = outputs_and_gradients(shifted, x, upstream)
        assert got[0].shape == (2, out, out, 5)
        assert len(got) == len(want) == (4 if use_bias else 3)
        for name, g, w in zip(["outputs", "d_inputs", "d_kernel", "d_bias"], got, want):
            self.assertAllClose(g, w, rtol=1e-5, atol=1e-5, msg=name)

    def test_mixed_precision_matches_the_convolution(self):
        x = np.random.default_rng(1).normal(size=(2, 9, 9, 6)).astype("float32")
        layers = {}
        for impl in ("conv", "shifted"):
            layers[impl] = LiteDepthwise(5, implementation=impl, dtype="mixed_bfloat16")
            layers[impl].build(x.shape)
        layers["shifted"].set_weights(layers["conv"].get_weights())
        got, want = layers["shifted"](x), layers["conv"](x)
        assert keras.backend.standardize_dtype(got.dtype) == "bfloat16"
        # Both round the same float32 sums to bfloat16 (8 bits of mantissa).
        self.assertAllClose(
            ops.cast(got, "float32"), ops.cast(want, "float32"), rtol=2e-2, atol=2e-2
        )

    def test_auto_uses_the_slices_on_jax_cpu_only(self):
        layer = LiteDepthwise(3)
        layer.build((None, 6, 6, 2))
        x = ops.ones((1, 6, 6, 2))
        expected = keras.backend.backend() == "jax"
        if expected:
            import jax

            expected = jax.default_backend() == "cpu"
        assert layer._shifted_applies(x) is expected
        layer.implementation = "conv"
        assert layer._shifted_applies(x) is False
        layer.implementation = "shifted"
        assert layer._shifted_applies(x) is True

    def test_unsupported_configurations_fall_back_to_the_convolution(self):
        x = ops.ones((1, 6, 6, 2))
        for kwargs in [dict(padding="same"), dict(dilation_rate=2), dict(depth_multiplier=2)]:
            layer = LiteDepthwise(3, implementation="shifted", **kwargs)
            plain = keras.layers.DepthwiseConv2D(3, **kwargs)
            plain.build(x.shape)
            layer.build(x.shape)
            layer.set_weights(plain.get_weights())
            assert layer._shifted_applies(x) is False
            self.assertAllClose(layer(x), plain(x), rtol=1e-6)

    def test_bad_implementation_is_refused(self):
        with pytest.raises(ValueError, match="implementation"):
            LiteDepthwise(3, implementation="slices")
        with pytest.raises(ValueError, match="depthwise_implementation"):
            efficientnet_lite0((32, 32, 3), depthwise_implementation="fast")

    def test_config_round_trip_keeps_the_implementation(self):
        layer = LiteDepthwise(5, strides=2, use_bias=False, implementation="shifted")
        again = LiteDepthwise.from_config(layer.get_config())
        assert again.implementation == "shifted"
        assert again.kernel_size == (5, 5) and again.strides == (2, 2)

    def test_efficientnet_lite0_same_outputs_either_way(self, tmp_path):
        models = {
            impl: efficientnet_lite0((32, 32, 3), depthwise_implementation=impl)
            for impl in ("conv", "shifted", "auto")
        }
        depthwise = [layer for layer in models["shifted"].layers if "depthwise_conv" in layer.name]
        assert len(depthwise) == 16
        assert all(isinstance(layer, LiteDepthwise) for layer in depthwise)
        assert all(
            type(layer) is keras.layers.DepthwiseConv2D
            for layer in models["conv"].layers
            if "depthwise_conv" in layer.name
        )
        # The weights are interchangeable (same layer names, shapes and order).
        path = str(tmp_path / "conv.weights.h5")
        models["conv"].save_weights(path)
        x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("float32")
        want = models["conv"].predict_on_batch(x)
        for impl in ("shifted", "auto"):
            models[impl].load_weights(path)
            self.assertAllClose(models[impl].predict_on_batch(x), want, rtol=1e-4, atol=1e-4)
        # A saved model keeps the layer class and its implementation.
        saved = str(tmp_path / "shifted.keras")
        models["shifted"].save(saved)
        loaded = keras.saving.load_model(saved)
        assert loaded.get_layer("blocks_3_depthwise_conv").implementation == "shifted"
        self.assertAllClose(loaded.predict_on_batch(x), want, rtol=1e-4, atol=1e-4)
