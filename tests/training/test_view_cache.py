"""`SimCLR.fit(cache_views=V)`: training the top on cached views of the frozen bottom."""

import keras
import numpy as np
import pytest
import testing
from scipy import stats
from tiny_models import SubclassedBackbone, tiny_simclr

from simclr_keras.backbones.freezing import trainable_flags, weighted_layers
from simclr_keras.backbones.split import frozen_split
from simclr_keras.data import DataGeneratorSimCLR
from simclr_keras.training import view_cache
from simclr_keras.training.defaults import default_callbacks


def six_layer_net():
    """c1 b1 c2 (stride 2) b2 c3 b3: every layer's output is a cut."""
    inputs = keras.Input((8, 8, 3))
    h = keras.layers.Conv2D(4, 3, padding="same", name="c1")(inputs)
    h = keras.layers.BatchNormalization(name="b1")(h)
    h = keras.layers.Conv2D(6, 3, strides=2, padding="same", name="c2")(h)
    h = keras.layers.BatchNormalization(name="b2")(h)
    h = keras.layers.Conv2D(6, 3, padding="same", name="c3")(h)
    h = keras.layers.BatchNormalization(name="b3")(h)
    return keras.Model(inputs, h, name="six")


def images(n=24, size=8, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3)).astype("uint8")


def weights_of(layer):
    return [testing.to_numpy(w).copy() for w in layer.weights]


class TestFrozenSplit(testing.TestCase):
    @pytest.mark.parametrize(
        "trained, cut, top_names",
        [
            (3, "c2", ["b2", "c3", "b3"]),  # below b2: c2's output
            (1, "c3", ["b3"]),  # the deepest cut
            (4, "b1", ["c2", "b2", "c3", "b3"]),
        ],
    )
    def test_the_cut_is_the_deepest_below_every_trained_layer(self, trained, cut, top_names):
        net = six_layer_net()
        layers = weighted_layers(net)
        bottom, top, name = frozen_split(net, layers[len(layers) - trained :])
        assert name == repr(cut).join(["layer ", ""])
        assert [layer.name for layer in weighted_layers(top)] == top_names
        assert [layer.name for layer in weighted_layers(bottom)] == [
            layer.name for layer in layers[: len(layers) - trained]
        ]
        # The halves are the backbone's own layers, and chained they are the backbone.
        assert weighted_layers(top)[-1] is net.get_layer("b3")
        x = np.random.default_rng(1).random((2, 8, 8, 3)).astype("float32")
        self.assertAllClose(top(bottom(x)), net(x), atol=1e-5)

    def test_no_cut_when_every_layer_trains_or_the_backbone_is_subclassed(self):
        net = six_layer_net()
        assert frozen_split(net, weighted_layers(net)) is None
        sub = SubclassedBackbone()
        sub.build((None, 8, 8, 3))
        assert frozen_split(sub, weighted_layers(sub)[-1:]) is None


class TestCachedViewPairs(testing.TestCase):
    def test_pairs_are_two_different_views_of_the_same_image_uniformly_drawn(self):
        n, views, batch = 12, 4, 5
        # maps[i, v] holds (i, v), so every batch says which image and view it took.
        maps = np.zeros((n, views, 2), "float16")
        maps[..., 0] = np.arange(n)[:, None]
        maps[..., 1] = np.arange(views)[None, :]
        pairs = view_cache.CachedViewPairs(maps, batch, seed=0)
        assert len(pairs) == n // batch
        counts = np.zeros((views, views))
        for _ in range(300):
            seen = []
            for i in range(len(pairs)):
                a, b = (pairs[i][key] for key in view_cache.VIEW_KEYS)
                assert a.shape == (batch, 2) and a.dtype == np.float32
                self.assertAllEqual(a[:, 0], b[:, 0])  # one image per row, in both views
                assert np.all(a[:, 1] != b[:, 1])  # two different views
                np.add.at(counts, (a[:, 1].astype(int), b[:, 1].astype(int)), 1)
                seen.extend(a[:, 0].astype(int))
            assert len(set(seen)) == len(seen) == len(pairs) * batch  # no image twice
            pairs.on_epoch_end()
        off_diagonal = counts[~np.eye(views, dtype=bool)]
        assert np.all(np.diag(counts) == 0)
        # Each of the 12 ordered pairs of different views equally likely.
        assert stats.chisquare(off_diagonal).pvalue > 1e-3


