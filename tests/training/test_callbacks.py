"""kNN monitor (in History and the progress bar), the NaN stop and the chance-loss warning."""

import os
import warnings

import keras
import numpy as np
import pytest
from testing import to_numpy

from simclr_keras import SimCLR
from simclr_keras.evaluation.features import extract_features
from simclr_keras.evaluation.knn_monitor import KNNMonitor
from simclr_keras.training.callbacks import (
    ChanceLossWarning,
    NaNLossError,
    StopOnNaN,
    WarnOnChanceLoss,
)
from simclr_keras.training.checkpoint import ResumableCheckpoint, checkpoint_dir

SHAPE = (8, 8, 3)


def colour_set(n_per_class=12, seed=0):
    """Three classes of near-constant red, green and blue images."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(3), n_per_class)
    x = np.full((len(labels),) + SHAPE, 20.0)
    x[np.arange(len(labels)), :, :, labels] = 220.0
    x += rng.normal(0, 3, size=x.shape)
    return np.clip(x, 0, 255).astype("uint8"), labels


def tiny_simclr(**kwargs):
    keras.utils.set_random_seed(0)
    base = keras.Sequential(
        [
            keras.Input(SHAPE),
            keras.layers.Conv2D(8, 1, activation="relu"),
            keras.layers.Conv2D(8, 3),
        ],
        name="tiny",
    )
    return SimCLR(
        base,
        SHAPE,
        batch_size=8,
        feat_dims_ph=[8, 4],
        seed=0,
        augmentation=keras.layers.Rescaling(1 / 255.0),
        **kwargs,
    )  # cheap to compile


def test_knn_monitor_logs_perfect_accuracy_on_separable_set(capsys):
    x, y = colour_set()
    simclr = tiny_simclr()
    monitor = KNNMonitor(x, y, k=5, every=2, query_fraction=0.25)
    csv = []

    class Seen(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            csv.append(dict(logs))

    history = simclr.fit(x, epochs=3, callbacks=[monitor, Seen()], verbose=2)
    assert history.history["knn_acc"] == [1.0, 1.0]  # after epochs 2 and 3 (the last)
    assert [e for e, _ in monitor.values] == [1, 2]
    assert "knn_acc" not in csv[0] and csv[1]["knn_acc"] == 1.0  # later callbacks see it
    assert "knn_acc: 1.0000" in capsys.readouterr().out  # and so does the progress bar

    # The monitor's features (batch by batch) and extract_features at P3 both
    # match a plain forward pass of the preprocessed images.
    direct = to_numpy(simclr.encode(x[:5].astype("float32") / 255.0))
    monitor.batch_size = 2
    np.testing.assert_allclose(monitor._features(x[:5]), direct, rtol=1e-5, atol=1e-6)
    feats = extract_features(simclr, x[:5], "P3", batch_size=2, verbose=0)
    np.testing.assert_allclose(feats, direct, rtol=1e-5, atol=1e-6)


def test_knn_monitor_with_validation_set_and_shuffled_labels():
    x, y = colour_set(8)
    simclr = tiny_simclr()
    monitor = KNNMonitor(x, y, k=3, validation=colour_set(4, seed=1))
    monitor.set_model(simclr)
    assert monitor.evaluate() == 1.0
    # With labels unrelated to the images the accuracy falls well below 1.
    rng = np.random.default_rng(0)
    wrong = KNNMonitor(x, rng.permutation(y), k=3, validation=(x, rng.permutation(y)))
    wrong.set_model(simclr)
    assert wrong.evaluate() < 0.7
    with pytest.raises(ValueError, match="`labels` must hold one label per image"):
        KNNMonitor(x, y[:-1])
    with pytest.raises(ValueError, match="`every` must be an int >= 1"):
        KNNMonitor(x, y, every=0)
    with pytest.raises(ValueError, match="`validation` must be a pair"):
        KNNMonitor(x, y, validation=x)


def test_stop_on_nan_raises_a_clear_error_and_writes_no_checkpoint(tmp_path):
    x, _ = colour_set(4)
    simclr = tiny_simclr(temperature=0.05, learning_rate=3e-3)
    # NaN weights in the head's last Dense give a NaN loss on every backend
    # (NaN in the backbone can be hidden by ReLU, which XLA maps NaN -> 0).
    layer = simclr.projection_head.layers[-1]
    layer.kernel.assign(np.full(layer.kernel.shape, np.nan, dtype="float32"))
    save_path = str(tmp_path / "m.keras")
    with pytest.raises(NaNLossError) as info:
        simclr.fit(x, epochs=2, verbose=0, callbacks=[StopOnNaN(), ResumableCheckpoint(save_path)])
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
        (dict(temperature=0.05), ["(1) the NT-Xent temperature is low"], ["learning rate is high"]),
        (dict(learning_rate=0.01), ["(1) the learning rate is high"], ["temperature is low"]),
        (dict(optimizer="lars"), ["The usual causes do not apply"], ["learning rate is high"]),
        (dict(optimizer="sgd", learning_rate=0.5), ["high for SGD", "above the usual 0.1"], []),
    ],
)
def test_nan_message_names_only_the_causes_that_apply(settings, named, not_named):
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


def test_stop_on_nan_checks_epoch_logs_and_ignores_finite_values():
    stop = StopOnNaN()
    stop.set_model(tiny_simclr())
    stop.on_train_batch_end(0, {"loss": 1.5})
    stop.on_epoch_end(0, {"loss": 0.5, "other": "text"})
    with pytest.raises(NaNLossError, match="became inf at the end of epoch 3"):
        stop.on_epoch_end(2, {"loss": float("inf")})


def test_stop_on_nan_catches_nan_weights_behind_a_finite_loss():
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


def test_fit_stops_on_nan_backbone_weights_on_every_backend(tmp_path):
    x, _ = colour_set(4)
    simclr = tiny_simclr()
    kernel = next(w for w in simclr.base_model.trainable_weights if "kernel" in w.path)
    kernel.assign(np.full(kernel.shape, np.nan, dtype="float32"))
    save_path = str(tmp_path / "m.keras")
    with pytest.raises(NaNLossError, match="Training stopped: "):
        simclr.fit(x, epochs=2, verbose=0, callbacks=[StopOnNaN(), ResumableCheckpoint(save_path)])
    assert not any(n.endswith(".keras") for n in os.listdir(checkpoint_dir(save_path)))


def dead_simclr():
    keras.utils.set_random_seed(0)
    dead = keras.Sequential(
        [
            keras.Input(SHAPE),
            keras.layers.Conv2D(4, 1, kernel_initializer="zeros", bias_initializer="ones"),
        ],
        name="dead",
    )  # frozen below: the same non-zero features for every image
    return SimCLR(dead, SHAPE, 4, [8, 4], 0, learning_rate=1e-3, seed=0)


def test_dead_backbone_warns_at_chance_loss_with_the_causes():
    simclr = dead_simclr()
    x, _ = colour_set(4)  # 12 images: 3 steps per epoch
    with pytest.warns(ChanceLossWarning) as caught:
        simclr.fit(x, epochs=5, verbose=0)
    chance_warnings = [w for w in caught if w.category is ChanceLossWarning]
    assert len(chance_warnings) == 1  # once per fit, not once per epoch
    text = str(chance_warnings[0].message)
    assert text.startswith("Epoch 4:") and "for 4 epochs (12 steps)" in text
    assert f"log(2B - 1) = {np.log(7):.4f}" in text and "batch_size=4" in text
    for cause in ("batch normalisation", "VGG16", "learning_rate=0.001", "preprocessing="):
        assert cause in text


def test_chance_loss_is_not_flagged_after_the_first_epoch_of_a_short_fit():
    # Every model starts at chance: one 3-step epoch there is no evidence.
    x, _ = colour_set(4)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ChanceLossWarning)
        dead_simclr().fit(x, epochs=1, verbose=0)
        dead_simclr().fit(x, epochs=3, verbose=0)  # 9 steps: still too few


def test_chance_loss_warning_only_near_log_2b_minus_1():
    callback = WarnOnChanceLoss()
    callback.set_model(tiny_simclr())  # batch_size 8: chance log(15)
    chance = np.log(15)

    def epoch(index, loss, steps=5):
        callback.on_epoch_begin(index)
        for step in range(steps):
            callback.on_train_batch_end(step)
        callback.on_epoch_end(index, {"loss": loss})

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        epoch(0, chance * 0.98)
        epoch(1, float("nan"))
        epoch(2, chance * 1.002)  # one epoch at chance: not yet
        epoch(3, chance * 0.9)  # left chance: the count starts again
        epoch(4, chance)
    with pytest.warns(ChanceLossWarning, match="Epoch 6: .* for 2 epochs \\(10 steps\\)"):
        epoch(5, chance * 1.002)
