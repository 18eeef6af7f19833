"""Fine-tuned classifiers from a labelled subset, scored per label fraction.

Every choice (validation split, early stopping, keeping the head-only model)
sees only the labelled training subset: `finetune_classifier` takes no test
data at all.
"""

import time

import keras
import numpy as np

from simclr_keras._checks import (
    check_fractions,
    check_labelled_pair,
    check_labels,
    check_seeds,
    warn_unseen_classes,
)
from simclr_keras._images import check_images
from simclr_keras.backbones import spec as backbone_spec
from simclr_keras.backbones.freezing import snapshot_backbone
from simclr_keras.evaluation.features import UnitRangeBatches, model_input_size
from simclr_keras.evaluation.label_fractions import accuracy_and_f1, stratified_fraction, summarize
from simclr_keras.evaluation.linear_probe import select_linear_probe
from simclr_keras.evaluation.result_cache import FORMAT, ResultCache, fingerprint
from simclr_keras.layers.input_scaling import ImagePreprocess
from simclr_keras.model import SimCLR


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


def _unwrap(model, preprocessing=None, image_size=None):
    """(backbone, preprocessing, image_size, channels, token_pooling) of a
    backbone or SimCLR.
    """
    if isinstance(model, SimCLR):
        return (
            model.base_model,
            model.preprocessing,
            tuple(model.image_shape[:2]),
            model.image_shape[2],
            model.token_pooling,
        )
    size, channels = model_input_size(model)
    size = tuple(image_size) if image_size is not None else size
    return model, preprocessing, size, channels, None


HEADS = ("probe", "train")


def _probe_head(features, labels, num_classes, seed):
    """LP-FT's start: the linear probe on frozen features as a Normalization
    + Dense pair. Returns `(mean, variance, kernel, bias, C)`.

    The probe is `select_linear_probe` (C by cross-validation on these
    examples only). A class absent from `labels` gets zero weights and a bias
    of -10 000, so it is not predicted before fine-tuning.
    """
    probe, C = select_linear_probe(features, labels, seed=seed)
    scaler, logistic = probe.named_steps.values()
    kernel = np.zeros((features.shape[1], num_classes), "float32")
    coef, intercept = logistic.coef_, logistic.intercept_
    bias = np.full(num_classes, -1e4, "float32")
    if len(logistic.classes_) == 2:  # one logit for class 1; class 0 gets 0
        coef = np.concatenate([np.zeros_like(coef), coef])
        intercept = np.concatenate([[0.0], intercept])
    kernel[:, logistic.classes_] = coef.T
    bias[logistic.classes_] = intercept
    return scaler.mean_, scaler.scale_**2, kernel, bias, C


