"""LARS, the large-batch optimizer SimCLR is trained with, for Keras 3, and
`rebuild_optimizer`, which moves an optimizer onto a new set of trainable
variables (gradual unfreezing, a resumed checkpoint).

Keras 3 ships no LARS, so this is a backend-agnostic `keras.optimizers.Optimizer`
(TensorFlow, JAX and PyTorch) with the update of the official SimCLR
implementation (`google-research/simclr`, `tf2/lars_optimizer.py`, with
`classic_momentum=True`, the setting SimCLR uses).
"""

import re

import keras
from keras import ops

from simclr_keras._checks import check_number, is_number
from simclr_keras._export import simclr_export

# Matched with `re.search` against `variable.path` (e.g. "dense/bias",
# "batch_normalization/gamma", "bn1/beta", "layer_normalization/gamma").
# "gamma"/"beta" catch normalization scales and offsets whatever their layer is
# called; the layer-name patterns catch the default names of Keras layers.
DEFAULT_EXCLUDE = ("bias", "gamma", "beta", "batch_normalization", "layer_normalization")


def _check_patterns(name, patterns):
    if isinstance(patterns, str):
        patterns = (patterns,)
    if not isinstance(patterns, (list, tuple)):
        raise ValueError(
            f"`{name}` must be a list or tuple of regular expressions (strings). "
            f"Received: {name}={patterns!r}"
        )
    for pattern in patterns:
        if not isinstance(pattern, str):
            raise ValueError(
                f"`{name}` must contain only strings (regular expressions). "
                f"Received: {name}={patterns!r}"
            )
        try:
            re.compile(pattern)
        except re.error as error:
            raise ValueError(
                f"`{name}` contains an invalid regular expression {pattern!r} "
                f"({error}). Received: {name}={patterns!r}"
            ) from None
    return tuple(patterns)


def _matches(patterns, path):
    return any(re.search(pattern, path) is not None for pattern in patterns)


