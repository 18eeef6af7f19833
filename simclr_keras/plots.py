"""PNG plots: augmentation preview grid, training curves and t-SNE scatter plots
(one backbone, or before/after SimCLR side by side).
"""

import os

import numpy as np

from simclr_keras._checks import check_features


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: works on machines with no display
    import matplotlib.pyplot as plt

    return plt


def _to_display(images):
    images = np.asarray(images)
    if images.dtype == np.uint8:
        images = images.astype("float32") / 255.0
    images = np.clip(images.astype("float32"), 0.0, 1.0)
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    return images


def save_augmentation_preview(images, path, augmentation=None, n_images=6, n_views=5, seed=0):
    """Render source images and several augmented views of each to a PNG.

    Args:
        images: uint8 `(N, H, W, C)` in [0, 255] or float in [0, 1].
        path: Output PNG path (folders are created).
        augmentation: A `SimCLRAugmentation` (or any layer mapping images to
            [0, 1] views), e.g. `simclr.augmentation`. Default: SimCLR's
            augmentation at the images' size.
        n_images: Rows: how many source images.
        n_views: Columns of views per image (plus the original).
        seed: Seed of the default augmentation.

    Returns:
        The path written.

    Example:
    >>> save_augmentation_preview(x_uint8, "img/augmentations.png",
    ...                           simclr.augmentation)   # doctest: +SKIP
    """
    from keras import ops

    from simclr_keras.layers.augmentation import SimCLRAugmentation

    images = np.asarray(images)[:n_images]
    if augmentation is None:
        augmentation = SimCLRAugmentation(images.shape[1], images.shape[2], seed=seed)
    views = [ops.convert_to_numpy(augmentation(images, training=True)) for _ in range(n_views)]
    plt = _pyplot()
    n = len(images)
    fig, axes = plt.subplots(n, n_views + 1, figsize=(1.6 * (n_views + 1), 1.6 * n), squeeze=False)
    originals = _to_display(images)
    for row in range(n):
        cells = [originals[row]] + [_to_display(v)[row] for v in views]
        for col, cell in enumerate(cells):
            ax = axes[row][col]
            ax.imshow(cell, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title("original" if col == 0 else f"view {col}", fontsize=8)
    fig.suptitle("SimCLR augmentation preview", fontsize=10)
    fig.tight_layout()
    _makedirs(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_history(history, path, title="SimCLR training", knn_every=None):
    """Plot loss, contrastive accuracy, any kNN accuracy and the guard's
    linear-probe estimates at each label budget, per epoch.

    Args:
        history: A Keras `History` or its `.history` dict.
        path: Output PNG path.
        title: Figure title.
        knn_every: The `every` of the `KNNMonitor`, to place its points at
            their epochs (every n-th and the last); without it, or when the
            count does not fit, they are numbered as evaluations.

    Returns:
        The path written.

    Example:
    >>> plot_history(simclr.fit(x, epochs=5), "img/curves.png")  # doctest: +SKIP
    """
    logs = getattr(history, "history", history)
    panels = [k for k in ("loss", "contrastive_acc") if k in logs]
    panels += sorted(k for k in logs if k.startswith("knn") or k.endswith("knn_acc"))
    budgets = [k for k in logs if k.startswith("guard_linear_") and k.endswith("pct")]
    budgets.sort(key=lambda k: float(k[len("guard_linear_") : -len("pct")]))
    if budgets:
        panels.append(budgets)  # one panel, a line per label budget
    plt = _pyplot()
    fig, axes = plt.subplots(
        1, max(len(panels), 1), figsize=(4.2 * max(len(panels), 1), 3.2), squeeze=False
    )
    n_epochs = len(logs.get("loss", ()))
    for ax, key in zip(axes[0], panels):
        if isinstance(key, list):
            _plot_budgets(ax, logs, key, n_epochs)
            continue
        values = logs[key]
        epochs, xlabel = _logged_epochs(len(values), n_epochs, knn_every)
        ax.plot(epochs, values, marker="o", markersize=3, label=key)
        if f"val_{key}" in logs:
            ax.plot(epochs, logs[f"val_{key}"], marker="o", markersize=3, label=f"val_{key}")
            ax.legend(fontsize=8)
        ax.set_xlabel(xlabel)
        ax.set_title(key)
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    _makedirs(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _plot_budgets(ax, logs, keys, n_epochs):
    """The guard's cross-validated linear-probe accuracy per label budget and epoch."""
    for key in keys:
        values = logs[key]
        epochs, xlabel = _logged_epochs(len(values), n_epochs)
        budget = key[len("guard_linear_") : -len("pct")]
        ax.plot(epochs, values, marker="o", markersize=3, label=f"{budget} % of the labels")
    ax.set_xlabel(xlabel)
    ax.set_title("guard: linear probe (training images)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)


def _logged_epochs(n_values, n_epochs, every=None):
    """X positions and label of a metric logged `n_values` times in
    `n_epochs` epochs: every epoch, or every `every`-th and the last (as
    `KNNMonitor` logs); otherwise numbered evaluations.
    """
    if not n_epochs or n_values >= n_epochs:
        return np.arange(1, n_values + 1), "epoch"
    # History keeps no epoch numbers; rebuild them from `every` when they fit.
    at = sorted(set(range(every, n_epochs + 1, every)) | {n_epochs}) if every else []
    if len(at) == n_values:
        return np.asarray(at), "epoch"
    return np.arange(1, n_values + 1), "evaluation"


def _makedirs(path):
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)


def _check(features, labels, name="features"):
    features = check_features(features, name).astype("float32")
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


def plot_tsne(
    features,
    labels,
    path,
    class_names=None,
    title="t-SNE of the features",
    max_points=2000,
    perplexity=30.0,
    seed=0,
):
    """Scatter the 2-D t-SNE of features coloured by class, saved as PNG.

    Args:
        features: `(N, d)` features.
        labels: `(N,)` class labels (ints when `class_names` is given).
        path: Output `.png` path; folders are created.
        class_names: Optional names, indexed by label, for the legend.
        title: Plot title.
        max_points: At most this many points (a seeded random subsample).
        perplexity: t-SNE perplexity, see `tsne_embedding`.
        seed: Seeds the subsample and the embedding.

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


def plot_tsne_pair(
    features_before,
    features_after,
    labels,
    path,
    class_names=None,
    titles=("Before SimCLR", "After SimCLR"),
    max_points=2000,
    perplexity=30.0,
    seed=0,
):
    """Two t-SNE plots side by side (e.g. random-init vs SimCLR backbone), one PNG.

    Both use the same subsample of points.

    Args:
        features_before: `(N, d1)` features of the images, e.g. from the
            random-init backbone.
        features_after: `(N, d2)` features of the same images.
        labels: `(N,)` class labels, as in `plot_tsne`.
        path: Output `.png` path, as in `plot_tsne`.
        class_names: Optional legend names, as in `plot_tsne`.
        max_points: At most this many points, as in `plot_tsne`.
        perplexity: t-SNE perplexity, as in `plot_tsne`.
        seed: Seeds the subsample and the embeddings.
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
        _scatter(
            ax, tsne_embedding(feats[keep], perplexity, seed), labels[keep], class_names, title
        )
    return _save(fig, path, axes[1])
