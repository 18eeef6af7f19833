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

from simclr_keras.backbones import get_backbone, resnet18, small_cnn, snapshot_backbone
from simclr_keras.data import DataGeneratorSimCLR, pseudo_labels
from simclr_keras.evaluation import (
    compare_backbones,
    extract_features,
    finetune_evaluation,
    linear_evaluation,
    plot_history,
    plot_tsne,
    plot_tsne_pair,
    save_augmentation_preview,
)
from simclr_keras.layers import SimCLRAugmentation, SoftmaxCosineSim
from simclr_keras.losses import nt_xent
from simclr_keras.model import SimCLR
from simclr_keras.optimizers import LARS
from simclr_keras.recipe import WarmupCosine
from simclr_keras.training import (
    GradualUnfreeze,
    KNNMonitor,
    NaNLossError,
    StopOnNaN,
    data_parallel,
    fit_in_rounds,
)

__version__ = "0.2.0"

__all__ = [
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
