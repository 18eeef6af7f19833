"""kNN monitor (against a NumPy reference, in History and the progress bar)
and the NaN stop."""

import math
import os

import keras
import numpy as np
import pytest

from simclr_keras import SimCLR
from simclr_keras.callbacks import (
    NaNLossError,
    ResumableCheckpoint,
    StopOnNaN,
    checkpoint_dir,
)
from simclr_keras.features import extract_features
from simclr_keras.monitor import (
    KNNMonitor,
    knn_accuracy,
    knn_predict,
    split_bank_queries,
)

SHAPE = (8, 8, 3)


def reference_knn(bank, bank_labels, queries, k, temperature):
    """Literal per-query weighted vote (Wu et al. 2018), no vectorisation."""
    out = []
    for q in queries:
        sims = [float(np.dot(q, b) / (np.linalg.norm(q) * np.linalg.norm(b))) for b in bank]
        order = sorted(range(len(bank)), key=lambda i: -sims[i])[:k]
        votes = {}
        for i in order:
            w = 1.0 if temperature is None else math.exp(sims[i] / temperature)
            votes[bank_labels[i]] = votes.get(bank_labels[i], 0.0) + w
        out.append(max(sorted(votes), key=lambda c: votes[c]))
    return np.array(out)


@pytest.mark.parametrize("k", [1, 5, 20, 200])
@pytest.mark.parametrize("temperature", [0.07, 0.5, None])
def test_knn_predict_matches_numpy_reference(k, temperature):
    rng = np.random.default_rng(k)
    bank = rng.normal(size=(60, 6))
    labels = rng.integers(0, 4, size=60)
    queries = rng.normal(size=(25, 6)) * rng.uniform(0.1, 10, size=(25, 1))  # scale must not matter
    expected = reference_knn(bank, labels, queries, min(k, 60), temperature)
    np.testing.assert_array_equal(knn_predict(bank, labels, queries, k=k, temperature=temperature, chunk=7),
                                  expected)
    assert knn_accuracy(bank, labels, queries, expected, k=k, temperature=temperature) == 1.0


def test_knn_weighting_and_string_labels():
    bank = np.array([[1.0, 0.0], [0.95, 0.31], [0.0, 1.0], [0.1, 1.0], [0.2, 1.0]])
    labels = np.array(["cat", "cat", "dog", "dog", "dog"])
    query = np.array([[1.0, 0.05]])
    # 3 dog votes beat 2 cat votes without weights; sharp weights let the
    # two very close cats win.
    assert knn_predict(bank, labels, query, k=5, temperature=None)[0] == "dog"
    assert knn_predict(bank, labels, query, k=5, temperature=0.1)[0] == "cat"
    assert knn_predict(bank, labels, query, k=5, temperature=1e-4)[0] == "cat"  # no overflow
    with pytest.raises(ValueError, match="`k` must be an int >= 1"):
        knn_predict(bank, labels, query, k=0)
    with pytest.raises(ValueError, match="`temperature` must be > 0"):
        knn_predict(bank, labels, query, temperature=0.0)


def test_split_bank_queries_is_stratified_and_disjoint():
    labels = np.repeat([0, 1, 2], [10, 5, 1])
    bank, queries = split_bank_queries(labels, 0.2, seed=0)
    assert not set(bank) & set(queries) and len(bank) + len(queries) == 16
    assert sorted(labels[queries].tolist()) == [0, 0, 1]  # class 2 keeps its only image in the bank


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
    base = keras.Sequential([keras.Input(SHAPE), keras.layers.Conv2D(8, 1, activation="relu"),
                             keras.layers.Conv2D(8, 3)], name="tiny")
    return SimCLR(base, SHAPE, batch_size=8, feat_dims_ph=[8, 4], seed=0,
                  augmentation=keras.layers.Rescaling(1 / 255.0), **kwargs)  # cheap to compile


@pytest.mark.core
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
    direct = keras.ops.convert_to_numpy(simclr.encode(x[:5].astype("float32") / 255.0))
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
    for part in ["`loss` became nan at epoch 1, batch 1", "learning_rate=0.003", "temperature=0.05",
                 "'mixed_bfloat16'", "float16"]:
        assert part in message
    assert not any(n.endswith(".keras") for n in os.listdir(checkpoint_dir(save_path)))


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
    kernel.assign(np.where(np.arange(int(np.prod(kernel.shape))).reshape(kernel.shape) == 3, np.nan, 0.1).astype("float32"))
    with pytest.raises(NaNLossError, match=f"the weight `{kernel.path}` holds NaN or inf "
                                           r"\(the loss was 2.0\) at the end of epoch 2"):
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
