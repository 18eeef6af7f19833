"""`StopOnNaN`: a clear error, naming the causes that apply, before a checkpoint is written."""

import os

import keras
import numpy as np
import pytest
import testing
from colour_data import colour_set, tiny_simclr

from simclr_keras.callbacks.resumable_checkpoint import ResumableCheckpoint, checkpoint_dir
from simclr_keras.callbacks.stop_on_nan import NaNLossError, StopOnNaN


class TestStopOnNaN(testing.TestCase):
    def test_stop_on_nan_raises_a_clear_error_and_writes_no_checkpoint(self, tmp_path):
        x, _ = colour_set(4)
        simclr = tiny_simclr(temperature=0.05, learning_rate=3e-3)
        # NaN weights in the head's last Dense give a NaN loss on every backend
        # (NaN in the backbone can be hidden by ReLU, which XLA maps NaN -> 0).
        layer = simclr.projection_head.layers[-1]
        layer.kernel.assign(np.full(layer.kernel.shape, np.nan, dtype="float32"))
        save_path = str(tmp_path / "m.keras")
        with pytest.raises(NaNLossError) as info:
            simclr.fit(
                x, epochs=2, verbose=0, callbacks=[StopOnNaN(), ResumableCheckpoint(save_path)]
            )
        message = str(info.value)
        for part in [
            "`loss` became nan at epoch 1, batch 1",
            "(1) the learning rate is high for Adam (learning_rate=0.003, above the usual 0.001",
            "(2) the NT-Xent temperature is low (temperature=0.05",
        ]:
            assert part in message
        assert "float16" not in message  # the policy is float32: not a cause here
        assert not any(n.endswith(".keras") for n in os.listdir(checkpoint_dir(save_path)))

    @pytest.mark.parametrize(
        "settings, named, not_named",
        [
            (
                dict(),
                ["The usual causes do not apply", "learning_rate=0.001", "temperature=0.1"],
                ["(1)"],
            ),
            (
                dict(temperature=0.05),
                ["(1) the NT-Xent temperature is low"],
                ["learning rate is high"],
            ),
            (dict(learning_rate=0.01), ["(1) the learning rate is high"], ["temperature is low"]),
            (dict(optimizer="lars"), ["The usual causes do not apply"], ["learning rate is high"]),
            (dict(optimizer="sgd", learning_rate=0.5), ["high for SGD", "above the usual 0.1"], []),
        ],
    )
    def test_nan_message_names_only_the_causes_that_apply(self, settings, named, not_named):
        stop = StopOnNaN()
        stop.set_model(tiny_simclr(**settings))
        message = stop.message(float("nan"), "epoch 1, batch 1")
        for part in named:
            assert part in message, message
        for part in not_named + ["float16"]:
            assert part not in message, message
        previous = keras.config.dtype_policy()
        try:
            keras.config.set_dtype_policy("mixed_float16")
            assert "float16 overflow under mixed precision (dtype policy='mixed_float16'" in (
                stop.message(float("nan"), "epoch 1, batch 1")
            )
        finally:
            keras.config.set_dtype_policy(previous)

    def test_stop_on_nan_checks_epoch_logs_and_ignores_finite_values(self):
        stop = StopOnNaN()
        stop.set_model(tiny_simclr())
        stop.on_train_batch_end(0, {"loss": 1.5})
        stop.on_epoch_end(0, {"loss": 0.5, "other": "text"})
        with pytest.raises(NaNLossError, match="became inf at the end of epoch 3"):
            stop.on_epoch_end(2, {"loss": float("inf")})

    def test_stop_on_nan_catches_nan_weights_behind_a_finite_loss(self):
        # Under XLA a ReLU maps NaN to 0, so NaN backbone weights can leave the
        # loss finite and flat; the epoch-end weight check names the weight.
        simclr = tiny_simclr()
        stop = StopOnNaN()
        stop.set_model(simclr)
        stop.on_epoch_end(0, {"loss": 2.0})  # all weights finite: no error
        kernel = next(w for w in simclr.base_model.trainable_weights if "kernel" in w.path)
        kernel.assign(
            np.where(
                np.arange(int(np.prod(kernel.shape))).reshape(kernel.shape) == 3, np.nan, 0.1
            ).astype("float32")
        )
        with pytest.raises(
            NaNLossError,
            match=f"the weight `{kernel.path}` holds NaN or inf "
            r"\(the loss was 2.0\) at the end of epoch 2",
        ):
            stop.on_epoch_end(1, {"loss": 2.0})
        quiet = StopOnNaN(check_weights=False)
        quiet.set_model(simclr)
        quiet.on_epoch_end(1, {"loss": 2.0})  # opted out: no error

    def test_fit_stops_on_nan_backbone_weights_on_every_backend(self, tmp_path):
        x, _ = colour_set(4)
        simclr = tiny_simclr()
        kernel = next(w for w in simclr.base_model.trainable_weights if "kernel" in w.path)
        kernel.assign(np.full(kernel.shape, np.nan, dtype="float32"))
        save_path = str(tmp_path / "m.keras")
        with pytest.raises(NaNLossError, match="Training stopped: "):
            simclr.fit(
                x, epochs=2, verbose=0, callbacks=[StopOnNaN(), ResumableCheckpoint(save_path)]
            )
        assert not any(n.endswith(".keras") for n in os.listdir(checkpoint_dir(save_path)))
