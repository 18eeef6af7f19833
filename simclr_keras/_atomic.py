"""Atomic file writing, shared by every writer of run state.

A file is written to a temporary name in its target folder, fsynced and
moved into place with `os.replace`, then the folder is fsynced: a process
killed at any moment, or a full disk, leaves the previous version of the
file (or none), never half of one. Temporary names start with `TMP_PREFIX`,
so a reader can clean up what a killed writer left.
"""

import json
import os
import pathlib
import uuid

import numpy as np

TMP_PREFIX = ".tmp-"


def fsync_dir(folder):
    """Make a rename in `folder` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open folders; the rename is still atomic
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path, write):
    """Run `write(tmp_path)`, fsync the file, move it to `path` atomically.

    Args:
        path: The target file.
        write: A function that creates and fills the file at the path it is given.

    Returns:
        `path`.

    Raises:
        OSError: naming `path` and what to do (free space, permissions) when
            the disk or the folder refuses the file; the previous version of
            `path` is then unchanged and no temporary file is left.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as error:
        raise OSError(
            error.errno,
            f"Could not create the folder of {path} ({error.strerror or error}); choose a "
            "writable location",
        ) from error
    # The whole suffix (`.weights.h5`, not `.h5`): writers such as Keras'
    # `save_weights` check the name they are given.
    suffix = "".join(pathlib.PurePath(path).suffixes)
    # A fresh name that `write` creates itself with a plain open(), so the
    # file gets the permissions of any other file the user writes (umask).
    tmp = os.path.join(folder, f"{TMP_PREFIX}{uuid.uuid4().hex}{suffix}")
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        if os.path.exists(tmp):
            os.remove(tmp)
        if isinstance(error, OSError):
            raise OSError(
                error.errno,
                f"Could not write {path} ({error.strerror or error}); the previous "
                "version of that file, if any, is unchanged. Free disk space or fix "
                "the folder's permissions, then run again",
            ) from error
        raise
    fsync_dir(folder)
    return path


def jsonable(value):
    """A value JSON has no type for (NumPy scalar, path) as a float or a string."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def atomic_write_json(obj, path, indent=1):
    """Write `obj` as JSON to `path` atomically (temp file, fsync, replace).

    Values JSON has no type for (NumPy scalars, paths) are written as floats
    or strings.

    Args:
        obj: A JSON-able object.
        path: The target file.
        indent: JSON indentation.

    Returns:
        `path`.

    Example:
    >>> atomic_write_json({"epoch": 3}, "run/state.json")   # doctest: +SKIP
    """

    def write(tmp):
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=indent, default=jsonable)

    return atomic_write(path, write)


def atomic_write_text(text, path):
    """Write `text` (UTF-8) to `path` atomically (temp file, fsync, replace).

    Args:
        text: A string.
        path: The target file.

    Returns:
        `path`.
    """

    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    return atomic_write(path, write)


def atomic_save_model(model, path):
    """`model.save(path)` that never leaves a half-written file at `path`.

    Args:
        model: A Keras model.
        path: Target `.keras` file.

    Returns:
        The path.

    Example:
    >>> atomic_save_model(simclr, "run/simclr.keras")      # doctest: +SKIP
    """
    return atomic_write(path, lambda tmp: model.save(tmp))


def atomic_save_arrays(arrays, path):
    """Save a list of arrays as an `.npz` file atomically (keys `w0000`, ...).

    Args:
        arrays: Arrays, e.g. a model's `get_weights()`.
        path: Target file, ending in `.npz`.

    Returns:
        The path.
    """

    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, **{f"w{i:04d}": np.asarray(a) for i, a in enumerate(arrays)})

    return atomic_write(path, write)


def load_arrays(path):
    """The arrays saved by `atomic_save_arrays`, in order.

    Raises:
        ValueError: naming the file when it is truncated, empty or not such a file.
    """
    import zipfile

    try:
        with np.load(path, allow_pickle=False) as data:
            return [data[k] for k in sorted(data.files)]
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as error:
        raise ValueError(f"{path} cannot be read ({error}): it is damaged or incomplete") from error
