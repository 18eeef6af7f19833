"""Argument validators shared across the package.

Each raises one `ValueError` that names the argument, the rule and the value
received, in Keras' "Received:" style, before any work starts. Numbers given
as strings (`"0.1"`, `"3"`) are refused with that message rather than failing
later in a comparison with a `TypeError`.
"""

import math
import numbers
import warnings

import numpy as np


def is_number(value):
    """True for real numbers, False for bools and strings."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def is_int(value):
    """True for integers (Python or NumPy), False for bools, floats and strings."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _received(name, value):
    hint = " (a string: pass a number, not text)" if isinstance(value, str) else ""
    return f"Received: {name}={value!r}{hint}"


def check_int(value, name, minimum=None, maximum=None, allow_none=False, why=""):
    """Return `value` as an int, or raise unless it is an int in [minimum, maximum].

    Args:
        value: The value to check.
        name: The argument's name, for the message.
        minimum: Smallest allowed value, or None.
        maximum: Largest allowed value, or None.
        allow_none: Accept None (returned unchanged).
        why: Optional reason appended to the rule, e.g. "so every image has negatives".

    Returns:
        `int(value)`, or None.

    Example:
    >>> check_int(3, "epochs", minimum=1)
    3
    """
    if value is None and allow_none:
        return None
    ok = is_int(value)
    if ok and minimum is not None and value < minimum:
        ok = False
    if ok and maximum is not None and value > maximum:
        ok = False
    if not ok:
        if minimum is not None and maximum is not None:
            rule = f"an int from {minimum} to {maximum}"
        elif minimum is not None:
            rule = f"an int >= {minimum}"
        elif maximum is not None:
            rule = f"an int <= {maximum}"
        else:
            rule = "an int"
        rule += " or None" if allow_none else ""
        rule += f" {why}" if why else ""
        raise ValueError(f"`{name}` must be {rule}. {_received(name, value)}")
    return int(value)


def check_number(
    value, name, minimum=None, maximum=None, *, below=None, positive=False, allow_none=False, why=""
):
    """Return `value` as a float, or raise unless it is a finite real number in range.

    Args:
        value: The value to check.
        name: The argument's name, for the message.
        minimum: Smallest allowed value (inclusive), or None.
        maximum: Largest allowed value (inclusive), or None.
        below: Bound that `value` must stay under (exclusive), or None.
        positive: Require `value > 0`.
        allow_none: Accept None (returned unchanged).
        why: Optional reason appended to the rule.

    Returns:
        `float(value)`, or None.

    Example:
    >>> check_number(0.5, "temperature", positive=True)
    0.5
    """
    if value is None and allow_none:
        return None
    ok = is_number(value) and math.isfinite(float(value))
    if ok and positive and not value > 0:
        ok = False
    if ok and minimum is not None and value < minimum:
        ok = False
    if ok and maximum is not None and value > maximum:
        ok = False
    if ok and below is not None and not value < below:
        ok = False
    if not ok:
        parts = ["a positive number" if positive else "a finite number"]
        if minimum is not None and below is not None:
            parts.append(f"in [{minimum}, {below})")
        elif below is not None:
            parts.append(f"< {below}")
        elif minimum is not None and maximum is not None:
            parts.append(f"in [{minimum}, {maximum}]")
        elif minimum is not None:
            parts.append(f">= {minimum}")
        elif maximum is not None:
            parts.append(f"<= {maximum}")
        rule = " ".join(parts) + (" or None" if allow_none else "") + (f" {why}" if why else "")
        raise ValueError(f"`{name}` must be {rule}. {_received(name, value)}")
    return float(value)


def check_probability(value, name):
    """Return `value` as a float, or raise unless it is a number in [0, 1].

    Example:
    >>> check_probability(0.5, "blur_probability")
    0.5
    """
    return check_number(value, name, 0.0, 1.0)


def check_fraction(value, name="fraction", *, allow_one=True):
    """Return `value` as a float, or raise unless it is a number in (0, 1].

    Args:
        value: The value to check.
        name: The argument's name, for the message.
        allow_one: Accept 1 (all of it); False for a share that must leave
            something on both sides, e.g. a test split: (0, 1).

    Returns:
        `float(value)`.

    Example:
    >>> check_fraction(0.1)
    0.1
    """
    ok = is_number(value) and 0 < value and (value <= 1 if allow_one else value < 1)
    if not ok:
        interval = "(0, 1]" if allow_one else "(0, 1)"
        raise ValueError(
            f"`{name}` must be a number in {interval} (a fraction, e.g. 0.1 for 10%). "
            f"{_received(name, value)}"
        )
    return float(value)


