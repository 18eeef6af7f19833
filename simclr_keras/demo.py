"""The digits demo: SimCLR on sklearn's bundled digits, end to end on a CPU.

Trains a small CNN with SimCLR on the training images (labels unused), then
compares linear probes at 5/20/100 % of the labels on three feature sets:
the same CNN at random init, the CNN after SimCLR, and raw pixels. Writes an
augmentation preview, training curves, a before/after t-SNE and the metrics.
"""

import os
import time

import numpy as np

from simclr_keras._atomic import atomic_write_json, atomic_write_text

ROWS = ("random init", "SimCLR", "raw pixels")


def load_digits_rgb(image_size=16):
    """Sklearn's 1797 bundled digits as uint8 RGB `(N, S, S, 3)` and labels.

    Args:
        image_size: Side length; the 8x8 originals are resized bilinearly.

    Returns:
        `(images, labels)`.

    Example:
    >>> images, labels = load_digits_rgb(16)
    """
    from PIL import Image
    from sklearn.datasets import load_digits

    data = load_digits()
    gray = np.round(data.images / 16.0 * 255.0).astype("uint8")
    size = (int(image_size), int(image_size))
    resized = np.stack([np.asarray(Image.fromarray(g).resize(size, Image.BILINEAR)) for g in gray])
    return np.repeat(resized[..., None], 3, axis=-1), data.target.astype("int64")


def format_probe_table(results, fractions):
    """Markdown table: one row per feature set, one column per fraction."""
    head = "| features | " + " | ".join(f"{f:.0%} labels" for f in fractions) + " |"
    lines = [head, "|---" * (len(fractions) + 1) + "|"]
    for name, per_fraction in results.items():
        cells = []
        for f in fractions:
            acc = per_fraction[float(f)]["accuracy"]
            cells.append(f"{100 * acc['mean']:.1f} ± {100 * acc['std']:.1f} %")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run_demo(
    output_dir="simclr_demo_output",
    epochs=40,
    batch_size=128,
    image_size=16,
    fractions=(0.05, 0.2, 1.0),
    seeds=(0, 1, 2),
    seed=0,
    verbose=1,
):
    """Run the digits demo and write its plots and metrics.

    Args:
        output_dir: Folder for `augmentations.png`, `training_curves.png`,
            `tsne.png`, `metrics.json` and `results.md`.
        epochs: SimCLR epochs.
        batch_size: Source images per step.
        image_size: Digits are resized to this side length.
        fractions: Label fractions of the linear probes.
        seeds: Seeds of the label draws (mean ± std over them).
        seed: Seed of the split, the weights and the augmentation.
        verbose: 0 silent, 1 progress and the table.

    Returns:
        The metrics dict also written to `metrics.json`.

    Example:
    >>> metrics = run_demo("demo_out", epochs=2)          # doctest: +SKIP
    """
    import keras

    from simclr_keras.backbones.freezing import snapshot_backbone
    from simclr_keras.backbones.zoo import small_cnn

    start = time.time()
    os.makedirs(output_dir, exist_ok=True)
    keras.utils.set_random_seed(seed)
    split = _split_digits(image_size, seed)
    shape = (image_size, image_size, 3)
    backbone = small_cnn(shape)
    baseline = snapshot_backbone(backbone)
    simclr = _digits_simclr(backbone, shape, batch_size, seed)
    history = _pretrain(simclr, split, epochs, seed, verbose, output_dir)
    train_seconds = time.time() - start
    features = _feature_sets(baseline, simclr, split)
    results = _probe(features, split, fractions, seeds)
    table = format_probe_table(results, fractions)
    _plot_tsne(features, split, output_dir)
    metrics = {
        "linear_probe_test_accuracy": {
            name: {f"{f:g}": per[float(f)]["accuracy"] for f in fractions}
            for name, per in results.items()
        },
        "history": {k: [float(v) for v in vals] for k, vals in history.history.items()},
        "train_seconds": round(train_seconds, 1),
        "total_seconds": round(time.time() - start, 1),
        "settings": dict(
            epochs=epochs,
            batch_size=batch_size,
            image_size=image_size,
            seed=seed,
            seeds=list(seeds),
            backend=keras.backend.backend(),
        ),
    }
    _write_results(output_dir, metrics, table, verbose, train_seconds)
    return metrics


