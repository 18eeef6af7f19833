"""Training beyond one plain `fit()`: the pretrained recipe's schedule, training
in rounds that unfreeze more of the backbone, multi-device helpers. The
callbacks that control training are in `simclr_keras.callbacks`.
"""

from simclr_keras._atomic import atomic_write_json
from simclr_keras.training.distribution import data_parallel
from simclr_keras.training.pretrained import pretrained_schedule
from simclr_keras.training.rounds import fit_in_rounds

__all__ = [
    "atomic_write_json",
    "data_parallel",
    "fit_in_rounds",
    "pretrained_schedule",
]
