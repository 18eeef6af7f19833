"""Multi-device data parallelism for SimCLR through `keras.distribution` (JAX).

Under `keras.distribution.DataParallel` on the JAX backend, Keras jit-compiles
the whole training step over the *global* batch, its first axis sharded across
the devices, the weights replicated (GSPMD). SimCLR's step is written on that
global batch, so nothing in the model has to change:

* the NT-Xent similarities (`losses.nt_xent`) are global: every anchor
  sees the `2B - 2` negatives of all devices (XLA inserts the all-gathers), and
  the loss is the global NT-Xent, not a mean of per-device losses;
* BatchNorm statistics are taken over the global batch of `2B` views, i.e.
  synchronised BatchNorm, which the SimCLR paper uses because per-device
  statistics let the model cheat through the batch statistics;
* the augmentation's random numbers are drawn inside the compiled step, whose
  values do not depend on how it is sharded, so a seeded run on N devices
  draws the same views as on one.

The compiled step all-gathers only the small `(B, d)` projections (and
all-reduces BatchNorm statistics and gradients); the image batches and views
stay on their devices.

`tests/test_distribution.py` checks these points: loss, updated weights and
BatchNorm moving statistics on 2 devices equal those on 1 device.

Each device gets `B / N` source images, so the global batch must divide by the
number of devices; `check_batch_size` says so early and clearly.
"""

import math

import keras


def _batch_axis_size(distribution):
    mesh = distribution.device_mesh
    name = distribution.batch_dim_name
    if name in mesh.axis_names:
        return int(mesh.shape[list(mesh.axis_names).index(name)])
    return int(mesh.devices.size)


def replica_count(distribution=None):
    """Number of data-parallel shards of the batch under a distribution.

    Args:
        distribution: A `keras.distribution.Distribution`; default: the one
            set globally (`keras.distribution.set_distribution` or a
            `distribution.scope()`).

    Returns:
        The size of the mesh's batch axis, or 1 when no distribution is set.

    Example:
    >>> replica_count()  # no distribution set
    1
    """
    distribution = distribution or keras.distribution.distribution()
    if distribution is None:
        return 1
    return _batch_axis_size(distribution)


def check_batch_size(batch_size, distribution=None):
    """Check that each device gets the same whole number of source images.

    With several processes (multi-host), every process feeds `batch_size`
    images and the global batch is `batch_size * num_processes`.

    Args:
        batch_size: Source images per step that this process feeds (SimCLR's
            `batch_size`).
        distribution: A `keras.distribution.Distribution`; default: the one
            set globally. Without one, any batch size is accepted.

    Returns:
        The number of source images per device (`2x` that many views).

    Raises:
        ValueError: If the global batch does not divide by the number of
            devices on the batch axis.

    Example:
    >>> check_batch_size(8)  # no distribution set: one device
    8
    """
    distribution = distribution or keras.distribution.distribution()
    if distribution is None:
        return int(batch_size)
    replicas = _batch_axis_size(distribution)
    processes = int(getattr(distribution, "num_processes", 1) or 1)
    global_batch = int(batch_size) * processes
    if global_batch % replicas:
        step = replicas // math.gcd(replicas, processes)
        why = (
            "the number of devices, so that each device gets the same number of images"
            if processes == 1
            else f"so that the global batch ({processes} processes x batch_size) "
            f"splits evenly over the {replicas} devices"
        )
        raise ValueError(
            f"`batch_size` must be a multiple of {step}, {why}, e.g. "
            f"batch_size={max(step, batch_size // step * step)}. "
            f"Received: batch_size={batch_size}"
        )
    return global_batch // replicas


def data_parallel(batch_size, devices=None):
    """A checked `keras.distribution.DataParallel` over the given devices.

    Create the `SimCLR` model *and* train it inside `distribution.scope()`
    (or call `keras.distribution.set_distribution(distribution)` first), so
    that its variables are replicated and its batches sharded.

    Args:
        batch_size: SimCLR's `batch_size` (global on one host; per process
            with several hosts).
        devices: Devices to use, e.g. `keras.distribution.list_devices("gpu")`;
            default: every device Keras lists.

    Returns:
        A `keras.distribution.DataParallel`.

    Raises:
        RuntimeError: If the backend is not JAX.
        ValueError: If `batch_size` does not divide across the devices.

    Example:
    >>> dist = data_parallel(batch_size=256)                # doctest: +SKIP
    >>> with dist.scope():                                   # doctest: +SKIP
    ...     simclr = SimCLR(base, (224, 224, 3), batch_size=256)
    ...     simclr.fit(DataGeneratorSimCLR.from_directory(...))

    Reference:
        Chen et al., "A Simple Framework for Contrastive Learning of Visual
        Representations", ICML 2020, sec. 2.2 (global BN, large batches).
    """
    backend = keras.backend.backend()
    if backend != "jax":
        raise RuntimeError(
            "`data_parallel` needs the JAX backend: keras.distribution's "
            "DataParallel is implemented for JAX only (set KERAS_BACKEND=jax "
            "before importing keras). Received: backend=" + repr(backend)
        )
    if devices is None:
        devices = keras.distribution.list_devices()
    distribution = keras.distribution.DataParallel(devices=list(devices))
    check_batch_size(batch_size, distribution)
    return distribution
