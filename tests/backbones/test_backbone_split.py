"""Tests of simclr_keras.backbones.split: a backbone cut into bottom and top."""

import keras
import numpy as np
import pytest
import testing

from simclr_keras.backbones.split import choose_cut, split_backbone
from simclr_keras.evaluation.features import extract_features
from simclr_keras.layers import ImagePreprocess


def residual_backbone(size=16):
    """Two stages; the second has a residual block, whose inside is no cut."""
    inputs = keras.Input((size, size, 3))
    h = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="stem")(inputs)
    h = keras.layers.Conv2D(6, 3, strides=2, padding="same", name="down1")(h)
    h = keras.layers.Conv2D(6, 3, padding="same", name="stage1_out")(h)
    h = keras.layers.Conv2D(8, 3, strides=2, padding="same", name="down2")(h)
    inside = keras.layers.Conv2D(16, 1, activation="relu", name="res_expand")(h)
    inside = keras.layers.Conv2D(8, 1, name="res_project")(inside)
    h = keras.layers.Add(name="res_add")([h, inside])
    h = keras.layers.Conv2D(12, 1, name="head_conv")(h)
    return keras.Model(inputs, h, name="residual")


def wrapped(net, size=16):
    """`net` behind input scaling, as `pretrain` saves a backbone."""
    inputs = keras.Input((size, size, 3), name="images")
    h = ImagePreprocess(preprocessing="efficientnet_lite", name="input_scaling")(inputs)
    return keras.Model(inputs, net(h), name=f"{net.name}_with_input_scaling")


def sequential_backbone():
    return keras.Sequential(
        [
            keras.Input((16, 16, 3)),
            keras.layers.Conv2D(4, 3, strides=2, padding="same"),
            keras.layers.Conv2D(8, 3, strides=2, padding="same"),
            keras.layers.Conv2D(8, 3, padding="same"),
        ]
    )


class Subclassed(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.conv = keras.layers.Conv2D(4, 3, strides=2)

    def call(self, x):
        return self.conv(x)


def subclassed_backbone():
    model = Subclassed()
    model(np.zeros((1, 16, 16, 3), "float32"))
    return model


IMAGES = np.random.default_rng(0).random((5, 16, 16, 3)).astype("float32")


class TestSplitBackbone(testing.TestCase):
    @pytest.mark.parametrize(
        "make, unfreeze, cut",
        [
            (residual_backbone, "last_stage", "stage1_out"),
            (residual_backbone, "last_block", "res_add"),
            (lambda: wrapped(residual_backbone()), "last_stage", "stage1_out"),
            (lambda: wrapped(residual_backbone()), "last_block", "res_add"),
        ],
    )
    def test_cut_is_a_block_output_never_inside_a_residual_block(self, make, unfreeze, cut):
        split = split_backbone(make(), (16, 16, 3), unfreeze)
        assert f"'{cut}'" in split.description
        assert "res_expand" not in split.description

    @pytest.mark.parametrize(
        "make",
        [residual_backbone, lambda: wrapped(residual_backbone()), sequential_backbone],
    )
    @pytest.mark.parametrize("unfreeze", ["last_stage", "last_block", "all"])
    def test_bottom_then_top_is_the_backbone(self, make, unfreeze):
        """Composing the halves gives `extract_features` of the backbone."""
        backbone = make()
        split = split_backbone(backbone, (16, 16, 3), unfreeze)
        maps = split.bottom(IMAGES, training=False)
        assert tuple(maps.shape[1:]) == split.cut_shape
        self.assertAllClose(
            split.top(maps, training=False),
            extract_features(backbone, IMAGES, verbose=0),
            rtol=1e-5,
            atol=1e-5,
        )

    def test_the_backbone_is_never_changed(self):
        backbone = residual_backbone()
        before = [w.copy() for w in backbone.get_weights()]
        split = split_backbone(backbone, (16, 16, 3))
        for weight in split.top.weights:
            weight.assign(weight + 1.0)
        for now, then in zip(backbone.get_weights(), before):
            self.assertAllEqual(now, then)

    def test_a_model_without_a_graph_is_cut_at_its_input(self):
        backbone = subclassed_backbone()
        split = split_backbone(backbone, (16, 16, 3))
        assert split.cut_shape == (16, 16, 3)
        assert "whole backbone" in split.description
        self.assertAllClose(
            split.top(split.bottom(IMAGES)),
            extract_features(backbone, IMAGES, verbose=0),
            rtol=1e-5,
            atol=1e-5,
        )

    def test_grey_images_and_resizing(self):
        grey = np.random.default_rng(1).random((3, 20, 20)).astype("float32")
        split = split_backbone(residual_backbone(), (20, 20), image_size=(16, 16), channels=3)
        assert split.image_shape == (20, 20, 1)
        assert split.bottom(grey[..., None]).shape[0] == 3

    def test_an_unknown_rule_is_refused(self):
        with pytest.raises(
            ValueError, match="`unfreeze` must be one of .*Received: unfreeze='top'"
        ):
            split_backbone(residual_backbone(), (16, 16, 3), "top")

    def test_choose_cut_without_spatial_sizes_finds_nothing(self):
        inputs = keras.Input((None, None, 3))
        h = keras.layers.Conv2D(4, 3, strides=2)(inputs)
        model = keras.Model(inputs, keras.layers.Conv2D(4, 3)(h))
        assert choose_cut(model, "last_stage") == (None, None)
