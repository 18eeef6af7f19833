"""Label-efficient evaluation: exact stratified fractions and linear probes.

scikit-learn is imported when a probe runs, not with the package, so
building or loading a model never loads it.

Every choice (feature scaler, C) sees only the labelled training subset:
`select_linear_probe` takes no test data at all. Fine-tuning lives in
`finetune.py`, the baseline-vs-SimCLR table in `compare.py`.
"""

import time
import warnings

import numpy as np

from simclr_keras._checks import (
    check_classes,
    check_features,
    check_fractions,
    check_labels,
    check_seeds,
    warn_unseen_classes,
)
from simclr_keras._images import check_images, to_unit_range_np
from simclr_keras.evaluation.label_fractions import accuracy_and_f1, stratified_fraction, summarize

DEFAULT_CS = (0.01, 0.1, 1.0, 10.0)
# Up to this many feature values (n * d) a probe runs on one thread.
SINGLE_THREAD_SIZE = 1 << 23


def solver_threads(n, d):
    """BLAS/OpenMP threads for a probe on `(n, d)` features: one when small.

    Small problems gain nothing from threads, and on a busy machine with few
    cores threads that spin-wait for each other made a 2 000 x 128 probe
    about 50x slower (minutes instead of seconds). Large ones keep the default.
    """
    return 1 if n * d <= SINGLE_THREAD_SIZE else None


def _fit_path(features, labels, Cs, max_iter, tol):
    """Standardise, then fit LogisticRegression for each C in ascending order,
    each fit warm-started from the previous one. Yields `(C, scaler, model)`.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(features)
    x = scaler.transform(features)
    model = LogisticRegression(max_iter=max_iter, tol=tol, warm_start=True)
    for C in sorted(Cs):
        model.set_params(C=C).fit(x, labels)
        yield C, scaler, model


def select_linear_probe(
    features, labels, Cs=DEFAULT_CS, max_folds=5, seed=0, max_iter=2000, tol=1e-4
):
    """Fit StandardScaler + LogisticRegression on a labelled subset, C by CV.

    C is chosen by a stratified `min(max_folds, smallest class count)`-fold
    cross-validation on these examples only (scaler refitted inside each
    fold; ties go to the C listed first); with a class of one example there
    is no CV and C = 1.0. Within a fold the C grid is solved in ascending
    order, each L-BFGS fit warm-started from the last, and small problems
    run single-threaded (see `solver_threads`): a 2 000 x 128 probe takes
    well under a second on 2 cores.

    Args:
        features: `(n, d)` features of the labelled subset.
        labels: `(n,)` labels.
        Cs: Candidate inverse regularisation strengths.
        max_folds: Upper bound on the folds.
        seed: Seed of the fold split.
        max_iter: L-BFGS iterations per fit.
        tol: L-BFGS tolerance.

    Returns:
        `(pipeline, C)`: the fitted scaler + classifier and the chosen C.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import Pipeline
    from threadpoolctl import threadpool_limits

    features = np.asarray(features)
    labels = np.asarray(labels)
    counts = np.unique(labels, return_counts=True)[1]
    if len(counts) < 2:
        raise ValueError(f"`labels` must hold at least two classes. Received: {np.unique(labels)}")
    Cs = [float(c) for c in Cs]
    folds = min(int(max_folds), int(counts.min()))
    with threadpool_limits(solver_threads(*features.shape)), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if folds < 2 or len(Cs) == 1:
            C = Cs[0] if len(Cs) == 1 else 1.0
        else:
            scores = {c: 0.0 for c in Cs}
            split = StratifiedKFold(folds, shuffle=True, random_state=seed)
            for tr, va in split.split(features, labels):
                for c, scaler, model in _fit_path(features[tr], labels[tr], Cs, max_iter, tol):
                    scores[c] += model.score(scaler.transform(features[va]), labels[va])
            best = max(scores.values())
            C = next(c for c in Cs if scores[c] >= best - 1e-12)
        fits = _fit_path(features, labels, [c for c in Cs if c <= C] or [C], max_iter, tol)
        *_, (_, scaler, model) = fits
    pipe = Pipeline([("standardscaler", scaler), ("logisticregression", model)])
    return pipe, float(C)


