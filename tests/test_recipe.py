"""SimCLR's recipe: LARS + warm-up/cosine schedule, paper heads, save/load."""

import math

import keras
import pytest
import testing
from digits_data import digits_rgb
from testing import to_numpy

from simclr_keras import SimCLR
from simclr_keras.optimizers import LARS
from simclr_keras.recipe import WarmupCosine, paper_learning_rate

SHAPE = (16, 16, 3)


def backbone():
    inputs = keras.Input(SHAPE)
    x = keras.layers.Conv2D(12, 3, strides=2, activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x), name="tiny")


def reference_rate(step, peak, warmup, total):
    """Linear warm-up from 0, then half a cosine to 0 (SimCLR's schedule)."""
    if step < warmup:
        return peak * step / warmup
    progress = min((step - warmup) / (total - warmup), 1.0)
    return peak * 0.5 * (1 + math.cos(math.pi * progress))


class TestRecipe(testing.TestCase):
    def test_schedule_matches_warmup_then_cosine(self):
        # 100 epochs of 10 steps: the paper's 10 warm-up epochs = 100 steps.
        schedule = WarmupCosine(0.6, steps_per_epoch=10, epochs=100)
        for step in (0, 1, 50, 100, 101, 400, 550, 999, 1000, 1200):
            got = float(to_numpy(schedule(step)))
            self.assertAllClose(got, reference_rate(step, 0.6, 100, 1000), atol=1e-6)
        # A 15-epoch run warms up for 10 % of it: 1.5 epochs.
        assert WarmupCosine(1.0, steps_per_epoch=10, epochs=15).steps() == (15, 150)
        assert paper_learning_rate(4096, "sqrt") == pytest.approx(
            paper_learning_rate(4096, "linear")
        )
        assert paper_learning_rate(64) == pytest.approx(0.6)

    def test_lars_recipe_and_paper_head_survive_fit_save_and_load(self, tmp_path):
        images = digits_rgb(SHAPE[0])[0][:32]
        simclr = SimCLR(backbone(), SHAPE, 8, "simclr_v2", None, optimizer="lars", seed=0)
        head = simclr.projection_head
        assert [l.units for l in head.layers if isinstance(l, keras.layers.Dense)] == [12, 12, 128]
        assert sum(isinstance(l, keras.layers.BatchNormalization) for l in head.layers) == 3
        assert isinstance(simclr.optimizer, LARS)
        assert simclr.optimizer.lars_weight_decay == 1e-6 and simclr.optimizer.momentum == 0.9
        simclr.fit(images, epochs=3, verbose=0)
        schedule = simclr.optimizer._learning_rate
        assert isinstance(schedule, WarmupCosine) and schedule.peak == pytest.approx(0.075 * 8**0.5)
        assert (schedule.steps_per_epoch, schedule.epochs) == (4, 3)
        assert int(simclr.optimizer.iterations) == 12
        path = str(tmp_path / "recipe.keras")
        simclr.save(path)
        loaded = keras.saving.load_model(path)
        assert isinstance(loaded.optimizer, LARS)
        again = loaded.optimizer._learning_rate
        assert isinstance(again, WarmupCosine) and again.get_config() == schedule.get_config()
        assert int(loaded.optimizer.iterations) == 12
        assert loaded.get_config()["feat_dims_ph"] == "simclr_v2"
        x = images[:8]
        self.assertAllClose(
            loaded.encode(x / 255.0),
            simclr.encode(x / 255.0),
            atol=1e-5,
        )
        loaded.fit(images, epochs=4, initial_epoch=3, verbose=0)  # keeps the saved schedule
        assert loaded.optimizer._learning_rate.epochs == 3

    def test_unknown_head_recipe_names_the_argument(self):
        with pytest.raises(ValueError, match="feat_dims_ph"):
            SimCLR(backbone(), SHAPE, 8, "simclr_v9")
