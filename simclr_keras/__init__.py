"""simclr_keras: SimCLR self-supervised training for any Keras 3 backbone.

Wrap a backbone, fit on unlabelled images, evaluate:

>>> simclr = SimCLR(backbone, (96, 96, 3), batch_size=64,
...                 feat_dims_ph=[512, 128], num_of_unfrozen_layers=None)
>>> simclr.fit(DataGeneratorSimCLR.from_directory("photos", (96, 96), 64))
>>> features = simclr.base_model.predict(images)
"""

from simclr_keras.augment import SimCLRAugmentation
from simclr_keras.backbone import (
    set_unfrozen_layers,
    snapshot_backbone,
    weighted_layers,
)
from simclr_keras.backbones import get_backbone, resnet18, small_cnn
from simclr_keras.callbacks import NaNLossError, StopOnNaN
from simclr_keras.checkpoint import ResumableCheckpoint, fit_with_resume, resume_state
from simclr_keras.compare import compare_backbones
from simclr_keras.crop import RandomResizedCrop
from simclr_keras.data import DataGeneratorSimCLR
from simclr_keras.distribution import data_parallel
from simclr_keras.evaluation import (
    linear_evaluation,
    pixel_features,
    stratified_fraction,
)
from simclr_keras.features import extract_features
from simclr_keras.finetune import finetune_evaluation
from simclr_keras.guided import batch_stats, guided_batches
from simclr_keras.layers import SoftmaxCosineSim, build_projection_head
from simclr_keras.losses import (
    IOIOCrossEntropy,
    contrastive_accuracy,
    contrastive_logits,
    ioio_target,
    nt_xent,
)
from simclr_keras.model import SimCLR
from simclr_keras.monitor import KNNMonitor, knn_accuracy
from simclr_keras.plots import plot_history, save_augmentation_preview
from simclr_keras.pseudo_labels import build_denoising_autoencoder, pseudo_labels
from simclr_keras.tsne import plot_tsne, plot_tsne_pair
from simclr_keras.unfreeze import GradualUnfreeze, fit_in_rounds

__version__ = "0.1.0"

__all__ = [
    "DataGeneratorSimCLR",
    "GradualUnfreeze",
    "IOIOCrossEntropy",
    "KNNMonitor",
    "NaNLossError",
    "RandomResizedCrop",
    "ResumableCheckpoint",
    "SimCLR",
    "SimCLRAugmentation",
    "SoftmaxCosineSim",
    "StopOnNaN",
    "batch_stats",
    "build_denoising_autoencoder",
    "build_projection_head",
    "compare_backbones",
    "contrastive_accuracy",
    "contrastive_logits",
    "data_parallel",
    "extract_features",
    "finetune_evaluation",
    "fit_in_rounds",
    "fit_with_resume",
    "get_backbone",
    "guided_batches",
    "ioio_target",
    "knn_accuracy",
    "linear_evaluation",
    "nt_xent",
    "pixel_features",
    "plot_history",
    "plot_tsne",
    "plot_tsne_pair",
    "pseudo_labels",
    "resnet18",
    "resume_state",
    "save_augmentation_preview",
    "set_unfrozen_layers",
    "small_cnn",
    "snapshot_backbone",
    "stratified_fraction",
    "weighted_layers",
]
