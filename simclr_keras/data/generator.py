"""`DataGeneratorSimCLR`: full batches of source images for `SimCLR.fit`."""

import os
import warnings
import weakref
from concurrent.futures import ThreadPoolExecutor

import keras
import numpy as np

from simclr_keras._checks import check_choice, check_int, check_labels, check_number, check_seed
from simclr_keras._images import check_images
from simclr_keras.data import guided
from simclr_keras.data import image_io as io
from simclr_keras.data.folders import nested_class_root

DEFAULT_CACHE_LIMIT = 2 * 1024**3


def _check_batch_size(batch_size, num_images, source):
    check_int(batch_size, "batch_size", minimum=1)
    if batch_size > num_images:
        raise ValueError(
            "`batch_size` must not exceed the number of images, or no full "
            f"batch exists. Received: batch_size={batch_size} for {num_images} "
            f"images{source}"
        )


def _check_image_size(image_size):
    try:
        height, width = (int(v) for v in image_size)
    except (TypeError, ValueError):
        height = width = 0
    if height < 1 or width < 1:
        raise ValueError(
            f"`image_size` must be (height, width). Received: image_size={image_size!r}"
        )
    return height, width


class _ThreadPools:
    """A generator's decoding and prefetch thread pools, started on first use.

    Held apart from the generator so that `weakref.finalize` can shut them
    down when the generator is collected without keeping it alive.
    """

    def __init__(self):
        self.decode = None
        self.prefetch = None

    def get(self, kind, workers=1):
        pool = getattr(self, kind)
        if pool is None:
            pool = ThreadPoolExecutor(workers, thread_name_prefix=f"simclr_{kind}")
            setattr(self, kind, pool)
        return pool

    def shutdown(self, wait=False):
        for kind in ("decode", "prefetch"):
            pool = getattr(self, kind)
            setattr(self, kind, None)
            if pool is not None:
                pool.shutdown(wait=wait, cancel_futures=True)


