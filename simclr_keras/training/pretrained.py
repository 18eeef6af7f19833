"""The training recipe for pretrained backbones: the head first, then the top half.

A randomly initialised projection head sends random gradients into the
backbone during the first steps; with every layer training at the usual
rate they overwrite what ImageNet taught it. The `"pretrained"` recipe
trains the head alone first (the backbone frozen, its batch-norm layers in
inference mode with their ImageNet statistics), then unfreezes the top half
of the backbone at a lower learning rate (the head-first / gradual
unfreezing of ULMFiT and LP-FT). The top half's batch-norm layers then
train with it and adapt their statistics to the new images (as AdaBN
does); the bottom half, batch norm included, stays exactly as it was.
`SimCLR(..., recipe="pretrained")` applies it inside one `fit()` through
`GradualUnfreeze`.

Chosen by the guard's score on held-out training images (never the test
split) in runs of the README's CLI story (EfficientNet-Lite0, 80 px, 3
epochs): with every batch-norm layer frozen, a third stage that unfreezes
all layers lowered the score in 3 of 3 runs (CIFAR-10 photos, two seeds;
ImageNet-5) and a second top-half epoch lowered it on both CIFAR-10 seeds;
with the top half's batch norm training, the best score rose on both seeds
(0.771 -> 0.782, 0.731 -> 0.738).
"""

import math

from simclr_keras._checks import check_fraction, check_int
from simclr_keras.backbones.freezing import weighted_layers
from simclr_keras.callbacks.gradual_unfreeze import GradualUnfreeze
from simclr_keras_rules.recipes import check_recipe, check_unfrozen_layers

HEAD_LEARNING_RATE = 1e-3
BACKBONE_LEARNING_RATE = 5e-4
BACKBONE_SHARE = 0.5  # of the weighted layers, from the top
# The augmentation policy (`layers.augmentation.AUGMENTATION_POLICIES`) of
# each recipe when none is given.
RECIPE_AUGMENTATION = {"scratch": "simclr", "pretrained": "mild"}
AUGMENTATION = RECIPE_AUGMENTATION["pretrained"]
# Epochs of a run with each recipe when none is given (the CLI's `--epochs`).
RECIPE_EPOCHS = {"scratch": 20, "pretrained": 6}
EPOCHS = RECIPE_EPOCHS["pretrained"]


# Variables that Keras initialises to zeros (biases, batch and layer norm
# offsets, batch-norm means; keras-hub's ViT draws its MLP biases at 1e-6):
# one above `TRAINED_ABOVE` means the weights were loaded or trained.
ZERO_INITIALISED = ("bias", "beta", "moving_mean")
TRAINED_ABOVE = 1e-3


def looks_trained(model):
    """Whether `model`'s weights look loaded or trained rather than freshly
    initialised: one of its biases, norm offsets or batch-norm means is
    above `TRAINED_ABOVE` in size (Keras starts them at or near zero;
    ImageNet weights do not have them there).

    Example:
    >>> import keras
    >>> looks_trained(keras.Sequential([keras.Input((2,)), keras.layers.Dense(3)]))
    False
    """
    import warnings

    import numpy as np

    for variable in model.weights:
        if variable.name.rsplit("/", 1)[-1] in ZERO_INITIALISED and 0 not in variable.shape:
            with warnings.catch_warnings():
                # NumPy 2 on Keras' `Variable.__array__` (no `copy` keyword),
                # seen on TensorFlow and torch: not about the user's code.
                warnings.simplefilter("ignore", DeprecationWarning)
                values = np.asarray(variable.numpy(), "float32")
            if np.any(np.abs(values) > TRAINED_ABOVE):
                return True
    return False


def warn_scratch_recipe_for_trained(base_model, recipe):
    """Warn when `recipe` was left None (scratch) for a backbone whose
    weights look pretrained (`looks_trained`): the scratch settings train
    every layer from the first step with strong views, which can overwrite
    what the weights learnt.
    """
    import warnings

    if recipe is not None or not hasattr(base_model, "weights"):
        return  # not a model: the constructor's own check names the argument
    if not looks_trained(base_model):
        return
    warnings.warn(
        f"The backbone {base_model.name!r} has trained weights (non-zero biases or "
        "batch-norm statistics), but `recipe` is None, so it trains with the scratch "
        "settings (every layer from the first step, the 'simclr' views). For pretrained "
        "weights pass `recipe='pretrained'` (the head first, then the top half of the "
        "backbone at a lower rate, milder views); pass `recipe='scratch'` to keep the "
        "scratch settings without this warning.",
        UserWarning,
        stacklevel=3,
    )


