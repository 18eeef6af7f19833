"""The never-worse guard: score the backbone every epoch, keep what beat the start.

Continued self-supervised training of a pretrained backbone can make its
features worse, and the best length of such a run varies a hundredfold
between data sets (Reed et al. 2022), so the result has to be chosen.
`BackboneGuard` scores the backbone's pooled features before the first
epoch (the start) and after every epoch. With class labels it estimates,
on the labelled training images alone, what `evaluate` will report: the
linear-probe accuracy at 5, 20 and 100 % of the labels, by repeated
stratified cross-validation on the same splits for every candidate, so each
candidate is compared with the start split by split (`label_budgets`). A
candidate counts only when it is not worse than the start at *any* budget
beyond the measured noise. When training ends it also tries the start and
the highest-scoring epoch mixed in weight space (WiSE-FT) and puts the best
accepted candidate into the backbone; with none accepted the start comes
back unchanged.
"""

import hashlib
import json
import os
import warnings

import keras
import numpy as np

from simclr_keras._atomic import atomic_save_arrays, atomic_write_json, load_arrays
from simclr_keras._checks import check_fraction, check_int, check_number
from simclr_keras._images import check_images
from simclr_keras.backbones.interpolation import interpolate_weights
from simclr_keras.callbacks.resumable_checkpoint import checkpoint_dir
from simclr_keras.evaluation.features import UnitRangeBatches, feature_model
from simclr_keras.evaluation.knn import knn_accuracy, split_bank_queries
from simclr_keras.evaluation.label_budgets import (
    BUDGETS,
    budget_scores,
    budget_splits,
    paired_comparison,
    per_budget,
)
from simclr_keras.evaluation.label_free import LABEL_FREE_SCORES
from simclr_keras.evaluation.linear_probe import select_linear_probe
from simclr_keras_rules.guard_scores import LABELLED_SCORES, SCORES

STATE_FILE = "guard.json"
# Keys in `logs` (the kNN value under KNNMonitor's name, so plots find it).
LOG_KEYS = {
    "budgets": "guard_linear_mean",
    "knn": "knn_acc",
    "linear": "linear_acc",
    "knn+linear": "guard_knn_linear",
}
WEIGHT_FILES = {
    "start": "start_backbone.npz",
    "best": "best_backbone.npz",
    "top": "top_backbone.npz",
}
MIX_ALPHAS = (0.25, 0.5, 0.75)
SCORE_NAMES = {
    "budgets": "mean linear-probe accuracy over the label budgets",
    "knn": "kNN accuracy",
    "linear": "linear-probe accuracy",
    "knn+linear": "mean of kNN and linear-probe accuracy",
    "rankme": "RankMe (effective rank)",
    "alpha_req": "alpha-ReQ score -|alpha - 1|",
    "uniformity": "uniformity score",
}


def labelled_scores(features, labels, bank, queries, k=20, seed=0):
    """The kNN and linear-probe accuracy of held-out labelled features.

    The memory bank / probe training set is `features[bank]`, the queries
    `features[queries]`; the probe's C is chosen on the bank only.

    Args:
        features: `(N, d)` features.
        labels: `(N,)` labels.
        bank: Indices of the bank (probe training) images.
        queries: Indices of the scored images.
        k: kNN neighbours.
        seed: Seed of the probe's cross-validation folds.

    Returns:
        `{"knn": float, "linear": float, "knn+linear": float}`.
    """
    f_bank, f_query = features[bank], features[queries]
    knn = knn_accuracy(f_bank, labels[bank], f_query, labels[queries], k=k)
    probe, _ = select_linear_probe(
        f_bank, labels[bank], Cs=(0.01, 0.1, 1.0), max_folds=3, seed=seed
    )
    linear = float(np.mean(probe.predict(f_query) == labels[queries]))
    return {"knn": knn, "linear": linear, "knn+linear": (knn + linear) / 2}


def _percent(budget):
    return f"{budget * 100:g} %"


def _budget_key(budget):
    return f"guard_linear_{budget * 100:g}pct"


