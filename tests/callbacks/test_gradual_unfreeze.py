"""Gradual unfreezing: which backbone weights move in which epoch, per backend."""

import keras
import numpy as np
import pytest
import testing
from digits_data import digits_rgb
from testing import to_numpy

from simclr_keras import SimCLR
from simclr_keras.backbones import weighted_layers
from simclr_keras.callbacks.gradual_unfreeze import GradualUnfreeze
from simclr_keras.optimizers import rebuild_optimizer
from simclr_keras.training.rounds import fit_in_rounds

SHAPE = (8, 8, 3)


def bn_backbone():
    inputs = keras.Input(SHAPE)
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv1")(inputs)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv2")(x)
    x = keras.layers.BatchNormalization(name="bn2")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(8, 3, name="conv3")(x)
    return keras.Model(inputs, x, name="bn_backbone")


def make_simclr(n_unfrozen=0, optimizer=None):
    keras.utils.set_random_seed(1)
    return SimCLR(
        bn_backbone(),
        SHAPE,
        batch_size=8,
        feat_dims_ph=[8, 4],
        num_of_unfrozen_layers=n_unfrozen,
        # Rescaling as the "augmentation" keeps the JAX/XLA compile short; the
        # contrastive loss still trains every variable through the negatives.
        augmentation=keras.layers.Rescaling(1 / 255.0),
        optimizer=optimizer,
        seed=3,
    )


def images(n=64):
    return np.ascontiguousarray(digits_rgb(8)[0][:n])


def snapshot(layers):
    return {(l.name, v.name): to_numpy(v).copy() for l in layers for v in l.weights}


class ChangeRecorder(keras.callbacks.Callback):
    """Per epoch: the backbone weights that changed (bit-wise) in that epoch."""

    def __init__(self, layers):
        super().__init__()
        self.layers = layers
        self.changed = []

    def on_epoch_begin(self, epoch, logs=None):
        self.before = snapshot(self.layers)

    def on_epoch_end(self, epoch, logs=None):
        after = snapshot(self.layers)
        self.changed.append({k for k in after if not np.array_equal(after[k], self.before[k])})


def expected_changed(layers, n_unfrozen):
    trained = layers[len(layers) - n_unfrozen :] if n_unfrozen else []
    return {(l.name, v.name) for l in trained for v in l.weights}


