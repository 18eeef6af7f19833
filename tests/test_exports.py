"""The public API: exported paths import, `__all__` holds, Keras classes round-trip."""

import importlib
import json
import os

import keras
import numpy as np
import pytest
import testing
from test_docstrings import MODULES
from tiny_models import tiny_simclr

import simclr_keras
from simclr_keras._export import EXPORTED, PACKAGE

for _name in MODULES:  # every module registers its exports on import
    importlib.import_module(_name)

# One small instance of every exported Keras class; a new exported class
# needs an entry here (the completeness test says so).
INSTANCES = {
    "simclr_keras.SimCLR": lambda: tiny_simclr(),
    "simclr_keras.LARS": lambda: simclr_keras.LARS(learning_rate=0.2, momentum=0.8),
    "simclr_keras.WarmupCosine": lambda: simclr_keras.WarmupCosine(0.5, 3, 20),
    "simclr_keras.layers.ColorJitter": lambda: simclr_keras.layers.ColorJitter(0.5, seed=3),
    "simclr_keras.layers.ImagePreprocess": lambda: simclr_keras.layers.ImagePreprocess(
        (8, 8), 3, "symmetric"
    ),
    "simclr_keras.layers.RandomResizedCrop": lambda: simclr_keras.layers.RandomResizedCrop(
        8, 6, scale=(0.3, 1.0), seed=2
    ),
    "simclr_keras.layers.SimCLRAugmentation": lambda: simclr_keras.layers.SimCLRAugmentation(
        8, 8, jitter_strength=0.5, seed=1
    ),
    "simclr_keras.layers.SoftmaxCosineSim": lambda: simclr_keras.layers.SoftmaxCosineSim(0.3),
    "simclr_keras.losses.NTXent": lambda: simclr_keras.losses.NTXent(0.2),
}


def keras_classes():
    return sorted(
        path
        for path, symbol in EXPORTED.items()
        if isinstance(symbol, type)
        and keras.saving.get_registered_name(symbol) == f"{PACKAGE}>{symbol.__name__}"
    )


def same_config(a, b):
    def normal(config):  # tuples and lists alike, as in the saved JSON
        return json.loads(json.dumps(config, default=str))

    return normal(a.get_config()) == normal(b.get_config())


def resolve(path):
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


class TestExports(testing.TestCase):
    def test_exports_are_found(self):
        assert {"simclr_keras.SimCLR", "simclr_keras.layers.SimCLRAugmentation"} <= set(EXPORTED)

    @pytest.mark.parametrize("path", sorted(EXPORTED))
    def test_exported_symbol_is_importable_from_its_public_path(self, path):
        symbol = EXPORTED[path]
        assert resolve(path) is symbol
        assert symbol._simclr_export_path == path

    @pytest.mark.parametrize("name", simclr_keras.__all__)
    def test_every_name_in_all_exists(self, name):
        assert getattr(simclr_keras, name) is not None

    def test_top_level_exports_are_in_all(self):
        top = {p.rpartition(".")[2] for p in EXPORTED if p.count(".") == 1}
        assert top <= set(simclr_keras.__all__) | {"__version__"}

    def test_every_exported_keras_class_has_an_example(self):
        assert keras_classes() == sorted(INSTANCES)

    @pytest.mark.parametrize("path", sorted(INSTANCES))
    def test_exported_keras_class_round_trips(self, path, tmp_path):
        obj = INSTANCES[path]()
        cls = EXPORTED[path]
        assert type(obj) is cls
        again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(obj))
        assert type(again) is cls
        assert again.get_config() == obj.get_config()
        if isinstance(obj, keras.Model):
            model = obj
        elif isinstance(obj, keras.layers.Layer):
            inputs = keras.Input((8, 8, 3) if "Softmax" not in path else (4,), batch_size=4)
            model = keras.Model(inputs, obj(inputs))
        else:  # a loss or an optimizer travels inside a compiled model
            inputs = keras.Input((3,), batch_size=2)
            model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
            if isinstance(obj, keras.losses.Loss):
                model.compile(optimizer="sgd", loss=obj)
            elif isinstance(obj, keras.optimizers.schedules.LearningRateSchedule):
                model.compile(optimizer=keras.optimizers.SGD(obj), loss="mse")
            else:
                model.compile(optimizer=obj, loss="mse")
                obj.build(model.trainable_variables)  # save its slots, as after training
        path_keras = os.path.join(tmp_path, "model.keras")
        model.save(path_keras)
        loaded = keras.saving.load_model(path_keras)
        found = [
            loaded,
            getattr(loaded, "optimizer", None),
            getattr(loaded, "loss", None),
            getattr(getattr(loaded, "optimizer", None), "_learning_rate", None),
            *loaded._flatten_layers(),
        ]
        assert any(type(o) is cls and same_config(o, obj) for o in found)
        if not isinstance(obj, simclr_keras.SimCLR):  # SimCLR's outputs: tests/test_model.py
            x = np.zeros(tuple(model.inputs[0].shape), "float32")
            self.assertAllClose(loaded(x), model(x), atol=1e-6)
