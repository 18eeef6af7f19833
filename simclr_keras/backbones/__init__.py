"""Backbones: a small zoo (small CNN, ResNet-18, `keras.applications` by name),
and the tools that count, freeze and copy a backbone's weighted layers.
"""

from simclr_keras.backbones.freezing import (
    set_unfrozen_layers,
    snapshot_backbone,
    weighted_layers,
)
from simclr_keras.backbones.zoo import get_backbone, resnet18, small_cnn

__all__ = [
    "get_backbone",
    "resnet18",
    "set_unfrozen_layers",
    "small_cnn",
    "snapshot_backbone",
    "weighted_layers",
]
