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
