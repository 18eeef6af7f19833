"""PNG plots: augmentation preview grid and training curves."""

import os

import numpy as np


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


def save_augmentation_preview(
    images, path, augmentation=None, n_images=6, n_views=5, seed=0
):
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

    from simclr_keras.augment import SimCLRAugmentation

    images = np.asarray(images)[:n_images]
    if augmentation is None:
        augmentation = SimCLRAugmentation(
            images.shape[1], images.shape[2], seed=seed
        )
    views = [
        ops.convert_to_numpy(augmentation(images, training=True))
        for _ in range(n_views)
    ]
    plt = _pyplot()
    n = len(images)
    fig, axes = plt.subplots(
        n, n_views + 1, figsize=(1.6 * (n_views + 1), 1.6 * n), squeeze=False
    )
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
    """Plot loss, contrastive accuracy and any kNN accuracy per epoch.

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
    plt = _pyplot()
    fig, axes = plt.subplots(
        1, max(len(panels), 1), figsize=(4.2 * max(len(panels), 1), 3.2), squeeze=False
    )
    n_epochs = len(logs.get("loss", ()))
    for ax, key in zip(axes[0], panels):
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


def _logged_epochs(n_values, n_epochs, every=None):
    """x positions and label of a metric logged `n_values` times in
    `n_epochs` epochs: every epoch, or every `every`-th and the last (as
    `KNNMonitor` logs); otherwise numbered evaluations."""
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
