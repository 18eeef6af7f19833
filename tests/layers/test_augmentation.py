"""On-device augmentation: crop geometry, flip, per-image randomness, preview."""

import keras
import numpy as np
import pytest
import testing
from keras import ops
from PIL import Image
from testing import to_numpy

from simclr_keras import SimCLRAugmentation, save_augmentation_preview
from simclr_keras.layers import RandomResizedCrop
from simclr_keras.layers.augmentation import gaussian_blur, reflect_tap_matrices
from simclr_keras.layers.input_scaling import apply_preprocessing
from simclr_keras.layers.random_resized_crop import bilinear_matrix


def gradient_images(batch=4, size=12):
    rng = np.random.default_rng(0)
    return rng.uniform(0, 1, size=(batch, size, size, 3)).astype("float32")


def reference_blur(images, sigma, radius):
    """Loop-based separable Gaussian blur with reflected borders, in float64."""
    pad = [(0, 0), (radius, radius), (radius, radius), (0, 0)]
    padded = np.pad(images.astype("float64"), pad, "reflect")
    height, width = images.shape[1:3]
    out = np.zeros(images.shape, "float64")
    for b, s in enumerate(sigma):
        taps = np.exp(-(np.arange(-radius, radius + 1) ** 2) / (2.0 * float(s) ** 2))
        taps /= taps.sum()
        for i in range(height):
            for j in range(width):
                window = padded[b, i : i + 2 * radius + 1, j : j + 2 * radius + 1]
                out[b, i, j] = np.einsum("k,l,klc->c", taps, taps, window)
    return out


