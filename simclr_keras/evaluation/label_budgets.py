"""Linear-probe accuracy at several label budgets, by cross-validation on
training images, and a paired rule for "not worse than the start".

`simclr-keras evaluate` reports linear probes trained on 5, 20 and 100 % of
the labelled training images and scored on held-out test images. To choose
a backbone without those test images, the same three numbers are estimated
on the labelled *training* images alone: repeated stratified K-fold
cross-validation, where in every fold the probe trains on the budget's share
of the other folds' images (drawn per class, as `evaluate` draws it) and is
scored on the held-out fold. Every candidate backbone is scored on the very
same splits as the start, so each split gives a paired difference and the
noise of a comparison is measured, not guessed (Dietterich 1998; Bouckaert
and Frank 2004 for repeated cross-validation).
"""

import dataclasses

import numpy as np

from simclr_keras._checks import check_fractions, check_int, check_number
from simclr_keras.evaluation.label_fractions import stratified_fraction
from simclr_keras.evaluation.linear_probe import select_linear_probe, solver_threads

BUDGETS = (0.05, 0.2, 1.0)
# Inverse regularisation strengths the probe chooses from by an inner CV on
# the budget's images (evaluate's grid without its rarely chosen 10.0).
PROBE_CS = (0.01, 0.1, 1.0)


@dataclasses.dataclass(frozen=True)
class BudgetSplit:
    """One probe to train and score: `train` indices at `budget`, `query` indices."""

    budget: float
    repeat: int
    fold: int
    train: np.ndarray
    query: np.ndarray


def budget_splits(labels, budgets=BUDGETS, folds=5, repeats=2, seed=0, queries=None):
    """The splits on which every candidate backbone is scored.

    Without `queries`: for each repeat, a stratified `folds`-fold partition
    of all labelled images (reshuffled per repeat); in each fold the probe's
    training images are `stratified_fraction(budget)` of the other folds'
    images and its queries the held-out fold. So every image is a query once
    per repeat and budget, and at budget 1.0 the probe sees
    `(folds - 1) / folds` of them.

    With `queries` (a boolean mask), only those images are ever scored, and
    the probe trains on the budget's share of the others: the protocol of
    `evaluate` (probe on the training images, scored on images the backbone
    never trained on) when the masked images were kept out of SimCLR. The
    queries are cut into `folds` stratified parts, so each budget draw gives
    `folds` paired values; budgets below 1.0 are drawn `repeats` times (1.0
    has one draw).

    Args:
        labels: `(N,)` integer labels of the scored images.
        budgets: Label fractions in (0, 1], e.g. `(0.05, 0.2, 1.0)`.
        folds: K of the K-fold partition (at least 2; lowered to the smallest
            class's size when a class is smaller, so each fold holds it).
        repeats: How many reshuffled partitions (budget draws).
        seed: Seed of the partitions and the budget draws.
        queries: Optional `(N,)` booleans: the only images scored.

    Returns:
        A list of `BudgetSplit`, ordered by budget, then repeat and fold.

    Example:
    >>> splits = budget_splits(np.repeat([0, 1], 20), budgets=(0.5, 1.0), folds=4, repeats=1)
    >>> [(s.budget, len(s.train), len(s.query)) for s in splits[:2]]
    [(0.5, 16, 10), (0.5, 16, 10)]
    """
    from sklearn.model_selection import StratifiedKFold

    labels = np.asarray(labels)
    budgets = check_fractions(budgets, "budgets")
    check_int(folds, "folds", minimum=2)
    check_int(repeats, "repeats", minimum=1)
    check_int(seed, "seed", minimum=0)
    if queries is not None:
        return _held_out_splits(labels, budgets, folds, repeats, seed, queries)
    counts = np.unique(labels, return_counts=True)[1]
    if len(counts) < 2 or counts.min() < 2:
        raise ValueError(
            "Label budgets need at least two classes of at least two labelled images each, "
            f"so every class can be both trained on and scored. Received: class sizes "
            f"{sorted(counts.tolist())}"
        )
    k = min(int(folds), int(counts.min()))
    splits = []
    for budget in budgets:
        for repeat in range(repeats):
            partition = StratifiedKFold(k, shuffle=True, random_state=seed + repeat)
            for fold, (rest, query) in enumerate(partition.split(labels, labels)):
                draw = stratified_fraction(labels[rest], budget, seed + 1000 * repeat + fold)
                splits.append(BudgetSplit(float(budget), repeat, fold, rest[draw], query))
    return splits


