"""`KNNMonitor`: the kNN accuracy in History, later callbacks and the progress bar."""

import keras
import numpy as np
import pytest
import testing
from colour_data import colour_set, tiny_simclr
from testing import to_numpy

from simclr_keras.callbacks.knn_monitor import KNNMonitor
from simclr_keras.evaluation.features import extract_features


class TestKnnMonitor(testing.TestCase):
    def test_knn_monitor_logs_perfect_accuracy_on_separable_set(self, capsys):
        x, y = colour_set()
        simclr = tiny_simclr()
        monitor = KNNMonitor(x, y, k=5, every=2, query_fraction=0.25)
        csv = []

        class Seen(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                csv.append(dict(logs))

        history = simclr.fit(x, epochs=3, callbacks=[monitor, Seen()], verbose=2)
        assert history.history["knn_acc"] == [1.0, 1.0]  # after epochs 2 and 3 (the last)
        assert [e for e, _ in monitor.values] == [1, 2]
        assert "knn_acc" not in csv[0] and csv[1]["knn_acc"] == 1.0  # later callbacks see it
        assert "knn_acc: 1.0000" in capsys.readouterr().out  # and so does the progress bar

        # The monitor's features (batch by batch) and extract_features at P3 both
        # match a plain forward pass of the preprocessed images.
        direct = to_numpy(simclr.encode(x[:5].astype("float32") / 255.0))
        monitor.batch_size = 2
        self.assertAllClose(monitor._features(x[:5]), direct, rtol=1e-5, atol=1e-6)
        feats = extract_features(simclr, x[:5], "P3", batch_size=2, verbose=0)
        self.assertAllClose(feats, direct, rtol=1e-5, atol=1e-6)

    def test_knn_monitor_with_validation_set_and_shuffled_labels(self):
        x, y = colour_set(8)
        simclr = tiny_simclr()
        monitor = KNNMonitor(x, y, k=3, validation=colour_set(4, seed=1))
        monitor.set_model(simclr)
        assert monitor.evaluate() == 1.0
        # With labels unrelated to the images the accuracy falls well below 1.
        rng = np.random.default_rng(0)
        wrong = KNNMonitor(x, rng.permutation(y), k=3, validation=(x, rng.permutation(y)))
        wrong.set_model(simclr)
        assert wrong.evaluate() < 0.7
        with pytest.raises(ValueError, match="`labels` must hold one label per image"):
            KNNMonitor(x, y[:-1])
        with pytest.raises(ValueError, match="`every` must be an int >= 1"):
            KNNMonitor(x, y, every=0)
        with pytest.raises(ValueError, match="`validation` must be a pair"):
            KNNMonitor(x, y, validation=x)
