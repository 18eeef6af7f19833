"""What `SimCLR.fit` adds around Keras' own fit: image arrays as seeded
batches, the NaN stop, and checkpoints that resume."""

import keras


def as_batches(simclr, x, shuffle=True, initial_epoch=0):
    """An image array as a `DataGeneratorSimCLR` of `simclr.batch_size`
    (full batches, seeded order from `simclr.seed`, starting at
    `initial_epoch`); any other data is returned unchanged."""
    if x is None or not (hasattr(x, "shape") and hasattr(x, "dtype")):
        return x
    from simclr_keras.data import DataGeneratorSimCLR

    batches = DataGeneratorSimCLR(x, batch_size=simclr.batch_size, shuffle=shuffle, seed=simclr.seed)
    batches.set_epoch(int(initial_epoch or 0))
    return batches


def run_fit(simclr, fit_fn, x, y, epochs, shuffle, callbacks, **kwargs):
    """`SimCLR.fit`: checks, batching, `StopOnNaN`, and resume with `save_path`.

    Args:
        simclr: The `SimCLR` model.
        fit_fn: Keras' own fit bound to it (`super().fit`).
        x: Images: an array, a `PyDataset` or a `tf.data.Dataset`.
        y: Must be None (no labels).
        epochs: Total epochs.
        shuffle: Reshuffle array batches every epoch.
        callbacks: Further callbacks.
        **kwargs: Other `fit()` arguments.

    Returns:
        The `History` (over all epochs when resumed).
    """
    from simclr_keras.callbacks import StopOnNaN
    from simclr_keras.checkpoint import atomic_save_model, fit_with_resume

    if y is not None:
        raise ValueError(
            "SimCLR trains without labels: pass images only. Received: "
            "y of type " + type(y).__name__
        )
    batches = as_batches(simclr, x, shuffle, kwargs.get("initial_epoch"))
    if batches is not x:
        kwargs.pop("batch_size", None)  # arrays are batched by `simclr.batch_size`
        x = batches
    if isinstance(x, keras.utils.PyDataset):
        # The data set orders its batches from its own seed; Keras would
        # reorder them again with Python's unseeded `random`.
        shuffle = False
    callbacks = list(callbacks or [])
    if not any(isinstance(c, StopOnNaN) for c in callbacks):
        callbacks.insert(0, StopOnNaN())
    if not simclr.save_path:
        return fit_fn(x, epochs=epochs, shuffle=shuffle, callbacks=callbacks, **kwargs)
    history = fit_with_resume(
        simclr, x, epochs, simclr.save_path, callbacks=callbacks, fit_fn=fit_fn, shuffle=shuffle, **kwargs
    )
    atomic_save_model(simclr, simclr.save_path)
    return history
