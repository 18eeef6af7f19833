"""Kill-safe checkpoints: atomic per-epoch saves and resuming a killed `fit()`.

Layout, for `save_path="run/simclr.keras"`: a folder `run/simclr_checkpoint/`
holding `epoch-0003.keras` (the full model with its optimizer state after 3
finished epochs) and `state.json` (`epoch`, the checkpoint's file name, the
backbone's trainable flags and each finished epoch's logs). Every file is
written to a temporary file in the same folder, fsynced and moved into place
with `os.replace`; `state.json` is written last and is the commit point, so a
run killed at any moment leaves either the previous or the new checkpoint
complete, never half of one. Leftover temporary or unreferenced files are
removed by the next `resume_state`.
"""

import json
import os
import uuid
import warnings

import keras

from simclr_keras.backbones.freezing import set_trainable_flags, trainable_flags
from simclr_keras.training.unfreeze import rebuild_optimizer

TMP_PREFIX = ".tmp-"


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
    # A fresh name that `write` creates itself with a plain open(), so the
    # file gets the permissions of any other file the user writes (umask).
    tmp = os.path.join(folder, f"{TMP_PREFIX}{uuid.uuid4().hex}{suffix}")
    try:
        write(tmp)
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


STATE_FILE = "state.json"


def checkpoint_dir(save_path):
    """The checkpoint folder belonging to `save_path` (`x.keras` -> `x_checkpoint`)."""
    if not isinstance(save_path, (str, os.PathLike)) or not str(save_path):
        raise ValueError(f"`save_path` must be a file path. Received: save_path={save_path!r}")
    base = os.fspath(save_path)
    base = base.removesuffix(".keras")
    return base + "_checkpoint"


def read_state(save_path):
    """The checkpoint state of `save_path` as a dict, or None if none exists."""
    path = os.path.join(checkpoint_dir(save_path), STATE_FILE)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def _clean(folder, keep):
    """Delete temp files and checkpoints other than `keep`; return their names."""
    removed = []
    for name in sorted(os.listdir(folder)):
        stale_ckpt = name.startswith("epoch-") and name.endswith(".keras") and name != keep
        if name.startswith(TMP_PREFIX) or stale_ckpt:
            os.remove(os.path.join(folder, name))
            removed.append(name)
    return removed


