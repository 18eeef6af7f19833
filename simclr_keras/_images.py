"""Image arrays on the host: the one validation rule and the one conversion to [0, 1].

The rule, used by every entry point that takes images (`SimCLR.fit` and
`evaluate`, `DataGeneratorSimCLR`, `pseudo_labels`, the evaluation helpers):

- shape `(N, H, W, C)`, or `(N, H, W)` for one channel, with `N >= 1`;
- integer images hold values in [0, 255] (uint8 is the usual dtype);
- float images hold finite values in [0, 1];
- anything else (floats in [0, 255], uint16, [-1, 1], NaN or inf pixels,
  bool, object or string arrays) raises one `ValueError` that names the
  argument, the rule, what was found and how to fix it. Nothing is guessed:
  float images above 1 are never silently divided by 255.

The check reads every pixel once with vectorised reductions (min, max and,
only when they are not finite, a count), so it costs about as much as one
copy of the array; uint8 arrays need no range check at all.
"""

import numpy as np

# Float images may overshoot [0, 1] by rounding (e.g. after a resize).
RANGE_TOLERANCE = 1e-3


def _shape_error(name, shape, dtype=None):
    got = f"{name} with shape {shape}" + (f" and dtype {dtype}" if dtype is not None else "")
    return ValueError(
        f"`{name}` must be a non-empty array of shape (N, H, W) or (N, H, W, C), "
        f"uint8 in [0, 255] or float in [0, 1]. Received: {got}"
    )


def _first_bad(mask):
    """Index tuple of the first True in `mask`."""
    return tuple(int(i) for i in np.unravel_index(int(np.argmax(mask)), mask.shape))


def _integer_fix(dtype, lo, hi):
    """How to bring integer images outside [0, 255] to 8 bits, for their dtype."""
    if dtype == np.int8:
        return (
            "int8 holds [-128, 127], not pixel values: if they are uint8 pixels read as "
            "signed, `images.view('uint8')`; if they are offset by 128, "
            "`(images.astype('int16') + 128).astype('uint8')`"
        )
    if lo < 0:
        return (
            "Negative values are not pixel values: rescale them to [0, 255] (uint8) or "
            "[0, 1] (float) by the range they were stored with"
        )
    if dtype == np.uint16 or hi <= 65535:
        return (
            "Scale them to 8 bits first, e.g. `(images // 257).astype('uint8')` for "
            "16-bit images, or pass float images in [0, 1]"
        )
    return (
        "Scale them to 8 bits by the bit depth they were stored with, e.g. "
        "`(images / (2**bits - 1) * 255).astype('uint8')`, or pass float images in [0, 1]"
    )


def check_image_range(images, name="images"):
    """Raise unless integer `images` are in [0, 255] and float ones finite in [0, 1].

    Reads every value once (vectorised); returns `images` unchanged.

    Args:
        images: A NumPy array.
        name: The argument's name, for the message.

    Returns:
        `images`.

    Example:
    >>> check_image_range(np.zeros((2, 4, 4, 3), "float32")).shape
    (2, 4, 4, 3)
    """
    dtype = images.dtype
    if images.size == 0 or dtype == np.uint8:
        return images
    if np.issubdtype(dtype, np.integer):
        lo, hi = int(images.min()), int(images.max())
        if lo < 0 or hi > 255:
            raise ValueError(
                f"Integer `{name}` must hold values in [0, 255] (8-bit images). "
                f"Received: {name} of dtype {dtype} with values in [{lo}, {hi}]. "
                + _integer_fix(dtype, lo, hi)
            )
        return images
    lo, hi = images.min(), images.max()
    if not (np.isfinite(lo) and np.isfinite(hi)):
        bad = ~np.isfinite(images)
        count, first = int(np.count_nonzero(bad)), _first_bad(bad)
        raise ValueError(
            f"`{name}` must hold finite values (no NaN or inf pixels). Received: "
            f"{name} with {count} non-finite value(s), the first at index {first} "
            f"(image {first[0]}). "
            "Drop or repair those images, e.g. with `np.nan_to_num`"
        )
    lo, hi = float(lo), float(hi)
    if lo < -RANGE_TOLERANCE:
        fix = (
            "map [-1, 1] images to [0, 1] with `(images + 1) / 2`"
            if lo >= -1 - RANGE_TOLERANCE and hi <= 1 + RANGE_TOLERANCE
            else "rescale them to [0, 1], or pass uint8 images in [0, 255]"
        )
        raise ValueError(
            f"Float `{name}` must be in [0, 1] (or pass uint8 in [0, 255]). Received: "
            f"{name} with values in [{lo:g}, {hi:g}]; {fix}"
        )
    if hi > 1 + RANGE_TOLERANCE:
        fix = (
            "divide by 255 (`images / 255.0`) or cast to uint8 (`images.astype('uint8')`)"
            if hi <= 255 + RANGE_TOLERANCE
            else "rescale them to [0, 1]"
        )
        raise ValueError(
            f"Float `{name}` must be in [0, 1] (or pass uint8 in [0, 255]). Received: "
            f"{name} with values in [{lo:g}, {hi:g}]; {fix}"
        )
    return images


