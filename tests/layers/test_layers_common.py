"""Every layer of simclr_keras.layers through `run_layer_test`."""

import numpy as np
import pytest
import testing

from simclr_keras.layers import (
    ColorJitter,
    ImagePreprocess,
    RandomResizedCrop,
    SimCLRAugmentation,
    SoftmaxCosineSim,
)


def uint8_images(batch=4, size=12, channels=3):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (batch, size, size, channels), dtype=np.uint8)


def unit_images(batch=4, size=12, channels=3):
    return (uint8_images(batch, size, channels) / 255.0).astype("float32")


class TestLayersCommon(testing.TestCase):
    @pytest.mark.parametrize("training", [True, False])
    def test_simclr_augmentation(self, training):
        self.run_layer_test(
            SimCLRAugmentation,
            dict(height=8, width=10, blur_probability=0.5),
            uint8_images(),
            call_kwargs={"training": training},
            expected_output_shape=(4, 8, 10, 3),
            random=training,
        )

    @pytest.mark.parametrize("training", [True, False])
    def test_color_jitter(self, training):
        self.run_layer_test(
            ColorJitter,
            dict(strength=0.5, probability=0.8),
            unit_images(),
            call_kwargs={"training": training},
            expected_output_shape=(4, 12, 12, 3),
            random=training,
        )

    @pytest.mark.parametrize("training", [True, False])
    def test_random_resized_crop(self, training):
        self.run_layer_test(
            RandomResizedCrop,
            dict(height=6, width=8, scale=(0.2, 1.0)),
            unit_images(),
            call_kwargs={"training": training},
            expected_output_shape=(4, 6, 8, 3),
            random=training,
        )

    @pytest.mark.parametrize("preprocessing", [None, "symmetric", "vgg16", "torch"])
    def test_image_preprocess(self, preprocessing):
        self.run_layer_test(
            ImagePreprocess,
            dict(image_size=(8, 8), channels=3, preprocessing=preprocessing),
            uint8_images(channels=1),
            expected_output_shape=(4, 8, 8, 3),
        )

    @pytest.mark.parametrize("output_mode", ["softmax", "log_softmax"])
    def test_softmax_cosine_sim(self, output_mode):
        z = np.random.default_rng(0).normal(size=(8, 5)).astype("float32")
        self.run_layer_test(
            SoftmaxCosineSim,
            dict(temperature=0.5, output_mode=output_mode),
            z,
            expected_output_shape=(4, 16),
        )
