"""`TestCase`: what every test class of the suite shares.

Modelled on Keras' `TestCase` (keras/src/testing/test_case.py) and
keras-rs's (keras_rs/src/testing/test_case.py), but a plain pytest class
rather than a `unittest.TestCase`, so that `pytest.mark.parametrize`,
hypothesis and fixtures such as `tmp_path` work on its methods:

    import testing

    class TestLosses(testing.TestCase):
        @pytest.mark.parametrize("batch", [2, 8])
        def test_nt_xent(self, batch, tmp_path):
            self.assertAllClose(nt_xent(z_a, z_b, 0.5), want, rtol=1e-5)

Each test starts from a cleared Keras session with the Python, NumPy and
backend generators seeded by `SEED`. The asserts take tensors of any backend,
NumPy arrays, Python numbers and nested lists alike. `run_model_saving_test`
is the `.keras` round trip; `run_layer_test` the checks every Keras layer of
the package goes through.
"""

import json
import os
import tempfile

import keras
import numpy as np
import pytest
from keras import ops

SEED = 0


def to_numpy(x):
    """A NumPy array of a tensor of any backend (or of an array-like)."""
    if isinstance(x, np.ndarray):
        return x
    try:
        return np.asarray(keras.ops.convert_to_numpy(x))
    except (TypeError, ValueError):
        return np.asarray(x)


def _as_json(config):
    return json.loads(json.dumps(config, default=repr))


def _float32(x):
    return np.asarray(ops.convert_to_numpy(ops.cast(x, "float32")))


