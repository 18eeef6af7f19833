"""Label-efficient evaluation: exact stratified fractions and linear probes.

Every choice (feature scaler, C) sees only the labelled training subset:
`select_linear_probe` takes no test data at all. Fine-tuning lives in
`finetune.py`, the baseline-vs-SimCLR table in `compare.py`.
"""

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from simclr_keras._checks import (
    check_features,
    check_fractions,
    check_labelled_pair,
    check_seeds,
    warn_unseen_classes,
)
from simclr_keras._images import check_images, to_unit_range_np
from simclr_keras.evaluation.label_fractions import accuracy_and_f1, stratified_fraction, summarize

DEFAULT_CS = (0.01, 0.1, 1.0, 10.0)


def select_linear_probe(features, labels, Cs=DEFAULT_CS, max_folds=5, seed=0, max_iter=2000):
    """Fit StandardScaler + LogisticRegression on a labelled subset, C by CV.

    C is chosen by a stratified `min(max_folds, smallest class count)`-fold
    cross-validation on these examples only (scaler refitted inside each
    fold); with a class of one example there is no CV and C = 1.0.

    Args:
        features: `(n, d)` features of the labelled subset.
        labels: `(n,)` labels.
        Cs: Candidate inverse regularisation strengths.
        max_folds: Upper bound on the folds.
        seed: Seed of the fold split.
        max_iter: LogisticRegression iterations.

    Returns:
        `(pipeline, C)`: the fitted scaler + classifier and the chosen C.
    """
    labels = np.asarray(labels)
    counts = np.unique(labels, return_counts=True)[1]
    if len(counts) < 2:
        raise ValueError(f"`labels` must hold at least two classes. Received: {np.unique(labels)}")
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter))
    folds = min(int(max_folds), int(counts.min()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if folds < 2 or len(Cs) == 1:
            C = float(Cs[0]) if len(Cs) == 1 else 1.0
            return pipe.set_params(logisticregression__C=C).fit(features, labels), C
        search = GridSearchCV(
            pipe,
            {"logisticregression__C": [float(c) for c in Cs]},
            cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
        )
        search.fit(features, labels)
    return search.best_estimator_, float(search.best_params_["logisticregression__C"])


def linear_evaluation(
    train_features,
    train_labels,
    test_features,
    test_labels,
    fractions=(0.05, 0.2, 1.0),
    seeds=(0, 1, 2),
    Cs=DEFAULT_CS,
    max_folds=5,
    verbose=0,
):
    """Linear probe on frozen features at several label fractions and seeds.

    For each fraction and seed: draw `stratified_fraction(train_labels,
    fraction, seed)`, fit `select_linear_probe` on it, score the test set.

    Args:
        train_features: `(N, d)` features of the labelled set.
        train_labels: `(N,)` labels of `train_features`.
        test_features: `(M, d)` features of the held-out set, used only to
            score.
        test_labels: `(M,)` labels of `test_features`.
        fractions: Label fractions in (0, 1].
        seeds: One run per seed.
        Cs: Inverse regularisation strengths searched, see
            `select_linear_probe`.
        max_folds: Cross-validation folds at most, see `select_linear_probe`.
        verbose: 1 prints one line per fraction.

    Returns:
        `{fraction: {"accuracy": {"mean", "std", "values"}, "macro_f1": ...,
        "C": [...], "n_labelled": [...]}}`; std is the sample std over seeds.

    Example:
    >>> res = linear_evaluation(f_tr, y_tr, f_te, y_te)      # doctest: +SKIP
    >>> res[0.05]["accuracy"]["mean"]                         # doctest: +SKIP
    """
    train_features, train_labels = check_labelled_pair(
        (check_features(train_features, "train_features"), train_labels), "train", min_classes=2
    )
    test_features, test_labels = check_labelled_pair(
        (check_features(test_features, "test_features"), test_labels), "test"
    )
    if test_features.shape[1] != train_features.shape[1]:
        raise ValueError(
            "`test_features` must have as many columns as `train_features`. Received: "
            f"{test_features.shape[1]} and {train_features.shape[1]}"
        )
    fractions, seeds = check_fractions(fractions), check_seeds(seeds)
    warn_unseen_classes(train_labels, test_labels)
    results = {}
    for fraction in fractions:
        acc, f1, chosen, sizes = [], [], [], []
        for seed in seeds:
            idx = stratified_fraction(train_labels, fraction, seed)
            probe, C = select_linear_probe(
                train_features[idx], train_labels[idx], Cs, max_folds, seed
            )
            a, f = accuracy_and_f1(test_labels, probe.predict(test_features))
            acc.append(a), f1.append(f), chosen.append(C), sizes.append(int(idx.size))
        results[float(fraction)] = {
            "accuracy": summarize(acc),
            "macro_f1": summarize(f1),
            "C": chosen,
            "n_labelled": sizes,
        }
        if verbose:
            print(
                f"linear {fraction:.0%}: accuracy {np.mean(acc):.4f} +- {results[float(fraction)]['accuracy']['std']:.4f}"
            )
    return results


def pixel_features(images):
    """Raw pixels in [0, 1], flattened: the "raw pixels" linear-probe baseline."""
    x = to_unit_range_np(check_images(images))
    return x.reshape(len(x), -1)
