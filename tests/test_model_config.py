"""SimCLR's config is the architecture; run state (save path, learning rate) is not in it."""

import os

import keras
import numpy as np
import testing
from testing import to_numpy


class TestModelConfig(testing.TestCase):
    def test_config_holds_no_run_state(self, make_tiny_simclr, tmp_path):
        simclr = make_tiny_simclr(save_path=str(tmp_path / "run.keras"), learning_rate=0.05)
        config = simclr.get_config()
        assert "save_path" not in config and "learning_rate" not in config
        assert config["batch_size"] == 8 and config["feat_dims_ph"] == [8, 4]

    def test_a_reloaded_model_trains_again_instead_of_resuming_the_old_run(
        self, make_tiny_simclr, digits_8px, tmp_path
    ):
        images = np.ascontiguousarray(digits_8px[0][:16])
        old_run = str(tmp_path / "old_run.keras")
        simclr = make_tiny_simclr(save_path=old_run, learning_rate=0.05)
        simclr.fit(images, epochs=1, verbose=0)  # saves old_run and its checkpoint
        loaded = keras.saving.load_model(old_run)
        assert loaded.save_path is None
        # The learning rate travels with the compiled optimizer, not the config.
        self.assertAllClose(float(loaded.optimizer.learning_rate), 0.05, rtol=1e-6)
        before = [to_numpy(w).copy() for w in loaded.base_model.weights]
        stamp = os.path.getmtime(old_run)
        history = loaded.fit(images, epochs=1, verbose=0)
        assert len(history.history["loss"]) == 1  # the old run's finished epoch is not "done"
        after = [to_numpy(w) for w in loaded.base_model.weights]
        assert any(not np.array_equal(a, b) for a, b in zip(before, after))
        assert os.path.getmtime(old_run) == stamp  # the old run's file is left alone
