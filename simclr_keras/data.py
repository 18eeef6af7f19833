"""Minimal array feeder (replaced by the full data module)."""

import numpy as np
import keras


class DataGeneratorSimCLR(keras.utils.PyDataset):
    """Full batches of images from an array, reshuffled every epoch."""

    def __init__(self, images, batch_size, *, shuffle=True, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.images = np.asarray(images)
        self.batch_size = int(batch_size)
        if len(self.images) < self.batch_size:
            raise ValueError(
                "`batch_size` must not exceed the number of images. "
                f"Received: batch_size={batch_size} for {len(self.images)} images"
            )
        self.shuffle = shuffle
        self._rng = np.random.default_rng(seed)
        self._order = np.arange(len(self.images))
        self.on_epoch_end()

    def __len__(self):
        return len(self.images) // self.batch_size

    def __getitem__(self, index):
        idx = self._order[index * self.batch_size : (index + 1) * self.batch_size]
        return self.images[idx]

    def on_epoch_end(self):
        if self.shuffle:
            self._order = self._rng.permutation(len(self.images))