def _jsonable(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


class ResumableCheckpoint(keras.callbacks.Callback):
    """Save the full model and the training state atomically after each epoch.

    Put it after callbacks that add to `logs` (e.g. `KNNMonitor`) so their
    values are saved too. `resume_state` restores what it writes.

    Args:
        save_path: The run's `.keras` path; checkpoints go to
            `checkpoint_dir(save_path)`.

    Returns:
        A `keras.callbacks.Callback`; `.epoch_logs` lists each finished
        epoch's logs, earlier (resumed) epochs included.

    Example:
    >>> start = resume_state(simclr, "run/simclr.keras")     # doctest: +SKIP
    >>> simclr.fit(x, epochs=10, initial_epoch=start,
    ...            callbacks=[ResumableCheckpoint("run/simclr.keras")])
    ... # doctest: +SKIP
    """

    def __init__(self, save_path):
        super().__init__()
        self.save_path = os.fspath(save_path)
        self.folder = checkpoint_dir(save_path)
        self.epoch_logs = []

    def on_train_begin(self, logs=None):
        os.makedirs(self.folder, exist_ok=True)
        state = read_state(self.save_path)
        self.epoch_logs = list(state["logs"]) if state else []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_logs = self.epoch_logs[:epoch] + [
            {k: _jsonable(v) for k, v in (logs or {}).items()}
        ]
        name = f"epoch-{epoch + 1:04d}.keras"
        atomic_save_model(self.model, os.path.join(self.folder, name))
        state = {"format": 1, "epoch": epoch + 1, "checkpoint": name, "logs": self.epoch_logs}
        base = getattr(self.model, "base_model", None)
        if base is not None:
            state["trainable"] = trainable_flags(base)
            state["num_of_unfrozen_layers"] = getattr(self.model, "num_of_unfrozen_layers", None)
        atomic_write_json(state, os.path.join(self.folder, STATE_FILE))
        _clean(self.folder, keep=name)

    def history(self):
        """A `keras.callbacks.History` over every finished epoch."""
        return history_from_logs(self.epoch_logs, self.model)


def history_from_logs(epoch_logs, model=None):
    """Build a `History` from a list of per-epoch log dicts."""
    history = keras.callbacks.History()
    if model is not None:
        history.set_model(model)
    history.epoch = list(range(len(epoch_logs)))
    for logs in epoch_logs:
        for key, value in logs.items():
            history.history.setdefault(key, []).append(value)
    return history


def resume_state(simclr, save_path):
    """Load the last finished epoch's checkpoint into `simclr`, if any.

    Restores the backbone's trainable flags, the weights and the optimizer
    state (the optimizer is rebuilt over the saved trainable set first, so
    its variables match), and removes temporary or stale checkpoint files.

    Args:
        simclr: The model, built as for the original run.
        save_path: The run's `.keras` path.

    Returns:
        The number of finished epochs: pass it as `fit(initial_epoch=...)`;
        0 when there is no checkpoint.
    """
    folder = checkpoint_dir(save_path)
    if not os.path.isdir(folder):
        return 0
    state = read_state(save_path)
    _clean(folder, keep=state["checkpoint"] if state else None)
    if not state:
        return 0
    path = os.path.join(folder, state["checkpoint"])
    mismatch = (
        f"The checkpoint {path} does not match this model; build the model with "
        "the same arguments as the run that wrote it, or pass a new `save_path`"
    )
    base = getattr(simclr, "base_model", None)
    try:
        if base is not None and "trainable" in state:
            set_trainable_flags(base, state["trainable"])
            if state.get("num_of_unfrozen_layers") is not None:
                simclr.num_of_unfrozen_layers = state["num_of_unfrozen_layers"]
        rebuild_optimizer(simclr)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            simclr.load_weights(path)
    except ValueError as error:
        raise ValueError(f"{mismatch}. Received: {error}") from None
    skipped = [str(w.message) for w in caught if "Skipping variable loading" in str(w.message)]
    if skipped:
        raise ValueError(f"{mismatch}. Received: {skipped[0]}")
    for w in caught:
        warnings.warn(w.message, w.category, stacklevel=2)
    return int(state["epoch"])


def fit_with_resume(simclr, x, epochs, save_path, callbacks=None, fit_fn=None, **fit_kwargs):
    """`simclr.fit` that checkpoints every epoch and resumes a killed run.

    Running the same call again after a crash or `kill -9` continues from the
    last finished epoch and stops at `epochs`; a finished run is not trained
    again.

    Args:
        simclr: The model, built as for the original run.
        x: Training data, as for `simclr.fit`.
        epochs: Total epochs of the run.
        save_path: The run's `.keras` path (see `checkpoint_dir`).
        callbacks: Further callbacks; they run before the checkpoint.
        fit_fn: The fit to call (default `simclr.fit`); `SimCLR.fit` passes
            `super().fit` to avoid recursing into itself.
        **fit_kwargs: Other `fit()` arguments.

    Returns:
        A `History` over all `epochs` epochs, resumed ones included.

    Example:
    >>> history = fit_with_resume(simclr, images, 20, "run/simclr.keras")
    ... # doctest: +SKIP
    """
    initial_epoch = resume_state(simclr, save_path)
    if initial_epoch >= epochs:
        state = read_state(save_path)
        return history_from_logs(state["logs"][:epochs], simclr)
    initial_epoch = max(initial_epoch, int(fit_kwargs.pop("initial_epoch", 0) or 0))
    if initial_epoch and getattr(x, "epoch", None) == 0 and hasattr(x, "set_epoch"):
        # A fresh generator would replay epoch 0's batch order; continue the
        # interrupted run's instead (arrays get this inside `SimCLR.fit`).
        x.set_epoch(initial_epoch)
    checkpoint = ResumableCheckpoint(save_path)
    (fit_fn or simclr.fit)(
        x,
        epochs=epochs,
        initial_epoch=initial_epoch,
        callbacks=list(callbacks or []) + [checkpoint],
        **fit_kwargs,
    )
    return checkpoint.history()
