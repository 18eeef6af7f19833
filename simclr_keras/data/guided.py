"""Guided batch order (G-SimCLR): spread each pseudo-label over the batches.

SimCLR treats every other image of a batch as a negative. When two images
of the same class share a batch, one is pushed away from the other; G-SimCLR
builds batches from pseudo-labels so that such false negatives are rare.
"""

import math
import warnings

import numpy as np


def guided_batches(pseudo_labels, batch_size, rng):
    """One epoch of full batches that spread every pseudo-label evenly.

    With `n_b = len(pseudo_labels) // batch_size` batches, a batch holds at
    most `ceil(n_c / n_b)` images of a cluster `c` of size `n_c`: the fewest
    repeats the cluster sizes allow (by pigeonhole, some batch must hold
    that many when all `n_c` images are used), hence no repeated
    pseudo-label at all when no cluster has more than `n_b` images.

    Construction: drop `n - n_b * B` random images (different ones each
    epoch), shuffle within each cluster, concatenate the clusters in a
    random order, deal position `k` to batch `k mod n_b`, then shuffle the
    batch order and the order within each batch.

    Proof: `n_b * B` positions dealt round-robin give every batch exactly
    `B` images, each used once. A cluster keeps `m_c <= n_c` images after
    the drop and fills `m_c` consecutive positions; any `n_b` consecutive
    positions meet each batch exactly once, so the `m_c` positions split
    into `ceil(m_c / n_b)` runs of at most `n_b` and meet each batch at most
    `ceil(m_c / n_b) <= ceil(n_c / n_b)` times. The final shuffles permute
    batches and positions inside batches and change no count.

    Args:
        pseudo_labels: Integer cluster id per image, shape `(n,)`.
        batch_size: Images per batch `B` (`1 <= B <= n`).
        rng: A `numpy.random.Generator`.

    Returns:
        A list of `n // B` int64 index arrays of length `B`.

    Example:
    >>> batches = guided_batches([0, 0, 1, 1, 2, 2], 3, np.random.default_rng(0))
    >>> [sorted(np.asarray([0, 0, 1, 1, 2, 2])[b].tolist()) for b in batches]
    [[0, 1, 2], [0, 1, 2]]

    Reference:
        Chakraborty, Gosthipaty, Paul, "G-SimCLR: Self-Supervised
        Contrastive Learning with Guided Projection via Pseudo Labelling",
        ICDM Workshops 2020, arXiv:2009.12007.
    """
    labels = np.asarray(pseudo_labels).reshape(-1)
    n, batch_size = len(labels), int(batch_size)
    if not 1 <= batch_size <= n:
        raise ValueError(
            f"`batch_size` must be between 1 and the number of images ({n}). "
            f"Received: batch_size={batch_size}"
        )
    n_batches = n // batch_size
    kept = np.sort(rng.permutation(n)[: n_batches * batch_size])
    clusters = [kept[labels[kept] == c] for c in np.unique(labels[kept])]
    order = np.concatenate([rng.permutation(clusters[i]) for i in rng.permutation(len(clusters))])
    # Column j of the (B, n_b) grid holds positions j, j + n_b, ...: batch j.
    grid = order.reshape(batch_size, n_batches).T
    return [rng.permutation(grid[j]) for j in rng.permutation(n_batches)]


def random_same_label_share(pseudo_labels):
    """Expected share of an anchor's negatives that share its pseudo-label in random batches.

    A uniformly random batch of `B` of the `n` images holds, besides the
    anchor, `B - 1` others drawn without replacement from the remaining
    `n - 1`; `n_c - 1` of those carry the anchor's label `c`. So the share
    is `(n_c - 1) / (n - 1)` whatever `B`, and over all anchors
    `sum_c n_c (n_c - 1) / (n (n - 1))` (about `1 / k` for `k` equal clusters).

    Args:
        pseudo_labels: Integer cluster id per image.

    Returns:
        A float in [0, 1].

    Example:
    >>> random_same_label_share([0, 0, 1, 1])
    0.3333333333333333
    """
    labels = np.asarray(pseudo_labels).reshape(-1)
    n = len(labels)
    if n < 2:
        return 0.0
    sizes = np.unique(labels, return_counts=True)[1].astype(np.float64)
    return float(np.sum(sizes * (sizes - 1)) / (n * (n - 1)))


