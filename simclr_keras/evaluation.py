"""Label-efficient evaluation: exact stratified fractions, linear probes, fine-tuning, the comparison table.

Every choice (feature scaler, C, validation split, early stopping) sees only
the labelled training subset: the selection functions `select_linear_probe`
and `finetune_classifier` take no test data at all.
"""

import json
import os
import warnings

import keras
import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from simclr_keras.features import (
    ImagePreprocess,
    UnitRangeBatches,
    _input_size,
    _is_simclr,
    check_images,
    extract_features,
    snapshot_backbone,
)

DEFAULT_CS = (0.01, 0.1, 1.0, 10.0)


def stratified_fraction(labels, fraction, seed=0):
    """Indices of an exact per-class fraction of the labels.

    Rule: a class with `n_c` examples gets `max(1, floor(fraction * n_c + 0.5))`
    of them (rounded half up, at least one), drawn without replacement. So
    5 % means 5 % of each class, not "one batch in four" (the old template's
    "20 %" was really 25 %).

    Args:
        labels: `(N,)` class labels.
        fraction: In (0, 1]; 1.0 returns every index.
        seed: Integer seed of the draw.

    Returns:
        Sorted int64 indices into `labels`.

    Example:
    >>> stratified_fraction([0] * 10 + [1] * 30, 0.05).size   # 1 + 2
    3
    """
    labels = np.asarray(labels).ravel()
    if isinstance(fraction, bool) or not (isinstance(fraction, (int, float)) and 0 < fraction <= 1):
        raise ValueError(f"`fraction` must be a number in (0, 1]. Received: fraction={fraction!r}")
    if labels.size == 0:
        raise ValueError("`labels` must not be empty. Received: labels of size 0")
    rng = np.random.default_rng(seed)
    picked = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        k = min(len(members), max(1, int(np.floor(fraction * len(members) + 0.5))))
        picked.append(rng.choice(members, k, replace=False))
    return np.sort(np.concatenate(picked)).astype("int64")