class TestCase:
    """Base class of the test classes: `class TestThing(testing.TestCase)`."""

    @pytest.fixture(autouse=True)
    def _fresh_keras_session(self):
        """Clear Keras' global state (layer names, graphs, the global
        `SeedGenerator`) and seed every generator before each test, as Keras'
        `TestCase.setUp` does (conftest.py clears it again afterwards).
        """
        keras.backend.clear_session(free_memory=False)
        keras.utils.set_random_seed(SEED)
        yield

    # Asserts, named as in unittest and Keras (hence noqa: N802). Tolerances
    # are those of `np.testing.assert_allclose` (rtol=1e-7, atol=0): a test
    # says what it tolerates.

    def assertAllClose(self, actual, desired, rtol=1e-7, atol=0.0, msg=""):  # noqa: N802
        """`actual` and `desired` are element-wise close (tensors of any backend)."""
        np.testing.assert_allclose(
            to_numpy(actual), to_numpy(desired), rtol=rtol, atol=atol, err_msg=msg
        )

    def assertNotAllClose(self, actual, desired, rtol=1e-7, atol=0.0, msg=""):  # noqa: N802
        """At least one element of `actual` is not close to `desired`."""
        try:
            self.assertAllClose(actual, desired, rtol=rtol, atol=atol)
        except AssertionError:
            return
        raise AssertionError(f"The values are close at every element. {msg}".strip())

    def assertAllEqual(self, actual, desired, msg=""):  # noqa: N802
        """`actual` and `desired` have the same shape and equal elements."""
        np.testing.assert_array_equal(to_numpy(actual), to_numpy(desired), err_msg=msg)

    def assertDTypeEqual(self, x, expected_dtype, msg=""):  # noqa: N802
        """`x` (tensor, array, `KerasTensor` or dtype) has the dtype `expected_dtype`."""
        got = keras.backend.standardize_dtype(getattr(x, "dtype", x))
        want = keras.backend.standardize_dtype(expected_dtype)
        assert got == want, f"dtype {got}, expected {want}. {msg}".strip()

    # Saving.

    def run_model_saving_test(
        self, model, input_data, *, call=None, rtol=1e-6, atol=1e-6, check_config=True
    ):
        """Save `model` to a `.keras` file, load it back and compare.

        The reloaded model must be of the same class, with the same config
        (`check_config`), and give the same outputs on `input_data`.

        Args:
            model: A Keras model, or a layer (saved inside a functional model
                whose input has `input_data`'s shape and dtype).
            input_data: What both models are called on.
            call: `call(model, input_data)` gives the outputs to compare;
                by default `model(input_data, training=False)`.
            rtol, atol: Tolerances of the output comparison.
            check_config: Also compare `get_config()` of both.

        Returns:
            The reloaded model.
        """
        if not isinstance(model, keras.Model):
            inputs = keras.Input(batch_shape=tuple(input_data.shape), dtype=str(input_data.dtype))
            model = keras.Model(inputs, model(inputs))
        if call is None:

            def call(m, x):
                return m(x, training=False)

        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "model.keras")
            model.save(path)
            loaded = keras.saving.load_model(path)
        assert type(loaded) is type(model), (type(loaded), type(model))
        if check_config:  # compared as the file stores it: tuples become lists
            assert _as_json(loaded.get_config()) == _as_json(model.get_config())
        self.assertAllClose(
            _float32(call(loaded, input_data)),
            _float32(call(model, input_data)),
            rtol=rtol,
            atol=atol,
        )
        return loaded

    # Layers: a small local version of Keras' `run_layer_test`.

    def run_layer_test(
        self,
        layer_cls,
        init_kwargs,
        input_data,
        *,
        call_kwargs=None,
        expected_output_shape=None,
        random=False,
        run_training_check=True,
        run_mixed_precision_check=True,
    ):
        """Run every layer check on `layer_cls(**init_kwargs)` called on `input_data`.

        Symbolic output shape against the real call, `get_config`/`from_config`
        and a `.keras` round trip inside a tiny model, one training step of a
        model holding the layer, mixed precision, and seeds for random layers.

        Args:
            layer_cls: The layer class.
            init_kwargs: Constructor arguments (without `seed` for random layers).
            input_data: A NumPy array the layer is called on.
            call_kwargs: Extra call arguments, e.g. `{"training": True}`.
            expected_output_shape: The output shape the call must give.
            random: The layer draws random numbers from a `seed` argument.
            run_training_check: Fit one step of a model holding the layer.
            run_mixed_precision_check: Call it under `mixed_bfloat16`.

        Returns:
            The layer's output on `input_data`.
        """
        call_kwargs = dict(call_kwargs or {})
        init = dict(init_kwargs, seed=0) if random else dict(init_kwargs)
        output = self._check_output_shape(
            layer_cls, init, input_data, call_kwargs, expected_output_shape
        )
        self._check_config_round_trip(layer_cls, init)
        self._check_saved_layer(layer_cls, init, input_data, call_kwargs)
        if run_training_check:
            self._check_training_step(layer_cls, init, input_data, call_kwargs)
        if run_mixed_precision_check:
            self._check_mixed_precision(layer_cls, init, input_data, call_kwargs)
        if random:
            self._check_seeds(layer_cls, init_kwargs, input_data, call_kwargs)
        return output

    def _assert_finite(self, x, what):
        assert np.all(np.isfinite(_float32(x))), f"{what}: non-finite values"

    def _check_output_shape(
        self, layer_cls, init_kwargs, input_data, call_kwargs, expected_output_shape
    ):
        """Real output shape == expected == compute_output_shape == symbolic call."""
        layer = layer_cls(**init_kwargs)
        output = layer(input_data, **call_kwargs)
        real = tuple(output.shape)
        if expected_output_shape is not None:
            assert real == tuple(expected_output_shape), (real, expected_output_shape)
        self._assert_finite(output, f"{layer_cls.__name__} output")
        assert tuple(layer.compute_output_shape(tuple(input_data.shape))) == real
        symbolic = layer_cls(**init_kwargs)(
            keras.KerasTensor(tuple(input_data.shape), dtype=str(input_data.dtype)), **call_kwargs
        )
        assert tuple(symbolic.shape) == real, (tuple(symbolic.shape), real)
        self.assertDTypeEqual(symbolic, output.dtype)
        return output

    def _check_config_round_trip(self, layer_cls, init_kwargs):
        """from_config(get_config()) rebuilds the same config, also via Keras' registry."""
        layer = layer_cls(**init_kwargs)
        config = layer.get_config()
        revived = layer_cls.from_config(config)
        assert revived.get_config() == config
        again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
        assert type(again) is layer_cls
        assert again.get_config() == config

    def _check_saved_layer(self, layer_cls, init_kwargs, input_data, call_kwargs):
        """A model holding the layer saves to `.keras` and reloads with equal outputs."""
        inputs = keras.Input(batch_shape=tuple(input_data.shape), dtype=str(input_data.dtype))
        model = keras.Model(inputs, layer_cls(**init_kwargs)(inputs, **call_kwargs))
        loaded = self.run_model_saving_test(
            model, input_data, rtol=1e-5, atol=1e-5, check_config=False
        )
        assert any(isinstance(layer, layer_cls) for layer in loaded.layers)

    def _check_training_step(self, layer_cls, init_kwargs, input_data, call_kwargs):
        """A model holding the layer fits one step; the loss is finite and weights move.

        The whole input is one sample of the model (a Lambda takes it apart),
        so that layers which change the batch size (SoftmaxCosineSim) train too.
        """
        shape, dtype = tuple(input_data.shape), str(input_data.dtype)
        inputs = keras.Input(shape=shape, batch_size=1, dtype=dtype)
        x = keras.layers.Lambda(lambda t: t[0])(inputs)
        x = layer_cls(**init_kwargs)(x, **call_kwargs)
        x = keras.layers.Lambda(lambda t: ops.reshape(ops.cast(t, "float32"), (1, -1)))(x)
        outputs = keras.layers.Dense(1, kernel_initializer="ones")(x)
        model = keras.Model(inputs, outputs)
        model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="mse")
        before = [_float32(w) for w in model.trainable_weights]
        history = model.fit(
            np.asarray(input_data)[None], np.ones((1, 1), "float32"), epochs=1, verbose=0
        )
        assert np.isfinite(history.history["loss"][0])
        after = [_float32(w) for w in model.trainable_weights]
        assert any(not np.array_equal(a, b) for a, b in zip(before, after))

    def _check_mixed_precision(self, layer_cls, init_kwargs, input_data, call_kwargs):
        """Under `mixed_bfloat16` the output has the layer's compute dtype and is finite."""
        previous = keras.mixed_precision.dtype_policy()
        try:
            keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
            layer = layer_cls(**init_kwargs)
            data = input_data
            if "float" in str(input_data.dtype):
                data = ops.cast(input_data, "bfloat16")  # what a mixed model feeds it
            output = layer(data, **call_kwargs)
            self.assertDTypeEqual(output, layer.compute_dtype)
            self._assert_finite(output, f"{layer_cls.__name__} under mixed_bfloat16")
        finally:
            keras.mixed_precision.set_dtype_policy(previous)

    def _check_seeds(self, layer_cls, init_kwargs, input_data, call_kwargs):
        """Same seed, same output; another seed or another call, another output."""

        def draw(seed):
            return _float32(layer_cls(**init_kwargs, seed=seed)(input_data, **call_kwargs))

        first = draw(3)
        self.assertAllEqual(draw(3), first)
        # np.allclose's tolerances: the outputs differ by more than rounding.
        self.assertNotAllClose(draw(4), first, rtol=1e-5, atol=1e-8)
        layer = layer_cls(**init_kwargs, seed=3)
        a = _float32(layer(input_data, **call_kwargs))
        b = _float32(layer(input_data, **call_kwargs))
        self.assertAllEqual(a, first)
        self.assertNotAllClose(a, b, rtol=1e-5, atol=1e-8, msg="a second call draws anew")
