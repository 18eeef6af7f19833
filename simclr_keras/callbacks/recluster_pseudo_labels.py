"""`ReclusterPseudoLabels`: pseudo-labels re-clustered from the model's own
features while it trains (`simclr_keras.data.pseudo_labels.encoder_pseudo_labels`
at every `every` epochs), resumable with the run.
"""

import json
import os

import keras
import numpy as np

from simclr_keras._atomic import atomic_write_json
from simclr_keras._checks import check_int, check_seed
from simclr_keras.callbacks.resumable_checkpoint import checkpoint_dir
from simclr_keras.data.pseudo_labels import encoder_pseudo_labels, format_quality

STATE_FILE = "pseudo_labels.json"


class ReclusterPseudoLabels(keras.callbacks.Callback):
    """Guide a generator's batches by k-means on the model's own features.

    G-SimCLR fixes its pseudo-labels before pre-training, from a separate
    autoencoder. This callback instead clusters the features of the model
    being trained (`extract_features` at `depth`, P3 by default: the pooled
    backbone) at the start of epoch `start_epoch` and every `every` epochs
    after it, and sets them as `generator.pseudo_labels`, so that the
    batches of the following epochs are guided by what the model has
    learned so far. Before `start_epoch` the generator keeps the
    pseudo-labels it was given (None: plain SimCLR batches).

    Resumable: every clustering is written atomically, with its epoch, to
    `state_path` (default: `pseudo_labels.json` in the checkpoint folder of
    the model's `save_path`, next to the checkpoints `SimCLR.fit` writes).
    A resumed `fit()` reloads the labels that were in force at its first
    epoch, so its batches are those of the interrupted run; clusterings
    written for later epochs than the resumed one are dropped.

    Args:
        generator: The `DataGeneratorSimCLR` passed to `fit()`.
        every: Epochs between clusterings.
        n_clusters: `k`; None: the generator's batch size (G-SimCLR's choice).
        start_epoch: First epoch (0-based) trained with re-clustered labels;
            None: `every` (the first `every` epochs train unguided, or with
            the generator's own pseudo-labels).
        depth: Feature depth for `extract_features` (`"P3"`, `"P2"`, `"P1"`).
        classes: Optional true classes, only to print and record the quality
            of each clustering; None: the generator's `labels` if any.
        normalize: k-means on unit-length features (cosine).
        n_init: k-means restarts.
        seed: Integer seed of k-means.
        state_path: JSON file for the labels; None: next to the model's
            checkpoints when it has a `save_path`, else kept in memory only.
        verbose: 1 prints a line per clustering.

    Returns:
        A `keras.callbacks.Callback`; `.history` lists each clustering's
        `epoch`, `quality` (with `classes`) and `seconds`.

    Example:
    >>> gen = DataGeneratorSimCLR(x_train, batch_size=64, seed=0)      # doctest: +SKIP
    >>> simclr.fit(gen, epochs=20,
    ...            callbacks=[ReclusterPseudoLabels(gen, every=5)])   # doctest: +SKIP

    Reference:
        Chakraborty, Gosthipaty, Paul, "G-SimCLR: Self-Supervised
        Contrastive Learning with Guided Projection via Pseudo Labelling",
        ICDM Workshops 2020, arXiv:2009.12007; re-clustering the network's
        own features as it trains follows Caron, Bojanowski, Joulin, Douze,
        "Deep Clustering for Unsupervised Learning of Visual Features",
        ECCV 2018.
    """

    def __init__(
        self,
        generator,
        every=5,
        n_clusters=None,
        *,
        start_epoch=None,
        depth="P3",
        classes=None,
        normalize=True,
        n_init=10,
        seed=None,
        state_path=None,
        verbose=1,
    ):
        super().__init__()
        if not (hasattr(generator, "pseudo_labels") and hasattr(generator, "load_all")):
            raise TypeError(
                "`generator` must be a DataGeneratorSimCLR (the data passed to fit()). "
                f"Received: generator of type {type(generator).__name__}"
            )
        check_int(every, "every", minimum=1)
        n_clusters = generator.batch_size if n_clusters is None else n_clusters
        check_int(n_clusters, "n_clusters", minimum=2, maximum=generator.num_images)
        start_epoch = every if start_epoch is None else start_epoch
        check_int(start_epoch, "start_epoch", minimum=0)
        check_seed(seed)
        self.generator = generator
        self.every, self.n_clusters, self.start_epoch = int(every), int(n_clusters), start_epoch
        self.depth, self.normalize, self.n_init, self.seed = depth, normalize, n_init, seed
        self.classes = classes if classes is not None else getattr(generator, "labels", None)
        self.state_path = None if state_path is None else os.fspath(state_path)
        self.verbose = verbose
        self.history = []
        self._entries = None  # saved clusterings, loaded on the first epoch

    def is_recluster_epoch(self, epoch):
        """True when the labels are re-computed at the start of `epoch`."""
        return epoch >= self.start_epoch and (epoch - self.start_epoch) % self.every == 0

    def _path(self):
        if self.state_path is None:
            save_path = getattr(self.model, "save_path", None)
            if save_path:
                self.state_path = os.path.join(checkpoint_dir(save_path), STATE_FILE)
        return self.state_path

    def _load(self):
        path = self._path()
        if not path or not os.path.exists(path):
            return []
        try:
            with open(path) as f:
                state = json.load(f)
            entries = list(state["entries"])
            for entry in entries:
                int(entry["epoch"]), np.asarray(entry["labels"], np.int64)
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ValueError(
                f"The pseudo-label state file {path} is truncated or corrupt "
                f"({type(error).__name__}: {error}); remove it to cluster again"
            ) from None
        return entries

    def _save(self):
        path = self._path()
        if path:
            atomic_write_json({"format": 1, "entries": self._entries}, path)

    def on_epoch_begin(self, epoch, logs=None):
        if self._entries is None:  # first epoch of this fit(): resume if saved
            self._entries = [e for e in self._load() if int(e["epoch"]) <= epoch]
            self.history = [{k: v for k, v in e.items() if k != "labels"} for e in self._entries]
            if self._entries and not self.is_recluster_epoch(epoch):
                latest = max(self._entries, key=lambda e: int(e["epoch"]))
                self.generator.pseudo_labels = np.asarray(latest["labels"], np.int64)
                if self.verbose:
                    print(
                        f"Resumed pseudo-labels re-clustered at epoch {latest['epoch']}",
                        flush=True,
                    )
        if not self.is_recluster_epoch(epoch):
            return
        saved = [e for e in self._entries if int(e["epoch"]) == epoch]
        if saved:  # written by the interrupted run: the same labels
            self.generator.pseudo_labels = np.asarray(saved[0]["labels"], np.int64)
            return
        labels, info = encoder_pseudo_labels(
            self.model,
            self.generator.load_all()[0],
            self.n_clusters,
            classes=self.classes,
            depth=self.depth,
            normalize=self.normalize,
            n_init=self.n_init,
            seed=self.seed,
            verbose=0,
            return_info=True,
        )
        self.generator.pseudo_labels = labels
        record = {"epoch": int(epoch), "quality": info["quality"], "seconds": info["seconds"]}
        self.history.append(record)
        self._entries.append(dict(record, labels=labels.tolist()))
        self._save()
        if self.verbose:
            quality = f": {format_quality(info['quality'])}" if info["quality"] else ""
            print(
                f"Epoch {epoch + 1}: re-clustered the {self.depth} features into "
                f"{self.n_clusters} pseudo-labels in {info['seconds']:.1f} s{quality}",
                flush=True,
            )

    def on_train_end(self, logs=None):
        self._entries = None  # a later fit() reads the state again
