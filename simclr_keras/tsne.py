"""t-SNE scatter plots of features, alone or before/after SimCLR side by side."""

import os

import numpy as np


def _pyplot():
    # Agg renders to files without a display; selected before pyplot loads.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _check(features, labels, name="features"):
    features = np.asarray(features, dtype="float32")
    labels = np.asarray(labels).ravel()
    if features.ndim != 2 or len(features) != len(labels) or len(features) < 3:
        raise ValueError(
            f"`{name}` must be (N, d) with N >= 3 and one label per row. "
            f"Received: {name} with shape {features.shape} and "
            f"{len(labels)} labels"
        )
    return features, labels


def _subsample(n, max_points, seed):
    if max_points is None or n <= max_points:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, int(max_points), replace=False))


def tsne_embedding(features, perplexity=30.0, seed=0):
    """2-D t-SNE embedding (scikit-learn, PCA initialisation).

    Args:
        features: `(N, d)` array, N >= 3.
        perplexity: Capped at `(N - 1) / 3` so small sets work.
        seed: `random_state`.

    Returns:
        `(N, 2)` float array.

    Reference:
        van der Maaten, Hinton, "Visualizing Data using t-SNE", JMLR 2008.
    """
    from sklearn.manifold import TSNE

    features = np.asarray(features, dtype="float32")
    perplexity = float(min(perplexity, max(1.0, (len(features) - 1) / 3.0)))
    return TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(features)


def _scatter(ax, embedding, labels, class_names, title):
    classes = np.unique(labels)
    cmap = _pyplot().get_cmap("tab10" if len(classes) <= 10 else "tab20")
    for i, c in enumerate(classes):
        mask = labels == c
        name = class_names[int(c)] if class_names is not None else str(c)
        ax.scatter(embedding[mask, 0], embedding[mask, 1], s=6, color=cmap(i % cmap.N), label=name)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])


def _save(fig, path, legend_ax):
    legend_ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), markerscale=2, fontsize="small")
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    _pyplot().close(fig)
    return path


def _check_names(labels, class_names):
    if class_names is not None and np.max(labels) >= len(class_names):
        raise ValueError(
            "`class_names` must name every class: labels are indices into it. "
            f"Received: {len(class_names)} names for labels up to {np.max(labels)}"
        )


def plot_tsne(features, labels, path, class_names=None, title="t-SNE of the features",
              max_points=2000, perplexity=30.0, seed=0):
    """Scatter the 2-D t-SNE of features coloured by class, saved as PNG.

    Args:
        features: `(N, d)` features.
        labels: `(N,)` class labels (ints when `class_names` is given).
        path: Output `.png` path; folders are created.
        class_names: Optional names, indexed by label, for the legend.
        title: Plot title.
        max_points: At most this many points (a seeded random subsample).
        perplexity, seed: See `tsne_embedding`.

    Returns:
        The path.

    Example:
    >>> plot_tsne(extract_features(simclr, x), y, "tsne.png")  # doctest: +SKIP
    """
    features, labels = _check(features, labels)
    _check_names(labels, class_names)
    keep = _subsample(len(features), max_points, seed)
    embedding = tsne_embedding(features[keep], perplexity, seed)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 5))
    _scatter(ax, embedding, labels[keep], class_names, title)
    return _save(fig, path, ax)


def plot_tsne_pair(features_before, features_after, labels, path, class_names=None,
                   titles=("Before SimCLR", "After SimCLR"), max_points=2000, perplexity=30.0, seed=0):
    """Two t-SNE plots side by side (e.g. random-init vs SimCLR backbone), one PNG.

    Both use the same subsample of points.

    Args:
        features_before, features_after: `(N, d1)` and `(N, d2)` features of
            the same images.
        labels, path, class_names, max_points, perplexity, seed: As in
            `plot_tsne`.
        titles: Titles of the left and right plots.

    Returns:
        The path.

    Example:
    >>> plot_tsne_pair(f_random, f_simclr, y, "tsne_pair.png")  # doctest: +SKIP
    """
    before, labels = _check(features_before, labels, "features_before")
    after, _ = _check(features_after, labels, "features_after")
    _check_names(labels, class_names)
    keep = _subsample(len(before), max_points, seed)
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 5))
    for ax, feats, title in zip(axes, (before, after), titles):
        _scatter(ax, tsne_embedding(feats[keep], perplexity, seed), labels[keep], class_names, title)
    return _save(fig, path, axes[1])
