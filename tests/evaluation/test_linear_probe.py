"""Tests of simclr_keras.evaluation and .compare: exact fractions, linear probe, comparison
(the fine-tuning protocol itself: test_finetune.py)."""

import json
import os

import keras
import numpy as np
import pytest
import testing
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from testing import to_numpy

from simclr_keras import SimCLR, extract_features, snapshot_backbone
from simclr_keras.evaluation.compare import compare_backbones
from simclr_keras.evaluation.features import UnitRangeBatches
from simclr_keras.evaluation.finetune import finetune_evaluation
from simclr_keras.evaluation.linear_probe import (
    linear_evaluation,
    pixel_features,
    select_linear_probe,
    stratified_fraction,
)


def digits_rgb(size):
    """sklearn digits upscaled to (size, size, 3) uint8, split 70/30 stratified."""
    d = load_digits()
    x = (d.images * (255 / 16)).astype("float32")[..., None]
    x = to_numpy(keras.ops.image.resize(x, (size, size)))
    x = np.clip(np.repeat(x, 3, axis=-1), 0, 255).astype("uint8")
    return train_test_split(x, d.target, test_size=0.3, stratify=d.target, random_state=0)


@pytest.fixture(scope="module")
def digits16():
    return digits_rgb(16)


def conv_backbone(size=16, width=8, seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((size, size, 3)),
            keras.layers.Conv2D(width, 3, padding="same", activation="relu"),
            keras.layers.Conv2D(2 * width, 3, strides=2, padding="same", activation="relu"),
            keras.layers.Conv2D(2 * width, 3, padding="same", activation="relu"),
        ]
    )


# ---- exact stratified fractions -------------------------------------------


@pytest.fixture(scope="module")
def pixel_split(digits16):
    x_tr, x_te, y_tr, y_te = digits16
    return pixel_features(x_tr[:, ::2, ::2, 0]), y_tr, pixel_features(x_te[:, ::2, ::2, 0]), y_te


class SubclassedBackbone(keras.Model):
    def __init__(self, width=4, **kwargs):
        super().__init__(**kwargs)
        self.width = width
        self.conv1 = keras.layers.Conv2D(width, 3, activation="relu")
        self.norm = keras.layers.BatchNormalization()
        self.conv2 = keras.layers.Conv2D(width, 3, strides=2)

    def call(self, x, training=False):
        return self.conv2(self.norm(self.conv1(x), training=training))


def make_backbone(kind):
    if kind == "sequential":
        return conv_backbone(width=4)
    if kind == "functional":
        inputs = keras.Input((16, 16, 3))
        h = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
        h = keras.layers.BatchNormalization()(h)
        return keras.Model(inputs, keras.layers.Conv2D(4, 3, strides=2)(h))
    model = SubclassedBackbone()
    model(np.zeros((1, 16, 16, 3), "float32"))
    return model


TINY = dict(epochs=2, views=1, batch_size=32, jit_compile=False)


