"""`simclr-keras pretrain --backbone` with keras-hub presets: a local preset
folder trains and evaluates offline; a named preset that cannot be fetched
gets the same clean message as `--weights imagenet`.
"""

import os

import keras
import numpy as np
import pytest
import testing
from digits_data import digits_rgb
from PIL import Image

from simclr_keras_cli import main as cli

keras_hub = pytest.importorskip("keras_hub")

SIZE = 16


@pytest.fixture(scope="module")
def vit_preset(tmp_path_factory):
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.ViTBackbone(
        image_shape=(SIZE, SIZE, 3),
        patch_size=4,
        num_layers=2,
        num_heads=2,
        hidden_dim=8,
        mlp_dim=16,
    )
    folder = tmp_path_factory.mktemp("presets") / "tiny_vit"
    backbone.save_to_preset(str(folder))
    return folder


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    images, labels = digits_rgb(SIZE)
    root = tmp_path_factory.mktemp("hub_photos")
    for i in range(48):
        if labels[i] in (0, 1):
            sub = root / f"digit_{labels[i]}"
            sub.mkdir(exist_ok=True)
            Image.fromarray(images[i]).save(sub / f"{i:03d}.png")
    return root


class TestHubPresets(testing.TestCase):
    def test_a_preset_folder_pretrains_and_evaluates(self, vit_preset, photos, tmp_path, capsys):
        out = tmp_path / "run"
        args = ["pretrain", str(photos), "--backbone", str(vit_preset), "--test-split", "0.25"]
        args += ["--image-size", str(SIZE), "--epochs", "1", "--batch-size", "4"]
        code = cli.main(args + ["--feat-dims", "8,4", "--output", str(out)])
        assert code == 0, capsys.readouterr().err
        exported = keras.saving.load_model(out / "backbone.keras", compile=False)
        # The exported ViT outputs its class token: (B, hidden_dim).
        assert exported.output_shape == (None, 8)
        features = exported.predict(np.zeros((2, SIZE, SIZE, 3), "float32"), verbose=0)
        assert np.isfinite(features).all()
        code = cli.main(
            ["evaluate", "--backbone", str(out / "backbone.keras"), "--fractions", "1.0"]
            + ["--seeds", "0", "--output", str(tmp_path / "eval")]
        )
        assert code == 0, capsys.readouterr().err
        assert os.path.isfile(tmp_path / "eval" / "comparison.md")

    def test_preset_errors_are_clean(self, vit_preset, photos, tmp_path, capsys, monkeypatch):
        out = str(tmp_path / "o")
        code = cli.main(
            ["pretrain", str(photos), "--backbone", str(vit_preset), "--image-size", "32"]
            + ["--output", out]
        )
        err = capsys.readouterr().err
        assert code == 2 and f"`--image-size` must be {SIZE}" in err and "Traceback" not in err

        def offline(*args, **kwargs):
            raise ConnectionError("Failed to resolve 'api.kaggle.com' (no network)")

        monkeypatch.setattr(keras_hub.models.Backbone, "from_preset", offline)
        code = cli.main(
            ["pretrain", str(photos), "--backbone", "vit_base_patch16_224_imagenet"]
            + ["--image-size", "224", "--output", out]
        )
        err = capsys.readouterr().err
        assert code == 2 and "Traceback" not in err
        assert "Could not fetch the keras-hub preset 'vit_base_patch16_224_imagenet'" in err
        assert "no network" in err and "save_to_preset" in err
        code = cli.main(["pretrain", str(photos), "--backbone", "vit_tiny_nope", "--output", out])
        err = capsys.readouterr().err
        assert code == 2 and "keras-hub preset" in err and "vit_tiny_nope" in err
        code = cli.main(["pretrain", str(photos), "--backbone", str(tmp_path), "--output", out])
        err = capsys.readouterr().err
        assert code == 2 and "not a keras-hub preset: it has no config.json" in err
        code = cli.main(
            ["pretrain", str(photos), "--backbone", str(vit_preset), "--weights", "imagenet"]
            + ["--output", out]
        )
        assert code == 2 and "has its own" in capsys.readouterr().err
        assert not os.path.exists(out)
