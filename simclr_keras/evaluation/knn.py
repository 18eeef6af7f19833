"""Weighted k-nearest-neighbour classification of features (cosine similarity),
the kNN protocol of Wu et al. (2018) used to monitor SimCLR.
"""

import numpy as np

from simclr_keras._checks import check_features, check_int, check_labels, check_number


def knn_predict(bank_features, bank_labels, query_features, k=20, temperature=0.1, chunk=1024):
    """Weighted kNN class prediction with cosine similarity.

    Each query takes its `k` most cosine-similar bank features; each neighbour
    votes for its class with weight `exp(similarity / temperature)` (or 1
    when `temperature` is None: a plain majority vote); the class with the
    largest summed weight wins (ties: the smallest class index).

    Args:
        bank_features: `(N, d)` features of the labelled memory bank.
        bank_labels: `(N,)` integer class ids (the one rule for labels,
            as in `linear_evaluation`).
        query_features: `(Q, d)` features to classify.
        k: Neighbours per query (capped at N).
        temperature: Vote temperature (> 0), or None for equal votes.
        chunk: Queries per block, to bound memory.

    Returns:
        `(Q,)` predicted class ids (int64).

    Example:
    >>> knn_predict(np.eye(2), [0, 1], np.array([[0.9, 0.1]]), k=1)
    array([0])

    Reference:
        Wu, Xiong, Yu, Lin, "Unsupervised Feature Learning via Non-Parametric
        Instance Discrimination", CVPR 2018 (weighted kNN, Eq. 8).
    """
    bank_features = check_features(bank_features, "bank_features")
    query_features = check_features(query_features, "query_features")
    bank_labels = check_labels(bank_labels, len(bank_features), "bank_labels", "bank row")
    # float32 is 4-6x faster than float64 here (matmul and partition) and
    # features are float32 to begin with.
    bank = _l2_normalize(bank_features.astype("float32"))
    queries = _l2_normalize(query_features.astype("float32"))
    classes, label_idx = np.unique(bank_labels, return_inverse=True)
    check_number(temperature, "temperature", positive=True, allow_none=True)
    check_int(k, "k", minimum=1)
    k = min(int(k), len(bank))
    predictions = np.empty(len(queries), dtype="int64")
    for start in range(0, len(queries), chunk):
        sim = queries[start : start + chunk] @ bank.T
        top = np.argpartition(sim, sim.shape[1] - k, axis=1)[:, sim.shape[1] - k :]  # the k largest
        top_sim = np.take_along_axis(sim, top, axis=1)
        # Shifting each row by its best similarity keeps exp() finite for any
        # T without changing which class wins.
        if temperature is None:
            weights = np.ones_like(top_sim)
        else:
            weights = np.exp((top_sim - top_sim.max(axis=1, keepdims=True)) / temperature)
        rows = np.repeat(np.arange(len(sim)), k)
        flat = rows * len(classes) + label_idx[top].ravel()
        scores = np.bincount(
            flat, weights.ravel().astype("float64"), minlength=len(sim) * len(classes)
        )
        scores = scores.reshape(len(sim), len(classes))
        predictions[start : start + chunk] = np.argmax(scores, axis=1)
    return classes[predictions]


def _l2_normalize(x):
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def knn_accuracy(bank_features, bank_labels, query_features, query_labels, k=20, temperature=0.1):
    """Fraction of queries whose `knn_predict` label is right.

    Labels are integer class ids, as everywhere (see `knn_predict`).
    """
    predicted = knn_predict(
        bank_features, bank_labels, query_features, k=k, temperature=temperature
    )
    query_labels = check_labels(query_labels, len(predicted), "query_labels", "query row")
    return float(np.mean(predicted == query_labels))


def split_bank_queries(labels, query_fraction=0.2, seed=0):
    """Stratified split into memory-bank and query indices (each class
    keeps at least one bank image).
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    bank, queries = [], []
    for cls in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        n_query = min(int(round(len(idx) * query_fraction)), len(idx) - 1)
        queries.extend(idx[:n_query])
        bank.extend(idx[n_query:])
    return np.sort(np.array(bank, dtype="int64")), np.sort(np.array(queries, dtype="int64"))
