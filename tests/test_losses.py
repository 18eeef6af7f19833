"""NT-Xent against a loop-based NumPy reference written from the SimCLR paper."""

import math

import keras
import numpy as np
import pytest
import testing
from keras import ops
from testing import to_numpy

from simclr_keras import SoftmaxCosineSim, nt_xent
from simclr_keras.losses import NTXent, contrastive_accuracy, l2_normalize


def reference_nt_xent(z_a, z_b, temperature):
    """Eq. (1) of Chen et al. 2020, one anchor at a time, in float64."""
    z = np.concatenate([z_a, z_b]).astype("float64")
    n = len(z)  # 2B
    b = n // 2
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    total = 0.0
    for i in range(n):
        j = (i + b) % n  # the other view of the same image
        denominator = sum(math.exp(z[i] @ z[k] / temperature) for k in range(n) if k != i)
        total += -math.log(math.exp(z[i] @ z[j] / temperature) / denominator)
    return total / n


def reference_accuracy(z_a, z_b):
    z = np.concatenate([z_a, z_b]).astype("float64")
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    n, b = len(z), len(z) // 2
    sim = z @ z.T
    np.fill_diagonal(sim, -np.inf)
    return np.mean(np.argmax(sim, axis=1) == (np.arange(n) + b) % n)


def ioio_target(batch):
    """The `[I|O|I|O]` target of the original Keras SimCLR: identity, zeros, identity, zeros."""
    eye, zero = np.eye(batch), np.zeros((batch, batch))
    return np.concatenate([eye, zero, eye, zero], axis=1).astype("float32")


