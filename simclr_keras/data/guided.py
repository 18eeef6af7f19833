"""Guided batch order (G-SimCLR): spread each pseudo-label over the batches.

SimCLR treats every other image of a batch as a negative. When two images
of the same class share a batch, one is pushed away from the other; G-SimCLR
builds batches from pseudo-labels so that such false negatives are rare.
"""

import math

import numpy as np


def check_pseudo_labels(pseudo_labels, num_images):
    """Validate pseudo-labels against the data set size.

    Args:
        pseudo_labels: One integer label per image.
        num_images: Number of images they must match.

    Returns:
        An int64 array of shape `(num_images,)`.
    """
    labels = np.asarray(pseudo_labels)
    if labels.ndim != 1 or len(labels) != num_images:
        raise ValueError(
            "`pseudo_labels` must hold one label per image "
            f"({num_images} images). Received: pseudo_labels of shape {labels.shape}"
        )
    integral = np.issubdtype(labels.dtype, np.integer) or np.all(np.mod(labels, 1) == 0)
    if labels.size and not integral:
        raise ValueError(
            "`pseudo_labels` must be integers (cluster ids). Received: "
            f"dtype {labels.dtype}, e.g. {labels[:3].tolist()}"
        )
    return labels.astype(np.int64)


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


def batch_stats(batches, pseudo_labels):
    """How often pseudo-labels repeat within batches.

    Args:
        batches: Index arrays, as from `guided_batches`.
        pseudo_labels: Integer cluster id per image.

    Returns:
        A dict: `n_batches`; `repeat_share`, the share of batches holding
        some pseudo-label twice or more; `max_per_label`, the most images of
        one pseudo-label in one batch; `bound`, the guarantee
        `max_c ceil(n_c / n_batches)`.

    Example:
    >>> batch_stats([np.array([0, 1]), np.array([2, 3])], [0, 0, 1, 1])["repeat_share"]
    1.0
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
    }