def check_jitter_strength(strength, name="strength"):
    """Return `strength` as a float, or raise unless it is a number >= 0.

    Args:
        strength: Colour jitter strength `s`.
        name: The argument's name as the caller's user wrote it.

    Returns:
        `float(strength)`.

    Example:
    >>> check_jitter_strength(0.5)
    0.5
    """
    return check_number(strength, name, minimum=0, why="(SimCLR uses 0.5 to 1.0)")


def check_choice(value, name, choices):
    """Return `value`, or raise unless it is one of `choices`.

    Example:
    >>> check_choice("crop", "resize_mode", ("crop", "stretch"))
    'crop'
    """
    if not any(value is c or (type(value) is type(c) and value == c) for c in choices):
        raise ValueError(f"`{name}` must be one of {tuple(choices)}. Received: {name}={value!r}")
    return value


def check_seed(value, name="seed"):
    """Return `value` as an int, or None; raise unless it is None or an int >= 0.

    Example:
    >>> check_seed(3)
    3
    """
    return check_int(value, name, minimum=0, allow_none=True)


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
    return check_number(temperature, "temperature", positive=True, why="(SimCLR uses 0.1 to 0.5)")


def check_same_length(name_a, a, name_b, b):
    """Raise unless `len(a) == len(b)` (e.g. images and their labels).

    Example:
    >>> check_same_length("images", [1, 2], "labels", [0, 1])
    """
    if len(a) != len(b):
        raise ValueError(
            f"`{name_a}` and `{name_b}` must have the same length (one label per "
            f"image). Received: {len(a)} {name_a} and {len(b)} {name_b}"
        )


def check_labels(labels, num_images, name="labels", per="image"):
    """Return `labels` as an int64 array `(num_images,)`, or raise naming the rule.

    The one rule for labels everywhere (data sets, kNN, linear probe,
    fine-tuning, label fractions): integer class ids. Whole-number floats
    are accepted; NaN (a missing label), fractions and strings are not (map
    class names to ids first, e.g. `np.unique(names, return_inverse=True)`).

    Args:
        labels: One label per image (or per row of features).
        num_images: How many there must be.
        name: The argument's name, for the message.
        per: What each label belongs to, for the message (`"image"`, `"row"`).

    Returns:
        An int64 array.

    Example:
    >>> check_labels([0, 1, 1], 3).tolist()
    [0, 1, 1]
    """
    try:
        values = np.asarray(labels)
    except (TypeError, ValueError):
        values = np.asarray([], dtype=object)
    if values.ndim != 1 or len(values) != num_images:
        raise ValueError(
            f"`{name}` must hold one label per {per} ({num_images}). "
            f"Received: {name} of shape {values.shape}"
        )
    if values.dtype.kind in "iu":
        return values.astype(np.int64)
    if values.dtype.kind == "f":
        missing = np.isnan(values)
        if missing.any():
            first = int(np.argmax(missing))
            raise ValueError(
                f"`{name}` must be integer class ids, with none missing. Received: "
                f"{int(missing.sum())} NaN label(s) of {len(values)}, the first {name}[{first}]; "
                "drop those rows or give them a class"
            )
        bad = ~np.isfinite(values) | (values != np.round(values))
        if not bad.any():
            return values.astype(np.int64)
        first = int(np.argmax(bad))
        raise ValueError(
            f"`{name}` must be integer class ids. Received: {int(bad.sum())} "
            f"non-integer value(s), the first {name}[{first}]={values[first].item()!r}"
        )
    raise ValueError(
        f"`{name}` must be integer class ids (map class names to 0, 1, ... first, e.g. "
        f"`np.unique(names, return_inverse=True)[1]`). Received: {name} of dtype "
        f"{values.dtype}, e.g. {values[:3].tolist()!r}"
    )