@simclr_export("simclr_keras.LARS")
class LARS(keras.optimizers.Optimizer):
    """Layer-wise Adaptive Rate Scaling (LARS) with momentum, as in SimCLR.

    For every variable `w` with gradient `g`, with learning rate `lr`,
    momentum `m` and momentum buffer `v`:

    ```
    g <- g + weight_decay * w                # unless excluded from weight decay
    trust = eta * ||w|| / ||g||              # 1.0 if excluded from layer
                                             # adaptation, or if a norm is 0
    v <- m * v + lr * trust * g
    w <- w - v                               # nesterov: w - (m * v + lr * trust * g)
    ```

    Norms are L2 norms over the whole variable. The weight decay is the L2
    penalty of the official code: it is added to the gradient *before* the
    trust ratio, it is not decoupled (so the base-class `weight_decay`, which
    applies decoupled decay, stays `None`; the value given here is stored in
    `self.lars_weight_decay`).

    Exclusions match each pattern with `re.search` against `variable.path`,
    which in Keras 3 is `"<layer name>/<variable name>"` (e.g. `"dense/bias"`,
    `"batch_normalization/gamma"`, `"bn1/beta"`), prefixed by the names of
    enclosing models (e.g. `"sequential/dense/bias"`). The defaults,
    `("bias", "gamma", "beta", "batch_normalization", "layer_normalization")`,
    exclude biases and the scales/offsets of `BatchNormalization` and
    `LayerNormalization` layers whatever the layer is named (the official
    SimCLR list is `("batch_normalization", "bias")`, which relies on
    TensorFlow's default layer names). Being substring searches, they also
    match any variable whose layer or model name contains one of these
    words; pass anchored patterns such as `r"/bias$"` for stricter matching.

    Args:
        learning_rate: A float > 0, or a
            `keras.optimizers.schedules.LearningRateSchedule` (or a callable
            taking no argument). SimCLR uses `0.3 * batch_size / 256` with a
            linear warm-up and cosine decay.
        momentum: Float in `[0, 1)`, the momentum `m`.
        weight_decay: Float >= 0, the L2 penalty added to the gradient.
            SimCLR uses `1e-6` (`1e-6` to `1e-4` depending on the setting).
        eta: Float > 0, the trust coefficient of the layer-wise rate.
        exclude_from_weight_decay: List or tuple of regular expressions; a
            variable whose `path` matches any of them gets no weight decay.
        exclude_from_layer_adaptation: List or tuple of regular expressions;
            a variable whose `path` matches any of them uses a trust ratio of
            1 (plain momentum SGD). `None` (the default) means the same list
            as `exclude_from_weight_decay`, as in the official code.
        nesterov: Bool, whether to use Nesterov momentum.
        name: The name of the optimizer.
        **kwargs: Other arguments of `keras.optimizers.Optimizer`
            (`clipnorm`, `global_clipnorm`, `clipvalue`, `use_ema`,
            `gradient_accumulation_steps`, ...), except `weight_decay`,
            which is this optimizer's own.

    Example:
    >>> import keras
    >>> import numpy as np
    >>> from simclr_keras.optimizers import LARS
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> model.compile(optimizer=LARS(learning_rate=0.1), loss="mse")
    >>> x = np.ones((8, 4), "float32")
    >>> y = np.zeros((8, 2), "float32")
    >>> history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    >>> int(model.optimizer.iterations)
    1
    >>> type(model.optimizer).__name__
    'LARS'

    Reference:
        - [You, Gitman and Ginsburg, 2017. Large Batch Training of
          Convolutional Networks](https://arxiv.org/abs/1708.03888).
        - [Chen et al., 2020. A Simple Framework for Contrastive Learning of
          Visual Representations](https://arxiv.org/abs/2002.05709),
          appendix B.1.
    """

    def __init__(
        self,
        learning_rate=0.3,
        momentum=0.9,
        weight_decay=1e-6,
        eta=0.001,
        exclude_from_weight_decay=DEFAULT_EXCLUDE,
        exclude_from_layer_adaptation=None,
        nesterov=False,
        name="LARS",
        **kwargs,
    ):
        # Validated before `super().__init__`, which would give a less
        # specific message (and rejects int learning rates).
        if is_number(learning_rate) or isinstance(learning_rate, (str, bool)):
            learning_rate = check_number(
                learning_rate,
                "learning_rate",
                positive=True,
                why="or a `keras.optimizers.schedules.LearningRateSchedule`",
            )
        momentum = check_number(momentum, "momentum", minimum=0, below=1)
        weight_decay = check_number(weight_decay, "weight_decay", minimum=0)
        eta = check_number(eta, "eta", positive=True)
        if not isinstance(nesterov, bool):
            raise ValueError(f"`nesterov` must be True or False. Received: nesterov={nesterov!r}")
        exclude_from_weight_decay = _check_patterns(
            "exclude_from_weight_decay", exclude_from_weight_decay
        )
        if exclude_from_layer_adaptation is None:
            exclude_from_layer_adaptation = exclude_from_weight_decay
        exclude_from_layer_adaptation = _check_patterns(
            "exclude_from_layer_adaptation", exclude_from_layer_adaptation
        )

        # `weight_decay` is deliberately not passed on: the base class would
        # apply it as decoupled (AdamW-style) decay on top of the LARS update.
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.momentum = momentum
        self.lars_weight_decay = weight_decay
        self.eta = eta
        self.nesterov = nesterov
        # `exclude_from_weight_decay` is a method of the base class.
        self.lars_exclude_from_weight_decay = exclude_from_weight_decay
        self.exclude_from_layer_adaptation = exclude_from_layer_adaptation

    def build(self, var_list):
        """Create a momentum buffer per variable and resolve the exclusions."""
        if self.built:
            return
        super().build(var_list)
        self.momentums = []
        # Per variable, in `_get_variable_index` order; decided once here so
        # the (Python) regex matching is not traced into the update step.
        self._lars_use_weight_decay = []
        self._lars_use_adaptation = []
        for variable in var_list:
            self.momentums.append(
                self.add_variable_from_reference(reference_variable=variable, name="momentum")
            )
            path = getattr(variable, "path", None) or variable.name
            self._lars_use_weight_decay.append(
                self.lars_weight_decay > 0
                and not _matches(self.lars_exclude_from_weight_decay, path)
            )
            self._lars_use_adaptation.append(not _matches(self.exclude_from_layer_adaptation, path))

    def update_step(self, gradient, variable, learning_rate):
        """Apply one LARS step to `variable`."""
        dtype = variable.dtype
        index = self._get_variable_index(variable)
        velocity = self.momentums[index]
        learning_rate = ops.cast(learning_rate, dtype)
        gradient = ops.cast(gradient, dtype)
        momentum = ops.cast(self.momentum, dtype)

        if self._lars_use_weight_decay[index]:
            decay = ops.cast(self.lars_weight_decay, dtype)
            gradient = ops.add(gradient, ops.multiply(decay, variable))

        if self._lars_use_adaptation[index]:
            w_norm = ops.sqrt(ops.sum(ops.square(variable)))
            g_norm = ops.sqrt(ops.sum(ops.square(gradient)))
            both_positive = ops.logical_and(ops.greater(w_norm, 0), ops.greater(g_norm, 0))
            # The inner `where` keeps the unused branch finite (no 0 / 0).
            safe_g_norm = ops.where(both_positive, g_norm, ops.ones_like(g_norm))
            trust_ratio = ops.where(
                both_positive,
                ops.cast(self.eta, dtype) * w_norm / safe_g_norm,
                ops.ones_like(w_norm),
            )
            learning_rate = ops.multiply(learning_rate, trust_ratio)

        step = ops.multiply(learning_rate, gradient)
        new_velocity = ops.add(ops.multiply(momentum, velocity), step)
        self.assign(velocity, new_velocity)
        if self.nesterov:
            update = ops.add(ops.multiply(momentum, new_velocity), step)
        else:
            update = new_velocity
        self.assign_sub(variable, update)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "momentum": self.momentum,
                "weight_decay": self.lars_weight_decay,
                "eta": self.eta,
                "exclude_from_weight_decay": list(self.lars_exclude_from_weight_decay),
                "exclude_from_layer_adaptation": list(self.exclude_from_layer_adaptation),
                "nesterov": self.nesterov,
            }
        )
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        # The base class replaces a serialized schedule in place; work on a copy.
        return super().from_config(dict(config), custom_objects=custom_objects)


