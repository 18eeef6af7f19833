"""ReclusterPseudoLabels: the model's own features re-clustered into guided batches, resumable."""

import json
import os

import keras
import numpy as np
import pytest
import testing
from digits_data import digits_rgb
from tiny_models import tiny_simclr

from simclr_keras.callbacks.recluster_pseudo_labels import ReclusterPseudoLabels
from simclr_keras.callbacks.resumable_checkpoint import checkpoint_dir
from simclr_keras.data.generator import DataGeneratorSimCLR
from simclr_keras.data.guided import batch_stats
from simclr_keras.data.pseudo_labels import cluster_features
from simclr_keras.evaluation.features import extract_features


class RecordingGenerator(DataGeneratorSimCLR):
    """Records the image indices of every batch served, per Keras epoch.

    The epoch is the one `fit()` announced to the callbacks (`EpochTag`);
    Keras may read a batch before the first epoch (to learn the data's
    structure), which is recorded under None.
    """

    served = None
    keras_epoch = None

    def __getitem__(self, index):
        self.served = self.served if self.served is not None else {}
        self.served.setdefault(self.keras_epoch, []).append(self.batch_indices(index))
        return super().__getitem__(index)


class EpochTag(keras.callbacks.Callback):
    """Tells a `RecordingGenerator` the epoch `fit()` is in, and snapshots its labels."""

    def __init__(self, generator):
        super().__init__()
        self.generator, self.labels = generator, {}

    def on_epoch_begin(self, epoch, logs=None):
        self.generator.keras_epoch = epoch
        labels = self.generator.pseudo_labels
        self.labels[epoch] = None if labels is None else labels.copy()


def _data(n=64):
    images, labels = digits_rgb(8)
    return np.ascontiguousarray(images[:n]), labels[:n]


