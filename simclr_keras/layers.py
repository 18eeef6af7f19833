"""Layers of the SimCLR head: the projection MLP and `SoftmaxCosineSim`."""

import numbers

import keras
from keras import ops

from simclr_keras.losses import _check_temperature, contrastive_logits


@keras.saving.register_keras_serializable(package="simclr_keras")
class SoftmaxCosineSim(keras.layers.Layer):
    """Softmax over temperature-scaled cosine similarities of two views.

    The input holds the `2B` projections of a batch: rows `0..B-1` are view a,
    rows `B..2B-1` view b of the same images. The output is the `(B, 4B)`
    block `[softmax([ab | aa]) | softmax([ba | bb])]`, self-similarities
    masked out, so each row sums to 2. Trained against the `[I|O|I|O]` target
    (`ioio_target`) with `IOIOCrossEntropy`, the loss is exactly NT-Xent.

    The layer always computes in float32 (it is given a float32 dtype policy),
    so it is safe under mixed precision.

    Args:
        temperature: Softmax temperature, > 0 (default 0.1).
        output_mode: `"softmax"` (probabilities, rows sum to 2) or
            `"log_softmax"` (log-probabilities, what the loss takes).
        **kwargs: Standard `keras.layers.Layer` arguments.

    Returns:
        A `(B, 4B)` float32 tensor.

    Example:
    >>> z = keras.random.normal((8, 16), seed=0)   # B = 4
    >>> SoftmaxCosineSim(temperature=0.5)(z).shape
    (4, 16)

    Reference:
        Chen et al., "A Simple Framework for Contrastive Learning of Visual
        Representations", ICML 2020.
    """

    def __init__(self, temperature=0.1, output_mode="softmax", **kwargs):
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        _check_temperature(temperature)
        if output_mode not in ("softmax", "log_softmax"):
            raise ValueError(
                "`output_mode` must be 'softmax' or 'log_softmax'. "
                f"Received: output_mode={output_mode!r}"
            )
        self.temperature = float(temperature)
        self.output_mode = output_mode

    def call(self, inputs):
        z = ops.cast(inputs, "float32")
        half = ops.shape(z)[0] // 2
        logits_a, logits_b = contrastive_logits(
            z[:half], z[half:], self.temperature
        )
        normalize = (
            ops.softmax if self.output_mode == "softmax" else ops.log_softmax
        )
        return ops.concatenate(
            [normalize(logits_a, axis=1), normalize(logits_b, axis=1)],
            axis=1,
        )

    def compute_output_shape(self, input_shape):
        n = input_shape[0]
        if n is None:
            return (None, None)
        return (n // 2, 2 * n)

    def get_config(self):
        config = super().get_config()
        config.update({"temperature": self.temperature, "output_mode": self.output_mode})
        config.pop("dtype", None)
        return config


def build_projection_head(
    input_dim,
    feat_dims_ph,
    use_batch_norm=False,
    l1=0.0,
    name="projection_head",
):
    """Build the MLP projection head as a `keras.Sequential`.

    `feat_dims_ph=[2048, 128]` gives Dense(2048) -> ReLU -> Dense(128): a ReLU
    between Dense layers and a linear last layer. With `use_batch_norm` every
    Dense is followed by BatchNormalization (SimCLR v2; the last one without
    a learned shift). The head's layers can be sliced for evaluation at P1/P2
    (see `simclr_keras.evaluation`).

    Args:
        input_dim: Size of the pooled backbone features.
        feat_dims_ph: Output sizes of the Dense layers, all positive ints.
        use_batch_norm: Add BatchNormalization after each Dense.
        l1: L1 activity regularisation of the last Dense layer (0 turns it
            off; the old Keras 2 template used it and it dominated the loss).
        name: Model name.

    Returns:
        A built `keras.Sequential`.

    Example:
    >>> head = build_projection_head(512, [256, 64])
    >>> head.output_shape
    (None, 64)
    """
    check_feat_dims(feat_dims_ph)
    layers = [keras.Input(shape=(int(input_dim),))]
    last = len(feat_dims_ph) - 1
    for i, units in enumerate(feat_dims_ph):
        regularizer = keras.regularizers.L1(l1) if (i == last and l1) else None
        layers.append(
            keras.layers.Dense(
                int(units),
                use_bias=not use_batch_norm,
                activity_regularizer=regularizer,
                name=f"ph_dense_{i}",
            )
        )
        if use_batch_norm:
            layers.append(
                keras.layers.BatchNormalization(
                    center=i != last, name=f"ph_bn_{i}"
                )
            )
        if i != last:
            layers.append(keras.layers.ReLU(name=f"ph_relu_{i}"))
    return keras.Sequential(layers, name=name)


def check_feat_dims(feat_dims_ph):
    """Raise a clear `ValueError` unless `feat_dims_ph` is a non-empty list
    of positive ints."""
    ok = isinstance(feat_dims_ph, (list, tuple)) and len(feat_dims_ph) > 0
    if ok:
        for units in feat_dims_ph:
            is_int = isinstance(units, numbers.Integral) and not isinstance(
                units, bool
            )
            if not is_int or units <= 0:
                ok = False
    if not ok:
        raise ValueError(
            "`feat_dims_ph` must be a non-empty list of positive integers, "
            "the sizes of the projection head's Dense layers, e.g. "
            f"[2048, 128]. Received: feat_dims_ph={feat_dims_ph!r}"
        )
