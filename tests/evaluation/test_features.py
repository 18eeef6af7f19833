"""Tests of simclr_keras.features: depths P1/P2/P3, named layers, preprocessing, copies."""

import keras
import numpy as np
import pytest
import testing
from sklearn.datasets import load_digits
from testing import to_numpy

from simclr_keras import SimCLR, extract_features, snapshot_backbone
from simclr_keras.layers.input_scaling import apply_preprocessing


@pytest.fixture(scope="module")
def digits_uint8():
    """First 40 sklearn digits as (40, 8, 8) uint8 in [0, 255]."""
    d = load_digits()
    return (d.images[:40] * (255 / 16)).round().astype("uint8"), d.target[:40]


def conv_backbone(size=16, name=None):
    return keras.Sequential(
        [
            keras.Input((size, size, 3)),
            keras.layers.Conv2D(4, 3, activation="relu", name="conv_a"),
            keras.layers.Conv2D(6, 3, strides=2, name="conv_b"),
        ],
        name=name,
    )


def reference_p3(simclr, images_uint8):
    """NumPy-side reference: gray -> RGB, [0, 1], resize, preprocess, encode."""
    x = np.repeat(images_uint8[..., None].astype("float32") / 255.0, 3, axis=-1)
    x = keras.ops.image.resize(x, simclr.image_shape[:2])
    x = apply_preprocessing(x, simclr.preprocessing)
    return to_numpy(simclr.encode(x))


class TinySubclassed(keras.Model):
    def __init__(self, width=4, **kwargs):
        super().__init__(**kwargs)
        self.width = width
        self.conv = keras.layers.Conv2D(width, 3)
        self.dense = keras.layers.Dense(3)

    def call(self, x):
        return self.dense(self.conv(x))


def backbones():
    functional_in = keras.Input((16, 16, 3))
    functional = keras.Model(functional_in, keras.layers.Conv2D(3, 3)(functional_in))
    subclassed = TinySubclassed()
    subclassed(np.zeros((1, 16, 16, 3), "float32"))
    return {"functional": functional, "sequential": conv_backbone(), "subclassed": subclassed}


