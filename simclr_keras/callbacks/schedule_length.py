"""`ScheduleLength`: tells a `WarmupCosine` learning rate how long the run is."""

import keras

from simclr_keras.recipe import WarmupCosine


class ScheduleLength(keras.callbacks.Callback):
    """Give the optimizer's `WarmupCosine` schedule the length of the run, once.

    SimCLR's warm-up + cosine schedule needs the steps of the whole run,
    which are only known when `fit()` starts: this callback reads them from
    the `fit()` call (`steps_per_epoch`, or the data's length, and
    `epochs`) at its start and configures the schedule, which keeps them
    (they are saved with the optimizer, so a resumed or reloaded model
    goes on with the same schedule). Any other learning rate is left alone.
    `SimCLR.fit` adds it for you.

    Returns:
        A `keras.callbacks.Callback`.

    Raises:
        ValueError: at the start of `fit()`, for data without a length and
            no `steps_per_epoch`.

    Example:
    >>> model.fit(data, epochs=100, callbacks=[ScheduleLength()])  # doctest: +SKIP
    """

    def on_train_begin(self, logs=None):
        schedule = getattr(self.model.optimizer, "_learning_rate", None)
        if not isinstance(schedule, WarmupCosine) or schedule.configured:
            return
        steps = self.params.get("steps")
        if steps is None:
            raise ValueError(
                "The warm-up + cosine schedule needs the number of steps per epoch: pass "
                "`steps_per_epoch` to `fit()` for data without a length. Received: "
                "data without a length and steps_per_epoch=None"
            )
        schedule.configure(int(steps), int(self.params["epochs"]))
        # The train function was traced with the unconfigured (constant) rate.
        self.model.make_train_function(force=True)
