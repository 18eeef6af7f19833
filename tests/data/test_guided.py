"""Guided batching (G-SimCLR): invariants checked on random cluster sizes."""

import itertools
import math
import warnings

import numpy as np
import pytest
import testing
from hypothesis import given, settings
from hypothesis import strategies as st

from simclr_keras._checks import check_labels
from simclr_keras.data.generator import DataGeneratorSimCLR
from simclr_keras.data.guided import (
    batch_stats,
    guided_batches,
    random_same_label_share,
    same_label_share,
)


def _labels_from_sizes(sizes, seed):
    labels = np.repeat(np.arange(len(sizes)), sizes)
    return np.random.default_rng(seed).permutation(labels)  # any file order


def _check_invariants(labels, batch_size, batches):
    n_batches = len(labels) // batch_size
    assert len(batches) == n_batches
    assert all(len(b) == batch_size for b in batches)  # every batch full
    flat = np.concatenate(batches)
    assert len(np.unique(flat)) == len(flat)  # no image twice in an epoch
    assert flat.min() >= 0 and flat.max() < len(labels)
    sizes = np.bincount(labels)
    for b in batches:
        counts = np.bincount(labels[b], minlength=len(sizes))
        bound = -(-sizes // n_batches)  # ceil(n_c / n_batches) per cluster
        assert (counts <= bound).all(), (counts, bound)
    if sizes.max() <= n_batches:
        assert all(len(np.unique(labels[b])) == batch_size for b in batches)


@st.composite
def _clusters(draw):
    batch_size = draw(st.integers(1, 12))
    # k < B, k = B and k > B all occur; "unbalanced" gives one huge cluster
    # and many tiny ones.
    k = draw(
        st.sampled_from([1, max(1, batch_size - 1), batch_size, batch_size + 1, 3 * batch_size])
    )
    if draw(st.booleans()):
        sizes = draw(st.lists(st.integers(1, 40), min_size=k, max_size=k))
    else:
        sizes = [draw(st.integers(50, 300))] + [draw(st.integers(1, 3)) for _ in range(k - 1)]
    if sum(sizes) < batch_size:
        sizes[0] += batch_size - sum(sizes)
    return sizes, batch_size, draw(st.integers(0, 2**31))


class TestGuided(testing.TestCase):
    @settings(max_examples=50, deadline=None)
    @given(_clusters())
    def test_guided_batches_invariants(self, case):
        sizes, batch_size, seed = case
        labels = _labels_from_sizes(sizes, seed)
        rng = np.random.default_rng(seed)
        for _ in range(2):  # two epochs from the same rng
            _check_invariants(labels, batch_size, guided_batches(labels, batch_size, rng))

    @settings(max_examples=30, deadline=None)
    @given(st.integers(2, 8), st.integers(2, 12), st.integers(0, 1000))
    def test_no_repeats_when_no_cluster_outnumbers_batches(self, batch_size, n_batches, seed):
        rng = np.random.default_rng(seed)
        sizes = rng.integers(1, n_batches + 1, size=3 * batch_size)  # every n_c <= n_batches
        while sizes.sum() < n_batches * batch_size:
            sizes = np.minimum(sizes + 1, n_batches)
        labels = _labels_from_sizes(sizes, seed)
        batches = guided_batches(labels, batch_size, rng)
        stats = batch_stats(batches, labels)
        assert stats["repeat_share"] == 0.0 and stats["max_per_label"] == 1 and stats["bound"] == 1

    def test_fewest_repeats_is_reached_for_one_dominant_cluster(self):
        # 90 images of cluster 0 + 10 singletons, B = 10: 10 batches, so cluster
        # 0 needs 9 per batch and the bound is exactly met, never exceeded.
        labels = np.concatenate([np.zeros(90, int), np.arange(1, 11)])
        batches = guided_batches(labels, 10, np.random.default_rng(0))
        stats = batch_stats(batches, labels)
        assert stats["bound"] == 9 and stats["max_per_label"] == 9
        assert stats["repeat_share"] == 1.0

    def test_epochs_differ_and_dropped_images_vary(self):
        labels = np.repeat(np.arange(4), [7, 5, 3, 2])  # 17 images, B = 4: one dropped
        rng = np.random.default_rng(1)
        epochs = [guided_batches(labels, 4, rng) for _ in range(12)]
        dropped = {int(np.setdiff1d(np.arange(17), np.concatenate(e))[0]) for e in epochs}
        assert len(dropped) > 3
        assert not all(np.array_equal(a[0], b[0]) for a, b in itertools.pairwise(epochs))

    def test_same_seed_same_batches_in_generator(self):
        images = np.arange(40, dtype=np.uint8).reshape(40, 1, 1, 1)
        labels = np.arange(40) % 3
        a = DataGeneratorSimCLR(images, 8, seed=7, pseudo_labels=labels)
        b = DataGeneratorSimCLR(images, 8, seed=7, pseudo_labels=labels)
        for _ in range(3):
            for i in range(len(a)):
                self.assertAllEqual(a[i], b[i])
            a.on_epoch_end(), b.on_epoch_end()

    def test_bound_matches_formula_in_stats(self):
        labels = np.repeat(np.arange(3), [13, 4, 3])
        gen = DataGeneratorSimCLR(
            np.zeros((20, 2, 2, 3), np.uint8), 6, seed=0, pseudo_labels=labels
        )
        assert gen.batch_stats()["bound"] == math.ceil(13 / 3)
        _check_invariants(labels, 6, [gen.batch_indices(i) for i in range(len(gen))])

    def test_pseudo_label_validation(self):
        with pytest.raises(ValueError, match=r"one label per image \(4\).*shape \(3,\)"):
            check_labels([0, 1, 2], 4, "pseudo_labels")
        with pytest.raises(ValueError, match="must be integer class ids"):
            check_labels([0.5, 1, 2], 3, "pseudo_labels")
        # Strings raised "ufunc 'remainder' not supported", without naming the argument.
        with pytest.raises(ValueError, match=r"`pseudo_labels` must be integer class ids.*<U1"):
            check_labels(["a", "b", "a"], 3, "pseudo_labels")
        with pytest.raises(ValueError, match=r"`pseudo_labels`.*1 NaN label\(s\) of 3"):
            DataGeneratorSimCLR(np.zeros((3, 2, 2, 3), np.uint8), 1, pseudo_labels=[0, np.nan, 1])
        self.assertAllEqual(check_labels([0.0, 2.0], 2, "pseudo_labels"), [0, 2])
        with pytest.raises(ValueError, match=r"batch_size=5"):
            guided_batches([0, 1, 2], 5, np.random.default_rng(0))

    def test_random_share_is_exact_against_simulated_random_batches(self):
        # (n_c - 1) / (n - 1) per anchor: check the closed form against 2 000
        # simulated random batches; tolerance 4 standard errors of the mean.
        labels = np.repeat(np.arange(4), [10, 6, 3, 1])
        rng = np.random.default_rng(0)
        shares = [same_label_share([rng.permutation(20)[:5]], labels) for _ in range(2000)]
        expected = random_same_label_share(labels)
        assert expected == pytest.approx((10 * 9 + 6 * 5 + 3 * 2) / (20 * 19))
        assert abs(np.mean(shares) - expected) < 4 * np.std(shares) / np.sqrt(len(shares))

    def test_same_label_share_counts_other_images_only(self):
        # Batch [0, 0, 1]: anchors 0, 0 see 1 of 2 same, anchor 1 sees 0 of 2.
        assert same_label_share([np.array([0, 1, 2])], [5, 5, 7]) == pytest.approx(1 / 3)
        assert same_label_share([], [0, 1]) == 0.0

    def test_k_equal_to_batch_size_guides_and_k_5_does_not(self):
        # G-SimCLR's setting k = B leaves about one image per pseudo-class per
        # batch; with k = 5 and B = 64 a batch must hold ~13 of each, as random.
        rng = np.random.default_rng(0)
        for k, batch_size in ((64, 64), (5, 64)):
            labels = rng.integers(0, k, 1280)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # k = 5 warns (tested below)
                gen = DataGeneratorSimCLR(
                    np.zeros((1280, 1, 1, 1), np.uint8), batch_size, seed=0, pseudo_labels=labels
                )
            stats = gen.batch_stats()
            guided, random = stats["same_label_share"], stats["random_same_label_share"]
            if k == batch_size:
                assert guided < 0.005 and random > 0.012 and guided < random / 3
            else:
                assert abs(guided - random) < 0.02 and random == pytest.approx(0.2, abs=0.01)

    def test_warning_for_few_clusters_and_none_for_k_equal_to_b(self):
        images = np.zeros((64, 1, 1, 1), np.uint8)
        with pytest.warns(UserWarning, match=r"n_clusters=5.*batch_size=16.*B/k = 3\.2"):
            DataGeneratorSimCLR(images, 16, seed=0, pseudo_labels=np.arange(64) % 5)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            DataGeneratorSimCLR(images, 16, seed=0, pseudo_labels=np.arange(64) % 16)
            DataGeneratorSimCLR(images, 16, seed=0, pseudo_labels=np.arange(64) % 8)  # k = B/2
