"""Backbones: a small zoo (small CNN, ResNet-18, EfficientNet-Lite0 with a converter
for its ImageNet weights, `keras.applications` by name), keras-hub presets, what a
backbone outputs and how it is pooled, where it can be cut for fine-tuning, and the tools that count, freeze and copy a
backbone's weighted layers.
"""

from simclr_keras.backbones.efficientnet_lite import efficientnet_lite0
from simclr_keras.backbones.freezing import (
    set_unfrozen_layers,
    snapshot_backbone,
    weighted_layers,
)
from simclr_keras.backbones.hub import load_preset, preset_preprocessing
from simclr_keras.backbones.spec import describe_backbone
from simclr_keras.backbones.split import BackboneSplit, split_backbone
from simclr_keras.backbones.zoo import get_backbone, resnet18, small_cnn

__all__ = [
    "BackboneSplit",
    "describe_backbone",
    "efficientnet_lite0",
    "get_backbone",
    "load_preset",
    "preset_preprocessing",
    "resnet18",
    "set_unfrozen_layers",
    "small_cnn",
    "snapshot_backbone",
    "split_backbone",
    "weighted_layers",
]
