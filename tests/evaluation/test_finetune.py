"""Tests of simclr_keras.evaluation.finetune: the protocol and its choice against the probe."""

import keras
import numpy as np
import pytest
import testing
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from simclr_keras import SimCLR, extract_features
from simclr_keras.evaluation import finetune
from simclr_keras.evaluation.finetune import (
    FineTuner,
    accept_finetuning,
    finetune_classifier,
    finetune_evaluation,
    lr_at,
)
from simclr_keras.evaluation.linear_probe import (
    linear_evaluation,
    select_linear_probe,
    stratified_fraction,
)

FAST = dict(jit_compile=False, batch_size=32)


@pytest.fixture(scope="module")
def digits16():
    """sklearn digits at 16 x 16 x 3 uint8, split 70/30 stratified."""
    d = load_digits()
    x = np.repeat(np.kron(d.images, np.ones((2, 2)))[..., None] * (255 / 16), 3, axis=-1)
    return train_test_split(
        x.astype("uint8"), d.target, test_size=0.3, stratify=d.target, random_state=0
    )


def conv_backbone(width=8, seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((16, 16, 3)),
            keras.layers.Conv2D(width, 3, padding="same", activation="relu"),
            keras.layers.Conv2D(2 * width, 3, strides=2, padding="same", activation="relu"),
            keras.layers.Conv2D(2 * width, 3, padding="same", activation="relu"),
        ]
    )


def reference_rule(probe, tuned, z):
    """The rule written out with loops: the paired gain image by image,
    accepted when its mean clears z standard errors."""
    n = len(probe)
    if n < 2:
        return 0.0, float("inf"), False
    d = [float(t) - float(p) for p, t in zip(probe, tuned)]
    mean = sum(d) / n
    var = sum((v - mean) ** 2 for v in d) / (n - 1)
    se = (var / n) ** 0.5
    return mean, se, mean - z * se > 0


class TestAcceptFinetuning(testing.TestCase):
    @pytest.mark.parametrize("seed", range(40))
    def test_matches_the_loop_reference(self, seed):
        rng = np.random.default_rng(seed)
        n = int(rng.integers(1, 80))
        probe = rng.random(n) < rng.uniform(0.3, 0.9)
        tuned = probe ^ (rng.random(n) < rng.uniform(0.0, 0.4))
        z = float(rng.choice([0.0, 1.0, 1.645]))
        gain, se, accepted = accept_finetuning(probe, tuned, z)
        ref = reference_rule(probe.tolist(), tuned.tolist(), z)
        if abs(ref[0] - z * ref[1]) > 1e-9:  # exactly on the boundary, float order decides
            assert accepted == ref[2]
        if n >= 2:
            self.assertAllClose([gain, se], ref[:2], atol=1e-12)

    def test_never_accepts_without_a_gain_over_the_probe(self):
        rng = np.random.default_rng(0)
        for _ in range(50):
            probe = rng.random(30) < 0.7
            worse = probe & (rng.random(30) < 0.9)  # only loses images
            assert accept_finetuning(probe, worse)[2] is False
            assert accept_finetuning(probe, probe)[2] is False

    def test_a_clear_gain_is_accepted_and_a_stricter_z_refuses_a_marginal_one(self):
        probe = np.array([True] * 50 + [False] * 50)
        tuned = probe.copy()
        tuned[50:58] = True  # +8 points on 100 images, se about 2.7
        assert accept_finetuning(probe, tuned, z=1.645)[2] is True
        assert accept_finetuning(probe, tuned, z=4.0)[2] is False

    def test_mismatched_inputs_name_themselves(self):
        with pytest.raises(ValueError, match="`probe_correct` and `tuned_correct`"):
            accept_finetuning([True, False], [True])


