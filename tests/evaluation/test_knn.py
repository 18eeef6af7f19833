"""Weighted kNN against a literal NumPy reference (Wu et al. 2018)."""

import math

import numpy as np
import pytest
import testing

from simclr_keras.evaluation.knn import knn_accuracy, knn_predict, split_bank_queries


def reference_knn(bank, bank_labels, queries, k, temperature):
    """Literal per-query weighted vote (Wu et al. 2018), no vectorisation."""
    out = []
    for q in queries:
        sims = [float(np.dot(q, b) / (np.linalg.norm(q) * np.linalg.norm(b))) for b in bank]
        order = sorted(range(len(bank)), key=lambda i: -sims[i])[:k]
        votes = {}
        for i in order:
            w = 1.0 if temperature is None else math.exp(sims[i] / temperature)
            votes[bank_labels[i]] = votes.get(bank_labels[i], 0.0) + w
        out.append(max(sorted(votes), key=lambda c: votes[c]))
    return np.array(out)


class TestKnn(testing.TestCase):
    @pytest.mark.parametrize("k", [1, 5, 20, 200])
    @pytest.mark.parametrize("temperature", [0.07, 0.5, None])
    def test_knn_predict_matches_numpy_reference(self, k, temperature):
        rng = np.random.default_rng(k)
        bank = rng.normal(size=(60, 6))
        labels = rng.integers(0, 4, size=60)
        queries = rng.normal(size=(25, 6)) * rng.uniform(
            0.1, 10, size=(25, 1)
        )  # scale must not matter
        expected = reference_knn(bank, labels, queries, min(k, 60), temperature)
        self.assertAllEqual(
            knn_predict(bank, labels, queries, k=k, temperature=temperature, chunk=7), expected
        )
        assert knn_accuracy(bank, labels, queries, expected, k=k, temperature=temperature) == 1.0

    def test_knn_weighting_and_the_one_label_rule(self):
        bank = np.array([[1.0, 0.0], [0.95, 0.31], [0.0, 1.0], [0.1, 1.0], [0.2, 1.0]])
        cat, dog = 3, 7
        labels = np.array([cat, cat, dog, dog, dog])
        query = np.array([[1.0, 0.05]])
        # 3 dog votes beat 2 cat votes without weights; sharp weights let the
        # two very close cats win.
        assert knn_predict(bank, labels, query, k=5, temperature=None)[0] == dog
        assert knn_predict(bank, labels, query, k=5, temperature=0.1)[0] == cat
        assert knn_predict(bank, labels, query, k=5, temperature=1e-4)[0] == cat  # no overflow
        assert knn_predict(bank, labels.astype(float), query, k=5)[0] == cat  # whole floats
        with pytest.raises(ValueError, match="`k` must be an int >= 1"):
            knn_predict(bank, labels, query, k=0)
        with pytest.raises(ValueError, match="`temperature` must be a positive number"):
            knn_predict(bank, labels, query, temperature=0.0)
        # Labels are integer class ids everywhere (linear probe, fine-tuning, kNN).
        with pytest.raises(ValueError, match="`bank_labels` must be integer class ids"):
            knn_predict(bank, np.array(["cat", "cat", "dog", "dog", "dog"]), query)
        with pytest.raises(ValueError, match="`bank_labels` must be integer class ids, with none"):
            knn_predict(bank, [0, 0, 1, np.nan, 1], query)

    def test_split_bank_queries_is_stratified_and_disjoint(self):
        labels = np.repeat([0, 1, 2], [10, 5, 1])
        bank, queries = split_bank_queries(labels, 0.2, seed=0)
        assert not set(bank) & set(queries) and len(bank) + len(queries) == 16
        assert sorted(labels[queries].tolist()) == [
            0,
            0,
            1,
        ]  # class 2 keeps its only image in the bank
