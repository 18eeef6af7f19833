"""SimCLR's training recipe: LARS, square-root or linear learning-rate
scaling, linear warm-up then cosine decay, and the paper's projection heads.

`SimCLR(..., optimizer="lars")` and `feat_dims_ph="simclr_v1"` /
`"simclr_v2"` use these; they are public for custom training loops.
"""

import math

import keras

from simclr_keras._checks import check_choice, check_int
from simclr_keras._export import simclr_export

OPTIMIZER_RECIPES = ("lars", "lars_linear")
HEAD_RECIPES = ("simclr_v1", "simclr_v2")


def paper_learning_rate(batch_size, scaling="sqrt"):
    """SimCLR's peak learning rate for a batch size.

    Args:
        batch_size: Source images per step `B`.
        scaling: `"sqrt"`: `0.075 * sqrt(B)` (SimCLR appendix B.1 and v2:
            better for small batches and short runs); `"linear"`:
            `0.3 * B / 256`. The two agree at B = 4096.

    Returns:
        The peak learning rate, a float.
    """
    check_choice(scaling, "scaling", ("sqrt", "linear"))
    if scaling == "sqrt":
        return 0.075 * math.sqrt(batch_size)
    return 0.3 * batch_size / 256


@simclr_export("simclr_keras.WarmupCosine")
class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to `peak`, then cosine decay to 0: SimCLR's schedule.

    The length of the run is often only known when training starts, so
    `steps_per_epoch` and `epochs` may be left None and set once with
    `configure` (`SimCLR.fit` does it from `len(data)` and `epochs`); until
    then the rate is `peak`. The warm-up lasts `warmup_epochs` (10 in the
    paper), at most `max_warmup_fraction` of the run (10 %, so a 15-epoch
    run warms up for 1.5 epochs). Built on
    `keras.optimizers.schedules.CosineDecay` with `warmup_steps`.

    Args:
        peak: Learning rate at the end of the warm-up.
        steps_per_epoch: Optimizer steps per epoch, or None.
        epochs: Epochs of the whole run, or None.
        warmup_epochs: Epochs of linear warm-up.
        max_warmup_fraction: Cap of the warm-up as a fraction of the run.

    Returns:
        A `LearningRateSchedule`.

    Example:
    >>> schedule = WarmupCosine(0.6, steps_per_epoch=100, epochs=100)
    >>> round(float(schedule(1000)), 6)  # end of the 10-epoch warm-up
    0.6

    Reference:
        Chen et al., SimCLR, ICML 2020, section B.1 and appendix B.9;
        Goyal et al., "Accurate, Large Minibatch SGD", 2017 (warm-up).
    """

    def __init__(
        self, peak, steps_per_epoch=None, epochs=None, warmup_epochs=10, max_warmup_fraction=0.1
    ):
        self.peak = float(peak)
        self.warmup_epochs = float(warmup_epochs)
        self.max_warmup_fraction = float(max_warmup_fraction)
        self.steps_per_epoch = None
        self.epochs = None
        if steps_per_epoch is not None and epochs is not None:
            self.configure(steps_per_epoch, epochs)

    @property
    def configured(self):
        return self.steps_per_epoch is not None

    def configure(self, steps_per_epoch, epochs):
        """Set the length of the run (once; later calls keep the first)."""
        if self.configured:
            return
        self.steps_per_epoch = check_int(steps_per_epoch, "steps_per_epoch", minimum=1)
        self.epochs = check_int(epochs, "epochs", minimum=1)

    def steps(self):
        """`(warmup_steps, total_steps)` of the configured run."""
        total = self.steps_per_epoch * self.epochs
        warmup = min(self.warmup_epochs, self.max_warmup_fraction * self.epochs)
        return int(round(warmup * self.steps_per_epoch)), total

    def __call__(self, step):
        if not self.configured:
            return keras.ops.convert_to_tensor(self.peak, "float32")
        warmup, total = self.steps()
        cosine = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=0.0,
            decay_steps=max(total - warmup, 1),
            alpha=0.0,
            warmup_target=self.peak,
            warmup_steps=warmup,
        )
        return cosine(step)

    def get_config(self):
        return {
            "peak": self.peak,
            "steps_per_epoch": self.steps_per_epoch,
            "epochs": self.epochs,
            "warmup_epochs": self.warmup_epochs,
            "max_warmup_fraction": self.max_warmup_fraction,
        }


def paper_optimizer(recipe, batch_size, learning_rate=None):
    """LARS with SimCLR's settings and a `WarmupCosine` schedule.

    Args:
        recipe: `"lars"` (square-root scaling) or `"lars_linear"`.
        batch_size: Source images per step.
        learning_rate: Peak rate; None: `paper_learning_rate`.

    Returns:
        A `simclr_keras.optimizers.LARS` (momentum 0.9, weight decay 1e-6,
        batch-norm and bias variables excluded, eta 0.001).
    """
    from simclr_keras.optimizers import LARS

    scaling = "linear" if recipe == "lars_linear" else "sqrt"
    peak = learning_rate if learning_rate is not None else paper_learning_rate(batch_size, scaling)
    return LARS(learning_rate=WarmupCosine(peak), momentum=0.9, weight_decay=1e-6)


def make_optimizer(optimizer=None, batch_size=None, learning_rate=None):
    """The optimizer `SimCLR` compiles with.

    Args:
        optimizer: A Keras optimizer (returned as is), a Keras optimizer name
            (default `"adam"`), or a recipe in `OPTIMIZER_RECIPES`.
        batch_size: Source images per step (the recipes scale by it).
        learning_rate: The rate for a name (default 1e-3), or the recipe's
            peak rate (default: its scaling rule).

    Returns:
        A `keras.optimizers.Optimizer`.

    Example:
    >>> type(make_optimizer("lars", 64)).__name__
    'LARS'
    """
    if optimizer in OPTIMIZER_RECIPES:
        return paper_optimizer(optimizer, batch_size, learning_rate)
    if optimizer is None or isinstance(optimizer, str):
        rate = 1e-3 if learning_rate is None else learning_rate
        return keras.optimizers.get(
            {"class_name": optimizer or "adam", "config": {"learning_rate": rate}}
        )
    return optimizer


def default_head_dims(width):
    """The projection head `SimCLR` and the CLI use when none is given:
    `[width, min(128, width // 2)]` for a backbone of feature width `width`
    (hidden layer as wide as the features, as in SimCLR; a 128-d output,
    or half the width for a narrow backbone).

    Args:
        width: The backbone's feature width.

    Returns:
        A list of two ints.

    Example:
    >>> default_head_dims(2048), default_head_dims(512), default_head_dims(128)
    ([2048, 128], [512, 128], [128, 64])
    """
    width = int(width)
    return [width, max(1, min(128, width // 2))]


def head_dims(recipe, width, out_dim=128):
    """Dense sizes of SimCLR's projection heads (used with batch norm).

    Args:
        recipe: `"simclr_v1"` (2 layers: width, 128) or `"simclr_v2"`
            (3 layers: width, width, 128).
        width: The backbone's feature width (hidden width = it).
        out_dim: Output size (128 in both papers).

    Returns:
        A list of ints.
    """
    if recipe == "simclr_v1":
        return [int(width), out_dim]
    if recipe == "simclr_v2":
        return [int(width), int(width), out_dim]
    raise ValueError(
        f"`feat_dims_ph` must be a list of ints or one of {HEAD_RECIPES}. "
        f"Received: feat_dims_ph={recipe!r}"
    )
