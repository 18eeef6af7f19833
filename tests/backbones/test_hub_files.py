"""keras-hub presets when keras-hub is missing or a preset folder is damaged."""

import pytest
import testing

from simclr_keras.backbones import zoo
from simclr_keras_rules import backbone_names


class TestHubPresetErrors(testing.TestCase):
    def test_a_preset_name_without_keras_hub_says_it_is_missing(self, monkeypatch):
        monkeypatch.setattr(backbone_names, "keras_hub_installed", lambda: False)
        with pytest.raises(ValueError, match="keras-hub is not installed") as info:
            backbone_names.check_backbone_name("resnet_18_imagenet", "--backbone")
        assert "'resnet_18_imagenet' is one, pip install" in str(info.value)

    @pytest.mark.parametrize("text", ['{"class_name": "unterminated', "", "[1, 2"])
    def test_a_damaged_config_json_is_named(self, tmp_path, text):
        folder = tmp_path / "preset"
        folder.mkdir()
        (folder / "config.json").write_text(text)
        (folder / "metadata.json").write_text("{}")
        with pytest.raises(
            ValueError, match=r"preset folder whose .*config\.json is damaged"
        ) as info:
            zoo.get_backbone(str(folder), (32, 32, 3))
        assert "Received: backbone=" in str(info.value)
