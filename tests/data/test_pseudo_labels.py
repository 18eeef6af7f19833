"""Pseudo-labels from a denoising autoencoder or any encoder + k-means, and their quality."""

import numpy as np
import pytest
import testing
from sklearn.datasets import load_digits
from sklearn.metrics import adjusted_rand_score

from simclr_keras.data.generator import DataGeneratorSimCLR
from simclr_keras.data.pseudo_labels import (
    build_denoising_autoencoder,
    cluster_features,
    cluster_quality,
    encoder_pseudo_labels,
    pseudo_labels,
)

# ARI measured on the first 500 digits (8x8), epochs=6, batch 32, TF CPU:
# 0.690 for seed 0 with G-SimCLR's autoencoder (conv-BN-ReLU-maxpool
# 32/64/128, noise 0.01); the earlier two-conv autoencoder scored 0.17-0.32
# over seeds 0-4 on TF and JAX. Random labels score about 0.00 +- 0.01; the
# floor sits well below every run seen.
ARI_FLOOR = 0.10


def _digits(n=500):
    digits = load_digits()
    return (digits.images[:n] * 16).clip(0, 255).astype(np.uint8), digits.target[:n]


def _quality_reference(clusters, classes):
    """Purity and ARI from their definitions, in plain NumPy loops."""
    clusters, classes = np.asarray(clusters), np.asarray(classes)
    n = len(clusters)
    purity = sum(np.bincount(classes[clusters == c]).max() for c in np.unique(clusters)) / n

    def pairs(m):
        return m * (m - 1) / 2

    table = np.array(
        [
            [np.sum((clusters == c) & (classes == y)) for y in np.unique(classes)]
            for c in np.unique(clusters)
        ]
    )
    index = pairs(table).sum()
    a, b = pairs(table.sum(axis=1)).sum(), pairs(table.sum(axis=0)).sum()
    expected = a * b / pairs(n)
    ari = (index - expected) / ((a + b) / 2 - expected)
    return purity, ari


