"""Label-budget cross-validation and the paired not-worse rule, against NumPy
references written from their definitions.
"""

import numpy as np
import pytest
import testing
from digits_data import digits_rgb

from simclr_keras.evaluation.label_budgets import (
    budget_correctness,
    budget_scores,
    budget_splits,
    paired_comparison,
    per_budget,
)
from simclr_keras.evaluation.linear_probe import select_linear_probe


def labels_of(sizes):
    return np.concatenate([np.full(n, c) for c, n in enumerate(sizes)])


def reference_rule(splits, cand, ref, max_drop, z):
    """The rule as documented, written out with plain loops."""
    out = {}
    for budget in sorted({s.budget for s in splits}):
        d = [c - r for s, c, r in zip(splits, cand, ref) if s.budget == budget]
        m = sum(d) / len(d)
        sd = (sum((x - m) ** 2 for x in d) / (len(d) - 1)) ** 0.5
        se = sd / len(d) ** 0.5
        out[budget] = (m, se, m + z * se >= 0 and m >= -max_drop)
    return out


class TestBudgetSplits(testing.TestCase):
    """budget_splits: folds, class shares, seeds and refusals."""

    @pytest.mark.parametrize("sizes", [(20, 20), (7, 30, 13), (40, 5, 9, 21)])
    def test_splits_partition_every_repeat_and_draw_exact_class_shares(self, sizes):
        labels = labels_of(sizes)
        budgets = (0.05, 0.2, 1.0)
        splits = budget_splits(labels, budgets, folds=5, repeats=3, seed=4)
        k = min(5, min(sizes))
        assert len(splits) == len(budgets) * 3 * k
        for budget in budgets:
            for repeat in range(3):
                group = [s for s in splits if s.budget == budget and s.repeat == repeat]
                queries = np.concatenate([s.query for s in group])
                # Every image is scored exactly once per repeat and budget.
                assert np.array_equal(np.sort(queries), np.arange(len(labels)))
                for s in group:
                    assert not np.intersect1d(s.train, s.query).size
                    rest = np.setdiff1d(np.arange(len(labels)), s.query)
                    for c in np.unique(labels):
                        n_rest = int(np.sum(labels[rest] == c))
                        want = min(n_rest, max(1, int(np.floor(budget * n_rest + 0.5))))
                        assert int(np.sum(labels[s.train] == c)) == want
                        assert np.sum(labels[s.query] == c) >= 1  # stratified folds

    def test_the_same_seed_gives_the_same_splits_and_another_seed_others(self):
        labels = labels_of((30, 30))
        a, b = budget_splits(labels, seed=1), budget_splits(labels, seed=1)
        c = budget_splits(labels, seed=2)
        assert all(np.array_equal(x.train, y.train) for x, y in zip(a, b))
        assert not all(np.array_equal(x.query, y.query) for x, y in zip(a, c))

    def test_too_small_classes_are_refused_with_the_sizes(self):
        with pytest.raises(ValueError, match=r"at least two labelled images each.*\[1, 5\]"):
            budget_splits(labels_of((5, 1)))
        with pytest.raises(ValueError, match="`folds` must be an int >= 2"):
            budget_splits(labels_of((5, 5)), folds=1)


class TestBudgetScores(testing.TestCase):
    """budget_scores and per_budget against the probe fitted split by split."""

    def test_scores_are_the_probe_accuracy_on_each_query_fold(self):
        images, labels = digits_rgb(8)
        features = images[:300].reshape(300, -1).astype("float32") / 255
        labels = labels[:300]
        splits = budget_splits(labels, (0.2, 1.0), folds=3, repeats=1, seed=0)
        got = budget_scores(features, labels, splits, Cs=(0.1,))
        for split, value in zip(splits, got):
            probe, _ = select_linear_probe(features[split.train], labels[split.train], Cs=(0.1,))
            want = np.mean(probe.predict(features[split.query]) == labels[split.query])
            assert value == pytest.approx(want)
        means = per_budget(splits, got)
        assert means[1.0] > means[0.2] > 0.5  # more labels, better probe; far above chance

    def test_correctness_is_each_query_image_under_its_split_probe(self):
        """budget_correctness: one boolean per query image of each split, the
        probe of that split's training images; budget_scores are its means."""
        images, labels = digits_rgb(8)
        features = images[:200].reshape(200, -1).astype("float32") / 255
        labels = labels[:200]
        held = np.zeros(200, bool)
        held[::4] = True
        splits = budget_splits(labels, (0.5, 1.0), folds=2, repeats=2, seed=1, queries=held)
        correct = budget_correctness(features, labels, splits, Cs=(0.1,))
        assert len(correct) == len(splits)
        for split, row in zip(splits, correct):
            probe, _ = select_linear_probe(features[split.train], labels[split.train], Cs=(0.1,))
            assert row.dtype == bool and row.shape == split.query.shape
            assert (row == (probe.predict(features[split.query]) == labels[split.query])).all()
        scores = budget_scores(features, labels, splits, Cs=(0.1,))
        self.assertAllClose(scores, [row.mean() for row in correct])