class TestFeatures(testing.TestCase):
    def test_depths_match_a_numpy_reference(self, digits_uint8):
        images, _ = digits_uint8
        simclr = SimCLR(
            conv_backbone(), (16, 16, 3), 4, feat_dims_ph=[8, 5], preprocessing="symmetric", seed=0
        )
        p3 = reference_p3(simclr, images)
        dense0 = simclr.projection_head.get_layer("ph_dense_0")
        kernel, bias = (to_numpy(w) for w in dense0.weights)
        p2 = np.maximum(p3 @ kernel + bias, 0)  # G-SimCLR's P2: after the ReLU
        out = {
            d: extract_features(simclr, images, d, batch_size=16, verbose=0)
            for d in ("P3", "P2", "P1")
        }
        self.assertAllClose(out["P3"], p3, rtol=1e-4, atol=1e-5)
        self.assertAllClose(out["P2"], p2, rtol=1e-4, atol=1e-4)
        self.assertAllClose(out["P1"], p2, rtol=1e-4, atol=1e-4)  # 2-layer head
        assert out["P3"].dtype == np.float32 and out["P3"].shape == (40, 6)
        assert (out["P2"] == 0).any() and (out["P2"] > 0).any(), "P2 is post-ReLU"
        # Float [0, 1] input gives the same features as uint8.
        floats = extract_features(simclr, images.astype("float32") / 255.0, "P3", verbose=0)
        self.assertAllClose(floats, out["P3"], rtol=1e-5, atol=1e-6)

    def test_depths_with_batch_norm_head(self, digits_uint8):
        images, _ = digits_uint8
        simclr = SimCLR(
            conv_backbone(), (16, 16, 3), 4, feat_dims_ph=[8, 7, 5], use_batch_norm_ph=True, seed=0
        )
        names = [l.name for l in simclr.projection_head.layers]
        assert names == [
            "ph_dense_0", "ph_bn_0", "ph_relu_0",
            "ph_dense_1", "ph_bn_1", "ph_relu_1",
            "ph_dense_2", "ph_bn_2",
        ]  # fmt: skip
        # P2 = after the first Dense -> BN -> ReLU; P1 = after the last hidden ReLU.
        out = extract_features(simclr, images, ("P2", "P1", "ph_relu_0", "ph_relu_1"), verbose=0)
        self.assertAllClose(out["P2"], out["ph_relu_0"], rtol=1e-6)
        self.assertAllClose(out["P1"], out["ph_relu_1"], rtol=1e-6)
        assert out["P2"].shape == (40, 8) and out["P1"].shape == (40, 7)
        assert out["P2"].min() >= 0 and out["P1"].min() >= 0

    def test_named_backbone_layer_and_plain_backbone(self, digits_uint8):
        images, _ = digits_uint8
        base = conv_backbone()
        x = np.repeat(images[..., None].astype("float32") / 255.0, 3, axis=-1)
        x = keras.ops.image.resize(x, (16, 16)) * 2.0 - 1.0
        inner = keras.Model(base.inputs, base.get_layer("conv_a").output)
        expected = to_numpy(keras.ops.mean(inner(x), axis=(1, 2)))
        got = extract_features(base, images, "conv_a", preprocessing="symmetric", verbose=0)
        self.assertAllClose(got, expected, rtol=1e-4, atol=1e-5)
        expected_p3 = to_numpy(keras.ops.mean(base(x), axis=(1, 2)))
        got_p3 = extract_features(base, images, preprocessing="symmetric", batch_size=7, verbose=0)
        self.assertAllClose(got_p3, expected_p3, rtol=1e-4, atol=1e-5)

    def test_bad_arguments_fail_clearly(self, digits_uint8):
        images, _ = digits_uint8
        base = conv_backbone()
        with pytest.raises(ValueError, match="only a `SimCLR` model has"):
            extract_features(base, images, "P2", verbose=0)
        with pytest.raises(ValueError, match="Received: depth='nope'"):
            extract_features(base, images, "nope", verbose=0)
        simclr = SimCLR(conv_backbone(), (16, 16, 3), 4, feat_dims_ph=[5], seed=0)
        with pytest.raises(ValueError, match="no ReLU"):
            extract_features(simclr, images, "P1", verbose=0)
        with pytest.raises(ValueError, match="taken from the SimCLR"):
            extract_features(simclr, images, preprocessing="vgg16", verbose=0)
        with pytest.raises(ValueError, match="images"):
            extract_features(base, images[0, 0], verbose=0)
        with pytest.raises(ValueError, match=r"must be in \[0, 1\].*divide by 255"):
            extract_features(base, images.astype("float32"), verbose=0)

    @pytest.mark.parametrize("kind", ["functional", "sequential", "subclassed"])
    def test_snapshot_backbone_is_an_independent_copy(self, kind, digits_uint8):
        model = backbones()[kind]
        before = [np.copy(w) for w in model.get_weights()]
        copy = snapshot_backbone(model)
        assert copy is not model and len(copy.weights) == len(model.weights)
        assert all(np.array_equal(a, b) for a, b in zip(copy.get_weights(), before))
        copy.set_weights([w + 1.0 for w in copy.get_weights()])
        assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), before))
        # The copy computes what the original did.
        images, _ = digits_uint8
        f_model = extract_features(model, images, image_size=(16, 16), verbose=0)
        f_copy = extract_features(snapshot_backbone(model), images, image_size=(16, 16), verbose=0)
        self.assertAllClose(f_model, f_copy, rtol=1e-6)

    @pytest.mark.parametrize("head_bn", [False, True])
    def test_several_depths_in_one_pass_equal_separate_calls(self, digits_uint8, tmp_path, head_bn):
        images, _ = digits_uint8
        simclr = SimCLR(
            conv_backbone(), (16, 16, 3), 4, feat_dims_ph=[8, 5], use_batch_norm_ph=head_bn, seed=0
        )
        depths = ["P1", "P3", "ph_dense_0", "P2"]  # any order, head layer names too
        together = extract_features(simclr, images, depths, batch_size=16, verbose=0)
        assert list(together) == depths
        for depth in depths:
            alone = extract_features(
                simclr, images, depth, batch_size=40, verbose=0
            )  # one unpadded batch
            self.assertAllClose(together[depth], alone, rtol=1e-5, atol=1e-6, msg=depth)
            assert (
                together[depth].shape[0] == 40
            )  # padding of the last batch (40 = 2 x 16 + 8) is cut off
        # Repeated calls reuse the cached extractor; the cache is not a tracked
        # sub-layer, so the model saves and reloads as before.
        cache = simclr.__dict__["_simclr_feature_extractors"]
        size = len(cache)
        extract_features(simclr, images[:7], depths, batch_size=16, verbose=0)
        assert len(cache) == size
        assert not any("feature_extractor" in l.name for l in simclr._flatten_layers())
        path = str(tmp_path / "m.keras")
        simclr.save(path)
        restored = keras.saving.load_model(path)
        self.assertAllClose(
            extract_features(restored, images, "P3", verbose=0),
            together["P3"],
            rtol=1e-5,
            atol=1e-6,
        )
        with pytest.raises(ValueError, match="`depth` must list each depth once"):
            extract_features(simclr, images, ["P3", "P3"], verbose=0)
        # A trunk per named backbone layer: separate passes, same answers.
        mixed = extract_features(simclr, images, ("conv_a", "P3"), verbose=0)
        self.assertAllClose(mixed["P3"], together["P3"], rtol=1e-5, atol=1e-6)
        assert mixed["conv_a"].shape == (40, 4)
