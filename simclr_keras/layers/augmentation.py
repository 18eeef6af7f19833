"""SimCLR augmentation that runs on the device, inside the training step.

Every image of a batch gets its own random parameters, drawn as SimCLR's
official code draws them: the random resized crop and flip
(`simclr_keras.layers.random_resized_crop`), the colour jitter in a random
order (`simclr_keras.layers.color_jitter`), grayscale and a Gaussian blur with
one isotropic sigma per image. Everything computes in float32.
"""

import warnings

import keras
from keras import ops

from simclr_keras._checks import check_jitter_strength, check_probability, check_range
from simclr_keras._export import simclr_export
from simclr_keras.layers.color_jitter import ColorJitter
from simclr_keras.layers.input_scaling import to_unit_range
from simclr_keras.layers.random_resized_crop import RandomResizedCrop

# ITU-R 601 luma, as `tf.image.rgb_to_grayscale`.
GRAY_WEIGHTS = (0.2989, 0.5870, 0.1140)


def blur_radius(height):
    """Radius of SimCLR's blur kernel for images `height` pixels high: the
    official code asks for a kernel of `height // 10` taps and builds
    `2 * (height // 10 // 2) + 1` (at least 3 here).
    """
    return max(1, (int(height) // 10) // 2)


def reflect_tap_matrices(size, radius):
    """0/1 selection matrices of a 1-D convolution with reflected borders.

    Args:
        size: Length of the image axis; larger than `radius`.
        radius: Kernel radius; the kernel has `2 * radius + 1` taps.

    Returns:
        float32 tensor `(size, 2 * radius + 1, size)` whose entry `[i, t, j]`
        is 1 where output pixel `i` reads source pixel `j` with tap `t`, the
        border reflected as `numpy.pad(mode="reflect")` does. Built on the
        device from index arithmetic, so no large constant enters the graph.
    """
    source = ops.abs(ops.arange(size)[:, None] + ops.arange(-radius, radius + 1)[None, :])
    source = ops.where(source > size - 1, 2 * (size - 1) - source, source)
    return ops.one_hot(source, size, dtype="float32")


def gaussian_blur(images, sigma, radius):
    """Isotropic Gaussian blur with one sigma per image, separable, with
    reflected borders (the official code pads with zeros, which darkens the
    border; torchvision reflects).

    Each pass is one batched matrix product with a per-image banded matrix
    (the kernel and the reflection folded in), so the compiled graph stays
    the same size for any radius. Written as `2 * radius + 1` shifted slices,
    the augmentation did not compile within 80 s at 224 px (radius 11) on an
    H100; this form's compile time there is not yet measured.

    Args:
        images: float32 `(B, H, W, C)`; H and W larger than `radius`.
        sigma: `(B,)` standard deviations in pixels.
        radius: Kernel radius; the kernel has `2 * radius + 1` taps.

    Returns:
        The blurred images.
    """
    taps = ops.arange(-radius, radius + 1, dtype="float32")
    sigma = ops.reshape(ops.cast(sigma, "float32"), (-1, 1))
    weights = ops.exp(-ops.square(taps)[None, :] / (2.0 * ops.square(sigma)))
    weights = weights / ops.sum(weights, axis=1, keepdims=True)
    height, width = ops.shape(images)[1], ops.shape(images)[2]
    rows = ops.einsum("bt,itj->bij", weights, reflect_tap_matrices(height, radius))
    out = ops.einsum("bij,bjwc->biwc", rows, images)
    columns = ops.einsum("bt,itj->bij", weights, reflect_tap_matrices(width, radius))
    return ops.einsum("bij,bhjc->bhic", columns, out)


@simclr_export("simclr_keras.layers.SimCLRAugmentation")
class SimCLRAugmentation(keras.layers.Layer):
    """The SimCLR view generator: crop + flip, colour jitter, grayscale, blur.

    Takes uint8 images in [0, 255] or float images in [0, 1], of the output
    size or larger (views are then cropped from the larger source and
    resized down), returns float32 images in [0, 1] of the target size,
    computed in float32 whatever the dtype policy. Each call draws new
    parameters for every image, so calling it twice on a batch gives two
    views. Per image, as in SimCLR's official code:

    1. random resized crop: area `U(crop_scale)` of the source, aspect
       log-uniform in `crop_ratio`, redrawn (10 tries, then a centre crop)
       until it fits; horizontal flip with probability 0.5;
    2. with probability `jitter_probability`, colour jitter of strength
       `s`: brightness, contrast and saturation factors `U[1 - 0.8 s,
       1 + 0.8 s]`, hue shift `U[-0.2 s, 0.2 s]`, in a random order
       (`ColorJitter`);
    3. grayscale with probability `grayscale_probability`;
    4. with probability `blur_probability`, a Gaussian blur with one
       isotropic sigma `U(blur_sigma)` and a kernel of about 10 % of the
       image side.

    Args:
        height: Output height.
        width: Output width.
        crop_scale: Area range of the random resized crop.
        crop_ratio: Aspect-ratio range of the crop.
        flip: Random horizontal flip (p = 0.5).
        jitter_strength: Colour-jitter strength `s`: brightness, contrast and
            saturation 0.8 s, hue 0.2 s (SimCLR uses 1.0 on ImageNet, 0.5 on
            CIFAR-10). 0 turns jitter off.
        jitter_probability: Probability that an image is jittered (0.8).
        grayscale_probability: Probability of grayscale conversion (0.2).
        blur_probability: Probability of Gaussian blur (SimCLR: 0.5 on
            ImageNet, off on small images). 0 turns it off.
        blur_sigma: Range of the blur's sigma in pixels.
        seed: Integer seed; the crop, the jitter and the rest each get
            their own offset of it.
        **kwargs: Standard layer arguments.

    Returns:
        float32 images `(B, height, width, C)` in [0, 1].

    Example:
    >>> aug = SimCLRAugmentation(32, 32, seed=1)
    >>> view = aug(ops.ones((4, 32, 32, 3), dtype="uint8"))

    Reference:
        Chen et al., "A Simple Framework for Contrastive Learning of Visual
        Representations", ICML 2020, appendix A; google-research/simclr
        `tf2/data_util.py` (colour jitter, blur kernel size).
    """

    def __init__(
        self,
        height,
        width,
        crop_scale=(0.08, 1.0),
        crop_ratio=(3 / 4, 4 / 3),
        flip=True,
        jitter_strength=1.0,
        jitter_probability=0.8,
        grayscale_probability=0.2,
        blur_probability=0.0,
        blur_sigma=(0.1, 2.0),
        seed=None,
        **kwargs,
    ):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.height, self.width = int(height), int(width)
        # Checked here so that errors name this layer's arguments.
        self.crop_scale = check_range(crop_scale, "crop_scale", upper=1)
        self.crop_ratio = check_range(crop_ratio, "crop_ratio")
        self.flip = flip
        self.jitter_strength = check_jitter_strength(jitter_strength, "jitter_strength")
        self.jitter_probability = check_probability(jitter_probability, "jitter_probability")
        self.grayscale_probability = check_probability(
            grayscale_probability, "grayscale_probability"
        )
        self.blur_probability = check_probability(blur_probability, "blur_probability")
        self.blur_sigma = check_range(blur_sigma, "blur_sigma")
        self.seed = seed

        def sub_seed(offset):
            return None if seed is None else int(seed) + offset

        # Sub-layers compute in this layer's dtype (float32 by default, also
        # under a mixed precision policy).
        self.crop = RandomResizedCrop(
            height, width, crop_scale, crop_ratio, flip, seed=sub_seed(0), dtype=self.dtype_policy
        )
        self.jitter = ColorJitter(
            jitter_strength, jitter_probability, seed=sub_seed(1), dtype=self.dtype_policy
        )
        self.blur_radius = blur_radius(self.height)
        self.seed_generator = keras.random.SeedGenerator(sub_seed(2))

    def build(self, input_shape):
        self.built = True

    def call(self, images, training=True):
        x = self.crop(to_unit_range(images), training=training)
        if not training:
            return x
        # Colour operations need RGB; other channel counts get crop/flip only.
        if x.shape[-1] != 3:
            return x
        if self.jitter_strength > 0 and self.jitter_probability > 0:
            x = self.jitter(x, training=True)
        batch = ops.shape(x)[0]
        if self.grayscale_probability > 0:
            coin = keras.random.uniform((batch,), seed=self.seed_generator)
            gray = ops.sum(x * ops.array(GRAY_WEIGHTS, "float32"), axis=-1, keepdims=True)
            selected = ops.reshape(coin < self.grayscale_probability, (-1, 1, 1, 1))
            x = ops.where(selected, ops.broadcast_to(gray, ops.shape(x)), x)
        if self.blur_probability > 0 and self.blur_radius > 0:
            coin = keras.random.uniform((batch,), seed=self.seed_generator)
            sigma = keras.random.uniform((batch,), *self.blur_sigma, seed=self.seed_generator)
            blurred = gaussian_blur(x, sigma, self.blur_radius)
            selected = ops.reshape(coin < self.blur_probability, (-1, 1, 1, 1))
            x = ops.where(selected, blurred, x)
        return ops.clip(x, 0.0, 1.0)

    def save_own_variables(self, store):
        # The random streams live in seed generators, which Keras does not
        # save; saving them makes a loaded or resumed model draw the same
        # views as the original would have.
        for i, state in enumerate(self.non_trainable_variables):
            store[f"seed_state_{i}"] = state

    def load_own_variables(self, store):
        saved = sorted(k for k in store.keys() if k.startswith("seed_state_"))
        states = self.non_trainable_variables
        if len(saved) != len(states):
            # Another augmentation layout: states matched by position would
            # feed one operation's random stream to another, so none is used.
            warnings.warn(
                "This .keras file was written by another version of simclr_keras: its "
                f"augmentation saved {len(saved)} random-stream state(s), this version's "
                f"has {len(states)}"
                + (
                    " (7 is simclr_keras 0.2.0 before 2026-11-24, whose colour jitter and "
                    "blur were not yet SimCLR's)"
                    if len(saved) == 7
                    else ""
                )
                + ". The weights and the optimizer load as saved; the augmentation draws "
                f"from its seed (seed={self.seed}) afresh, so a resumed run sees other "
                "views than the original run would have. Nothing to do, unless you need "
                "those exact views: then continue the run with the version that wrote it.",
                UserWarning,
                stacklevel=2,
            )
            return
        for i, state in enumerate(states):
            state.assign(store[f"seed_state_{i}"])

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.height, self.width, input_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "height": self.height,
                "width": self.width,
                "crop_scale": tuple(self.crop_scale),
                "crop_ratio": tuple(self.crop_ratio),
                "flip": self.flip,
                "jitter_strength": self.jitter_strength,
                "jitter_probability": self.jitter_probability,
                "grayscale_probability": self.grayscale_probability,
                "blur_probability": self.blur_probability,
                "blur_sigma": self.blur_sigma,
                "seed": self.seed,
            }
        )
        return config


