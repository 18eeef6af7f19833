"""The never-worse guard: score the backbone every epoch, keep the best one.

Continued self-supervised training of a pretrained backbone can make its
features worse, and the best length of such a run varies a hundredfold
between data sets (Reed et al. 2021), so the epoch has to be chosen.
`BackboneGuard` scores the backbone's pooled features before the first
epoch (the start) and after every epoch, keeps the best-scoring weights
and, when training ends, puts them back into the backbone: the result is
never a backbone that scored below the start.
"""

import hashlib
import json
import os
import warnings

import keras
import numpy as np

from simclr_keras._checks import check_int, check_number
from simclr_keras._images import check_images
from simclr_keras.evaluation.features import UnitRangeBatches, feature_model
from simclr_keras.evaluation.knn import knn_accuracy, split_bank_queries
from simclr_keras.evaluation.label_free import LABEL_FREE_SCORES
from simclr_keras.evaluation.linear_probe import select_linear_probe
from simclr_keras.training.checkpoint import checkpoint_dir

LABELLED_SCORES = ("knn", "linear", "knn+linear")
SCORES = LABELLED_SCORES + tuple(LABEL_FREE_SCORES)
STATE_FILE = "guard.json"
# Keys in `logs` (the kNN value under KNNMonitor's name, so plots find it).
LOG_KEYS = {"knn": "knn_acc", "linear": "linear_acc", "knn+linear": "guard_knn_linear"}
BEST_FILE = "best_backbone.npz"
SCORE_NAMES = {
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


def _atomic_savez(path, arrays):
    tmp = f"{path}.tmp.npz"
    np.savez(tmp, **{f"w{i:04d}": a for i, a in enumerate(arrays)})
    os.replace(tmp, path)


def _atomic_json(path, obj):
    tmp = f"{path}.tmp"
    with open(tmp, "w") as fh:
        json.dump(obj, fh, indent=1)
    os.replace(tmp, path)


def _load_npz(path):
    with np.load(path) as data:
        return [data[k] for k in sorted(data.files)]


class BackboneGuard(keras.callbacks.Callback):
    """Keep the best epoch's backbone, never one that scored below the start.

    Before the first epoch and after every epoch it extracts the backbone's
    pooled features of `images` (no augmentation, the model's input scaling)
    and scores them. With `labels`, the images are split once (stratified)
    into a bank and queries (`query_fraction`) and the score is the kNN
    and/or linear-probe accuracy of the queries; without labels it is a
    label-free score of all features (RankMe by default). The best-scoring
    weights are kept (in memory, and in `directory` when one is known);
    when `fit()` ends the backbone gets them back (`restore_best`), the last
    epoch's weights stay in `last_weights`, and a summary names the start,
    best and last scores and says plainly when no epoch beat the start (the
    result is then the start's weights, unchanged).

    It resumes with the run: with `directory` (default: a `guard` folder in
    the checkpoint folder of `model.save_path`, so `SimCLR(save_path=...)`
    runs need nothing else), its scores and the best weights are written
    after every epoch, before the checkpoint, and a resumed `fit()` reads
    them back instead of taking the resumed weights as a new start.

    Args:
        images: Images `(N, H, W, C)`, uint8 or float in [0, 1], e.g. a
            sample of the training images.
        labels: Optional `(N,)` labels (e.g. class folders of the training
            images); none means a label-free score.
        score: `"auto"` (`"knn+linear"` with labels, `"rankme"` without),
            `"knn"`, `"linear"`, `"knn+linear"`, `"rankme"`, `"alpha_req"`
            or `"uniformity"`.
        directory: Folder for the resumable state, or None (see above).
        min_delta: An epoch must beat the best so far by more than this.
        restore_best: Put the best weights into the backbone at the end.
        query_fraction: Share of labelled images scored as queries.
        max_images: Images used at most (a seeded, stratified-when-labelled
            subsample).
        log_scores: Extra scores computed from the same features and
            written into `logs` as `guard_<name>` (e.g. `("rankme",)`).
        batch_size: Images per forward pass.
        seed: Seed of the subsample and the bank/query split.
        verbose: 1 prints a line per epoch (and the summary, see below).
        print_summary: With `verbose`, print `summary()` when training
            ends (False when the caller prints it itself, as the CLI does
            in its final message).

    Returns:
        A `keras.callbacks.Callback`. After `fit()`: `scores` (`{epoch:
        score}`, 0 = the start), `best_epoch`, `summary()`, `best_weights`,
        `last_weights`.

    Example:
    >>> guard = BackboneGuard(x_train[:1000], y_train[:1000])  # doctest: +SKIP
    >>> simclr.fit(x_train, epochs=5, callbacks=[guard])       # doctest: +SKIP
    >>> print(guard.summary())                                 # doctest: +SKIP

    Reference:
        Garrido et al., "RankMe", ICML 2023 (label-free selection); Reed et
        al., "Self-Supervised Pretraining Improves Self-Supervised
        Pretraining", WACV 2022 (the best length varies with the data).
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
        if score == "auto":
            score = "rankme" if labels is None else "knn+linear"
        if score not in SCORES:
            raise ValueError(
                f"`score` must be 'auto' or one of {SCORES}. Received: score={score!r}"
            )
        for extra in log_scores:
            if extra not in SCORES:
                raise ValueError(
                    f"`log_scores` must list names among {SCORES}. Received: {extra!r}"
                )
        rng = np.random.default_rng(seed)
        if labels is not None:
            labels = np.asarray(labels)
            if labels.shape != (len(images),):
                raise ValueError(
                    f"`labels` must hold one label per image ({len(images)}). "
                    f"Received: shape {labels.shape}"
                )
            if len(np.unique(labels)) < 2:
                raise ValueError(
                    "`labels` must hold at least two classes for a labelled score; pass "
                    f"labels=None for a label-free one. Received: {np.unique(labels)}"
                )
            if not (0 < query_fraction < 1):
                raise ValueError(
                    f"`query_fraction` must be in (0, 1). Received: query_fraction={query_fraction!r}"
                )
            if len(images) > max_images:
                keep, _ = split_bank_queries(labels, 1 - max_images / len(images), seed)
                images, labels = images[keep], labels[keep]
            self.bank, self.queries = split_bank_queries(labels, query_fraction, seed)
            if len(self.queries) == 0:
                raise ValueError(
                    f"`images` are too few to hold out queries. Received: {len(images)} images"
                )
        else:
            needs = [s for s in (score, *log_scores) if s in LABELLED_SCORES]
            if needs:
                raise ValueError(
                    f"The score {needs[0]!r} needs `labels`; without labels use one of "
                    f"{tuple(LABEL_FREE_SCORES)}. Received: labels=None"
                )
            if len(images) > max_images:
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

    def _reset(self):
        self.scores = {}
        self.details = {}
        self.best_epoch = None
        self.best_weights = None
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
        """`{name: value}` of the guard's score and `log_scores` for the current backbone."""
        features = self.features()
        if not np.isfinite(features).all():
            return {name: float("-inf") for name in (self.score_name, *self.log_scores)}
        values = {}
        names = (self.score_name, *self.log_scores)
        if self.score_name in LABELLED_SCORES:
            names = tuple(dict.fromkeys(names + ("knn", "linear")))
        if any(n in LABELLED_SCORES for n in names):
            values.update(
                labelled_scores(features, self.labels, self.bank, self.queries, seed=self.seed)
            )
        from threadpoolctl import threadpool_limits  # with scikit-learn, needed only here

        with threadpool_limits(1):  # small matrices; threads only contend on a busy machine
            for name in names:
                if name in LABEL_FREE_SCORES:
                    values[name] = float(LABEL_FREE_SCORES[name](features))
        return {n: values[n] for n in names}

    # -- state -----------------------------------------------------------------

    def _state_dir(self):
        if self.directory is not None:
            return self.directory
        save_path = getattr(self.model, "save_path", None)
        if save_path:
            return os.path.join(checkpoint_dir(save_path), "guard")
        return None

    def _signature(self):
        return {"score": self.score_name, "images": int(len(self.images)), "seed": self.seed}

    def _save_state(self):
        folder = self._state_dir()
        if folder is None:
            return
        os.makedirs(folder, exist_ok=True)
        state = {
            "signature": self._signature(),
            "scores": {str(k): v for k, v in self.scores.items()},
            "details": {str(k): v for k, v in self.details.items()},
            "best_epoch": self.best_epoch,
        }
        _atomic_json(os.path.join(folder, STATE_FILE), state)

    def _load_state(self, epoch=None):
        folder = self._state_dir()
        if folder is None:
            return False
        path = os.path.join(folder, STATE_FILE)
        best = os.path.join(folder, BEST_FILE)
        if not (os.path.exists(path) and os.path.exists(best)):
            return False
        try:
            with open(path) as fh:
                state = json.load(fh)
            weights = _load_npz(best)
        except (OSError, ValueError, KeyError) as error:
            warnings.warn(
                f"The guard state in {folder} cannot be read ({error}); ignored.", stacklevel=2
            )
            return False
        if state.get("signature") != self._signature():
            warnings.warn(
                f"The guard state in {folder} was written with other settings "
                f"({state.get('signature')}, now {self._signature()}); ignored.",
                stacklevel=2,
            )
            return False
        best = int(state["best_epoch"])
        # Epochs after the resumed one are trained again; only the best one's
        # weights (real weights of this run, saved before a crash) are kept.
        keep = lambda k: epoch is None or int(k) <= epoch or int(k) == best  # noqa: E731
        self.scores = {int(k): float(v) for k, v in state["scores"].items() if keep(k)}
        self.details = {int(k): v for k, v in state.get("details", {}).items() if keep(k)}
        self.best_epoch = best
        self.best_weights = weights
        return True

    def _keep_best(self):
        self.best_weights = [np.array(w) for w in self._backbone().get_weights()]
        folder = self._state_dir()
        if folder is not None:
            os.makedirs(folder, exist_ok=True)
            _atomic_savez(os.path.join(folder, BEST_FILE), self.best_weights)

    # -- callback --------------------------------------------------------------

    def _fingerprint(self):
        digest = hashlib.blake2b(digest_size=16)
        for weight in self._backbone().get_weights():
            digest.update(np.ascontiguousarray(weight).tobytes())
        return digest.hexdigest()

    def _record(self, epoch, logs=None):
        fingerprint = self._fingerprint()
        unchanged = self._scored is not None and self._scored[0] == fingerprint
        # An epoch that left the backbone as it was (e.g. the head-only first
        # epoch of the pretrained recipe) keeps its score without a recount.
        values = dict(self._scored[1]) if unchanged else self.evaluate()
        self._scored = (fingerprint, values)
        score = values[self.score_name]
        if epoch == self.best_epoch and score <= self.scores[epoch]:
            # An epoch trained again after a crash: its earlier weights stay the best.
            return
        self.scores[epoch] = float(score)
        self.details[epoch] = values
        best = self.scores.get(self.best_epoch, -np.inf) if self.best_epoch is not None else None
        if best is None or score > best + self.min_delta:
            self.best_epoch = epoch
            self._keep_best()
        self._save_state()
        if logs is not None:
            logs["guard_score"] = float(score)
            for name, value in values.items():
                logs[LOG_KEYS.get(name, f"guard_{name}")] = float(value)
        if self.verbose:
            where = "start" if epoch == 0 else f"epoch {epoch}"
            print(
                f"guard: {where}: {self.score_name} {score:.4f} (best "
                f"{self.scores[self.best_epoch]:.4f} at "
                f"{'the start' if self.best_epoch == 0 else 'epoch ' + str(self.best_epoch)})"
                + (" (backbone unchanged: not scored again)" if unchanged else ""),
                flush=True,
            )

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

    def finish(self, model=None):
        """Keep the last weights and put the best ones into the backbone.

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
        if self.restore_best and self.best_epoch != self.last_epoch:
            base.set_weights(self.best_weights)
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
        """True when some epoch scored above the start."""
        return self.best_epoch is not None and self.best_epoch != self.start_epoch

    def summary(self):
        """One paragraph: the start, best and last scores and which backbone is the result."""
        if not self.scores:
            return "guard: nothing scored yet."
        start, last, best = self.start_epoch, self.last_epoch, self.best_epoch
        s = self.scores
        line = (
            f"Guard ({SCORE_NAMES[self.score_name]} of the backbone's features"
            + (
                f", {len(self.queries)} held-out labelled training images"
                if self.labels is not None and self.score_name in LABELLED_SCORES
                else f", {len(self.images)} images"
            )
            + f"): start {s[start]:.4f}, best {s[best]:.4f} "
            f"({'the start' if best == start else f'epoch {best}'}), last {s[last]:.4f} "
            f"(epoch {last})."
        )
        if not self.improved():
            return (
                line
                + " No epoch beat the start: the result is the start backbone, unchanged"
                + (" (restored)." if self.restore_best else ".")
            )
        if best == last:
            return line + f" The result is the last epoch's backbone (epoch {last})."
        return (
            line
            + f" The result is epoch {best}'s backbone"
            + (" (restored); the last epoch's is kept too." if self.restore_best else ".")
        )

    def use(self, which):
        """Put `"best"` or `"last"` weights into the backbone (after `fit()`)."""
        weights = {"best": self.best_weights, "last": self.last_weights}.get(which)
        if which not in ("best", "last"):
            raise ValueError(f"`which` must be 'best' or 'last'. Received: which={which!r}")
        if weights is None:
            raise ValueError(f"No {which} weights yet: call it after `fit()`.")
        self._backbone().set_weights(weights)
