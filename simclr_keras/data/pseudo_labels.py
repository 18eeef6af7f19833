"""Pseudo-labels for guided batches: G-SimCLR's denoising autoencoder
(`pseudo_labels`), any other encoder (`encoder_pseudo_labels`: a pretrained
backbone, the SimCLR model itself), k-means on feature vectors, and how well
the clusters follow the true classes. Re-clustering the model's own features
while it trains is the callback `simclr_keras.callbacks.ReclusterPseudoLabels`.
"""

import math
import time
import warnings

import keras
import numpy as np

from simclr_keras._checks import (
    check_features,
    check_int,
    check_labels,
    check_number,
    check_seed,
)
from simclr_keras._images import check_images, to_unit_range_np


def cluster_quality(pseudo_labels, classes):
    """How well pseudo-labels follow the true classes: ARI, NMI and purity.

    Purity is the share of images whose cluster's most common class is
    their own: `sum_c max_y |c & y| / N`. It is 1 for a perfect clustering
    and grows with the number of clusters (one image per cluster scores 1),
    so compare purities at equal `k`; the adjusted Rand index is 0 for
    random labels whatever `k` and 1 for the classes themselves.

    Args:
        pseudo_labels: Integer cluster id per image.
        classes: Integer true class per image (same length).

    Returns:
        A dict: `ari` (adjusted Rand index), `nmi` (normalised mutual
        information), `purity`, `n_clusters`.

    Example:
    >>> q = cluster_quality([0, 0, 1, 1, 2, 2], [0, 0, 1, 1, 1, 1])
    >>> round(q["ari"], 3), q["purity"]
    (0.444, 1.0)

    Reference:
        Hubert, Arabie, "Comparing Partitions", Journal of Classification
        1985 (adjusted Rand index); Manning, Raghavan, Schuetze,
        "Introduction to Information Retrieval", 2008, section 16.3 (purity).
    """
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    clusters = np.asarray(pseudo_labels).reshape(-1)
    truth = check_labels(classes, len(clusters), "classes")
    clusters = check_labels(clusters, len(clusters), "pseudo_labels")
    _, cluster_ids = np.unique(clusters, return_inverse=True)
    _, class_ids = np.unique(truth, return_inverse=True)
    table = np.zeros((cluster_ids.max() + 1, class_ids.max() + 1), np.int64)
    np.add.at(table, (cluster_ids, class_ids), 1)
    return {
        "ari": float(adjusted_rand_score(truth, clusters)),
        "nmi": float(normalized_mutual_info_score(truth, clusters)),
        "purity": float(table.max(axis=1).sum() / len(clusters)),
        "n_clusters": int(table.shape[0]),
    }


def format_quality(quality):
    """One line: `ARI 0.123, NMI 0.234, purity 0.567 (k=64)`."""
    return (
        f"ARI {quality['ari']:.3f}, NMI {quality['nmi']:.3f}, "
        f"purity {quality['purity']:.3f} (k={quality['n_clusters']})"
    )


