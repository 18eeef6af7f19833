"""`SoftmaxCosineSim`: the similarity block that NT-Xent is scored on."""

import keras
from keras import ops

from simclr_keras._checks import check_choice, check_temperature
from simclr_keras._export import simclr_export
from simclr_keras.losses import contrastive_logits, split_views


@simclr_export("simclr_keras.layers.SoftmaxCosineSim")
class SoftmaxCosineSim(keras.layers.Layer):
    """Softmax over temperature-scaled cosine similarities of two views.

    The input holds the `2B` projections of a batch: rows `0..B-1` are view a,
    rows `B..2B-1` view b of the same images. The output is the `(B, 4B)`
    block `[softmax([ab | aa]) | softmax([ba | bb])]`, self-similarities
    masked out, so each row sums to 2. With `output_mode="log_softmax"`,
    half the cross-entropy of this block against the `[I|O|I|O]` target
    (identity, zeros, identity, zeros) is exactly `nt_xent` (the equivalence
    the original Keras SimCLR trained with; `SimCLR` itself trains with
    `losses.NTXent` on the projections).

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
    >>> tuple(SoftmaxCosineSim(temperature=0.5)(z).shape)
    (4, 16)

    Reference:
        Chen et al., "A Simple Framework for Contrastive Learning of Visual
        Representations", ICML 2020.
    """

    def __init__(self, temperature=0.1, output_mode="softmax", **kwargs):
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        check_temperature(temperature)
        self.temperature = float(temperature)
        self.output_mode = check_choice(output_mode, "output_mode", ("softmax", "log_softmax"))

    def call(self, inputs):
        logits_a, logits_b = contrastive_logits(
            *split_views(ops.cast(inputs, "float32")), self.temperature
        )
        normalize = ops.softmax if self.output_mode == "softmax" else ops.log_softmax
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
