"""Label-free scores against plain NumPy references written from the papers."""

import numpy as np
import pytest
import testing

from simclr_keras.evaluation.label_free import (
    alpha_req,
    alpha_req_score,
    rankme,
    uniformity_score,
)


def rankme_reference(z, eps=1e-7):
    # Garrido et al. 2023, eq. 1: p_k = sigma_k / ||sigma||_1 + eps; exp(-sum p log p).
    sigma = np.linalg.svd(z, compute_uv=False)
    p = sigma / np.abs(sigma).sum() + eps
    return np.exp(-(p * np.log(p)).sum())


def uniformity_reference(z, t=2.0):
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    values = [
        np.exp(-t * np.sum((z[i] - z[j]) ** 2)) for i in range(len(z)) for j in range(i + 1, len(z))
    ]
    return -np.log(np.mean(values))


class TestLabelFreeScores(testing.TestCase):
    def test_rankme_matches_the_paper_and_counts_equal_directions(self):
        rng = np.random.default_rng(0)
        z = rng.normal(size=(300, 20))
        assert rankme(z) == pytest.approx(rankme_reference(z), rel=1e-9)
        # r orthogonal directions of equal strength: effective rank r (up to eps).
        q, _ = np.linalg.qr(rng.normal(size=(300, 20)))
        for r in (1, 3, 10):
            assert rankme(q[:, :r] * 5.0) == pytest.approx(r, rel=1e-4)
        # Collapse lowers it: one direction dominating.
        assert rankme(z * np.r_[100.0, np.ones(19)]) < rankme(z) / 2

    @pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
    def test_alpha_req_recovers_a_power_law_decay(self, alpha):
        rng = np.random.default_rng(1)
        d = 64
        # Covariance eigenvalues i^-alpha: scale column i by sqrt(i^-alpha), then rotate.
        q, _ = np.linalg.qr(rng.normal(size=(d, d)))
        z = rng.normal(size=(20000, d)) * np.arange(1, d + 1) ** (-alpha / 2) @ q
        assert alpha_req(z, max_index=d // 2) == pytest.approx(alpha, abs=0.08)
        assert alpha_req_score(z) <= 0

    def test_uniformity_matches_pairwise_reference_and_prefers_spread(self):
        rng = np.random.default_rng(2)
        z = rng.normal(size=(40, 8))
        assert uniformity_score(z) == pytest.approx(uniformity_reference(z), rel=1e-9)
        clumped = rng.normal(size=(40, 8)) * 0.05 + 1.0
        assert uniformity_score(z) > uniformity_score(clumped)

    def test_bad_features_fail_with_the_argument_name(self):
        with pytest.raises(ValueError, match="`features` must be finite"):
            rankme(np.array([[0.0, np.nan], [1.0, 2.0]]))
        with pytest.raises(ValueError, match="at least 2 rows"):
            rankme(np.ones((1, 4)))
