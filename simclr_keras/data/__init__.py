"""Data: `DataGeneratorSimCLR` (arrays, folders, file lists, DataFrames), image
decoding, G-SimCLR guided batch order and pseudo-labels.
"""

from simclr_keras.data.generator import DataGeneratorSimCLR
from simclr_keras.data.guided import batch_stats, guided_batches
from simclr_keras.data.pseudo_labels import build_denoising_autoencoder, pseudo_labels

__all__ = [
    "DataGeneratorSimCLR",
    "batch_stats",
    "build_denoising_autoencoder",
    "guided_batches",
    "pseudo_labels",
]