def rebuild_optimizer(model, learning_rate=None):
    """Rebuild `model.optimizer` over the current trainable variables.

    Call it after changing `trainable` flags. The new optimizer is a copy of
    the old one (same class and config); every optimizer variable whose path
    matches one of the old optimizer's (the iteration counter, the slots of
    variables that stay trainable) keeps its value, slots of newly trainable
    variables start at zero. The compiled train function is rebuilt.

    Args:
        model: A compiled `keras.Model`.
        learning_rate: Optional new learning rate (a float); the optimizer
            must not use a `LearningRateSchedule` then.

    Returns:
        The new optimizer, also set as `model.optimizer`.

    Example:
    >>> set_unfrozen_layers(simclr.base_model, 3)           # doctest: +SKIP
    >>> rebuild_optimizer(simclr, learning_rate=1e-4)       # doctest: +SKIP
    """
    old = model.optimizer
    if old is None:
        raise ValueError(
            "`model` must be compiled with an optimizer before its "
            "optimizer can be rebuilt. Received: model.optimizer=None"
        )
    check_stage_learning_rate(old, learning_rate)
    new = old.__class__.from_config(old.get_config())
    new.build(model.trainable_variables)
    if old.built:
        saved = {v.path: v for v in old.variables}
        for variable in new.variables:
            source = saved.get(variable.path)
            if source is not None and tuple(source.shape) == tuple(variable.shape):
                # A host copy: on JAX, sharing the buffer would let the train
                # step's buffer donation delete the old optimizer's values.
                variable.assign(keras.ops.convert_to_numpy(source))
    if learning_rate is not None:
        new.learning_rate = float(learning_rate)
    model.optimizer = new
    # `.keras` files store the optimizer's config from the compile config.
    compile_config = getattr(model, "_compile_config", None)
    if compile_config is not None and compile_config.config.get("optimizer") is old:
        compile_config.config["optimizer"] = new
    if getattr(model, "compiled", False):
        model.make_train_function(force=True)
    return new


def check_stage_learning_rate(optimizer, learning_rate):
    """Refuse a learning rate that cannot be set on `optimizer` (not positive, or over a schedule)."""
    if check_number(learning_rate, "learning_rate", positive=True, allow_none=True) is None:
        return
    schedule = keras.optimizers.schedules.LearningRateSchedule
    if isinstance(getattr(optimizer, "_learning_rate", None), schedule):
        raise ValueError(
            "A stage's learning rate cannot replace a LearningRateSchedule; "
            "drop the per-stage learning rate or use a float learning rate. "
            f"Received: learning_rate={learning_rate!r} for an optimizer with "
            f"a {type(optimizer._learning_rate).__name__}"
        )
