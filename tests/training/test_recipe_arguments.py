"""The recipe is decided in one place: its argument rule, its defaults, and
saved models that the rule would refuse from a caller still loading."""

import keras
import numpy as np
import pytest
import testing
from tiny_models import bn_backbone, tiny_simclr

from simclr_keras import SimCLR
from simclr_keras.callbacks import GradualUnfreeze
from simclr_keras.recipe import default_head_dims
from simclr_keras.training.pretrained import recipe_arguments
from simclr_keras_rules.recipes import choose_recipe


class TestRecipeArguments(testing.TestCase):
    def test_unfrozen_layers_with_the_pretrained_recipe_raise_naming_both(self):
        for n in (2, -1, 0):
            with pytest.raises(ValueError) as info:
                tiny_simclr(num_of_unfrozen_layers=n, recipe="pretrained")
            message = str(info.value)
            assert "`num_of_unfrozen_layers` applies to the scratch recipe only" in message
            assert f"num_of_unfrozen_layers={n} with recipe='pretrained'" in message

    def test_the_pretrained_recipe_starts_frozen_with_the_mild_views(self):
        simclr = tiny_simclr(recipe="pretrained", augmentation=None)
        assert simclr.num_of_unfrozen_layers == 0 and not simclr.base_model.trainable_weights
        assert simclr.augmentation.crop_scale == (0.5, 1.0)
        assert recipe_arguments(None) == ("scratch", None, "simclr")
        assert choose_recipe("auto", has_weights=True) == "pretrained"
        assert choose_recipe("auto", has_weights=False) == "scratch"

    def test_a_saved_pretrained_model_with_an_unfrozen_stage_loads(self, tmp_path):
        simclr = tiny_simclr(recipe="pretrained")
        images = np.random.default_rng(0).integers(0, 255, (16, 8, 8, 3), dtype="uint8")
        simclr.fit(images, epochs=1, callbacks=[GradualUnfreeze({0: 2})], verbose=0)
        assert simclr.num_of_unfrozen_layers == 2  # bn and c2 of c1, bn, c2
        path = str(tmp_path / "m.keras")
        simclr.save(path)
        loaded = keras.saving.load_model(path)
        assert loaded.recipe == "pretrained"
        assert loaded.num_of_unfrozen_layers == simclr.num_of_unfrozen_layers
        for a, b in zip(simclr.weights, loaded.weights):
            self.assertAllClose(a, b)

    def test_a_backbone_with_trained_weights_and_no_recipe_gets_a_hint(self):
        import warnings

        base = bn_backbone()
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)  # fresh weights: no hint
            SimCLR(base, (8, 8, 3), 8, seed=0)
        bias = next(v for v in base.weights if v.name == "bias")
        bias.assign(np.full(bias.shape, 0.1, "float32"))
        with pytest.warns(UserWarning, match="pass `recipe='pretrained'`"):
            SimCLR(base, (8, 8, 3), 8, seed=0)
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)  # a recipe chosen: no hint
            SimCLR(base, (8, 8, 3), 8, seed=0, recipe="scratch")

    def test_the_default_head_is_sized_by_the_backbone(self):
        simclr = SimCLR(bn_backbone(), (8, 8, 3), 8, seed=0)
        assert simclr.feat_dims_ph == default_head_dims(8) == [8, 4]
        assert default_head_dims(2048) == [2048, 128]