def finetune_classifier(
    backbone,
    images,
    labels,
    num_classes,
    *,
    seed=0,
    preprocessing=None,
    image_size=None,
    val_fraction=0.2,
    batch_size=64,
    head="probe",
    head_epochs=20,
    finetune_epochs=20,
    head_learning_rate=1e-3,
    finetune_learning_rate=1e-4,
    patience=5,
    min_epoch_steps=10,
    refit=True,
    augment=False,
    jit_compile="auto",
    verbose=0,
):
    """Train a classifier on a copy of the backbone, from a labelled subset only.

    The backbone (or `simclr.base_model`) is copied with `snapshot_backbone`
    and never changed. The classifier is the copy, a standardisation of its
    pooled features and a Dense layer. Stage 1 gives the Dense layer its
    start on the frozen copy: by default (`head="probe"`) the linear probe's
    solution (`select_linear_probe`: C by cross-validation on the training
    split), as in LP-FT, which keeps fine-tuning from distorting the
    features with the gradients of a random head; `head="train"` trains it
    by Adam instead. Stage 2 unfreezes the copy and trains everything at a
    lower learning rate (a recompile between the stages, the safe way to
    change `trainable`), stopping early on the validation loss of a
    stratified split carved from `images` and restoring the best weights;
    if no fine-tuned epoch beats stage 1's validation loss, stage 1's model
    is kept. The copy runs in inference mode (BatchNorm keeps its
    statistics, as Keras' transfer learning guide advises for small
    labelled sets). Every epoch holds at least `min_epoch_steps` batches
    (the split is cycled), so 5 % of the labels still get steps to learn
    from. With `refit` (and the probe head), the split only chooses the
    number of fine-tuning epochs: the classifier returned is built again
    from every labelled image, the probe fitted on all of them and then
    fine-tuned for that many epochs. When no epoch helped it is therefore
    the linear probe of `linear_evaluation` on the same labels, and
    fine-tuning is not handicapped by the labels it held out.

    Args:
        backbone: A `keras.Model` or a `SimCLR` (its preprocessing and input
            size are then used).
        images: Labelled `(n, H, W[, C])` images, uint8 or float [0, 1].
        labels: Ints in `[0, num_classes)`.
        num_classes: Classifier outputs.
        seed: Seeds the validation split, the probe's folds, the head's
            initialisation, the batch order and the augmentation.
        preprocessing: For a plain backbone, as in `extract_features`.
        image_size: For a plain backbone, as in `extract_features`.
        val_fraction: Per-class share of `images` held out for early stopping
            (rounded half up, at least one for classes with two or more).
        batch_size: Training batch size.
        head: `"probe"` (the linear probe's solution, LP-FT) or `"train"`
            (Adam on the frozen copy for up to `head_epochs`).
        head_epochs: With `head="train"`, at most this many epochs of the
            head alone.
        finetune_epochs: At most this many epochs of the whole classifier
            (0 gives a frozen-backbone classifier).
        head_learning_rate: With `head="train"`, the head's Adam rate.
        finetune_learning_rate: Adam learning rate of the fine-tuning stage.
        patience: Early-stopping patience in epochs.
        min_epoch_steps: Batches an epoch holds at least.
        refit: With `head="probe"` and a validation split, build the
            returned classifier again on every labelled image for the
            chosen number of epochs.
        augment: Light augmentation (random translation of 10 %).
        jit_compile: Passed to `compile` (False trains small models on CPU
            sooner: XLA compiles each stage anew).
        verbose: Passed to `fit` (2: a line per epoch); any non-zero value
            also prints a line when each stage starts.

    Returns:
        `(classifier, info)`: a Keras model from [0, 1] images to logits, and
        `{"head_epoch", "finetune_epoch", "val_loss", "C", "refit",
        "n_train", "n_val"}`: the best epochs counted from 1 (`head_epoch`
        0 for the probe head, `finetune_epoch` 0 when no fine-tuned epoch
        beat stage 1 on the validation loss), the returned probe's C (None
        when trained), whether the classifier was refitted on every label.

    Reference:
        Kumar et al., "Fine-Tuning can Distort Pretrained Features and
        Underperform Out-of-Distribution", ICLR 2022 (LP-FT).
    """
    if head not in HEADS:
        raise ValueError(f"`head` must be one of {HEADS}. Received: head={head!r}")
    images = check_images(images)
    labels = check_labels(labels, len(images))
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(
            "`labels` must hold one int in [0, num_classes) per image. Received: "
            f"{len(labels)} labels in [{labels.min()}, {labels.max()}] for "
            f"{len(images)} images and num_classes={num_classes}"
        )
    net, preprocessing, image_size, channels, pooling = _unwrap(backbone, preprocessing, image_size)
    x = images
    # Builds a backbone without an Input; tokens, maps and channels_first
    # handled as in SimCLR.
    spec = backbone_spec.describe_backbone(
        net,
        tuple(image_size or x.shape[1:3]) + (channels or (x.shape[3] if x.ndim == 4 else 1),),
        pooling,
        name="backbone",
    )
    train_idx, val_idx = _validation_split(labels, val_fraction, seed)
    info = {"n_train": int(train_idx.size), "n_val": int(val_idx.size), "val_loss": None}
    info["head_epoch"], info["C"], info["refit"] = 0, None, False
    build = dict(
        spec=spec,
        net=net,
        head=head,
        num_classes=num_classes,
        seed=seed,
        preprocessing=preprocessing,
        image_size=image_size,
        channels=channels,
        augment=augment,
        batch_size=batch_size,
    )
    model, copy, info["C"], features = _build_classifier(x, labels, train_idx, **build)
    train = UnitRangeBatches(
        x[train_idx],
        labels[train_idx],
        batch_size,
        shuffle=True,
        seed=seed,
        min_batches=min_epoch_steps,
    )
    val = UnitRangeBatches(x[val_idx], labels[val_idx], batch_size) if val_idx.size else None
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    if head == "probe" and val is not None:
        model.compile(loss=loss, jit_compile=jit_compile)
        info["val_loss"] = float(model.evaluate(val, verbose=0))
    stages = [("finetune", finetune_epochs, finetune_learning_rate, True)]
    if head == "train":
        stages.insert(0, ("head", head_epochs, head_learning_rate, False))
    for stage, epochs, lr, trainable in stages:
        info[f"{stage}_epoch"] = 0
        if not epochs:
            continue
        copy.trainable = trainable
        _compile(model, lr, loss, jit_compile)
        if verbose:
            print(
                f"    {'head' if stage == 'head' else 'fine-tuning'}: at most {epochs} epochs on "
                f"{train_idx.size} labels, "
                + (
                    f"stopped early on the validation loss of {val_idx.size}"
                    if val is not None
                    else "no validation split (every epoch is run)"
                ),
                flush=True,
            )
        stop = keras.callbacks.EarlyStopping(patience=patience, restore_best_weights=True)
        kept = model.get_weights()
        # shuffle=False: the batches are shuffled, seeded, by `train` itself
        # (Keras would shuffle their order with the global NumPy RNG).
        model.fit(
            train,
            validation_data=val,
            epochs=epochs,
            verbose=verbose,
            shuffle=False,
            callbacks=[stop] if val is not None else [],
        )
        if val is None:
            info[f"{stage}_epoch"] = int(epochs)
        elif info["val_loss"] is not None and stop.best >= info["val_loss"]:
            model.set_weights(kept)  # this stage did not help: keep the one before
        else:
            info[f"{stage}_epoch"], info["val_loss"] = int(stop.best_epoch + 1), float(stop.best)
    if refit and head == "probe" and val is not None:
        # The number of epochs is chosen; now use every label: the probe on
        # all of them, then that many fine-tuning epochs (none: the probe).
        every = np.arange(len(labels))
        model, copy, info["C"], _ = _build_classifier(x, labels, every, features, **build)
        if info["finetune_epoch"]:
            copy.trainable = True
            _compile(model, finetune_learning_rate, loss, jit_compile)
            if verbose:
                print(
                    f"    refit: the probe, then {info['finetune_epoch']} epochs, on all "
                    f"{len(labels)} labels",
                    flush=True,
                )
            model.fit(
                UnitRangeBatches(
                    x, labels, batch_size, shuffle=True, seed=seed, min_batches=min_epoch_steps
                ),
                epochs=info["finetune_epoch"],
                verbose=verbose,
                shuffle=False,
            )
        info["refit"] = True
    return model, info