class TestRate(testing.TestCase):
    @pytest.mark.parametrize("steps,warmup", [(30, 10), (7, 0), (5, 5), (1, 1), (2, 0)])
    def test_warms_up_then_decays_to_zero(self, steps, warmup):
        rates = [lr_at(s, steps, warmup, 0.1) for s in range(steps)]
        assert max(rates) == pytest.approx(0.1)
        rising, falling = rates[:warmup], rates[warmup:]
        assert all(b > a for a, b in zip(rising, rising[1:]))
        assert all(b <= a for a, b in zip(falling, falling[1:]))
        if len(falling) > 1:
            assert falling[-1] == pytest.approx(0.0, abs=1e-12)
        assert all(0.0 <= r <= 0.1 + 1e-12 for r in rates)


class TestFineTuneClassifier(testing.TestCase):
    @pytest.mark.parametrize("classes", [10, 2])
    def test_without_epochs_it_is_the_linear_probe(self, classes, digits16):
        """0 epochs: the classifier's logits are the probe's decision function
        (the probe of `linear_evaluation`, fitted on the same labels)."""
        x_tr, x_te, y_tr, _ = digits16
        keep = y_tr < classes
        x, y = x_tr[keep][:200], y_tr[keep][:200]
        backbone = conv_backbone()
        model, info = finetune_classifier(backbone, x, y, 12, seed=3, epochs=0, **FAST)
        features = extract_features(backbone, x, verbose=0)
        probe, C = select_linear_probe(features, y, seed=3)
        assert info["C"] == C and info["kept"] == "probe" and info["finetune_epoch"] == 0
        logits = model.predict(x_te[:100] / 255.0, verbose=0)
        expected = probe.decision_function(extract_features(backbone, x_te[:100], verbose=0))
        if classes == 2:  # one logit for class 1 against a zero for class 0
            expected = np.stack([np.zeros_like(expected), expected], axis=1)
        self.assertAllClose(logits[:, :classes], expected, rtol=1e-3, atol=1e-3)
        assert (logits[:, classes:] < logits[:, :classes].max(axis=1, keepdims=True)).all()

    def test_a_wrecking_rate_keeps_the_probe(self, digits16):
        """Fine-tuning at a rate that destroys the features never beats the
        probe on the held-out folds: the probe comes back, unchanged."""
        x_tr, x_te, y_tr, _ = digits16
        backbone = conv_backbone()
        run = dict(seed=1, views=1, **FAST)
        probe, _ = finetune_classifier(backbone, x_tr[:150], y_tr[:150], 10, epochs=0, **run)
        wrecked, info = finetune_classifier(
            backbone, x_tr[:150], y_tr[:150], 10, epochs=2, learning_rate=50.0, **run
        )
        assert info["kept"] == "probe" and info["finetune_epoch"] == 0
        assert info["cv_accuracy"][0] > info["cv_accuracy"][-1]
        self.assertAllClose(
            wrecked.predict(x_te[:50] / 255.0, verbose=0),
            probe.predict(x_te[:50] / 255.0, verbose=0),
            rtol=1e-5,
            atol=1e-5,
        )

    def test_an_accepted_committee_is_the_checked_fold_copies(self, digits16, monkeypatch):
        """When the rule accepts, the classifier is the committee of the fold
        copies: each trained on its fold's other images only (no refit on
        every label), each scored on its own held-out fold (the cross-fitted
        accuracy is theirs), their softmax averaged in the Keras model."""
        from sklearn.model_selection import StratifiedKFold

        x_tr, x_te, y_tr, _ = digits16
        x, y = x_tr[:120], y_tr[:120]
        trained = []
        real_train = finetune.FineTuner._train

        def train(self, model, idx, labels, epochs, seed, val_idx=None, curve=False):
            trained.append((len(idx), epochs, val_idx is not None))
            return real_train(self, model, idx, labels, epochs, seed, val_idx, curve)

        monkeypatch.setattr(finetune.FineTuner, "_train", train)
        monkeypatch.setattr(finetune, "accept_finetuning", lambda p, t, z: (0.1, 0.01, True))
        monkeypatch.setattr(finetune, "no_gain_yet", lambda p, t: False)
        tuner = FineTuner(conv_backbone(width=4), x, views=2, seed=0, **FAST)
        result, info = tuner.fit(np.arange(120), y, 10, seed=4, epochs=2, learning_rate=1e-2)
        assert info["kept"] == "finetuned" and info["finetune_epoch"] == 2
        assert len(result.members) == 3 == info["folds"]
        assert trained == [(80, 2, True)] * 3  # three folds of 120, never all 120
        # Each copy on its own held-out fold gives the reported accuracy.
        folds = StratifiedKFold(3, shuffle=True, random_state=4).split(np.zeros(120), y)
        hits = 0
        for weights, (_, va) in zip(result.members, folds):
            result.model.set_weights(weights)
            hits += (tuner.predict_classes(result.model, tuner.maps[va, 0]) == y[va]).sum()
        assert hits / 120 == pytest.approx(info["cv_accuracy"][-1], abs=1e-6)
        # The Keras classifier averages the copies' softmax.
        test_maps = tuner.maps_of(x_te[:40])
        probs = []
        for weights in result.members:
            result.model.set_weights(weights)
            logits = result.model.predict(test_maps, verbose=0)
            probs.append(np.exp(logits - logits.max(1, keepdims=True)))
            probs[-1] /= probs[-1].sum(1, keepdims=True)
        expected = np.log(np.mean(probs, axis=0))
        self.assertAllClose(tuner.predict_logits(result, test_maps), expected, atol=1e-4)
        model = tuner.classifier(result)
        self.assertAllClose(model.predict(x_te[:40] / 255.0, verbose=0), expected, atol=1e-4)

    def test_a_fold_without_gain_stops_the_check_early(self, digits16, monkeypatch):
        """When the first fold's copy does not beat its probe, the other folds
        are not trained and the probe is kept, with the reason."""
        x_tr, _, y_tr, _ = digits16
        trained = []
        real_train = finetune.FineTuner._train

        def train(self, model, idx, labels, epochs, seed, val_idx=None, curve=False):
            trained.append(len(idx))
            return real_train(self, model, idx, labels, epochs, seed, val_idx, curve)

        monkeypatch.setattr(finetune.FineTuner, "_train", train)
        tuner = FineTuner(conv_backbone(width=4), x_tr[:150], views=1, seed=0, **FAST)
        _, info = tuner.fit(np.arange(150), y_tr[:150], 10, epochs=1, learning_rate=50.0)
        assert len(trained) == 1 and info["kept"] == "probe"
        assert info["n_held_out"] == 50 and "after 1 of 3 folds" in info["reason"]
        assert info["cv_accuracy"][-1] <= info["cv_accuracy"][0]

    @pytest.mark.parametrize("curve", [False, True])
    def test_held_out_accuracy_before_and_after_or_every_epoch(self, curve, digits16, monkeypatch):
        x_tr, _, y_tr, _ = digits16
        monkeypatch.setattr(finetune, "no_gain_yet", lambda p, t: False)
        tuner = FineTuner(conv_backbone(width=4), x_tr[:90], views=1, seed=0, **FAST)
        _, info = tuner.fit(np.arange(90), y_tr[:90], 10, epochs=3, curve=curve)
        assert len(info["cv_accuracy"]) == (4 if curve else 2)
        assert info["n_held_out"] == 90

    def test_no_gain_yet_is_the_accuracy_comparison(self):
        rng = np.random.default_rng(0)
        for _ in range(50):
            p, t = rng.random(20) < 0.6, rng.random(20) < 0.6
            assert finetune.no_gain_yet(p, t) == (t.sum() <= p.sum())

    @pytest.mark.parametrize("kind", ["sequential", "simclr"])
    def test_the_backbone_is_never_changed(self, kind, digits16):
        x_tr, _, y_tr, _ = digits16
        backbone = conv_backbone(width=4)
        model = backbone
        if kind == "simclr":
            model = SimCLR(backbone, (16, 16, 3), 8, feat_dims_ph=[8, 4], seed=0)
        before = [w.copy() for w in backbone.get_weights()]
        trainable = [v.trainable for v in backbone.weights]
        finetune_classifier(
            model, x_tr[:60], y_tr[:60], 10, epochs=2, learning_rate=1e-2, views=1, **FAST
        )
        for now, then in zip(backbone.get_weights(), before):
            self.assertAllEqual(now, then)
        assert [v.trainable for v in backbone.weights] == trainable

    def test_one_image_of_a_class_keeps_the_probe_with_the_reason(self, digits16):
        x_tr, _, y_tr, _ = digits16
        idx = np.concatenate([np.flatnonzero(y_tr == 0)[:1], np.flatnonzero(y_tr == 1)[:5]])
        _, info = finetune_classifier(conv_backbone(), x_tr[idx], y_tr[idx], 2, **FAST)
        assert info["kept"] == "probe" and "single labelled image" in info["reason"]

    def test_bad_arguments_name_themselves(self, digits16):
        x_tr, _, y_tr, _ = digits16
        with pytest.raises(ValueError, match="`unfreeze` must be one of"):
            finetune_classifier(conv_backbone(), x_tr[:20], y_tr[:20], 10, unfreeze="top")
        with pytest.raises(ValueError, match="`labels` must hold one int in"):
            finetune_classifier(conv_backbone(), x_tr[:20], y_tr[:20], 3)


