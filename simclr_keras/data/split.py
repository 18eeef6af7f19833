"""A stratified, reproducible train/test split of one labelled folder's files
(nothing decoded: `loading.load_split` decodes both parts).
"""

import collections

import numpy as np

from simclr_keras._checks import check_fraction
from simclr_keras.data.folders import scan_class_folders

FolderSplit = collections.namedtuple(
    "FolderSplit", ["train_paths", "train_labels", "test_paths", "test_labels", "class_names"]
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
        `DataGeneratorSimCLR.from_files` or `load_labelled_files`, or use
        `load_split`.

    Example:
    >>> split = split_directory("photos", test_fraction=0.2, seed=0)  # doctest: +SKIP
    >>> train = DataGeneratorSimCLR.from_files(split.train_paths, (64, 64), 64)  # doctest: +SKIP
    """
    check_fraction(test_fraction, "test_fraction", allow_one=False)
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
