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

from simclr_keras.backbones.freezing import weighted_layers
from simclr_keras.training.unfreeze import GradualUnfreeze

RECIPES = ("scratch", "pretrained")
HEAD_LEARNING_RATE = 1e-3
BACKBONE_LEARNING_RATE = 5e-4
BACKBONE_SHARE = 0.5  # of the weighted layers, from the top
# The augmentation policy (`layers.augmentation.AUGMENTATION_POLICIES`) of the
# recipe when none is given.
AUGMENTATION = "mild"
# Epochs of the CLI's `pretrain` with this recipe when `--epochs` is not given.
EPOCHS = 6


def check_recipe(recipe):
    """Return `recipe` ("scratch" for None) or raise naming the choices."""
    if recipe is None:
        return "scratch"
    if recipe not in RECIPES:
        raise ValueError(f"`recipe` must be None or one of {RECIPES}. Received: recipe={recipe!r}")
    return recipe


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
        epochs: Epochs of the whole run.
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
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"`epochs` must be an int >= 1. Received: epochs={epochs!r}")
    if isinstance(head_epochs, bool) or not isinstance(head_epochs, int) or head_epochs < 0:
        raise ValueError(
            f"`head_epochs` must be an int >= 0. Received: head_epochs={head_epochs!r}"
        )
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share <= 1:
        raise ValueError(f"`share` must be in (0, 1]. Received: share={share!r}")
    n_weighted = len(weighted_layers(base_model))
    schedule = {}
    if head_epochs:
        schedule[0] = (0, head_learning_rate)
    start = min(head_epochs, epochs)
    if start < epochs:
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


def pretrained_unfreeze(simclr, epochs, learning_rate=BACKBONE_LEARNING_RATE):
    """The `GradualUnfreeze` that `SimCLR(recipe="pretrained").fit` adds.

    Args:
        simclr: The model (its `base_model` is unfrozen stage by stage).
        epochs: Epochs of the whole run.
        learning_rate: Rate of the backbone stages; with a LARS recipe
            (`optimizer="lars"`) the stages keep its warm-up + cosine rate.

    Returns:
        A `GradualUnfreeze` over `pretrained_schedule(epochs, ...)` (the
        batch-norm layers of the unfrozen top half train with it).
    """
    rates = {}
    if getattr(simclr, "optimizer_recipe", None):
        rates = dict(head_learning_rate=None, learning_rate=None)
    elif learning_rate is not None:
        rates = dict(learning_rate=learning_rate)
    schedule = pretrained_schedule(epochs, simclr.base_model, **rates)
    return GradualUnfreeze(schedule)
