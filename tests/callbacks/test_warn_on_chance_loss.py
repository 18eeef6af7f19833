"""`WarnOnChanceLoss`: a warning when the loss sits at log(2B - 1), only then."""

import warnings

import keras
import numpy as np
import pytest
import testing
from colour_data import SHAPE, colour_set, tiny_simclr

from simclr_keras import SimCLR
from simclr_keras.callbacks.warn_on_chance_loss import ChanceLossWarning, WarnOnChanceLoss


def dead_simclr():
    keras.utils.set_random_seed(0)
    dead = keras.Sequential(
        [
            keras.Input(SHAPE),
            keras.layers.Conv2D(4, 1, kernel_initializer="zeros", bias_initializer="ones"),
        ],
        name="dead",
    )  # frozen below: the same non-zero features for every image
    return SimCLR(dead, SHAPE, 4, [8, 4], 0, learning_rate=1e-3, seed=0)


class TestWarnOnChanceLoss(testing.TestCase):
    def test_dead_backbone_warns_at_chance_loss_with_the_causes(self):
        simclr = dead_simclr()
        x, _ = colour_set(4)  # 12 images: 3 steps per epoch
        with pytest.warns(ChanceLossWarning) as caught:
            simclr.fit(x, epochs=5, verbose=0)
        chance_warnings = [w for w in caught if w.category is ChanceLossWarning]
        assert len(chance_warnings) == 1  # once per fit, not once per epoch
        text = str(chance_warnings[0].message)
        assert text.startswith("Epoch 4:") and "for 4 epochs (12 steps)" in text
        assert f"log(2B - 1) = {np.log(7):.4f}" in text and "batch_size=4" in text
        for cause in ("batch normalisation", "VGG16", "learning_rate=0.001", "preprocessing="):
            assert cause in text

    def test_chance_loss_is_not_flagged_after_the_first_epoch_of_a_short_fit(self):
        # Every model starts at chance: one 3-step epoch there is no evidence.
        x, _ = colour_set(4)
        with warnings.catch_warnings():
            warnings.simplefilter("error", ChanceLossWarning)
            dead_simclr().fit(x, epochs=1, verbose=0)
            dead_simclr().fit(x, epochs=3, verbose=0)  # 9 steps: still too few

    def test_chance_loss_warning_only_near_log_2b_minus_1(self):
        callback = WarnOnChanceLoss()
        callback.set_model(tiny_simclr())  # batch_size 8: chance log(15)
        chance = np.log(15)

        def epoch(index, loss, steps=5):
            callback.on_epoch_begin(index)
            for step in range(steps):
                callback.on_train_batch_end(step)
            callback.on_epoch_end(index, {"loss": loss})

        with warnings.catch_warnings():
            warnings.simplefilter("error")
            epoch(0, chance * 0.98)
            epoch(1, float("nan"))
            epoch(2, chance * 1.002)  # one epoch at chance: not yet
            epoch(3, chance * 0.9)  # left chance: the count starts again
            epoch(4, chance)
        with pytest.warns(ChanceLossWarning, match="Epoch 6: .* for 2 epochs \\(10 steps\\)"):
            epoch(5, chance * 1.002)
