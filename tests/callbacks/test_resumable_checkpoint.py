"""Kill-safe checkpoints: SIGKILL mid-epoch and resume, atomic writes, export."""

import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import testing
from digits_data import digits_rgb
from testing import to_numpy
from tiny_models import tiny_simclr

from simclr_keras import SimCLR
from simclr_keras.callbacks.gradual_unfreeze import GradualUnfreeze
from simclr_keras.callbacks.resumable_checkpoint import (
    CheckpointError,
    ResumableCheckpoint,
    checkpoint_dir,
    read_state,
    resume_state,
)

HERE = os.path.dirname(os.path.abspath(__file__))
SHAPE = (8, 8, 3)


def images(n=32):
    return np.ascontiguousarray(digits_rgb(8)[0][:n])


def opt_values(model):
    return [to_numpy(v).copy() for v in model.optimizer.variables]


def _augmented_simclr():
    keras.utils.set_random_seed(0)
    base = keras.Sequential(
        [
            keras.Input(SHAPE),
            keras.layers.Conv2D(4, 3, name="c1"),
            keras.layers.BatchNormalization(name="bn"),
            keras.layers.ReLU(),
            keras.layers.GlobalAveragePooling2D(),
        ],
        name="tiny_seq",
    )
    return SimCLR(
        base,
        SHAPE,
        batch_size=8,
        feat_dims_ph=[8, 4],
        seed=0,
        augmentation={"crop_scale": (0.5, 1.0), "jitter_strength": 0.5},
    )


