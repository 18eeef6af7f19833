"""An exported backbone carries the input scaling it was pretrained with."""

import keras
import numpy as np
import pytest
import testing
from tiny_models import sequential_backbone

from simclr_keras import SimCLR, extract_features
from simclr_keras.evaluation.finetune import finetune_classifier
from simclr_keras.layers import ImagePreprocess


class TestModelExport(testing.TestCase):
    @pytest.mark.parametrize("preprocessing", ["symmetric", "vgg16"])
    def test_exported_backbone_scores_like_the_simclr_model(self, preprocessing, digits, tmp_path):
        images, labels = digits[0][:24], digits[1][:24]
        simclr = SimCLR(sequential_backbone(), (16, 16, 3), 8, [8], preprocessing=preprocessing)
        path = simclr.export_backbone(str(tmp_path / "backbone.keras"))
        loaded = keras.saving.load_model(path, compile=False)  # as `simclr-keras evaluate` does
        expected = extract_features(simclr, images, verbose=0)
        # No `preprocessing=` repeated: the file knows its scaling.
        self.assertAllClose(extract_features(loaded, images, verbose=0), expected, rtol=1e-5)
        assert any(isinstance(layer, ImagePreprocess) for layer in loaded.layers)
        # The scaling is not the identity: the bare backbone gives other features.
        bare = extract_features(simclr.base_model, images, verbose=0)
        assert not np.allclose(bare, expected, rtol=1e-3)
        # Fine-tuning reads the same input through the file's scaling.
        model, _ = finetune_classifier(loaded, images, labels, 10, epochs=0, jit_compile=False)
        assert model.predict(images[:2] / 255.0, verbose=0).shape == (2, 10)

    def test_export_without_preprocessing_is_the_backbone_alone(self, tmp_path):
        simclr = SimCLR(sequential_backbone(), (16, 16, 3), 8, [8])
        loaded = keras.saving.load_model(simclr.export_backbone(str(tmp_path / "b.keras")))
        assert [layer.name for layer in loaded.layers] == [
            layer.name for layer in simclr.base_model.layers
        ]

    def test_evaluate_refuses_a_second_scaling_for_a_scaled_backbone(self, tmp_path, capsys):
        from PIL import Image

        from simclr_keras_cli.main import main

        for split in ("train", "test"):
            for cls in ("a", "b"):
                folder = tmp_path / split / cls
                folder.mkdir(parents=True)
                for i in range(2):
                    Image.new("RGB", (16, 16), (40 * i, 90, 200)).save(folder / f"{i}.png")
        simclr = SimCLR(sequential_backbone(), (16, 16, 3), 8, [8], preprocessing="symmetric")
        path = simclr.export_backbone(str(tmp_path / "backbone.keras"))
        args = ["evaluate", "--backbone", path]
        args += ["--train-dir", str(tmp_path / "train"), "--test-dir", str(tmp_path / "test")]
        assert main(args + ["--preprocessing", "symmetric"]) == 2
        assert "`--preprocessing` must be left out" in capsys.readouterr().err