class TestLinearProbe(testing.TestCase):
    @pytest.mark.parametrize("fraction", [0.01, 0.05, 0.2, 0.25, 0.5, 1.0])
    @pytest.mark.parametrize("seed", [0, 1, 7])
    def test_stratified_fraction_is_exact_per_class(self, fraction, seed):
        counts = {0: 3, 1: 10, 2: 41, 3: 100, 4: 257}  # unbalanced on purpose
        labels = np.random.default_rng(123).permutation(
            np.repeat(list(counts), list(counts.values()))
        )
        idx = stratified_fraction(labels, fraction, seed)
        assert len(np.unique(idx)) == len(idx) and np.all(np.diff(idx) > 0)
        for c, n in counts.items():
            expected = min(n, max(1, int(np.floor(fraction * n + 0.5))))
            assert np.sum(labels[idx] == c) == expected, (c, n, fraction)
        self.assertAllEqual(idx, stratified_fraction(labels, fraction, seed))

    def test_stratified_fraction_rule_examples(self):
        labels = np.repeat(np.arange(3), [100, 10, 1])
        idx = stratified_fraction(labels, 0.2, seed=0)
        assert np.bincount(labels[idx]).tolist() == [20, 2, 1]  # 20 % is 20, not 25
        assert np.bincount(labels[stratified_fraction(labels, 0.05, 0)]).tolist() == [5, 1, 1]
        assert np.bincount(labels[stratified_fraction(labels, 0.15, 0)]).tolist() == [
            15,
            2,
            1,
        ]  # 1.5 -> 2
        assert len(stratified_fraction(labels, 1.0, 3)) == len(labels)
        assert not np.array_equal(
            stratified_fraction(labels, 0.2, 0), stratified_fraction(labels, 0.2, 1)
        )
        for bad in (0, -0.1, 1.5, "0.2", True):
            with pytest.raises(ValueError, match="fraction"):
                stratified_fraction(labels, bad)

    # ---- linear evaluation: the test split never reaches model selection --------

    def test_linear_evaluation_ignores_test_labels_and_unlabelled_rows(self, pixel_split):
        f_tr, y_tr, f_te, y_te = pixel_split
        args = dict(fractions=(0.05, 0.2), seeds=(0, 1), Cs=(0.001, 0.1, 10.0))
        clean = linear_evaluation(f_tr, y_tr, f_te, y_te, **args)
        poisoned_labels = np.random.default_rng(0).permutation(y_te)
        poisoned = linear_evaluation(f_tr, y_tr, f_te * 100.0 + 5.0, poisoned_labels, **args)
        for f in (0.05, 0.2):
            assert clean[f]["C"] == poisoned[f]["C"]
            assert clean[f]["n_labelled"] == poisoned[f]["n_labelled"]
            assert clean[f]["accuracy"]["mean"] > 0.7 > poisoned[f]["accuracy"]["mean"]
        # Rows outside the labelled subset (unlabelled training data) change nothing.
        idx = stratified_fraction(y_tr, 0.05, 0)
        others = np.setdiff1d(np.arange(len(y_tr)), idx)
        shifted = f_tr.copy()
        shifted[others] = shifted[others] * 50.0 - 3.0
        redo = linear_evaluation(
            shifted, y_tr, f_te, y_te, fractions=(0.05,), seeds=(0,), Cs=args["Cs"]
        )
        assert redo[0.05]["C"] == [clean[0.05]["C"][0]]
        assert redo[0.05]["accuracy"]["values"][0] == clean[0.05]["accuracy"]["values"][0]
        assert clean[0.05]["n_labelled"] == [int(idx.size)] * 2

    def test_select_linear_probe_picks_c_by_cv_only(self):
        rng = np.random.default_rng(0)
        labels = np.repeat([0, 1, 2], 6)
        features = rng.normal(size=(18, 5)) + labels[:, None]
        probe, C = select_linear_probe(features, labels, Cs=(0.01, 1.0, 100.0))
        assert C in (0.01, 1.0, 100.0)
        assert (probe.predict(features) == labels).mean() > 0.8
        # One example in a class: no CV possible, C = 1.0.
        _, C1 = select_linear_probe(features[5:], labels[5:], Cs=(0.01, 100.0))
        assert C1 == 1.0

    def test_select_linear_probe_matches_a_grid_search_reference(self, pixel_split):
        """Warm-started CV over the C grid picks what sklearn's GridSearchCV picks."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import GridSearchCV, StratifiedKFold
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        f_tr, y_tr, f_te, y_te = pixel_split
        idx = stratified_fraction(y_tr, 0.2, 0)
        Cs = (0.001, 0.01, 0.1, 10.0)
        probe, C = select_linear_probe(f_tr[idx], y_tr[idx], Cs=Cs, seed=0)
        ref = GridSearchCV(
            make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
            {"logisticregression__C": list(Cs)},
            cv=StratifiedKFold(5, shuffle=True, random_state=0),
        ).fit(f_tr[idx], y_tr[idx])
        assert C == ref.best_params_["logisticregression__C"]
        agree = (probe.predict(f_te) == ref.best_estimator_.predict(f_te)).mean()
        assert agree > 0.98

    def test_linear_evaluation_fits_identical_draws_once(self, pixel_split, capsys):
        f_tr, y_tr, f_te, y_te = pixel_split
        res = linear_evaluation(
            f_tr, y_tr, f_te, y_te, fractions=(1.0, 0.05), seeds=(0, 1, 2), Cs=(0.1,), verbose=1
        )
        assert res[1.0]["seeds"] == [0] and len(res[1.0]["accuracy"]["values"]) == 1
        assert res[1.0]["accuracy"]["std"] == 0.0
        assert res[0.05]["seeds"] == [0, 1, 2]
        out = capsys.readouterr().out
        # One progress line per fitted draw, with its time, and one per fraction.
        assert out.count("  linear ") == 4 and out.count(" s)") == 4
        assert "every seed draws the same labels" in out

    # ---- fine-tuned evaluation -------------------------------------------------

    @pytest.mark.parametrize("kind", ["functional", "sequential", "subclassed", "simclr"])
    def test_finetune_leaves_the_backbone_bit_identical(self, kind, digits16):
        x_tr, x_te, y_tr, y_te = digits16
        if kind == "simclr":
            model = SimCLR(
                conv_backbone(width=4),
                (16, 16, 3),
                8,
                feat_dims_ph=[8, 4],
                num_of_unfrozen_layers=1,
                seed=0,
            )
            backbone = model.base_model
        else:
            model = backbone = make_backbone(kind)
        before = [np.copy(w) for w in backbone.get_weights()]
        trainable = [v.trainable for v in backbone.weights]
        res = finetune_evaluation(
            model,
            (x_tr, y_tr),
            (x_te[:100], y_te[:100]),
            fractions=(0.1,),
            seeds=(0,),
            image_size=None if kind == "simclr" else (16, 16),
            **TINY,
        )
        after = backbone.get_weights()
        assert len(after) == len(before)
        assert all(np.array_equal(a, b) for a, b in zip(after, before))
        assert [v.trainable for v in backbone.weights] == trainable
        assert 0.0 <= res[0.1]["accuracy"]["mean"] <= 1.0
        if kind == "simclr":
            assert model.base_model is backbone

    @pytest.mark.parametrize("n, batch, min_batches", [(68, 64, 10), (5, 2, 4), (100, 32, 0)])
    def test_unit_range_batches_cycle_to_min_batches(self, n, batch, min_batches):
        """Every pass over the images is a permutation; the epoch holds at least
        `min_batches` batches and no more passes than that needs.
        """
        images = np.arange(n, dtype="uint8").reshape(n, 1, 1, 1)
        data = UnitRangeBatches(
            images, np.arange(n), batch, shuffle=True, seed=0, min_batches=min_batches
        )
        for _ in range(2):
            seen = np.concatenate([data[i][1] for i in range(len(data))])
            passes = len(seen) // n
            assert len(seen) == passes * n and len(data) >= min_batches
            assert (passes - 1) * n < max(min_batches, 1) * batch
            for p in range(passes):
                assert sorted(seen[p * n : (p + 1) * n]) == list(range(n))
            data.on_epoch_end()

    # ---- comparison table -------------------------------------------------------

    def test_compare_backbones_writes_table(self, digits16, tmp_path):
        x_tr, x_te, y_tr, y_te = (a[:300] for a in digits16)
        random_init = conv_backbone(width=4, seed=1)
        simclr = SimCLR(snapshot_backbone(random_init), (16, 16, 3), 8, feat_dims_ph=[8, 4], seed=0)
        extra = {
            "raw pixels": (
                pixel_features(x_tr[:, ::2, ::2, 0]),
                pixel_features(x_te[:, ::2, ::2, 0]),
            )
        }
        out = compare_backbones(
            random_init,
            simclr,
            (x_tr, y_tr),
            (x_te, y_te),
            fractions=(1.0, 0.1),
            seeds=(0,),
            extra_features=extra,
            output_dir=str(tmp_path),
            names=("random init", "SimCLR"),
            linear_kwargs=dict(Cs=(0.1, 1.0)),
            finetune_kwargs=dict(TINY, epochs=0),
            verbose=0,
        )
        assert out["columns"] == ["random init", "SimCLR", "raw pixels"]
        assert [(r["fraction"], r["classifier"]) for r in out["rows"]] == [
            (1.0, "linear"),
            (1.0, "finetune"),
            (0.1, "linear"),
            (0.1, "finetune"),
        ]
        assert out["rows"][1]["raw pixels"] is None
        lines = out["markdown"].splitlines()
        assert lines[0] == "| fraction | classifier | random init | SimCLR | raw pixels |"
        assert (
            lines[2].startswith("| 100% | linear |")
            and " ± " in lines[2]
            and lines[3].endswith("| — |")
        )
        saved = json.load(open(os.path.join(tmp_path, "comparison.json")))
        assert saved["columns"] == out["columns"] and len(saved["rows"]) == 4
        assert open(os.path.join(tmp_path, "comparison.md")).read().strip() == out["markdown"]
        pixels = out["results"]["linear"]["raw pixels"][1.0]["accuracy"]["mean"]
        assert 0.8 < pixels <= 1.0

    # ---- quality: SimCLR beats the same backbone at random init -----------------

    def test_simclr_beats_random_init_at_5_percent_labels(self, digits16):
        x_tr, x_te, y_tr, y_te = digits16
        backbone = conv_backbone(width=32, seed=0)
        random_init = snapshot_backbone(backbone)
        simclr = SimCLR(
            backbone,
            (16, 16, 3),
            128,
            feat_dims_ph=[64, 32],
            temperature=0.2,
            seed=0,
            augmentation=dict(crop_scale=(0.5, 1.0), jitter_strength=0.5, flip=False),
        )
        simclr.fit(x_tr, epochs=10, verbose=0)
        scores = {}
        for name, model in (("random", random_init), ("simclr", simclr)):
            f_tr = extract_features(model, x_tr, verbose=0)
            f_te = extract_features(model, x_te, verbose=0)
            scores[name] = linear_evaluation(
                f_tr, y_tr, f_te, y_te, fractions=(0.05,), seeds=(0, 1, 2)
            )[0.05]
        gain = scores["simclr"]["accuracy"]["mean"] - scores["random"]["accuracy"]["mean"]
        print({k: v["accuracy"] for k, v in scores.items()})
        assert gain > 0.02, scores
