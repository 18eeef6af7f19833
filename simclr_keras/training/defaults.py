"""The callbacks `SimCLR.fit` adds to the caller's: one function, `default_callbacks`."""

import keras

from simclr_keras.callbacks.follow_epoch import FollowEpoch
from simclr_keras.callbacks.gradual_unfreeze import GradualUnfreeze
from simclr_keras.callbacks.resumable_checkpoint import ResumableCheckpoint
from simclr_keras.callbacks.schedule_length import ScheduleLength
from simclr_keras.callbacks.stop_on_nan import StopOnNaN
from simclr_keras.callbacks.warn_on_chance_loss import WarnOnChanceLoss
from simclr_keras.data.generator import DataGeneratorSimCLR
from simclr_keras.training.pretrained import recipe_callbacks


def default_callbacks(simclr, data, callbacks=None):
    """The caller's `callbacks` with SimCLR's defaults, each unless one of
    its kind is given.

    First: the recipe's `GradualUnfreeze` (`recipe="pretrained"`), a
    `ScheduleLength` (a LARS recipe's warm-up + cosine rate learns the run's
    length), for a `DataGeneratorSimCLR` a `FollowEpoch` (a resumed run
    continues the interrupted run's batch order), `StopOnNaN` and
    `WarnOnChanceLoss`. Last: `ResumableCheckpoint(simclr.save_path)` when
    the model has a `save_path`.

    Args:
        simclr: The `SimCLR` model.
        data: The data `fit()` trains on.
        callbacks: The caller's callbacks, or None.

    Returns:
        A new list.
    """
    callbacks = list(callbacks or [])

    def missing(kind):
        return not any(isinstance(c, kind) for c in callbacks)

    first = [ScheduleLength()]
    # A LARS recipe's or the caller's own schedule keeps its rate in every stage.
    keep_rates = simclr.optimizer_recipe is not None or isinstance(
        simclr.learning_rate, keras.optimizers.schedules.LearningRateSchedule
    )
    if missing(GradualUnfreeze):
        first += recipe_callbacks(
            simclr.recipe,
            simclr.base_model,
            learning_rate=simclr.learning_rate if not keep_rates else None,
            keep_rates=keep_rates,
        )
    if isinstance(data, DataGeneratorSimCLR):
        first.append(FollowEpoch(data))
    first += [kind() for kind in (StopOnNaN, WarnOnChanceLoss) if missing(kind)]
    last = []
    if simclr.save_path and missing(ResumableCheckpoint):
        last.append(ResumableCheckpoint(simclr.save_path))
    return first + callbacks + last