class TestReclusterPseudoLabels(testing.TestCase):
    def test_recluster_guides_the_next_epochs_by_the_models_features(self, capsys):
        images, classes = _data()
        gen = RecordingGenerator(images, batch_size=8, seed=0, labels=classes)
        simclr = tiny_simclr()
        recluster = ReclusterPseudoLabels(gen, every=2, start_epoch=1, seed=0)
        assert [recluster.is_recluster_epoch(e) for e in range(5)] == [
            False,
            True,
            False,
            True,
            False,
        ]
        tag = EpochTag(gen)
        simclr.fit(gen, epochs=4, verbose=0, callbacks=[recluster, tag])
        seen = tag.labels
        assert seen[0] is None  # unguided before start_epoch
        assert [h["epoch"] for h in recluster.history] == [1, 3]
        self.assertAllEqual(seen[1], seen[2])  # kept between clusterings
        # k = B clusters, one label per image, quality recorded (that the labels are
        # k-means on the P3 features: test_first_clustering_equals_kmeans_on_extract_features).
        assert len(np.unique(seen[3])) == 8 and seen[3].shape == (64,)
        quality = recluster.history[-1]["quality"]
        assert set(quality) >= {"ari", "purity", "nmi"} and 0 < quality["purity"] <= 1
        assert "re-clustered the P3 features into 8 pseudo-labels" in capsys.readouterr().out
        # Every batch served in a guided epoch respects the guided bound for its labels
        # and holds fewer same-label negatives than random batches would.
        for epoch in (1, 2, 3):
            stats = batch_stats(gen.served[epoch], seen[epoch])
            assert stats["max_per_label"] <= stats["bound"]
            assert stats["same_label_share"] < stats["random_same_label_share"]
        # Epoch 0 was random: some batch repeats a label of the epoch-1 clustering.
        assert batch_stats(gen.served[0], seen[1])["max_per_label"] > 1

    def test_first_clustering_equals_kmeans_on_extract_features(self):
        images, _ = _data(48)
        gen = DataGeneratorSimCLR(images, batch_size=8, seed=0)
        simclr = tiny_simclr()
        recluster = ReclusterPseudoLabels(
            gen, every=1, start_epoch=0, n_clusters=4, seed=3, verbose=0
        )
        recluster.set_model(simclr)
        recluster.on_epoch_begin(0)
        expected = cluster_features(
            extract_features(simclr, images, verbose=0), 4, seed=3, verbose=0
        )
        self.assertAllEqual(gen.pseudo_labels, expected)

    def test_resumed_run_reloads_the_labels_in_force(self, tmp_path):
        images, classes = _data()
        save_path = str(tmp_path / "run.keras")
        # The uninterrupted run, for reference: 3 epochs, no checkpoints.
        whole = RecordingGenerator(images, batch_size=8, seed=0, labels=classes)
        whole_tag = EpochTag(whole)
        recluster = ReclusterPseudoLabels(whole, every=2, start_epoch=1, seed=0, verbose=0)
        tiny_simclr().fit(whole, epochs=3, verbose=0, callbacks=[recluster, whole_tag])

        # The same run killed after 2 epochs (checkpoints every epoch)...
        gen = DataGeneratorSimCLR(images, batch_size=8, seed=0, labels=classes)
        first = ReclusterPseudoLabels(gen, every=2, start_epoch=1, seed=0, verbose=0)
        tiny_simclr(save_path=save_path).fit(gen, epochs=2, verbose=0, callbacks=[first])
        state_path = os.path.join(checkpoint_dir(save_path), "pseudo_labels.json")
        with open(state_path) as f:
            state = json.load(f)
        assert [e["epoch"] for e in state["entries"]] == [1]
        labels_epoch1 = gen.pseudo_labels.copy()
        self.assertAllEqual(state["entries"][0]["labels"], labels_epoch1)

        # ...and resumed by a new process: fresh model, generator and callback. Epoch 2
        # is no clustering epoch, so it trains on the labels of epoch 1, in the batches
        # of the uninterrupted run.
        gen2 = RecordingGenerator(images, batch_size=8, seed=0, labels=classes)
        tag2 = EpochTag(gen2)
        second = ReclusterPseudoLabels(gen2, every=2, start_epoch=1, seed=0)
        tiny_simclr(save_path=save_path).fit(gen2, epochs=3, verbose=0, callbacks=[second, tag2])
        self.assertAllEqual(tag2.labels[2], labels_epoch1)
        self.assertAllEqual(whole_tag.labels[2], labels_epoch1)
        assert [e for e in gen2.served if e is not None] == [2]
        self.assertAllEqual(np.array(gen2.served[2]), np.array(whole.served[2]))
        assert [h["epoch"] for h in second.history] == [1]

    def test_state_from_a_later_epoch_is_ignored_and_bad_input_is_named(self, tmp_path):
        images, _ = _data(32)
        gen = DataGeneratorSimCLR(images, batch_size=8, seed=0)
        state = tmp_path / "labels.json"
        later = np.arange(32) % 8
        state.write_text(
            json.dumps({"format": 1, "entries": [{"epoch": 5, "labels": later.tolist()}]})
        )
        recluster = ReclusterPseudoLabels(gen, every=5, state_path=state, verbose=0)
        recluster.set_model(tiny_simclr())
        recluster.on_epoch_begin(1)  # resumed at epoch 1: the epoch-5 labels do not apply yet
        assert gen.pseudo_labels is None
        state.write_text("{not json")
        broken = ReclusterPseudoLabels(gen, every=5, state_path=state, verbose=0)
        broken.set_model(tiny_simclr())
        with pytest.raises(ValueError, match="labels.json is truncated or corrupt"):
            broken.on_epoch_begin(0)
        with pytest.raises(TypeError, match="DataGeneratorSimCLR"):
            ReclusterPseudoLabels(images)
        with pytest.raises(ValueError, match="every"):
            ReclusterPseudoLabels(gen, every=0)
        with pytest.raises(ValueError, match="n_clusters"):
            ReclusterPseudoLabels(gen, n_clusters=33)