def same_label_share(batches, pseudo_labels):
    """Share of an anchor's negatives (other images of its batch) with its pseudo-label.

    Averaged over every image of every batch; SimCLR's negatives are the
    `2(B - 1)` views of the other images, which gives the same share.

    Args:
        batches: Index arrays, as from `guided_batches`.
        pseudo_labels: Integer cluster id per image.

    Returns:
        A float in [0, 1] (0.0 for no batches or batches of one image).

    Example:
    >>> same_label_share([np.array([0, 1]), np.array([2, 3])], [0, 0, 1, 2])
    0.5
    """
    labels = np.asarray(pseudo_labels).reshape(-1)
    same, anchors = 0.0, 0
    for batch in batches:
        size = len(batch)
        if size < 2:
            continue
        counts = np.unique(labels[np.asarray(batch)], return_counts=True)[1]
        same += float(np.sum(counts * (counts - 1))) / (size - 1)
        anchors += size
    return same / anchors if anchors else 0.0


def warn_if_few_clusters(n_clusters, batch_size, stacklevel=3):
    """Warn when `k` pseudo-classes are too few for batches of `B` to be guided.

    With `k < B / 2` every batch must hold about `B / k` images of each
    pseudo-class, so the share of same-pseudo-label negatives cannot drop
    much below the random `~1 / k`. G-SimCLR sets `k = B`.

    Args:
        n_clusters: Number of pseudo-classes `k`.
        batch_size: SimCLR batch size `B`.
        stacklevel: Passed to `warnings.warn`.

    Returns:
        True when it warned.
    """
    if 2 * int(n_clusters) >= int(batch_size):
        return False
    warnings.warn(
        f"Guided batches with n_clusters={n_clusters} pseudo-classes and "
        f"batch_size={batch_size}: each batch must hold about B/k = "
        f"{batch_size / n_clusters:.1f} images of every pseudo-class, so the "
        "share of an anchor's negatives that carry its own pseudo-label stays "
        f"near the random ~1/k = {1 / n_clusters:.3f}; guidance can only even "
        "out the counts. G-SimCLR uses n_clusters = batch_size (at most one "
        "image per pseudo-class per batch when the clusters are balanced).",
        UserWarning,
        stacklevel=stacklevel,
    )
    return True


def batch_stats(batches, pseudo_labels):
    """How often pseudo-labels repeat within batches, guided vs random.

    Args:
        batches: Index arrays, as from `guided_batches`.
        pseudo_labels: Integer cluster id per image.

    Returns:
        A dict: `n_batches`; `repeat_share`, the share of batches holding
        some pseudo-label twice or more; `max_per_label`, the most images of
        one pseudo-label in one batch; `bound`, the guarantee
        `max_c ceil(n_c / n_batches)`; `same_label_share`, the share of an
        anchor's negatives carrying its pseudo-label in these batches
        (`same_label_share()`); `random_same_label_share`, the same share
        expected of uniformly random batches (exact,
        `random_same_label_share()`).

    Example:
    >>> stats = batch_stats([np.array([0, 1]), np.array([2, 3])], [0, 0, 1, 1])
    >>> stats["repeat_share"], stats["same_label_share"]
    (1.0, 1.0)
    """
    labels = np.asarray(pseudo_labels).reshape(-1)
    n_batches = len(batches)
    counts = [np.unique(labels[b], return_counts=True)[1].max() for b in batches]
    sizes = np.unique(labels, return_counts=True)[1]
    return {
        "n_batches": n_batches,
        "repeat_share": float(np.mean(np.asarray(counts) > 1)) if counts else 0.0,
        "max_per_label": int(max(counts)) if counts else 0,
        "bound": math.ceil(sizes.max() / n_batches) if n_batches else 0,
        "same_label_share": same_label_share(batches, labels),
        "random_same_label_share": random_same_label_share(labels),
    }
