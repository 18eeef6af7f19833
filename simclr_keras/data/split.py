"""One labelled folder for the whole story: a stratified, reproducible
train/test split of its files, and the checks that catch a wrong folder
before any image is decoded.
"""

import collections
import os

import numpy as np

from simclr_keras.data import image_io as io

FolderSplit = collections.namedtuple(
    "FolderSplit", ["train_paths", "train_labels", "test_paths", "test_labels", "class_names"]
)


def nested_class_root(directory):
    """The folder to pass instead of `directory`, if `directory` only wraps it.

    An unzipped archive often holds one folder that holds the class folders
    (`photos/flowers/{daisy,rose}/...`); taken as is, that is one class.

    Args:
        directory: Folder path.

    Returns:
        The single sub-folder's path when `directory` holds exactly one
        visible sub-folder, no images of its own, and that sub-folder has
        sub-folders with images; else None.
    """
    directory = os.fspath(directory)
    try:
        entries = [e for e in os.scandir(directory) if not e.name.startswith(".")]
    except OSError:
        return None
    folders = [e for e in entries if e.is_dir()]
    if len(folders) != 1 or any(e.is_file() and io.is_image_file(e.name) for e in entries):
        return None
    inner = folders[0].path
    nested = [e for e in os.scandir(inner) if e.is_dir() and not e.name.startswith(".")]
    if any(io.list_image_files(e.path)[:1] for e in nested):
        return inner
    return None


def scan_class_folders(directory, argument="directory"):
    """Image files and labels of a folder of class sub-folders, or a clear error.

    Nothing is decoded: run it before any slow step to fail early.

    Args:
        directory: Folder with one sub-folder per class.
        argument: The name used in error messages (e.g. `"--train-dir"`).

    Returns:
        `(paths, labels, class_names)`.

    Raises:
        ValueError: When the folder is missing, has no class sub-folders,
            only one class, or wraps the real class root (the message names
            the folder to pass).
    """
    inner = nested_class_root(directory)
    if inner is not None:
        raise ValueError(
            f"`{argument}` holds a single folder whose sub-folders look like classes: "
            f"pass {inner!r} instead. Received: {argument}={os.fspath(directory)!r}"
        )
    paths, labels, class_names, _ = io.scan_directory(directory, "inferred")
    if labels is None or len(class_names) < 2:
        found = "no class sub-folders" if labels is None else f"one class ({class_names[0]!r})"
        raise ValueError(
            f"`{argument}` must hold one sub-folder of images per class, at least two; "
            f"found {found}. Received: {argument}={os.fspath(directory)!r}"
        )
    return paths, labels, class_names


def check_same_classes(train_names, test_names):
    """Raise a ValueError naming the difference when the class names differ."""
    train_names, test_names = list(train_names), list(test_names)
    if train_names == test_names:
        return
    only_train = sorted(set(train_names) - set(test_names))
    only_test = sorted(set(test_names) - set(train_names))
    raise ValueError(
        "The train and test folders must have the same class sub-folders (label ids follow "
        f"their sorted names). Only in train: {only_train or 'none'}; only in test: "
        f"{only_test or 'none'}."
    )


def split_directory(directory, test_fraction=0.2, seed=0):
    """Split a folder of class sub-folders into train and test file lists.

    Stratified: each class with `n_c` files gives `floor(test_fraction * n_c
    + 0.5)` of them to the test part (at least one, and at most `n_c - 1`,
    for a class of two or more). Reproducible: the same folder, fraction and
    seed give the same split on any machine (files are sorted first). No
    image is decoded.

    Args:
        directory: Folder with one sub-folder per class.
        test_fraction: Share of each class held out for testing, in (0, 1).
        seed: Seed of the draw.

    Returns:
        A `FolderSplit(train_paths, train_labels, test_paths, test_labels,
        class_names)`; pass the paths and labels to
        `DataGeneratorSimCLR.from_files`, or use `load_split`.

    Example:
    >>> split = split_directory("photos", test_fraction=0.2, seed=0)  # doctest: +SKIP
    >>> train = DataGeneratorSimCLR.from_files(split.train_paths, (64, 64), 64)  # doctest: +SKIP
    """
    if isinstance(test_fraction, bool) or not (
        isinstance(test_fraction, (int, float)) and 0 < test_fraction < 1
    ):
        raise ValueError(
            f"`test_fraction` must be a number in (0, 1). Received: test_fraction={test_fraction!r}"
        )
    paths, labels, class_names = scan_class_folders(directory)
    rng = np.random.default_rng(seed)
    test = []
    for c in range(len(class_names)):
        members = np.flatnonzero(labels == c)
        k = int(np.floor(test_fraction * len(members) + 0.5))
        k = min(len(members) - 1, max(1, k)) if len(members) >= 2 else 0
        test.append(rng.choice(members, k, replace=False))
    test = np.sort(np.concatenate(test)).astype("int64")
    train = np.setdiff1d(np.arange(len(paths)), test)
    return FolderSplit(
        [paths[i] for i in train],
        labels[train],
        [paths[i] for i in test],
        labels[test],
        class_names,
    )


def load_split(directory, image_size, test_fraction=0.2, seed=0, **kwargs):
    """`(x_train, y_train), (x_test, y_test)` from one labelled folder.

    Args:
        directory: Folder with one sub-folder per class.
        image_size: `(H, W)` every image is resized to.
        test_fraction: As in `split_directory`.
        seed: As in `split_directory`.
        **kwargs: Passed to `DataGeneratorSimCLR.from_files` (e.g.
            `resize_mode`, `verbose`).

    Returns:
        `((x_train, y_train), (x_test, y_test))`: uint8 images and int labels.

    Example:
    >>> (x_tr, y_tr), (x_te, y_te) = load_split("photos", (64, 64))  # doctest: +SKIP
    """
    from simclr_keras.data.generator import DataGeneratorSimCLR

    split = split_directory(directory, test_fraction, seed)
    parts = []
    for paths, labels in (
        (split.train_paths, split.train_labels),
        (split.test_paths, split.test_labels),
    ):
        data = DataGeneratorSimCLR.from_files(
            paths,
            image_size,
            1,
            labels=labels,
            class_names=split.class_names,
            shuffle=False,
            **kwargs,
        )
        parts.append(data.load_all())
    return tuple(parts)
