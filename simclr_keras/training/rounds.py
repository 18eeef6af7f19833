"""`fit_in_rounds`: train in rounds, unfreezing more of the backbone between them."""

from simclr_keras._checks import check_int
from simclr_keras.callbacks.gradual_unfreeze import GradualUnfreeze, parse_stage
from simclr_keras.callbacks.resumable_checkpoint import ResumableCheckpoint


def fit_in_rounds(model, x, rounds, callbacks=None, verbose="auto", base_model=None, **fit_kwargs):
    """Train in rounds, unfreezing more of the backbone between them.

    Each round sets the number of trainable weighted backbone layers (the
    optimizer is rebuilt with its state carried over, and an optional new
    learning rate) for its epochs. The rounds run as one `fit()` with a
    `GradualUnfreeze` whose stages start at the rounds' first epochs, so a
    run with a `ResumableCheckpoint` (or a SimCLR with `save_path`) that is
    killed in any round resumes in that round when called again; with other `rounds`
    (except more rounds after the same ones) it raises `CheckpointError`
    rather than train a mix of both schedules.

    Args:
        model: A compiled Keras model: a `SimCLR`, or any model whose
            backbone is given as `base_model`.
        x: Training data, as for `model.fit`.
        rounds: List of `(epochs, n_unfrozen)` or `(epochs, n_unfrozen,
            learning_rate)`; `n_unfrozen` -1 trains the whole backbone.
        callbacks: Other callbacks for the `fit()` (not a `GradualUnfreeze`:
            the rounds are the schedule).
        verbose: As in `fit()`.
        base_model: The backbone whose layers the rounds unfreeze, a part of
            `model`; default `model.base_model` (a SimCLR's backbone).
        **fit_kwargs: Other `fit()` arguments (not `epochs` or
            `initial_epoch`: the rounds give them).

    Returns:
        The `keras.callbacks.History` of all rounds (epochs numbered on).

    Example:
    >>> history = fit_in_rounds(simclr, images, [(2, 0, 1e-3), (3, -1, 1e-4)])
    ... # doctest: +SKIP
    """
    base_model = base_model if base_model is not None else getattr(model, "base_model", None)
    if base_model is None:
        raise ValueError(
            "`base_model` must be the backbone to unfreeze when `model` has no "
            f"`base_model` attribute. Received: base_model=None for a {type(model).__name__}"
        )
    if not isinstance(rounds, (list, tuple)) or not rounds:
        raise ValueError(
            "`rounds` must be a non-empty list of (epochs, n_unfrozen[, "
            f"learning_rate]). Received: rounds={rounds!r}"
        )
    for name in ("epochs", "initial_epoch"):
        if name in fit_kwargs:
            raise ValueError(
                f"`{name}` is set by `rounds` in fit_in_rounds; leave it out. "
                f"Received: {name}={fit_kwargs[name]!r}"
            )
    callbacks = list(callbacks or [])
    if any(isinstance(c, GradualUnfreeze) for c in callbacks):
        raise ValueError(
            "`callbacks` must not hold a GradualUnfreeze: the rounds are the unfreeze "
            "schedule of fit_in_rounds. Received: callbacks with a GradualUnfreeze"
        )
    schedule = {}
    start = 0
    for i, spec in enumerate(rounds):
        if not isinstance(spec, (list, tuple)) or len(spec) not in (2, 3):
            raise ValueError(
                f"`rounds[{i}]` must be (epochs, n_unfrozen[, learning_rate]). Received: {spec!r}"
            )
        epochs = check_int(spec[0], "epochs", minimum=1, why=f"(in `rounds[{i}]`)")
        stage = tuple(spec[1:]) if len(spec) == 3 else spec[1]
        parse_stage(stage, base_model, f"`rounds[{i}]`")  # fail before training
        schedule[start] = stage
        start += epochs
    unfreeze = GradualUnfreeze(schedule, base_model, verbose=int(verbose in (1, "auto")))
    # The rounds join the checkpoints' run settings (`ResumableCheckpoint`): a
    # run killed in one round resumes only with the same rounds (or more after them).
    settings = {"rounds": [[_plain(v) for v in spec] for spec in rounds]}
    checkpoints = [c for c in callbacks if isinstance(c, ResumableCheckpoint)]
    if not checkpoints and getattr(model, "save_path", None):  # SimCLR(save_path=...)
        checkpoints = [ResumableCheckpoint(model.save_path)]
        callbacks.append(checkpoints[0])
    for checkpoint in checkpoints:
        checkpoint.run_settings.update(settings)
    return model.fit(
        x, epochs=start, callbacks=[unfreeze] + callbacks, verbose=verbose, **fit_kwargs
    )


def _plain(value):
    """A number of `rounds` as JSON keeps it (NumPy scalars as Python ones)."""
    return value.item() if hasattr(value, "item") else value
