"""`DataGeneratorSimCLR`: full batches of source images for `SimCLR.fit`."""

from concurrent.futures import ThreadPoolExecutor

import keras
import numpy as np

from simclr_keras import guided
from simclr_keras import image_io as io
from simclr_keras.data_files import FileConstructors, _check_batch_size


class DataGeneratorSimCLR(FileConstructors, keras.utils.PyDataset):
    """Full batches of source images, reshuffled from a seed every epoch.

    Yields `(B, H, W, C)` batches of images only (SimCLR draws both views
    on the device). Every batch is full: the last `n mod B` images of an
    epoch's order are left out (different ones every epoch). Built from an
    array (this constructor), a folder (`from_directory`), file paths
    (`from_files`) or a DataFrame (`from_dataframe`). Files are decoded and
    resized once at construction, which also finds bad files; they are
    kept in memory when they fit in `cache_limit_bytes`, else decoded again
    per batch by a thread pool. With `pseudo_labels`, each epoch's batches
    are guided (`guided.guided_batches`): a cluster of `n_c` images puts at
    most `ceil(n_c / len(self))` images in one batch.

    Args:
        images: Array `(N, H, W, C)`, uint8 [0, 255] or float [0, 1];
            batches keep its dtype.
        batch_size: Images per batch `B` (at most N).
        shuffle: Reshuffle every epoch (always on with `pseudo_labels`).
        seed: Non-negative int; the same seed gives the same batches.
        labels: Optional class id per image, for evaluation only.
        class_names: Optional names of the label ids.
        pseudo_labels: Optional cluster id per image (guided batches).
        **kwargs: `keras.utils.PyDataset` arguments (`workers`,
            `use_multiprocessing`, `max_queue_size`).

    Returns:
        A `keras.utils.PyDataset`: `len()` batches per epoch.

    Example:
    >>> gen = DataGeneratorSimCLR.from_directory("train/", image_size=(96, 96),
    ...                                          batch_size=64, seed=0)  # doctest: +SKIP
    >>> simclr.fit(gen, epochs=10)                                   # doctest: +SKIP
    >>> images, labels = gen.load_all()                              # doctest: +SKIP
    """

    def __init__(self, images, batch_size, *, shuffle=True, seed=None, labels=None,
                 class_names=None, pseudo_labels=None, **kwargs):
        files = kwargs.pop("_files", None)
        super().__init__(**kwargs)
        if files is None:
            images = np.asarray(images)
            if images.ndim != 4:
                raise ValueError(
                    "`images` must be an array of shape (N, height, width, "
                    f"channels). Received: images of shape {images.shape}"
                )
            self._cache, self.paths = images, None
            self._decode_args = None
        else:
            self._cache, self.paths, self._decode_args = files
        self.num_images = len(self.paths) if self._cache is None else len(self._cache)
        _check_batch_size(batch_size, self.num_images, "")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
            raise ValueError(f"`seed` must be None or a non-negative int. Received: seed={seed!r}")
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.seed = seed
        self._base_seed = int(seed) if seed is not None else int(np.random.SeedSequence().entropy)
        self.labels = None if labels is None else np.asarray(labels, dtype=np.int64)
        if self.labels is not None and self.labels.shape != (self.num_images,):
            raise ValueError(
                f"`labels` must hold one label per image ({self.num_images}). "
                f"Received: labels of shape {self.labels.shape}"
            )
        self.class_names = None if class_names is None else list(class_names)
        self.skipped_files = []
        self.epoch = 0
        self._pool = None
        self._prefetcher = None
        self._prefetch = None
        self._pseudo_labels = None
        self._stats = None
        self.pseudo_labels = pseudo_labels

    # -- batches ----------------------------------------------------------

    @property
    def pseudo_labels(self):
        """Cluster id per image, or None; setting it re-plans this epoch."""
        return self._pseudo_labels

    @pseudo_labels.setter
    def pseudo_labels(self, value):
        self._pseudo_labels = None if value is None else guided.check_pseudo_labels(value, self.num_images)
        self._plan_epoch()

    @property
    def cached(self):
        """True when the decoded images are held in memory."""
        return self._cache is not None

    def __len__(self):
        return self.num_images // self.batch_size

    def _plan_epoch(self):
        self._prefetch = None  # a batch decoded ahead belongs to the old plan
        rng = np.random.default_rng([self._base_seed, self.epoch])
        if self._pseudo_labels is not None:
            self._batches = guided.guided_batches(self._pseudo_labels, self.batch_size, rng)
            self._stats = dict(guided.batch_stats(self._batches, self._pseudo_labels), epoch=self.epoch)
            return
        order = rng.permutation(self.num_images) if self.shuffle else np.arange(self.num_images)
        self._batches = order[: len(self) * self.batch_size].reshape(len(self), self.batch_size)

    def batch_indices(self, index):
        """Image indices of batch `index` in the current epoch."""
        if not 0 <= index < len(self):
            raise IndexError(f"Batch index out of range [0, {len(self)}). Received: index={index}")
        return np.asarray(self._batches[index])

    def batch_stats(self):
        """This epoch's pseudo-label repeats (see `guided.batch_stats`), or None."""
        return None if self._stats is None else dict(self._stats)

    def __getitem__(self, index):
        indices = self.batch_indices(index)
        if self._cache is not None or self.workers > 1 or self.use_multiprocessing:
            return self._take(indices)  # Keras' enqueuer already runs batches ahead
        # Decoding per batch with no enqueuer (`workers=1`): decode the next
        # batch in the background while this one trains, so on every backend
        # the step never waits for the decode that could overlap it.
        key = (self.epoch, int(index))
        pending, self._prefetch = self._prefetch, None
        batch = pending[1].result() if pending is not None and pending[0] == key else self._take(indices)
        if index + 1 < len(self):
            if self._prefetcher is None:
                self._prefetcher = ThreadPoolExecutor(1)
            self._prefetch = ((self.epoch, int(index) + 1),
                              self._prefetcher.submit(self._take, self.batch_indices(index + 1)))
        return batch

    def on_epoch_end(self):
        self.epoch += 1
        self._plan_epoch()

    def set_epoch(self, epoch):
        """Plan the batches of epoch `epoch` (0-based), as if that many
        epochs had passed; a resumed run calls it so that its batch order
        continues the interrupted run's.

        Args:
            epoch: Non-negative int.
        """
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise ValueError(f"`epoch` must be a non-negative int. Received: epoch={epoch!r}")
        self.epoch = int(epoch)
        self._plan_epoch()

    def _take(self, indices):
        if self._cache is not None:
            return self._cache[indices]
        size, mode, background, workers = self._decode_args
        if self._pool is None:
            self._pool = ThreadPoolExecutor(workers or io.default_workers())
        jobs = [(self.paths[i], size, mode, background) for i in indices]
        out = np.empty((len(indices),) + tuple(size) + (3,), np.uint8)
        for k, (array, error) in enumerate(self._pool.map(io._safe_load, jobs)):
            if error is not None:
                raise OSError(f"Image file changed since it was validated: {jobs[k][0]} ({error})")
            out[k] = array
        return out

    def __getstate__(self):
        state = self.__dict__.copy()
        # Thread pools and futures do not pickle (use_multiprocessing).
        state["_pool"] = state["_prefetcher"] = state["_prefetch"] = None
        return state

    # -- evaluation -------------------------------------------------------

    @property
    def images(self):
        """Every image in the data set's order (decoded again if not cached)."""
        return self._cache if self._cache is not None else self._take(np.arange(self.num_images))

    def load_all(self):
        """All images and their labels, for evaluation.

        Returns:
            `(images, labels)`: `(N, H, W, C)` images in file order and the
            int labels, or None when the data set is unlabelled.
        """
        return self.images, self.labels