def _held_out_splits(labels, budgets, folds, repeats, seed, queries):
    """`budget_splits` with a fixed set of query images (see there)."""
    queries = np.asarray(queries)
    if queries.dtype != bool or queries.shape != labels.shape:
        raise ValueError(
            f"`queries` must be a boolean mask with one value per label ({labels.shape}). "
            f"Received: {queries.dtype} of shape {queries.shape}"
        )
    pool, scored = np.flatnonzero(~queries), np.flatnonzero(queries)
    classes = np.unique(labels)
    for name, part in (("training (not query)", pool), ("query", scored)):
        missing = np.setdiff1d(classes, labels[part])
        if missing.size:
            raise ValueError(
                f"Every class needs {name} images for label budgets. Received: none for "
                f"class(es) {missing.tolist()}"
            )
    k = min(int(folds), int(np.unique(labels[scored], return_counts=True)[1].min()))
    chunks = [scored[part] for _, part in _stratified_parts(labels[scored], k, seed)]
    if k < 2:
        chunks = [scored]
    splits = []
    for budget in budgets:
        for repeat in range(1 if budget == 1.0 else repeats):
            draw = pool[stratified_fraction(labels[pool], budget, seed + 1000 * repeat)]
            for fold, chunk in enumerate(chunks):
                splits.append(BudgetSplit(float(budget), repeat, fold, draw, chunk))
    return splits


def _stratified_parts(labels, k, seed):
    """`k` stratified parts of `labels` (as StratifiedKFold's test folds)."""
    from sklearn.model_selection import StratifiedKFold

    if k < 2:
        return []
    return StratifiedKFold(k, shuffle=True, random_state=seed).split(labels, labels)


def budget_scores(features, labels, splits, Cs=PROBE_CS, seed=0):
    """Linear-probe accuracy of `features` on each split.

    Each probe is `select_linear_probe` (standardised features, logistic
    regression, C chosen by an inner CV on the split's training images
    only), as `evaluate`'s linear probe.

    Args:
        features: `(N, d)` features of the labelled images.
        labels: `(N,)` labels.
        splits: From `budget_splits(labels, ...)`.
        Cs: The probe's C grid.
        seed: Seed of the inner CV.

    Returns:
        float64 array `(len(splits),)` of accuracies in [0, 1], in the order
        of `splits`.
    """
    correct = budget_correctness(features, labels, splits, Cs, seed)
    return np.array([float(np.mean(c)) for c in correct])


def budget_correctness(features, labels, splits, Cs=PROBE_CS, seed=0):
    """Which query images each split's probe classifies correctly.

    The per-image view of `budget_scores` (its accuracies are the means),
    for studying rules on the same splits image by image.

    Args:
        features: `(N, d)` features of the labelled images.
        labels: `(N,)` labels.
        splits: From `budget_splits(labels, ...)`.
        Cs: The probe's C grid.
        seed: Seed of the inner CV.

    Returns:
        A list with one boolean array per split, `(len(split.query),)`.

    Example:
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([0, 1], 20)
    >>> f = rng.normal(size=(40, 2)) + 4 * y[:, None]
    >>> splits = budget_splits(y, budgets=(1.0,), folds=2, repeats=1)
    >>> [c.shape for c in budget_correctness(f, y, splits)]
    [(20,), (20,)]
    """
    from threadpoolctl import threadpool_limits

    features = np.asarray(features, dtype="float32")
    labels = np.asarray(labels)
    out = []
    predictions = {}  # one probe per distinct training set (held-out queries share them)
    with threadpool_limits(solver_threads(*features.shape)):
        for split in splits:
            key = split.train.tobytes()
            if key not in predictions:
                predictions[key] = _probe_predictions(features, labels, split.train, Cs, seed)
            out.append(predictions[key][split.query] == labels[split.query])
    return out


