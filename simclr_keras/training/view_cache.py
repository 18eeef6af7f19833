"""SimCLR on cached views: the frozen bottom of the backbone runs once per view.

While only the top of a backbone trains (the pretrained recipe trains the
projection head, then the top half of the backbone), the bottom's output
of an augmented view never changes: the bottom is frozen and its batch
norm runs in inference mode. Yet a SimCLR step spends most of its time
there: drawing the two views and running them through the bottom (for
EfficientNet-Lite0 at 80 px, the bottom half by weighted layers holds about
98 % of the forward pass's work). `SimCLR.fit(cache_views=V)` draws `V`
views of every image once, runs them through the bottom once, keeps the
maps in memory (float16), and then trains every epoch on two different
cached views of each image (a new pair and a new batch order each epoch).

What changes: each image's pairs come from `V` fixed views (`V (V - 1) / 2`
pairs) instead of two fresh views per step. Whether that keeps the
result is measured, not assumed: see the documentation's speed page.
What does not: the loss, the batch size, the schedule, the callbacks, and
the trained layers (the top's layers are the backbone's own).
"""

import keras
import numpy as np
from keras import ops

from simclr_keras._checks import check_int
from simclr_keras.backbones.freezing import unfrozen_count, weighted_layers
from simclr_keras.backbones.split import frozen_split
from simclr_keras.callbacks.gradual_unfreeze import GradualUnfreeze, parse_stage
from simclr_keras.data.generator import DataGeneratorSimCLR
from simclr_keras.layers.input_scaling import apply_preprocessing

CACHE_DTYPE = "float16"
FLOAT16_MAX = 65504.0
# The share of the machine's available memory the cache may take.
MEMORY_SHARE = 0.5
# The keys of a batch of cached views (`SimCLR.call` recognises them).
VIEW_KEYS = ("cached_view_a", "cached_view_b")


def check_cache_views(cache_views):
    """`cache_views` as an int >= 2, or None (no cache).

    Example:
    >>> check_cache_views(8), check_cache_views(None)
    (8, None)
    """
    if cache_views is None or cache_views is False or cache_views == 0:
        return None
    return check_int(
        cache_views,
        "cache_views",
        minimum=2,
        why="(each image needs two different cached views per pair; 0 or None: no cache)",
    )


def trainable_layers(base_model, callbacks, epochs):
    """The backbone's weighted layers that train at any epoch of the run:
    those trainable now and those any `GradualUnfreeze` in `callbacks`
    unfreezes before `epochs`.
    """
    layers = weighted_layers(base_model)
    counts = [unfrozen_count(base_model)]
    for callback in callbacks:
        if isinstance(callback, GradualUnfreeze):
            base = callback.base_model or base_model
            if base is not base_model:
                continue
            for epoch, value in callback.schedule.items():
                if epoch < epochs:
                    counts.append(parse_stage(value, base_model, f"`schedule[{epoch}]`")[0])
    if any(n in (-1, None) or n >= len(layers) for n in counts):
        return list(layers)
    return layers[len(layers) - max(counts) :]


def collect_images(data):
    """Every image of `data` once: a `DataGeneratorSimCLR`'s images, or one
    pass over the batches of a `PyDataset` or `tf.data.Dataset`.
    """
    if isinstance(data, DataGeneratorSimCLR):
        if data.pseudo_labels is not None:
            raise ValueError(
                "`cache_views` trains on random pairs of cached views, so it cannot keep "
                "pseudo-label guided batches (G-SimCLR): pass `cache_views=None`, or a "
                "data set without `pseudo_labels`. Received: a DataGeneratorSimCLR with "
                "pseudo_labels"
            )
        return np.asarray(data.images)
    if isinstance(data, keras.utils.PyDataset):
        batches = [data[i] for i in range(len(data))]
    else:
        batches = list(data)
    batches = [b[0] if isinstance(b, (tuple, list)) else b for b in batches]
    return np.concatenate([ops.convert_to_numpy(b) for b in batches], axis=0)


def _available_bytes():
    try:
        import os

        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_cache_memory(num_images, views, cut_shape, available=None):
    """Raise when `views` cached maps of `num_images` images would take more
    than `MEMORY_SHARE` of the available memory; returns their bytes.

    Example:
    >>> check_cache_memory(2000, 8, (5, 5, 80))
    64000000
    """
    size = int(num_images) * int(views) * int(np.prod(cut_shape)) * np.dtype(CACHE_DTYPE).itemsize
    available = _available_bytes() if available is None else available
    if available is not None and size > MEMORY_SHARE * available:
        raise ValueError(
            f"`cache_views` must fit in memory: {views} views of {num_images} images as "
            f"{tuple(cut_shape)} maps take {size / 2**30:.1f} GiB, more than "
            f"{MEMORY_SHARE:.0%} of the {available / 2**30:.1f} GiB available. Pass fewer "
            f"views or `cache_views=None`. Received: cache_views={views}"
        )
    return size