def _split_digits(image_size, seed):
    """The digits split 70/30 (stratified): a dict of images, labels and indices.

    `raw_8x8` holds the data set's own 8x8 grey pixels of every image, the
    "raw pixels" baseline (the upscaled RGB copies add nothing).
    """
    from sklearn.model_selection import train_test_split

    images, labels = load_digits_rgb(image_size)
    raw_8x8 = load_digits_rgb(8)[0][..., :1]
    train_idx, test_idx = train_test_split(
        np.arange(len(labels)), test_size=0.3, stratify=labels, random_state=seed
    )
    return dict(
        x_train=images[train_idx],
        x_test=images[test_idx],
        y_train=labels[train_idx],
        y_test=labels[test_idx],
        train_idx=train_idx,
        test_idx=test_idx,
        raw_8x8=raw_8x8,
    )


def _digits_simclr(backbone, shape, batch_size, seed):
    """SimCLR over `backbone` with augmentations that keep a digit a digit."""
    from simclr_keras.model import SimCLR

    return SimCLR(
        backbone,
        shape,
        batch_size,
        [128, 64],
        None,
        temperature=0.2,
        # Digits are not mirror-symmetric and already gray: no flip, no
        # grayscale; mild crops keep the digit's identity.
        augmentation=dict(
            crop_scale=(0.4, 1.0),
            flip=False,
            jitter_strength=0.5,
            grayscale_probability=0.0,
        ),
        learning_rate=2e-3,
        seed=seed,
    )


def _pretrain(simclr, split, epochs, seed, verbose, output_dir):
    """Train SimCLR on the training images; save the augmentation preview and curves."""
    from simclr_keras.callbacks.knn_monitor import KNNMonitor
    from simclr_keras.plots import plot_history, save_augmentation_preview

    x_train, y_train = split["x_train"], split["y_train"]
    save_augmentation_preview(
        x_train[:6], os.path.join(output_dir, "augmentations.png"), simclr.augmentation
    )
    # The kNN monitor reads a few training labels to show progress only.
    monitor = KNNMonitor(x_train[:500], y_train[:500], k=20, every=2, seed=seed)
    history = simclr.fit(x_train, epochs=epochs, callbacks=[monitor], verbose=2 if verbose else 0)
    plot_history(
        history, os.path.join(output_dir, "training_curves.png"), "SimCLR on digits", knn_every=2
    )
    return history


def _feature_sets(baseline, simclr, split):
    """`{row name: [train features, test features]}` for the three rows of the table."""
    from simclr_keras.evaluation.features import extract_features
    from simclr_keras.evaluation.linear_probe import pixel_features

    images = (split["x_train"], split["x_test"])
    return {
        ROWS[0]: [extract_features(baseline, x, verbose=0) for x in images],
        ROWS[1]: [extract_features(simclr, x, verbose=0) for x in images],
        # The data set's own 8x8 pixels (the upscaled RGB copies add nothing).
        ROWS[2]: [pixel_features(split["raw_8x8"][split[i]]) for i in ("train_idx", "test_idx")],
    }


def _probe(features, split, fractions, seeds):
    """Linear probes on every feature set at every label fraction."""
    from simclr_keras.evaluation.linear_probe import linear_evaluation

    results = {}
    for name, (f_tr, f_te) in features.items():
        results[name] = {}
        for fraction in fractions:
            # All labels: every seed draws the same subset, so one run is enough.
            draws = seeds if fraction < 1 else seeds[:1]
            results[name].update(
                linear_evaluation(
                    f_tr, split["y_train"], f_te, split["y_test"], (fraction,), draws, max_folds=3
                )
            )
    return results


def _plot_tsne(features, split, output_dir):
    """t-SNE of the test features before and after SimCLR, side by side."""
    from simclr_keras.plots import plot_tsne_pair

    plot_tsne_pair(
        features[ROWS[0]][1],
        features[ROWS[1]][1],
        split["y_test"],
        os.path.join(output_dir, "tsne.png"),
        class_names=[str(d) for d in range(10)],
        titles=("Small CNN at random init", "Small CNN after SimCLR"),
    )


def _write_results(output_dir, metrics, table, verbose, train_seconds):
    """Write `metrics.json` and `results.md`; print the table when verbose."""
    atomic_write_json(metrics, os.path.join(output_dir, "metrics.json"), indent=2)
    atomic_write_text(table + "\n", os.path.join(output_dir, "results.md"))
    if verbose:
        print("\nLinear probe on the digits test set (mean ± std over label draws):")
        print(table)
        print(
            f"\nSimCLR training {train_seconds:.0f} s, total {metrics['total_seconds']:.0f} s; "
            f"plots and metrics in {os.path.abspath(output_dir)}"
        )
