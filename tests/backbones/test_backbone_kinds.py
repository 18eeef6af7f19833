"""Every kind of Keras backbone through the whole story: fit with gradual
unfreezing, extract_features, export and reload.

Kinds: functional, Sequential with and without an Input, subclassed,
keras.applications with and without pooling, a keras-hub CNN and a keras-hub
ViT (random weights, tiny sizes). One test per kind runs every step on one
built model, so each backend compiles each model once per step.
"""

import keras
import numpy as np
import pytest
import testing
from tiny_models import SubclassedBackbone, functional_backbone, sequential_backbone

from simclr_keras import SimCLR, extract_features
from simclr_keras.backbones import weighted_layers
from simclr_keras.callbacks.gradual_unfreeze import GradualUnfreeze

SHAPE = (16, 16, 3)
APP_SHAPE = (32, 32, 3)


def sequential_no_input(shape=SHAPE):
    return keras.Sequential(
        [
            keras.layers.Conv2D(8, 3, activation="relu"),
            keras.layers.BatchNormalization(),
            keras.layers.Conv2D(16, 3, strides=2),
        ],
        name="seq_no_input",
    )


def vgg16(pooling=None):
    # VGG16 has the fewest layers of keras.applications, so it compiles
    # fastest (MobileNetV3Small, EfficientNet, ConvNeXt... are in
    # benchmarks/backbone_survey.py).
    def build(shape=APP_SHAPE):
        return keras.applications.VGG16(
            input_shape=shape, include_top=False, weights=None, pooling=pooling
        )

    return build


def hub_resnet(shape=APP_SHAPE):
    keras_hub = pytest.importorskip("keras_hub")
    return keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[3],
        stackwise_num_filters=[64],
        stackwise_num_blocks=[1],
        stackwise_num_strides=[1],
        block_type="basic_block",
        image_shape=shape,
    )


def hub_vit(shape=SHAPE, **kwargs):
    keras_hub = pytest.importorskip("keras_hub")
    return keras_hub.models.ViTBackbone(
        image_shape=shape,
        patch_size=4,
        num_layers=2,
        num_heads=2,
        hidden_dim=8,
        mlp_dim=16,
        **kwargs,
    )


KINDS = {
    "functional": (functional_backbone, SHAPE),
    "sequential": (sequential_backbone, SHAPE),
    "sequential_no_input": (sequential_no_input, SHAPE),
    "subclassed": (lambda shape: SubclassedBackbone(), SHAPE),
    "applications": (vgg16(), APP_SHAPE),
    "applications_pooled": (vgg16("avg"), APP_SHAPE),
    "hub_cnn": (hub_resnet, APP_SHAPE),
    "hub_vit": (hub_vit, SHAPE),
}


def _images(shape, n=4, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n,) + shape, dtype="uint8")


class TestBackboneKinds(testing.TestCase):
    @pytest.mark.parametrize("kind", sorted(KINDS))
    def test_backbone_kind_fit_unfreeze_features_export(self, kind, tmp_path):
        build, shape = KINDS[kind]
        keras.utils.set_random_seed(0)
        base = build(shape)
        simclr = SimCLR(
            base,
            shape,
            batch_size=4,
            feat_dims_ph=[8, 4],
            num_of_unfrozen_layers=1,
            augmentation=keras.layers.Rescaling(1.0),
            seed=0,
        )
        base = simclr.base_model
        layers = weighted_layers(base)
        assert len(layers) >= 2 and base.built
        first = layers[0]
        before = [np.array(w) for w in first.get_weights()]
        seen = {}

        def after_epoch(epoch, logs):
            seen[epoch] = [np.array(w) for w in first.get_weights()]

        x = _images(shape)
        history = simclr.fit(
            x,
            epochs=2,
            verbose=0,
            callbacks=[
                GradualUnfreeze({0: 1, 1: -1}),
                keras.callbacks.LambdaCallback(on_epoch_end=after_epoch),
            ],
        )
        assert np.isfinite(history.history["loss"]).all()
        # Stage 0 trains only the last weighted layer: the first one is frozen.
        for a, b in zip(before, seen[0]):
            self.assertAllEqual(a, b)
        # Stage 1 trains all of them: the first one moved.
        assert any(not np.array_equal(a, b) for a, b in zip(seen[0], seen[1]))
        assert all(layer.trainable for layer in layers)

        features = extract_features(simclr, x, verbose=0)
        width = simclr.projection_head.input_shape[-1]
        assert features.shape == (len(x), width) and np.isfinite(features).all()
        self.assertAllClose(features, simclr.encode(x / 255.0), rtol=1e-4, atol=1e-5)

        path = str(tmp_path / "backbone.keras")
        simclr.export_backbone(path)
        loaded = keras.saving.load_model(path, compile=False)
        self.assertAllClose(extract_features(loaded, x, verbose=0), features, rtol=1e-4, atol=1e-5)