def _compile(model, learning_rate, loss, jit_compile):
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=loss,
        metrics=["accuracy"],
        jit_compile=jit_compile,
    )


def _build_classifier(
    x,
    labels,
    idx,
    features=None,
    *,
    spec,
    net,
    head,
    num_classes,
    seed,
    preprocessing,
    image_size,
    channels,
    augment,
    batch_size,
):
    """`(classifier, backbone copy, C, features)`: a fresh copy of the
    backbone, the standardisation of its features on `x[idx]` and a Dense
    layer, that layer the linear probe fitted on `x[idx]` (`head="probe"`,
    C returned) or Glorot-initialised (C None). `features` are the frozen
    copy's features of every image in `x`: extracted when not given, and
    returned for the next build (the copy's weights are the same).
    """
    copy = snapshot_backbone(backbone_spec.single_output_model(net, spec))
    inputs = keras.Input(tuple(x.shape[1:]) + ((1,) if x.ndim == 3 else ()))
    h = inputs
    if augment:
        h = keras.layers.RandomTranslation(
            0.1, 0.1, fill_mode="constant", seed=seed, data_format="channels_last"
        )(h)
    h = ImagePreprocess(image_size, channels, preprocessing)(h)
    adapt = backbone_spec.input_adapter(spec)
    h = copy(adapt(h) if adapt is not None else h, training=False)
    h = backbone_spec.pooling_layer(spec)(h)
    # Standardise the features with the fitting images' statistics, as the
    # linear probe does: raw pooled features can be tiny and a plain Dense
    # head then barely moves in a few epochs.
    if features is None:
        features = keras.Model(inputs, h).predict(
            UnitRangeBatches(x, batch_size=batch_size), verbose=0
        )
    C = None
    if head == "probe":
        mean, variance, kernel, bias, C = _probe_head(features[idx], labels[idx], num_classes, seed)
    else:
        mean, variance = features[idx].mean(0), features[idx].var(0)
    variance = np.where(variance > 0, variance, 1.0)  # a constant feature stays 0
    h = keras.layers.Normalization(mean=mean, variance=variance, name="feature_norm")(h)
    init = keras.initializers.GlorotUniform(seed=seed)
    dense = keras.layers.Dense(num_classes, kernel_initializer=init, name="classifier")
    model = keras.Model(inputs, dense(h), name="finetuned_classifier")
    if head == "probe":
        dense.set_weights([kernel, bias])
    return model, copy, C, features