class TestPairedComparison(testing.TestCase):
    """paired_comparison: the not-worse rule per budget."""

    def test_paired_rule_matches_the_reference_on_random_cases(self):
        rng = np.random.default_rng(0)
        splits = budget_splits(labels_of((20, 20)), (0.05, 0.2, 1.0), folds=4, repeats=2)
        for _ in range(200):
            ref = rng.uniform(0.5, 0.9, len(splits))
            cand = ref + rng.normal(rng.uniform(-0.02, 0.02), rng.uniform(0.001, 0.03), len(splits))
            max_drop, z = rng.choice([0.0, 0.005, 0.02]), rng.choice([0.0, 1.0, 2.0])
            got = paired_comparison(splits, cand, ref, max_drop, z)
            want = reference_rule(splits, cand, ref, max_drop, z)
            for budget, (m, se, passes) in want.items():
                row = got["budgets"][budget]
                assert row["gain"] == pytest.approx(m) and row["se"] == pytest.approx(se)
                assert row["passes"] == passes
            assert got["accepted"] == all(p for _, _, p in want.values())

    def test_paired_rule_invariants(self):
        splits = budget_splits(labels_of((20, 20)), (0.05, 1.0), folds=4, repeats=2)
        ref = np.linspace(0.6, 0.8, len(splits))
        assert paired_comparison(splits, ref, ref)["accepted"]  # equal to the start
        assert paired_comparison(splits, ref + 0.03, ref)["accepted"]  # better everywhere
        # A clear loss at one budget is refused whatever the gain at the other.
        worse = ref + np.where([s.budget == 1.0 for s in splits], -0.03, 0.2)
        result = paired_comparison(splits, worse, ref)
        assert not result["accepted"] and result["budgets"][0.05]["passes"]
        # A mean drop beyond max_drop is refused even when the noise is large.
        noisy = ref + np.tile([-0.2, 0.18], len(splits) // 2)
        assert not paired_comparison(splits, noisy, ref, max_drop=0.005, z=10)["accepted"]
        assert not paired_comparison(splits, ref * np.nan, ref)["accepted"]
        with pytest.raises(ValueError, match="one value per split"):
            paired_comparison(splits, ref[:3], ref)


class TestHeldOutQueries(testing.TestCase):
    """Splits and scores with held-out query images (`queries=`)."""

    def test_held_out_queries_are_the_only_images_scored(self):
        labels = labels_of((30, 20, 25))
        mask = np.zeros(len(labels), bool)
        mask[np.r_[0:6, 30:35, 50:56]] = True  # held out: 6, 5 and 6 per class
        splits = budget_splits(labels, (0.05, 0.2, 1.0), folds=3, repeats=2, seed=1, queries=mask)
        assert {(s.budget, s.repeat) for s in splits} == {
            (0.05, 0),
            (0.05, 1),
            (0.2, 0),
            (0.2, 1),
            (1.0, 0),  # 1.0 is the same draw every time: drawn once
        }
        pool = np.flatnonzero(~mask)
        for budget in (0.05, 0.2, 1.0):
            for repeat in (0, 1) if budget < 1 else (0,):
                group = [s for s in splits if s.budget == budget and s.repeat == repeat]
                assert len(group) == 3
                queries = np.sort(np.concatenate([s.query for s in group]))
                assert np.array_equal(queries, np.flatnonzero(mask))  # each held-out image once
                for s in group:
                    assert np.isin(s.train, pool).all() and not mask[s.train].any()
                    for c in range(3):
                        n = int(np.sum(labels[pool] == c))
                        want = min(n, max(1, int(np.floor(budget * n + 0.5))))
                        assert int(np.sum(labels[s.train] == c)) == want
                        assert np.sum(labels[s.query] == c) >= 1
        with pytest.raises(ValueError, match=r"needs query images.*\[1\]"):
            budget_splits(labels, queries=mask & (labels != 1))
        with pytest.raises(ValueError, match="boolean mask"):
            budget_splits(labels, queries=mask.astype(int))

    def test_held_out_scores_train_one_probe_per_draw(self):
        images, labels = digits_rgb(8)
        features = images[:200].reshape(200, -1).astype("float32") / 255
        labels = labels[:200]
        mask = np.zeros(200, bool)
        mask[::4] = True
        splits = budget_splits(labels, (0.2, 1.0), folds=2, repeats=1, seed=0, queries=mask)
        got = budget_scores(features, labels, splits, Cs=(0.1,))
        for split, value in zip(splits, got):
            probe, _ = select_linear_probe(features[split.train], labels[split.train], Cs=(0.1,))
            want = np.mean(probe.predict(features[split.query]) == labels[split.query])
            assert value == pytest.approx(want)
