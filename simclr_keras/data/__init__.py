"""Data: `DataGeneratorSimCLR` (arrays, folders, file lists, DataFrames), image
decoding, G-SimCLR guided batch order, pseudo-labels (autoencoder or any encoder,
k-means) and their quality, and the train/test split of
one labelled folder.
"""

from simclr_keras.data.generator import DataGeneratorSimCLR
from simclr_keras.data.guided import batch_stats, guided_batches
from simclr_keras.data.loading import load_labelled_files, load_split
from simclr_keras.data.pseudo_labels import (
    build_denoising_autoencoder,
    cluster_features,
    cluster_quality,
    encoder_pseudo_labels,
    pseudo_labels,
)
from simclr_keras.data.split import split_directory

__all__ = [
    "DataGeneratorSimCLR",
    "batch_stats",
    "build_denoising_autoencoder",
    "cluster_features",
    "cluster_quality",
    "encoder_pseudo_labels",
    "guided_batches",
    "load_labelled_files",
    "load_split",
    "pseudo_labels",
    "split_directory",
]