class TestPseudoLabels(testing.TestCase):
    def test_pseudo_labels_cluster_digits_above_chance(self):
        images, targets = _digits()
        labels = pseudo_labels(images, n_clusters=10, epochs=6, batch_size=32, seed=0, verbose=0)
        ari = adjusted_rand_score(targets, labels)
        print(f"pseudo-label ARI on 500 digits: {ari:.3f}")
        assert labels.shape == (500,) and labels.dtype == np.int64
        assert set(np.unique(labels)) <= set(range(10))
        shuffled = np.random.default_rng(0).permutation(labels)
        assert adjusted_rand_score(targets, shuffled) < 0.05  # chance level
        assert ari > ARI_FLOOR

    def test_generator_input_odd_size_and_autoencoder_returned(self):
        images, _ = _digits(24)
        rgb = np.repeat(images[:, :7, :6, None], 3, axis=-1)  # 7x6: not a multiple of 4
        gen = DataGeneratorSimCLR(rgb, batch_size=8)
        labels, autoencoder = pseudo_labels(
            gen, n_clusters=3, epochs=1, batch_size=8, seed=1, return_autoencoder=True, verbose=0
        )
        assert labels.shape == (24,) and autoencoder.input_shape == (None, 8, 8, 3)
        reconstruction = autoencoder.predict(np.zeros((2, 8, 8, 3), np.float32), verbose=0)
        assert reconstruction.shape == (2, 8, 8, 3)
        assert (reconstruction >= 0).all() and (reconstruction <= 1).all()
        gen.pseudo_labels = labels  # fits the generator it came from

    def test_autoencoder_shapes_and_validation(self):
        autoencoder, encoder = build_denoising_autoencoder((16, 12, 1), filters=(8, 16))
        assert encoder.output.shape == (None, 4, 3, 16)
        assert autoencoder.output.shape == (None, 16, 12, 1)
        with pytest.raises(ValueError, match=r"multiples of 4.*\(10, 12, 1\)"):
            build_denoising_autoencoder((10, 12, 1), filters=(8, 16))
        images, _ = _digits(20)
        with pytest.raises(ValueError, match="n_clusters=1"):
            pseudo_labels(images, n_clusters=1)
        with pytest.raises(ValueError, match="n_clusters=21"):
            pseudo_labels(images, n_clusters=21)
        with pytest.raises(ValueError, match=r"shape \(20, 64\)"):
            pseudo_labels(images.reshape(20, 64), n_clusters=2)
        with pytest.raises(ValueError, match="epochs=0"):
            pseudo_labels(images, n_clusters=2, epochs=0)

    def test_autoencoder_follows_the_g_simclr_notebook(self):
        # Shallow_Autoencoder.ipynb of the G-SimCLR code: GaussianNoise(1e-2), then
        # 3 x [Conv2D 3x3 - BatchNorm - ReLU - MaxPool 2] with 32/64/128 filters;
        # mirrored decoder [UpSampling - Conv 3x3 - BN - ReLU] x 3, sigmoid conv.
        autoencoder, encoder = build_denoising_autoencoder((16, 16, 3), seed=0)
        kinds = [type(layer).__name__ for layer in encoder.layers[1:]]
        assert (
            kinds
            == ["GaussianNoise"] + ["Conv2D", "BatchNormalization", "ReLU", "MaxPooling2D"] * 3
        )
        noise = encoder.layers[1]
        assert noise.stddev == pytest.approx(0.01)
        convs = [layer for layer in encoder.layers if type(layer).__name__ == "Conv2D"]
        assert [c.filters for c in convs] == [32, 64, 128]
        assert all(tuple(c.kernel_size) == (3, 3) for c in convs)
        assert encoder.output.shape == (None, 2, 2, 128)
        decoder = autoencoder.layers[len(encoder.layers) :]
        dec_kinds = [type(layer).__name__ for layer in decoder]
        assert dec_kinds == ["UpSampling2D", "Conv2D", "BatchNormalization", "ReLU"] * 3 + [
            "Conv2D"
        ]
        assert [layer.filters for layer in decoder if hasattr(layer, "filters")] == [128, 64, 32, 3]
        assert decoder[-1].activation.__name__ == "sigmoid"
        # The noise is active in training only: std of (noisy - clean) ~ 0.01.
        x = np.full((8, 16, 16, 3), 0.5, np.float32)
        noisy = np.asarray(noise(x, training=True))
        assert np.std(noisy - x) == pytest.approx(0.01, rel=0.05)  # 6 144 draws: SE ~1 %
        self.assertAllEqual(np.asarray(noise(x, training=False)), x)

    def test_clusters_default_to_the_generator_batch_size(self):
        images, _ = _digits(48)
        gen = DataGeneratorSimCLR(images[..., None], batch_size=12, seed=0)
        labels, info = pseudo_labels(
            gen, epochs=1, batch_size=16, seed=0, return_info=True, verbose=0
        )
        assert info["n_clusters"] == 12 and len(np.unique(labels)) == 12
        assert info["features"].shape == (48, 128)  # pooled encoder output
        assert sum(info["cluster_sizes"]) == 48
        with pytest.raises(ValueError, match="n_clusters=None"):
            pseudo_labels(images, epochs=1)

    def test_cluster_quality_matches_its_definitions(self):
        rng = np.random.default_rng(0)
        for k, noise in ((3, 0.2), (7, 0.6), (12, 1.0)):
            classes = rng.integers(0, 4, 300)
            clusters = np.where(rng.random(300) < noise, rng.integers(0, k, 300), classes % k)
            quality = cluster_quality(clusters, classes)
            purity, ari = _quality_reference(clusters, classes)
            assert quality["purity"] == pytest.approx(purity)
            assert quality["ari"] == pytest.approx(ari)
            assert quality["n_clusters"] == len(np.unique(clusters))
        # Invariants: the classes themselves score 1; renaming clusters changes nothing;
        # one image per cluster is pure but carries no agreement beyond chance (ARI 0).
        classes = rng.integers(0, 5, 200)
        assert cluster_quality(classes, classes)["ari"] == pytest.approx(1.0)
        assert cluster_quality(classes, classes)["purity"] == 1.0
        renamed = cluster_quality((classes * 7 + 3) % 35, classes)
        assert renamed["ari"] == pytest.approx(1.0) and renamed["purity"] == 1.0
        singletons = cluster_quality(np.arange(200), classes)
        assert singletons["purity"] == 1.0 and singletons["ari"] == pytest.approx(0.0, abs=1e-9)
        with pytest.raises(ValueError, match="classes"):
            cluster_quality([0, 1, 1], [0, 1])

    def test_cluster_features_recovers_separated_groups_and_prints_quality(self, capsys):
        rng = np.random.default_rng(1)
        centres = rng.normal(size=(4, 16)) * 5
        classes = np.repeat(np.arange(4), 25)
        features = centres[classes] + rng.normal(size=(100, 16))
        labels, info = cluster_features(features, 4, classes=classes, seed=0, return_info=True)
        assert labels.shape == (100,) and labels.dtype == np.int64
        assert info["quality"]["ari"] == pytest.approx(1.0)
        assert sum(info["cluster_sizes"]) == 100
        assert "k-means k=4 on 100 x 16 features: ARI 1.000" in capsys.readouterr().out
        # Shuffled features: chance-level agreement.
        shuffled = cluster_features(
            rng.permutation(features), 4, classes=classes, seed=0, verbose=0
        )
        assert abs(cluster_quality(shuffled, classes)["ari"]) < 0.1
        # normalize: groups that differ only in length merge under cosine k-means.
        scaled = np.r_[np.ones((10, 2)), 10 * np.ones((10, 2))] + rng.normal(size=(20, 2)) * 0.01
        assert (
            len(np.unique(cluster_features(scaled, 2, normalize=False, seed=0, verbose=0)[:10]))
            == 1
        )
        with pytest.raises(ValueError, match="n_clusters=1"):
            cluster_features(features, 1)
        with pytest.raises(ValueError, match="finite"):
            cluster_features(np.full((4, 2), np.nan), 2)
        # Constant features (an encoder fed images too small for it) are an error, not one
        # silent cluster; too few distinct rows for k warn.
        with pytest.raises(ValueError, match="4 identical rows, all zero"):
            cluster_features(np.zeros((4, 3)), 2)
        with pytest.warns(UserWarning, match="only 2 distinct rows, fewer than n_clusters=3"):
            cluster_features(np.repeat(np.eye(2), 3, axis=0), 3, verbose=0)

    def test_encoder_pseudo_labels_from_a_backbone_a_callable_and_a_generator(self, capsys):
        images, targets = _digits(120)
        rgb = np.repeat(images[..., None], 3, axis=-1)
        # A callable encoder: the raw pixels, which on digits cluster well above chance.
        seen = []

        def pixels(x):
            seen.append((x.dtype, float(x.max())))
            return x.reshape(len(x), -1)

        labels, info = encoder_pseudo_labels(
            pixels, rgb, 10, classes=targets, seed=0, return_info=True
        )
        assert seen == [(np.float32, pytest.approx(1.0))]  # float images in [0, 1]
        assert info["features"].shape == (120, 192)
        assert info["quality"]["ari"] > 0.3
        assert "ARI" in capsys.readouterr().out
        # A Keras backbone with a 4-D output is pooled; a generator gives k and classes.
        gen = DataGeneratorSimCLR(rgb, batch_size=6, labels=targets, seed=0)
        labels, info = encoder_pseudo_labels(
            build_denoising_autoencoder((8, 8, 3), seed=0)[1],
            gen,
            seed=0,
            verbose=0,
            return_info=True,
        )
        assert labels.shape == (120,) and info["n_clusters"] == 6
        assert info["features"].shape == (120, 128) and info["quality"] is not None
        gen.pseudo_labels = labels
        with pytest.raises(ValueError, match="one feature vector per image"):
            encoder_pseudo_labels(lambda x: x[:3].reshape(3, -1), rgb, 4)
        with pytest.raises(TypeError, match="encoder"):
            encoder_pseudo_labels("resnet", rgb, 4)
        with pytest.raises(ValueError, match="n_clusters=None"):
            encoder_pseudo_labels(pixels, rgb)

    def test_autoencoder_pseudo_labels_report_their_quality(self):
        images, targets = _digits(64)
        labels, info = pseudo_labels(
            images, 4, epochs=1, batch_size=32, seed=0, classes=targets, return_info=True, verbose=0
        )
        assert info["quality"] == cluster_quality(labels, targets)
