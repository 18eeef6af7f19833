"""`run_layer_test`: the checks every Keras layer of the package goes through.

A small local version of Keras' `TestCase.run_layer_test`
(keras/src/testing/test_case.py): symbolic output shape against the real
call, `get_config`/`from_config` and a `.keras` round trip inside a tiny
model, one training step of a model holding the layer, mixed precision, and
seeds for random layers.
"""

import os
import tempfile

import keras
import numpy as np
from keras import ops


def _numpy(x):
    return np.asarray(ops.convert_to_numpy(ops.cast(x, "float32")))


def _assert_finite(x, what):
    values = _numpy(x)
    assert np.all(np.isfinite(values)), f"{what}: non-finite values"


def check_output_shape(layer_cls, init_kwargs, input_data, call_kwargs, expected_output_shape):
    """Real output shape == expected == compute_output_shape == symbolic call."""
    layer = layer_cls(**init_kwargs)
    output = layer(input_data, **call_kwargs)
    real = tuple(output.shape)
    if expected_output_shape is not None:
        assert real == tuple(expected_output_shape), (real, expected_output_shape)
    _assert_finite(output, f"{layer_cls.__name__} output")
    assert tuple(layer.compute_output_shape(tuple(input_data.shape))) == real
    symbolic = layer_cls(**init_kwargs)(
        keras.KerasTensor(tuple(input_data.shape), dtype=str(input_data.dtype)), **call_kwargs
    )
    assert tuple(symbolic.shape) == real, (tuple(symbolic.shape), real)
    assert keras.backend.standardize_dtype(symbolic.dtype) == keras.backend.standardize_dtype(
        output.dtype
    )
    return output


def check_config_round_trip(layer_cls, init_kwargs):
    """from_config(get_config()) rebuilds the same config, also via Keras' registry."""
    layer = layer_cls(**init_kwargs)
    config = layer.get_config()
    revived = layer_cls.from_config(config)
    assert revived.get_config() == config
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(again) is layer_cls
    assert again.get_config() == config


def check_saved_model(layer_cls, init_kwargs, input_data, call_kwargs):
    """A model holding the layer saves to `.keras` and reloads with equal outputs."""
    inputs = keras.Input(batch_shape=tuple(input_data.shape), dtype=str(input_data.dtype))
    model = keras.Model(inputs, layer_cls(**init_kwargs)(inputs, **call_kwargs))
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "layer_model.keras")
        model.save(path)
        loaded = keras.saving.load_model(path)
    assert any(isinstance(layer, layer_cls) for layer in loaded.layers)
    np.testing.assert_allclose(
        _numpy(loaded(input_data, training=False)),
        _numpy(model(input_data, training=False)),
        rtol=1e-5,
        atol=1e-5,
    )


def check_training_step(layer_cls, init_kwargs, input_data, call_kwargs):
    """A model holding the layer fits one step; the loss is finite and weights move.

    The whole input is one sample of the model (a Lambda takes it apart), so
    that layers which change the batch size (SoftmaxCosineSim) train too.
    """
    inputs = keras.Input(shape=tuple(input_data.shape), batch_size=1, dtype=str(input_data.dtype))
    x = keras.layers.Lambda(lambda t: t[0])(inputs)
    x = layer_cls(**init_kwargs)(x, **call_kwargs)
    x = keras.layers.Lambda(lambda t: ops.reshape(ops.cast(t, "float32"), (1, -1)))(x)
    outputs = keras.layers.Dense(1, kernel_initializer="ones")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="mse")
    before = [_numpy(w) for w in model.trainable_weights]
    history = model.fit(
        np.asarray(input_data)[None], np.ones((1, 1), "float32"), epochs=1, verbose=0
    )
    assert np.isfinite(history.history["loss"][0])
    after = [_numpy(w) for w in model.trainable_weights]
    assert any(not np.array_equal(a, b) for a, b in zip(before, after))


def check_mixed_precision(layer_cls, init_kwargs, input_data, call_kwargs):
    """Under `mixed_bfloat16` the output has the layer's compute dtype and is finite."""
    previous = keras.mixed_precision.dtype_policy()
    try:
        keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
        layer = layer_cls(**init_kwargs)
        data = input_data
        if "float" in str(input_data.dtype):
            data = ops.cast(input_data, "bfloat16")  # what a mixed model feeds it
        output = layer(data, **call_kwargs)
        assert keras.backend.standardize_dtype(output.dtype) == layer.compute_dtype
        _assert_finite(output, f"{layer_cls.__name__} under mixed_bfloat16")
    finally:
        keras.mixed_precision.set_dtype_policy(previous)


def check_seeds(layer_cls, init_kwargs, input_data, call_kwargs):
    """Same seed, same output; another seed or another call, another output."""

    def draw(seed):
        return _numpy(layer_cls(**init_kwargs, seed=seed)(input_data, **call_kwargs))

    first = draw(3)
    np.testing.assert_array_equal(draw(3), first)
    assert not np.allclose(draw(4), first)
    layer = layer_cls(**init_kwargs, seed=3)
    a = _numpy(layer(input_data, **call_kwargs))
    b = _numpy(layer(input_data, **call_kwargs))
    np.testing.assert_array_equal(a, first)
    assert not np.allclose(a, b), "a second call draws new random parameters"


def run_layer_test(
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
    """Run every check on `layer_cls(**init_kwargs)` called on `input_data`.

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
    output = check_output_shape(layer_cls, init, input_data, call_kwargs, expected_output_shape)
    check_config_round_trip(layer_cls, init)
    check_saved_model(layer_cls, init, input_data, call_kwargs)
    if run_training_check:
        check_training_step(layer_cls, init, input_data, call_kwargs)
    if run_mixed_precision_check:
        check_mixed_precision(layer_cls, init, input_data, call_kwargs)
    if random:
        check_seeds(layer_cls, init_kwargs, input_data, call_kwargs)
    return output
