"""Decoding a labelled file list, or one labelled folder's train/test split,
into arrays for evaluation: the one loop that turns paths into images.
"""

from simclr_keras.data.generator import DataGeneratorSimCLR
from simclr_keras.data.split import split_directory


def load_labelled_files(paths, labels, image_size, class_names=None, **kwargs):
    """Decode image files in order, with their labels; bad files are skipped with a warning.

    Args:
        paths: Image file paths.
        labels: Int label of each file (or None).
        image_size: `(H, W)` every image is resized to.
        class_names: Optional class names, index = label.
        **kwargs: Passed to `DataGeneratorSimCLR.from_files` (e.g.
            `resize_mode`, `verbose`).

    Returns:
        `(images, labels)`: uint8 `(N, H, W, 3)` images in file order (bad
        files left out) and their int labels (None when unlabelled).

    Example:
    >>> x, y = load_labelled_files(["a.png", "b.png"], [0, 1], (64, 64))  # doctest: +SKIP
    """
    data = DataGeneratorSimCLR.from_files(
        paths, image_size, 1, labels=labels, class_names=class_names, shuffle=False, **kwargs
    )
    return data.load_all()


def load_split(directory, image_size, test_fraction=0.2, seed=0, **kwargs):
    """`(x_train, y_train), (x_test, y_test)` from one labelled folder.

    Args:
        directory: Folder with one sub-folder per class.
        image_size: `(H, W)` every image is resized to.
        test_fraction: As in `split_directory`.
        seed: As in `split_directory`.
        **kwargs: Passed to `load_labelled_files` (e.g. `resize_mode`, `verbose`).

    Returns:
        `((x_train, y_train), (x_test, y_test))`: uint8 images and int labels.

    Example:
    >>> (x_tr, y_tr), (x_te, y_te) = load_split("photos", (64, 64))  # doctest: +SKIP
    """
    split = split_directory(directory, test_fraction, seed)
    return tuple(
        load_labelled_files(paths, labels, image_size, split.class_names, **kwargs)
        for paths, labels in (
            (split.train_paths, split.train_labels),
            (split.test_paths, split.test_labels),
        )
    )
