"""Kill-safe checkpoints: `ResumableCheckpoint`, a callback for any `fit()`
that saves atomically after each epoch and resumes a killed run.

Layout, for `save_path="run/simclr.keras"`: a folder `run/simclr_checkpoint/`
holding `epoch-0003.keras` (the full model with its optimizer state after 3
finished epochs) and `state.json` (`epoch`, the checkpoint's file name, the
run's settings, the layers' trainable flags and each finished epoch's logs). Every file is
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
import zipfile

import keras

from simclr_keras._atomic import TMP_PREFIX, atomic_save_model, atomic_write_json, jsonable
from simclr_keras._checks import check_int
from simclr_keras.backbones.freezing import set_trainable_flags, trainable_flags
from simclr_keras.optimizers import rebuild_optimizer

STATE_FILE = "state.json"


def checkpoint_dir(save_path):
    """The checkpoint folder belonging to `save_path` (`x.keras` -> `x_checkpoint`)."""
    if not isinstance(save_path, (str, os.PathLike)) or not str(save_path):
        raise ValueError(f"`save_path` must be a file path. Received: save_path={save_path!r}")
    base = os.fspath(save_path)
    base = base.removesuffix(".keras")
    return base + "_checkpoint"


class CheckpointError(ValueError):
    """A checkpoint or state file cannot be used; the message names it."""


def read_state(save_path):
    """The checkpoint state of `save_path` as a dict, or None if none exists.

    Raises:
        CheckpointError: naming `state.json` when it is truncated or corrupt.
    """
    path = os.path.join(checkpoint_dir(save_path), STATE_FILE)
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            state = json.load(f)
        if not isinstance(state, dict):
            raise ValueError(f"a JSON {type(state).__name__}, not an object")
        epoch, name = state["epoch"], state["checkpoint"]
        if not isinstance(epoch, int) or epoch < 1 or not isinstance(name, str):
            raise ValueError(f"epoch={epoch!r}, checkpoint={name!r}")
        if not isinstance(state.get("logs", []), list):
            raise ValueError("`logs` is not a list")
    except (OSError, UnicodeDecodeError, ValueError, KeyError) as error:
        raise CheckpointError(
            f"The resume state file {path} is truncated or corrupt "
            f"({type(error).__name__}: {error})"
        ) from None
    return state


def _epoch_of(name):
    """N for `epoch-NNNN.keras`, else None."""
    if name.startswith("epoch-") and name.endswith(".keras"):
        digits = name[len("epoch-") : -len(".keras")]
        if digits.isdigit():
            return int(digits)
    return None


def _checkpoints(folder):
    """`{epoch: file name}` of the checkpoint files in `folder`."""
    found = {}
    for name in os.listdir(folder):
        epoch = _epoch_of(name)
        if epoch is not None:
            found[epoch] = name
    return found


def _clean(folder, keep):
    """Delete temp files and checkpoints other than those named in `keep`;
    return the names removed.
    """
    removed = []
    for name in sorted(os.listdir(folder)):
        stale_ckpt = _epoch_of(name) is not None and name not in keep
        if name.startswith(TMP_PREFIX) or stale_ckpt:
            os.remove(os.path.join(folder, name))
            removed.append(name)
    return removed


def _broken_reason(path):
    """Why the `.keras` file at `path` is not a complete Keras archive, or None."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
            names = archive.namelist()
    except (OSError, zipfile.BadZipFile, EOFError, ValueError) as error:
        return f"{type(error).__name__}: {error}"
    if bad is not None:
        return f"CRC error in {bad}"
    if "config.json" not in names:
        return "not a Keras archive (no config.json)"
    return None


def run_signature(model, run_settings=None):
    """What a resumed run must share with the run that wrote its checkpoints.

    Read through Keras' public model API only, so it holds for any model:
    the class and the number of weights, and the plain settings of
    `model.get_config()` (numbers, strings, lists of them: for `SimCLR` its
    batch size, input shape, unfrozen layers, head sizes, temperature,
    seed...), plus `run_settings` (e.g. `fit_in_rounds`' rounds). Names
    Keras chooses (`name`) and the dtype policy are left out. Stored in
    `state.json`; `resume_state` compares it.
    """
    signature = {
        "model": f"{type(model).__name__} with {len(model.weights)} variables and "
        f"{model.count_params()} weights"
    }
    try:
        config = model.get_config() or {}
    except (NotImplementedError, TypeError):  # a subclassed model without a config
        config = {}
    for key, value in config.items():
        if key not in ("name", "trainable", "dtype") and _plain(value):
            signature[key] = list(value) if isinstance(value, tuple) else value
    signature.update(run_settings or {})
    return signature


