"""Label-free scores of an embedding: RankMe, alpha-ReQ and uniformity.

They score a backbone's features without any label, so a SimCLR run on an
unlabelled folder can still tell a better epoch from a worse one
(`BackboneGuard` uses them when there are no labels). Each takes an
`(N, d)` feature matrix and returns a float; higher is better for
`rankme`, `uniformity_score` and `alpha_req_score`.
"""

import numpy as np

from simclr_keras._checks import check_features


def _singular_values(features):
    x = check_features(features, "features").astype("float64")
    if len(x) < 2:
        raise ValueError(
            f"`features` must hold at least 2 rows to measure a spectrum. Received: {len(x)} rows"
        )
    return np.linalg.svd(x, compute_uv=False)


def rankme(features, eps=1e-7):
    """RankMe: the effective rank of an embedding matrix.

    `exp(-sum_k p_k log p_k)` with `p_k = sigma_k / ||sigma||_1 + eps`, the
    normalised singular values of the (uncentred) `(N, d)` matrix. It lies
    in `[1, min(N, d)]`; a collapsed embedding scores near 1. Use `N >= d`
    rows when possible (with fewer it cannot exceed `N`).

    Args:
        features: `(N, d)` features.
        eps: The paper's epsilon added to each `p_k`.

    Returns:
        The effective rank, a float.

    Example:
    >>> round(rankme(np.eye(4)), 3)
    4.0

    Reference:
        Garrido, Balestriero, Najman, LeCun, "RankMe: Assessing the
        Downstream Performance of Pretrained Self-Supervised Representations
        by Their Rank", ICML 2023 (eq. 1).
    """
    sigma = _singular_values(features)
    p = sigma / max(float(sigma.sum()), 1e-12) + eps
    return float(np.exp(-np.sum(p * np.log(p))))


def alpha_req(features, min_index=1, max_index=None):
    """alpha-ReQ: the power-law decay `alpha` of the feature covariance spectrum.

    The eigenvalues `lambda_i` of the centred features' covariance, sorted in
    decreasing order, are fitted by `lambda_i ~ i^(-alpha)` by least squares
    in log-log space over `i` in `[min_index, max_index]`. Agrawal et al.
    find the best linear probes near `alpha = 1`; larger means a spectrum
    that decays faster (towards collapse), smaller a whiter one.

    Args:
        features: `(N, d)` features.
        min_index: First eigenvalue (1-based) of the fit.
        max_index: Last one (default: `min(N, d) - 1`, dropping the smallest,
            which centring makes about 0 when `N <= d`).

    Returns:
        `alpha`, a float.

    Example:
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(2000, 64)) * np.arange(1, 65) ** -0.5
    >>> round(alpha_req(x), 1)
    1.0

    Reference:
        Agrawal, Mondal, Ghosh, Richards, "alpha-ReQ: Assessing
        Representation Quality in Self-Supervised Learning by Measuring
        Eigenspectrum Decay", NeurIPS 2022.
    """
    x = check_features(features, "features").astype("float64")
    x = x - x.mean(axis=0, keepdims=True)
    eig = _singular_values(x) ** 2 / max(len(x) - 1, 1)
    top = min(x.shape) - 1 if max_index is None else int(max_index)
    idx = np.arange(int(min_index), top + 1)
    eig = eig[idx - 1]
    keep = eig > eig[0] * 1e-12
    if keep.sum() < 2:
        return float("inf")  # one direction left: fully collapsed
    slope = np.polyfit(np.log(idx[keep]), np.log(eig[keep]), 1)[0]
    return float(-slope)


def alpha_req_score(features):
    """`-|alpha - 1|` of `alpha_req`: higher is better, 0 at the ideal decay."""
    return -abs(alpha_req(features) - 1.0)


def uniformity_score(features, t=2.0, max_rows=2000, seed=0):
    """Minus Wang & Isola's uniformity loss of L2-normalised features.

    Uniformity is `log mean_{i<j} exp(-t ||z_i - z_j||^2)`; lower means
    features spread more evenly on the sphere. This returns its negative,
    so higher is better.

    Args:
        features: `(N, d)` features.
        t: The loss's scale (2 in the paper).
        max_rows: Rows used at most (a seeded subsample; the pairwise
            distances take `max_rows^2` memory).
        seed: Seed of the subsample.

    Returns:
        `-uniformity`, a float.

    Example:
    >>> rng = np.random.default_rng(0)
    >>> spread = uniformity_score(rng.normal(size=(500, 16)))
    >>> collapsed = uniformity_score(rng.normal(size=(500, 16)) * 0.01 + 1)
    >>> spread > collapsed
    True

    Reference:
        Wang & Isola, "Understanding Contrastive Representation Learning
        through Alignment and Uniformity on the Hypersphere", ICML 2020.
    """
    x = check_features(features, "features").astype("float64")
    if len(x) > max_rows:
        x = x[np.random.default_rng(seed).choice(len(x), max_rows, replace=False)]
    z = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    sq = np.maximum(2.0 - 2.0 * (z @ z.T), 0.0)
    iu = np.triu_indices(len(z), k=1)
    values = -t * sq[iu]
    top = values.max()
    return float(-(top + np.log(np.mean(np.exp(values - top)))))


LABEL_FREE_SCORES = {
    "rankme": rankme,
    "alpha_req": alpha_req_score,
    "uniformity": uniformity_score,
}
