"""RandomResizedCrop's argument errors name its own arguments."""

import pytest
import testing

from simclr_keras import SimCLRAugmentation
from simclr_keras.layers import RandomResizedCrop


class TestRandomResizedCropErrors(testing.TestCase):
    @pytest.mark.parametrize(
        "kwargs, match",
        [
            (dict(scale=(0.5, 1.5)), r"`scale` must be at most 1\. Received: scale=\(0\.5, 1\.5\)"),
            (dict(scale=(0.0, 1.0)), r"`scale` must satisfy 0 < low <= high"),
            (dict(scale=0.5), r"`scale` must be a pair"),
            (dict(ratio=(2.0, 1.0)), r"`ratio` must satisfy 0 < low <= high"),
        ],
    )
    def test_crop_errors_name_the_crop_arguments(self, kwargs, match):
        with pytest.raises(ValueError, match=match) as info:
            RandomResizedCrop(8, 8, **kwargs)
        assert "crop_" not in str(info.value)

    @pytest.mark.parametrize(
        "kwargs, match",
        [
            (dict(crop_scale=(0.5, 1.5)), r"Received: crop_scale=\(0\.5, 1\.5\)"),
            (dict(crop_ratio=(0.0, 1.0)), r"Received: crop_ratio=\(0\.0, 1\.0\)"),
        ],
    )
    def test_augmentation_errors_name_the_augmentation_arguments(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            SimCLRAugmentation(8, 8, **kwargs)
