"""Shared fixtures: a fresh Keras session per test, real digits, the tiny
backbones and a tiny SimCLR. The base class of the test classes (seeded
session, backend-agnostic asserts, saving checks): `testing.TestCase`.
"""

import keras
import pytest
from digits_data import digits_rgb
from tiny_models import BACKBONES, tiny_simclr


@pytest.fixture(autouse=True)
def fresh_keras_session():
    """Clear Keras' global state (layer names, graphs) after each test, class
    or function, so no test leaves anything to the next (`testing.TestCase`
    also clears and seeds before each of its tests).
    """
    yield
    keras.backend.clear_session(free_memory=False)


@pytest.fixture(scope="session")
def digits():
    """sklearn digits as read-only uint8 `(1797, 16, 16, 3)` images and labels."""
    return digits_rgb(16)


@pytest.fixture(scope="session")
def digits_8px():
    """sklearn digits as read-only uint8 `(1797, 8, 8, 3)` images and labels."""
    return digits_rgb(8)


@pytest.fixture(params=sorted(BACKBONES))
def backbone(request):
    """A fresh 16x16 backbone of each kind: functional, sequential, subclassed."""
    return BACKBONES[request.param]()


@pytest.fixture
def make_tiny_simclr():
    """`tiny_models.tiny_simclr`: call it (with `SimCLR` overrides) for a model."""
    return tiny_simclr