# Named augmentation policies: `SimCLR(augmentation="mild")`, `pretrain --augment mild`.
AUGMENTATION_POLICIES = {
    # SimCLR's views: crops of 8-100 % of the image, flip, colour, grayscale.
    "simclr": {},
    # For a pretrained start: crops of 50-100 % (the object stays in view),
    # flip, colour jitter of strength 0.5 (the CLI's, as measured) and grayscale.
    "mild": {"crop_scale": (0.5, 1.0), "jitter_strength": 0.5},
    # The seed's policy for a pretrained VGG16: colour only (the whole image,
    # no flip), jitter of strength 0.5 and grayscale.
    "colour": {
        "crop_scale": (1.0, 1.0),
        "crop_ratio": (1.0, 1.0),
        "flip": False,
        "jitter_strength": 0.5,
    },
}


def make_augmentation(augmentation, image_shape, seed=None, **defaults):
    """The augmentation layer `SimCLR` uses, from its `augmentation` argument.

    Args:
        augmentation: None (the SimCLR defaults), a policy name from
            `AUGMENTATION_POLICIES` (`"simclr"`, `"mild"`, `"colour"`), a
            dict of `SimCLRAugmentation` arguments or any Keras layer.
        image_shape: `(H, W, C)` of the views.
        seed: Seed for a `SimCLRAugmentation` that names none.
        **defaults: `SimCLRAugmentation` arguments that a policy or a dict
            does not set (e.g. `blur_probability`).

    Returns:
        A Keras layer.

    Example:
    >>> make_augmentation("mild", (32, 32, 3)).crop_scale
    (0.5, 1.0)
    """
    height, width = image_shape[:2]
    if augmentation is None:
        augmentation = "simclr"
    if isinstance(augmentation, str):
        if augmentation not in AUGMENTATION_POLICIES:
            raise ValueError(
                f"`augmentation` must be None, one of {tuple(AUGMENTATION_POLICIES)}, a dict "
                f"of SimCLRAugmentation arguments or a Keras layer. Received: "
                f"augmentation={augmentation!r}"
            )
        augmentation = AUGMENTATION_POLICIES[augmentation]
    if isinstance(augmentation, dict):
        params = {**defaults, **augmentation}
        params.setdefault("seed", seed)
        return SimCLRAugmentation(height, width, name="augmentation", **params)
    if isinstance(augmentation, keras.layers.Layer):
        return augmentation
    raise TypeError(
        "`augmentation` must be None, a policy name, a dict of SimCLRAugmentation "
        "arguments or a Keras layer. Received: augmentation of type "
        f"{type(augmentation).__name__}"
    )
