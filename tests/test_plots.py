"""Tests of simclr_keras.plots: PNGs are written, readable, and sized as laid out."""

import numpy as np
import pytest
import testing
from PIL import Image
from sklearn.datasets import load_digits

from simclr_keras.plots import plot_tsne, plot_tsne_pair, tsne_embedding


@pytest.fixture(scope="module")
def digit_features():
    d = load_digits()
    return d.data[:150].astype("float32") / 16.0, d.target[:150]


class TestPlots(testing.TestCase):
    def test_plot_tsne_writes_a_readable_png(self, digit_features, tmp_path):
        features, labels = digit_features
        names = [f"digit {i}" for i in range(10)]
        path = plot_tsne(
            features,
            labels,
            str(tmp_path / "sub" / "tsne.png"),
            class_names=names,
            title="digits",
            max_points=80,
        )
        with Image.open(path) as image:
            image.load()
            assert image.format == "PNG"
            width, height = image.size
        assert 300 < width < 1200 and 300 < height < 800
        assert np.asarray(image.convert("L")).std() > 10  # not a blank canvas

    def test_plot_tsne_pair_side_by_side(self, digit_features, tmp_path):
        features, labels = digit_features
        single = plot_tsne(features, labels, str(tmp_path / "one.png"), max_points=60)
        pair = plot_tsne_pair(
            features[:, ::-1] * 3.0,
            features,
            labels,
            str(tmp_path / "pair.png"),
            class_names=[str(i) for i in range(10)],
            max_points=60,
        )
        with Image.open(single) as one, Image.open(pair) as two:
            assert two.format == "PNG"
            assert two.size[0] > 1.6 * one.size[0]  # two panels side by side
            assert two.size[0] > two.size[1]

    def test_embedding_subsample_and_errors(self, digit_features, tmp_path):
        features, labels = digit_features
        emb = tsne_embedding(features[:10], perplexity=30.0, seed=0)  # perplexity capped
        assert emb.shape == (10, 2) and np.isfinite(emb).all()
        with pytest.raises(ValueError, match="one label per row"):
            plot_tsne(features, labels[:-1], str(tmp_path / "x.png"))
        with pytest.raises(ValueError, match="class_names"):
            plot_tsne(features, labels, str(tmp_path / "x.png"), class_names=["a", "b"])

    def test_history_plot_places_knn_points_at_their_epochs(self, tmp_path):
        from simclr_keras.plots import _logged_epochs, plot_history

        # KNNMonitor(every=5) over 12 epochs logs after epochs 5, 10 and 12 (the last).
        self.assertAllEqual(_logged_epochs(3, 12, 5)[0], [5, 10, 12])
        assert _logged_epochs(3, 12, 5)[1] == "epoch"
        self.assertAllEqual(_logged_epochs(3, 15, 5)[0], [5, 10, 15])
        assert _logged_epochs(12, 12, 5) == (pytest.approx(np.arange(1, 13)), "epoch")
        positions, label = _logged_epochs(2, 12, 5)  # count does not fit `every`: no guessing
        assert label == "evaluation" and list(positions) == [1, 2]
        assert _logged_epochs(3, 12)[1] == "evaluation"
        history = {
            "loss": list(np.linspace(5, 4, 12)),
            "contrastive_acc": list(np.linspace(0.1, 0.3, 12)),
            "knn_acc": [0.4, 0.45, 0.5],
        }
        path = plot_history(history, str(tmp_path / "curves.png"), knn_every=5)
        with Image.open(path) as image:
            assert image.size[0] > 3 * image.size[1]  # three panels side by side

    def test_plots_live_in_simclr_keras_plots_only(self):
        # Issue 33: one module holds every PNG; the old path is gone, no shim.
        import importlib

        import simclr_keras
        from simclr_keras import evaluation, plots

        names = ("plot_history", "plot_tsne", "plot_tsne_pair", "save_augmentation_preview")
        for name in names:
            assert getattr(simclr_keras, name) is getattr(plots, name)
            assert name in simclr_keras.__all__
            assert name not in evaluation.__all__ and not hasattr(evaluation, name)
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module("simclr_keras.evaluation.plots")