class _StopBeforeEpoch(keras.callbacks.Callback):
    """Raise KeyboardInterrupt as a kill would, at the start of `epoch`."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt


class TestResumableCheckpoint(testing.TestCase):
    def test_sigkill_mid_epoch_then_rerun_resumes_to_the_same_epoch_count(self, tmp_path):
        epochs = 4
        save_path = str(tmp_path / "run.keras")
        # Many small steps, ~0.3-2 s per epoch (eager PyTorch steps are ~25x slower).
        steps = 8 if keras.backend.backend() == "torch" else 224

        def command(out_name):  # the same run both times; only the report file differs
            script = os.path.join(HERE, "resume_script.py")
            return [
                sys.executable,
                script,
                save_path,
                str(epochs),
                str(tmp_path / out_name),
                str(steps),
            ]

        state_path = os.path.join(checkpoint_dir(save_path), "state.json")
        first = subprocess.Popen(
            command("first.json"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=HERE
        )
        deadline = time.time() + 240
        try:
            while time.time() < deadline and first.poll() is None:
                state = read_state(save_path) if os.path.exists(state_path) else None
                if state and state["epoch"] >= 1:
                    break
                time.sleep(0.05)
            else:
                pytest.fail(f"no checkpoint within 240 s (returncode {first.returncode})")
            time.sleep(0.1)  # inside the next epoch
            first.send_signal(signal.SIGKILL)
        finally:
            first.kill()
            first.wait()
        assert first.returncode == -signal.SIGKILL
        assert not (tmp_path / "first.json").exists()  # it really died before finishing
        finished = read_state(save_path)["epoch"]
        assert 1 <= finished < epochs

        rerun = subprocess.run(
            command("second.json"),
            check=False,
            capture_output=True,
            text=True,
            cwd=HERE,
            timeout=300,
        )
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        out = json.loads((tmp_path / "second.json").read_text())
        assert out["first_epoch"] == finished  # continued from the last finished epoch
        assert out["epoch"] == list(range(epochs))
        assert all(len(v) == epochs for v in out["history"].values())
        # The optimizer state came back: its step count covers all epochs.
        assert out["iterations"] == epochs * out["steps_per_epoch"]
        folder = checkpoint_dir(save_path)
        # The newest checkpoint and the one before it (a fallback if the newest breaks).
        assert sorted(os.listdir(folder)) == [
            f"epoch-{epochs - 1:04d}.keras",
            f"epoch-{epochs:04d}.keras",
            "state.json",
        ]
        state = read_state(save_path)
        assert state["epoch"] == epochs and len(state["logs"]) == epochs
        restored = keras.saving.load_model(os.path.join(folder, state["checkpoint"]))
        assert int(to_numpy(restored.optimizer.iterations)) == out["iterations"]

    @pytest.mark.core
    def test_resume_restores_weights_optimizer_and_unfreeze_stage(self, tmp_path):
        save_path = str(tmp_path / "m.keras")
        schedule = {0: 0, 1: 2}
        simclr = tiny_simclr(num_of_unfrozen_layers=0)
        history = simclr.fit(
            images(),
            epochs=2,
            callbacks=[GradualUnfreeze(schedule), ResumableCheckpoint(save_path)],
            verbose=0,
        )
        first_losses = history.history["loss"]
        assert len(first_losses) == 2
        saved_weights = [to_numpy(w) for w in simclr.weights]
        saved_opt = opt_values(simclr)

        fresh = tiny_simclr(num_of_unfrozen_layers=0)  # same arguments, as a rerun would build it
        assert resume_state(fresh, save_path) == 2
        assert fresh.num_of_unfrozen_layers == 2
        assert [l.trainable for l in fresh.base_model.layers if l.weights] == [False, True, True]
        for a, b in zip(saved_weights, fresh.weights):
            self.assertAllEqual(a, b)
        assert len(saved_opt) == len(fresh.optimizer.variables)
        for a, b in zip(saved_opt, opt_values(fresh)):
            self.assertAllEqual(a, b)

        again = tiny_simclr(num_of_unfrozen_layers=0)
        history = again.fit(
            images(),
            epochs=3,
            callbacks=[GradualUnfreeze(schedule), ResumableCheckpoint(save_path)],
            verbose=0,
        )
        assert history.epoch == [0, 1, 2] and len(history.history["loss"]) == 3
        assert history.history["loss"][:2] == first_losses  # merged with the resumed epochs
        assert int(to_numpy(again.optimizer.iterations)) == 3 * 4
        done = tiny_simclr(num_of_unfrozen_layers=0)
        assert (
            len(
                done.fit(
                    images(), epochs=3, callbacks=[ResumableCheckpoint(save_path)], verbose=0
                ).history["loss"]
            )
            == 3
        )  # no retraining
        assert int(to_numpy(done.optimizer.iterations)) == 3 * 4

    def test_failed_write_keeps_previous_checkpoint_and_resume_cleans_leftovers(
        self, tmp_path, monkeypatch
    ):
        save_path = str(tmp_path / "m.keras")
        simclr = tiny_simclr()
        simclr.fit(images(16), epochs=1, callbacks=[ResumableCheckpoint(save_path)], verbose=0)
        folder = checkpoint_dir(save_path)
        before = sorted(os.listdir(folder))
        assert before == ["epoch-0001.keras", "state.json"]

        def broken_replace(src, dst):
            raise OSError("disk full")

        monkeypatch.setattr(os, "replace", broken_replace)
        with pytest.raises(OSError, match="disk full"):
            simclr.fit(images(16), epochs=2, callbacks=[ResumableCheckpoint(save_path)], verbose=0)
        monkeypatch.undo()
        assert sorted(os.listdir(folder)) == before  # the temp file was removed, nothing replaced
        assert read_state(save_path)["epoch"] == 1

        # What a SIGKILL can leave: a half-written temp file, an unreferenced
        # checkpoint written just before the state. Resuming removes both.
        (tmp_path / "m_checkpoint" / ".tmp-abc.keras").write_bytes(b"PK\x03half")
        (tmp_path / "m_checkpoint" / "epoch-0002.keras").write_bytes(b"orphan")
        assert resume_state(tiny_simclr(), save_path) == 1
        assert sorted(os.listdir(folder)) == before

        keras.utils.set_random_seed(0)
        other = SimCLR(
            keras.Sequential(
                [keras.Input(SHAPE), keras.layers.Conv2D(4, 3), keras.layers.Conv2D(8, 3)]
            ),
            SHAPE,
            batch_size=8,
            feat_dims_ph=[8, 4],
        )
        with pytest.raises(ValueError, match="other settings: model="):
            resume_state(other, save_path)
        with pytest.raises(ValueError, match="`save_path` must be a file path"):
            ResumableCheckpoint("")

    def test_exported_backbone_loads_in_a_fresh_process_without_simclr_keras(self, tmp_path):
        simclr = tiny_simclr()
        path = simclr.export_backbone(str(tmp_path / "backbone.keras"))
        x = (images(4) / 255.0).astype("float32")
        np.save(tmp_path / "x.npy", x)
        expected = to_numpy(simclr.base_model(x, training=False))
        code = (
            "import sys, numpy as np, keras\n"
            f"m = keras.saving.load_model({path!r})\n"
            "assert not any(n.startswith('simclr_keras') for n in sys.modules), 'simclr_keras was imported'\n"
            f"np.save({str(tmp_path / 'y.npy')!r}, keras.ops.convert_to_numpy(m(np.load({str(tmp_path / 'x.npy')!r}))))\n"
        )
        env = dict(os.environ, PYTHONPATH="")
        done = subprocess.run(
            [sys.executable, "-c", code],
            check=False,
            capture_output=True,
            text=True,
            cwd=str(tmp_path),
            env=env,
            timeout=240,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        self.assertAllClose(np.load(tmp_path / "y.npy"), expected, rtol=1e-5, atol=1e-6)

    @pytest.mark.core
    @pytest.mark.parametrize("source", ["array", "generator"])
    def test_resumed_run_continues_exactly_like_an_uninterrupted_one(self, tmp_path, source):
        # Batch order (seeded per epoch), augmentation seed state and optimizer
        # state all come back, so 2 epochs + resume to 3 equals 3 straight epochs.
        from simclr_keras import DataGeneratorSimCLR

        def data():  # what a rerun of the script would build: a fresh one each time
            x = images(32)
            return x if source == "array" else DataGeneratorSimCLR(x, batch_size=8, seed=5)

        straight = _augmented_simclr()
        straight_loss = straight.fit(
            data(), epochs=3, callbacks=[ResumableCheckpoint(str(tmp_path / "a.keras"))], verbose=0
        ).history["loss"]

        interrupted = _augmented_simclr()
        interrupted.fit(
            data(), epochs=2, callbacks=[ResumableCheckpoint(str(tmp_path / "b.keras"))], verbose=0
        )
        resumed = _augmented_simclr()
        resumed_loss = resumed.fit(
            data(), epochs=3, callbacks=[ResumableCheckpoint(str(tmp_path / "b.keras"))], verbose=0
        ).history["loss"]

        self.assertAllClose(resumed_loss, straight_loss, rtol=1e-5)
        for a, b in zip(straight.weights, resumed.weights):
            self.assertAllClose(
                a,
                b,
                rtol=1e-5,
                atol=1e-6,
                msg=a.path,
            )

    @pytest.mark.core
    def test_generator_set_epoch_replans_that_epochs_batches(self):
        from simclr_keras import DataGeneratorSimCLR

        walked = DataGeneratorSimCLR(images(32), batch_size=8, seed=3)
        orders = []
        for _ in range(3):
            orders.append(np.concatenate([walked.batch_indices(i) for i in range(len(walked))]))
            walked.on_epoch_end()
        assert not np.array_equal(orders[0], orders[2])
        jumped = DataGeneratorSimCLR(images(32), batch_size=8, seed=3)
        jumped.set_epoch(2)
        self.assertAllEqual(np.concatenate([jumped.batch_indices(i) for i in range(4)]), orders[2])
        with pytest.raises(ValueError, match="`epoch` must be an int >= 0. Received: epoch=-1"):
            jumped.set_epoch(-1)

    @pytest.mark.parametrize("keep", [1, 2, 3])
    def test_checkpoint_retention_keeps_the_newest_n_and_still_resumes(self, tmp_path, keep):
        save_path = str(tmp_path / "m.keras")
        simclr = tiny_simclr()
        simclr.fit(
            images(), epochs=3, callbacks=[ResumableCheckpoint(save_path, keep=keep)], verbose=0
        )
        kept = sorted(n for n in os.listdir(checkpoint_dir(save_path)) if n.endswith(".keras"))
        assert kept == [f"epoch-{e:04d}.keras" for e in range(4 - keep, 4)]
        again = tiny_simclr()
        history = again.fit(
            images(), epochs=4, callbacks=[ResumableCheckpoint(save_path, keep=keep)], verbose=0
        )
        assert len(history.history["loss"]) == 4
        assert int(to_numpy(again.optimizer.iterations)) == 4 * 4  # one epoch trained, not four

    def test_checkpoint_retention_argument_is_checked(self):
        with pytest.raises(ValueError, match=r"`keep` must be an int >= 1 .*Received: keep=0"):
            ResumableCheckpoint("m.keras", keep=0)

    def test_any_keras_model_resumes_not_only_simclr(self, tmp_path):
        x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
        y = x.sum(axis=1, keepdims=True)

        def regression():
            keras.utils.set_random_seed(0)
            model = keras.Sequential(
                [keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(1)]
            )
            model.compile("adam", "mse")
            return model

        save_path = str(tmp_path / "plain.keras")
        regression().fit(
            x, y, batch_size=8, epochs=2, callbacks=[ResumableCheckpoint(save_path)], verbose=0
        )
        resumed = regression()
        history = resumed.fit(
            x, y, batch_size=8, epochs=3, callbacks=[ResumableCheckpoint(save_path)], verbose=0
        )
        assert len(history.history["loss"]) == 3  # the History covers the whole run
        assert int(to_numpy(resumed.optimizer.iterations)) == 3 * 4  # one epoch trained, not three
        assert read_state(save_path)["epoch"] == 3
        for saved, trained in zip(keras.saving.load_model(save_path).weights, resumed.weights):
            self.assertAllClose(saved, trained)

    @pytest.mark.core
    def test_fit_in_rounds_killed_in_the_second_round_resumes_there(self, tmp_path):
        from simclr_keras.training.rounds import fit_in_rounds

        rounds = [(1, 0, 1e-3), (2, 2, 5e-4)]
        straight = tiny_simclr(num_of_unfrozen_layers=0)
        straight_loss = fit_in_rounds(
            straight,
            images(),
            rounds,
            callbacks=[ResumableCheckpoint(str(tmp_path / "a.keras"))],
            verbose=0,
        ).history["loss"]

        save_path = str(tmp_path / "b.keras")
        killed = tiny_simclr(num_of_unfrozen_layers=0, save_path=save_path)
        with pytest.raises(KeyboardInterrupt):  # killed after epoch 2, the first of round 2
            fit_in_rounds(killed, images(), rounds, callbacks=[_StopBeforeEpoch(2)], verbose=0)
        assert read_state(save_path)["epoch"] == 2

        rerun = tiny_simclr(num_of_unfrozen_layers=0, save_path=save_path)  # the script run again
        history = fit_in_rounds(rerun, images(), rounds, verbose=0)
        assert history.epoch == [0, 1, 2]
        assert rerun.num_of_unfrozen_layers == 2
        assert [l.trainable for l in rerun.base_model.layers if l.weights] == [False, True, True]
        assert float(to_numpy(rerun.optimizer.learning_rate)) == pytest.approx(5e-4)
        self.assertAllClose(history.history["loss"], straight_loss, rtol=1e-5)
        for a, b in zip(straight.weights, rerun.weights):
            self.assertAllClose(a, b, rtol=1e-5, atol=1e-6, msg=a.path)

    def test_fit_in_rounds_resumed_with_other_rounds_is_refused(self, tmp_path):
        """Killed in round 2, rerun with other rounds: a `CheckpointError`, not a
        hybrid of both schedules; more rounds after the same ones go on.
        """
        from simclr_keras.training.rounds import fit_in_rounds

        rounds = [(1, 0, 1e-3), (2, 2, 5e-4)]
        save_path = str(tmp_path / "r.keras")
        killed = tiny_simclr(num_of_unfrozen_layers=0, save_path=save_path)
        with pytest.raises(KeyboardInterrupt):
            fit_in_rounds(killed, images(), rounds, callbacks=[_StopBeforeEpoch(2)], verbose=0)
        assert read_state(save_path)["run"]["rounds"] == [[1, 0, 1e-3], [2, 2, 5e-4]]
        assert not hasattr(killed, "_fit_rounds")
        for other in ([(2, 0, 1e-3), (1, 2, 5e-4)], [(1, 0, 1e-3), (2, -1, 5e-4)]):
            rerun = tiny_simclr(num_of_unfrozen_layers=0, save_path=save_path)
            with pytest.raises(
                CheckpointError, match=r"rounds=\[\[1, 0, 0.001\], \[2, 2, 0.0005\]\] then"
            ):
                fit_in_rounds(rerun, images(), other, verbose=0)
        longer = tiny_simclr(num_of_unfrozen_layers=0, save_path=save_path)
        history = fit_in_rounds(longer, images(), rounds + [(1, -1, 1e-4)], verbose=0)
        assert history.epoch == [0, 1, 2, 3]
