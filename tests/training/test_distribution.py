"""Multi-device data parallelism: the loss is the global NT-Xent.

The 2-device check runs in a subprocess because JAX must see
`XLA_FLAGS=--xla_force_host_platform_device_count=2` before it is imported,
and the normal suite runs on TensorFlow. What "equal" means there: the same
initial weights (copied), the same augmentation seeds (so the same views: JAX's
random numbers do not depend on the sharding), one SGD step on the same global
batch; loss, updated weights and BatchNorm moving statistics then agree up to
float32 rounding (the gradient all-reduce sums partial sums in another order).
A per-device loss would not: with B=8 on 2 devices each anchor would see 6
instead of 14 negatives, about log(7) = 1.9 instead of log(15) = 2.7 at
initialisation, and per-device BatchNorm would change every activation.
"""

import json
import math
import os
import subprocess
import sys
import types

import numpy as np
import pytest
import testing

BATCH = 8
SIZE = 8
LR = 0.1


def _fake_distribution(shape, axis_names=("batch",), num_processes=1):
    mesh = types.SimpleNamespace(
        shape=tuple(shape),
        axis_names=list(axis_names),
        devices=np.zeros(shape),
    )
    return types.SimpleNamespace(
        device_mesh=mesh, batch_dim_name=axis_names[0], num_processes=num_processes
    )


class TestBatchSizeChecks(testing.TestCase):
    def test_check_batch_size_per_device_count(self):
        from simclr_keras.training.distribution import check_batch_size, replica_count

        assert check_batch_size(6) == 6  # no distribution set: one device
        assert replica_count() == 1
        assert check_batch_size(256, _fake_distribution((8,))) == 32
        assert replica_count(_fake_distribution((4, 2), ("batch", "model"))) == 4
        # Two hosts of 4 devices, 12 images each: 24 global, 3 per device.
        assert check_batch_size(12, _fake_distribution((8,), num_processes=2)) == 3
        with pytest.raises(ValueError, match=r"multiple of 4.*Received: batch_size=6"):
            check_batch_size(6, _fake_distribution((4,)))
        with pytest.raises(ValueError, match=r"multiple of 4.*Received: batch_size=10"):
            check_batch_size(10, _fake_distribution((8,), num_processes=2))

    def test_data_parallel_needs_jax_or_returns_checked_distribution(self):
        import keras

        from simclr_keras.training.distribution import data_parallel, replica_count

        if keras.backend.backend() != "jax":
            with pytest.raises(RuntimeError, match="JAX backend"):
                data_parallel(8)
            return
        dist = data_parallel(8 * len(keras.distribution.list_devices()))
        assert isinstance(dist, keras.distribution.DataParallel)
        assert replica_count(dist) == len(keras.distribution.list_devices())


def _worker():
    """Runs in a subprocess with JAX and 2 host devices; prints JSON."""
    import jax
    import keras

    from simclr_keras import SimCLR
    from simclr_keras.training.distribution import data_parallel

    def backbone():
        inp = keras.Input((SIZE, SIZE, 3))
        # No bias before BatchNorm: its true gradient is 0, so what is computed
        # is rounding noise that differs with the reduction order.
        x = keras.layers.Conv2D(4, 3, padding="same", use_bias=False)(inp)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.ReLU()(x)
        return keras.Model(inp, x)

    def make():
        keras.utils.set_random_seed(0)
        return SimCLR(
            backbone(),
            (SIZE, SIZE, 3),
            batch_size=BATCH,
            feat_dims_ph=[8, 4],
            optimizer=keras.optimizers.SGD(LR),
            seed=3,
        )

    images = np.random.default_rng(0).integers(0, 256, (2 * BATCH, SIZE, SIZE, 3), dtype="uint8")
    out = {"devices": len(jax.devices())}
    one = make()
    w0 = one.get_weights()
    out["loss_1"] = float(one.train_on_batch(images[:BATCH], return_dict=True)["loss"])
    w1 = one.get_weights()
    try:
        data_parallel(BATCH - 1)
        out["odd_error"] = None
    except ValueError as err:
        out["odd_error"] = str(err)
    dist = data_parallel(BATCH)
    with dist.scope():
        two = make()
        two.set_weights(w0)
        out["loss_2"] = float(two.train_on_batch(images[:BATCH], return_dict=True)["loss"])
        w2 = two.get_weights()
        out["weight_devices"] = len(two.trainable_variables[0].value.sharding.device_set)
        history = two.fit(images, epochs=1, verbose=0)
        out["fit_losses"] = [float(v) for v in history.history["loss"]]
    names = [v.path for v in one.weights if "seed_generator" not in v.path]
    out["names"] = names
    out["max_abs_diff"] = []
    out["max_abs_update"] = []
    for a, b, c in zip(w0, w1, w2):
        if a.dtype.kind != "f":
            continue  # seed states
        out["max_abs_diff"].append(float(np.max(np.abs(b - c))))
        out["max_abs_update"].append(float(np.max(np.abs(b - a))))
    print("RESULT " + json.dumps(out))


@pytest.fixture(scope="module")
def two_device_result():
    pytest.importorskip("jax")
    env = dict(os.environ)
    env.update(
        KERAS_BACKEND="jax",
        XLA_FLAGS="--xla_force_host_platform_device_count=2",
        JAX_PLATFORMS="cpu",
        TF_CPP_MIN_LOG_LEVEL="3",
        # The child runs this file as a script: `testing` (tests/) on its path.
        PYTHONPATH=os.pathsep.join(
            p
            for p in (
                os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                env.get("PYTHONPATH"),
            )
            if p
        ),
    )
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__)],
        env=env,
        capture_output=True,
        text=True,
        # A guard against a hang, not a speed limit: under CI's two
        # pytest-xdist workers the run shares the cores (240 s ran out on a
        # loaded 2-core machine).
        timeout=600,
    )
    lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-2000:] + proc.stderr[-4000:]
    return json.loads(lines[-1][len("RESULT ") :])


class TestTwoDevices(testing.TestCase):
    def test_two_devices_give_the_global_loss_and_gradients(self, two_device_result):
        r = two_device_result
        assert r["devices"] == 2
        assert r["weight_devices"] == 2  # weights are replicated on both devices
        assert math.isfinite(r["loss_1"])
        # Global NT-Xent: equal to the 1-device loss on the same global batch.
        assert r["loss_2"] == pytest.approx(r["loss_1"], rel=1e-5, abs=1e-6)
        # Every updated float variable matches: the gradients (update = -LR * g)
        # and BatchNorm's moving statistics, which only agree if BN is global.
        assert len(r["max_abs_diff"]) == len([n for n in r["names"]])
        assert any("moving_mean" in n for n in r["names"])
        assert max(r["max_abs_update"]) > 1e-4  # the step did change the weights
        for name, diff, update in zip(r["names"], r["max_abs_diff"], r["max_abs_update"]):
            assert diff <= 1e-6 + 1e-4 * update, f"{name} differs by {diff} between 1 and 2 devices"

    def test_two_devices_fit_and_batch_check(self, two_device_result):
        r = two_device_result
        assert len(r["fit_losses"]) == 1 and math.isfinite(r["fit_losses"][0])
        msg = r["odd_error"]
        assert msg is not None and "multiple of 2" in msg
        assert f"Received: batch_size={BATCH - 1}" in msg


if __name__ == "__main__":
    _worker()
