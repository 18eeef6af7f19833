"""Helper for test_checkpoint.py: a small resumable SimCLR run, killed and rerun.

Usage: python resume_script.py SAVE_PATH EPOCHS OUT_JSON STEPS_PER_EPOCH
Writes OUT_JSON at the end: the first epoch this process trained, the merged
history and the optimizer's iteration count.
"""

import json
import os
import sys

import keras
import numpy as np

# The shared test data helper lives one folder up (tests/), which pytest puts
# on sys.path for the tests but not for this subprocess.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from digits_data import digits_rgb  # noqa: E402

from simclr_keras import SimCLR  # noqa: E402
from simclr_keras.callbacks import ResumableCheckpoint, StopOnNaN  # noqa: E402

BATCH = 8


class FirstEpoch(keras.callbacks.Callback):
    first = None

    def on_epoch_begin(self, epoch, logs=None):
        if self.first is None:
            self.first = epoch


def main(save_path, epochs, out_path, steps):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    base = keras.Model(inputs, keras.layers.Conv2D(8, 3)(x))
    simclr = SimCLR(
        base,
        (8, 8, 3),
        batch_size=BATCH,
        feat_dims_ph=[8, 4],
        seed=0,
        augmentation={"crop_scale": (0.5, 1.0), "jitter_strength": 0.5},
    )
    images = np.ascontiguousarray(digits_rgb(8)[0][: steps * BATCH])
    first = FirstEpoch()
    history = simclr.fit(
        images,
        epochs=epochs,
        callbacks=[StopOnNaN(), first, ResumableCheckpoint(save_path)],
        verbose=0,
    )
    with open(out_path, "w") as f:
        json.dump(
            {
                "first_epoch": first.first,
                "history": history.history,
                "epoch": history.epoch,
                "iterations": int(keras.ops.convert_to_numpy(simclr.optimizer.iterations)),
                "steps_per_epoch": steps,
            },
            f,
        )


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