def _plain(value):
    """A number, string, None, or a flat list of them."""
    if isinstance(value, (list, tuple)):
        return all(_plain(v) and not isinstance(v, (list, tuple)) for v in value)
    return value is None or isinstance(value, (bool, int, float, str))


class ResumableCheckpoint(keras.callbacks.Callback):
    """Checkpoint every epoch atomically and resume a killed `fit()` from the last one.

    Like `keras.callbacks.BackupAndRestore`: at the start of `fit()` it
    restores the newest intact checkpoint of `save_path` (weights, optimizer
    state, the backbone's trainable flags) and makes `fit()` start after the
    last finished epoch, so running the same script again after a crash or
    `kill -9` continues the run and stops at `epochs`; a finished run trains
    nothing (with a warning when it has more epochs than asked). After every
    epoch it saves the full model and `state.json` atomically. When `fit()`
    ends it saves the model to `save_path` and makes the returned `History`
    cover every epoch of the run, resumed ones included. A checkpoint
    written with other model settings (for `SimCLR`: another batch size,
    unfrozen layers or backbone; see `run_signature`) raises
    `CheckpointError` before any training. It works with any Keras model:
    the trainable flags it restores are those of the model's layers, and it
    sets the start epoch as `keras.callbacks.BackupAndRestore` does.

    Pass it to a plain `fit()`, last (after callbacks that add to `logs`,
    e.g. `KNNMonitor`, so their values are saved too). `SimCLR(save_path=...)`
    adds it for you.

    Disk: each checkpoint is a whole `.keras` file (weights and optimizer
    state, e.g. about 200 MB for VGG16 with Adam). By default (`keep=2`)
    the previous epoch's file is kept beside the newest, as a fallback if
    the newest is ever damaged, so the folder holds about twice the model
    file (401 MB for that VGG16 run). `keep=1` keeps only the newest, and
    deletes the previous one only after the new one was written atomically
    and read back intact (a damaged one keeps its predecessor, with a
    warning): half the disk, but no fallback for damage done to the newest
    later on.

    Args:
        save_path: The run's `.keras` path; checkpoints go to
            `checkpoint_dir(save_path)` (`x.keras` -> `x_checkpoint/`).
        keep: How many of the newest per-epoch checkpoints to keep (an
            int >= 1, default 2: the newest and one fallback).
        run_settings: Optional dict of JSON values that a resumed run must
            share besides the model's settings (`fit_in_rounds` puts its
            rounds here; a `"rounds"` list may go on with more rounds).

    Returns:
        A `keras.callbacks.Callback`; `.initial_epoch` is the number of
        epochs found finished, `.epoch_logs` each finished epoch's logs.

    Example:
    >>> simclr.fit(images, epochs=10,
    ...            callbacks=[ResumableCheckpoint("run/simclr.keras")])
    ... # doctest: +SKIP
    """

    def __init__(self, save_path, keep=2, run_settings=None):
        super().__init__()
        self.folder = checkpoint_dir(save_path)  # checks `save_path`
        self.keep = check_int(
            keep, "keep", minimum=1, why="(checkpoints kept: 1 = the newest only, 2 = one fallback)"
        )
        self.save_path = os.fspath(save_path)
        self.run_settings = dict(run_settings or {})
        self.signature = None
        self.initial_epoch = 0
        self.epoch_logs = []

    def on_train_begin(self, logs=None):
        self.signature = run_signature(self.model, self.run_settings)
        self.initial_epoch, self.epoch_logs = _resume(self.model, self.save_path, self.signature)
        epochs = self.params.get("epochs") if self.params else None
        if epochs is not None and self.initial_epoch > epochs:
            warnings.warn(
                f"The run in {self.folder} has already finished {self.initial_epoch} epochs, "
                f"more than the {epochs} asked for: nothing to train. The model holds the "
                f"weights after epoch {self.initial_epoch}; pass a larger `epochs` to train "
                f"on, or a new `save_path` for a new run. Received: epochs={epochs}",
                stacklevel=2,
            )
        if epochs is None or self.initial_epoch < epochs:
            _check_writable(self.folder)
        # Keras' own hook (`keras.Model`'s, read by every backend's fit loop as
        # the first epoch): `keras.callbacks.BackupAndRestore` sets it the same way.
        self.model._initial_epoch = self.initial_epoch or None

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_logs = self.epoch_logs[:epoch] + [
            {k: jsonable(v) for k, v in (logs or {}).items()}
        ]
        name = f"epoch-{epoch + 1:04d}.keras"
        atomic_save_model(self.model, os.path.join(self.folder, name))
        state = {"format": 1, "epoch": epoch + 1, "checkpoint": name, "logs": self.epoch_logs}
        state["run"] = self.signature
        # Which layers train now (a `GradualUnfreeze` stage): a resumed run
        # rebuilds its optimizer over the same variables.
        state["trainable_layers"] = trainable_flags(self.model)
        atomic_write_json(state, os.path.join(self.folder, STATE_FILE))
        # Keep the `keep` newest: with 2 or more, a rerun falls back to the
        # previous one if the newest is ever damaged.
        first = max(1, epoch + 2 - self.keep)
        if self.keep == 1:
            reason = _broken_reason(os.path.join(self.folder, name))
            if reason is not None:  # never delete the last good one for a bad one
                warnings.warn(
                    f"The checkpoint {name} in {self.folder} did not read back intact "
                    f"({reason}); the previous one is kept (keep=1 notwithstanding).",
                    stacklevel=2,
                )
                first = epoch
        _clean(self.folder, keep={f"epoch-{e:04d}.keras" for e in range(first, epoch + 2)})

    def on_train_end(self, logs=None):
        self.model._initial_epoch = None
        epochs = self.params.get("epochs") if self.params else None
        self.model.history = self.history(epochs)
        atomic_save_model(self.model, self.save_path)

    def history(self, epochs=None):
        """A `keras.callbacks.History` over the run's finished epochs (the
        first `epochs` of them, when given).
        """
        return history_from_logs(self.epoch_logs[:epochs], self.model)