class CacheState:
    """What `SimCLR.call` needs while it trains on cached views: the top.

    A plain object, so the model does not track the top as a layer of its
    own (its layers are the backbone's; a saved model stays the same).
    """

    def __init__(self, top):
        self.top = top


class _ViewMaps(keras.Model):
    """Augmented views of images through the preprocessing and the frozen bottom."""

    def __init__(self, simclr, bottom):
        super().__init__(name="view_maps")
        self.augmentation = simclr.augmentation
        self.to_backbone = simclr.to_backbone
        self.bottom = bottom
        self.preprocessing = simclr.preprocessing

    def call(self, images):
        views = apply_preprocessing(self.augmentation(images, training=True), self.preprocessing)
        if self.to_backbone is not None:
            views = self.to_backbone(views)
        return self.bottom(views, training=False)


def cache_maps(simclr, images, views, bottom, verbose=1):
    """`(N, views) + cut_shape` bottom maps of `views` augmented views of
    each image (`CACHE_DTYPE`; float32 when a map exceeds float16's range).
    """
    viewer = _ViewMaps(simclr, bottom)
    bar = keras.utils.Progbar(views, unit_name="view") if verbose else None
    out = None
    for v in range(views):
        maps = viewer.predict(images, batch_size=2 * simclr.batch_size, verbose=0)
        if out is None:
            big = not np.all(np.abs(maps) < FLOAT16_MAX)
            out = np.empty((len(images), views) + maps.shape[1:], "float32" if big else CACHE_DTYPE)
        out[:, v] = maps
        if bar is not None:
            bar.update(v + 1)
    return out


class CachedViewPairs(keras.utils.PyDataset):
    """Batches of two different cached views of each image, reshuffled and
    redrawn every epoch.

    Args:
        maps: `(N, V, ...)` cached maps, `V >= 2`.
        batch_size: Images per batch (each gives two views); the last
            `N mod batch_size` images of an epoch's order wait for the next.
        seed: Seed of the order and the pairs.

    Returns:
        A `keras.utils.PyDataset` of dicts `{"cached_view_a", "cached_view_b"}`.

    Example:
    >>> pairs = CachedViewPairs(np.zeros((10, 3, 2, 2, 4), "float16"), 4, seed=0)
    >>> len(pairs), pairs[0]["cached_view_a"].shape
    (2, (4, 2, 2, 4))
    """

    def __init__(self, maps, batch_size, seed=None):
        super().__init__()
        self.maps = maps
        self.batch_size = int(batch_size)
        self.rng = np.random.default_rng(seed)
        self._draw()

    def _draw(self):
        n, views = self.maps.shape[:2]
        self.order = self.rng.permutation(n)
        # Two different views, each ordered pair equally likely.
        self.first = self.rng.integers(views, size=n)
        self.second = (self.first + self.rng.integers(1, views, size=n)) % views

    def __len__(self):
        return len(self.maps) // self.batch_size

    def __getitem__(self, index):
        idx = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        a, b = VIEW_KEYS
        return {
            a: self.maps[idx, self.first[idx]].astype("float32"),
            b: self.maps[idx, self.second[idx]].astype("float32"),
        }

    def on_epoch_end(self):
        self._draw()


def cache_split(base_model, callbacks, epochs, views):
    """`(bottom, top, name)`: the backbone cut below every layer that trains
    in the run (`trainable_layers`), for `views` cached views.

    Raises:
        ValueError: when there is no such cut (a backbone that trains every
            layer at some epoch, or one that is not functional).
    """
    train = trainable_layers(base_model, callbacks, epochs)
    found = frozen_split(base_model, train)
    if found is None or not found[0].weights:
        what = (
            "every layer trains"
            if len(train) == len(weighted_layers(base_model))
            else "the backbone has no cut below its trained layers"
        )
        raise ValueError(
            "`cache_views` needs a frozen bottom to cache: a cut of the backbone's graph "
            "below every layer that trains in this run (the pretrained recipe trains the "
            f"top half only); for {base_model.name!r} {what}. Pass `cache_views=None`. "
            f"Received: cache_views={views}"
        )
    return found


def cached_pairs(simclr, data, views, callbacks, epochs, verbose=1):
    """Cache `views` views of `data`'s images through the backbone's frozen
    bottom; returns `(pairs, top)`: the `CachedViewPairs` to train on and
    the backbone's top from the cut (its layers are the backbone's).

    Raises:
        ValueError: from `cache_split`, or when the cache would not fit in
            memory, or `data` has pseudo-label guided batches.
    """
    bottom, top, name = cache_split(simclr.base_model, callbacks, epochs, views)
    images = collect_images(data)
    cut_shape = tuple(int(d) for d in bottom.outputs[0].shape[1:])
    size = check_cache_memory(len(images), views, cut_shape)
    if verbose:
        print(
            f"Caching {views} views of {len(images)} images through the frozen bottom "
            f"(up to {name}, maps {cut_shape}, {size / 2**20:.0f} MiB)",
            flush=True,
        )
    maps = cache_maps(simclr, images, views, bottom, verbose)
    return CachedViewPairs(maps, simclr.batch_size, simclr.seed), top
