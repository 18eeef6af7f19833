"""get_backbone's `weights`: ImageNet for keras.applications, a file, and a clean offline error."""

import keras
import pytest
import testing

from simclr_keras.backbones.zoo import get_backbone


class TestZooWeights(testing.TestCase):
    def test_imagenet_weights_offline_give_a_clean_message(self, monkeypatch):
        def offline(*args, **kwargs):
            raise Exception("URL fetch failure on https://example/vgg16.h5: None -- no network")

        monkeypatch.setattr(keras.utils, "get_file", offline)
        monkeypatch.setattr("keras.src.utils.file_utils.get_file", offline)
        with pytest.raises(ValueError) as info:
            get_backbone("vgg16", (32, 32, 3), weights="imagenet")
        text = str(info.value)
        assert "ImageNet weights of 'vgg16'" in text and "no network" in text
        assert "--weights PATH.h5" in text and "~/.keras/models" in text
        assert info.value.__cause__ is None and "\n" not in text

    def test_weights_file_and_bad_weights(self, tmp_path):
        keras.utils.set_random_seed(0)
        source = get_backbone("small_cnn", (8, 8, 3))
        path = str(tmp_path / "cnn.weights.h5")
        source.save_weights(path)
        keras.utils.set_random_seed(1)
        loaded = get_backbone("small_cnn", (8, 8, 3), weights=path)
        for a, b in zip(source.get_weights(), loaded.get_weights()):
            self.assertAllEqual(a, b)
        with pytest.raises(ValueError, match="keras.applications backbone"):
            get_backbone("small_cnn", (8, 8, 3), weights="imagenet")
        with pytest.raises(ValueError, match="existing .weights.h5"):
            get_backbone("small_cnn", (8, 8, 3), weights=str(tmp_path / "missing.h5"))