def history_from_logs(epoch_logs, model=None):
    """Build a `History` from a list of per-epoch log dicts."""
    history = keras.callbacks.History()
    if model is not None:
        history.set_model(model)
    history.epoch = list(range(len(epoch_logs)))
    keys = list(dict.fromkeys(k for logs in epoch_logs for k in logs))
    for logs in epoch_logs:  # epochs whose logs were lost read NaN
        for key in keys:
            history.history.setdefault(key, []).append(logs.get(key, float("nan")))
    return history


def resume_state(model, save_path, run_settings=None):
    """Load the last finished epoch's checkpoint into `model`, if any.

    Restores the backbone's trainable flags, the weights and the optimizer
    state (the optimizer is rebuilt over the saved trainable set first, so
    its variables match), and removes temporary or stale checkpoint files.
    A missing, truncated or corrupt `state.json` or checkpoint makes it fall
    back to the newest intact checkpoint with a warning naming the broken
    file; with none intact it raises `CheckpointError` naming them. Nothing
    is deleted then.

    Args:
        model: The model, built as for the original run.
        save_path: The run's `.keras` path.
        run_settings: As for `ResumableCheckpoint`.

    Returns:
        The number of finished epochs: pass it as `fit(initial_epoch=...)`;
        0 when there is no checkpoint.

    Raises:
        CheckpointError: No intact checkpoint, or the run that wrote it
            used other settings (`run_signature`).
    """
    return _resume(model, save_path, run_signature(model, run_settings))[0]