def cluster_features(
    features,
    n_clusters,
    *,
    classes=None,
    normalize=True,
    n_init=10,
    seed=None,
    verbose=1,
    return_info=False,
):
    """k-means pseudo-labels of feature vectors, with their quality printed.

    Args:
        features: `(N, d)` array, one feature vector per image.
        n_clusters: Number of pseudo-labels `k` (2 to N). G-SimCLR uses
            the SimCLR batch size.
        classes: Optional true class per image, used only to score the
            clusters (`cluster_quality`), never to form them.
        normalize: Scale each vector to unit length first, so k-means groups
            by cosine similarity, the similarity SimCLR trains and probes with.
        n_init: k-means restarts (the best inertia is kept).
        seed: Integer seed of k-means.
        verbose: 1 prints one line (k, sizes, and the quality when
            `classes` is given); 0 is silent.
        return_info: Also return a dict: `n_clusters`, `cluster_sizes`,
            `quality` (None without `classes`), `seconds`.

    Returns:
        int64 labels `(N,)` in [0, k), or `(labels, info)` with `return_info`.

    Example:
    >>> feats = np.r_[np.random.default_rng(0).normal(size=(20, 4)) + 5,
    ...               np.random.default_rng(1).normal(size=(20, 4)) - 5]
    >>> labels = cluster_features(feats, 2, classes=[0] * 20 + [1] * 20, seed=0)
    k-means k=2 on 40 x 4 features: ARI 1.000, NMI 1.000, purity 1.000 (k=2)
    """
    from sklearn.cluster import KMeans

    x = check_features(features).astype(np.float64)
    check_int(n_clusters, "n_clusters", minimum=2, maximum=len(x), why="(the number of images)")
    check_int(n_init, "n_init", minimum=1)
    check_seed(seed)
    if classes is not None:
        classes = check_labels(classes, len(x), "classes")
    start = time.time()
    if normalize:
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    distinct = len(np.unique(x, axis=0))
    if distinct == 1:
        raise ValueError(
            "`features` are the same for every image, so k-means has nothing to "
            "cluster; the encoder may not suit the images (e.g. inputs too small for "
            f"its stride give constant outputs). Received: {len(x)} identical rows"
            + (", all zero" if not np.any(x) else "")
        )
    if distinct < n_clusters:
        warnings.warn(
            f"`features` have only {distinct} distinct rows, fewer than "
            f"n_clusters={n_clusters}: some pseudo-labels will be empty or arbitrary.",
            stacklevel=2,
        )
    kmeans = KMeans(n_clusters=int(n_clusters), n_init=int(n_init), random_state=seed)
    labels = kmeans.fit_predict(x).astype(np.int64)
    quality = None if classes is None else cluster_quality(labels, classes)
    if verbose:
        line = f"k-means k={int(n_clusters)} on {x.shape[0]} x {x.shape[1]} features"
        print(line + (f": {format_quality(quality)}" if quality else ""), flush=True)
    if not return_info:
        return labels
    return labels, {
        "n_clusters": int(n_clusters),
        "cluster_sizes": np.bincount(labels, minlength=int(n_clusters)).tolist(),
        "quality": quality,
        "seconds": time.time() - start,
    }


def default_clusters(images):
    """The SimCLR batch size of a generator (G-SimCLR's `k`); arrays must give `k`."""
    simclr_batch = getattr(images, "batch_size", None) if hasattr(images, "load_all") else None
    if simclr_batch is None:
        raise ValueError(
            "`n_clusters` must be given for an array of images (G-SimCLR uses "
            "the SimCLR batch size); it defaults to the batch size only for a "
            "DataGeneratorSimCLR. Received: n_clusters=None"
        )
    return int(simclr_batch)