class TestFitWithCache(testing.TestCase):
    def test_cached_maps_give_the_outputs_of_the_images(self):
        simclr = tiny_simclr(recipe="pretrained")  # a deterministic augmentation (rescaling)
        x = images()
        data, _ = simclr._batches(x, None, "fit", {})
        bottom, top, _ = view_cache.cache_split(
            simclr.base_model, default_callbacks(simclr, data), 3, 2
        )
        maps = view_cache.cache_maps(simclr, x, 2, bottom, verbose=0)
        assert maps.dtype == np.float16 and maps.shape[:2] == (len(x), 2)
        self.assertAllEqual(maps[:, 0], maps[:, 1])
        simclr._cache_state = view_cache.CacheState(top)
        cached = simclr(
            {key: maps[:, 0].astype("float32") for key in view_cache.VIEW_KEYS}, training=False
        )
        simclr._cache_state = None
        self.assertAllClose(cached, simclr(x, training=False), atol=2e-3)

    def test_fit_trains_only_the_layers_above_the_cut_and_keeps_the_model(self):
        simclr = tiny_simclr(recipe="pretrained")
        weights = len(simclr.weights)
        c1, bn, c2 = (simclr.base_model.get_layer(n) for n in ("c1", "bn", "c2"))
        before = {layer.name: weights_of(layer) for layer in (c1, bn, c2)}
        history = simclr.fit(images(), epochs=3, cache_views=3, verbose=0)
        assert len(history.history["loss"]) == 3
        assert np.all(np.isfinite(history.history["loss"]))
        for a, b in zip(before["c1"], weights_of(c1)):  # the cached bottom never trains
            self.assertAllEqual(a, b)
        for layer in (bn, c2):  # the recipe's top half does
            assert any(not np.allclose(a, b) for a, b in zip(before[layer.name], weights_of(layer)))
        assert len(simclr.weights) == weights and simclr._cache_state is None
        twin = tiny_simclr(recipe="pretrained")  # the same run without the cache
        twin.fit(images(), epochs=3, verbose=0)
        assert trainable_flags(simclr.base_model) == trainable_flags(twin.base_model)
        assert simclr.num_of_unfrozen_layers == twin.num_of_unfrozen_layers == 2
        assert [w.shape for w in simclr.weights] == [w.shape for w in twin.weights]
        self.run_model_saving_test(simclr, images(8), atol=1e-5)

    def test_the_cached_views_differ(self):
        simclr = tiny_simclr(recipe="pretrained", augmentation="mild")
        x = images()
        data, _ = simclr._batches(x, None, "fit", {})
        bottom, _, _ = view_cache.cache_split(
            simclr.base_model, default_callbacks(simclr, data), 3, 3
        )
        maps = view_cache.cache_maps(simclr, x, 3, bottom, verbose=0).astype("float32")
        for v, w in ((0, 1), (0, 2), (1, 2)):
            self.assertNotAllClose(maps[:, v], maps[:, w], atol=1e-3)


class TestCacheErrors(testing.TestCase):
    @pytest.mark.parametrize("views", [1, -2, 2.5, "4"])
    def test_cache_views_must_be_an_int_of_at_least_two(self, views):
        with pytest.raises(ValueError, match=r"`cache_views` must be an int >= 2"):
            view_cache.check_cache_views(views)
        assert view_cache.check_cache_views(0) is None

    def test_a_bottom_that_trains_cannot_be_cached(self):
        simclr = tiny_simclr(recipe="scratch")  # every layer trains
        with pytest.raises(ValueError, match=r"`cache_views` needs a frozen bottom.*every layer"):
            simclr.fit(images(), epochs=1, cache_views=2, verbose=0)

    def test_guided_batches_and_memory_are_refused_by_name(self):
        simclr = tiny_simclr(recipe="pretrained")
        x = images()
        guided = DataGeneratorSimCLR(x, batch_size=8, pseudo_labels=np.arange(len(x)) % 3)
        with pytest.raises(ValueError, match=r"`cache_views`.*pseudo-label guided"):
            simclr.fit(guided, epochs=1, cache_views=2, verbose=0)
        with pytest.raises(ValueError, match=r"`cache_views` must fit in memory.*cache_views=8"):
            view_cache.check_cache_memory(10_000, 8, (5, 5, 480), available=2**30)
