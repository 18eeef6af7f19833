"""Fine-tuned classifiers, kept only where they beat the linear probe.

The protocol (`finetune_classifier`, `finetune_evaluation`):

1. **Cut.** The backbone is copied and cut in two (`split_backbone`): the
   bottom stays frozen, the top (by default every layer at the output's
   resolution: the last stage) is fine-tuned. The bottom's outputs of a few views of every
   image (the image, its mirror image, mild crops) are computed once and
   cached, so fine-tuning costs the top's steps only: minutes on a CPU.
2. **LP-FT.** The classifier starts as the linear probe (C by
   cross-validation, as in `linear_evaluation`) on the top's pooled
   features; then the top and the probe train together with Adam (the
   rate warmed up over the first epoch, then decayed to 0 by a cosine),
   batch norm in inference mode, each example seen through a random
   cached view.
3. **Cross-fitted, checked against the probe.** The labelled images are
   split into k stratified folds (3; never the test set); each fold's
   copy trains on the other folds for a fixed number of epochs, and it
   and that fold's probe classify the fold's images. Fine-tuning is kept
   only when the copies beat the probes on all labelled images, held out
   this way, by 1.645 standard errors of the paired difference
   (`accept_finetuning`); the classifier is then the committee of the k
   copies (softmax averaged), each checked on images it never trained on,
   so no classifier is kept that was not checked. Otherwise the classifier
   IS the linear probe on every label (with a message; `finetune_evaluation`
   then scores the very probe of `linear_evaluation`'s row). The folds
   train in turn, and once the copies so far show no gain over their
   probes the rest are skipped (`no_gain_yet`). Nothing is chosen
   among several fine-tuned candidates, so the check is not biased upwards
   by a choice (choosing the best of 10 epoch counts on 85 to 567 held-out
   labels was: see the fine-tuning results page).

Reference:
    Kumar et al., "Fine-Tuning can Distort Pretrained Features and
    Underperform Out-of-Distribution", ICLR 2022 (LP-FT: probe first, then
    fine-tune; batch norm frozen).
"""

import time

import keras
import numpy as np

from simclr_keras._checks import (
    check_choice,
    check_fractions,
    check_int,
    check_labelled_pair,
    check_labels,
    check_seeds,
    warn_unseen_classes,
)
from simclr_keras._images import check_images
from simclr_keras.backbones.split import UNFREEZE, split_backbone
from simclr_keras.evaluation.features import (
    UnitRangeBatches,
    extract_features,
    model_input_size,
)
from simclr_keras.evaluation.label_fractions import accuracy_and_f1, stratified_fraction, summarize
from simclr_keras.evaluation.linear_probe import (
    probe_predictions,
    select_linear_probe,
    solver_threads,
)
from simclr_keras.evaluation.result_cache import FORMAT, ResultCache, fingerprint
from simclr_keras.layers.random_resized_crop import RandomResizedCrop
from simclr_keras.model import SimCLR

# The defaults, chosen on the development sets' training labels (see the
# documentation's fine-tuning results page).
EPOCHS = 6
UNFREEZE_DEFAULT = "last_stage"
LEARNING_RATE = 1e-3
VIEWS = 4
OPTIMIZER = "adam"
OPTIMIZERS = ("adam", "sgd")
FOLDS = 3
Z = 1.645  # standard errors the held-out gain must clear (one-sided 5 %)
CROP_SCALE = (0.64, 1.0)  # mild crops: at least 80 % of each side
MAX_CACHE_BYTES = 2**30


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