def recipe_arguments(recipe, num_of_unfrozen_layers=None, augmentation=None):
    """What `recipe` makes of `SimCLR`'s arguments, decided here only.

    The scratch recipe keeps them (its views: `"simclr"` unless
    `augmentation` is given). The pretrained recipe starts with the
    backbone frozen (0 layers train: the projection head learns first) and
    draws the `"mild"` views unless `augmentation` is given; it unfreezes
    the backbone by its own schedule, so a `num_of_unfrozen_layers` is a
    conflict and raises (leave it None, or pass a `GradualUnfreeze` with
    your own stages to `fit()`).

    Args:
        recipe: `"scratch"`, `"pretrained"` or None (scratch).
        num_of_unfrozen_layers: As passed to `SimCLR`.
        augmentation: As passed to `SimCLR`.

    Returns:
        `(recipe, num_of_unfrozen_layers, augmentation)`.

    Example:
    >>> recipe_arguments("pretrained")
    ('pretrained', 0, 'mild')
    >>> recipe_arguments("pretrained", num_of_unfrozen_layers=2)
    Traceback (most recent call last):
    ...
    ValueError: `num_of_unfrozen_layers` applies to the scratch recipe only: ...
    """
    recipe = check_recipe(recipe)
    if augmentation is None:
        augmentation = RECIPE_AUGMENTATION[recipe]
    if recipe == "scratch":
        return recipe, num_of_unfrozen_layers, augmentation
    check_unfrozen_layers(recipe, num_of_unfrozen_layers)
    return recipe, 0, augmentation


def recipe_callbacks(recipe, base_model, learning_rate=None, keep_rates=False):
    """The callbacks `recipe` trains with: none for scratch; for pretrained
    the `GradualUnfreeze` of `pretrained_schedule` (the head alone at
    `HEAD_LEARNING_RATE`, then the top half of the backbone at
    `learning_rate`, default `BACKBONE_LEARNING_RATE`).

    Args:
        recipe: `"scratch"` or `"pretrained"`.
        base_model: The backbone.
        learning_rate: Rate of the backbone stage (None: the recipe's).
        keep_rates: Keep the optimizer's rate in every stage (a LARS
            recipe's warm-up + cosine schedule).

    Returns:
        A list of callbacks.
    """
    if check_recipe(recipe) == "scratch":
        return []
    if keep_rates:
        rates = dict(head_learning_rate=None, learning_rate=None)
    else:
        rates = dict(learning_rate=learning_rate or BACKBONE_LEARNING_RATE)
    return [GradualUnfreeze(pretrained_schedule(None, base_model, **rates))]


def pretrained_schedule(
    epochs,
    base_model,
    head_epochs=1,
    head_learning_rate=HEAD_LEARNING_RATE,
    learning_rate=BACKBONE_LEARNING_RATE,
    share=BACKBONE_SHARE,
):
    """The `"pretrained"` recipe's stages as a `GradualUnfreeze` schedule.

    Epochs `[0, head_epochs)`: the projection head alone (0 backbone layers)
    at `head_learning_rate`. Then the top `share` of the backbone's weighted
    layers (at least one) at `learning_rate` for the remaining epochs. With
    a single epoch only the head trains.

    Args:
        epochs: Epochs of the whole run, or None (the stage after the
            head epochs is listed; a run that ends before it never reaches it).
        base_model: The backbone (its weighted layers are counted).
        head_epochs: Epochs with the backbone frozen.
        head_learning_rate: Adam rate while only the head trains.
        learning_rate: Rate once backbone layers train (None: keep the
            optimizer's rate).
        share: Share of the weighted layers, counted from the top, that
            train after the head epochs (1.0: all of them).

    Returns:
        `{epoch: (n_unfrozen, learning_rate)}` for `GradualUnfreeze`.

    Example:
    >>> base = keras.Sequential([keras.Input((4,))] + [keras.layers.Dense(2) for _ in range(4)])
    >>> pretrained_schedule(4, base)
    {0: (0, 0.001), 1: (2, 0.0005)}
    """
    if epochs is not None:
        epochs = check_int(epochs, "epochs", minimum=1)
    head_epochs = check_int(head_epochs, "head_epochs", minimum=0)
    share = check_fraction(share, "share")
    n_weighted = len(weighted_layers(base_model))
    schedule = {}
    if head_epochs:
        schedule[0] = (0, head_learning_rate)
    start = head_epochs if epochs is None else min(head_epochs, epochs)
    if epochs is None or start < epochs:
        n = -1 if share == 1 else max(1, min(n_weighted, math.ceil(share * n_weighted)))
        schedule[start] = (n, learning_rate)
    return {k: (n, lr) if lr is not None else n for k, (n, lr) in schedule.items()}