class TestFineTuner(testing.TestCase):
    def test_views_are_the_image_its_mirror_and_crops(self, digits16):
        x_tr, _, _, _ = digits16
        tuner = FineTuner(conv_backbone(), x_tr[:8], views=4, unfreeze="all", **FAST)
        # Cut at the input: the cached maps are the [0, 1] images themselves.
        images = x_tr[:8] / 255.0
        self.assertAllClose(tuner.maps[:, 0], images, atol=1e-3, rtol=0)
        self.assertAllClose(tuner.maps[:, 1], images[:, :, ::-1], atol=1e-3, rtol=0)
        for v in (2, 3):
            assert tuner.maps[:, v].shape == images.shape
            assert not np.allclose(tuner.maps[:, v], images, atol=1e-2)

    def test_fewer_views_when_memory_is_short(self, digits16):
        x_tr, _, _, _ = digits16
        per_view = 10 * 16 * 16 * 3 * 4
        tuner = FineTuner(
            conv_backbone(), x_tr[:10], views=4, unfreeze="all", max_cache_bytes=2 * per_view
        )
        assert tuner.views == 2 and tuner.maps.shape[1] == 2


class TestFineTuneEvaluation(testing.TestCase):
    def test_choices_never_see_the_test_set(self, digits16):
        x_tr, x_te, y_tr, y_te = digits16
        backbone = conv_backbone(width=4)
        run = dict(fractions=(0.2,), seeds=(0,), epochs=2, learning_rate=3e-3, views=1, **FAST)
        clean = finetune_evaluation(backbone, (x_tr, y_tr), (x_te, y_te), **run)
        shuffled = np.random.default_rng(0).permutation(y_te)
        poisoned = finetune_evaluation(backbone, (x_tr, y_tr), (255 - x_te, shuffled), **run)
        for key in ("finetune_epoch", "kept", "C", "n_labelled"):
            assert clean[0.2][key] == poisoned[0.2][key]
        assert clean[0.2]["accuracy"]["mean"] > poisoned[0.2]["accuracy"]["mean"] + 0.2
        # The same choice as the classifier trained on the subset alone.
        idx = stratified_fraction(y_tr, 0.2, 0)
        _, info = finetune_classifier(
            backbone,
            x_tr[idx],
            y_tr[idx],
            10,
            seed=0,
            epochs=2,
            learning_rate=3e-3,
            views=1,
            **FAST,
        )
        assert info["finetune_epoch"] == clean[0.2]["finetune_epoch"][0]

    @pytest.mark.parametrize("how", ["no epochs", "a wrecking rate"])
    def test_a_kept_probe_scores_exactly_the_linear_row(self, how, digits16):
        """Where the probe is kept, the fine-tuned row IS the linear row: the
        same probe on the whole backbone's features, draw by draw (not a
        probe refitted on the cut backbone's slightly different floats)."""
        x_tr, x_te, y_tr, y_te = digits16
        backbone = conv_backbone()
        run = dict(fractions=(0.1, 1.0), seeds=(0, 1))
        setting = dict(epochs=0) if how == "no epochs" else dict(epochs=1, learning_rate=50.0)
        tuned = finetune_evaluation(
            backbone, (x_tr, y_tr), (x_te, y_te), views=1, **setting, **FAST, **run
        )
        f_tr, f_te = (extract_features(backbone, x, verbose=0) for x in (x_tr, x_te))
        linear = linear_evaluation(f_tr, y_tr, f_te, y_te, **run)
        for fraction in run["fractions"]:
            assert set(tuned[fraction]["kept"]) == {"probe"}
            assert tuned[fraction]["accuracy"]["values"] == linear[fraction]["accuracy"]["values"]
            assert tuned[fraction]["macro_f1"]["values"] == linear[fraction]["macro_f1"]["values"]
            assert tuned[fraction]["C"] == linear[fraction]["C"]

    def test_given_probe_features_and_settings_are_used(self, digits16):
        """`probe_features` and `probe_kwargs` (as `compare_backbones` passes
        them) give the linear row of those features and that C grid."""
        x_tr, x_te, y_tr, y_te = digits16
        backbone = conv_backbone()
        f_tr, f_te = (extract_features(backbone, x, verbose=0) for x in (x_tr, x_te))
        f_tr, f_te = f_tr[:, ::2], f_te[:, ::2]  # other features than the backbone's own
        run = dict(fractions=(0.2,), seeds=(0,))
        tuned = finetune_evaluation(
            backbone,
            (x_tr, y_tr),
            (x_te, y_te),
            epochs=0,
            views=1,
            probe_features=(f_tr, f_te),
            probe_kwargs={"Cs": (0.5,), "max_folds": 2},
            **FAST,
            **run,
        )
        linear = linear_evaluation(f_tr, y_tr, f_te, y_te, Cs=(0.5,), max_folds=2, **run)
        assert tuned[0.2]["accuracy"]["values"] == linear[0.2]["accuracy"]["values"]
        assert tuned[0.2]["C"] == [0.5]

    def test_an_unknown_setting_is_refused(self, digits16):
        x_tr, x_te, y_tr, y_te = digits16
        with pytest.raises(TypeError, match="patience"):
            finetune_evaluation(conv_backbone(), (x_tr, y_tr), (x_te, y_te), patience=3)