class TestGradualUnfreeze(testing.TestCase):
    def test_gradual_unfreeze_moves_exactly_the_scheduled_weights(self):
        simclr = make_simclr(n_unfrozen=0)
        layers = weighted_layers(simclr.base_model)
        assert [l.name for l in layers] == ["conv1", "bn1", "conv2", "bn2", "conv3"]
        head_before = snapshot(simclr.projection_head.layers)
        schedule = {0: 0, 1: 1, 2: (3, 5e-3)}
        recorder = ChangeRecorder(layers)
        history = simclr.fit(
            images(), epochs=3, callbacks=[GradualUnfreeze(schedule), recorder], verbose=0
        )
        assert len(history.history["loss"]) == 3
        assert np.all(np.isfinite(history.history["loss"]))
        for epoch, n in enumerate([0, 1, 3]):
            assert recorder.changed[epoch] == expected_changed(layers, n), f"epoch {epoch}"
        # bn2's moving statistics only move once bn2 trains (epoch 2); bn1's never.
        assert ("bn2", "moving_mean") in recorder.changed[2]
        assert not any(k[0] == "bn1" for c in recorder.changed for k in c)
        head_after = snapshot(simclr.projection_head.layers)
        assert all(not np.array_equal(head_after[k], head_before[k]) for k in head_after)
        assert simclr.num_of_unfrozen_layers == 3
        assert float(to_numpy(simclr.optimizer.learning_rate)) == pytest.approx(5e-3)
        saved_optimizer = simclr.get_compile_config()["optimizer"]["config"]  # what .keras stores
        assert saved_optimizer["learning_rate"] == pytest.approx(5e-3)
        assert int(to_numpy(simclr.optimizer.iterations)) == 3 * 8

    def test_rebuild_optimizer_keeps_adam_state_of_still_trainable_variables(self):
        simclr = make_simclr(n_unfrozen=1)
        simclr.fit(images(), epochs=1, verbose=0)
        old = {v.path: to_numpy(v).copy() for v in simclr.optimizer.variables}
        simclr.base_model.get_layer("conv2").trainable = True
        new = rebuild_optimizer(simclr, learning_rate=1e-4)
        new_values = {v.path: to_numpy(v) for v in new.variables}
        kept = [p for p in new_values if p in old and "learning_rate" not in p]
        assert any("conv3" in p for p in kept) and any("iteration" in p for p in kept)
        for path in kept:
            self.assertAllEqual(new_values[path], old[path])
        fresh = [p for p in new_values if "conv2" in p]
        assert fresh and all(p not in old and not new_values[p].any() for p in fresh)
        assert float(to_numpy(new.learning_rate)) == pytest.approx(1e-4)
        assert len(new.variables) > len(old)

    def test_fit_in_rounds_merges_history_and_follows_rounds(self):
        simclr = make_simclr(n_unfrozen=0)
        layers = weighted_layers(simclr.base_model)
        recorder = ChangeRecorder(layers)
        history = fit_in_rounds(
            simclr, images(), [(1, 0), (2, 2, 1e-3)], callbacks=[recorder], verbose=0
        )
        assert history.epoch == [0, 1, 2]
        assert len(history.history["loss"]) == 3
        assert recorder.changed[0] == set()
        assert recorder.changed[1] == recorder.changed[2] == expected_changed(layers, 2)

    def test_fit_in_rounds_unfreezes_the_given_backbone_of_any_model(self):
        keras.utils.set_random_seed(1)
        backbone = bn_backbone()
        pooled = keras.layers.GlobalAveragePooling2D()(backbone.output)
        classifier = keras.Model(backbone.input, keras.layers.Dense(10)(pooled))
        classifier.compile(
            optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        )
        x, y = digits_rgb(8)
        layers = weighted_layers(backbone)
        recorder = ChangeRecorder(layers)
        history = fit_in_rounds(
            classifier,
            np.ascontiguousarray(x[:64]),
            [(1, 0), (1, 2, 1e-3)],
            base_model=backbone,
            y=y[:64],
            batch_size=16,
            callbacks=[recorder],
            verbose=0,
        )
        assert history.epoch == [0, 1]
        assert recorder.changed[0] == set()
        assert recorder.changed[1] == expected_changed(layers, 2)
        with pytest.raises(ValueError, match="`base_model` must be the backbone"):
            fit_in_rounds(classifier, x[:16], [(1, 0)], y=y[:16], verbose=0)
        with pytest.raises(ValueError, match="`base_model` must be the backbone"):
            classifier.fit(x[:16], y[:16], epochs=1, verbose=0, callbacks=[GradualUnfreeze({0: 1})])

    def test_schedule_errors_name_the_argument(self):
        with pytest.raises(ValueError, match="`schedule` must be a non-empty dict"):
            GradualUnfreeze([0, 1])
        with pytest.raises(ValueError, match="keys must be epochs"):
            GradualUnfreeze({-1: 2})
        simclr = make_simclr()
        with pytest.raises(ValueError, match="num_of_unfrozen_layers"):
            simclr.fit(images(16), epochs=1, verbose=0, callbacks=[GradualUnfreeze({0: 9})])
        with pytest.raises(ValueError, match="rounds"):
            fit_in_rounds(simclr, images(16), [])
        with pytest.raises(ValueError, match=r"`epochs` must be an int >= 1 \(in `rounds\[1\]`\)"):
            fit_in_rounds(simclr, images(16), [(1, 0), (0, 2)])
        with pytest.raises(
            ValueError, match=r"`learning_rate` must be a positive number .*`rounds\[0\]`"
        ):
            fit_in_rounds(simclr, images(16), [(1, 0, -1e-3)])
        sched = keras.optimizers.schedules.ExponentialDecay(1e-3, 10, 0.9)
        simclr = make_simclr(optimizer=keras.optimizers.Adam(sched))
        with pytest.raises(ValueError, match="LearningRateSchedule"):
            simclr.fit(images(16), epochs=1, verbose=0, callbacks=[GradualUnfreeze({0: (2, 1e-4)})])
