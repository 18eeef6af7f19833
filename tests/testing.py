"""What every test shares, in the spirit of Keras' `TestCase`
(keras/src/testing/test_case.py): tensors compared the same way on every
backend, and a fresh Keras session per test (the autouse fixture in
conftest.py calls `clear_session`).
"""

import keras
import numpy as np


def to_numpy(x):
    """A NumPy array of a tensor of any backend (or of an array-like)."""
    if isinstance(x, np.ndarray):
        return x
    try:
        return np.asarray(keras.ops.convert_to_numpy(x))
    except (TypeError, ValueError):
        return np.asarray(x)


def assert_allclose(actual, desired, rtol=1e-6, atol=1e-6, err_msg=""):
    """`np.testing.assert_allclose` on tensors of any backend."""
    np.testing.assert_allclose(to_numpy(actual), to_numpy(desired), rtol, atol, err_msg=err_msg)


def assert_equal(actual, desired, err_msg=""):
    """`np.testing.assert_array_equal` on tensors of any backend."""
    np.testing.assert_array_equal(to_numpy(actual), to_numpy(desired), err_msg=err_msg)
