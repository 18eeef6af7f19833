"""SimCLR wrapper: backbones of every kind, freezing, saving, seeds, errors."""

import warnings

import keras
import numpy as np
import pytest
import testing
from digits_data import digits_rgb
from testing import to_numpy
from tiny_models import SHAPE, SubclassedBackbone, functional_backbone, sequential_backbone

from simclr_keras import SimCLR
from simclr_keras.backbones import weighted_layers

# Light enough for the tiny backbones below to learn in a few epochs: with
# SimCLR's symmetric factors, s = 0.25 draws brightness and contrast in
# [0.8, 1.2] (the old, one-sided draws at s = 0.5 only raised contrast).
LIGHT_AUG = dict(crop_scale=(0.4, 1.0), jitter_strength=0.25)


def applications_backbone():
    return keras.applications.MobileNetV3Small(
        input_shape=(32, 32, 3),
        include_top=False,
        weights=None,
        minimalistic=True,
        include_preprocessing=False,
    )


def make(base, shape=SHAPE, batch=32, **kwargs):
    kwargs.setdefault("augmentation", LIGHT_AUG)
    kwargs.setdefault("seed", 1)
    return SimCLR(base, shape, batch, [32, 16], None, **kwargs)


class TestModel(testing.TestCase):
    @pytest.mark.parametrize(
        "factory", [sequential_backbone, functional_backbone, SubclassedBackbone]
    )
    def test_fit_lowers_the_loss_on_digits(self, factory):
        keras.utils.set_random_seed(0)
        images, _ = digits_rgb(16)
        simclr = make(factory(), batch=64, learning_rate=3e-3)
        history = simclr.fit(images[:768], epochs=5, verbose=0).history
        assert np.all(np.isfinite(history["loss"]))
        # Epoch losses are noisy (new views each step): compare the last two
        # epochs' mean with the first epoch.
        assert np.mean(history["loss"][-2:]) < history["loss"][0] - 0.05, history["loss"]
        assert 0 <= history["contrastive_acc"][-1] <= 1

    def test_fit_lowers_the_loss_with_a_keras_applications_backbone(self):
        keras.utils.set_random_seed(0)
        images, _ = digits_rgb(32)
        simclr = make(applications_backbone(), (32, 32, 3), batch=32)
        history = simclr.fit(images[:256], epochs=4, verbose=0).history
        assert history["loss"][-1] < history["loss"][0], history["loss"]

    def test_both_views_go_through_the_backbone_as_one_batch(self):
        keras.utils.set_random_seed(0)
        base = SubclassedBackbone()
        simclr = make(base, batch=8)
        base.seen_batches.clear()
        simclr(digits_rgb(16)[0][:8], training=True)
        simclr.train_on_batch(digits_rgb(16)[0][:8])
        assert base.seen_batches and set(base.seen_batches) == {16}, base.seen_batches

    def test_frozen_layers_are_bit_identical_after_fit(self):
        keras.utils.set_random_seed(0)
        base = functional_backbone()
        layers = weighted_layers(base)  # conv, batchnorm, conv
        simclr = SimCLR(base, SHAPE, 32, [16], 1, augmentation=LIGHT_AUG, seed=0)
        before = [[w.copy() for w in layer.get_weights()] for layer in layers]
        simclr.fit(digits_rgb(16)[0][:64], epochs=1, verbose=0)
        for layer, old in zip(layers[:-1], before[:-1]):
            for w_old, w_new in zip(old, layer.get_weights()):
                self.assertAllEqual(w_old, w_new, msg=layer.name)
        changed = [not np.array_equal(a, b) for a, b in zip(before[-1], layers[-1].get_weights())]
        assert all(changed)
        assert simclr.base_model is base

    def test_a_frozen_backbone_stays_fixed_and_trains_again_once_unfrozen(self):
        # With every backbone layer frozen the features pass a stop_gradient;
        # unfreezing rebuilds the train function, which must then reach them.
        from simclr_keras.backbones.freezing import set_unfrozen_layers
        from simclr_keras.optimizers import rebuild_optimizer

        keras.utils.set_random_seed(0)
        base = functional_backbone()
        simclr = SimCLR(base, SHAPE, 32, [16], 0, augmentation=LIGHT_AUG, seed=0)
        images = digits_rgb(16)[0][:64]
        before = [w.copy() for w in base.get_weights()]
        head = [w.copy() for w in simclr.projection_head.get_weights()]
        simclr.fit(images, epochs=1, verbose=0)
        for old, new in zip(before, base.get_weights()):
            self.assertAllEqual(old, new)
        assert any(
            not np.array_equal(a, b) for a, b in zip(head, simclr.projection_head.get_weights())
        )
        set_unfrozen_layers(base, -1)
        rebuild_optimizer(simclr)
        simclr.fit(images, epochs=1, verbose=0)
        kernels = [w for w in base.trainable_weights if "kernel" in w.path]
        trained = [not np.array_equal(a, b) for a, b in zip(before, base.get_weights())]
        assert kernels and sum(trained) >= len(kernels)

    def test_unfrozen_count_ignores_weightless_layers(self):
        base = functional_backbone()
        SimCLR(base, SHAPE, 4, [8], 2, seed=0)
        trainable = [layer.name for layer in weighted_layers(base) if layer.trainable]
        assert trainable == [layer.name for layer in weighted_layers(base)[-2:]]
        SimCLR(base, SHAPE, 4, [8], None, seed=0)
        assert all(layer.trainable for layer in weighted_layers(base))
        SimCLR(base, SHAPE, 4, [8], 0, seed=0)
        assert not any(layer.trainable for layer in weighted_layers(base))

    def test_keras_round_trip_gives_identical_outputs(self):
        keras.utils.set_random_seed(0)
        images = digits_rgb(16)[0][:32]
        simclr = make(functional_backbone(), batch=16, use_batch_norm_ph=True)
        simclr.fit(images, epochs=1, verbose=0)
        # Same class, same config, the very same features.
        loaded = self.run_model_saving_test(
            simclr,
            images,
            call=lambda model, x: model.base_model.predict(x, verbose=0),
            rtol=0,
            atol=0,
        )
        # The augmentation's seed state is saved too: the next views match.
        self.assertAllClose(
            loaded(images[:16]),
            simclr(images[:16]),
            rtol=1e-5,
            atol=1e-6,
        )
        assert loaded.get_config()["feat_dims_ph"] == [32, 16]
        loaded.fit(images, epochs=1, verbose=0)  # still trainable after loading

    def test_untrained_model_round_trips_without_warnings(self, tmp_path):
        # The optimizer is built at construction, so a model saved before any
        # training reloads with all its optimizer variables (no "Skipping" warning).
        simclr = make(functional_backbone(), batch=16)
        path = str(tmp_path / "untrained.keras")
        simclr.save(path)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            loaded = keras.saving.load_model(path)
        assert len(loaded.optimizer.variables) == len(simclr.optimizer.variables) > 2
        loaded.fit(digits_rgb(16)[0][:32], epochs=1, verbose=0)

    def test_exported_backbone_loads_alone(self, tmp_path):
        base = sequential_backbone()
        simclr = make(base)
        path = simclr.export_backbone(str(tmp_path / "backbone.keras"))
        again = keras.saving.load_model(path)
        x = digits_rgb(16)[0][:4].astype("float32") / 255
        self.assertAllEqual(again.predict(x, verbose=0), base.predict(x, verbose=0))

    def test_same_seed_same_result(self):
        def run():
            keras.utils.set_random_seed(7)
            simclr = make(sequential_backbone(), batch=16, seed=3)
            history = simclr.fit(digits_rgb(16)[0][:64], epochs=2, verbose=0)
            return history.history["loss"], simclr.base_model.get_weights()

        loss_1, weights_1 = run()
        loss_2, weights_2 = run()
        assert loss_1 == loss_2
        for a, b in zip(weights_1, weights_2):
            self.assertAllEqual(a, b)

    def test_uint8_and_unit_float_inputs_give_the_same_views(self):
        keras.utils.set_random_seed(0)
        images = digits_rgb(16)[0][:8]
        a = make(sequential_backbone(), batch=8, seed=5)
        b = make(sequential_backbone(), batch=8, seed=5)
        b.set_weights(a.get_weights())
        out_uint8 = to_numpy(a(images))
        out_float = to_numpy(b(images.astype("float32") / 255.0))
        self.assertAllClose(out_uint8, out_float, rtol=1e-4, atol=1e-5)

    def test_mixed_bfloat16_training_keeps_a_float32_loss(self):
        previous = keras.config.dtype_policy()
        keras.config.set_dtype_policy("mixed_bfloat16")
        try:
            keras.utils.set_random_seed(0)
            simclr = make(sequential_backbone(), batch=16)
            projections = simclr(digits_rgb(16)[0][:16])
            loss = simclr.compute_loss(y_pred=projections, training=False)
            assert keras.backend.standardize_dtype(loss.dtype) == "float32"
            history = simclr.fit(digits_rgb(16)[0][:64], epochs=1, verbose=0)
            assert np.isfinite(history.history["loss"][0])
        finally:
            keras.config.set_dtype_policy(previous)

    def test_backbone_preprocessing_by_name_and_callable(self):
        keras.utils.set_random_seed(0)
        images = digits_rgb(16)[0][:16]
        by_name = make(sequential_backbone(), batch=16, preprocessing="vgg16")
        by_fn = make(
            sequential_backbone(),
            batch=16,
            preprocessing=keras.applications.vgg16.preprocess_input,
        )
        by_fn.set_weights(by_name.get_weights())
        self.assertAllClose(
            by_name(images),
            by_fn(images),
            rtol=1e-4,
            atol=1e-5,
        )

    @pytest.mark.parametrize(
        "kwargs, match",
        [
            (dict(batch_size=1), "batch_size=1"),
            (dict(batch_size=2.5), "batch_size=2.5"),
            (dict(input_shape=(20, 20, 1)), "input_shape"),
            (dict(input_shape=(16, 16)), "input_shape"),
            (dict(feat_dims_ph=[]), "feat_dims_ph=\\[\\]"),
            (dict(feat_dims_ph=[64, 0]), "feat_dims_ph"),
            (dict(feat_dims_ph=[64, -3]), "feat_dims_ph"),
            (dict(temperature=0), "temperature=0"),
            (dict(num_of_unfrozen_layers=3), "num_of_unfrozen_layers=3"),
            (dict(num_of_unfrozen_layers=-2), "num_of_unfrozen_layers=-2"),
            (dict(preprocessing="nope"), "preprocessing='nope'"),
        ],
    )
    def test_bad_arguments_fail_at_construction(self, kwargs, match):
        args = dict(
            base_model=sequential_backbone(),  # two weighted layers
            input_shape=SHAPE,
            batch_size=8,
            feat_dims_ph=[16],
            num_of_unfrozen_layers=None,
        )
        args.update(kwargs)
        with pytest.raises(ValueError, match=match):
            SimCLR(**args)

    def test_a_base_model_that_is_not_a_keras_model_is_rejected(self):
        with pytest.raises(TypeError, match="base_model"):
            SimCLR(lambda x: x, SHAPE, 8, [16], None)

    def test_labels_are_refused_by_fit(self):
        simclr = make(sequential_backbone(), batch=8)
        images, labels = digits_rgb(16)
        with pytest.raises(ValueError, match="without labels"):
            simclr.fit(images[:16], labels[:16])
