"""Keras layers of the SimCLR model: augmentation, crop, input scaling, head, similarity."""

from simclr_keras.layers.augmentation import SimCLRAugmentation
from simclr_keras.layers.color_jitter import ColorJitter
from simclr_keras.layers.input_scaling import ImagePreprocess, apply_preprocessing
from simclr_keras.layers.projection_head import build_projection_head
from simclr_keras.layers.random_resized_crop import RandomResizedCrop
from simclr_keras.layers.similarity import SoftmaxCosineSim

__all__ = [
    "ColorJitter",
    "ImagePreprocess",
    "RandomResizedCrop",
    "SimCLRAugmentation",
    "SoftmaxCosineSim",
    "apply_preprocessing",
    "build_projection_head",
]
