"""Random draws of `SimCLRAugmentation` against SimCLR's distributions.

Each test measures one draw through the public layer, on images for which
the other operations are identities (a gray image for contrast and
brightness, a flat colour for saturation and hue, an impulse for the blur,
coordinate ramps for the crop), and compares it with the distribution of
Chen et al. (2020, appendix A) and the official code, with tolerances of
4.5 standard errors of the binomial or uniform estimate.
"""

import colorsys
import itertools
import math

import keras
import numpy as np
import pytest
import testing
from testing import to_numpy

from simclr_keras import SimCLRAugmentation
from simclr_keras.layers import ColorJitter

SIGMAS = 4.5


def run_layer(layer, images):
    """`layer(images, training=True)`, compiled on JAX (which would otherwise
    compile each op of the eager call for every new shape)."""
    if keras.backend.backend() != "jax":
        return layer(images, training=True)
    import jax

    layer.build(images.shape)
    state = [v.value for v in layer.non_trainable_variables]
    out, _ = jax.jit(lambda s, x: layer.stateless_call([], s, x, training=True))(state, images)
    return out


def augment(images, seed=0, out_size=None, **kwargs):
    """Views with every operation off unless named in kwargs."""
    params = dict(
        crop_scale=(1.0, 1.0),
        crop_ratio=(1.0, 1.0),
        flip=False,
        jitter_strength=0.0,
        jitter_probability=1.0,
        grayscale_probability=0.0,
        blur_probability=0.0,
        seed=seed,
    )
    params.update(kwargs)
    height, width = out_size or images.shape[1:3]
    layer = SimCLRAugmentation(height, width, **params)
    return to_numpy(run_layer(layer, images)).astype("float64")


def assert_rate(hits, p, name):
    n = len(hits)
    rate = float(np.mean(hits))
    tol = SIGMAS * math.sqrt(p * (1 - p) / n)
    assert abs(rate - p) <= tol, f"{name}: rate {rate:.4f}, expected {p} +- {tol:.4f} (n={n})"


def assert_uniform(samples, low, high, name):
    """Support, mean and nine deciles of a U[low, high] sample."""
    samples = np.asarray(samples, dtype="float64")
    n, width = len(samples), high - low
    eps = 1e-3 * max(width, 1e-3)
    assert samples.min() >= low - eps and samples.max() <= high + eps, (
        f"{name}: range [{samples.min():.4f}, {samples.max():.4f}] not in [{low}, {high}]"
    )
    # The whole range is reached (a gap of 20 / n of it has chance e^-20).
    assert samples.min() <= low + 20 * width / n and samples.max() >= high - 20 * width / n, name
    mean_tol = SIGMAS * width / math.sqrt(12 * n)
    assert abs(samples.mean() - (low + high) / 2) <= mean_tol, (
        f"{name}: mean {samples.mean():.4f}, expected {(low + high) / 2} +- {mean_tol:.4f}"
    )
    for q in np.arange(0.1, 1.0, 0.1):
        below = float(np.mean(samples < low + q * width))
        tol = SIGMAS * math.sqrt(q * (1 - q) / n)
        assert abs(below - q) <= tol, f"{name}: P(x < {q:.1f} quantile) = {below:.4f} +- {tol:.4f}"


def flat_colour(n, rgb=(0.5, 0.4, 0.3), size=4):
    return np.broadcast_to(np.asarray(rgb, "float32"), (n, size, size, 3)).copy()


def hsv_of(pixels):
    return np.array([colorsys.rgb_to_hsv(*p) for p in pixels])


