"""Image files to uint8 RGB arrays: listing, decoding, resizing, in parallel.

Host-side work only (PIL and NumPy): every file is decoded once, converted
to RGB, turned upright from its EXIF orientation and resized to a fixed
size. Files that cannot be decoded are reported, never raised mid-run.
"""

import math
import os
import warnings
from concurrent.futures import ThreadPoolExecutor

import keras
import numpy as np
from PIL import Image, ImageOps

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
RESIZE_MODES = ("stretch", "crop")
_EXIF_ORIENTATION = 0x0112
# Orientations 5-8 rotate by 90 degrees, so width and height swap.
_SWAPS_AXES = (5, 6, 7, 8)
# Folders of this many files or more show a progress bar while decoding.
PROGRESS_MIN_FILES = 256


def default_workers():
    """Decoding threads, one per core up to 32: PIL releases the GIL while it decodes."""
    return max(1, min(32, os.cpu_count() or 1))


def is_image_file(name):
    """True when `name` ends with a known image extension (any case)."""
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _walk_once(directory):
    """`os.walk(directory, followlinks=True)` that enters each real folder once.

    Folders are identified by `(st_dev, st_ino)` (their `os.path.realpath`
    where the file system reports no inode), so a symlink to a parent or to a
    folder seen before is skipped: loops cannot hang the walk and repeated
    links cannot count an image twice. Hidden entries are skipped; names are
    kept as the OS gives them, so non-UTF-8 names survive (as surrogate
    escapes) and open again.
    """
    seen = set()

    def key(path):
        try:
            st = os.stat(path)
        except OSError:
            return None
        return (st.st_dev, st.st_ino) if st.st_ino else os.path.realpath(path)

    for root, dirs, files in os.walk(directory, followlinks=True):
        k = key(root)
        if k is not None and k in seen:
            dirs[:] = []
            continue
        if k is not None:
            seen.add(k)
        keep = []
        for d in sorted(d for d in dirs if not d.startswith(".")):
            dk = key(os.path.join(root, d))
            if dk is None or dk not in seen:
                keep.append(d)
        dirs[:] = keep
        yield root, dirs, files


def list_image_files(directory):
    """Image files under `directory`, recursively, sorted, hidden entries skipped.

    Each real folder is read once, however many symlinks lead to it.

    Args:
        directory: A folder path.

    Returns:
        A sorted list of file paths.
    """
    found = []
    for root, _, files in _walk_once(directory):
        found.extend(
            os.path.join(root, f) for f in files if not f.startswith(".") and is_image_file(f)
        )
    return sorted(found)


def bit_depth(image):
    """Bits per sample of an integer PIL image in mode `I` or `I;16*`.

    From the mode (`I;16`, `I;16B`, ...: 16), else the file: a PNG holds at
    most 16 bits, a TIFF says so in its BitsPerSample tag; otherwise 32.

    Args:
        image: A `PIL.Image.Image` in an integer mode.

    Returns:
        An int: 16 or 32 (or the TIFF's own count).
    """
    if image.mode.startswith("I;16"):
        return 16
    if image.format == "PNG":
        return 16
    tags = getattr(image, "tag_v2", None)
    bits = tags.get(258) if tags is not None else None  # TIFF BitsPerSample
    if isinstance(bits, (tuple, list)):
        bits = bits[0] if bits else None
    return int(bits) if bits else 32


def to_rgb(image, background=255, bits=None):
    """Convert a PIL image of any mode to 8-bit RGB.

    Transparent pixels (RGBA, LA, PA, P with a transparency entry) are
    composited on a uniform `background` grey level (255: white). Integer
    images of more than 8 bits (16-bit PNG and TIFF, 32-bit TIFF) are scaled
    by their file's bit depth, `value * 255 / (2 ** bits - 1)`, whatever
    values they hold: a dark 16-bit photo stays dark. Float (`F`) images in
    [0, 1] are scaled by 255, others are clipped to [0, 255]; a float image
    with NaN or inf pixels is refused (`ValueError`, so the file is skipped
    with a warning naming it), as `check_images` refuses such arrays.

    Args:
        image: A `PIL.Image.Image`.
        background: Grey level 0-255 that transparency is composited on.
        bits: Bits per sample of an integer image, when known from the file
            that a transformed copy no longer carries; default
            `bit_depth(image)`.

    Returns:
        A `PIL.Image.Image` in mode RGB.

    Raises:
        ValueError: For a float image holding NaN or inf values.
    """
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I", "F") or mode.startswith("I;"):
        values = np.asarray(image, dtype=np.float64)
        if mode == "F":
            finite = np.isfinite(values)
            if not finite.all():
                bad = int(values.size - np.count_nonzero(finite))
                raise ValueError(
                    f"the float image holds {bad} NaN or inf pixel(s) of {values.size}"
                    + (" (every pixel)" if bad == values.size else "")
                    + "; repair or remove the file"
                )
            if values.size and values.max() <= 1.0:
                values = values * 255.0
        else:
            values = values * (255.0 / (2.0 ** (bits or bit_depth(image)) - 1))
        values = np.clip(values, 0, 255).round().astype(np.uint8)
        return Image.fromarray(values).convert("RGB")
    if mode == "P" and "transparency" in image.info:
        image, mode = image.convert("RGBA"), "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (background,) * 3 + (255,))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    return image.convert("RGB")