def _check_same_run(state, signature, folder):
    saved = state.get("run")
    if not saved or not signature:
        return
    changed = [
        f"{key}={saved[key]!r} then, {signature[key]!r} now"
        for key in sorted(set(saved) & set(signature))
        if not _same_setting(key, saved[key], signature[key])
    ]
    if changed:
        raise CheckpointError(
            f"The checkpoints in {folder} were written by a run with other settings: "
            + "; ".join(changed)
            + ". Resume with the same arguments, or pass a new `save_path` (or remove "
            "that folder) to start a new run. Received: the run's arguments differ"
        )


def _same_setting(key, saved, now):
    """Whether a saved run setting allows resuming with `now` (JSON-compared;
    `rounds` may go on with more rounds after the saved ones).
    """
    now = json.loads(json.dumps(now, default=jsonable))
    if key == "rounds" and isinstance(saved, list) and isinstance(now, list):
        return now[: len(saved)] == saved
    return saved == now


def _load_checkpoint(model, path, state):
    mismatch = (
        f"The checkpoint {path} does not match this model; build the model with "
        "the same arguments as the run that wrote it, or pass a new `save_path`"
    )
    try:
        if state and "trainable_layers" in state:
            set_trainable_flags(model, state["trainable_layers"])
        rebuild_optimizer(model)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model.load_weights(path)
    except ValueError as error:
        raise CheckpointError(f"{mismatch}. Received: {error}") from None
    skipped = [str(w.message) for w in caught if "Skipping variable loading" in str(w.message)]
    if skipped:
        raise CheckpointError(f"{mismatch}. Received: {skipped[0]}")
    for w in caught:
        warnings.warn(w.message, w.category, stacklevel=3)


def _resume(model, save_path, signature):
    """`(finished epochs, their logs)` after loading the newest intact checkpoint."""
    folder = checkpoint_dir(save_path)
    if not os.path.isdir(folder):
        return 0, []
    problems = []
    state_path = os.path.join(folder, STATE_FILE)
    try:
        state = read_state(save_path)
    except CheckpointError as error:
        state, problems = None, [str(error)]
    files = _checkpoints(folder)
    if state is not None:
        _check_same_run(state, signature, folder)
        candidates = [(state["epoch"], state["checkpoint"])] + [
            (e, files[e]) for e in sorted(files, reverse=True) if e < state["epoch"]
        ]
    else:
        if files and not problems:
            problems.append(f"The resume state file {state_path} is missing")
        candidates = [(e, files[e]) for e in sorted(files, reverse=True)]
    for epoch, name in candidates:
        path = os.path.join(folder, name)
        if not os.path.exists(path):
            problems.append(f"the checkpoint {path} is missing")
            continue
        reason = _broken_reason(path)
        if reason is not None:
            problems.append(f"the checkpoint {path} is truncated or corrupt ({reason})")
            continue
        _load_checkpoint(model, path, state if state and epoch == state["epoch"] else None)
        logs = list(state["logs"][:epoch]) if state else []
        logs += [{} for _ in range(epoch - len(logs))]
        if problems:
            warnings.warn(
                f"Resuming from the newest intact checkpoint {path} (epoch {epoch}) "
                f"because: {'; '.join(problems)}. The broken files were left in place.",
                stacklevel=3,
            )
            _clean(folder, keep=set(files.values()))  # temp files only
        else:
            _clean(folder, keep={name, f"epoch-{epoch - 1:04d}.keras"})
        return epoch, logs
    if problems:
        raise CheckpointError(
            f"No intact checkpoint to resume from in {folder}: {'; '.join(problems)}. "
            "Nothing was deleted; remove that folder or pass a new `save_path` to "
            "start a new run"
        )
    _clean(folder, keep=set())
    return 0, []


def _check_writable(folder):
    """Fail before training, not after an epoch, when `folder` cannot take files."""
    try:
        os.makedirs(folder, exist_ok=True)
        probe = os.path.join(folder, f"{TMP_PREFIX}{uuid.uuid4().hex}.probe")
        with open(probe, "wb") as f:
            f.write(b"0" * 4096)
            f.flush()
            os.fsync(f.fileno())
        os.remove(probe)
    except OSError as error:
        raise OSError(
            error.errno,
            f"Cannot write checkpoints to {folder} ({error.strerror or error}); "
            "choose a writable `save_path` with free space",
        ) from error