def _validation_split(labels, val_fraction, seed):
    """(train, val) indices; a class keeps at least one training example."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed + 7919)
    val = []
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        if len(members) >= 2 and val_fraction > 0:
            k = min(len(members) - 1, max(1, int(np.floor(val_fraction * len(members) + 0.5))))
            val.append(members[:k])
    val = np.sort(np.concatenate(val)) if val else np.zeros(0, "int64")
    return np.setdiff1d(np.arange(len(labels)), val), val


def _stats(values):
    values = [float(v) for v in values]
    std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return {"mean": float(np.mean(values)), "std": std, "values": values}


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


def _scores(y_true, y_pred):
    return accuracy_score(y_true, y_pred), f1_score(y_true, y_pred, average="macro")


def linear_evaluation(
    train_features, train_labels, test_features, test_labels,
    fractions=(0.05, 0.2, 1.0), seeds=(0, 1, 2), Cs=DEFAULT_CS, max_folds=5, verbose=0,
):
    """Linear probe on frozen features at several label fractions and seeds.

    For each fraction and seed: draw `stratified_fraction(train_labels,
    fraction, seed)`, fit `select_linear_probe` on it, score the test set.

    Args:
        train_features, train_labels: `(N, d)` features and labels.
        test_features, test_labels: The held-out set, used only to score.
        fractions: Label fractions in (0, 1].
        seeds: One run per seed.
        Cs, max_folds: See `select_linear_probe`.
        verbose: 1 prints one line per fraction.

    Returns:
        `{fraction: {"accuracy": {"mean", "std", "values"}, "macro_f1": ...,
        "C": [...], "n_labelled": [...]}}`; std is the sample std over seeds.

    Example:
    >>> res = linear_evaluation(f_tr, y_tr, f_te, y_te)      # doctest: +SKIP
    >>> res[0.05]["accuracy"]["mean"]                         # doctest: +SKIP
    """
    train_labels, test_labels = np.asarray(train_labels), np.asarray(test_labels)
    results = {}
    for fraction in fractions:
        acc, f1, chosen, sizes = [], [], [], []
        for seed in seeds:
            idx = stratified_fraction(train_labels, fraction, seed)
            probe, C = select_linear_probe(train_features[idx], train_labels[idx], Cs, max_folds, seed)
            a, f = _scores(test_labels, probe.predict(test_features))
            acc.append(a), f1.append(f), chosen.append(C), sizes.append(int(idx.size))
        results[float(fraction)] = {
            "accuracy": _stats(acc), "macro_f1": _stats(f1), "C": chosen, "n_labelled": sizes,
        }
        if verbose:
            print(f"linear {fraction:.0%}: accuracy {np.mean(acc):.4f} +- {results[float(fraction)]['accuracy']['std']:.4f}")
    return results


def _unwrap(model, preprocessing=None, image_size=None):
    """(backbone, preprocessing, image_size, channels) of a backbone or SimCLR."""
    if _is_simclr(model):
        return model.base_model, model.preprocessing, tuple(model.image_shape[:2]), model.image_shape[2]
    size, channels = _input_size(model)
    return model, preprocessing, tuple(image_size) if image_size is not None else size, channels


def finetune_classifier(
    backbone, images, labels, num_classes, *, seed=0, preprocessing=None, image_size=None,
    val_fraction=0.2, batch_size=64, head_epochs=20, finetune_epochs=20, head_learning_rate=1e-3,
    finetune_learning_rate=1e-4, patience=5, augment=False, jit_compile="auto", verbose=0,
):
    """Train a classifier on a copy of the backbone, from a labelled subset only.

    The backbone (or `simclr.base_model`) is copied with `snapshot_backbone`
    and never changed. Stage 1 trains a linear head on the frozen copy;
    stage 2 unfreezes it and trains everything at a lower learning rate (a
    recompile between the stages, the safe way to change `trainable`). Each
    stage stops early on the validation loss of a stratified split carved
    from `images` (restoring the best weights). The head standardises the
    features (mean and variance of the training split) and applies a Dense
    layer. The backbone runs in
    inference mode (BatchNorm keeps its statistics, as Keras' transfer
    learning guide advises for small labelled sets).

    Args:
        backbone: A `keras.Model` or a `SimCLR` (its preprocessing and input
            size are then used).
        images: Labelled `(n, H, W[, C])` images, uint8 or float [0, 1].
        labels: Ints in `[0, num_classes)`.
        num_classes: Classifier outputs.
        seed: Seeds the validation split, the head's initialisation, the
            batch order and the augmentation.
        preprocessing, image_size: For a plain backbone, as in
            `extract_features`.
        val_fraction: Per-class share of `images` held out for early stopping
            (rounded half up, at least one for classes with two or more).
        batch_size, head_epochs, finetune_epochs: Training lengths
            (`finetune_epochs=0` gives a frozen-backbone classifier).
        head_learning_rate, finetune_learning_rate: Adam learning rates.
        patience: Early-stopping patience in epochs.
        augment: Light augmentation (random translation of 10 %).
        jit_compile: Passed to `compile` (False trains small models on CPU
            sooner: XLA compiles each stage anew).
        verbose: Passed to `fit`.

    Returns:
        `(classifier, info)`: a Keras model from [0, 1] images to logits, and
        `{"head_epoch", "finetune_epoch", "val_loss", "n_train", "n_val"}`:
        the best epochs counted from 1, `finetune_epoch` 0 when no
        fine-tuned epoch beat the head-only model on the validation loss
        (which is then kept).
    """
    check_images(images)
    labels = np.asarray(labels).astype("int64")
    if len(labels) != len(images) or labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(
            "`labels` must hold one int in [0, num_classes) per image. Received: "
            f"{len(labels)} labels in [{labels.min()}, {labels.max()}] for "
            f"{len(images)} images and num_classes={num_classes}"
        )
    net, preprocessing, image_size, channels = _unwrap(backbone, preprocessing, image_size)
    copy = snapshot_backbone(net)
    train_idx, val_idx = _validation_split(labels, val_fraction, seed)
    x = images
    inputs = keras.Input(tuple(x.shape[1:]) + ((1,) if x.ndim == 3 else ()))
    h = inputs
    if augment:
        h = keras.layers.RandomTranslation(0.1, 0.1, fill_mode="constant", seed=seed)(h)
    h = copy(ImagePreprocess(image_size, channels, preprocessing)(h), training=False)
    if len(h.shape) > 2:
        h = keras.layers.GlobalAveragePooling2D()(h)
    train = UnitRangeBatches(x[train_idx], labels[train_idx], batch_size, shuffle=True, seed=seed)
    # Standardise the features with the training split's statistics, as the
    # linear probe does: raw pooled features can be tiny and a plain Dense
    # head then barely moves in a few epochs.
    features = keras.Model(inputs, h).predict(UnitRangeBatches(x[train_idx], batch_size=batch_size), verbose=0)
    h = keras.layers.Normalization(mean=features.mean(0), variance=features.var(0) + 1e-6, name="feature_norm")(h)
    init = keras.initializers.GlorotUniform(seed=seed)
    outputs = keras.layers.Dense(num_classes, kernel_initializer=init, name="classifier")(h)
    model = keras.Model(inputs, outputs, name="finetuned_classifier")
    val = UnitRangeBatches(x[val_idx], labels[val_idx], batch_size) if val_idx.size else None
    info = {"n_train": int(train_idx.size), "n_val": int(val_idx.size), "val_loss": None}
    for stage, epochs, lr, trainable in (
        ("head", head_epochs, head_learning_rate, False),
        ("finetune", finetune_epochs, finetune_learning_rate, True),
    ):
        info[f"{stage}_epoch"] = 0
        if not epochs:
            continue
        copy.trainable = trainable
        model.compile(
            optimizer=keras.optimizers.Adam(lr),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
            jit_compile=jit_compile,
        )
        stop = keras.callbacks.EarlyStopping(patience=patience, restore_best_weights=True)
        kept = model.get_weights()
        # shuffle=False: the batches are shuffled, seeded, by `train` itself
        # (Keras would shuffle their order with the global NumPy RNG).
        model.fit(train, validation_data=val, epochs=epochs, verbose=verbose, shuffle=False,
                  callbacks=[stop] if val is not None else [])
        if val is None:
            info[f"{stage}_epoch"] = int(epochs)
        elif info["val_loss"] is not None and stop.best >= info["val_loss"]:
            model.set_weights(kept)  # fine-tuning did not help: keep the head-only model
        else:
            info[f"{stage}_epoch"], info["val_loss"] = int(stop.best_epoch + 1), float(stop.best)
    return model, info


def finetune_evaluation(backbone, train, test, fractions=(0.05, 0.2, 1.0), seeds=(0, 1, 2),
                        predict_batch_size=256, verbose=0, **kwargs):
    """Fine-tuned accuracy and macro-F1 per label fraction, mean +- std over seeds.

    Args:
        backbone: A `keras.Model` or a `SimCLR`; never changed.
        train: `(images, labels)`; each run uses `stratified_fraction` of it.
        test: `(images, labels)`, used only to score the trained classifiers.
        fractions, seeds: As in `linear_evaluation`.
        predict_batch_size: Batch size when scoring the test set.
        verbose: 1 prints one line per fraction.
        **kwargs: Passed to `finetune_classifier` (e.g. `batch_size`,
            `head_epochs`, `finetune_epochs`).

    Returns:
        `{fraction: {"accuracy", "macro_f1", "head_epoch", "finetune_epoch",
        "val_loss", "n_labelled"}}` as in `linear_evaluation` (the model
        selection records per seed, see `finetune_classifier`).
    """
    classes = np.unique(np.asarray(train[1]))
    y_train = np.searchsorted(classes, np.asarray(train[1]))
    y_test = np.asarray(test[1])
    results = {}
    for fraction in fractions:
        runs = {key: [] for key in ("accuracy", "macro_f1", "head_epoch", "finetune_epoch", "val_loss", "n_labelled")}
        for seed in seeds:
            idx = stratified_fraction(y_train, fraction, seed)
            model, info = finetune_classifier(backbone, train[0][idx], y_train[idx], len(classes), seed=seed, **kwargs)
            logits = model.predict(UnitRangeBatches(test[0], batch_size=predict_batch_size), verbose=0)
            a, f = _scores(y_test, classes[np.argmax(logits, axis=1)])
            for key, value in (("accuracy", a), ("macro_f1", f), ("head_epoch", info["head_epoch"]),
                               ("finetune_epoch", info["finetune_epoch"]), ("val_loss", info["val_loss"]),
                               ("n_labelled", int(idx.size))):
                runs[key].append(value)
        runs["accuracy"], runs["macro_f1"] = _stats(runs["accuracy"]), _stats(runs["macro_f1"])
        results[float(fraction)] = runs
        if verbose:
            print(f"finetune {fraction:.0%}: accuracy {runs['accuracy']['mean']:.4f} +- {runs['accuracy']['std']:.4f}")
    return results


def pixel_features(images):
    """Raw pixels in [0, 1], flattened: the "raw pixels" linear-probe baseline."""
    check_images(images)
    x = np.asarray(images)
    x = x.astype("float32") / (255.0 if np.issubdtype(x.dtype, np.integer) else 1.0)
    return x.reshape(len(x), -1)


def format_table(comparison, metric="accuracy"):
    """Markdown table `| fraction | classifier | <column>... |`, cells in % as mean ± std."""
    columns = comparison["columns"]
    lines = ["| fraction | classifier | " + " | ".join(columns) + " |",
             "|---" * (len(columns) + 2) + "|"]
    for row in comparison["rows"]:
        cells = []
        for name in columns:
            cell = row.get(name)
            cells.append("—" if cell is None else
                         f"{100 * cell[metric]['mean']:.1f} ± {100 * cell[metric]['std']:.1f}")
        lines.append(f"| {row['fraction']:.0%} | {row['classifier']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def compare_backbones(
    baseline, simclr_backbone, train, test, fractions=(0.05, 0.2, 1.0), seeds=(0, 1, 2),
    classifiers=("linear", "finetune"), depth="P3", extra_features=None, output_dir=None,
    preprocessing=None, image_size=None, batch_size=256, linear_kwargs=None, finetune_kwargs=None,
    names=("baseline", "SimCLR"), verbose=1,
):
    """Compare a baseline backbone with the SimCLR one; print and save the table.

    Keep the baseline with `snapshot_backbone(backbone)` before `SimCLR.fit`
    (which trains the backbone in place) for "the same backbone at random
    init". Neither model is changed.

    Args:
        baseline: A `keras.Model` (read at P3).
        simclr_backbone: A `SimCLR` (read at `depth`; fine-tuned through
            its `base_model`) or a plain `keras.Model`.
        train, test: `(images, labels)`; test only scores.
        fractions, seeds: As in `linear_evaluation`.
        classifiers: Any of `"linear"`, `"finetune"`.
        depth: Feature depth of `simclr_backbone` for the linear probe.
        extra_features: Optional `{name: (train_features, test_features)}`
            (e.g. `pixel_features`), extra linear-probe columns.
        output_dir: If given, writes `comparison.json` and `comparison.md`.
        preprocessing, image_size: For plain backbones, as in
            `extract_features` (a SimCLR's own settings apply to the
            baseline too when these are None).
        batch_size: Feature-extraction batch size.
        linear_kwargs, finetune_kwargs: Passed to `linear_evaluation` and
            `finetune_evaluation`.
        names: Column names of the two backbones.
        verbose: 1 prints progress and the table.

    Returns:
        `{"columns", "rows", "markdown", "results"}`.

    Example:
    >>> baseline = snapshot_backbone(backbone)
    >>> simclr.fit(x_unlabelled, epochs=50)                   # doctest: +SKIP
    >>> table = compare_backbones(baseline, simclr, (x_tr, y_tr), (x_te, y_te))
    """
    unknown = set(classifiers) - {"linear", "finetune"}
    if unknown:
        raise ValueError(f"`classifiers` must be among 'linear', 'finetune'. Received: {sorted(unknown)}")
    if _is_simclr(simclr_backbone) and preprocessing is None and image_size is None:
        preprocessing, image_size = simclr_backbone.preprocessing, simclr_backbone.image_shape[:2]
    models = {names[0]: (baseline, "P3"), names[1]: (simclr_backbone, depth)}
    results = {"linear": {}, "finetune": {}}
    linear_kwargs, finetune_kwargs = dict(linear_kwargs or {}), dict(finetune_kwargs or {})
    linear_kwargs.setdefault("verbose", verbose)
    for name, (model, model_depth) in models.items():
        plain = not _is_simclr(model)
        if "linear" in classifiers:
            prep = dict(preprocessing=preprocessing, image_size=image_size) if plain else {}
            f_tr = extract_features(model, train[0], model_depth, batch_size, verbose=verbose, **prep)
            f_te = extract_features(model, test[0], model_depth, batch_size, verbose=verbose, **prep)
            results["linear"][name] = linear_evaluation(f_tr, train[1], f_te, test[1], fractions, seeds, **linear_kwargs)
        if "finetune" in classifiers:
            prep = dict(preprocessing=preprocessing, image_size=image_size) if plain else {}
            results["finetune"][name] = finetune_evaluation(
                model, train, test, fractions, seeds, batch_size, verbose, **prep, **finetune_kwargs)
    for name, (f_tr, f_te) in (extra_features or {}).items():
        if "linear" in classifiers:
            results["linear"][name] = linear_evaluation(f_tr, train[1], f_te, test[1], fractions, seeds, **linear_kwargs)
    columns = list(models) + list(extra_features or {})
    rows = [
        {"fraction": float(f), "classifier": kind, **{n: results[kind].get(n, {}).get(float(f)) for n in columns}}
        for f in sorted(fractions, reverse=True) for kind in classifiers
    ]
    comparison = {"columns": columns, "rows": rows, "results": results}
    comparison["markdown"] = format_table(comparison)
    if verbose:
        print(comparison["markdown"])
    if output_dir:
        os.makedirs(output_dir, exist_ok=True)
        with open(os.path.join(output_dir, "comparison.json"), "w") as fh:
            json.dump({k: v for k, v in comparison.items()}, fh, indent=2)
        with open(os.path.join(output_dir, "comparison.md"), "w") as fh:
            fh.write(comparison["markdown"] + "\n")
    return comparison