def finetune_evaluation(
    backbone,
    train,
    test,
    fractions=(0.05, 0.2, 1.0),
    seeds=(0, 1, 2),
    predict_batch_size=256,
    verbose=0,
    cache_dir=None,
    **kwargs,
):
    """Fine-tuned accuracy and macro-F1 per label fraction, mean +- std over seeds.

    Args:
        backbone: A `keras.Model` or a `SimCLR`; never changed.
        train: `(images, labels)`; each run uses `stratified_fraction` of it.
        test: `(images, labels)`, used only to score the trained classifiers.
        fractions: Label fractions in (0, 1], as in `linear_evaluation`.
        seeds: One run per seed, as in `linear_evaluation`.
        predict_batch_size: Batch size when scoring the test set.
        verbose: 1 prints one line per fraction and seed (best epochs, time),
            one per fraction and, while a classifier trains, one per epoch.
        cache_dir: Optional folder keeping each run's record (one JSON file
            per fraction and seed, see `ResultCache`). A run whose backbone
            weights, images, labels, fraction, seed, settings and Keras
            backend match a record is not trained again: an interrupted
            evaluation resumes, and several SimCLR runs compared with the
            same start fine-tune that start once.
        **kwargs: Passed to `finetune_classifier` (e.g. `batch_size`,
            `head_epochs`, `finetune_epochs`).

    Returns:
        `{fraction: {"accuracy", "macro_f1", "head_epoch", "finetune_epoch",
        "val_loss", "C", "n_labelled"}}` as in `linear_evaluation` (the model
        selection records per seed, see `finetune_classifier`).

    Example:
    >>> results = finetune_evaluation(backbone, (x_tr, y_tr), (x_te, y_te),
    ...                               cache_dir="finetune_cache")  # doctest: +SKIP
    >>> results[0.05]["accuracy"]["mean"]                          # doctest: +SKIP
    """
    channels = _unwrap(backbone)[3] if isinstance(backbone, keras.Model) else None
    x_train, y_train = check_labelled_pair(train, "train", min_classes=2)
    x_test, y_test = check_labelled_pair(test, "test")
    train = (check_images(x_train, "train[0]", channels, allow_grey=True), y_train)
    test = (check_images(x_test, "test[0]", channels, allow_grey=True), y_test)
    fractions, seeds = check_fractions(fractions), check_seeds(seeds)
    warn_unseen_classes(y_train, y_test)
    cache = None if cache_dir is None else ResultCache(cache_dir, "finetune")
    if cache is not None:  # one digest of the model and data; each run adds its fraction and seed
        model = backbone.base_model if isinstance(backbone, SimCLR) else backbone
        key = fingerprint(
            FORMAT,
            keras.backend.backend(),
            model,
            _unwrap(backbone, kwargs.get("preprocessing"), kwargs.get("image_size"))[1:],
            np.asarray(train[0]),
            np.asarray(y_train),
            np.asarray(test[0]),
            np.asarray(y_test),
            kwargs,
        )
    classes = np.unique(y_train)
    y_train = np.searchsorted(classes, y_train)
    keys = ("accuracy", "macro_f1", "head_epoch", "finetune_epoch", "val_loss", "C", "n_labelled")
    results = {}
    for fraction in fractions:
        runs = {k: [] for k in keys}
        for seed in seeds:
            start = time.perf_counter()
            run_key = None if cache is None else fingerprint(key, float(fraction), int(seed))
            record = None if cache is None else cache.get(run_key)
            if record is None or not set(keys) <= set(record):
                idx = stratified_fraction(y_train, fraction, seed)
                record = _finetune_run(
                    backbone,
                    train[0][idx],
                    y_train[idx],
                    test,
                    classes,
                    seed,
                    predict_batch_size,
                    {"verbose": 2 if verbose else 0, **kwargs},
                )
                if cache is not None:
                    cache.put(run_key, record)
                how = f"{time.perf_counter() - start:.1f} s"
            else:
                how = f"cached: {cache.path(run_key)}"
            for k in keys:
                runs[k].append(record[k])
            if verbose:
                print(
                    f"  finetune {fraction:.0%} seed {seed}: {record['n_labelled']} labels, "
                    + (
                        f"probe head C={record['C']:g}"
                        if record["C"] is not None
                        else f"head epoch {record['head_epoch']}"
                    )
                    + f", best fine-tune epoch {record['finetune_epoch']}, "
                    f"accuracy {record['accuracy']:.4f} ({how})",
                    flush=True,
                )
        runs["accuracy"], runs["macro_f1"] = (
            summarize(runs["accuracy"]),
            summarize(runs["macro_f1"]),
        )
        results[float(fraction)] = runs
        if verbose:
            print(
                f"finetune {fraction:.0%}: accuracy {runs['accuracy']['mean']:.4f} +- {runs['accuracy']['std']:.4f}"
            )
    return results


def _finetune_run(backbone, images, labels, test, classes, seed, batch_size, kwargs):
    """One classifier fine-tuned on `(images, labels)` (class ids into
    `classes`) and scored on `test`: its record for `finetune_evaluation`.
    """
    model, info = finetune_classifier(backbone, images, labels, len(classes), seed=seed, **kwargs)
    logits = model.predict(UnitRangeBatches(test[0], batch_size=batch_size), verbose=0)
    accuracy, f1 = accuracy_and_f1(test[1], classes[np.argmax(logits, axis=1)])
    return {
        "accuracy": float(accuracy),
        "macro_f1": float(f1),
        "head_epoch": info["head_epoch"],
        "finetune_epoch": info["finetune_epoch"],
        "val_loss": info["val_loss"],
        "C": info["C"],
        "n_labelled": int(len(labels)),
    }
