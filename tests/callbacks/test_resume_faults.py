"""Resume under faults: kill -9 during a save, missing, truncated and corrupt
files, changed settings, a full disk and a read-only folder.

The rule: a rerun resumes from the newest intact checkpoint (warning with the
broken file's name when it had to fall back) or stops with a message naming
it; it never restarts silently and never deletes a good checkpoint.
(kill -9 during training: test_checkpoint.py.)
"""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import uuid

import keras
import numpy as np
import pytest
import testing
from digits_data import digits_rgb
from testing import to_numpy

from simclr_keras import SimCLR
from simclr_keras.callbacks import CheckpointError, ResumableCheckpoint, resume_state
from simclr_keras.callbacks.resumable_checkpoint import checkpoint_dir, read_state

HERE = os.path.dirname(os.path.abspath(__file__))
SHAPE = (8, 8, 3)
STEPS = 2


def make_simclr(batch_size=8, n_unfrozen=None, width=4, save_path=None):
    keras.utils.set_random_seed(0)
    inputs = keras.Input(SHAPE)
    x = keras.layers.Conv2D(width, 3, padding="same", name="c1")(inputs)
    base = keras.Model(inputs, keras.layers.Conv2D(8, 3, name="c2")(x), name="tiny")
    return SimCLR(
        base,
        SHAPE,
        batch_size=batch_size,
        feat_dims_ph=[8, 4],
        num_of_unfrozen_layers=n_unfrozen,
        seed=0,
        save_path=save_path,
        augmentation=keras.layers.Rescaling(1 / 255.0),  # short compiles
    )


def images(n=8 * STEPS):
    return np.ascontiguousarray(digits_rgb(8)[0][:n])


def iterations(model):
    return int(to_numpy(model.optimizer.iterations))


@pytest.fixture
def run_of_two_epochs(tmp_path):
    save_path = str(tmp_path / "m.keras")
    make_simclr().fit(images(), epochs=2, callbacks=[ResumableCheckpoint(save_path)], verbose=0)
    folder = checkpoint_dir(save_path)
    assert sorted(os.listdir(folder)) == ["epoch-0001.keras", "epoch-0002.keras", "state.json"]
    return save_path, folder


def _truncate(path):
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)


