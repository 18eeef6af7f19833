"""Weight-space interpolation between two versions of one backbone (WiSE-FT)."""

import numpy as np

from simclr_keras._checks import check_number


def interpolate_weights(start, end, alpha):
    """`(1 - alpha) * start + alpha * end`, weight by weight (WiSE-FT).

    Interpolating every weight between a pretrained network and its tuned
    version keeps much of what tuning gained and undoes much of what it lost,
    at no cost at inference: the result is an ordinary network of the same
    architecture. Batch-norm moving means and variances are interpolated
    like every other weight (as WiSE-FT's code does with the whole state);
    whoever uses the result should score it, as `BackboneGuard` does, rather
    than assume the statistics fit. Weights that are not floating point
    (counters, seeds) take the `end` value.

    Args:
        start: The start's weights (`model.get_weights()`).
        end: The tuned weights, same shapes in the same order.
        alpha: In [0, 1]: 0 gives `start`, 1 gives `end`.

    Returns:
        A list of NumPy arrays, for `model.set_weights`.

    Example:
    >>> interpolate_weights([np.zeros(2)], [np.ones(2)], 0.25)[0].tolist()
    [0.25, 0.25]

    Reference:
        Wortsman et al., "Robust fine-tuning of zero-shot models", CVPR 2022.
    """
    alpha = check_number(alpha, "alpha", minimum=0, maximum=1)
    if len(start) != len(end):
        raise ValueError(
            "`start` and `end` must hold the weights of the same backbone. Received: "
            f"{len(start)} and {len(end)} arrays"
        )
    out = []
    for i, (a, b) in enumerate(zip(start, end)):
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape:
            raise ValueError(
                "`start` and `end` must hold the weights of the same backbone. Received: "
                f"weight {i} of shapes {a.shape} and {b.shape}"
            )
        if np.issubdtype(b.dtype, np.floating):
            mixed = (1.0 - alpha) * a.astype("float64") + alpha * b.astype("float64")
            out.append(mixed.astype(b.dtype))
        else:
            out.append(b.copy())
    return out
