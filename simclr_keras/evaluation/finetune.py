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
    head_epochs=20,
    finetune_epochs=20,
    head_learning_rate=1e-3,
    finetune_learning_rate=1e-4,
    patience=5,
    augment=False,
    jit_compile="auto",
    verbose=0,
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
        preprocessing: For a plain backbone, as in `extract_features`.
        image_size: For a plain backbone, as in `extract_features`.
        val_fraction: Per-class share of `images` held out for early stopping
            (rounded half up, at least one for classes with two or more).
        batch_size: Training batch size.
        head_epochs: At most this many epochs of the head alone.
        finetune_epochs: At most this many epochs of the whole classifier
            (0 gives a frozen-backbone classifier).
        head_learning_rate: Adam learning rate of the head stage.
        finetune_learning_rate: Adam learning rate of the fine-tuning stage.
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
    copy = snapshot_backbone(backbone_spec.single_output_model(net, spec))
    train_idx, val_idx = _validation_split(labels, val_fraction, seed)
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
    train = UnitRangeBatches(x[train_idx], labels[train_idx], batch_size, shuffle=True, seed=seed)
    # Standardise the features with the training split's statistics, as the
    # linear probe does: raw pooled features can be tiny and a plain Dense
    # head then barely moves in a few epochs.
    features = keras.Model(inputs, h).predict(
        UnitRangeBatches(x[train_idx], batch_size=batch_size), verbose=0
    )
    h = keras.layers.Normalization(
        mean=features.mean(0), variance=features.var(0) + 1e-6, name="feature_norm"
    )(h)
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
            model.set_weights(kept)  # fine-tuning did not help: keep the head-only model
        else:
            info[f"{stage}_epoch"], info["val_loss"] = int(stop.best_epoch + 1), float(stop.best)
    return model, info


def finetune_evaluation(
    backbone,
    train,
    test,
    fractions=(0.05, 0.2, 1.0),
    seeds=(0, 1, 2),
    predict_batch_size=256,
    verbose=0,
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
        verbose: 1 prints one line per fraction and seed (best epochs, time)
            and one per fraction.
        **kwargs: Passed to `finetune_classifier` (e.g. `batch_size`,
            `head_epochs`, `finetune_epochs`).

    Returns:
        `{fraction: {"accuracy", "macro_f1", "head_epoch", "finetune_epoch",
        "val_loss", "n_labelled"}}` as in `linear_evaluation` (the model
        selection records per seed, see `finetune_classifier`).
    """
    channels = _unwrap(backbone)[3] if isinstance(backbone, keras.Model) else None
    x_train, y_train = check_labelled_pair(train, "train", min_classes=2)
    x_test, y_test = check_labelled_pair(test, "test")
    train = (check_images(x_train, "train[0]", channels, allow_grey=True), y_train)
    test = (check_images(x_test, "test[0]", channels, allow_grey=True), y_test)
    fractions, seeds = check_fractions(fractions), check_seeds(seeds)
    warn_unseen_classes(y_train, y_test)
    classes = np.unique(y_train)
    y_train = np.searchsorted(classes, y_train)
    results = {}
    for fraction in fractions:
        runs = {
            key: []
            for key in (
                "accuracy",
                "macro_f1",
                "head_epoch",
                "finetune_epoch",
                "val_loss",
                "n_labelled",
            )
        }
        for seed in seeds:
            start = time.perf_counter()
            idx = stratified_fraction(y_train, fraction, seed)
            model, info = finetune_classifier(
                backbone, train[0][idx], y_train[idx], len(classes), seed=seed, **kwargs
            )
            logits = model.predict(
                UnitRangeBatches(test[0], batch_size=predict_batch_size), verbose=0
            )
            a, f = accuracy_and_f1(y_test, classes[np.argmax(logits, axis=1)])
            for key, value in (
                ("accuracy", a),
                ("macro_f1", f),
                ("head_epoch", info["head_epoch"]),
                ("finetune_epoch", info["finetune_epoch"]),
                ("val_loss", info["val_loss"]),
                ("n_labelled", int(idx.size)),
            ):
                runs[key].append(value)
            if verbose:
                print(
                    f"  finetune {fraction:.0%} seed {seed}: {idx.size} labels, best epochs "
                    f"head {info['head_epoch']} / fine-tune {info['finetune_epoch']}, "
                    f"accuracy {a:.4f} ({time.perf_counter() - start:.1f} s)",
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
