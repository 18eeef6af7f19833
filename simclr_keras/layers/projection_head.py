"""The MLP projection head that maps pooled backbone features to the loss space."""

import keras

from simclr_keras._checks import is_int


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
            layers.append(keras.layers.BatchNormalization(center=i != last, name=f"ph_bn_{i}"))
        if i != last:
            layers.append(keras.layers.ReLU(name=f"ph_relu_{i}"))
    return keras.Sequential(layers, name=name)


def check_feat_dims(feat_dims_ph):
    """Raise a clear `ValueError` unless `feat_dims_ph` is a non-empty list
    of positive ints.
    """
    ok = isinstance(feat_dims_ph, (list, tuple)) and len(feat_dims_ph) > 0
    if ok:
        for units in feat_dims_ph:
            if not is_int(units) or units <= 0:
                ok = False
    if not ok:
        raise ValueError(
            "`feat_dims_ph` must be a non-empty list of positive integers, "
            "the sizes of the projection head's Dense layers, e.g. "
            f"[2048, 128]. Received: feat_dims_ph={feat_dims_ph!r}"
        )
