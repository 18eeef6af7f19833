"""Evaluation results kept on disk, keyed by a fingerprint of what made them.

Fine-tuning one classifier takes minutes on a CPU, and `evaluate` runs
dozens: the same start (the baseline) is fine-tuned again for every SimCLR
run compared with it, and an interrupted evaluation starts over. A record
here is found again only when what decides it is the same: the model's
class and every weight (name, shape, dtype, values), the training and test
images and labels, the label fraction and seed, the classifier's settings,
the Keras backend and `FORMAT` (raised when the fine-tuning protocol
changes). Anything else, including a model with another layer name, is a
miss and is computed afresh. Not seen: a change of architecture that keeps
every weight's name and shape (e.g. another activation function in the
same layer); use a new `cache_dir` after such an edit.
"""

import hashlib
import json
import os

import keras
import numpy as np

from simclr_keras._atomic import atomic_write_json

FORMAT = 4  # raise when the fine-tuning protocol changes what the same settings compute


def fingerprint(*parts):
    """A SHA-256 hex digest of models, arrays and JSON-able values, in order.

    Args:
        *parts: `keras.Model` / `keras.layers.Layer` (class, weight paths,
            shapes, dtypes and values), NumPy arrays (dtype, shape and
            bytes), or values `json.dumps` can write (dict keys sorted;
            anything else is written with `repr`).

    Returns:
        A 64-character hex string.

    Example:
    >>> fingerprint(np.zeros(3, "uint8"), {"seed": 0}) == fingerprint(
    ...     np.zeros(3, "uint8"), {"seed": 0})
    True
    >>> fingerprint(np.zeros(3, "uint8")) == fingerprint(np.zeros(3, "int64"))
    False
    """
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, keras.layers.Layer):
            digest.update(f"layer {type(part).__module__}.{type(part).__name__}\n".encode())
            for weight in part.weights:
                _update_array(digest, keras.ops.convert_to_numpy(weight), weight.path)
        elif isinstance(part, np.ndarray):
            _update_array(digest, part, "array")
        else:
            text = json.dumps(part, sort_keys=True, default=repr)
            digest.update(f"value {text}\n".encode())
    return digest.hexdigest()


def _update_array(digest, array, name):
    digest.update(f"{name} {array.dtype.str} {array.shape}\n".encode())
    if array.dtype.hasobject:  # e.g. labels as Python objects: no raw buffer
        digest.update(json.dumps(array.tolist(), default=repr).encode())
    else:  # no copy of a large image array that is already contiguous
        digest.update(memoryview(np.ascontiguousarray(array)).cast("B"))


class ResultCache:
    """A folder of JSON records, one file per key.

    Args:
        directory: Where the records live (made on the first `put`).
        kind: Prefix of the file names, e.g. `"finetune"`.

    Example:
    >>> import tempfile
    >>> cache = ResultCache(tempfile.mkdtemp(), "finetune")
    >>> key = fingerprint("run", 0)
    >>> cache.get(key) is None
    True
    >>> cache.put(key, {"accuracy": 0.9})
    >>> cache.get(key)
    {'accuracy': 0.9}
    """

    def __init__(self, directory, kind):
        if not isinstance(directory, (str, os.PathLike)) or not str(directory):
            raise ValueError(
                f"`cache_dir` must be a folder path. Received: cache_dir={directory!r}"
            )
        if os.path.exists(directory) and not os.path.isdir(directory):
            raise ValueError(
                f"`cache_dir` must be a folder, not a file. Received: cache_dir={directory!r}"
            )
        self.directory, self.kind = os.fspath(directory), kind

    def path(self, key):
        """The record's file: `<directory>/<kind>-<key>.json`."""
        return os.path.join(self.directory, f"{self.kind}-{key}.json")

    def get(self, key):
        """The record saved under `key`, or None (also for an unreadable file)."""
        try:
            with open(self.path(key)) as fh:
                record = json.load(fh)
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) else None

    def put(self, key, record):
        """Save `record` (a JSON-able dict) under `key`, atomically."""
        atomic_write_json(record, self.path(key))