def crop_boxes(src_h, src_w, out, n, seed, **kwargs):
    """Crop width and height (source pixels) of n views, read from ramps."""
    ys, xs = np.mgrid[0:src_h, 0:src_w].astype("float32")
    ramps = np.stack([xs / src_w, ys / src_h, np.zeros_like(xs)], axis=-1)
    images = np.repeat(ramps[None], n, axis=0)
    kwargs.setdefault("crop_scale", (0.08, 1.0))
    kwargs.setdefault("crop_ratio", (3 / 4, 4 / 3))
    views = augment(images, seed=seed, out_size=(out, out), **kwargs)
    # Output pixel i samples x0 + (i + 0.5) * crop_w / out - 0.5 (linear
    # inside the box); pixels 4 and out - 5 are clear of the borders.
    span = out / (out - 9)
    widths = np.abs(views[:, out // 2, out - 5, 0] - views[:, out // 2, 4, 0]) * src_w * span
    heights = np.abs(views[:, out - 5, out // 2, 1] - views[:, 4, out // 2, 1]) * src_h * span
    return widths, heights


def reference_mean_area(src_h, src_w, scale, ratio, attempts=10, n=400_000, seed=0):
    """torchvision's RandomResizedCrop.get_params in NumPy, mean area fraction."""
    rng = np.random.default_rng(seed)
    area = rng.uniform(*scale, (n, attempts)) * src_h * src_w
    aspect = np.exp(rng.uniform(np.log(ratio[0]), np.log(ratio[1]), (n, attempts)))
    w, h = np.sqrt(area * aspect), np.sqrt(area / aspect)
    fits = (w <= src_w) & (h <= src_h)
    first = fits.argmax(axis=1)
    chosen = (w * h)[np.arange(n), first]
    src_ratio = src_w / src_h
    fw, fh = (src_w, src_h)
    if src_ratio < ratio[0]:
        fw, fh = src_w, src_w / ratio[0]
    elif src_ratio > ratio[1]:
        fw, fh = src_h * ratio[1], src_h
    return float(np.where(fits.any(axis=1), chosen, fw * fh).mean() / (src_h * src_w))


def reference_jitter(image, params, order):
    """SimCLR's colour_jitter_rand for one image, in NumPy / colorsys."""
    x = image.astype("float64")
    for op in order:
        if op == 0:
            x = x * params["brightness"]
        elif op == 1:
            mean = x.mean(axis=(0, 1), keepdims=True)
            x = (x - mean) * params["contrast"] + mean
        else:
            hsv = hsv_of(x.reshape(-1, 3))
            if op == 2:
                hsv[:, 1] = np.clip(hsv[:, 1] * params["saturation"], 0, 1)
            else:
                hsv[:, 0] = (hsv[:, 0] + params["hue"]) % 1.0
            x = np.array([colorsys.hsv_to_rgb(*p) for p in hsv]).reshape(x.shape)
        x = np.clip(x, 0, 1)
    return x


class TestAugmentationDistributions(testing.TestCase):
    @pytest.mark.parametrize("strength", [1.0, 0.5])
    def test_brightness_and_contrast_factors_are_uniform_around_one(self, strength):
        # A gray checkerboard: saturation and hue are identities, brightness
        # scales the mean, contrast scales the deviations; nothing clips.
        n = 500
        board = np.where((np.arange(8)[:, None] + np.arange(8)) % 2 == 0, 0.35, 0.25)
        images = np.repeat(np.repeat(board[None, :, :, None], 3, axis=3), n, axis=0).astype(
            "float32"
        )
        out = augment(images, seed=1, jitter_strength=strength)
        brightness = out.mean(axis=(1, 2, 3)) / 0.3
        contrast = out[..., 0].std(axis=(1, 2)) / (0.05 * brightness)
        low, high = 1 - 0.8 * strength, 1 + 0.8 * strength
        assert_uniform(brightness, low, high, "brightness")
        assert_uniform(contrast, low, high, "contrast")

    def test_saturation_factor_is_uniform_and_hue_shift_symmetric(self):
        # A flat colour: contrast is an identity, brightness and hue keep the
        # HSV saturation, and only the hue shift moves the hue.
        n = 500
        rgb = (0.5, 0.4, 0.3)
        out = augment(flat_colour(n, rgb), seed=2, jitter_strength=1.0)
        hsv = hsv_of(out[:, 0, 0, :])
        h0, s0, _ = colorsys.rgb_to_hsv(*rgb)
        assert_uniform(hsv[:, 1] / s0, 0.2, 1.8, "saturation")
        shift = (hsv[:, 0] - h0 + 0.5) % 1.0 - 0.5
        assert_uniform(shift, -0.2, 0.2, "hue")

    def test_jitter_grayscale_and_flip_rates(self):
        n = 600
        colour = flat_colour(n)
        jittered = augment(colour, seed=3, jitter_strength=1.0, jitter_probability=0.8)
        assert_rate(np.abs(jittered - colour).max(axis=(1, 2, 3)) > 1e-4, 0.8, "jitter")
        gray = augment(colour, seed=4, grayscale_probability=0.2)
        is_gray = np.abs(gray[..., 0] - gray[..., 2]).max(axis=(1, 2)) < 1e-6
        self.assertAllClose(gray[is_gray], 0.2989 * 0.5 + 0.587 * 0.4 + 0.114 * 0.3, atol=1e-5)
        assert_rate(is_gray, 0.2, "grayscale")
        ramp = np.tile(np.linspace(0, 1, 8, dtype="float32")[None, None, :, None], (n, 8, 1, 3))
        flipped = augment(ramp, seed=5, flip=True)
        mirrored = np.abs(flipped - ramp[:, :, ::-1]).max(axis=(1, 2, 3)) < 1e-5
        unchanged = np.abs(flipped - ramp).max(axis=(1, 2, 3)) < 1e-5
        assert np.all(mirrored | unchanged)
        assert_rate(mirrored, 0.5, "flip")

    def test_blur_rate_is_p_with_one_isotropic_sigma_per_image(self):
        # An impulse: its response is the kernel, w(dy) * w(dx), so the ratio of
        # a neighbour to the centre is exp(-1 / (2 sigma^2)) in each direction.
        n, size, c = 400, 20, 10
        images = np.zeros((n, size, size, 3), "float32")
        images[:, c, c, :] = 1.0
        out = augment(images, seed=6, blur_probability=0.5)[..., 0]
        blurred = out[:, c, c + 1] > 0
        assert np.all(out[~blurred] == images[~blurred, ..., 0])
        assert_rate(blurred, 0.5, "blur")
        response = out[blurred]
        centre = response[:, c, c].astype("float64")
        along_x, along_y = response[:, c, c + 1] / centre, response[:, c + 1, c] / centre
        self.assertAllClose(along_x, along_y, rtol=1e-4)  # isotropic
        sigma = np.sqrt(-1.0 / (2.0 * np.log(along_x)))
        # Kernel radius 1 at 20 px (official: 20 // 10 = 2 taps asked, 2 * 1 + 1 built).
        assert np.all(response[:, c, c + 2] == 0) and np.all(response[:, c + 2, c] == 0)
        assert_uniform(sigma, 0.1, 2.0, "blur sigma")

    @pytest.mark.parametrize("src_h, src_w", [(16, 16), (16, 32)])
    def test_crop_area_and_aspect_stay_in_range_with_the_redraw_mean(self, src_h, src_w):
        n = 1024
        widths, heights = crop_boxes(src_h, src_w, 16, n, seed=7, flip=True)
        area = widths * heights / (src_h * src_w)
        aspect = widths / heights
        assert area.min() >= 0.08 - 2e-3 and area.max() <= 1 + 2e-3
        assert aspect.min() >= 0.75 - 2e-3 and aspect.max() <= 4 / 3 + 2e-3
        expected = reference_mean_area(src_h, src_w, (0.08, 1.0), (3 / 4, 4 / 3))
        if src_h == src_w:
            # Clipped boxes (the old behaviour) average 0.535; redrawn ones 0.477.
            assert abs(expected - 0.477) < 0.003
        tol = SIGMAS * area.std() / math.sqrt(n)
        assert abs(area.mean() - expected) <= tol, f"mean area {area.mean():.4f} vs {expected:.4f}"
        assert_uniform(np.log(aspect[area < 0.3]), math.log(3 / 4), math.log(4 / 3), "log aspect")

    def test_crop_falls_back_to_the_centre_when_nothing_fits(self):
        # On a 1:4 source no box of aspect 3/4..4/3 and area >= 0.5 fits.
        widths, heights = crop_boxes(16, 64, 16, 32, seed=8, crop_scale=(0.5, 1.0))
        self.assertAllClose(heights, 16, atol=0.05)
        self.assertAllClose(widths, 16 * 4 / 3, atol=0.05)

    def test_jitter_order_is_a_random_permutation_per_image(self):
        n = 96
        images = np.random.default_rng(0).uniform(0, 1, (n, 3, 3, 3)).astype("float32")
        out = to_numpy(run_layer(ColorJitter(1.0, probability=1.0, seed=11), images))
        drawn = ColorJitter(1.0, probability=1.0, seed=11).sample_parameters(n)
        drawn = {k: to_numpy(v) for k, v in drawn.items()}
        orders = drawn["order"]
        assert all(sorted(row) == [0, 1, 2, 3] for row in orders.tolist())
        many = to_numpy(ColorJitter(seed=12).sample_parameters(2400)["order"])
        counts = {perm: 0 for perm in itertools.permutations(range(4))}
        for row in many.tolist():
            counts[tuple(row)] += 1
        expected, tol = 100, SIGMAS * math.sqrt(2400 * (1 / 24) * (23 / 24))
        assert all(abs(c - expected) <= tol for c in counts.values()), counts
        # Each view is the official jitter applied in its own drawn order, and
        # one fixed order would not reproduce them.
        fixed_mismatch = 0
        for i in range(n):
            params = {
                k: float(drawn[k][i]) for k in ("brightness", "contrast", "saturation", "hue")
            }
            self.assertAllClose(out[i], reference_jitter(images[i], params, orders[i]), atol=2e-5)
            fixed = reference_jitter(images[i], params, (0, 1, 2, 3))
            fixed_mismatch += not np.allclose(out[i], fixed, atol=1e-3)
        assert fixed_mismatch > n // 4

    def test_views_are_float32_under_mixed_bfloat16(self):
        images = (np.random.default_rng(1).uniform(0, 1, (16, 16, 16, 3)) * 255).astype("uint8")
        kwargs = dict(blur_probability=0.5, seed=13)
        reference = to_numpy(run_layer(SimCLRAugmentation(12, 12, **kwargs), images))
        policy = keras.config.dtype_policy()
        keras.config.set_dtype_policy("mixed_bfloat16")
        try:
            layer = SimCLRAugmentation(12, 12, **kwargs)
            views = run_layer(layer, images)
            params = {
                "brightness": np.ones(16, "float32"),
                "contrast": np.ones(16, "float32"),
                "saturation": np.ones(16, "float32"),
                "hue": np.zeros(16, "float32"),
                # Each operation on 4 of the 16 images at every step, as drawn.
                "order": ((np.arange(16)[:, None] + np.arange(4)) % 4).astype("int32"),
                "apply": np.ones(16, bool),
            }
            jitter = ColorJitter(1.0, 1.0, seed=0)

            def transform(x):
                return jitter.transform(x, params)

            if keras.backend.backend() == "jax":
                import jax

                transform = jax.jit(transform)
            identity = transform((images / 255.0).astype("float32"))
        finally:
            keras.config.set_dtype_policy(policy)
        assert keras.backend.standardize_dtype(views.dtype) == "float32"
        self.assertAllClose(views, reference, atol=1e-6)
        self.assertAllClose(identity, images / 255.0, atol=1e-6)