class TestAugmentation(testing.TestCase):
    def test_full_crop_without_flip_is_the_identity(self):
        images = gradient_images()
        crop = RandomResizedCrop(12, 12, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=False, seed=0)
        out = to_numpy(crop(images, training=True))
        self.assertAllClose(out, images, atol=1e-5)

    def test_crop_matrices_resample_as_affine_transform_does(self):
        # Scales, flips and boxes reaching past the borders (edge pixels repeat).
        rng = np.random.default_rng(0)
        images = rng.uniform(0, 1, (6, 9, 11, 3)).astype("float32")
        sx, sy = rng.uniform(-1.2, 1.2, 6), rng.uniform(0.1, 1.2, 6)
        bx, by = rng.uniform(-3, 14, 6), rng.uniform(-3, 9, 6)
        zeros = np.zeros(6)
        transform = np.stack([sx, zeros, bx, zeros, sy, by, zeros, zeros], 1).astype("float32")
        expected = ops.image.affine_transform(
            images, transform, "bilinear", "nearest", data_format="channels_last"
        )
        out = ops.einsum("bij,bjwc->biwc", bilinear_matrix(by, sy, 9, 9), images)
        out = ops.einsum("bij,bhjc->bhic", bilinear_matrix(bx, sx, 11, 11), out)
        self.assertAllClose(out, expected, atol=1e-5)

    def test_flip_mirrors_exactly_and_per_image(self):
        images = gradient_images(batch=32)
        crop = RandomResizedCrop(12, 12, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=True, seed=3)
        out = to_numpy(crop(images, training=True))
        same = [np.allclose(o, x, atol=1e-5) for o, x in zip(out, images)]
        mirrored = [np.allclose(o, x[:, ::-1], atol=1e-5) for o, x in zip(out, images)]
        assert all(s or m for s, m in zip(same, mirrored))
        assert 4 <= sum(mirrored) <= 28  # about half of 32, drawn per image

    def test_crop_of_a_constant_image_stays_constant_and_resizes(self):
        images = np.full((3, 20, 30, 3), 0.25, "float32")
        out = to_numpy(RandomResizedCrop(8, 10, seed=1)(images, training=True))
        assert out.shape == (3, 8, 10, 3)
        self.assertAllClose(out, 0.25, atol=1e-5)

    def test_crop_zooms_in_by_the_area_scale(self):
        # A quarter-area crop of a horizontal ramp spans about half its range.
        ramp = np.tile(np.linspace(0, 1, 64, dtype="float32")[None, :, None], (64, 1, 3))
        images = np.repeat(ramp[None], 16, axis=0)
        crop = RandomResizedCrop(64, 64, scale=(0.25, 0.25), ratio=(1.0, 1.0), flip=False, seed=2)
        out = to_numpy(crop(images, training=True))
        spans = out[:, 32, -1, 0] - out[:, 32, 0, 0]
        self.assertAllClose(spans, 0.5 * 63 / 63, atol=0.03)

    def test_views_are_in_unit_range_differ_per_image_and_per_call(self):
        images = np.repeat((gradient_images(1, 16) * 255).astype("uint8"), 8, axis=0)
        aug = SimCLRAugmentation(16, 16, seed=4)
        first = to_numpy(aug(images))
        second = to_numpy(aug(images))
        assert first.shape == (8, 16, 16, 3) and first.dtype == np.float32
        assert first.min() >= 0.0 and first.max() <= 1.0
        # Eight copies of one image get eight different views...
        assert len({arr.tobytes() for arr in first}) == 8
        # ...and a second call draws new ones.
        assert not np.allclose(first, second)

    def test_seeded_augmentations_repeat(self):
        images = (gradient_images(4, 16) * 255).astype("uint8")
        a = to_numpy(SimCLRAugmentation(16, 16, seed=9)(images))
        b = to_numpy(SimCLRAugmentation(16, 16, seed=9)(images))
        self.assertAllEqual(a, b)

    def test_grayscale_only_when_probability_one(self):
        images = (gradient_images(6, 16) * 255).astype("uint8")
        aug = SimCLRAugmentation(16, 16, jitter_strength=0.0, grayscale_probability=1.0, seed=0)
        out = to_numpy(aug(images))
        self.assertAllClose(out[..., 0], out[..., 1], atol=1e-5)
        self.assertAllClose(out[..., 1], out[..., 2], atol=1e-5)

    def test_augmentation_config_round_trip(self):
        aug = SimCLRAugmentation(24, 20, crop_scale=(0.3, 1.0), blur_probability=0.5, seed=1)
        again = SimCLRAugmentation.from_config(aug.get_config())
        assert again.get_config() == aug.get_config()

    @pytest.mark.parametrize(
        "kwargs, match",
        [
            (dict(crop_scale=(0.5, 1.5)), "crop_scale"),
            (dict(crop_scale=(0.0, 1.0)), "crop_scale"),
            (dict(jitter_probability=1.2), "jitter_probability=1.2"),
            (dict(jitter_strength=-1), "jitter_strength=-1"),
        ],
    )
    def test_bad_augmentation_arguments(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            SimCLRAugmentation(16, 16, **kwargs)

    def test_preprocessing_modes_match_keras_applications(self):
        x01 = gradient_images(2, 8)
        for name, fn in (
            ("vgg16", keras.applications.vgg16.preprocess_input),
            ("mobilenet_v2", keras.applications.mobilenet_v2.preprocess_input),
            ("densenet", keras.applications.densenet.preprocess_input),
        ):
            ours = to_numpy(apply_preprocessing(x01, name))
            theirs = to_numpy(fn(x01.copy() * 255.0))
            self.assertAllClose(ours, theirs, rtol=1e-4, atol=1e-3, msg=name)

    def test_preview_png_is_written(self, tmp_path):
        images = (gradient_images(3, 16) * 255).astype("uint8")
        path = save_augmentation_preview(images, str(tmp_path / "sub" / "preview.png"), n_views=3)
        with Image.open(path) as img:
            assert img.size[0] > 200 and img.size[1] > 100

    def test_views_are_cropped_from_a_larger_source_and_eval_centre_crops(self):
        # A 1:2 source twice the output's height: training views come out at the
        # output size; evaluation takes the centre square and shrinks it.
        rng = np.random.default_rng(0)
        images = rng.uniform(0, 1, (4, 16, 32, 3)).astype("float32")
        aug = SimCLRAugmentation(8, 8, seed=0)
        views = to_numpy(aug(images, training=True))
        assert views.shape == (4, 8, 8, 3) and 0 <= views.min() and views.max() <= 1
        centre = to_numpy(aug(images, training=False))
        square = ops.image.resize(images[:, :, 8:24], (8, 8), antialias=True)
        self.assertAllClose(centre, square, atol=1e-5)
        # Only the centre square is read: the outer quarters do not matter.
        images[:, :, :8] = images[:, :, 24:] = 0.0
        self.assertAllClose(aug(images, training=False), centre, atol=1e-6)

    def test_simclr_trains_on_a_larger_source_and_evaluates_at_its_input(self):
        from simclr_keras import DataGeneratorSimCLR, SimCLR, extract_features, small_cnn

        rng = np.random.default_rng(1)
        source = (rng.uniform(0, 1, (16, 24, 24, 3)) * 255).astype("uint8")
        simclr = SimCLR(small_cnn((12, 12, 3), widths=(4, 4, 8)), (12, 12, 3), 8, [8, 4], seed=0)
        history = simclr.fit(DataGeneratorSimCLR(source, 8, seed=0), epochs=1, verbose=0)
        assert np.isfinite(history.history["loss"][-1])
        features = extract_features(simclr, source, verbose=0)
        shrunk = ops.image.resize(source.astype("float32") / 255.0, (12, 12), antialias=True)
        self.assertAllClose(features, simclr.encode(shrunk), rtol=1e-4, atol=1e-5)

    def test_fit_accepts_a_second_and_third_source_size(self):
        # TensorFlow retraces the step with unknown height and width when fit()
        # meets a new source size; crop and blur must not need static sizes.
        from simclr_keras import DataGeneratorSimCLR, SimCLR, small_cnn

        rng = np.random.default_rng(2)
        augmentation = {"blur_probability": 0.5}
        simclr = SimCLR(small_cnn((12, 12, 3), widths=(4, 4, 8)), (12, 12, 3), 8, [8, 4], seed=0,
                        augmentation=augmentation)  # fmt: skip
        for shape in [(16, 24, 24, 3), (16, 20, 28, 3), (16, 30, 18, 3)]:
            source = (rng.uniform(0, 1, shape) * 255).astype("uint8")
            history = simclr.fit(DataGeneratorSimCLR(source, 8, seed=0), epochs=1, verbose=0)
            assert np.isfinite(history.history["loss"][-1]), shape

    @pytest.mark.parametrize("height, width, radius", [(9, 7, 3), (16, 12, 1), (6, 6, 5)])
    def test_gaussian_blur_matches_a_loop_reference_with_reflected_borders(
        self, height, width, radius
    ):
        rng = np.random.default_rng(height)
        images = rng.uniform(0, 1, (3, height, width, 2)).astype("float32")
        sigma = np.array([0.1, 0.8, 2.0], "float32")
        out = to_numpy(gaussian_blur(images, sigma, radius))
        self.assertAllClose(out, reference_blur(images, sigma, radius), atol=2e-6)

    def test_reflect_tap_matrices_select_one_source_pixel_per_tap(self):
        taps = to_numpy(reflect_tap_matrices(5, 2))
        assert taps.shape == (5, 5, 5)
        self.assertAllEqual(taps.sum(axis=2), 1.0)
        # Output pixel 0 reads sources 2, 1, 0, 1, 2 (reflected, edge not repeated);
        # pixel 4 reads 2, 3, 4, 3, 2.
        self.assertAllEqual(taps[0].argmax(axis=1), [2, 1, 0, 1, 2])
        self.assertAllEqual(taps[4].argmax(axis=1), [2, 3, 4, 3, 2])

    def test_named_policies_set_the_crop_and_keep_other_defaults(self):
        from simclr_keras.layers.augmentation import AUGMENTATION_POLICIES, make_augmentation

        assert set(AUGMENTATION_POLICIES) == {"simclr", "mild", "colour"}
        simclr = make_augmentation(None, (16, 16, 3))
        assert simclr.get_config() == {
            **make_augmentation("simclr", (16, 16, 3)).get_config(),
            "name": simclr.name,
        }
        mild = make_augmentation("mild", (16, 16, 3), blur_probability=0.5)
        assert mild.crop_scale == (0.5, 1.0) and mild.flip and mild.jitter_strength == 0.5
        assert mild.blur_probability == 0.5 and simclr.jitter_strength == 1.0
        colour = make_augmentation("colour", (16, 16, 3), seed=3)
        assert colour.crop_scale == (1.0, 1.0) and not colour.flip and colour.seed == 3
        # Colour only: the whole image stays in place, gray pixels stay gray.
        images = np.full((8, 16, 16, 3), 128, "uint8")
        views = to_numpy(colour(images, training=True))
        assert np.allclose(views, views[:, :1, :1, :], atol=1e-5)  # constant per image
        with pytest.raises(ValueError, match=r"`augmentation` must be None, one of \('simclr'"):
            make_augmentation("strong", (16, 16, 3))

    def test_the_pretrained_recipe_uses_the_mild_policy_unless_told_otherwise(self):
        from tiny_models import sequential_backbone

        from simclr_keras import SimCLR

        pretrained = SimCLR(sequential_backbone(), (16, 16, 3), 4, [8, 4], recipe="pretrained")
        assert pretrained.augmentation.crop_scale == (0.5, 1.0)
        chosen = SimCLR(
            sequential_backbone(),
            (16, 16, 3),
            4,
            [8, 4],
            recipe="pretrained",
            augmentation="simclr",
        )
        assert chosen.augmentation.crop_scale == (0.08, 1.0)
        scratch = SimCLR(sequential_backbone(), (16, 16, 3), 4, [8, 4])
        assert scratch.augmentation.crop_scale == (0.08, 1.0)

    def test_a_known_pretrained_network_without_preprocessing_gets_a_warning(self):
        import warnings

        from tiny_models import sequential_backbone

        from simclr_keras import SimCLR
        from simclr_keras.layers.input_scaling import expected_preprocessing

        vgg = keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3))
        assert expected_preprocessing(vgg) == "vgg16"
        with pytest.warns(UserWarning, match=r"pass `preprocessing='vgg16'`.*'caffe' scaling"):
            SimCLR(vgg, (32, 32, 3), 4, [8, 4])
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            SimCLR(vgg, (32, 32, 3), 4, [8, 4], preprocessing="vgg16")
            SimCLR(vgg, (32, 32, 3), 4, [8, 4], preprocessing="unit")  # said on purpose
            SimCLR(sequential_backbone(), (16, 16, 3), 4, [8, 4])  # an unknown network
        names = {
            "resnet50": "resnet50",
            "resnet101v2": "resnet50v2",
            "mobilenetv2_1.00_224": "mobilenet_v2",
            "MobilenetV3small": "mobilenet_v3",
            "efficientnetb3": "efficientnet",
            "efficientnetv2-s": "efficientnet_v2",
            "convnext_tiny": "convnext",
            "my_vgg16_variant": None,
        }
        for name, family in names.items():
            assert expected_preprocessing(keras.Sequential(name=name)) == family, name
