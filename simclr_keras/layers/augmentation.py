"""SimCLR augmentation that runs on the device, inside the training step.

Every image of a batch gets its own random parameters: the random resized
crop and flip (`simclr_keras.layers.random_resized_crop`), then Keras' own colour jitter,
grayscale and Gaussian blur layers.
"""

import keras
from keras import ops

from simclr_keras._checks import check_range
from simclr_keras._export import simclr_export
from simclr_keras.layers.input_scaling import to_unit_range
from simclr_keras.layers.random_resized_crop import RandomResizedCrop


@simclr_export("simclr_keras.layers.SimCLRAugmentation")
class SimCLRAugmentation(keras.layers.Layer):
    """The SimCLR view generator: crop + flip, colour jitter, grayscale, blur.

    Takes uint8 images in [0, 255] or float images in [0, 1], returns float32
    images in [0, 1] of the target size. Each call draws new parameters for
    every image, so calling it twice on a batch gives two views.

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
        seed: Integer seed; each sub-layer gets its own offset of it.
        **kwargs: Standard layer arguments.

    Returns:
        float32 images `(B, height, width, C)` in [0, 1].

    Example:
    >>> aug = SimCLRAugmentation(32, 32, seed=1)
    >>> view = aug(ops.ones((4, 32, 32, 3), dtype="uint8"))

    Reference:
        Chen et al., "A Simple Framework for Contrastive Learning of Visual
        Representations", ICML 2020, appendix A.
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
        for name, p in (
            ("jitter_probability", jitter_probability),
            ("grayscale_probability", grayscale_probability),
            ("blur_probability", blur_probability),
        ):
            if not 0 <= p <= 1:
                raise ValueError(f"`{name}` must be a probability in [0, 1]. Received: {name}={p}")
        if jitter_strength < 0:
            raise ValueError(
                "`jitter_strength` must be >= 0 (SimCLR uses 0.5 to 1.0). "
                f"Received: jitter_strength={jitter_strength}"
            )
        self.height, self.width = int(height), int(width)
        # Checked here so that errors name this layer's arguments.
        self.crop_scale = check_range(crop_scale, "crop_scale", upper=1)
        self.crop_ratio = check_range(crop_ratio, "crop_ratio")
        self.flip = flip
        self.jitter_strength = float(jitter_strength)
        self.jitter_probability = float(jitter_probability)
        self.grayscale_probability = float(grayscale_probability)
        self.blur_probability = float(blur_probability)
        self.blur_sigma = tuple(float(v) for v in blur_sigma)
        self.seed = seed

        def sub_seed(offset):
            return None if seed is None else int(seed) + offset

        self.crop = RandomResizedCrop(
            height, width, crop_scale, crop_ratio, flip, seed=sub_seed(0), dtype=self.dtype_policy
        )
        # Sub-layers compute in this layer's dtype (float32 by default, also
        # under a mixed precision policy). One Keras layer per colour
        # operation, each with its own seed:
        # RandomColorJitter hands one seed to all four, which makes their
        # factors identical draws when a seed is set.
        self.jitter = []
        if self.jitter_strength > 0 and self.jitter_probability > 0:
            s = self.jitter_strength
            sat_lo, sat_hi = max(1 - 0.8 * s, 0.0), 1 + 0.8 * s
            self.jitter = [
                keras.layers.RandomBrightness(
                    min(0.8 * s, 1.0),
                    value_range=(0, 1),
                    seed=sub_seed(10),
                    dtype=self.dtype_policy,
                ),
                keras.layers.RandomContrast(
                    min(0.8 * s, 1.0),
                    value_range=(0, 1),
                    seed=sub_seed(11),
                    dtype=self.dtype_policy,
                ),
                # Keras samples f and scales saturation by f / (1 - f).
                keras.layers.RandomSaturation(
                    (sat_lo / (1 + sat_lo), sat_hi / (1 + sat_hi)),
                    value_range=(0, 1),
                    seed=sub_seed(12),
                    dtype=self.dtype_policy,
                ),
                # Keras shifts hue by +-factor / 2.
                keras.layers.RandomHue(
                    (0.0, min(0.4 * s, 1.0)),
                    value_range=(0, 1),
                    seed=sub_seed(13),
                    dtype=self.dtype_policy,
                ),
            ]
        self.grayscale = None
        if self.grayscale_probability > 0:
            self.grayscale = keras.layers.RandomGrayscale(
                factor=self.grayscale_probability, seed=sub_seed(2), dtype=self.dtype_policy
            )
        self.blur = None
        if self.blur_probability > 0:
            kernel = max(3, 2 * (int(0.1 * min(height, width)) // 2) + 1)
            self.blur = keras.layers.RandomGaussianBlur(
                factor=self.blur_probability,
                kernel_size=kernel,
                sigma=self.blur_sigma,
                value_range=(0, 1),
                seed=sub_seed(3),
                dtype=self.dtype_policy,
            )
        self.apply_generator = keras.random.SeedGenerator(sub_seed(4))

    def build(self, input_shape):
        view_shape = (input_shape[0], self.height, self.width, input_shape[-1])
        for layer in self.jitter + [self.grayscale, self.blur]:
            if layer is not None:
                layer.build(view_shape)
        self.built = True

    def call(self, images, training=True):
        x = self.crop(to_unit_range(images), training=training)
        if not training:
            return x
        # Colour operations need RGB; other channel counts get crop/flip only.
        if x.shape[-1] != 3:
            return x
        if self.jitter:
            jittered = x
            for layer in self.jitter:
                jittered = layer(jittered, training=True)
            if self.jitter_probability < 1:
                coin = keras.random.uniform((ops.shape(x)[0], 1, 1, 1), seed=self.apply_generator)
                jittered = ops.where(coin < self.jitter_probability, jittered, x)
            x = jittered
        if self.grayscale is not None:
            x = self.grayscale(x, training=True)
        if self.blur is not None:
            x = self.blur(x, training=True)
        return ops.clip(x, 0.0, 1.0)

    def save_own_variables(self, store):
        # The random streams live in seed generators, which Keras does not
        # save; saving them makes a loaded or resumed model draw the same
        # views as the original would have.
        for i, state in enumerate(self.non_trainable_variables):
            store[f"seed_state_{i}"] = state

    def load_own_variables(self, store):
        keys = set(store.keys())
        for i, state in enumerate(self.non_trainable_variables):
            if f"seed_state_{i}" in keys:
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


def make_augmentation(augmentation, image_shape, seed=None):
    """The augmentation layer `SimCLR` uses, from its `augmentation` argument.

    Args:
        augmentation: None (the SimCLR defaults), a dict of
            `SimCLRAugmentation` arguments or any Keras layer.
        image_shape: `(H, W, C)` of the views.
        seed: Seed for a `SimCLRAugmentation` that names none.

    Returns:
        A Keras layer.
    """
    height, width = image_shape[:2]
    if augmentation is None:
        return SimCLRAugmentation(height, width, seed=seed, name="augmentation")
    if isinstance(augmentation, dict):
        params = dict(augmentation)
        params.setdefault("seed", seed)
        return SimCLRAugmentation(height, width, name="augmentation", **params)
    if isinstance(augmentation, keras.layers.Layer):
        return augmentation
    raise TypeError(
        "`augmentation` must be None, a dict of SimCLRAugmentation "
        "arguments or a Keras layer. Received: augmentation of type "
        f"{type(augmentation).__name__}"
    )
