"""Training control: NaN stop, chance-loss warning, gradual unfreezing, the pretrained
recipe, kill-safe checkpoints that resume, multi-device helpers.
"""

from simclr_keras._atomic import atomic_write_json
from simclr_keras.training.callbacks import (
    ChanceLossWarning,
    FollowEpoch,
    NaNLossError,
    StopOnNaN,
    WarnOnChanceLoss,
)
from simclr_keras.training.checkpoint import (
    CheckpointError,
    ResumableCheckpoint,
    resume_state,
)
from simclr_keras.training.distribution import data_parallel
from simclr_keras.training.pretrained import pretrained_schedule
from simclr_keras.training.unfreeze import GradualUnfreeze, fit_in_rounds, rebuild_optimizer

__all__ = [
    "ChanceLossWarning",
    "CheckpointError",
    "FollowEpoch",
    "GradualUnfreeze",
    "NaNLossError",
    "ResumableCheckpoint",
    "StopOnNaN",
    "WarnOnChanceLoss",
    "atomic_write_json",
    "data_parallel",
    "fit_in_rounds",
    "pretrained_schedule",
    "rebuild_optimizer",
    "resume_state",
]
