"""Files written by the previous release load with the current code."""

import os
import warnings

import keras
import numpy as np
import pytest
import testing

import simclr_keras  # noqa: F401  (registers the classes the file names)

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
OLD = os.path.join(FIXTURES, "simclr_0.2.0_old_augmentation.keras")


class TestOldFiles(testing.TestCase):
    def test_file_of_the_previous_release_loads_trains_and_says_what_changed(self):
        # Its augmentation saved 7 seed states; states matched by position would
        # have fed one operation's random stream to another, without a word.
        with pytest.warns(UserWarning) as caught:
            model = keras.saving.load_model(OLD)
        text = " ".join(str(w.message) for w in caught)
        for part in (
            "written by another version of simclr_keras",
            "saved 7 random-stream state(s)",
            "0.2.0 before 2026-11-24",
            "The weights and the optimizer load as saved",
            "continue the run with the version that wrote it",
        ):
            assert part in text, text
        kernel = np.load(os.path.join(FIXTURES, "simclr_0.2.0_old_augmentation_c1_kernel.npy"))
        self.assertAllEqual(model.base_model.get_layer("c1").kernel, kernel)
        x = np.random.default_rng(0).integers(0, 256, (8, 8, 8, 3), dtype=np.uint8)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            history = model.fit(x, epochs=1, verbose=0)
        assert np.isfinite(history.history["loss"][0])

    def test_current_files_restore_their_seed_states_silently(self, tmp_path):
        from tiny_models import tiny_simclr

        from simclr_keras import SimCLR

        model = tiny_simclr(augmentation={"jitter_strength": 0.5})
        path = str(tmp_path / "m.keras")
        model.save(path)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            loaded = keras.saving.load_model(path)
        assert isinstance(loaded, SimCLR)
        saved = model.augmentation.non_trainable_variables
        restored = loaded.augmentation.non_trainable_variables
        assert len(restored) == len(saved) > 0, "the seed states are variables of the file"
        for a, b in zip(saved, restored):
            self.assertAllEqual(a, b)