def probe_predictions(
    train_features, train_labels, test_features, idx, seed, Cs=DEFAULT_CS, max_folds=5
):
    """The test predictions of the linear probe `linear_evaluation` fits on one draw.

    One code path for `linear_evaluation` and for `finetune_evaluation` where
    it keeps the probe, so a kept probe reports exactly the linear row.

    Args:
        train_features: `(N, d)` features of the labelled set.
        train_labels: `(N,)` labels.
        test_features: `(M, d)` features to classify.
        idx: Indices of the labelled images the probe trains on (a draw of
            `stratified_fraction`).
        seed: Seed of the probe's C search (`select_linear_probe`).
        Cs: Inverse regularisation strengths searched.
        max_folds: Cross-validation folds of the C search at most.

    Returns:
        `(predicted, C)`: `(M,)` predicted labels and the chosen C.

    Example:
    >>> rng = np.random.default_rng(0)
    >>> f, y = rng.normal(size=(40, 3)), np.arange(40) % 2
    >>> f[:, 0] += 3 * y
    >>> predicted, C = probe_predictions(f, y, f, np.arange(40), seed=0)
    >>> bool((predicted == y).mean() > 0.9), C in DEFAULT_CS
    (True, True)
    """
    probe, C = select_linear_probe(train_features[idx], train_labels[idx], Cs, max_folds, seed)
    return probe.predict(test_features), C


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
    A draw identical to an earlier seed's (always so at 100 %) is fitted
    once: its fraction then reports one value, std 0.

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
        verbose: 1 prints one line per fraction and seed (with its time) and
            one per fraction.

    Returns:
        `{fraction: {"accuracy": {"mean", "std", "values"}, "macro_f1": ...,
        "C": [...], "n_labelled": [...], "seeds": [...]}}`; std is the sample
        std over the distinct draws.

    Example:
    >>> res = linear_evaluation(f_tr, y_tr, f_te, y_te)      # doctest: +SKIP
    >>> res[0.05]["accuracy"]["mean"]                         # doctest: +SKIP
    """
    train_features = check_features(train_features, "train_features")
    test_features = check_features(test_features, "test_features")
    train_labels = check_labels(
        train_labels, len(train_features), "train_labels", "row of `train_features`"
    )
    test_labels = check_labels(
        test_labels, len(test_features), "test_labels", "row of `test_features`"
    )
    check_classes(train_labels, "train_labels", 2)
    if test_features.shape[1] != train_features.shape[1]:
        raise ValueError(
            "`test_features` must have as many columns as `train_features`. Received: "
            f"{test_features.shape[1]} and {train_features.shape[1]}"
        )
    fractions, seeds = check_fractions(fractions), check_seeds(seeds)
    warn_unseen_classes(train_labels, test_labels)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(solver_threads(*train_features.shape)):  # predictions too
        results = {}
        for fraction in fractions:
            acc, f1, chosen, sizes, used, seen = [], [], [], [], [], set()
            for seed in seeds:
                idx = stratified_fraction(train_labels, fraction, seed)
                key = idx.tobytes()
                if key in seen:
                    continue  # the same labelled subset as an earlier seed
                seen.add(key)
                start = time.perf_counter()
                predicted, C = probe_predictions(
                    train_features, train_labels, test_features, idx, seed, Cs, max_folds
                )
                a, f = accuracy_and_f1(test_labels, predicted)
                acc.append(a), f1.append(f), chosen.append(C), sizes.append(int(idx.size))
                used.append(seed)
                if verbose:
                    print(
                        f"  linear {fraction:.0%} seed {seed}: {idx.size} labels, C={C:g}, "
                        f"accuracy {a:.4f} ({time.perf_counter() - start:.1f} s)",
                        flush=True,
                    )
            results[float(fraction)] = {
                "accuracy": summarize(acc),
                "macro_f1": summarize(f1),
                "C": chosen,
                "n_labelled": sizes,
                "seeds": used,
            }
            if verbose:
                same = " (every seed draws the same labels)" if len(used) < len(seeds) else ""
                print(
                    f"linear {fraction:.0%}: accuracy {np.mean(acc):.4f} +- "
                    f"{results[float(fraction)]['accuracy']['std']:.4f}{same}",
                    flush=True,
                )
        return results


def pixel_features(images):
    """Raw pixels in [0, 1], flattened: the "raw pixels" linear-probe baseline."""
    x = to_unit_range_np(check_images(images))
    return x.reshape(len(x), -1)
