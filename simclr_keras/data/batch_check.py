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

import contextlib
import sys

import keras
import numpy as np

from simclr_keras._images import check_image_shape, check_images
from simclr_keras.data.generator import DataGeneratorSimCLR

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


@contextlib.contextmanager
def reraising():
    """Inside the block, a batch check's error wrapped by TensorFlow comes out
    as the plain `ValueError` it was (see `reraise`).
    """
    try:
        yield
    except Exception as error:
        reraise(error)
        raise


def simclr_batches(x, y=None, *, batch_size, channels, seed=None, method="fit", kwargs=None):
    """The data `SimCLR.fit` / `evaluate` hand to Keras, and the other arguments.

    An image array (or a list of images) becomes a `DataGeneratorSimCLR` of
    full batches of `batch_size`, in a seeded order (reshuffled each epoch
    when `shuffle`, starting at `initial_epoch`). A `keras.utils.PyDataset`
    or a `tf.data.Dataset` keeps its batches; its first batches are checked
    now and every batch as it is read. A `DataGeneratorSimCLR` or any other
    data is passed on unchanged (a `DataGeneratorSimCLR` after a check of
    its batch size and channels).

    Args:
        x: Images: an array `(N, H, W, C)`, a list of images, a
            `DataGeneratorSimCLR`, a `keras.utils.PyDataset` or a
            `tf.data.Dataset` of image batches.
        y: Must be None (SimCLR takes no labels).
        batch_size: SimCLR's batch size (every batch must have it).
        channels: The backbone's channel count.
        seed: Seed of an array's batch order.
        method: `"fit"` or `"evaluate"`, for messages.
        kwargs: Dict of the other arguments of the `fit` / `evaluate` call.

    Returns:
        `(data, kwargs)`: `kwargs` without a `batch_size` (which must be
        None or `batch_size` when the data is batched here) and, for a
        `PyDataset`, with `shuffle=False` (it orders its batches from its
        own seed; Keras would reorder them with Python's unseeded `random`).

    Example:
    >>> data, rest = simclr_batches(np.zeros((8, 4, 4, 3), "uint8"), batch_size=4, channels=3)
    >>> type(data).__name__, len(data), rest
    ('DataGeneratorSimCLR', 2, {'shuffle': False})
    """
    kwargs = dict(kwargs or {})
    if y is not None:
        verb = "trains" if method == "fit" else "evaluates"
        raise ValueError(
            f"SimCLR {verb} without labels: pass images only. Received: "
            "y of type " + type(y).__name__
        )
    if isinstance(x, (list, tuple)):
        x = check_image_shape(x, "x")  # a list of images
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        x = check_images(x, "x", channels=channels)
        data = DataGeneratorSimCLR(
            x,
            batch_size=batch_size,
            shuffle=kwargs.pop("shuffle", method == "fit"),
            seed=seed,
            _checked=True,
        )
        data.set_epoch(int(kwargs.get("initial_epoch") or 0))
    else:
        _check_data_set(x, channels, batch_size)
        data = x
        if isinstance(x, keras.utils.PyDataset) and not isinstance(x, DataGeneratorSimCLR):
            data = CheckedBatches(x, channels, batch_size)
        elif is_tf_dataset(x):
            data = checked_tf_dataset(x, channels, batch_size)
    if data is not x:
        _check_batch_size_argument(kwargs.pop("batch_size", None), batch_size)
    if isinstance(data, keras.utils.PyDataset) and method == "fit":
        kwargs["shuffle"] = False
    return data, kwargs


def _check_batch_size_argument(value, batch_size):
    """Arrays are batched by SimCLR's `batch_size`; another `batch_size` is an error."""
    if value is not None and value != batch_size:
        raise ValueError(
            "`batch_size` of `fit`/`evaluate` must be None or SimCLR's `batch_size` "
            f"({batch_size}), which batches arrays. Received: batch_size={value!r}"
        )


def _check_data_set(x, channels, batch_size):
    """Early checks of a data set passed to `fit`/`evaluate`: its batch size
    must be SimCLR's (the loss and the BatchNorm statistics depend on it)
    and its first batch must hold valid images.
    """
    if x is None:
        raise ValueError(
            "`x` must be images: an array (N, H, W, C), a DataGeneratorSimCLR or a "
            "keras.utils.PyDataset / tf.data.Dataset of image batches. Received: x=None"
        )
    size = getattr(x, "batch_size", None)
    if isinstance(x, DataGeneratorSimCLR):
        first_shape = (size,) + x.image_shape
    elif isinstance(x, keras.utils.PyDataset) and (x.num_batches or 0) > 0:
        # The first and the last batch now (a short last batch fails at
        # once); every batch again as it is read (`CheckedBatches`).
        first = check_batch(x[0], "x[0]", channels, batch_size)
        last = x.num_batches - 1
        check_batch(x[last], f"x[{last}]", channels, batch_size)
        first_shape, size = first.shape, len(first)
    else:
        return
    if size != batch_size:
        raise ValueError(
            f"The data set's batch size must equal SimCLR's `batch_size` "
            f"({batch_size}): the loss and the negatives depend on it. Received: "
            f"batches of {size} images from {type(x).__name__}; build it with "
            f"batch_size={batch_size} or the model with batch_size={size}"
        )
    if first_shape[-1] != channels:
        raise ValueError(
            f"`x` must have {channels} channel(s), as the backbone's "
            f"input. Received: batches of shape {first_shape}"
        )