def value_and_grad(fn, x):
    """`fn(x)` and its gradient with respect to `x`, on the active backend."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        value, grad = jax.value_and_grad(fn)(ops.convert_to_tensor(x))
    elif backend == "tensorflow":
        import tensorflow as tf

        x = tf.Variable(x)
        with tf.GradientTape() as tape:
            value = fn(x)
        grad = tape.gradient(value, x)
    else:
        import torch

        x = torch.tensor(x, requires_grad=True)
        value = fn(x)
        value.backward()
        grad = x.grad
    return float(ops.convert_to_numpy(value)), ops.convert_to_numpy(grad)


class TestLosses(testing.TestCase):
    @pytest.mark.parametrize("batch", [2, 5, 16])
    @pytest.mark.parametrize("dim", [3, 32])
    @pytest.mark.parametrize("temperature", [0.05, 0.1, 0.5, 1.0])
    def test_nt_xent_matches_reference(self, batch, dim, temperature):
        rng = np.random.default_rng(batch * 100 + dim)
        z_a = rng.normal(size=(batch, dim)).astype("float32")
        z_b = (z_a + 0.5 * rng.normal(size=(batch, dim))).astype("float32")
        got = float(nt_xent(z_a, z_b, temperature))
        want = reference_nt_xent(z_a, z_b, temperature)
        self.assertAllClose(got, want, rtol=2e-5, atol=1e-5)

    @pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
    def test_nt_xent_any_input_dtype_gives_float32(self, dtype):
        rng = np.random.default_rng(0)
        z_a = rng.normal(size=(6, 8)).astype("float32")
        z_b = rng.normal(size=(6, 8)).astype("float32")
        cast_a = ops.cast(z_a, dtype)
        cast_b = ops.cast(z_b, dtype)
        loss = nt_xent(cast_a, cast_b, 0.1)
        assert keras.backend.standardize_dtype(loss.dtype) == "float32"
        # The reference sees the same rounded inputs.
        want = reference_nt_xent(
            to_numpy(ops.cast(cast_a, "float32")),
            to_numpy(ops.cast(cast_b, "float32")),
            0.1,
        )
        self.assertAllClose(float(loss), want, rtol=1e-4)

    def test_nt_xent_is_symmetric_in_the_views(self):
        rng = np.random.default_rng(1)
        z_a, z_b = rng.normal(size=(2, 7, 5)).astype("float32")
        self.assertAllClose(float(nt_xent(z_a, z_b, 0.2)), float(nt_xent(z_b, z_a, 0.2)), rtol=1e-6)

    def test_known_values_for_identical_views(self):
        batch, temperature = 4, 0.5
        # All 2B projections equal: every candidate is as similar as the positive.
        same = np.ones((batch, 3), "float32")
        self.assertAllClose(
            float(nt_xent(same, same, temperature)), math.log(2 * batch - 1), rtol=1e-6
        )
        # Identical views of orthonormal rows: positive cos 1, every negative 0.
        eye = np.eye(batch, 6, dtype="float32") * 3.0
        want = math.log(1 + 2 * (batch - 1) * math.exp(-1 / temperature))
        self.assertAllClose(float(nt_xent(eye, eye, temperature)), want, rtol=1e-5)

    def test_nt_xent_is_invariant_to_scale_and_lower_for_closer_views(self):
        rng = np.random.default_rng(2)
        z_a = rng.normal(size=(8, 16)).astype("float32")
        noise = rng.normal(size=(8, 16)).astype("float32")
        base = float(nt_xent(z_a, z_a + noise, 0.1))
        self.assertAllClose(float(nt_xent(3.0 * z_a, 0.2 * (z_a + noise), 0.1)), base, rtol=1e-5)
        assert float(nt_xent(z_a, z_a + 0.1 * noise, 0.1)) < base

    @pytest.mark.parametrize("batch", [2, 3, 8])
    def test_layer_shape_rows_sum_to_two_and_self_masked(self, batch):
        rng = np.random.default_rng(batch)
        z = rng.normal(size=(2 * batch, 6)).astype("float32")
        out = to_numpy(SoftmaxCosineSim(0.1)(z))
        assert out.shape == (batch, 4 * batch)
        self.assertAllClose(out.sum(axis=1), 2.0, rtol=1e-5)
        for half in (0, 1):
            block = out[:, half * 2 * batch : (half + 1) * 2 * batch]
            self.assertAllClose(block.sum(axis=1), 1.0, rtol=1e-5)
            # column B + i is the anchor itself: masked to exactly zero
            assert np.all(block[np.arange(batch), batch + np.arange(batch)] == 0)

    @pytest.mark.parametrize("batch", [2, 5, 12])
    @pytest.mark.parametrize("temperature", [0.07, 0.5])
    def test_ioio_cross_entropy_equals_nt_xent(self, batch, temperature):
        """The documented equivalence: half the cross-entropy of SoftmaxCosineSim's
        log-softmax block against [I|O|I|O] is NT-Xent, as is the training loss."""
        rng = np.random.default_rng(batch)
        z = rng.normal(size=(2 * batch, 10)).astype("float32")
        logp = to_numpy(SoftmaxCosineSim(temperature, output_mode="log_softmax")(z))
        ioio = float(np.mean(-0.5 * np.sum(ioio_target(batch) * logp, axis=1)))
        want = reference_nt_xent(z[:batch], z[batch:], temperature)
        self.assertAllClose(ioio, want, rtol=2e-5)
        self.assertAllClose(float(nt_xent(z[:batch], z[batch:], temperature)), want, rtol=2e-5)
        self.assertAllClose(float(NTXent(temperature)(np.zeros(2 * batch), z)), want, rtol=2e-5)

    def test_loss_finite_for_tiny_temperature_and_mixed_precision(self):
        rng = np.random.default_rng(3)
        z = rng.normal(size=(16, 8)).astype("float32")
        previous = keras.config.dtype_policy()
        try:
            for policy in ("mixed_float16", "mixed_bfloat16"):
                keras.config.set_dtype_policy(policy)
                low = ops.cast(z, "float16" if "float16" in policy else "bfloat16")
                loss = NTXent(0.01)(np.zeros(16), low)
                assert keras.backend.standardize_dtype(loss.dtype) == "float32"
                assert np.isfinite(float(loss))
                logp = SoftmaxCosineSim(0.01, output_mode="log_softmax")(low)
                assert keras.backend.standardize_dtype(logp.dtype) == "float32"
        finally:
            keras.config.set_dtype_policy(previous)

    def test_contrastive_accuracy_matches_reference(self):
        rng = np.random.default_rng(4)
        z_a = rng.normal(size=(10, 4)).astype("float32")
        z_b = (z_a + 0.8 * rng.normal(size=(10, 4))).astype("float32")
        got = float(ops.mean(contrastive_accuracy(None, np.concatenate([z_a, z_b]))))
        self.assertAllClose(got, reference_accuracy(z_a, z_b), rtol=1e-6)

    def test_bad_temperature_is_rejected(self):
        with pytest.raises(ValueError, match="temperature"):
            nt_xent(np.ones((2, 2)), np.ones((2, 2)), 0.0)
        with pytest.raises(ValueError, match="temperature=-1"):
            SoftmaxCosineSim(-1)

    @pytest.mark.parametrize("zero_rows", ["all", "some"])
    def test_nt_xent_value_and_gradient_finite_at_exactly_zero_projections(self, zero_rows):
        # A ReLU head, or a zero bias at initialisation, can output rows that
        # are exactly zero: sqrt's derivative at 0 made the gradient NaN.
        rng = np.random.default_rng(5)
        z = rng.normal(size=(8, 4)).astype("float32")
        z[[0, 5] if zero_rows == "some" else slice(None)] = 0.0
        value, grad = value_and_grad(lambda t: nt_xent(t[:4], t[4:], 0.1), z)
        assert np.isfinite(value) and np.isfinite(grad).all()
        if zero_rows == "all":  # every candidate alike: chance level
            self.assertAllClose(value, math.log(7), rtol=1e-6)
        else:  # the other rows are scored as before: normalised to unit length
            keep = [1, 2, 3, 4, 6, 7]
            self.assertAllClose(
                l2_normalize(z[keep]),
                z[keep] / np.linalg.norm(z[keep], axis=1, keepdims=True),
                rtol=1e-6,
            )
        _, grad_layer = value_and_grad(
            lambda t: ops.mean(SoftmaxCosineSim(0.1, output_mode="log_softmax")(t)), z
        )
        assert np.isfinite(grad_layer).all()

    def test_fit_from_exactly_zero_projections_stays_finite(self):
        # Zero weights everywhere: every projection row is exactly 0 at the first step.
        from simclr_keras import SimCLR

        zeros = {"kernel_initializer": "zeros", "bias_initializer": "zeros"}
        base = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3, **zeros)])
        simclr = SimCLR(
            base,
            (8, 8, 3),
            4,
            [8, 4],
            augmentation=keras.layers.Rescaling(1 / 255.0),
            optimizer=keras.optimizers.SGD(0.01),
            seed=0,
        )
        for layer in simclr.projection_head.layers:
            for weight in layer.weights:
                weight.assign(np.zeros(weight.shape, weight.dtype))
        images = np.random.default_rng(0).integers(0, 256, (8, 8, 8, 3), dtype=np.uint8)
        self.assertAllEqual(simclr.projection_head(simclr.encode(images / 255.0)), 0.0)
        history = simclr.fit(images, epochs=2, verbose=0)  # NaNLossError before the fix
        assert np.isfinite(history.history["loss"]).all()
        for weight in simclr.trainable_weights:
            assert np.isfinite(ops.convert_to_numpy(weight)).all(), weight.path