class DataGeneratorSimCLR(keras.utils.PyDataset):
    """Full batches of source images, reshuffled from a seed every epoch.

    Yields `(B, H, W, C)` batches of images only (SimCLR draws both views
    on the device). Every batch is full: the last `n mod B` images of an
    epoch's order are left out (different ones every epoch). Built from an
    array (this constructor), a folder (`from_directory`), file paths
    (`from_files`) or a DataFrame (`from_dataframe`). Files are decoded and
    resized once at construction, which also finds bad files; they are
    kept in memory when they fit in `cache_limit_bytes`, else decoded again
    per batch by a thread pool (shut down by `close()`, on leaving a `with`
    block, or when the generator is garbage-collected). With `pseudo_labels`, each epoch's batches
    are guided (`guided.guided_batches`): a cluster of `n_c` images puts at
    most `ceil(n_c / len(self))` images in one batch. G-SimCLR uses as many
    pseudo-classes as the batch size; with fewer than `B / 2` a warning says
    that guidance cannot then do much.

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

    def __init__(
        self,
        images,
        batch_size,
        *,
        shuffle=True,
        seed=None,
        labels=None,
        class_names=None,
        pseudo_labels=None,
        **kwargs,
    ):
        files = kwargs.pop("_files", None)
        checked = kwargs.pop("_checked", False)  # SimCLR.fit checked `x` already
        super().__init__(**kwargs)
        if files is None:
            images = np.asarray(images) if checked else check_images(images)
            if images.ndim == 3:  # (N, H, W): one channel
                images = images[..., None]
            self._cache, self.paths = images, None
            self._decode_args = None
        else:
            self._cache, self.paths, self._decode_args = files
        self.num_images = len(self.paths) if self._cache is None else len(self._cache)
        _check_batch_size(batch_size, self.num_images, "")
        check_seed(seed)
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.seed = seed
        self._base_seed = int(seed) if seed is not None else int(np.random.SeedSequence().entropy)
        self.labels = None if labels is None else check_labels(labels, self.num_images)
        self.class_names = None if class_names is None else list(class_names)
        self.skipped_files = []
        self.epoch = 0
        self._prefetch = None
        self._start_pools()
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
        self._pseudo_labels = (
            None if value is None else check_labels(value, self.num_images, "pseudo_labels")
        )
        if self._pseudo_labels is not None:
            n_clusters = len(np.unique(self._pseudo_labels))
            guided.warn_if_few_clusters(n_clusters, self.batch_size, stacklevel=4)
        self._plan_epoch()

    @property
    def image_shape(self):
        """`(H, W, C)` of every image."""
        if self._cache is not None:
            return tuple(self._cache.shape[1:])
        return tuple(self._decode_args[0]) + (3,)

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
            self._stats = dict(
                guided.batch_stats(self._batches, self._pseudo_labels), epoch=self.epoch
            )
            return
        order = rng.permutation(self.num_images) if self.shuffle else np.arange(self.num_images)
        self._batches = order[: len(self) * self.batch_size].reshape(len(self), self.batch_size)

    def batch_indices(self, index):
        """Image indices of batch `index` in the current epoch."""
        if not 0 <= index < len(self):
            raise IndexError(f"Batch index out of range [0, {len(self)}). Received: index={index}")
        return np.asarray(self._batches[index])

    def batch_stats(self):
        """This epoch's pseudo-label statistics (`guided.batch_stats`), or None."""
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
        batch = (
            pending[1].result()
            if pending is not None and pending[0] == key
            else self._take(indices)
        )
        if index + 1 < len(self):
            self._prefetch = (
                (self.epoch, int(index) + 1),
                self._pools.get("prefetch").submit(self._take, self.batch_indices(index + 1)),
            )
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
        check_int(epoch, "epoch", minimum=0)
        self.epoch = int(epoch)
        self._plan_epoch()

    def _take(self, indices):
        if self._cache is not None:
            return self._cache[indices]
        size, mode, background, workers = self._decode_args
        pool = self._pools.get("decode", workers or io.default_workers())
        jobs = [(self.paths[i], size, mode, background) for i in indices]
        out = np.empty((len(indices),) + tuple(size) + (3,), np.uint8)
        for k, (array, error) in enumerate(pool.map(io.try_load_image, jobs)):
            if error is not None:
                raise OSError(f"Image file changed since it was validated: {jobs[k][0]} ({error})")
            out[k] = array
        return out

    def _start_pools(self):
        self._pools = _ThreadPools()
        # Runs `shutdown(wait=False)` when the generator is collected: it may
        # be collected on one of its own threads, which cannot join itself.
        self._finalizer = weakref.finalize(self, self._pools.shutdown)

    def close(self):
        """Shut down the decoding threads (started again if used again)."""
        self._prefetch = None
        self._pools.shutdown(wait=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def __getstate__(self):
        state = self.__dict__.copy()
        # Thread pools, futures and finalizers do not pickle (use_multiprocessing).
        state["_prefetch"] = None
        del state["_pools"], state["_finalizer"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._start_pools()

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

    @classmethod
    def from_files(
        cls,
        paths,
        image_size,
        batch_size,
        *,
        labels=None,
        class_names=None,
        resize_mode="crop",
        background=255,
        cache_limit_bytes=DEFAULT_CACHE_LIMIT,
        decode_workers=None,
        verbose=1,
        **kwargs,
    ):
        """Images from a list of file paths, decoded once and validated.

        Unreadable files (empty, truncated, corrupt, not an image, missing)
        are skipped with one warning naming each; `skipped_files` lists
        `(path, reason)` pairs.

        Args:
            paths: Image file paths.
            image_size: `(H, W)` every image is resized to.
            batch_size: Images per batch.
            labels: Optional class id per path.
            class_names: Optional names of the label ids.
            resize_mode: `"crop"` (keep the aspect ratio, crop the centre)
                or `"stretch"` (plain resize).
            background: Grey level (0-255) transparency is composited on;
                255 is white.
            cache_limit_bytes: Keep decoded images in memory when
                `N * H * W * 3` bytes fit; 0 never caches.
            decode_workers: Decoding threads (default: one per core, up to 32).
            verbose: Progress bar while decoding 256 files or more.
            **kwargs: Constructor arguments (`shuffle`, `seed`,
                `pseudo_labels`, PyDataset arguments).

        Returns:
            A `DataGeneratorSimCLR`.
        """
        height, width = _check_image_size(image_size)
        check_choice(resize_mode, "resize_mode", io.RESIZE_MODES)
        check_int(background, "background", 0, 255)
        check_number(cache_limit_bytes, "cache_limit_bytes", minimum=0)
        paths = [os.fspath(p) for p in paths]
        if not paths:
            raise ValueError("No image files to load. Received: paths=[]")
        if labels is not None:
            check_labels(labels, len(paths))
        decode = ((height, width), resize_mode, int(background))
        fits = len(paths) * height * width * 3 <= cache_limit_bytes
        cache = np.empty((len(paths), height, width, 3), np.uint8) if fits else None
        ok, errors = io.decode_files(
            paths, *decode, out=cache, workers=decode_workers, verbose=verbose
        )
        skipped = [(paths[i], errors[i]) for i in sorted(errors)]
        io.warn_skipped_files(skipped, len(paths), stacklevel=3)
        good = np.flatnonzero(ok)
        if not len(good):
            raise ValueError(
                f"None of the {len(paths)} image files could be decoded, e.g. {skipped[0][0]}"
            )
        if cache is not None and len(good) < len(paths):
            for j, i in enumerate(good):  # compact in place, no second copy
                cache[j] = cache[i]
            cache = cache[: len(good)]
        if labels is not None:
            labels = check_labels(labels, len(paths))[good]
        keep = [paths[i] for i in good]
        _check_batch_size(batch_size, len(keep), f" (decoded from {len(paths)} files)")
        decode_args = decode + (decode_workers,)
        gen = cls(
            None,
            batch_size,
            labels=labels,
            class_names=class_names,
            _files=(cache, keep, decode_args),
            **kwargs,
        )
        gen.skipped_files = skipped
        return gen

    @classmethod
    def from_directory(cls, directory, image_size, batch_size, *, labels="inferred", **kwargs):
        """Images from a folder, searched recursively.

        With `labels="inferred"` and class sub-folders, each first-level
        sub-folder is a class (sorted names give ids 0, 1, ...); images
        directly in `directory` are then ignored with a warning. A folder
        without sub-folders is unlabelled (`labels` None). Extensions:
        jpg, jpeg, png, bmp, gif, webp, tif, tiff, in any case.

        Args:
            directory: Folder path.
            image_size: `(H, W)` every image is resized to.
            batch_size: Images per batch.
            labels: `"inferred"` (from sub-folders) or None (unlabelled,
                every image found is used).
            **kwargs: `from_files` and constructor arguments.

        Returns:
            A `DataGeneratorSimCLR` with `labels` and `class_names`.
        """
        paths, labels, class_names, loose = io.scan_directory(directory, labels)
        inner = nested_class_root(directory) if class_names else None
        if inner is not None:
            warnings.warn(
                f"{os.fspath(directory)!r} holds a single folder whose sub-folders look like "
                f"classes, so every image gets one label; pass {inner!r} to use its classes.",
                stacklevel=2,
            )
        if loose:
            warnings.warn(
                f"Ignored {len(loose)} image(s) directly in {os.fspath(directory)!r} because "
                "class sub-folders exist (pass labels=None to use every image): "
                + ", ".join(loose),
                stacklevel=2,
            )
        return cls.from_files(
            paths, image_size, batch_size, labels=labels, class_names=class_names, **kwargs
        )

    @classmethod
    def from_dataframe(
        cls,
        dataframe,
        image_size,
        batch_size,
        *,
        filename_column="filename",
        label_column=None,
        base_dir=None,
        **kwargs,
    ):
        """Images named in a DataFrame (pandas or anything with its interface).

        Args:
            dataframe: Table with a column of file names.
            image_size: `(H, W)` every image is resized to.
            batch_size: Images per batch.
            filename_column: Column of paths, relative to `base_dir`.
            label_column: Optional column of labels: integer ids are kept,
                other values become ids of their sorted unique values.
            base_dir: Folder the file names are relative to.
            **kwargs: `from_files` and constructor arguments.

        Returns:
            A `DataGeneratorSimCLR`.
        """
        paths, labels, class_names = io.dataframe_files(
            dataframe, filename_column, label_column, base_dir
        )
        return cls.from_files(
            paths, image_size, batch_size, labels=labels, class_names=class_names, **kwargs
        )