def _garble(path):
    with open(path, "r+b") as f:
        f.seek(os.path.getsize(path) // 3)
        f.write(b"\0garbage\0" * 64)


class TestResumeFromDamagedFiles(testing.TestCase):
    def test_missing_state_file_resumes_from_the_newest_checkpoint_and_deletes_nothing(
        self,
        run_of_two_epochs,
    ):
        save_path, folder = run_of_two_epochs
        os.remove(os.path.join(folder, "state.json"))
        model = make_simclr()
        with pytest.warns(UserWarning) as caught:
            history = model.fit(
                images(), epochs=3, callbacks=[ResumableCheckpoint(save_path)], verbose=0
            )
        message = " ".join(str(w.message) for w in caught)
        assert "state.json is missing" in message and "epoch-0002.keras (epoch 2)" in message
        assert iterations(model) == 3 * STEPS  # two epochs restored, one trained
        assert history.epoch == [0, 1, 2] and np.isfinite(history.history["loss"][2])
        assert read_state(save_path)["epoch"] == 3
        assert "epoch-0002.keras" in os.listdir(folder)

    @pytest.mark.parametrize("damage", ["truncate", "garble"])
    def test_damaged_state_file_falls_back_with_a_warning_naming_it(
        self, run_of_two_epochs, damage
    ):
        save_path, folder = run_of_two_epochs
        state = os.path.join(folder, "state.json")
        _truncate(state) if damage == "truncate" else open(state, "w").write("{not json")
        with pytest.warns(
            UserWarning, match=r"epoch-0002\.keras \(epoch 2\).*state\.json is truncated or corrupt"
        ):
            assert resume_state(make_simclr(), save_path) == 2
        assert sorted(os.listdir(folder)) == ["epoch-0001.keras", "epoch-0002.keras", "state.json"]

    @pytest.mark.parametrize(
        "damage", [_truncate, _garble, os.remove], ids=["truncated", "garbled", "missing"]
    )
    def test_damaged_newest_checkpoint_falls_back_to_the_previous_one(
        self, run_of_two_epochs, damage
    ):
        save_path, folder = run_of_two_epochs
        newest = os.path.join(folder, "epoch-0002.keras")
        damage(newest)
        model = make_simclr()
        with pytest.warns(UserWarning, match=r"epoch-0001\.keras \(epoch 1\).*epoch-0002\.keras"):
            history = model.fit(
                images(), epochs=2, callbacks=[ResumableCheckpoint(save_path)], verbose=0
            )
        assert iterations(model) == 2 * STEPS  # epoch 2 trained again
        assert len(history.history["loss"]) == 2
        assert read_state(save_path)["epoch"] == 2
        resume_state(make_simclr(), save_path)  # the retrained epoch 2 is intact: no warning

    def test_no_intact_checkpoint_stops_naming_the_files_and_deletes_nothing(
        self, run_of_two_epochs
    ):
        save_path, folder = run_of_two_epochs
        for name in ("epoch-0001.keras", "epoch-0002.keras"):
            _truncate(os.path.join(folder, name))
        before = sorted(os.listdir(folder))
        with pytest.raises(CheckpointError) as info:
            make_simclr().fit(
                images(), epochs=3, callbacks=[ResumableCheckpoint(save_path)], verbose=0
            )
        for fragment in (
            "No intact checkpoint",
            "epoch-0001.keras",
            "epoch-0002.keras",
            "Nothing was deleted",
        ):
            assert fragment in str(info.value)
        assert sorted(os.listdir(folder)) == before


class TestResumeWithOtherSettings(testing.TestCase):
    @pytest.mark.parametrize(
        "change, fragment",
        [
            (dict(batch_size=4), "batch_size=8 then, 4 now"),
            (dict(n_unfrozen=1), "num_of_unfrozen_layers=-1 then, 1 now"),
            (dict(width=6), "model="),
        ],
        ids=["batch_size", "unfrozen", "backbone"],
    )
    def test_changed_settings_are_detected(self, run_of_two_epochs, change, fragment):
        save_path, folder = run_of_two_epochs
        with pytest.raises(CheckpointError, match="other settings") as info:
            resume_state(make_simclr(**change), save_path)
        assert fragment in str(info.value) and folder in str(info.value)
        assert len(os.listdir(folder)) == 3

    def test_fewer_epochs_than_done_says_so_and_trains_nothing(self, run_of_two_epochs):
        save_path, _ = run_of_two_epochs
        model = make_simclr()
        with pytest.warns(UserWarning, match=r"already finished 2 epochs.*epochs=1"):
            history = model.fit(
                images(), epochs=1, callbacks=[ResumableCheckpoint(save_path)], verbose=0
            )
        assert iterations(model) == 2 * STEPS and len(history.history["loss"]) == 1


def _run(script_args, tmp_path):
    env = dict(os.environ)
    return subprocess.run(
        [sys.executable, *script_args],
        cwd=HERE,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@contextlib.contextmanager
def tmpfs(path, options):
    """Mount a tmpfs at `path` (root only); skip the test when that cannot be done."""
    if os.name != "posix" or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    os.makedirs(path, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"mount -t tmpfs failed: {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


class TestResumeUnderSystemFaults(testing.TestCase):
    @pytest.mark.parametrize("mode", ["model", "state"])
    def test_sigkill_during_a_save_then_rerun_finishes_the_run(self, tmp_path, mode):
        epochs, steps = 3, 2
        save_path = str(tmp_path / "run.keras")
        killed = _run(
            [
                os.path.join(HERE, "kill_during_save_script.py"),
                mode,
                save_path,
                str(epochs),
                str(tmp_path / "a.json"),
                str(steps),
            ],
            tmp_path,
        )
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
        folder = checkpoint_dir(save_path)
        assert read_state(save_path)["epoch"] == 1  # the commit point was never half written
        if mode == "model":
            assert any(n.startswith(".tmp-") for n in os.listdir(folder))  # the half-written file
        rerun = _run(
            [
                os.path.join(HERE, "resume_script.py"),
                save_path,
                str(epochs),
                str(tmp_path / "b.json"),
                str(steps),
            ],
            tmp_path,
        )
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        out = json.loads((tmp_path / "b.json").read_text())
        assert out["first_epoch"] == 1 and out["iterations"] == epochs * steps
        assert all(len(v) == epochs for v in out["history"].values())
        assert not any(n.startswith(".tmp-") for n in os.listdir(folder))

    def test_full_disk_fails_clearly_keeps_the_checkpoint_and_resumes_later(self, tmp_path):
        with tmpfs(tmp_path / "small", "size=4m") as disk:
            save_path = str(disk / "m.keras")
            make_simclr().fit(
                images(), epochs=1, callbacks=[ResumableCheckpoint(save_path)], verbose=0
            )
            filler = disk / "filler"
            with open(filler, "wb", buffering=0) as f:  # fill the disk to the last byte
                with contextlib.suppress(OSError):
                    while True:
                        f.write(b"\0" * 65536)
                with contextlib.suppress(OSError):
                    while True:
                        f.write(b"\0")
            model = make_simclr()
            with pytest.raises(OSError, match=r"m_checkpoint.*(No space|space left)") as info:
                model.fit(images(), epochs=2, callbacks=[ResumableCheckpoint(save_path)], verbose=0)
            assert "free space" in str(info.value)
            assert read_state(save_path)["epoch"] == 1
            os.remove(filler)
            model = make_simclr()
            history = model.fit(
                images(), epochs=2, callbacks=[ResumableCheckpoint(save_path)], verbose=0
            )
            assert iterations(model) == 2 * STEPS and len(history.history["loss"]) == 2

    def test_read_only_output_folder_fails_before_training(self, tmp_path):
        if os.name == "posix" and os.geteuid() == 0:  # root ignores mode bits: mount read-only
            context = tmpfs(tmp_path / "ro", "ro,size=1m")
        else:
            (tmp_path / "ro").mkdir()
            os.chmod(tmp_path / "ro", 0o555)
            context = contextlib.nullcontext(tmp_path / "ro")
        with context as folder:
            model = make_simclr(save_path=str(folder / f"{uuid.uuid4().hex}.keras"))
            with pytest.raises(OSError, match=r"Cannot write checkpoints to .*ro") as info:
                model.fit(images(), epochs=1, verbose=0)
            assert "writable" in str(info.value)
            assert iterations(model) == 0  # no epoch was trained and lost
        if os.path.isdir(tmp_path / "ro"):
            os.chmod(tmp_path / "ro", 0o755)
            shutil.rmtree(tmp_path / "ro", ignore_errors=True)
