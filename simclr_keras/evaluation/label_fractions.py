"""Exact stratified label fractions, and the scores reported for each."""

import numpy as np

from simclr_keras._checks import check_fraction, check_int, check_labels


def stratified_fraction(labels, fraction, seed=0):
    """Indices of an exact per-class fraction of the labels.

    Rule: a class with `n_c` examples gets `max(1, floor(fraction * n_c + 0.5))`
    of them (rounded half up, at least one), drawn without replacement. So
    5 % means 5 % of each class, not "one batch in four" (the old template's
    "20 %" was really 25 %).

    Args:
        labels: `(N,)` integer class ids (NaN, strings and fractions are
            refused: a NaN row would never be drawn).
        fraction: In (0, 1]; 1.0 returns every index.
        seed: Integer seed of the draw.

    Returns:
        Sorted int64 indices into `labels`.

    Example:
    >>> stratified_fraction([0] * 10 + [1] * 30, 0.05).size   # 1 + 2
    3
    """
    check_fraction(fraction)
    check_int(seed, "seed", minimum=0, allow_none=True)
    if np.size(labels) == 0:
        raise ValueError("`labels` must not be empty. Received: labels of size 0")
    labels = check_labels(np.ravel(labels), np.size(labels))  # a NaN would never be drawn
    rng = np.random.default_rng(seed)
    picked = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        k = min(len(members), max(1, int(np.floor(fraction * len(members) + 0.5))))
        picked.append(rng.choice(members, k, replace=False))
    return np.sort(np.concatenate(picked)).astype("int64")


def summarize(values):
    """Mean, sample standard deviation (0 for one value) and the values."""
    values = [float(v) for v in values]
    std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return {"mean": float(np.mean(values)), "std": std, "values": values}


def accuracy_and_f1(y_true, y_pred):
    """Accuracy and macro-averaged F1 of predictions."""
    from sklearn.metrics import accuracy_score, f1_score

    return accuracy_score(y_true, y_pred), f1_score(y_true, y_pred, average="macro")
