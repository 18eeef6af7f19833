"""describe_backbone: building models without an Input, token pooling, and one
clear message for backbones SimCLR cannot take.
"""

import keras
import numpy as np
import pytest
import testing

from simclr_keras import SimCLR, extract_features
from simclr_keras.backbones import snapshot_backbone, weighted_layers
from simclr_keras.backbones.spec import count_prefix_tokens, describe_backbone

SHAPE = (16, 16, 3)


def conv_input(shape=SHAPE):
    inputs = keras.Input(shape)
    return inputs, keras.layers.Conv2D(4, 3, strides=2, name="conv")(inputs)


def tiny_simclr(base, shape=SHAPE, **kwargs):
    return SimCLR(
        base, shape, 4, [8, 4], augmentation=keras.layers.Rescaling(1.0), seed=0, **kwargs
    )


class TestSpec(testing.TestCase):
    def test_two_outputs_get_one_message_naming_them_and_the_fix(self):
        inputs, x = conv_input()
        pooled = keras.layers.GlobalAveragePooling2D(name="pooled")(x)
        base = keras.Model(inputs, [x, pooled], name="two_heads")
        with pytest.raises(ValueError) as info:
            tiny_simclr(base)
        text = str(info.value)
        assert "two_heads has 2 outputs" in text and "conv" in text and "pooled" in text
        assert "keras.Model(base.inputs, base.outputs[0])" in text
        # The fix the message gives works.
        tiny_simclr(keras.Model(base.inputs, base.outputs[0]))

    def test_dict_outputs_are_named_and_one_output_in_a_list_is_unwrapped(self):
        inputs, x = conv_input()
        base = keras.Model(inputs, {"map": x, "vec": keras.layers.GlobalAveragePooling2D()(x)})
        with pytest.raises(ValueError, match=r"dict of 2 outputs \{'map'.*base.output\['map'\]"):
            tiny_simclr(base)
        listed = keras.Model(inputs, [x])
        simclr = tiny_simclr(listed)
        assert simclr.encode(np.zeros((2,) + SHAPE, "float32")).shape == (2, 4)

    def test_several_inputs_and_non_models_are_refused(self):
        a, b = keras.Input(SHAPE, name="rgb"), keras.Input(SHAPE, name="depth")
        with pytest.raises(ValueError, match="must take one input.*takes 2"):
            tiny_simclr(keras.Model([a, b], keras.layers.Add()([a, b])))
        with pytest.raises(TypeError, match="must be a Keras 3 model.*Conv2D"):
            tiny_simclr(keras.layers.Conv2D(4, 3))
        inputs = keras.Input(SHAPE)
        rank5 = keras.Model(inputs, keras.layers.Reshape((2, 8, 16, 3))(inputs))
        with pytest.raises(ValueError, match="rank 3 tokens"):
            tiny_simclr(rank5)

    def test_input_shape_must_match_the_backbone_channels_and_size(self):
        inputs, x = conv_input()
        base = keras.Model(inputs, x)
        with pytest.raises(ValueError) as info:
            tiny_simclr(base, shape=(16, 16, 1))
        text = str(info.value)
        assert "`input_shape` must end with the 3 channel(s)" in text
        assert "input_shape=(16, 16, 3)" in text and "np.repeat" in text
        with pytest.raises(
            ValueError, match=r"`input_shape` must match the image size.*height is 16"
        ):
            tiny_simclr(base, shape=(8, 8, 3))

    @pytest.mark.parametrize("kind", ["sequential", "subclassed"])
    def test_a_backbone_without_input_is_built_on_input_shape(self, kind):
        if kind == "sequential":
            base = keras.Sequential([keras.layers.Conv2D(4, 3), keras.layers.Dense(6)])
        else:

            class Net(keras.Model):
                def __init__(self):
                    super().__init__()
                    self.conv = keras.layers.Conv2D(4, 3)
                    self.dense = keras.layers.Dense(6)

                def call(self, x):
                    return self.dense(self.conv(x))

            base = Net()
        assert not base.weights
        simclr = tiny_simclr(base)
        assert base.built and len(base.weights) == 4
        # Every backbone variable is in the optimizer: fit cannot meet an unknown one.
        known = {id(v) for v in simclr.trainable_variables}
        assert all(id(v) in known for v in base.trainable_variables)
        assert simclr.backbone_spec.layout == "map" and simclr.backbone_spec.width == 6

    def test_prefix_tokens_from_the_patch_grid(self):
        assert count_prefix_tokens(197, 224, 224) == 1  # ViT-B/16
        assert count_prefix_tokens(198, 224, 224) == 2  # DeiT: class + distillation
        assert count_prefix_tokens(261, 224, 224) == 5  # DINOv2-reg at 14 px: 16 x 16 + 1 + 4
        assert count_prefix_tokens(49, 224, 224) == 0  # Swin's last stage: 7 x 7
        assert count_prefix_tokens(6 * 8 + 1, 96, 128) == 1  # non-square images, 16 px patches
        assert count_prefix_tokens(1000, 32, 32) is None  # not a patch grid

    def test_vit_tokens_pooled_by_class_token_or_patch_mean(self):
        keras_hub = pytest.importorskip("keras_hub")
        keras.utils.set_random_seed(0)
        base = keras_hub.models.ViTBackbone(
            image_shape=SHAPE, patch_size=4, num_layers=2, num_heads=2, hidden_dim=8, mlp_dim=16
        )
        x = np.random.default_rng(0).random((3,) + SHAPE).astype("float32")
        tokens = keras.ops.convert_to_numpy(base(x))
        assert tokens.shape == (3, 17, 8)
        spec = describe_backbone(base, SHAPE)
        assert (spec.layout, spec.prefix_tokens, spec.token_pooling) == ("tokens", 1, "class")
        by_class = extract_features(base, x, verbose=0)
        by_mean = extract_features(base, x, verbose=0, token_pooling="mean")
        self.assertAllClose(by_class, tokens[:, 0], rtol=1e-5, atol=1e-6)
        self.assertAllClose(by_mean, tokens[:, 1:].mean(axis=1), rtol=1e-5, atol=1e-6)
        simclr = tiny_simclr(base, token_pooling="mean")
        assert simclr.get_config()["token_pooling"] == "mean"
        self.assertAllClose(simclr.encode(x), by_mean, rtol=1e-5, atol=1e-6)
        # Freezing counts transformer blocks: embedding, 2 blocks, final norm.
        units = weighted_layers(base)
        assert [type(u).__name__ for u in units[1:3]] == ["ViTEncoderBlock"] * 2
        assert len(units) == 4
        # keras.models.clone_model refuses keras-hub's ViT layers; the copy
        # falls back to the model's own config.
        copy = snapshot_backbone(base)
        assert copy is not base
        self.assertAllClose(copy(x), tokens, rtol=1e-5, atol=1e-6)
        # A config round trip keeps the pooling.
        again = SimCLR.from_config(simclr.get_config())
        assert again.token_pooling == "mean"
        with pytest.raises(ValueError, match="token_pooling` applies to backbones that output"):
            tiny_simclr(keras.Sequential([keras.layers.Conv2D(4, 3)]), token_pooling="class")

    def test_a_vit_without_class_token_is_mean_pooled_and_refuses_class(self):
        keras_hub = pytest.importorskip("keras_hub")
        base = keras_hub.models.ViTBackbone(
            image_shape=SHAPE,
            patch_size=4,
            num_layers=1,
            num_heads=1,
            hidden_dim=8,
            mlp_dim=8,
            use_class_token=False,
        )
        assert tiny_simclr(base).token_pooling == "mean"
        with pytest.raises(ValueError, match="needs a class token.*16 tokens are all patch tokens"):
            tiny_simclr(base, token_pooling="class")

    def test_channels_first_backbone_trains_or_gets_one_message(self, tmp_path):
        inputs = keras.Input((3, 16, 16))
        x = keras.layers.Conv2D(4, 3, strides=2, data_format="channels_first")(inputs)
        base = keras.Model(inputs, x, name="cf")
        if keras.backend.backend() == "tensorflow":
            with pytest.raises(ValueError, match="channels_first convolutions only on a GPU"):
                tiny_simclr(base)
            return
        simclr = tiny_simclr(base)
        x = np.random.default_rng(0).integers(0, 256, (4,) + SHAPE, dtype="uint8")
        assert np.isfinite(simclr.fit(x, epochs=1, verbose=0).history["loss"]).all()
        features = extract_features(simclr, x, verbose=0)
        assert features.shape == (4, 4)
        path = str(tmp_path / "cf.keras")
        simclr.export_backbone(path)
        loaded = keras.saving.load_model(path, compile=False)
        assert loaded.input_shape == (None,) + SHAPE and loaded.output_shape == (None, 7, 7, 4)
        self.assertAllClose(extract_features(loaded, x, verbose=0), features, rtol=1e-5)
        # The plain channels_first backbone, read as (H, W, C) too.
        self.assertAllClose(extract_features(base, x, verbose=0), features, rtol=1e-5)
        # Built and wrapped under a global channels_first setting, without an Input.
        keras.config.set_image_data_format("channels_first")
        try:
            seq = keras.Sequential(
                [keras.layers.Conv2D(4, 3), keras.layers.BatchNormalization(axis=1)]
            )
            out = tiny_simclr(seq).encode(np.zeros((2,) + SHAPE, "float32"))
        finally:
            keras.config.set_image_data_format("channels_last")
        assert tuple(out.shape) == (2, 4) and seq.input_shape == (None, 3, 16, 16)