def _probe(features, labels, num_classes, seed):
    """The linear probe on `features` as `(mean, variance, kernel, bias, C)`
    of a Normalization + Dense pair. A class absent from `labels` gets zero
    weights and a bias of -10 000, so it is never predicted.
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
    variance = np.where(scaler.scale_ > 0, scaler.scale_**2, 1.0)  # a constant feature stays 0
    return scaler.mean_, variance, kernel, bias, C


def _unfreeze_all_but_batch_norm(model):
    """Make every layer of `model` (nested models included) trainable except
    BatchNormalization, which is frozen so that it runs in inference mode. A
    saved backbone may carry frozen layers (pretrain saves its start so).
    """
    model.trainable = True
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            _unfreeze_all_but_batch_norm(layer)
        else:
            layer.trainable = not isinstance(layer, keras.layers.BatchNormalization)


def accept_finetuning(probe_correct, tuned_correct, z=Z):
    """Whether fine-tuning beats the probe on the same held-out images.

    Rule: with `d` = each image's correctness after fine-tuning minus its
    correctness under the probe (both trained without that image), accept
    when `mean(d) - z * std(d) / sqrt(n) > 0`: the gain is above zero by
    `z` standard errors of the paired difference (one-sided, 5 % at the
    default `z` = 1.645). Nothing is chosen among several fine-tuned
    candidates, so the held-out gain is not biased upwards by a choice.

    Args:
        probe_correct: `(n,)` booleans: each held-out image classified
            correctly by the probe.
        tuned_correct: `(n,)` booleans, the same images fine-tuned.
        z: Standard errors the mean gain must clear.

    Returns:
        `(gain, se, accepted)`: the mean paired gain, its standard error and
        the decision (never accepted with fewer than 2 images).

    Example:
    >>> probe = np.array([True] * 60 + [False] * 40)
    >>> tuned = np.array([True] * 80 + [False] * 20)
    >>> accept_finetuning(probe, tuned)[2]
    True
    >>> accept_finetuning(probe, probe)[2]
    False
    """
    probe = np.asarray(probe_correct, bool)
    tuned = np.asarray(tuned_correct, bool)
    if probe.shape != tuned.shape or probe.ndim != 1:
        raise ValueError(
            "`probe_correct` and `tuned_correct` must be 1-D and of one length. "
            f"Received: shapes {probe.shape} and {tuned.shape}"
        )
    if len(probe) < 2:
        return 0.0, float("inf"), False
    d = tuned.astype(float) - probe
    se = float(d.std(ddof=1) / np.sqrt(len(d)))
    gain = float(d.mean())
    return gain, se, bool(gain - z * se > 0)


def no_gain_yet(probe_correct, tuned_correct):
    """Whether the fold copies trained so far have not beaten their probes.

    `FineTuner.fit` then skips the remaining folds and keeps the probe: the
    check of `accept_finetuning` could pass only by a reversal on the
    folds left, so stopping keeps the probe a little more often and never
    accepts more.

    Args:
        probe_correct: Booleans: each held-out image so far classified
            correctly by its fold's probe.
        tuned_correct: The same images, by the fine-tuned copies.

    Returns:
        True when the copies' held-out accuracy is not above the probes'.

    Example:
    >>> no_gain_yet(np.array([True, False]), np.array([False, True]))
    True
    """
    return bool(np.mean(tuned_correct) <= np.mean(probe_correct))


def lr_at(step, steps, warmup_steps, peak):
    """The fine-tuning rate at `step` of `steps`: linear warm-up from 0 over
    `warmup_steps`, then a cosine decay to 0 at the last step.

    Example:
    >>> [round(lr_at(s, 6, 2, 1.0), 3) for s in range(6)]
    [0.5, 1.0, 1.0, 0.75, 0.25, 0.0]
    """
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    rest = max(steps - warmup_steps - 1, 1)
    return float(peak * 0.5 * (1.0 + np.cos(np.pi * min(step - warmup_steps, rest) / rest)))


class FineTuner:
    """A backbone cut for fine-tuning, with the cached views of its images.

    Holds a copy of the backbone (the original is never changed) split by
    `split_backbone` into a frozen bottom and a trainable top, and the
    bottom's outputs of `views` views of every image in `images`: view 0
    is the image, view 1 its mirror image, the others mild random crops
    (areas `CROP_SCALE`) mirrored half the time. `fit` then trains
    classifiers on any labelled subset of these images by the module's
    protocol; `predict` scores other images.

    Args:
        backbone: A `keras.Model` or a `SimCLR` (its preprocessing and input
            size are then used).
        images: `(n, H, W[, C])` images, uint8 or float in [0, 1].
        preprocessing: For a plain backbone, as in `extract_features`.
        image_size: For a plain backbone, as in `extract_features`.
        unfreeze: What is fine-tuned: `"last_stage"` (the default: every
            layer at the output's resolution), `"last_block"` (the last
            block at that resolution and what follows it: about 3 times
            faster, smaller gains) or `"all"` (the whole backbone, cached
            at its input: slow).
        views: Cached views per image (1: the images alone).
        seed: Seeds the crops.
        batch_size: Batch size of the caching passes and of training.
        max_cache_bytes: Fewer views are cached when `views` of them would
            take more memory than this.
        jit_compile: Passed to `compile` (False starts tiny models sooner).
        warmup: Raise the learning rate linearly from 0 over the first
            epoch of every training run.
        optimizer: `"adam"` or `"sgd"` (momentum 0.9) for the fine-tuning.
        verbose: Non-zero prints what was cut and cached.
    """

    def __init__(
        self,
        backbone,
        images,
        *,
        preprocessing=None,
        image_size=None,
        unfreeze=UNFREEZE_DEFAULT,
        views=VIEWS,
        seed=0,
        batch_size=64,
        max_cache_bytes=MAX_CACHE_BYTES,
        jit_compile="auto",
        warmup=True,
        optimizer=OPTIMIZER,
        verbose=0,
    ):
        check_choice(unfreeze, "unfreeze", UNFREEZE)
        check_choice(optimizer, "optimizer", OPTIMIZERS)
        self.optimizer = optimizer
        self.jit_compile = jit_compile
        self.warmup = bool(warmup)
        check_int(views, "views", minimum=1)
        net, preprocessing, image_size, channels, pooling = _unwrap(
            backbone, preprocessing, image_size
        )
        images = check_images(images)
        start = time.perf_counter()
        self.split = split_backbone(
            net,
            images.shape[1:],
            unfreeze=unfreeze,
            preprocessing=preprocessing,
            image_size=image_size,
            channels=channels,
            token_pooling=pooling,
        )
        self.batch_size = int(batch_size)
        self.start_weights = self.split.top.get_weights()
        self._models = {}
        per_view = len(images) * int(np.prod(self.split.cut_shape)) * 4  # float32
        self.views = max(1, min(int(views), int(max_cache_bytes // max(per_view, 1))))
        self.maps = self._cache(images, self.views, seed)
        self.features = self._features(self.maps[:, 0])
        if verbose:
            print(
                f"    fine-tuning {self.split.description}; {self.views} view(s) of "
                f"{len(images)} images through the frozen bottom in {time.perf_counter() - start:.1f} s",
                flush=True,
            )

    def _cache(self, images, views, seed):
        """`(n, views, *cut_shape)` float32 bottom outputs (float32, so that
        the probe on view 0 is the probe of `linear_evaluation`).
        """
        crop = RandomResizedCrop(*images.shape[1:3], scale=CROP_SCALE, flip=True, seed=seed)
        out = np.zeros((len(images), views) + tuple(self.split.cut_shape), "float32")
        chunk = 8 * self.batch_size
        for start in range(0, len(images), chunk):
            stop = min(start + chunk, len(images))
            x = UnitRangeBatches(images[start:stop], batch_size=stop - start)[0]
            if x.ndim == 3:
                x = x[..., None]
            for v in range(views):
                view = x if v == 0 else x[:, :, ::-1] if v == 1 else crop(x, training=True)
                out[start:stop, v] = self._predict(self.split.bottom, view)
        return out

    def _predict(self, model, inputs):
        """`model.predict` on inputs padded to whole batches: every call then
        has one input shape, and a compiled (XLA, JAX) prediction is not
        compiled again for each new remainder.
        """
        inputs = np.asarray(inputs)
        n = len(inputs)
        pad = -n % self.batch_size
        if pad:
            inputs = np.concatenate([inputs, np.repeat(inputs[-1:], pad, axis=0)])
        return np.asarray(model.predict(inputs, batch_size=self.batch_size, verbose=0))[:n]

    def maps_of(self, images):
        """The bottom's outputs of `images` (one view, no augmentation)."""
        return self._cache(check_images(images), 1, 0)[:, 0]

    def _features(self, maps):
        """Pooled features of the start's top on cached `maps`."""
        self.split.top.set_weights(self.start_weights)
        return np.asarray(self.split.top.predict(maps, batch_size=256, verbose=0), "float32")

    def _classifier(self, features, labels, num_classes, seed, learning_rate):
        """The classifier from cached maps to logits, reset to its start: the
        top's starting weights, then the linear probe fitted on `features`
        (a standardisation and a Dense layer). One Keras model per class
        count and rate is built and compiled, then reset for every fold, so
        nothing is traced or compiled again. Returns `(model, C)`.
        """
        mean, variance, kernel, bias, C = _probe(features, labels, num_classes, seed)
        key = (num_classes, float(learning_rate))
        if key not in self._models:
            inputs = keras.Input(self.split.cut_shape)
            # A layer's `training=False` in a functional graph does not hold
            # inside `fit`; a frozen BatchNormalization does run in
            # inference mode. So the top's batch norm keeps its statistics
            # (LP-FT), and the probe's standardisation is a frozen one
            # holding the probe's mean and variance (weights that can be
            # reset for every fold).
            _unfreeze_all_but_batch_norm(self.split.top)
            norm = keras.layers.BatchNormalization(
                center=False, scale=False, epsilon=0.0, name="feature_norm"
            )
            norm.trainable = False
            h = norm(self.split.top(inputs))
            logits = keras.layers.Dense(num_classes, name="classifier")(h)
            model = keras.Model(inputs, logits, name="finetuned_top")
            model.compile(
                optimizer=(
                    keras.optimizers.Adam(learning_rate)
                    if self.optimizer == "adam"
                    else keras.optimizers.SGD(learning_rate, momentum=0.9)
                ),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                jit_compile=self.jit_compile,
            )
            model.optimizer.build(model.trainable_variables)
            fresh = [keras.ops.convert_to_numpy(v) for v in model.optimizer.variables]
            self._models[key] = (model, fresh)
        model, fresh = self._models[key]
        self.split.top.set_weights(self.start_weights)
        model.get_layer("feature_norm").set_weights([mean, variance])
        model.get_layer("classifier").set_weights([kernel, bias])
        for variable, value in zip(model.optimizer.variables, fresh):
            variable.assign(value)
        return model, C

    def _train(self, model, idx, labels, epochs, seed, val_idx=None, curve=False):
        """Train `model` on the cached views of `idx` for `epochs` epochs (the
        rate warmed up over the first, then decayed to 0 by a cosine); before
        the first epoch and after the last (with `curve`, after every epoch)
        predict the un-augmented `val_idx`. Returns the `(2, len(val_idx))`
        (`(epochs + 1, ...)` with `curve`) predicted classes (empty without
        `val_idx`).
        """
        rng = np.random.default_rng(seed)
        per_epoch = -(-len(idx) // self.batch_size)
        steps = epochs * per_epoch
        warmup = per_epoch if self.warmup else 0
        preds = []
        if val_idx is not None:
            preds.append(self.predict_classes(model, self.maps[val_idx, 0]))
        variable = model.optimizer.learning_rate
        peak = float(keras.ops.convert_to_numpy(variable))
        step = 0
        for epoch in range(epochs):
            order = rng.permutation(len(idx))
            view = rng.integers(0, self.maps.shape[1], len(order))
            x, y = self.maps[idx[order], view], labels[order]
            for start in range(0, len(order), self.batch_size):
                # Warm-up: the probe's confident head at full rate at once
                # wrecks the top's features before it learns (held-out
                # accuracy fell from 0.72 to 0.38 in one epoch on CIFAR-10).
                variable.assign(lr_at(step, steps, warmup, peak))
                model.train_on_batch(
                    x[start : start + self.batch_size], y[start : start + self.batch_size]
                )
                step += 1
            if val_idx is not None and (curve or epoch == epochs - 1):
                preds.append(self.predict_classes(model, self.maps[val_idx, 0]))
        variable.assign(peak)
        return np.array(preds) if preds else np.zeros((0, 0), "int64")

    def predict_logits(self, model, maps):
        """Logits of `model` (from `fit`) for cached `maps` (`maps_of`): a
        committee's members average their softmax (returned as its log).
        """
        if not isinstance(model, Committee):
            return self._predict(model, maps)
        if len(model.members) == 1:
            model.model.set_weights(model.members[0])
            return self._predict(model.model, maps)
        probs = 0.0
        for weights in model.members:
            model.model.set_weights(weights)
            probs = probs + keras.ops.convert_to_numpy(
                keras.ops.softmax(self._predict(model.model, maps), axis=-1)
            )
        return np.log(np.maximum(probs / len(model.members), 1e-30))

    def predict_classes(self, model, maps):
        """Class ids `model` (from `fit`, or a Keras model of maps) predicts
        for cached `maps` (`maps_of`).
        """
        return np.argmax(self.predict_logits(model, maps), axis=1)

    def fit(
        self,
        idx,
        labels,
        num_classes,
        *,
        seed=0,
        epochs=EPOCHS,
        learning_rate=LEARNING_RATE,
        folds=FOLDS,
        z=Z,
        curve=False,
        fit_probe=True,
        verbose=0,
    ):
        """A classifier on the cached images `idx` with `labels`, by the protocol.

        Every fold of a stratified k-fold split of `idx` trains a fine-tuned
        copy (from the probe of its own training part, `epochs` epochs); each
        copy and that fold's probe classify the fold's held-out images. When
        the copies beat the probes on all of `idx` held out this way by the
        rule of `accept_finetuning`, the classifier is the committee of the
        k copies (each one checked on images it never trained on; their
        softmax averaged); otherwise it is the linear probe on every label.
        The folds train one after the other, and when the copies trained so
        far have not beaten their probes on their held-out images, the
        remaining folds are skipped and the probe kept (the check could then
        pass only by a reversal on the folds left; it can only keep the
        probe more often, never accept more).

        Args:
            idx: Indices into the images given to the constructor.
            labels: One int in `[0, num_classes)` per index.
            num_classes: Classifier outputs.
            seed: Seeds the folds, the probe's folds and the batch order.
            epochs: Fine-tuning epochs of every copy (0: the linear probe).
            learning_rate: Adam's peak rate for the top and the probe.
            folds: Folds, and copies in the committee (fewer when the
                smallest class has fewer labelled images; with one, nothing
                can be held out and the probe is kept).
            z: Standard errors of the paired held-out gain that fine-tuning
                must clear (`accept_finetuning`).
            curve: Also score the held-out images after every epoch (for
                studying the protocol; only the last epoch is judged).
            fit_probe: False: where the probe is kept, do not fit it on
                every label (the caller scores its own probe, as
                `finetune_evaluation` does); the classifier and C are then
                None.
            verbose: Non-zero prints the decision.

        Returns:
            `(model, info)`: a `Committee` of trained classifiers from cached
            maps to logits (`predict_classes`, `predict_logits`;
            `classifier` turns it into a Keras model of images) and
            `{"finetune_epoch", "kept", "cv_accuracy", "cv_gain", "cv_se",
            "C", "n_labelled", "folds", "reason"}`: the epochs of every copy
            (0: the probe), `"finetuned"` or `"probe"`, the held-out
            accuracy of the probes (index 0) and of the copies (last; after
            every epoch with `curve`), the paired gain and its standard
            error (on the folds trained), the probe's
            C (on every label; for a committee, the most frequent C of the
            folds' probes), and why the probe was kept.
        """
        from sklearn.model_selection import StratifiedKFold

        idx = np.asarray(idx)
        labels = check_labels(labels, len(idx))
        epochs = check_int(epochs, "epochs", minimum=0)
        counts = np.bincount(labels)
        k = int(min(folds, counts[counts > 0].min()))
        info = {"n_labelled": int(len(idx)), "folds": k, "cv_accuracy": None}
        if k < 2 or epochs == 0:
            info["reason"] = (
                "no fine-tuning epochs asked for"
                if epochs == 0
                else "a class has a single labelled image, so nothing can be held out"
            )
            return self._keep_probe(
                idx, labels, num_classes, seed, learning_rate, info, verbose, fit_probe
            )
        columns, members, cs = [], [], []
        split = StratifiedKFold(k, shuffle=True, random_state=seed)
        for fold, (tr, va) in enumerate(split.split(np.zeros(len(idx)), labels)):
            model, c = self._classifier(
                self.features[idx[tr]], labels[tr], num_classes, seed, learning_rate
            )
            preds = self._train(model, idx[tr], labels[tr], epochs, seed, idx[va], curve)
            columns.append(preds == labels[va])
            members.append(model.get_weights())
            cs.append(c)
            correct = np.concatenate(columns, axis=1)
            if fold < k - 1 and no_gain_yet(correct[0], correct[-1]):
                break
        gain, se, accepted = accept_finetuning(correct[0], correct[-1], z)
        accuracy = correct.mean(axis=1)
        info.update(
            n_held_out=int(correct.shape[1]),
            cv_accuracy=[round(float(a), 6) for a in accuracy],
            cv_gain=round(gain, 6),
            cv_se=round(se, 6),
        )
        if len(members) < k:
            accepted = False
            info["reason"] = (
                f"after {len(members)} of {k} folds fine-tuning scored {accuracy[-1]:.3f} against "
                f"the probe's {accuracy[0]:.3f} on {correct.shape[1]} held-out labels: no gain, "
                "so the remaining folds were not trained"
            )
        elif not accepted:
            info["reason"] = (
                f"fine-tuning scored {accuracy[-1]:.3f} against the probe's {accuracy[0]:.3f} "
                f"on {correct.shape[1]} held-out labels ({gain:+.3f} +- {se:.3f}): not above it "
                f"by {z:g} standard errors"
            )
        if not accepted:
            return self._keep_probe(
                idx, labels, num_classes, seed, learning_rate, info, verbose, fit_probe
            )
        info["C"] = max(set(cs), key=cs.count)  # the folds' probes' most frequent C
        info.update(finetune_epoch=epochs, kept="finetuned", reason="")
        if verbose:
            print(
                f"    fine-tuned ({k} copies, {epochs} epochs): held-out accuracy "
                f"{accuracy[-1]:.3f} against the probe's {accuracy[0]:.3f} on "
                f"{correct.shape[1]} labels ({gain:+.3f} +- {se:.3f})",
                flush=True,
            )
        return Committee(model, members), info

    def _keep_probe(self, idx, labels, num_classes, seed, learning_rate, info, verbose, fit_probe):
        info.update(finetune_epoch=0, kept="probe", C=None)
        if verbose:
            print(f"    kept the linear probe: {info['reason']}", flush=True)
        if not fit_probe:
            return None, info
        model, info["C"] = self._classifier(
            self.features[idx], labels, num_classes, seed, learning_rate
        )
        return Committee(model, [model.get_weights()]), info

    def classifier(self, model):
        """A Keras model from [0, 1] images (of the constructor's shape) to
        logits: the frozen bottom, then `model` (from `fit`; a committee's
        copies average their softmax, returned as its log).
        """
        inputs = keras.Input(self.split.image_shape)
        maps = self.split.bottom(inputs, training=False)
        heads = []
        for i, weights in enumerate(model.members):
            head = keras.models.clone_model(model.model)
            head.name = f"finetuned_top_{i}" if len(model.members) > 1 else "finetuned_top"
            head.set_weights(weights)
            heads.append(head(maps))
        if len(heads) == 1:
            return keras.Model(inputs, heads[0], name="finetuned_classifier")
        probs = keras.layers.Average()([keras.layers.Softmax()(h) for h in heads])
        logits = keras.ops.log(keras.ops.maximum(probs, 1e-30))
        return keras.Model(inputs, logits, name="finetuned_classifier")


class Committee:
    """The classifier `FineTuner.fit` returns: one or several weight sets of
    one Keras model from cached maps to logits.

    Args:
        model: The `FineTuner`'s Keras model the weights belong to.
        members: A list of weight lists (`model.get_weights()`): one for the
            linear probe, one per fold's fine-tuned copy otherwise.
    """

    def __init__(self, model, members):
        self.model = model
        self.members = list(members)


def finetune_classifier(
    backbone,
    images,
    labels,
    num_classes,
    *,
    seed=0,
    preprocessing=None,
    image_size=None,
    unfreeze=UNFREEZE_DEFAULT,
    epochs=EPOCHS,
    learning_rate=LEARNING_RATE,
    views=VIEWS,
    folds=FOLDS,
    z=Z,
    batch_size=64,
    jit_compile="auto",
    verbose=0,
):
    """Train a classifier on a copy of the backbone, from a labelled subset only.

    The module's protocol (see its docstring): the copy is cut, its bottom's
    outputs of a few views of `images` cached, and the top of one copy per
    fold of a stratified split of `images` fine-tuned from the linear
    probe; the committee of these copies is returned when they beat the
    fold's probes on the images they did not train on, the linear probe on
    every label otherwise. `backbone` is never changed.

    Args:
        backbone: A `keras.Model` or a `SimCLR` (its preprocessing and input
            size are then used).
        images: Labelled `(n, H, W[, C])` images, uint8 or float [0, 1].
        labels: Ints in `[0, num_classes)`.
        num_classes: Classifier outputs.
        seed: Seeds the crops, the folds and the batch order.
        preprocessing: For a plain backbone, as in `extract_features`.
        image_size: For a plain backbone, as in `extract_features`.
        unfreeze: `"last_block"`, `"last_stage"` or `"all"` (see `FineTuner`).
        epochs: Fine-tuning epochs of every copy (0: the linear probe).
        learning_rate: Adam's peak learning rate.
        views: Cached views per image (see `FineTuner`).
        folds: Folds of the cross-fitting (copies in the committee).
        z: Standard errors the held-out gain must clear (`accept_finetuning`).
        batch_size: Training batch size.
        jit_compile: Passed to `compile`.
        verbose: Non-zero prints the cut and the choice.

    Returns:
        `(classifier, info)`: a Keras model from [0, 1] images to logits and
        the choice (see `FineTuner.fit`).

    Example:
    >>> x = np.random.default_rng(0).integers(0, 256, (24, 16, 16, 3), "uint8")
    >>> y = np.arange(24) % 2
    >>> net = keras.Sequential([keras.Input((16, 16, 3)),
    ...                         keras.layers.Conv2D(4, 3, strides=2),
    ...                         keras.layers.Conv2D(4, 3)])
    >>> model, info = finetune_classifier(net, x, y, 2, epochs=1, views=1)
    >>> model.predict(x / 255.0, verbose=0).shape, info["kept"] in ("probe", "finetuned")
    ((24, 2), True)

    Reference:
        Kumar et al., "Fine-Tuning can Distort Pretrained Features and
        Underperform Out-of-Distribution", ICLR 2022 (LP-FT).
    """
    images = check_images(images)
    labels = check_labels(labels, len(images))
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(
            "`labels` must hold one int in [0, num_classes) per image. Received: "
            f"{len(labels)} labels in [{labels.min()}, {labels.max()}] for "
            f"{len(images)} images and num_classes={num_classes}"
        )
    tuner = FineTuner(
        backbone,
        images,
        preprocessing=preprocessing,
        image_size=image_size,
        unfreeze=unfreeze,
        views=views,
        seed=seed,
        batch_size=batch_size,
        jit_compile=jit_compile,
        verbose=verbose,
    )
    model, info = tuner.fit(
        np.arange(len(images)),
        labels,
        num_classes,
        seed=seed,
        epochs=epochs,
        learning_rate=learning_rate,
        folds=folds,
        z=z,
        verbose=verbose,
    )
    return tuner.classifier(model), info


RECORD_KEYS = ("accuracy", "macro_f1", "finetune_epoch", "kept", "C", "n_labelled", "cv_gain")
TUNER_KEYS = ("unfreeze", "views", "batch_size", "jit_compile", "warmup", "optimizer")
FIT_KEYS = ("epochs", "learning_rate", "folds", "z")


def finetune_evaluation(
    backbone,
    train,
    test,
    fractions=(0.05, 0.2, 1.0),
    seeds=(0, 1, 2),
    predict_batch_size=256,
    verbose=0,
    cache_dir=None,
    preprocessing=None,
    image_size=None,
    probe_features=None,
    probe_kwargs=None,
    **kwargs,
):
    """Fine-tuned accuracy and macro-F1 per label fraction, mean +- std over seeds.

    The backbone is cut and the views of every training image cached once
    (`FineTuner`); each fraction and seed then trains on its labelled
    subset only (`FineTuner.fit`: the linear probe unless the fold copies'
    committee beats it on that subset's images held out from them). Where
    the probe is kept, its row is `linear_evaluation`'s probe on the same
    draw, on the whole backbone's pooled features (`probe_features`), so
    a kept probe scores exactly what the linear row scores.

    Args:
        backbone: A `keras.Model` or a `SimCLR`; never changed.
        train: `(images, labels)`; each run uses `stratified_fraction` of it.
        test: `(images, labels)`, used only to score the trained classifiers.
        fractions: Label fractions in (0, 1], as in `linear_evaluation`.
        seeds: One run per seed, as in `linear_evaluation`.
        predict_batch_size: Kept for compatibility; scoring uses the cache.
        verbose: 1 prints the cut, one line per fraction and seed (the
            choice, time) and one per fraction.
        cache_dir: Optional folder keeping each run's record (one JSON file
            per fraction and seed, see `ResultCache`). A run whose backbone
            weights, images, labels, fraction, seed, settings and Keras
            backend match a record is not trained again.
        preprocessing: For a plain backbone, as in `extract_features`.
        image_size: For a plain backbone, as in `extract_features`.
        probe_features: Optional `(train_features, test_features)` of the
            pooled backbone (`extract_features(backbone, images)`), the
            features the linear rows were scored on; extracted here when
            None (only when a probe is kept).
        probe_kwargs: `Cs` and `max_folds` of that probe, as given to
            `linear_evaluation` (its defaults otherwise).
        **kwargs: `unfreeze`, `views`, `batch_size`, `jit_compile`, `warmup`
            (see `FineTuner`) and
            `epochs`, `learning_rate`, `folds`, `z` (see `FineTuner.fit`).

    Returns:
        `{fraction: {"accuracy", "macro_f1", "finetune_epoch", "kept", "C",
        "n_labelled", "cv_gain", "seeds"}}` as in `linear_evaluation` (the choices per
        seed; a seed that draws the same labels as an earlier one, as every
        seed does at 100 %, is trained once).

    Example:
    >>> results = finetune_evaluation(backbone, (x_tr, y_tr), (x_te, y_te),
    ...                               cache_dir="finetune_cache")  # doctest: +SKIP
    >>> results[0.05]["accuracy"]["mean"]                          # doctest: +SKIP
    """
    unknown = set(kwargs) - set(TUNER_KEYS) - set(FIT_KEYS)
    if unknown:
        raise TypeError(
            f"finetune_evaluation() got unexpected keyword arguments {sorted(unknown)}; "
            "it takes unfreeze, views, batch_size, jit_compile, warmup, epochs, learning_rate, "
            "folds and z"
        )
    channels = _unwrap(backbone)[3] if isinstance(backbone, keras.Model) else None
    x_train, y_train = check_labelled_pair(train, "train", min_classes=2)
    x_test, y_test = check_labelled_pair(test, "test")
    x_train = check_images(x_train, "train[0]", channels, allow_grey=True)
    x_test = check_images(x_test, "test[0]", channels, allow_grey=True)
    fractions, seeds = check_fractions(fractions), check_seeds(seeds)
    warn_unseen_classes(y_train, y_test)
    settings = {"preprocessing": preprocessing, "image_size": image_size, **kwargs}
    probe = {"features": probe_features, "kwargs": dict(probe_kwargs or {})}
    cache = None if cache_dir is None else ResultCache(cache_dir, "finetune")
    key = None
    if cache is not None:  # one digest of the model and data; each run adds its fraction and seed
        key = _cache_key(backbone, (x_train, y_train, x_test, y_test), settings, probe["kwargs"])
    classes = np.unique(y_train)
    y_index = np.searchsorted(classes, y_train)
    runs = _Runs(backbone, x_train, x_test, settings, probe, predict_batch_size, verbose)
    results = {}
    for fraction in fractions:
        rows, seen = {k: [] for k in RECORD_KEYS + ("seeds",)}, set()
        for seed in seeds:
            start = time.perf_counter()
            idx = stratified_fraction(y_index, fraction, seed)
            if idx.tobytes() in seen:
                continue  # the same labelled subset as an earlier seed (100 %)
            seen.add(idx.tobytes())
            rows["seeds"].append(int(seed))
            run_key = None if cache is None else fingerprint(key, float(fraction), int(seed))
            record = None if cache is None else cache.get(run_key)
            if record is None or not set(RECORD_KEYS) <= set(record):
                record = runs.record(idx, y_train, y_test, classes, seed)
                if cache is not None:
                    cache.put(run_key, record)
                how = f"{time.perf_counter() - start:.1f} s"
            else:
                how = f"cached: {cache.path(run_key)}"
            for k in RECORD_KEYS:
                rows[k].append(record[k])
            if verbose:
                print(
                    f"  finetune {fraction:.0%} seed {seed}: {record['n_labelled']} labels, "
                    + (
                        f"fine-tuned {record['finetune_epoch']} epochs (the fold copies' committee)"
                        if record["kept"] == "finetuned"
                        else "kept the linear probe"
                    )
                    + f", accuracy {record['accuracy']:.4f} ({how})",
                    flush=True,
                )
        rows["accuracy"], rows["macro_f1"] = (
            summarize(rows["accuracy"]),
            summarize(rows["macro_f1"]),
        )
        results[float(fraction)] = rows
        if verbose:
            same = " (every seed draws the same labels)" if len(seen) < len(seeds) else ""
            print(
                f"finetune {fraction:.0%}: accuracy {rows['accuracy']['mean']:.4f} "
                f"+- {rows['accuracy']['std']:.4f}{same}",
                flush=True,
            )
    return results


def _cache_key(backbone, data, settings, probe_kwargs):
    """The digest of the backbone's weights and input scaling, the data, the
    settings and the Keras backend (`ResultCache`); runs add fraction and seed.
    """
    model = backbone.base_model if isinstance(backbone, SimCLR) else backbone
    return fingerprint(
        FORMAT,
        keras.backend.backend(),
        model,
        _unwrap(backbone, settings["preprocessing"], settings["image_size"])[1:],
        *(np.asarray(part) for part in data),
        settings,
        probe_kwargs,
    )


class _Runs:
    """The `FineTuner` of `finetune_evaluation`, made on the first run that
    is not read from the cache (a fully cached evaluation cuts nothing).
    """

    def __init__(self, backbone, x_train, x_test, settings, probe, predict_batch_size, verbose):
        self.backbone, self.x_train, self.x_test = backbone, x_train, x_test
        self.settings, self.verbose = settings, verbose
        self.tuner = self.test_maps = None
        self.probe_features, self.probe_kwargs = probe["features"], probe["kwargs"]
        self.predict_batch_size = predict_batch_size

    def kept_probe(self, idx, y_train, seed):
        """`linear_evaluation`'s probe on the draw `idx`: `(test predictions, C)`."""
        from threadpoolctl import threadpool_limits

        if self.probe_features is None:
            prep = {
                k: self.settings[k] for k in ("preprocessing", "image_size") if k in self.settings
            }
            if isinstance(self.backbone, SimCLR):
                prep = {}
            self.probe_features = tuple(
                extract_features(
                    self.backbone, x, batch_size=self.predict_batch_size, verbose=0, **prep
                )
                for x in (self.x_train, self.x_test)
            )
        f_train, f_test = self.probe_features
        with threadpool_limits(solver_threads(*f_train.shape)):
            return probe_predictions(f_train, y_train, f_test, idx, seed, **self.probe_kwargs)

    def record(self, idx, y_train, y_test, classes, seed):
        """Train on the cached training images `idx`; score on the test set."""
        labels = np.searchsorted(classes, y_train[idx])
        if self.tuner is None:
            tuner_kwargs = {k: self.settings[k] for k in TUNER_KEYS if k in self.settings}
            self.tuner = FineTuner(
                self.backbone,
                self.x_train,
                preprocessing=self.settings["preprocessing"],
                image_size=self.settings["image_size"],
                verbose=self.verbose,
                **tuner_kwargs,
            )
            self.test_maps = self.tuner.maps_of(self.x_test)
        fit_kwargs = {k: self.settings[k] for k in FIT_KEYS if k in self.settings}
        model, info = self.tuner.fit(
            idx,
            labels,
            len(classes),
            seed=seed,
            fit_probe=False,
            verbose=self.verbose,
            **fit_kwargs,
        )
        if info["kept"] == "probe":
            predicted, info["C"] = self.kept_probe(idx, y_train, seed)
        else:
            predicted = classes[self.tuner.predict_classes(model, self.test_maps)]
        accuracy, f1 = accuracy_and_f1(y_test, predicted)
        return {
            "accuracy": float(accuracy),
            "macro_f1": float(f1),
            "finetune_epoch": info["finetune_epoch"],
            "kept": info["kept"],
            "C": info["C"],
            "n_labelled": info["n_labelled"],
            "cv_gain": info.get("cv_gain"),
        }
