"""simclr_keras: SimCLR self-supervised training for any Keras 3 backbone."""

from simclr_keras.augment import SimCLRAugmentation
from simclr_keras.crop import RandomResizedCrop
from simclr_keras.backbone import weighted_layers
from simclr_keras.data import DataGeneratorSimCLR
from simclr_keras.layers import SoftmaxCosineSim, build_projection_head
from simclr_keras.losses import (
    IOIOCrossEntropy,
    contrastive_accuracy,
    contrastive_logits,
    ioio_target,
    nt_xent,
)
from simclr_keras.model import SimCLR

__version__ = "0.1.0"

__all__ = [
    "DataGeneratorSimCLR",
    "IOIOCrossEntropy",
    "RandomResizedCrop",
    "SimCLR",
    "SimCLRAugmentation",
    "SoftmaxCosineSim",
    "build_projection_head",
    "contrastive_accuracy",
    "contrastive_logits",
    "ioio_target",
    "nt_xent",
    "weighted_layers",
]
