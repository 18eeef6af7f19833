"""`ColorJitter` computes each adjustment once per image, in balanced orders.

The orders come from random 4x4 Latin squares over blocks of 4 images
(`balanced_orders`): each image's order must still be uniform over the 24
permutations, each step must give each operation to exactly a quarter of the
padded batch, and the output must be SimCLR's jitter applied image by image
in the drawn order (a NumPy reference), also compiled and with batch sizes
that are not multiples of 4.
"""

import itertools

import keras
import numpy as np
import pytest
import testing
from scipy import stats
from testing import to_numpy

from simclr_keras.layers import ColorJitter
from simclr_keras.layers import color_jitter as cj

BATCH_SIZES = [1, 2, 3, 4, 5, 6, 7, 8, 13]


def rgb_to_hsv(rgb):
    """TF's `rgb_to_hsv` (the hexcone model) for `(..., 3)` float64 arrays."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    value = rgb.max(axis=-1)
    chroma = value - rgb.min(axis=-1)
    safe = np.where(chroma > 0, chroma, 1.0)
    saturation = np.where(value > 0, chroma / np.where(value > 0, value, 1.0), 0.0)
    hue = np.where(
        value == r,
        ((g - b) / safe) % 6.0,
        np.where(value == g, (b - r) / safe + 2, (r - g) / safe + 4),
    )
    hue = np.where(chroma > 0, hue / 6.0, 0.0)
    return np.stack([hue, saturation, value], axis=-1)


def hsv_to_rgb(hsv):
    """TF's `hsv_to_rgb` for `(..., 3)` float64 arrays."""
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    sector = (h % 1.0) * 6.0
    channels = []
    for n in (5.0, 3.0, 1.0):  # r, g, b
        k = (n + sector) % 6.0
        channels.append(v - v * s * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0))
    return np.stack(channels, axis=-1)


def reference(image, params, i):
    """Image i jittered alone: its operations in its drawn order, a clip
    after each, in float64 NumPy; unchanged when its coin says no."""
    x = image.astype("float64")
    if not params["apply"][i]:
        return x
    for op in params["order"][i]:
        name = cj.OPERATIONS[op]
        factor = float(params[name][i])
        if name == "brightness":
            x = x * factor
        elif name == "contrast":
            mean = x.mean(axis=(0, 1), keepdims=True)
            x = (x - mean) * factor + mean
        else:
            hsv = rgb_to_hsv(x)
            if name == "saturation":
                hsv[..., 1] = np.clip(hsv[..., 1] * factor, 0.0, 1.0)
            else:
                hsv[..., 0] = (hsv[..., 0] + factor) % 1.0
            x = hsv_to_rgb(hsv)
        x = np.clip(x, 0.0, 1.0)
    return x


def drawn(batch, seed, strength=1.0, probability=1.0):
    layer = ColorJitter(strength, probability, seed=seed)
    return {k: to_numpy(v) for k, v in layer.sample_parameters(batch).items()}


def random_images(batch, seed=0, size=(4, 5)):
    return np.random.default_rng(seed).uniform(0, 1, (batch, *size, 3)).astype("float32")