def check_classes(labels, name, min_classes):
    """Raise unless integer `labels` hold at least `min_classes` classes.

    Example:
    >>> check_classes(np.array([0, 1]), "labels", 2)
    """
    classes = np.unique(labels)
    if len(classes) < min_classes:
        raise ValueError(
            f"`{name}` must hold at least {min_classes} classes to train a "
            f"classifier. Received: {name} with classes {classes.tolist()}"
        )


def check_fractions(fractions, name="fractions"):
    """Return label fractions as a tuple of floats in (0, 1]; one number is one fraction.

    Example:
    >>> check_fractions([0.1, 1])
    (0.1, 1.0)
    """
    items = _non_empty_items(fractions, name, "numbers in (0, 1]", is_number(fractions))
    return tuple(check_fraction(f, f"{name}[{i}]") for i, f in enumerate(items))


def check_seeds(seeds, name="seeds"):
    """Return seeds as a tuple of ints >= 0; one int is one seed.

    Example:
    >>> check_seeds([0, 1])
    (0, 1)
    """
    items = _non_empty_items(seeds, name, "ints >= 0", is_int(seeds))
    return tuple(check_int(s, f"{name}[{i}]", minimum=0) for i, s in enumerate(items))


def _non_empty_items(value, name, what, scalar):
    """`value` as a non-empty tuple (a scalar or a string is one item), or a ValueError."""
    items = (value,) if scalar or isinstance(value, str) else value
    try:
        items = tuple(items)
    except TypeError:
        items = ()
    if not items:
        raise ValueError(f"`{name}` must be a non-empty list of {what}. Received: {name}={value!r}")
    return items


def check_features(features, name="features"):
    """Return `features` as a float array `(N, d)` of finite values, or raise.

    Example:
    >>> check_features([[0.0, 1.0]]).shape
    (1, 2)
    """
    try:
        x = np.asarray(features)
    except (TypeError, ValueError):
        x = np.asarray([], dtype=object)
    if x.dtype.kind not in "fiu":
        raise ValueError(
            f"`{name}` must be a numeric array (N, d). Received: {name} of type "
            f"{type(features).__name__} with dtype {x.dtype}"
        )
    if x.ndim != 2 or len(x) == 0 or x.shape[1] == 0:
        raise ValueError(f"`{name}` must be a non-empty array (N, d). Received: shape {x.shape}")
    finite = np.isfinite(x)
    if not finite.all():
        row = int(np.argmax(~finite.all(axis=1)))
        raise ValueError(
            f"`{name}` must be finite. Received: {int((~finite).sum())} NaN/inf "
            f"value(s), the first in row {row}"
        )
    return x


def check_labelled_pair(pair, name, min_classes=1):
    """Unpack `(x, labels)` and check one integer label per row.

    Returns:
        `(x, labels)` with labels as int64.

    Example:
    >>> x, y = check_labelled_pair(([[1.0], [2.0]], [0, 1]), "train")
    """
    if not isinstance(pair, (list, tuple)) or len(pair) != 2:
        raise ValueError(
            f"`{name}` must be a pair (images or features, labels). Received: "
            f"{name} of type {type(pair).__name__}"
            + (f" with {len(pair)} items" if isinstance(pair, (list, tuple)) else "")
        )
    x, labels = pair
    n = len(x) if hasattr(x, "__len__") else None
    if n is None:
        raise ValueError(f"`{name}[0]` must be an array. Received: {type(x).__name__}")
    if not hasattr(labels, "__len__") or len(labels) != n:
        got = len(labels) if hasattr(labels, "__len__") else type(labels).__name__
        raise ValueError(
            f"`{name}` must hold one label per row: {name}[0] and {name}[1] must have the "
            f"same length. Received: {n} rows and {got} labels"
        )
    labels = check_labels(labels, n, f"{name}[1]")
    check_classes(labels, f"{name}[1]", min_classes)
    return x, labels


def warn_unseen_classes(train_labels, test_labels):
    """Warn when the test labels hold classes the training labels lack."""
    unseen = np.setdiff1d(np.unique(test_labels), np.unique(train_labels))
    if len(unseen):
        warnings.warn(
            f"The test labels hold {len(unseen)} class(es) absent from the training "
            f"labels, which no classifier can predict: {unseen.tolist()[:20]}",
            stacklevel=3,
        )


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
