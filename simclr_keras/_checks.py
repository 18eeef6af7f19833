"""Argument validators shared across the package.

Each raises one `ValueError` that names the argument, the rule and the value
received, in Keras' "Received:" style, before any work starts.
"""

import numbers


def is_number(value):
    """True for real numbers, False for bools and strings."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_temperature(temperature):
    """Return `temperature` as a float, or raise unless it is a positive number.

    Args:
        temperature: The softmax temperature of NT-Xent.

    Returns:
        `float(temperature)`.

    Example:
    >>> check_temperature(0.5)
    0.5
    """
    if not is_number(temperature) or not temperature > 0:
        raise ValueError(
            "`temperature` must be a positive number (SimCLR uses 0.1 to "
            f"0.5). Received: temperature={temperature!r}"
        )
    return float(temperature)


def check_range(value, name, upper=None):
    """Return `value` as a float pair `(low, high)` with `0 < low <= high`.

    Args:
        value: A pair of numbers.
        name: The argument's name as the caller's user wrote it, for the
            error message.
        upper: Optional bound `high` must not exceed.

    Returns:
        `(float(low), float(high))`.

    Example:
    >>> check_range((0.08, 1), "scale", upper=1)
    (0.08, 1.0)
    """
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(
            f"`{name}` must be a pair (low, high). Received: {name}={value!r}"
        ) from None
    if not 0 < low <= high:
        raise ValueError(f"`{name}` must satisfy 0 < low <= high. Received: {name}={value!r}")
    if upper is not None and high > upper:
        raise ValueError(f"`{name}` must be at most {upper:g}. Received: {name}={value!r}")
    return low, high