def compiled(fn):
    """`fn` compiled as a training step would be: jax.jit, a TF XLA function
    whose batch size is unknown while tracing, or eager torch."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return jax.jit(fn)
    if backend == "tensorflow":
        import tensorflow as tf

        spec = tf.TensorSpec((None, None, None, 3), tf.float32)
        params = {name: tf.TensorSpec((None,), tf.float32) for name in cj.OPERATIONS} | {
            "order": tf.TensorSpec((None, 4), tf.int32),
            "apply": tf.TensorSpec((None,), tf.bool),
        }
        return tf.function(fn, input_signature=[spec, params], jit_compile=True)
    return fn


class TestColorJitterOrders(testing.TestCase):
    def test_latin_squares_are_the_576_of_order_4(self):
        squares = cj.LATIN_SQUARES
        assert squares.shape == (576, 4, 4)
        assert len({s.tobytes() for s in squares}) == 576
        for square in squares:
            assert all(sorted(row) == [0, 1, 2, 3] for row in square.tolist())
            assert all(sorted(col) == [0, 1, 2, 3] for col in square.T.tolist())

    @pytest.mark.parametrize("batch, batches", [(6, 300), (64, 30)])
    def test_each_image_order_is_uniform_over_the_24_permutations(self, batch, batches):
        # Chi-square over the 24 orders of every image of many batches; alpha
        # 1e-3. Images of one block have distinct orders, which only narrows
        # the counts' spread (the test stays conservative).
        layer = ColorJitter(seed=12)
        index = {perm: k for k, perm in enumerate(itertools.permutations(range(4)))}
        counts = np.zeros(24)
        first = np.zeros(24)  # image 0 alone: its place in the batch is not favoured
        for _ in range(batches):
            order = to_numpy(layer.sample_parameters(batch)["order"])
            for row, perm in enumerate(order.tolist()):
                counts[index[tuple(perm)]] += 1
                first[index[tuple(perm)]] += row == 0
        for name, observed in (("all images", counts), ("image 0", first)):
            p = stats.chisquare(observed).pvalue
            assert p > 1e-3, f"B={batch}, {name}: chi-square p={p:.2e}, {observed.tolist()}"

    @pytest.mark.parametrize("batch", BATCH_SIZES + [64])
    def test_each_step_gives_each_operation_to_a_quarter_of_the_padded_batch(self, batch):
        order = drawn(batch, seed=batch)["order"]
        assert order.shape == (batch, 4) and order.dtype == np.int32
        assert all(sorted(row) == [0, 1, 2, 3] for row in order.tolist())
        padded = cj.padded_size(batch)
        assert padded % 4 == 0 and 0 <= padded - batch < 4
        for step in range(4):
            assert np.bincount(order[:, step], minlength=4).max() <= padded // 4
        full = to_numpy(cj.pad_orders(order, padded))
        self.assertAllEqual(full[:batch], order)
        for step in range(4):
            self.assertAllEqual(np.bincount(full[:, step], minlength=4), [padded // 4] * 4)
        if batch == 4:  # one block: its orders form a Latin square
            assert all(sorted(col) == [0, 1, 2, 3] for col in order.T.tolist())

    @pytest.mark.parametrize("batch", [6, 8])
    def test_each_adjustment_runs_once_per_image(self, batch, monkeypatch):
        # Each operation, at each step, on its quarter of the padded batch only.
        calls = []
        for name in cj.OPERATIONS:
            original = getattr(cj, f"adjust_{name}")

            def spy(images, factor, name=name, original=original):
                calls.append((name, int(images.shape[0]), int(factor.shape[0])))
                return original(images, factor)

            monkeypatch.setattr(cj, f"adjust_{name}", spy)
        layer = ColorJitter(1.0, 1.0, seed=0)
        out = layer(random_images(batch), training=True)
        assert tuple(out.shape) == (batch, 4, 5, 3)
        quarter = cj.padded_size(batch) // 4
        assert sorted(calls) == sorted([(name, quarter, quarter) for name in cj.OPERATIONS] * 4)

    def test_unbalanced_numpy_orders_are_refused(self):
        params = drawn(8, seed=0)
        params["order"] = np.tile(np.arange(4, dtype="int32"), (8, 1))
        with pytest.raises(ValueError, match=r"params\['order'\].*at most ceil\(B / 4\) = 2"):
            ColorJitter(1.0, 1.0, seed=0).transform(random_images(8), params)
        params["order"] = np.zeros((8, 4), "int32")
        with pytest.raises(ValueError, match="not one permutation of 0..3 per row"):
            ColorJitter(1.0, 1.0, seed=0).transform(random_images(8), params)


class TestColorJitterOutput(testing.TestCase):
    @pytest.mark.parametrize("batch", [1, 3, 5, 6, 8])
    def test_call_matches_a_per_image_numpy_reference(self, batch):
        images = random_images(batch, seed=batch)
        layer = ColorJitter(1.0, probability=0.6, seed=batch)
        if keras.backend.backend() == "jax":
            import jax

            layer.build(images.shape)
            state = [v.value for v in layer.non_trainable_variables]
            out, _ = jax.jit(lambda s, x: layer.stateless_call([], s, x, training=True))(
                state, images
            )
        else:
            out = layer(images, training=True)
        out = to_numpy(out)
        params = drawn(batch, seed=batch, probability=0.6)
        want = np.stack([reference(images[i], params, i) for i in range(batch)])
        self.assertAllClose(out, want, atol=2e-5)

    @pytest.mark.parametrize("batch", [3, 5, 12])
    def test_compiled_transform_matches_the_reference(self, batch):
        # Under TF the batch size is unknown while tracing (and XLA compiles).
        images = random_images(batch, seed=20 + batch, size=(6, 6))
        params = drawn(batch, seed=20 + batch, strength=0.5, probability=0.8)
        layer = ColorJitter(0.5, 0.8, seed=0)
        tensors = {k: keras.ops.convert_to_tensor(v) for k, v in params.items()}
        out = to_numpy(compiled(layer.transform)(keras.ops.convert_to_tensor(images), tensors))
        want = np.stack([reference(images[i], params, i) for i in range(batch)])
        self.assertAllClose(out, want, atol=2e-5)

    def test_probability_zero_and_strength_zero_leave_images_alone(self):
        images = random_images(5)
        self.assertAllEqual(ColorJitter(1.0, probability=0.0, seed=0)(images), images)
        self.assertAllEqual(ColorJitter(0.0, probability=1.0, seed=0)(images), images)
        params = drawn(5, seed=1)
        params["apply"] = np.zeros(5, bool)
        self.assertAllEqual(ColorJitter(1.0, 1.0).transform(images, params), images)
        # Strength 0 through `transform`: only the clips, as before.
        wide = images * 1.5 - 0.25
        params["apply"] = np.array([True, False, True, False, True])
        out = to_numpy(ColorJitter(0.0, 1.0).transform(wide, params))
        self.assertAllEqual(out[0::2], np.clip(wide[0::2], 0, 1))
        self.assertAllEqual(out[1::2], wide[1::2])
        # Identity factors in any balanced order: the images back (hue's HSV
        # round trip to float32 rounding).
        identity = dict(params, apply=np.ones(5, bool), hue=np.zeros(5, "float32"))
        for name in ("brightness", "contrast", "saturation"):
            identity[name] = np.ones(5, "float32")
        self.assertAllClose(ColorJitter(1.0, 1.0).transform(images, identity), images, atol=1e-6)

    def test_fits_compiled_with_a_partial_last_batch(self):
        # 10 images in batches of 4: the last batch (2) is padded to 4.
        inputs = keras.Input((6, 6, 3))
        x = ColorJitter(1.0, 0.8, seed=0)(inputs)
        outputs = keras.layers.Dense(1)(keras.layers.Flatten()(x))
        model = keras.Model(inputs, outputs)
        model.compile(optimizer="sgd", loss="mse", jit_compile=keras.backend.backend() != "torch")
        history = model.fit(
            random_images(10, size=(6, 6)), np.ones((10, 1)), batch_size=4, epochs=1, verbose=0
        )
        assert np.all(np.isfinite(history.history["loss"]))