def to_unit_float(images):
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
    classes=None,
    normalize=False,
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
        classes: Optional true class per image, only to print and return
            the clusters' quality (`cluster_quality`); a generator's labels
            are used when None.
        normalize: k-means on unit-length features (False: on the pooled
            features as they are, as the G-SimCLR notebook does).
        return_autoencoder: Also return the trained autoencoder.
        return_info: Also return a dict: `n_clusters`, `features` (the
            pooled encoder output), `reconstruction_mse` (last epoch's loss),
            `cluster_sizes`, `quality` (None without classes), `seconds`.
        verbose: Keras progress bars while training and the clustering
            line (0 silent).

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
    if n_clusters is None:
        n_clusters = default_clusters(images)
    if classes is None and hasattr(images, "load_all"):
        classes = getattr(images, "labels", None)
    x = to_unit_float(images)
    check_int(n_clusters, "n_clusters", minimum=2, maximum=len(x), why="(the number of images)")
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
    labels, info = cluster_features(
        features,
        n_clusters,
        classes=classes,
        normalize=normalize,
        n_init=n_init,
        seed=seed,
        verbose=verbose,
        return_info=True,
    )
    info.update(
        features=features,
        reconstruction_mse=float(history.history["loss"][-1]),
        seconds=time.time() - start,
    )
    out = (
        (labels,)
        + ((autoencoder,) if return_autoencoder else ())
        + ((info,) if return_info else ())
    )
    return out[0] if len(out) == 1 else out


def encoder_pseudo_labels(
    encoder,
    images,
    n_clusters=None,
    *,
    classes=None,
    depth="P3",
    preprocessing=None,
    image_size=None,
    normalize=True,
    batch_size=256,
    n_init=10,
    seed=None,
    verbose=1,
    return_info=False,
):
    """Pseudo-labels from any encoder: k-means on its features of the images.

    G-SimCLR clusters the features of an autoencoder trained on the images
    themselves (`pseudo_labels`); any encoder whose features follow the
    image content serves as well or better: a pretrained backbone (an
    ImageNet model, with its `preprocessing`), or the SimCLR model being
    trained (`depth="P3"`, its pooled backbone), re-clustered as it learns
    (`ReclusterPseudoLabels`).

    Args:
        encoder: A Keras backbone or `SimCLR` model (features by
            `extract_features`, 4-D outputs average-pooled), or any callable
            mapping the float [0, 1] image array to an `(N, d)` array.
        images: uint8 [0, 255] or float [0, 1] array `(N, H, W[, C])`, or a
            `DataGeneratorSimCLR` (its `load_all()` images; its labels are
            used as `classes` when `classes` is None).
        n_clusters: `k`; None: the generator's batch size (G-SimCLR's
            choice), required for arrays.
        classes: Optional true class per image, only to print and return
            the clusters' quality.
        depth: `extract_features` depth (`"P3"`, `"P2"`, `"P1"`, a layer name).
        preprocessing: Input scaling of a plain Keras backbone (see
            `simclr_keras.layers.input_scaling`), e.g. a pretrained model's.
        image_size: `(H, W)` a plain Keras backbone takes (images are resized).
        normalize: k-means on unit-length features (cosine).
        batch_size: Images per forward pass.
        n_init: k-means restarts.
        seed: Integer seed of k-means.
        verbose: 1 prints the clustering line (and Keras' progress bar is off).
        return_info: Also return the `cluster_features` info dict, with the
            `features` added.

    Returns:
        int64 labels `(N,)`, or `(labels, info)` with `return_info`.

    Example:
    >>> from simclr_keras.backbones import small_cnn
    >>> images = np.random.default_rng(0).integers(0, 256, (12, 8, 8, 3), np.uint8)
    >>> labels = encoder_pseudo_labels(small_cnn((8, 8, 3)), images, 3, seed=0, verbose=0)
    >>> labels.shape
    (12,)

    Reference:
        Chakraborty, Gosthipaty, Paul, "G-SimCLR: Self-Supervised
        Contrastive Learning with Guided Projection via Pseudo Labelling",
        ICDM Workshops 2020, arXiv:2009.12007 (pseudo-labels from an
        encoder's features by k-means).
    """
    if n_clusters is None:
        n_clusters = default_clusters(images)
    if classes is None and hasattr(images, "load_all"):
        classes = getattr(images, "labels", None)
    x = images.load_all()[0] if hasattr(images, "load_all") else images
    start = time.time()
    if isinstance(encoder, keras.Model):
        # Imported here: feature extraction reads a SimCLR model's depths, and
        # the model itself imports this package (its data generator).
        from simclr_keras.evaluation.features import extract_features

        features = extract_features(
            encoder,
            x,
            depth,
            batch_size=batch_size,
            preprocessing=preprocessing,
            image_size=image_size,
            verbose=0,
        )
    elif callable(encoder):
        features = np.asarray(encoder(to_unit_float(x)))
        if features.ndim > 2:  # a feature map: average-pool it
            features = features.mean(axis=tuple(range(1, features.ndim - 1)))
    else:
        raise TypeError(
            "`encoder` must be a Keras model or a callable mapping images to features. "
            f"Received: encoder of type {type(encoder).__name__}"
        )
    if len(features) != len(x):
        raise ValueError(
            f"`encoder` must return one feature vector per image ({len(x)}). "
            f"Received: features of shape {np.shape(features)}"
        )
    seconds = time.time() - start
    labels, info = cluster_features(
        features,
        n_clusters,
        classes=classes,
        normalize=normalize,
        n_init=n_init,
        seed=seed,
        verbose=verbose,
        return_info=True,
    )
    info.update(features=features, seconds=info["seconds"] + seconds)
    return (labels, info) if return_info else labels