class BackboneGuard(keras.callbacks.Callback):
    """Keep what beat the start at every label budget, never a worse backbone.

    Before the first epoch and after every epoch it extracts the backbone's
    pooled features of `images` (no augmentation, the model's input scaling)
    and scores them.

    With `labels` (the default score `"budgets"`), the score estimates what
    a linear probe reaches at each of `budgets` (fractions of the labelled
    images, as `evaluate` reports them): `repeats` x `folds`-fold stratified
    cross-validation over all the guard's images, the probe trained on the
    budget's share of the other folds and scored on the held-out fold; every
    candidate is scored on the same splits as the start. A candidate is
    **accepted** when at every budget its mean paired difference from the
    start `m` and its standard error `se` satisfy `m + noise_z * se >= 0`
    and `m >= -max_drop` (`label_budgets.paired_comparison`); among accepted
    candidates the one with the highest mean accuracy over the budgets wins
    (by more than `min_delta`). When `fit()` ends, the start and the
    highest-scoring epoch (accepted or not) are mixed in weight space at
    each of `interpolation` (WiSE-FT), each mix is scored and accepted by
    the same rule, and the winner goes into the backbone (`restore_best`).
    With no candidate accepted the result is the start, unchanged, and the
    summary says so.

    The other scores keep one number per epoch: `"knn"`, `"linear"`,
    `"knn+linear"` (one stratified bank/query split, `query_fraction`) and,
    without labels, a label-free score (RankMe by default); the best epoch
    wins when it beats the start by more than `min_delta` (no mixing
    without labels: a label-free score cannot tell which mix classifies
    better).

    It resumes with the run: with `directory` (default: a `guard` folder in
    the checkpoint folder of `model.save_path`, so `SimCLR(save_path=...)`
    runs need nothing else), its scores and the start, best and
    highest-scoring weights are written atomically after every epoch, and a
    resumed `fit()` reads them back instead of taking the resumed weights as
    a new start. A damaged state (a truncated file, another backbone's
    weights) is ignored with a warning.

    What it cannot promise: the held-out *test* images are other images, so
    a gain within the noise here can still be a small loss there; and with
    few labelled images per class the 5 % budget is a probe on one or two
    images per class, so its estimate is rough (the rule then leans on
    `max_drop`).

    Args:
        images: Images `(N, H, W, C)`, uint8 or float in [0, 1], e.g. the
            training images.
        labels: Optional `(N,)` labels (e.g. class folders of the training
            images); none means a label-free score.
        score: `"auto"` (`"budgets"` with labels, `"rankme"` without),
            `"budgets"`, `"knn"`, `"linear"`, `"knn+linear"`, `"rankme"`,
            `"alpha_req"` or `"uniformity"`.
        directory: Folder for the resumable state, or None (see above).
        min_delta: A candidate must beat the best so far by more than this.
        restore_best: Put the result's weights into the backbone at the end
            (else the last epoch's stay).
        query_fraction: Share of labelled images scored as queries by the
            single-split scores (`"knn"`, `"linear"`, `"knn+linear"`).
        max_images: Images used at most (a seeded, stratified-when-labelled
            subsample); with labels at least 2 per class.
        log_scores: Extra scores computed from the same features and
            written into `logs` as `guard_<name>` (e.g. `("rankme",)`).
        batch_size: Images per forward pass.
        seed: Seed of the subsample and the splits.
        verbose: 1 prints a line per candidate (and the summary, see below).
        print_summary: With `verbose`, print `summary()` when training
            ends (False when the caller prints it itself, as the CLI does
            in its final message).
        budgets: Label fractions of the `"budgets"` score.
        folds: Cross-validation folds of the `"budgets"` score.
        repeats: Reshuffled repetitions of the folds.
        max_drop: Largest mean accuracy loss against the start tolerated at
            any budget (0.005: half a point).
        noise_z: Standard errors of the paired difference tolerated.
        interpolation: Mixing weights `alpha` tried between the start
            (0) and the highest-scoring epoch (1) when training ends; `()`
            turns mixing off.
        holdout: Optional `(N,)` booleans marking images that `fit()` does
            **not** train on. With it, only those images are scored (cut
            into `folds` parts) and the probes train on the budget's share
            of the others, as `evaluate` scores held-out test images. Use
            it: features of images SimCLR trained on improve more than
            those of new images, so scoring the training images favours
            every trained candidate (`simclr-keras pretrain` holds out
            `--guard-holdout` of the training images for this).

    Returns:
        A `keras.callbacks.Callback`. After `fit()`: `scores` (`{epoch:
        score}`, 0 = the start), `best_epoch`, `result` (`{"epoch": e,
        "alpha": a}`, alpha None for an epoch's own weights), `mix_scores`,
        `comparisons`, `summary()`, `best_weights`, `last_weights`,
        `start_weights`.

    Example:
    >>> guard = BackboneGuard(x_train, y_train)            # doctest: +SKIP
    >>> simclr.fit(x_train, epochs=10, callbacks=[guard])  # doctest: +SKIP
    >>> print(guard.summary())                             # doctest: +SKIP

    Reference:
        Wortsman et al., "Robust fine-tuning of zero-shot models" (WiSE-FT),
        CVPR 2022; Reed et al., "Self-Supervised Pretraining Improves
        Self-Supervised Pretraining", WACV 2022 (the best length varies with
        the data); Garrido et al., "RankMe", ICML 2023 (label-free).
    """

    def __init__(
        self,
        images,
        labels=None,
        score="auto",
        directory=None,
        min_delta=0.0,
        restore_best=True,
        query_fraction=0.3,
        max_images=2000,
        log_scores=(),
        batch_size=128,
        seed=0,
        verbose=1,
        print_summary=True,
        budgets=BUDGETS,
        folds=5,
        repeats=2,
        max_drop=0.005,
        noise_z=1.0,
        interpolation=MIX_ALPHAS,
        holdout=None,
    ):
        super().__init__()
        images = np.asarray(images)
        if images.ndim == 3:
            images = images[..., None]
        if images.ndim != 4:
            raise ValueError(
                f"`images` must be (N, H, W, C) or (N, H, W). Received: shape {images.shape}"
            )
        check_images(images, "images")
        check_int(max_images, "max_images", minimum=2)
        check_int(batch_size, "batch_size", minimum=1)
        check_int(seed, "seed", minimum=0)
        check_number(min_delta, "min_delta", minimum=0)
        self.max_drop = check_number(max_drop, "max_drop", minimum=0)
        self.noise_z = check_number(noise_z, "noise_z", minimum=0)
        self.interpolation = tuple(
            check_number(a, "interpolation", minimum=0, maximum=1, why="(mixing weights)")
            for a in interpolation
        )
        if score == "auto":
            score = "rankme" if labels is None else "budgets"
        if score not in SCORES:
            raise ValueError(
                f"`score` must be 'auto' or one of {SCORES}. Received: score={score!r}"
            )
        for extra in log_scores:
            if extra not in SCORES or extra == "budgets":
                raise ValueError(
                    f"`log_scores` must list names among {SCORES[1:]}. Received: {extra!r}"
                )
        self.splits = None
        if holdout is not None:
            holdout = np.asarray(holdout)
            if labels is None or holdout.dtype != bool or holdout.shape != (len(images),):
                raise ValueError(
                    "`holdout` must be None or, with `labels`, a boolean mask with one value "
                    f"per image ({len(images)}). Received: holdout of shape {holdout.shape} "
                    f"and dtype {holdout.dtype}" + (" with labels=None" if labels is None else "")
                )
        if labels is not None:
            images, labels, holdout = self._labelled_subsample(
                images, labels, max_images, seed, holdout
            )
            if score == "budgets":
                self.splits = budget_splits(labels, budgets, folds, repeats, seed, holdout)
            if score != "budgets" or any(s in LABELLED_SCORES for s in log_scores):
                check_fraction(query_fraction, "query_fraction", allow_one=False)
                self.bank, self.queries = split_bank_queries(labels, query_fraction, seed)
        else:
            needs = [s for s in (score, *log_scores) if s in LABELLED_SCORES]
            if needs:
                raise ValueError(
                    f"The score {needs[0]!r} needs `labels`; without labels use one of "
                    f"{tuple(LABEL_FREE_SCORES)}. Received: labels=None"
                )
            if len(images) > max_images:
                rng = np.random.default_rng(seed)
                images = images[np.sort(rng.choice(len(images), max_images, replace=False))]
        self.images, self.labels = images, labels
        self.score_name = score
        self.directory = None if directory is None else os.fspath(directory)
        self.min_delta = float(min_delta)
        self.restore_best = bool(restore_best)
        self.log_scores = tuple(log_scores)
        self.batch_size = batch_size
        self.seed = seed
        self.verbose = verbose
        self.print_summary = bool(print_summary)
        self._reset()

    @staticmethod
    def _labelled_subsample(images, labels, max_images, seed, holdout=None):
        """Check the labels; keep at most `max_images`, stratified (every
        held-out image is kept; the others are subsampled).
        """
        labels = np.asarray(labels)
        if labels.shape != (len(images),):
            raise ValueError(
                f"`labels` must hold one label per image ({len(images)}). "
                f"Received: shape {labels.shape}"
            )
        classes, counts = np.unique(labels, return_counts=True)
        if len(classes) < 2:
            raise ValueError(
                "`labels` must hold at least two classes for a labelled score; pass "
                f"labels=None for a label-free one. Received: {classes}"
            )
        if counts.min() < 2:
            raise ValueError(
                "Every class in `labels` needs at least 2 images, one to train the probe on "
                f"and one to score. Received: class {classes[counts.argmin()]!r} with 1 image"
            )
        if max_images < 2 * len(classes):
            raise ValueError(
                f"`max_images` must be at least 2 per class ({2 * len(classes)} for "
                f"{len(classes)} classes) so every class is both trained on and scored. "
                f"Received: max_images={max_images}"
            )
        if len(images) <= max_images:
            return images, labels, holdout
        if holdout is None:
            keep, _ = split_bank_queries(labels, 1 - max_images / len(images), seed)
            return images[keep], labels[keep], None
        pool = np.flatnonzero(~holdout)
        room = max(max_images - int(holdout.sum()), 2 * len(classes))
        if len(pool) > room:
            keep, _ = split_bank_queries(labels[pool], 1 - room / len(pool), seed)
            pool = pool[keep]
        keep = np.sort(np.concatenate([pool, np.flatnonzero(holdout)]))
        return images[keep], labels[keep], holdout[keep]

    def _reset(self):
        self.scores = {}
        self.details = {}
        self.comparisons = {}
        self.mix_scores = {}
        self.best_epoch = None
        self.top_epoch = None
        self.result = None
        self.start_weights = None
        self.best_weights = None
        self.top_weights = None
        self.last_weights = None
        self.finished = False
        self._started = False
        self._extractor = self._extractor_of = None
        self._scored = None  # (fingerprint of the backbone's weights, values) last scored

    # -- scoring ---------------------------------------------------------------

    def _backbone(self):
        base = getattr(self.model, "base_model", None)
        if base is None:
            raise ValueError(
                "BackboneGuard needs a model with a `base_model` (SimCLR). Received: "
                f"{type(self.model).__name__}"
            )
        return base

    def features(self):
        """Pooled backbone features of the guard's images (as `extract_features` P3)."""
        if self._extractor is None or self._extractor_of is not self.model:
            self._extractor, self._extractor_of = feature_model(self.model, "P3"), self.model
        batches = UnitRangeBatches(self.images, batch_size=self.batch_size)
        out = [self._extractor.predict_on_batch(batches[i]) for i in range(len(batches))]
        return np.concatenate([np.asarray(o, dtype="float32") for o in out], axis=0)

    def evaluate(self):
        """`{name: value}` of the guard's score and `log_scores` for the current backbone.

        The `"budgets"` score adds `"splits"`: the accuracy on every split.
        """
        features = self.features()
        names = (self.score_name, *self.log_scores)
        if not np.isfinite(features).all():
            values = {name: float("-inf") for name in names}
            if self.splits is not None:
                values["splits"] = [0.0] * len(self.splits)
            return values
        values = {}
        if self.score_name == "budgets":
            splits = budget_scores(features, self.labels, self.splits, seed=self.seed)
            values["budgets"] = float(np.mean(list(per_budget(self.splits, splits).values())))
            values["splits"] = [float(v) for v in splits]
        if self.score_name in ("knn", "linear", "knn+linear"):
            names = tuple(dict.fromkeys(names + ("knn", "linear")))
        if any(n in ("knn", "linear", "knn+linear") for n in names):
            values.update(
                labelled_scores(features, self.labels, self.bank, self.queries, seed=self.seed)
            )
        from threadpoolctl import threadpool_limits  # with scikit-learn, needed only here

        with threadpool_limits(1):  # small matrices; threads only contend on a busy machine
            for name in names:
                if name in LABEL_FREE_SCORES:
                    values[name] = float(LABEL_FREE_SCORES[name](features))
        keep = set(names) | ({"splits"} if "splits" in values else set())
        return {n: v for n, v in values.items() if n in keep}

    def compare(self, values):
        """The paired comparison of scored `values` with the start (`"budgets"` only)."""
        start = self.details[self.start_epoch]
        return paired_comparison(
            self.splits, values["splits"], start["splits"], self.max_drop, self.noise_z
        )

    def _accepted(self, values):
        """Whether a candidate may be the result (with its comparison, or None)."""
        if self.score_name != "budgets":
            return True, None
        comparison = self.compare(values)
        return comparison["accepted"], comparison

    # -- state -----------------------------------------------------------------

    def _state_dir(self):
        if self.directory is not None:
            return self.directory
        save_path = getattr(self.model, "save_path", None)
        if save_path:
            return os.path.join(checkpoint_dir(save_path), "guard")
        return None

    def _signature(self):
        signature = {"score": self.score_name, "images": int(len(self.images)), "seed": self.seed}
        if self.splits is not None:
            signature["splits"] = len(self.splits)
            signature["queries"] = int(sum(len(s.query) for s in self.splits))
        return signature

    def _save_state(self):
        folder = self._state_dir()
        if folder is None:
            return
        state = {
            "signature": self._signature(),
            "scores": {str(k): v for k, v in self.scores.items()},
            "details": {str(k): v for k, v in self.details.items()},
            "best_epoch": self.best_epoch,
            "top_epoch": self.top_epoch,
        }
        atomic_write_json(state, os.path.join(folder, STATE_FILE))

    def _save_weights(self, which):
        folder = self._state_dir()
        if folder is not None:
            atomic_save_arrays(
                getattr(self, f"{which}_weights"), os.path.join(folder, WEIGHT_FILES[which])
            )

    def _read_state(self, folder):
        """The saved state and weights, or None with a warning when unusable."""
        path = os.path.join(folder, STATE_FILE)
        files = {k: os.path.join(folder, v) for k, v in WEIGHT_FILES.items()}
        if not (os.path.exists(path) and all(os.path.exists(f) for f in files.values())):
            return None
        try:
            with open(path) as fh:
                state = json.load(fh)
            weights = {k: load_arrays(f) for k, f in files.items()}
            state["best_epoch"], state["top_epoch"] = (
                int(state["best_epoch"]),
                int(state["top_epoch"]),
            )
        except (OSError, ValueError, KeyError, TypeError) as error:
            warnings.warn(
                f"The guard state in {folder} cannot be read ({error}); it is ignored and the "
                "resumed weights are taken as the start.",
                stacklevel=3,
            )
            return None
        if state.get("signature") != self._signature():
            warnings.warn(
                f"The guard state in {folder} was written with other settings "
                f"({state.get('signature')}, now {self._signature()}); ignored.",
                stacklevel=3,
            )
            return None
        shapes = [tuple(w.shape) for w in self._backbone().get_weights()]
        for which, arrays in weights.items():
            if [tuple(np.shape(w)) for w in arrays] != shapes:
                warnings.warn(
                    f"The guard state in {folder} holds the weights of another backbone "
                    f"({os.path.basename(files[which])}: {len(arrays)} arrays, this backbone "
                    f"has {len(shapes)} of other shapes); it is ignored.",
                    stacklevel=3,
                )
                return None
        return state, weights

    def _load_state(self, epoch=None):
        folder = self._state_dir()
        read = None if folder is None else self._read_state(folder)
        if read is None:
            return False
        state, weights = read
        best, top = state["best_epoch"], state["top_epoch"]
        # Epochs after the resumed one are trained again; the best and the
        # top one's weights (real weights of this run, saved before a crash) stay.
        keep = lambda k: epoch is None or int(k) <= epoch or int(k) in (best, top)  # noqa: E731
        self.scores = {int(k): float(v) for k, v in state["scores"].items() if keep(k)}
        self.details = {int(k): v for k, v in state.get("details", {}).items() if keep(k)}
        self.best_epoch, self.top_epoch = best, top
        self.start_weights = weights["start"]
        self.best_weights = weights["best"]
        self.top_weights = weights["top"]
        self.comparisons = {}
        if self.score_name == "budgets":
            for k in self.scores:
                if k != self.start_epoch:
                    self.comparisons[k] = self.compare(self.details[k])
        return True

    # -- callback --------------------------------------------------------------

    def _fingerprint(self):
        digest = hashlib.blake2b(digest_size=16)
        for weight in self._backbone().get_weights():
            digest.update(np.ascontiguousarray(weight).tobytes())
        return digest.hexdigest()

    def _score_now(self):
        """Values of the backbone as it is (not scored again when unchanged)."""
        fingerprint = self._fingerprint()
        unchanged = self._scored is not None and self._scored[0] == fingerprint
        values = dict(self._scored[1]) if unchanged else self.evaluate()
        self._scored = (fingerprint, values)
        return values, unchanged

    def _record(self, epoch, logs=None):
        values, unchanged = self._score_now()
        score = float(values[self.score_name])
        redo = epoch in (self.best_epoch, self.top_epoch) and epoch in self.scores
        if redo and score <= self.scores[epoch]:
            # An epoch trained again after a crash: its earlier weights stay.
            return
        self.scores[epoch] = score
        self.details[epoch] = values
        weights = [np.array(w) for w in self._backbone().get_weights()]
        if self.start_weights is None:  # the start
            self.best_epoch = self.top_epoch = epoch
            self.start_weights = self.best_weights = self.top_weights = weights
            for which in ("start", "best", "top"):
                self._save_weights(which)
            accepted, comparison = True, None
        else:
            accepted, comparison = self._accepted(values)
            self.comparisons[epoch] = comparison
            if accepted and score > self.scores[self.best_epoch] + self.min_delta:
                self.best_epoch, self.best_weights = epoch, weights
                self._save_weights("best")
            if score > self.scores[self.top_epoch]:
                self.top_epoch, self.top_weights = epoch, weights
                self._save_weights("top")
        self._save_state()
        if logs is not None:
            logs["guard_score"] = score
            for name, value in values.items():
                if name != "splits":
                    logs[LOG_KEYS.get(name, f"guard_{name}")] = float(value)
            if self.splits is not None:
                for budget, value in per_budget(self.splits, values["splits"]).items():
                    logs[_budget_key(budget)] = value
        if self.verbose:
            where = "start" if epoch == self.start_epoch else f"epoch {epoch}"
            print(
                f"guard: {where}: {self._describe(values, comparison, accepted)}"
                + (" (backbone unchanged: not scored again)" if unchanged else ""),
                flush=True,
            )

    def _describe(self, values, comparison, accepted):
        """One line: the candidate's score(s), its gain and whether it counts."""
        best = "the start" if self.best_epoch == self.start_epoch else f"epoch {self.best_epoch}"
        if self.score_name != "budgets":
            return f"{self.score_name} {values[self.score_name]:.4f} (best {self.scores[self.best_epoch]:.4f} at {best})"
        means = per_budget(self.splits, values["splits"])
        parts = []
        for budget, mean in means.items():
            text = f"{_percent(budget)} {mean:.3f}"
            if comparison is not None:
                row = comparison["budgets"][budget]
                text += f" ({row['gain']:+.3f} +- {row['se']:.3f})"
            parts.append(text)
        verdict = "" if comparison is None else ("; accepted" if accepted else "; not accepted")
        return f"linear probe {', '.join(parts)}{verdict} (result so far: {best})"

    def on_train_begin(self, logs=None):
        self._reset()

    def on_epoch_begin(self, epoch, logs=None):
        if self._started:
            return
        self._started = True
        if epoch > 0 and self._load_state(epoch):
            return  # a resumed run: the start and the best so far come from its state
        if epoch > 0:
            warnings.warn(
                f"BackboneGuard: training resumes at epoch {epoch} without the guard's "
                "state; the resumed weights are taken as the start.",
                stacklevel=2,
            )
        self._record(epoch)

    def on_epoch_end(self, epoch, logs=None):
        self._record(epoch + 1, logs)

    def on_train_end(self, logs=None):
        self.finish()

    def _mix(self):
        """Score the start mixed with the highest-scoring epoch; keep an accepted winner."""
        if (
            self.score_name in LABEL_FREE_SCORES
            or not self.interpolation
            or self.top_epoch == self.start_epoch
        ):
            return
        base = self._backbone()
        for alpha in sorted(self.interpolation):
            if alpha in (0.0, 1.0):
                continue  # the start and the epoch itself are scored already
            base.set_weights(interpolate_weights(self.start_weights, self.top_weights, alpha))
            values, _ = self._score_now()
            score = float(values[self.score_name])
            accepted, comparison = self._accepted(values)
            self.mix_scores[alpha] = {"score": score, "values": values, "comparison": comparison}
            if accepted and score > self._result_score() + self.min_delta:
                self.result = {"epoch": self.top_epoch, "alpha": alpha}
                self.best_weights = [np.array(w) for w in base.get_weights()]
            if self.verbose:
                print(
                    f"guard: start + epoch {self.top_epoch} mixed at alpha {alpha:g}: "
                    f"{self._describe(values, comparison, accepted)}",
                    flush=True,
                )

    def _result_score(self):
        if self.result is not None and self.result["alpha"] is not None:
            return self.mix_scores[self.result["alpha"]]["score"]
        return self.scores[self.best_epoch]

    def finish(self, model=None):
        """Keep the last weights, try the mixes and put the result into the backbone.

        `fit()` calls it when training ends. Call it yourself when `fit()`
        trained nothing because a resumed run had already finished (pass the
        model then); it reads the saved state. Idempotent.

        Args:
            model: The model, if the callback has not seen it.

        Returns:
            `summary()`.
        """
        if model is not None:
            self.set_model(model)
        if self.finished:
            return self.summary()
        if not self.scores and not self._load_state():
            raise ValueError(
                "BackboneGuard has no scores: it has not been used in a `fit()` and no "
                "saved state was found."
            )
        base = self._backbone()
        self.last_weights = [np.array(w) for w in base.get_weights()]
        self.result = {"epoch": self.best_epoch, "alpha": None}
        self._mix()
        base.set_weights(self.best_weights if self.restore_best else self.last_weights)
        self.finished = True
        message = self.summary()
        if self.verbose and self.print_summary:
            print(message, flush=True)
        return message

    @property
    def last_epoch(self):
        """The last scored epoch (0 = the start), or None."""
        return max(self.scores) if self.scores else None

    @property
    def start_epoch(self):
        """The epoch scored as the start (0 unless the guard began in a resumed run)."""
        return min(self.scores) if self.scores else None

    def improved(self):
        """True when the result is not the start."""
        if self.result is not None and self.result["alpha"] is not None:
            return True
        return self.best_epoch is not None and self.best_epoch != self.start_epoch

    def result_values(self):
        """The scored values of the result (the start's when nothing beat it)."""
        if self.result is not None and self.result["alpha"] is not None:
            return self.mix_scores[self.result["alpha"]]["values"]
        return self.details[self.best_epoch]

    def budget_table(self):
        """`{"start": {budget: acc}, "result": {...}, "last": {...}}` (`"budgets"` only)."""
        if self.splits is None or not self.scores:
            return None
        mean = lambda values: per_budget(self.splits, values["splits"])  # noqa: E731
        return {
            "start": mean(self.details[self.start_epoch]),
            "result": mean(self.result_values()),
            "last": mean(self.details[self.last_epoch]),
        }

    def _result_comparison(self):
        """The paired comparison of the result with the start (None for the start)."""
        if self.result is not None and self.result["alpha"] is not None:
            return self.mix_scores[self.result["alpha"]]["comparison"]
        return self.comparisons.get(self.best_epoch)

    def _result_name(self):
        if self.result is not None and self.result["alpha"] is not None:
            return (
                f"epoch {self.result['epoch']}'s backbone mixed with the start in weight space "
                f"(alpha {self.result['alpha']:g}, WiSE-FT)"
            )
        return f"epoch {self.best_epoch}'s backbone"

    def summary(self):
        """One paragraph: the start and the result (and the last epoch), and why."""
        if not self.scores:
            return "guard: nothing scored yet."
        if self.score_name == "budgets":
            return self._budget_summary()
        start, last, best = self.start_epoch, self.last_epoch, self.best_epoch
        s = self.scores
        if not self.improved():
            where = "the start"
        elif self.result["alpha"] is not None:
            where = f"epoch {self.result['epoch']} mixed at alpha {self.result['alpha']:g}"
        else:
            where = f"epoch {best}"
        line = (
            f"Guard ({SCORE_NAMES[self.score_name]} of the backbone's features"
            + (
                f", {len(self.queries)} held-out labelled training images"
                if self.labels is not None
                else f", {len(self.images)} images"
            )
            + f"): start {s[start]:.4f}, best {self._result_score():.4f} ({where}), "
            f"last {s[last]:.4f} (epoch {last})."
        )
        if not self.improved():
            return (
                line
                + " No epoch beat the start: the result is the start backbone, unchanged"
                + (" (restored)." if self.restore_best else ".")
            )
        if self.result["alpha"] is None and best == last:
            return line + f" The result is the last epoch's backbone (epoch {last})."
        return (
            line
            + f" The result is {self._result_name()}"
            + (" (restored); the last epoch's is kept too." if self.restore_best else ".")
        )

    def _budget_summary(self):
        table = self.budget_table()
        budgets = list(table["start"])
        fmt = lambda row: " / ".join(f"{100 * row[b]:.1f}" for b in budgets)  # noqa: E731
        queries = {int(i) for split in self.splits for i in split.query}
        pool = len(self.images) - len(queries)
        if pool > 0:  # held-out queries
            how = (
                f"of {pool} labelled training images, scored on {len(queries)} that SimCLR "
                "did not train on"
            )
        else:
            how = f"of {len(self.images)} labelled training images, cross-validated"
        head = (
            f"Guard (linear probes at {' / '.join(_percent(b) for b in budgets)} {how}): "
            f"start {fmt(table['start'])} %"
        )
        last = self.last_epoch
        if not self.improved():
            return (
                head
                + f"; last epoch ({last}) {fmt(table['last'])} %. No candidate was at least as "
                "good as the start at every label budget (within the noise of the paired "
                "comparison): the result is the start backbone, unchanged"
                + (" (restored)." if self.restore_best else ".")
            )
        gains = " / ".join(
            f"{100 * (table['result'][b] - table['start'][b]):+.1f}" for b in budgets
        )
        comparison = self._result_comparison()
        if comparison is not None:
            rows = comparison["budgets"]
            gains += " points, standard errors " + " / ".join(
                f"{100 * rows[b]['se']:.1f}" for b in budgets
            )
        text = head + f", result {fmt(table['result'])} % ({gains}): {self._result_name()}."
        if comparison is not None:
            unclear = [b for b in budgets if rows[b]["gain"] <= 2 * rows[b]["se"]]
            if unclear:
                text += (
                    f" At {' and '.join(_percent(b) for b in unclear)} of the labels the gain "
                    "is within two standard errors of zero: on other images the result can "
                    "score slightly below the start there."
                )
        if self.result["alpha"] is not None or self.best_epoch != last:
            text += f" Last epoch ({last}): {fmt(table['last'])} %"
            comparison = self.comparisons.get(last)
            text += "." if comparison is None or comparison["accepted"] else ", not accepted."
        return text

    def use(self, which):
        """Put `"best"` (the result), `"last"` or `"start"` weights into the backbone."""
        if which not in ("best", "last", "start"):
            raise ValueError(
                f"`which` must be 'best', 'last' or 'start'. Received: which={which!r}"
            )
        weights = {
            "best": self.best_weights,
            "last": self.last_weights,
            "start": self.start_weights,
        }[which]
        if weights is None:
            raise ValueError(f"No {which} weights yet: call it after `fit()`.")
        self._backbone().set_weights(weights)
