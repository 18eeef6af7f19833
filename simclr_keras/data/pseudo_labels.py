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


def build_denoising_autoencoder(
    input_shape, filters=(32, 64, 128), noise_std=0.01, learning_rate=1e-3, seed=None
):
    """G-SimCLR's convolutional denoising autoencoder.

    Encoder: Gaussian input noise (training only), then per entry of
    `filters` a block conv 3x3 - BatchNorm - ReLU - max-pool 2x2. Decoder,
    mirrored: per block (deepest first) 2x upsampling - conv 3x3 - BatchNorm
    - ReLU, then a 3x3 sigmoid conv back to `C` channels. MSE loss, Adam.
    This is the "shallow" autoencoder of the G-SimCLR code
    (`Imagenet_Subset/Autoencoder/Shallow_Autoencoder.ipynb`: filters
    32/64/128, `GaussianNoise(stddev=1e-2)`, encoder output taken at the
    last max-pool, named `retrieval` there). The notebook trains with Adam
    1e-4 for up to 100 epochs with early stopping on the test split; the
    default here is 1e-3 for a shorter run and no look at any test split.

    Args:
        input_shape: `(H, W, C)`; H and W divisible by `2 ** len(filters)`.
        filters: Channels of the encoder blocks.
        noise_std: Standard deviation of the input noise (images in [0, 1]).
        learning_rate: Adam learning rate.
        seed: Integer seed for the weights and the noise.

    Returns:
        `(autoencoder, encoder)`: compiled `keras.Model`s; the encoder maps
        clean images to the latent feature map `(H / 2**L, W / 2**L, filters[-1])`.

    Example:
    >>> ae, enc = build_denoising_autoencoder((16, 16, 1))
    >>> enc.output.shape
    (None, 2, 2, 128)

    Reference:
        Chakraborty, Gosthipaty, Paul, "G-SimCLR: Self-Supervised
        Contrastive Learning with Guided Projection via Pseudo Labelling",
        ICDM Workshops 2020, arXiv:2009.12007, section III-A;
        Vincent, Larochelle, Bengio, Manzagol, "Extracting and Composing
        Robust Features with Denoising Autoencoders", ICML 2008.
    """
    stride = 2 ** len(filters)
    if input_shape[0] % stride or input_shape[1] % stride:
        raise ValueError(
            f"Image height and width must be multiples of {stride} (the "
            f"encoder's stride). Received: input_shape={tuple(input_shape)}"
        )

    def conv(x, f, i, name, activation=None):
        init = keras.initializers.GlorotUniform(seed=None if seed is None else seed + i)
        return keras.layers.Conv2D(
            f, 3, padding="same", activation=activation, kernel_initializer=init, name=name
        )(x)

    inputs = keras.Input(tuple(input_shape))
    x = keras.layers.GaussianNoise(noise_std, seed=seed)(inputs)
    for i, f in enumerate(filters):
        x = conv(x, f, i, f"encoder_conv{i}")
        x = keras.layers.BatchNormalization(name=f"encoder_bn{i}")(x)
        x = keras.layers.ReLU()(x)
        x = keras.layers.MaxPooling2D(2, name=f"encoder_pool{i}")(x)
    latent = x
    for i, f in enumerate(filters[::-1]):
        x = keras.layers.UpSampling2D(2)(x)
        x = conv(x, f, 100 + i, f"decoder_conv{i}")
        x = keras.layers.BatchNormalization(name=f"decoder_bn{i}")(x)
        x = keras.layers.ReLU()(x)
    x = conv(x, input_shape[-1], 200, "decoder_output", activation="sigmoid")
    autoencoder = keras.Model(inputs, x, name="denoising_autoencoder")
    autoencoder.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="mse")
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
    n_clusters=None,
    *,
    epochs=10,
    batch_size=64,
    noise_std=0.01,
    filters=(32, 64, 128),
    learning_rate=1e-3,
    n_init=10,
    seed=None,
    return_autoencoder=False,
    return_info=False,
    verbose=1,
):
    """Cluster images with G-SimCLR's denoising autoencoder and k-means.

    Trains `build_denoising_autoencoder` on the images (edge-padded to a
    multiple of its stride), global-average-pools the encoder's output on
    the clean images (one `filters[-1]`-vector per image, as the G-SimCLR
    notebook does; flattening would give `H W / 4**L` times more
    dimensions, mostly position, which k-means handles poorly) and runs
    k-means on those vectors.

    G-SimCLR sets the number of clusters to the SimCLR batch size, so that a
    batch can hold one image per pseudo-class; that is the default here
    when `images` is a `DataGeneratorSimCLR`. With `k` well below the batch
    size `B` every batch must hold about `B / k` images of each
    pseudo-class, and guided batches stay about as random (the generator
    warns when such labels are set).

    Args:
        images: uint8 [0, 255] or float [0, 1] array `(N, H, W[, C])`, or a
            `DataGeneratorSimCLR` (its `load_all()` images).
        n_clusters: Number of pseudo-labels `k` (2 to N); None: the
            generator's batch size (required for arrays).
        epochs: Autoencoder training epochs.
        batch_size: Autoencoder batch size (not the SimCLR one).
        noise_std: Gaussian input noise of the denoising autoencoder.
        filters: Channels of the encoder blocks.
        learning_rate: Adam learning rate of the autoencoder.
        n_init: k-means restarts.
        seed: Integer seed (weights, noise, batch order, k-means).
        return_autoencoder: Also return the trained autoencoder.
        return_info: Also return a dict: `n_clusters`, `features` (the
            pooled encoder output), `reconstruction_mse` (last epoch's loss),
            `cluster_sizes`, `seconds`.
        verbose: Keras progress bars while training (0 silent).

    Returns:
        int64 labels `(N,)` in [0, k); with `return_autoencoder` and/or
        `return_info`, a tuple `(labels, autoencoder, info)` of those asked for.

    Example:
    >>> gen.pseudo_labels = pseudo_labels(gen, epochs=5)   # doctest: +SKIP
    >>> gen.batch_stats()["same_label_share"]              # doctest: +SKIP

    Reference:
        Chakraborty, Gosthipaty, Paul, "G-SimCLR: Self-Supervised
        Contrastive Learning with Guided Projection via Pseudo Labelling",
        ICDM Workshops 2020, arXiv:2009.12007.
    """
    import time

    from sklearn.cluster import KMeans

    simclr_batch = getattr(images, "batch_size", None) if hasattr(images, "load_all") else None
    if n_clusters is None:
        if simclr_batch is None:
            raise ValueError(
                "`n_clusters` must be given for an array of images (G-SimCLR uses "
                "the SimCLR batch size); it defaults to the batch size only for a "
                "DataGeneratorSimCLR. Received: n_clusters=None"
            )
        n_clusters = int(simclr_batch)
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
    start = time.time()
    x = _pad_to_multiple(x, 2 ** len(filters))
    autoencoder, encoder = build_denoising_autoencoder(
        x.shape[1:], filters, noise_std, learning_rate, seed
    )
    history = autoencoder.fit(_Pairs(x, int(batch_size), seed), epochs=int(epochs), verbose=verbose)
    latent = encoder.predict(x, batch_size=int(batch_size), verbose=0)
    features = np.asarray(latent).mean(axis=(1, 2))
    kmeans = KMeans(n_clusters=int(n_clusters), n_init=n_init, random_state=seed)
    labels = kmeans.fit_predict(features).astype(np.int64)
    info = {
        "n_clusters": int(n_clusters),
        "features": features,
        "reconstruction_mse": float(history.history["loss"][-1]),
        "cluster_sizes": np.bincount(labels, minlength=int(n_clusters)).tolist(),
        "seconds": time.time() - start,
    }
    out = (
        (labels,)
        + ((autoencoder,) if return_autoencoder else ())
        + ((info,) if return_info else ())
    )
    return out[0] if len(out) == 1 else out