def _probe_predictions(features, labels, train, Cs, seed):
    """The probe trained on `features[train]`, predicting every image."""
    train_labels = labels[train]
    if len(np.unique(train_labels)) < 2:  # too few labels for a probe: the majority class
        return np.full(len(labels), np.bincount(train_labels.astype("int64")).argmax())
    probe, _ = select_linear_probe(features[train], train_labels, Cs=Cs, max_folds=3, seed=seed)
    return probe.predict(features)


def per_budget(splits, values):
    """`{budget: mean value}` of per-split values."""
    budgets = sorted({s.budget for s in splits})
    values = np.asarray(values, dtype="float64")
    return {
        b: float(np.mean([v for s, v in zip(splits, values) if s.budget == b])) for b in budgets
    }


def paired_comparison(splits, candidate, reference, max_drop=0.005, z=1.0):
    """Is `candidate` not worse than `reference` at any budget? A paired rule.

    For each budget, the differences `candidate - reference` on the same
    splits give a mean `m` and a standard error `se` (sample std over
    sqrt(n)). The candidate passes a budget when both hold:

    - `m + z * se >= 0`: it is not worse by more than `z` standard errors;
    - `m >= -max_drop`: its mean loss is at most `max_drop` (default half a
      point of accuracy, about one image in 200), however noisy the budget.

    It is accepted when it passes every budget. The rule was fixed before
    any test split was looked at; the repeated folds share images, so `se`
    understates the spread somewhat, and `max_drop` bounds that.

    Args:
        splits: The `BudgetSplit`s both were scored on.
        candidate: Per-split accuracies of the candidate.
        reference: Per-split accuracies of the reference (the start).
        max_drop: Largest mean loss tolerated at any budget.
        z: Standard errors of noise tolerated.

    Returns:
        `{"accepted": bool, "gain": mean difference over all budgets,
        "budgets": {budget: {"gain": m, "se": se, "passes": bool}}}`.

    Example:
    >>> splits = budget_splits(np.repeat([0, 1], 10), budgets=(1.0,), folds=2, repeats=1)
    >>> paired_comparison(splits, [0.8, 0.9], [0.8, 0.8])["accepted"]
    True
    """
    check_number(max_drop, "max_drop", minimum=0)
    check_number(z, "z", minimum=0)
    candidate = np.asarray(candidate, dtype="float64")
    reference = np.asarray(reference, dtype="float64")
    if candidate.shape != (len(splits),) or reference.shape != (len(splits),):
        raise ValueError(
            f"`candidate` and `reference` must hold one value per split ({len(splits)}). "
            f"Received: shapes {candidate.shape} and {reference.shape}"
        )
    diff = candidate - reference
    result, means = {}, []
    for budget in sorted({s.budget for s in splits}):
        d = np.array([v for s, v in zip(splits, diff) if s.budget == budget])
        m = float(d.mean())
        se = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else 0.0
        passes = bool(m + z * se >= -1e-12 and m >= -max_drop - 1e-12)
        result[budget] = {"gain": m, "se": se, "passes": passes}
        means.append(m)
    if not np.isfinite(diff).all():
        for row in result.values():
            row["passes"] = False
    return {
        "accepted": all(r["passes"] for r in result.values()),
        "gain": float(np.mean(means)),
        "budgets": result,
    }
