"""Callbacks: every `keras.callbacks.Callback` of the library, one per module.

Training control: `StopOnNaN`, `WarnOnChanceLoss`, `StopOnCtrlC`,
`GradualUnfreeze`, `FollowEpoch`, `ScheduleLength` (a warm-up + cosine
rate learns the run's length) and `ResumableCheckpoint` (kill-safe
checkpoints that resume, for any Keras model). Callbacks that score or re-label while training:
`KNNMonitor`, `BackboneGuard` (the never-worse guard), `ReclusterPseudoLabels`.

The scoring callbacks use `simclr_keras.evaluation`, which reads `SimCLR`
models, while `SimCLR.fit` adds training-control callbacks: code below the
model (`model.py`, `training/`) imports a callback from its module
(`simclr_keras.callbacks.stop_on_nan`), never from this package.
"""

from simclr_keras.callbacks.backbone_guard import BackboneGuard
from simclr_keras.callbacks.follow_epoch import FollowEpoch
from simclr_keras.callbacks.gradual_unfreeze import GradualUnfreeze
from simclr_keras.callbacks.knn_monitor import KNNMonitor
from simclr_keras.callbacks.recluster_pseudo_labels import ReclusterPseudoLabels
from simclr_keras.callbacks.resumable_checkpoint import (
    CheckpointError,
    ResumableCheckpoint,
    resume_state,
)
from simclr_keras.callbacks.schedule_length import ScheduleLength
from simclr_keras.callbacks.stop_on_ctrl_c import StopOnCtrlC
from simclr_keras.callbacks.stop_on_nan import NaNLossError, StopOnNaN
from simclr_keras.callbacks.warn_on_chance_loss import ChanceLossWarning, WarnOnChanceLoss

__all__ = [
    "BackboneGuard",
    "ChanceLossWarning",
    "CheckpointError",
    "FollowEpoch",
    "GradualUnfreeze",
    "KNNMonitor",
    "NaNLossError",
    "ReclusterPseudoLabels",
    "ResumableCheckpoint",
    "ScheduleLength",
    "StopOnCtrlC",
    "StopOnNaN",
    "WarnOnChanceLoss",
    "resume_state",
]
