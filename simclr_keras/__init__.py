"""simclr_keras: SimCLR self-supervised training for any Keras 3 backbone.

Wrap a backbone, fit on unlabelled images, evaluate. The names here are the
ones a user needs; lower-level pieces live in the subpackages `layers`,
`backbones`, `data`, `training` and `evaluation`, and the loss functions in
`losses`.

Example:
>>> import numpy as np
>>> from simclr_keras import SimCLR, small_cnn
>>> simclr = SimCLR(small_cnn((16, 16, 3)), (16, 16, 3), batch_size=8,
...                 feat_dims_ph=[32, 16], num_of_unfrozen_layers=None)
>>> simclr.fit(np.zeros((16, 16, 16, 3), "uint8"), epochs=1, verbose=0)  # doctest: +SKIP
"""

import importlib
import os
import sys

# Public name -> the module that defines it. `import simclr_keras` imports
# them all (and so registers every Keras class for `.keras` loading), except
# in the `simclr-keras` command, which quiets the backend's start-up log
# first and imports what it needs itself: there names load on first use.
_PUBLIC = {
    "BackboneGuard": "simclr_keras.training",
    "DataGeneratorSimCLR": "simclr_keras.data",
    "GradualUnfreeze": "simclr_keras.training",
    "KNNMonitor": "simclr_keras.training",
    "NaNLossError": "simclr_keras.training",
    "LARS": "simclr_keras.optimizers",
    "SimCLR": "simclr_keras.model",
    "WarmupCosine": "simclr_keras.recipe",
    "SimCLRAugmentation": "simclr_keras.layers",
    "SoftmaxCosineSim": "simclr_keras.layers",
    "StopOnNaN": "simclr_keras.training",
    "compare_backbones": "simclr_keras.evaluation",
    "data_parallel": "simclr_keras.training",
    "extract_features": "simclr_keras.evaluation",
    "finetune_evaluation": "simclr_keras.evaluation",
    "fit_in_rounds": "simclr_keras.training",
    "get_backbone": "simclr_keras.backbones",
    "linear_evaluation": "simclr_keras.evaluation",
    "nt_xent": "simclr_keras.losses",
    "plot_history": "simclr_keras.evaluation",
    "plot_tsne": "simclr_keras.evaluation",
    "plot_tsne_pair": "simclr_keras.evaluation",
    "pseudo_labels": "simclr_keras.data",
    "resnet18": "simclr_keras.backbones",
    "save_augmentation_preview": "simclr_keras.evaluation",
    "small_cnn": "simclr_keras.backbones",
    "snapshot_backbone": "simclr_keras.backbones",
}


_SUBMODULES = {
    "backbones",
    "data",
    "evaluation",
    "layers",
    "losses",
    "model",
    "optimizers",
    "recipe",
    "training",
}


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"simclr_keras.{name}")
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'simclr_keras' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_PUBLIC))


__version__ = "0.2.0"

__all__ = [
    "BackboneGuard",
    "DataGeneratorSimCLR",
    "GradualUnfreeze",
    "KNNMonitor",
    "LARS",
    "NaNLossError",
    "SimCLR",
    "SimCLRAugmentation",
    "SoftmaxCosineSim",
    "StopOnNaN",
    "WarmupCosine",
    "compare_backbones",
    "data_parallel",
    "extract_features",
    "finetune_evaluation",
    "fit_in_rounds",
    "get_backbone",
    "linear_evaluation",
    "nt_xent",
    "plot_history",
    "plot_tsne",
    "plot_tsne_pair",
    "pseudo_labels",
    "resnet18",
    "save_augmentation_preview",
    "small_cnn",
    "snapshot_backbone",
]


def _started_as_cli():
    """True in the `simclr-keras` command (console script or `python -m simclr_keras.cli`)."""
    first = sys.argv[0] if sys.argv else ""
    # While `python -m` locates its module, sys.argv[0] is "-m".
    return first == "-m" or os.path.basename(first) in ("simclr-keras", "simclr-keras.exe")


if not _started_as_cli():
    for _name in _PUBLIC:
        __getattr__(_name)
    del _name
