"""`UsageError` and the argument checks that raise it (no Keras needed)."""

import contextlib
import os


class UsageError(Exception):
    """A problem with the command's arguments or folders: one line, exit 2.

    Only these become one-line messages; any other exception is a bug or an
    environment failure and keeps its traceback.
    """


@contextlib.contextmanager
def as_usage_error():
    """Re-raise a library check's `ValueError` about the user's input as a `UsageError`.

    Example:
    >>> with as_usage_error():                          # doctest: +SKIP
    ...     scan_class_folders(args.data_dir, "DATA_DIR")
    """
    try:
        yield
    except ValueError as error:
        raise UsageError(str(error)) from None


def check_folder(path, flag):
    """Raise a `UsageError` unless `path` is an existing folder."""
    if not os.path.isdir(path):
        what = "is not a folder" if os.path.exists(path) else "does not exist"
        raise UsageError(f"`{flag}` must be a folder of images; {path!r} {what}")


def check_file(path, flag):
    """Raise a `UsageError` unless `path` is an existing file."""
    if not os.path.isfile(path):
        what = "is not a file" if os.path.exists(path) else "does not exist"
        raise UsageError(f"`{flag}` must be a saved .keras model file; {path!r} {what}")


def check_output(path, flag="--output"):
    """Raise a `UsageError` when `path` exists and is not a folder (it is created when missing)."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise UsageError(
            f"`{flag}` must be a folder (created when missing); {path!r} is a file. "
            f"Received: {flag}={path!r}"
        )
