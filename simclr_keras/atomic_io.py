"""Atomic file writes: a crash or `kill -9` leaves the old file or the new one, never half of one.

Each file is written to a temporary file in the target's folder, fsynced and
moved into place with `os.replace` (atomic on POSIX and Windows), then the
folder is fsynced so the rename itself survives a power loss.
"""

import json
import os
import tempfile

TMP_PREFIX = ".tmp-"
# os.umask can only be read by setting it: read it once, at import.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def _fsync_dir(folder):
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open folders; the rename is still atomic
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic(path, write):
    """Run `write(tmp_path)`, fsync the file, move it to `path` atomically."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    suffix = os.path.splitext(path)[1]
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=TMP_PREFIX, suffix=suffix)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; match a plain open()
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    _fsync_dir(folder)
    return path


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
    return _atomic(os.fspath(path), lambda tmp: model.save(tmp))


def atomic_write_json(obj, path):
    """Write `obj` as JSON to `path` atomically (temp file, fsync, replace)."""

    def write(tmp):
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=1)

    return _atomic(os.fspath(path), write)