def _check_one_kind(images, name):
    """Raise when a list of images mixes integer and float arrays.

    Stacked together they become one float array, where the uint8 ones
    read as [0, 255] and the float ones as [0, 1]: no single scaling fixes
    both, so the message names which items are which.
    """
    kinds = {}
    for i, image in enumerate(images):
        kind = getattr(getattr(image, "dtype", None), "kind", None)
        if kind in ("u", "i"):
            kinds.setdefault("integer", []).append(i)
        elif kind == "f":
            kinds.setdefault("float", []).append(i)
    if len(kinds) > 1:

        def items(indices):
            shown = ", ".join(str(i) for i in indices[:5])
            return shown + (f" (and {len(indices) - 5} more)" if len(indices) > 5 else "")

        raise ValueError(
            f"`{name}` must hold images of one kind: uint8 in [0, 255] or float in "
            f"[0, 1]. Received: a list mixing integer images (items {items(kinds['integer'])}) "
            f"and float images (items {items(kinds['float'])}); convert one kind, e.g. "
            "`img / 255.0` for the uint8 ones only, before stacking"
        )


def check_image_shape(images, name="images", channels=None, allow_grey=False):
    """Validate rank, size, dtype and channel count (not the values); return NumPy.

    Args:
        images: Array-like `(N, H, W, C)` or `(N, H, W)`.
        name: The argument's name, for the message.
        channels: Expected channel count (e.g. the backbone's), or None.
        allow_grey: Also accept one channel (repeated to `channels` later).

    Returns:
        `images` as a NumPy array (not copied when it already is one).

    Example:
    >>> check_image_shape(np.zeros((2, 8, 8, 3), "uint8"), channels=3).shape
    (2, 8, 8, 3)
    """
    if getattr(images, "shape", None) is None and not isinstance(images, (list, tuple)):
        raise ValueError(
            f"`{name}` must be an image array (N, H, W, C). Received: {name} of "
            f"type {type(images).__name__}"
        )
    if isinstance(images, (list, tuple)):
        _check_one_kind(images, name)
    images = np.asarray(images)
    dtype = images.dtype
    if images.ndim not in (3, 4) or images.shape[0] == 0 or 0 in images.shape:
        raise _shape_error(name, images.shape)
    if not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)):
        raise _shape_error(name, images.shape, dtype)
    have = 1 if images.ndim == 3 else images.shape[-1]
    if channels is not None and have != channels and not (allow_grey and have == 1):
        fix = ""
        if have == 1 and channels == 3:
            fix = "; repeat the grey channel first: `np.repeat(images, 3, axis=-1)`"
        elif have in (3, 4) and channels == 1:
            fix = "; convert them to greyscale first"
        elif have == 4 and channels == 3:
            fix = "; drop the alpha channel first: `images[..., :3]`"
        raise ValueError(
            f"`{name}` must have {channels} channel(s), as the backbone's input. "
            f"Received: {name} with shape {images.shape} ({have} channel(s)){fix}"
        )
    return images


def check_images(images, name="images", channels=None, allow_grey=False):
    """Validate an image array by the one rule of this module; return it as NumPy.

    `check_image_shape` and then `check_image_range` (every value, once).

    Args:
        images: Array-like `(N, H, W, C)` or `(N, H, W)`.
        name: The argument's name, for the message.
        channels: Expected channel count (e.g. the backbone's), or None.
        allow_grey: Also accept one channel (repeated to `channels` later).

    Returns:
        `images` as a NumPy array (not copied when it already is one).

    Example:
    >>> check_images(np.zeros((2, 8, 8, 3), "uint8"), channels=3).shape
    (2, 8, 8, 3)
    """
    return check_image_range(check_image_shape(images, name, channels, allow_grey), name)


def to_unit_range_np(images):
    """float32 [0, 1] images with a channel axis: integer dtypes are divided
    by 255, float images are in [0, 1] already (see `check_images`).
    """
    images = np.asarray(images)
    x = images.astype("float32")
    if np.issubdtype(images.dtype, np.integer):
        x /= 255.0
    return x[..., None] if x.ndim == 3 else x
