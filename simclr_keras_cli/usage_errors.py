"""`UsageError` and the argument checks that raise it (no Keras needed)."""

import contextlib
import os
import re


class UsageError(Exception):
    """A problem with the command's arguments or folders: one line, exit 2.

    Only these become one-line messages; any other exception is a bug or an
    environment failure and keeps its traceback.
    """


@contextlib.contextmanager
def as_usage_error(flags=None):
    """Re-raise a library check's `ValueError` about the user's input as a `UsageError`.

    Use it around steps that run before training (checks, building the
    model, loading the data), never around `fit`: an error there is a bug
    and keeps its traceback.

    Args:
        flags: Optional `{library_argument: "--flag"}`: the message then
            names the flag the user typed (`` `batch_size` `` and
            `batch_size=64` become `` `--batch-size` `` and `--batch-size=64`).

    Example:
    >>> with as_usage_error():                          # doctest: +SKIP
    ...     scan_class_folders(args.data_dir, "DATA_DIR")
    """
    try:
        yield
    except ValueError as error:
        raise UsageError(name_flags(str(error), flags or {})) from None


def name_flags(message, flags):
    """`message` with the library's argument names replaced by the CLI's flags.

    Example:
    >>> name_flags("`batch_size` must be >= 2. Received: batch_size=1", {"batch_size": "--batch-size"})
    '`--batch-size` must be >= 2. Received: --batch-size=1'
    """
    for name, flag in flags.items():
        message = message.replace(f"`{name}`", f"`{flag}`")
        message = re.sub(rf"(?<![\w.-]){re.escape(name)}=", f"{flag}=", message)
    return message


def check_folder(path, flag):
    """Raise a `UsageError` unless `path` is an existing folder."""
    if not os.path.isdir(path):
        what = "is not a folder" if os.path.exists(path) else "does not exist"
        raise UsageError(f"`{flag}` must be a folder of images; {path!r} {what}")


def check_file(path, flag):
    """Raise a `UsageError` unless `path` is an existing file."""
    if not os.path.isfile(path):
        what = "is not a file" if os.path.exists(path) else "does not exist"
        raise UsageError(
            f"`{flag}` must be a saved .keras model file; {path!r} {what}. "
            f"Received: {flag}={path!r}"
        )


def check_output(path, flag="--output"):
    """Raise a `UsageError` when `path` exists and is not a folder (it is created when missing)."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise UsageError(
            f"`{flag}` must be a folder (created when missing); {path!r} is a file. "
            f"Received: {flag}={path!r}"
        )
