"""Training control: NaN stop, chance-loss warning, kNN monitor, gradual unfreezing, the
pretrained recipe, the never-worse guard, kill-safe checkpoints that resume, multi-device helpers.
"""

from simclr_keras.training.callbacks import (
    ChanceLossWarning,
    NaNLossError,
    StopOnNaN,
    WarnOnChanceLoss,
)
from simclr_keras.training.checkpoint import (
    CheckpointError,
    ResumableCheckpoint,
    fit_with_resume,
    resume_state,
)
from simclr_keras.training.distribution import data_parallel
from simclr_keras.training.guard import BackboneGuard
from simclr_keras.training.knn_monitor import KNNMonitor
from simclr_keras.training.pretrained import pretrained_schedule
from simclr_keras.training.unfreeze import GradualUnfreeze, fit_in_rounds, rebuild_optimizer

__all__ = [
    "BackboneGuard",
    "ChanceLossWarning",
    "CheckpointError",
    "GradualUnfreeze",
    "KNNMonitor",
    "NaNLossError",
    "ResumableCheckpoint",
    "StopOnNaN",
    "WarnOnChanceLoss",
    "data_parallel",
    "fit_in_rounds",
    "fit_with_resume",
    "pretrained_schedule",
    "rebuild_optimizer",
    "resume_state",
]