def _crop_box(size, target):
    """Centred box of `size` with the aspect ratio of `target` (both (w, h))."""
    (w, h), (tw, th) = size, target
    if w * th > h * tw:  # wider than the target: trim the sides
        bw, bh = h * tw / th, h
    else:
        bw, bh = w, w * th / tw
    left, top = (w - bw) / 2, (h - bh) / 2
    return (left, top, left + bw, top + bh)


def load_image(path, image_size, resize_mode="crop", background=255):
    """Decode one file to a uint8 `(H, W, 3)` array.

    Args:
        path: Image file path.
        image_size: `(H, W)` of the output.
        resize_mode: `"stretch"` resizes to `(H, W)` ignoring the aspect
            ratio; `"crop"` keeps the aspect ratio and crops the centre.
        background: Grey level that transparency is composited on.

    Returns:
        A uint8 array of shape `(H, W, 3)`.

    Raises:
        Whatever PIL raises for an unreadable file (OSError and others).
    """
    height, width = image_size
    with Image.open(path) as image:
        orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
        stored = (height, width) if orientation in _SWAPS_AXES else (width, height)
        box = _crop_box(image.size, stored) if resize_mode == "crop" else (0, 0) + image.size
        # JPEG can decode at 1/2, 1/4 or 1/8 scale, which is much faster;
        # ask for at least the resolution the final resize needs.
        need = (
            math.ceil(stored[0] * image.size[0] / max(box[2] - box[0], 1e-9)),
            math.ceil(stored[1] * image.size[1] / max(box[3] - box[1], 1e-9)),
        )
        image.draft(None, need)
        # The bit depth comes from the file, which the upright copy forgets.
        bits = bit_depth(image) if image.mode == "I" or image.mode.startswith("I;") else None
        image = ImageOps.exif_transpose(image)
        image = to_rgb(image, background, bits)
        box = _crop_box(image.size, (width, height)) if resize_mode == "crop" else None
        if image.size != (width, height) or box not in (None, (0, 0) + image.size):
            image = image.resize((width, height), Image.Resampling.BILINEAR, box=box)
        array = np.asarray(image, dtype=np.uint8)
    return array


def try_load_image(args):
    """`load_image` for a thread pool: never raises, reports the failure.

    Args:
        args: `(path, image_size, resize_mode, background)`, as `load_image`
            takes them.

    Returns:
        `(array, None)` for a decoded image, or `(None, "ErrorType: message")`
        for a file that could not be read or decoded.
    """
    path, image_size, resize_mode, background = args
    try:
        return load_image(path, image_size, resize_mode, background), None
    except Exception as error:  # noqa: BLE001 - any decoder failure marks a bad file
        return None, f"{type(error).__name__}: {error}"


def decode_files(
    paths, image_size, resize_mode="crop", background=255, *, out=None, workers=None, verbose=1
):
    """Decode many files in a thread pool, keeping going past bad ones.

    Args:
        paths: File paths.
        image_size: `(H, W)` of every output image.
        resize_mode: `"stretch"` or `"crop"` (see `load_image`).
        background: Grey level that transparency is composited on.
        out: Optional uint8 array `(len(paths), H, W, 3)` to write into;
            None validates only (decodes and discards).
        workers: Decoding threads (default: one per core, up to 32).
        verbose: Show a `keras.utils.Progbar` for `PROGRESS_MIN_FILES`
            files or more.

    Returns:
        `(ok, errors)`: a bool array of decoded files and a dict
        `{index: reason}` for the others.
    """
    paths = list(paths)
    ok = np.zeros(len(paths), dtype=bool)
    errors = {}
    bar = (
        keras.utils.Progbar(len(paths), unit_name="image")
        if (verbose and len(paths) >= PROGRESS_MIN_FILES)
        else None
    )
    chunk = 256
    with ThreadPoolExecutor(workers or default_workers()) as pool:
        for start in range(0, len(paths), chunk):
            jobs = [(p, image_size, resize_mode, background) for p in paths[start : start + chunk]]
            for i, (array, error) in enumerate(pool.map(try_load_image, jobs), start):
                if error is None:
                    ok[i] = True
                    if out is not None:
                        out[i] = array
                else:
                    errors[i] = error
            if bar is not None:
                bar.update(min(start + chunk, len(paths)))
    return ok, errors


