"""Pseudo-labels for guided batches: denoising autoencoder features + k-means."""

import math

import keras
import numpy as np

from simclr_keras._checks import check_int, check_number, check_seed
from simclr_keras._images import check_images, to_unit_range_np


def _to_unit_float(images):
    """Images (array or generator) as float32 `(N, H, W, C)` in [0, 1]."""
    if hasattr(images, "load_all"):
        images = images.load_all()[0]
    return to_unit_range_np(check_images(images))


def _pad_to_multiple(images, multiple):
    """Edge-pad height and width up to a multiple of the encoder's stride."""
    h, w = images.shape[1:3]
    pad_h, pad_w = -h % multiple, -w % multiple
    if not pad_h and not pad_w:
        return images
    return np.pad(images, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")


def build_denoising_autoencoder(input_shape, filters=(32, 64), noise_std=0.1, seed=None):
    """A small convolutional denoising autoencoder.

    Gaussian noise on the input (training only), stride-2 conv encoder,
    mirrored `Conv2DTranspose` decoder, sigmoid output, MSE loss.

    Args:
        input_shape: `(H, W, C)`; H and W divisible by `2 ** len(filters)`.
        filters: Channels of the encoder's stride-2 conv layers.
        noise_std: Standard deviation of the input noise (images in [0, 1]).
        seed: Integer seed for the weights and the noise.

    Returns:
        `(autoencoder, encoder)`: compiled `keras.Model`s; the encoder maps
        clean images to the latent feature map.

    Example:
    >>> ae, enc = build_denoising_autoencoder((16, 16, 1))
    >>> enc.output.shape
    (None, 4, 4, 64)

    Reference:
        Vincent, Larochelle, Bengio, Manzagol, "Extracting and Composing
        Robust Features with Denoising Autoencoders", ICML 2008.
    """
    stride = 2 ** len(filters)
    if input_shape[0] % stride or input_shape[1] % stride:
        raise ValueError(
            f"Image height and width must be multiples of {stride} (the "
            f"encoder's stride). Received: input_shape={tuple(input_shape)}"
        )

    def init(i):
        return keras.initializers.GlorotUniform(seed=None if seed is None else seed + i)

    inputs = keras.Input(tuple(input_shape))
    x = keras.layers.GaussianNoise(noise_std, seed=seed)(inputs)
    for i, f in enumerate(filters):
        x = keras.layers.Conv2D(
            f,
            3,
            strides=2,
            padding="same",
            activation="relu",
            kernel_initializer=init(i),
            name=f"encoder_conv{i}",
        )(x)
    latent = x
    for i, f in enumerate(list(filters[::-1][1:]) + [input_shape[-1]]):
        last = i == len(filters) - 1
        x = keras.layers.Conv2DTranspose(
            f,
            3,
            strides=2,
            padding="same",
            activation="sigmoid" if last else "relu",
            kernel_initializer=init(100 + i),
            name=f"decoder_deconv{i}",
        )(x)
    autoencoder = keras.Model(inputs, x, name="denoising_autoencoder")
    autoencoder.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    encoder = keras.Model(inputs, latent, name="denoising_encoder")
    return autoencoder, encoder


class _Pairs(keras.utils.PyDataset):
    """(noisy-input, clean-target) batches in a seeded order per epoch."""

    def __init__(self, images, batch_size, seed):
        super().__init__()
        self.images, self.batch_size = images, batch_size
        self._rng = np.random.default_rng(seed)
        self.on_epoch_end()

    def __len__(self):
        return math.ceil(len(self.images) / self.batch_size)

    def __getitem__(self, index):
        batch = self.images[self._order[index * self.batch_size : (index + 1) * self.batch_size]]
        return batch, batch

    def on_epoch_end(self):
        self._order = self._rng.permutation(len(self.images))


def pseudo_labels(
    images,
    n_clusters,
    *,
    epochs=10,
    batch_size=64,
    noise_std=0.1,
    filters=(32, 64),
    n_init=10,
    seed=None,
    return_autoencoder=False,
    verbose=1,
):
    """Cluster images with a denoising autoencoder and k-means.

    Trains `build_denoising_autoencoder` on the images (edge-padded to a
    multiple of its stride), global-average-pools the latent map of the
    clean images, standardises the features and runs k-means on them.

    Args:
        images: uint8 [0, 255] or float [0, 1] array `(N, H, W[, C])`, or a
            `DataGeneratorSimCLR` (its `load_all()` images).
        n_clusters: Number of pseudo-labels `k` (2 to N).
        epochs: Autoencoder training epochs.
        batch_size: Autoencoder batch size.
        noise_std: Gaussian input noise of the denoising autoencoder.
        filters: Channels of the encoder's stride-2 conv layers.
        n_init: k-means restarts.
        seed: Integer seed (weights, noise, batch order, k-means).
        return_autoencoder: Also return the trained autoencoder.
        verbose: Keras progress bars while training (0 silent).

    Returns:
        int64 labels `(N,)` in [0, k), or `(labels, autoencoder)`.

    Example:
    >>> labels = pseudo_labels(gen, n_clusters=10, epochs=5)   # doctest: +SKIP
    >>> gen.pseudo_labels = labels                             # doctest: +SKIP

    Reference:
        Chakraborty, Gosthipaty, Paul, "G-SimCLR: Self-Supervised
        Contrastive Learning with Guided Projection via Pseudo Labelling",
        ICDM Workshops 2020, arXiv:2009.12007.
    """
    from sklearn.cluster import KMeans

    x = _to_unit_float(images)
    if (
        isinstance(n_clusters, bool)
        or not isinstance(n_clusters, (int, np.integer))
        or not 2 <= n_clusters <= len(x)
    ):
        raise ValueError(
            f"`n_clusters` must be an int from 2 to the number of images ({len(x)}). "
            f"Received: n_clusters={n_clusters!r}"
        )
    check_int(epochs, "epochs", minimum=1)
    check_int(batch_size, "batch_size", minimum=1)
    check_number(noise_std, "noise_std", minimum=0)
    check_seed(seed)
    x = _pad_to_multiple(x, 2 ** len(filters))
    autoencoder, encoder = build_denoising_autoencoder(x.shape[1:], filters, noise_std, seed)
    autoencoder.fit(_Pairs(x, int(batch_size), seed), epochs=int(epochs), verbose=verbose)
    latent = encoder.predict(x, batch_size=int(batch_size), verbose=0)
    features = np.asarray(latent).mean(axis=(1, 2))
    features = (features - features.mean(0)) / (features.std(0) + 1e-8)
    kmeans = KMeans(n_clusters=int(n_clusters), n_init=n_init, random_state=seed)
    labels = kmeans.fit_predict(features).astype(np.int64)
    return (labels, autoencoder) if return_autoencoder else labels