def parse_unfreeze_schedule(text, base_model, epochs=None):
    """Parse the CLI's `--unfreeze-schedule`: `EPOCH:LAYERS[:LR],...`.

    `LAYERS` is a count of the backbone's last weighted layers, `-1` (all),
    or a percentage such as `50%` of them; `EPOCH` is 0-based; `LR` is a
    finite rate > 0. Each epoch may be listed once.

    Args:
        text: e.g. `"0:0:1e-3,1:50%:5e-4,2:-1"`.
        base_model: The backbone (for percentages and the range check).
        epochs: Optional epochs of the run: a stage at `epochs` or later
            would never apply and is refused.

    Returns:
        A `GradualUnfreeze` schedule dict.

    Raises:
        ValueError: naming the item and the rule it breaks.

    Example:
    >>> base = keras.Sequential([keras.Input((4,))] + [keras.layers.Dense(2) for _ in range(4)])
    >>> parse_unfreeze_schedule("0:0:1e-3,2:50%", base)
    {0: (0, 0.001), 2: 2}
    >>> parse_unfreeze_schedule("0:0:nan", base)
    Traceback (most recent call last):
    ...
    ValueError: `--unfreeze-schedule` must be EPOCH:LAYERS[:LR] items ...
    """
    n_weighted = len(weighted_layers(base_model))
    schedule = {}
    for item in str(text).split(","):
        parts = [p.strip() for p in item.split(":")]
        try:
            if len(parts) not in (2, 3):
                raise ValueError
            epoch = int(parts[0])
            if parts[1].endswith("%"):
                share = float(parts[1][:-1]) / 100
                if not 0 <= share <= 1:
                    raise ValueError
                layers = -1 if share == 1 else int(round(share * n_weighted))
            else:
                layers = int(parts[1])
            lr = float(parts[2]) if len(parts) == 3 else None
            if epoch < 0 or layers < -1 or layers > n_weighted:
                raise ValueError
            if lr is not None and not (math.isfinite(lr) and lr > 0):
                raise ValueError
        except ValueError:
            raise ValueError(
                "`--unfreeze-schedule` must be EPOCH:LAYERS[:LR] items separated by commas, "
                "LAYERS a count of the backbone's last weighted layers (0 to "
                f"{n_weighted}), -1 for all, or a percentage such as 50%, LR a finite rate "
                "> 0; e.g. "
                f"0:0:1e-3,1:50%:5e-4,2:-1. Received: {item!r} in {text!r}"
            ) from None
        if epoch in schedule:
            raise ValueError(
                f"`--unfreeze-schedule` must list each epoch once; epoch {epoch} has two "
                f"stages. Received: {item!r} in {text!r}"
            )
        if epochs is not None and epoch >= epochs:
            raise ValueError(
                f"`--unfreeze-schedule` stages must start at an epoch the run reaches: with "
                f"--epochs {epochs} (epochs 0 to {epochs - 1}, 0-based) the stage at epoch "
                f"{epoch} would never apply. Received: {item!r} in {text!r}"
            )
        schedule[epoch] = (layers, lr) if lr is not None else layers
    return schedule