def warn_skipped_files(skipped, total, stacklevel=2):
    """Warn once, naming each file that could not be decoded and why.

    Args:
        skipped: `(path, reason)` pairs (as `decode_files` reports them).
        total: How many files were read, skipped ones included.
        stacklevel: As `warnings.warn` takes it, seen from the caller.

    Returns:
        None; nothing is warned when `skipped` is empty.
    """
    if skipped:
        warnings.warn(
            f"Skipped {len(skipped)} unreadable image file(s) of {total}: "
            + "; ".join(f"{p} ({why})" for p, why in skipped),
            stacklevel=stacklevel + 1,
        )


def scan_directory(directory, labels="inferred"):
    """Image files of a folder and, from class sub-folders, their labels.

    Args:
        directory: Folder path, searched recursively.
        labels: `"inferred"`: first-level sub-folders are classes (sorted
            names give ids 0, 1, ...) and images directly in `directory`
            are left out; None, or no sub-folders: every image, unlabelled.

    Returns:
        `(paths, labels, class_names, loose)`: labels and class names are
        None when unlabelled; `loose` lists the images left out.
    """
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        what = "is not a folder" if os.path.exists(directory) else "does not exist"
        raise ValueError(f"`directory` {what}. Received: directory={directory!r}")
    if labels not in ("inferred", None):
        raise ValueError(f"`labels` must be 'inferred' or None. Received: labels={labels!r}")
    paths = list_image_files(directory)
    if not paths:
        raise ValueError(
            f"`directory` holds no image files ({', '.join(IMAGE_EXTENSIONS)}). "
            f"Received: directory={directory!r}"
        )
    parts = [os.path.relpath(p, directory).split(os.sep) for p in paths]
    class_names = sorted({q[0] for q in parts if len(q) > 1})
    if labels is None or not class_names:
        return paths, None, None, []
    # A class folder without images keeps its id (so train and test folders
    # number their classes alike) and is reported, not silently dropped.
    folders = sorted(
        d
        for d in os.listdir(directory)
        if not d.startswith(".") and os.path.isdir(os.path.join(directory, d))
    )
    empty = [d for d in folders if d not in set(class_names)]
    if empty:
        warnings.warn(
            f"{len(empty)} class folder(s) in {directory!r} hold no image files "
            f"({', '.join(IMAGE_EXTENSIONS)}); their classes get no images: "
            + ", ".join(repr(d) for d in empty),
            stacklevel=3,
        )
        class_names = sorted(set(class_names) | set(empty))
    index = {name: i for i, name in enumerate(class_names)}
    loose = [p for p, q in zip(paths, parts) if len(q) == 1]
    pairs = [(p, index[q[0]]) for p, q in zip(paths, parts) if len(q) > 1]
    return [p for p, _ in pairs], np.array([y for _, y in pairs]), class_names, loose


def dataframe_files(dataframe, filename_column="filename", label_column=None, base_dir=None):
    """File paths and labels from a table (pandas or its interface).

    Args:
        dataframe: Object with `columns` and `dataframe[column]`.
        filename_column: Column of file names, relative to `base_dir`.
        label_column: Optional column of labels: integer ids are kept,
            other values map to the ids of their sorted unique values.
        base_dir: Folder the file names are relative to.

    Returns:
        `(paths, labels, class_names)`; labels and class names may be None.
    """
    columns = list(getattr(dataframe, "columns", []))
    for arg, column in (("filename_column", filename_column), ("label_column", label_column)):
        if column is not None and column not in columns:
            raise ValueError(
                f"`{arg}` must name a column of the DataFrame (columns: {columns}). "
                f"Received: {arg}={column!r}"
            )
    raw = list(np.asarray(dataframe[filename_column], dtype=object))
    if not raw:
        raise ValueError(f"The DataFrame has no rows. Received: {len(raw)} file names")
    values = None if label_column is None else np.asarray(dataframe[label_column], dtype=object)

    def missing(v):
        return v is None or (isinstance(v, float) and math.isnan(v))

    bad = {}
    for i, v in enumerate(raw):
        if not isinstance(v, (str, bytes, os.PathLike)) or not os.fspath(v):
            bad[i] = f"file name {v!r} is not a path"
        elif values is not None and missing(values[i]):
            bad[i] = f"label {values[i]!r} is missing"
    if bad:
        warnings.warn(
            f"Skipped {len(bad)} of {len(raw)} DataFrame row(s) (`{filename_column}` must be "
            "a file name and any label present): "
            + "; ".join(f"row {i}: {why}" for i, why in list(bad.items())[:20])
            + (" ..." if len(bad) > 20 else ""),
            stacklevel=3,
        )
    keep = [i for i in range(len(raw)) if i not in bad]
    if not keep:
        raise ValueError(f"`{filename_column}` holds no usable file names. Received: {raw[:5]!r}")
    names = [os.fsdecode(raw[i]) for i in keep]
    paths = [os.path.join(os.fspath(base_dir), n) if base_dir is not None else n for n in names]
    if label_column is None:
        return paths, None, None
    values = values[keep]
    if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        return paths, values.astype(np.int64), None
    class_names, labels = np.unique(values.astype(str), return_inverse=True)
    return paths, labels, class_names.tolist()
