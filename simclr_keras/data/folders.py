"""Class folders: find the images and labels of a folder of class sub-folders,
and the checks that catch a wrong folder before any image is decoded.
"""

import os

from simclr_keras.data import image_io as io


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
