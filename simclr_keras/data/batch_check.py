"""Every batch of a user's data set checked as it is fed, not only the first.

`SimCLR.fit` and `evaluate` take arrays (checked whole, once), a
`DataGeneratorSimCLR` (checked whole when it is built), or a data set they
cannot see in advance: a `keras.utils.PyDataset` or a `tf.data.Dataset`.
Those are checked batch by batch, by the one image rule of `_images`
(shape, channels, dtype, finite values in range) plus SimCLR's batch size:

- the first batch before training starts (and, for a PyDataset, the last:
  a short last batch fails at once, not after an epoch);
- every batch as it is fed: a `PyDataset` is wrapped in `CheckedBatches`,
  a `tf.data.Dataset` gets a `map` that runs the same check on the host.

Cost: one pass of vectorised min/max over each float batch (none beyond
shape and dtype for uint8), about a copy of the batch: a few milliseconds
for 64 images of 224 x 224, small beside a training step. For `tf.data`
the check runs in a `numpy_function` (the batch visits the host, where
the CPU pipeline built it anyway).
"""

import sys

import keras
import numpy as np

from simclr_keras._images import check_images

# Marks a message raised while a batch is read, so `SimCLR.fit` can re-raise
# it as the plain ValueError it was (TensorFlow wraps it in its own error
# inside tf.data, which Keras also uses for a PyDataset on its TF backend).
MARK = "[simclr_keras batch check] "


def check_batch(batch, name, channels, batch_size):
    """Check one batch of a data set; return its images as a NumPy array.

    Args:
        batch: An image batch, or a tuple whose first item is one.
        name: What to call the batch in a message, e.g. `"x[3]"`.
        channels: The backbone's channel count.
        batch_size: SimCLR's batch size, which every batch must have.

    Returns:
        The images, `(B, H, W, C)` or `(B, H, W)`.

    Example:
    >>> check_batch(np.zeros((4, 8, 8, 3), "uint8"), "x[0]", 3, 4).shape
    (4, 8, 8, 3)
    """
    images = batch[0] if isinstance(batch, (list, tuple)) else batch
    images = check_images(keras.ops.convert_to_numpy(images), name, channels=channels)
    if len(images) != batch_size:
        raise ValueError(
            f"The data set's batch size must equal SimCLR's `batch_size` ({batch_size}): "
            f"the loss and the negatives depend on it. Received: `{name}` holds "
            f"{len(images)} images; build the data set with batch_size={batch_size} "
            "and whole batches only (e.g. tf.data's `drop_remainder=True`), or the model "
            f"with batch_size={len(images)}"
        )
    return images


class CheckedBatches(keras.utils.PyDataset):
    """A `PyDataset` whose every batch is checked by `check_batch` as it is read.

    Args:
        data: The user's `keras.utils.PyDataset`.
        channels: The backbone's channel count.
        batch_size: SimCLR's batch size.

    Returns:
        A `PyDataset` with the same batches, length and workers.

    Example:
    >>> batches = CheckedBatches(my_dataset, 3, 64)   # doctest: +SKIP
    """

    def __init__(self, data, channels, batch_size):
        super().__init__(
            workers=getattr(data, "workers", 1),
            use_multiprocessing=getattr(data, "use_multiprocessing", False),
            max_queue_size=getattr(data, "max_queue_size", 10),
        )
        self.data, self.channels, self.batch_size = data, channels, batch_size

    def __len__(self):
        return len(self.data)

    @property
    def num_batches(self):
        return self.data.num_batches

    def __getitem__(self, index):
        batch = self.data[index]
        try:
            check_batch(batch, f"x[{index}]", self.channels, self.batch_size)
        except ValueError as error:  # marked: Keras' TF adapter wraps it in its own error
            raise ValueError(MARK + str(error) + MARK) from None
        return batch

    def on_epoch_begin(self):
        self.data.on_epoch_begin()

    def on_epoch_end(self):
        self.data.on_epoch_end()


def is_tf_dataset(x):
    """True for a `tf.data.Dataset` (without importing TensorFlow)."""
    tf = sys.modules.get("tensorflow")
    return tf is not None and isinstance(x, tf.data.Dataset)


def checked_tf_dataset(dataset, channels, batch_size):
    """Check a `tf.data.Dataset`'s first batch now and every batch as it is read.

    Args:
        dataset: A `tf.data.Dataset` of image batches (or of tuples whose
            first item is one).
        channels: The backbone's channel count.
        batch_size: SimCLR's batch size.

    Returns:
        The dataset with a `map` that checks each batch on the host (an
        error inside it carries `MARK`; `reraise` turns it back into a
        `ValueError`).
    """
    tf = sys.modules["tensorflow"]
    for first in dataset.take(1):
        check_batch(first, "x's batch 1", channels, batch_size)
    counter = {"batch": 0}

    def check_numpy(images):  # batches counted from the start of fit()/evaluate()
        index = counter["batch"]
        counter["batch"] += 1
        try:
            check_batch(images, f"x's batch {index + 1}", channels, batch_size)
        except ValueError as error:
            raise ValueError(MARK + str(error) + MARK) from None
        return np.zeros((), np.int32)

    def check(*element):
        images = element[0]
        done = tf.numpy_function(check_numpy, [images], tf.int32, stateful=True)
        with tf.control_dependencies([done]):
            images = tf.identity(images)
        return images if len(element) == 1 else (images,) + tuple(element[1:])

    return dataset.map(check)


def reraise(error):
    """Raise the `ValueError` a tf.data batch check wrapped in `error`, if any."""
    text = str(error)
    if MARK in text:
        message = text.split(MARK)[1]
        raise ValueError(message) from None