class TestFrozenBackbones(testing.TestCase):
    def test_a_backbone_saved_frozen_is_still_fine_tuned(self, digits16):
        """A backbone whose layers are frozen (as pretrain saves its start)
        still trains its top: the top's weights move, its batch norm not."""
        x_tr, _, y_tr, _ = digits16
        keras.utils.set_random_seed(0)
        backbone = keras.Sequential(
            [
                keras.Input((16, 16, 3)),
                keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu"),
                keras.layers.Conv2D(8, 3, strides=2, padding="same"),
                keras.layers.BatchNormalization(),
                keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
            ]
        )
        backbone.trainable = False
        tuner = FineTuner(backbone, x_tr[:64], views=1, **FAST)
        model, _ = tuner._classifier(tuner.features[:64], y_tr[:64], 10, 0, 1e-2)
        start = [w.copy() for w in tuner.split.top.get_weights()]
        tuner._train(model, np.arange(64), y_tr[:64], 1, 0)
        moved = {
            w.path: not np.allclose(keras.ops.convert_to_numpy(w), s)
            for w, s in zip(tuner.split.top.weights, start)
        }
        assert any(v for k, v in moved.items() if "kernel" in k)
        assert not any(v for k, v in moved.items() if "moving" in k or "gamma" in k)


class TestCliDefaults(testing.TestCase):
    def test_the_cli_defaults_are_the_library_defaults(self):
        """`evaluate --finetune-epochs/--finetune-unfreeze` default to the
        library's own defaults (the CLI cannot import them before Keras)."""
        from simclr_keras_cli.arguments import build_parser

        args = build_parser().parse_args(["evaluate", "--backbone", "b.keras"])
        assert args.finetune_epochs == finetune.EPOCHS
        assert args.finetune_unfreeze == finetune.UNFREEZE_DEFAULT
