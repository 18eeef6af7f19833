"""Building `DataGeneratorSimCLR` from image files: path lists, folders, DataFrames.

Files are decoded and resized once (`image_io.decode_files`), which also
finds the unreadable ones: they are skipped with one warning naming each.
"""

import os
import warnings

import numpy as np

from simclr_keras import image_io as io

DEFAULT_CACHE_LIMIT = 2 * 1024**3


def _check_batch_size(batch_size, num_images, source):
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive int. Received: batch_size={batch_size!r}")
    if batch_size > num_images:
        raise ValueError(
            "`batch_size` must not exceed the number of images, or no full "
            f"batch exists. Received: batch_size={batch_size} for {num_images} "
            f"images{source}"
        )


def _check_image_size(image_size):
    try:
        height, width = (int(v) for v in image_size)
    except (TypeError, ValueError):
        height = width = 0
    if height < 1 or width < 1:
        raise ValueError(f"`image_size` must be (height, width). Received: image_size={image_size!r}")
    return height, width


class FileConstructors:
    """The file-backed constructors of `DataGeneratorSimCLR` (a mixin).

    `from_files` decodes and validates the files, then calls
    `cls(None, batch_size, ..., _files=(cache, paths, decode_args))`.
    """

    @classmethod
    def from_files(cls, paths, image_size, batch_size, *, labels=None, class_names=None,
                   resize_mode="crop", background=255, cache_limit_bytes=DEFAULT_CACHE_LIMIT,
                   decode_workers=None, verbose=1, **kwargs):
        """Images from a list of file paths, decoded once and validated.

        Unreadable files (empty, truncated, corrupt, not an image, missing)
        are skipped with one warning naming each; `skipped_files` lists
        `(path, reason)` pairs.

        Args:
            paths: Image file paths.
            image_size: `(H, W)` every image is resized to.
            batch_size: Images per batch.
            labels: Optional class id per path.
            class_names: Optional names of the label ids.
            resize_mode: `"crop"` (keep the aspect ratio, crop the centre)
                or `"stretch"` (plain resize).
            background: Grey level (0-255) transparency is composited on;
                255 is white.
            cache_limit_bytes: Keep decoded images in memory when
                `N * H * W * 3` bytes fit; 0 never caches.
            decode_workers: Decoding threads (default: one per core, up to 32).
            verbose: Progress bar while decoding 256 files or more.
            **kwargs: Constructor arguments (`shuffle`, `seed`,
                `pseudo_labels`, PyDataset arguments).

        Returns:
            A `DataGeneratorSimCLR`.
        """
        height, width = _check_image_size(image_size)
        if resize_mode not in io.RESIZE_MODES:
            raise ValueError(f"`resize_mode` must be one of {io.RESIZE_MODES}. Received: resize_mode={resize_mode!r}")
        paths = [os.fspath(p) for p in paths]
        if not paths:
            raise ValueError("No image files to load. Received: paths=[]")
        decode = ((height, width), resize_mode, int(background))
        fits = len(paths) * height * width * 3 <= cache_limit_bytes
        cache = np.empty((len(paths), height, width, 3), np.uint8) if fits else None
        ok, errors = io.decode_files(paths, *decode, out=cache, workers=decode_workers, verbose=verbose)
        skipped = [(paths[i], errors[i]) for i in sorted(errors)]
        if skipped:
            warnings.warn(
                f"Skipped {len(skipped)} unreadable image file(s) of {len(paths)}: "
                + "; ".join(f"{p} ({why})" for p, why in skipped),
                stacklevel=3,
            )
        good = np.flatnonzero(ok)
        if not len(good):
            raise ValueError(f"None of the {len(paths)} image files could be decoded, e.g. {skipped[0][0]}")
        if cache is not None and len(good) < len(paths):
            for j, i in enumerate(good):  # compact in place, no second copy
                cache[j] = cache[i]
            cache = cache[: len(good)]
        if labels is not None:
            labels = np.asarray(labels)[good]
        keep = [paths[i] for i in good]
        _check_batch_size(batch_size, len(keep), f" (decoded from {len(paths)} files)")
        decode_args = decode + (decode_workers,)
        gen = cls(None, batch_size, labels=labels, class_names=class_names,
                  _files=(cache, keep, decode_args), **kwargs)
        gen.skipped_files = skipped
        return gen

    @classmethod
    def from_directory(cls, directory, image_size, batch_size, *, labels="inferred", **kwargs):
        """Images from a folder, searched recursively.

        With `labels="inferred"` and class sub-folders, each first-level
        sub-folder is a class (sorted names give ids 0, 1, ...); images
        directly in `directory` are then ignored with a warning. A folder
        without sub-folders is unlabelled (`labels` None). Extensions:
        jpg, jpeg, png, bmp, gif, webp, tif, tiff, in any case.

        Args:
            directory: Folder path.
            image_size: `(H, W)` every image is resized to.
            batch_size: Images per batch.
            labels: `"inferred"` (from sub-folders) or None (unlabelled,
                every image found is used).
            **kwargs: `from_files` and constructor arguments.

        Returns:
            A `DataGeneratorSimCLR` with `labels` and `class_names`.
        """
        paths, labels, class_names, loose = io.scan_directory(directory, labels)
        if loose:
            warnings.warn(
                f"Ignored {len(loose)} image(s) directly in {os.fspath(directory)!r} because "
                "class sub-folders exist (pass labels=None to use every image): "
                + ", ".join(loose), stacklevel=2,
            )
        return cls.from_files(paths, image_size, batch_size, labels=labels,
                              class_names=class_names, **kwargs)

    @classmethod
    def from_dataframe(cls, dataframe, image_size, batch_size, *, filename_column="filename",
                       label_column=None, base_dir=None, **kwargs):
        """Images named in a DataFrame (pandas or anything with its interface).

        Args:
            dataframe: Table with a column of file names.
            image_size: `(H, W)` every image is resized to.
            batch_size: Images per batch.
            filename_column: Column of paths, relative to `base_dir`.
            label_column: Optional column of labels: integer ids are kept,
                other values become ids of their sorted unique values.
            base_dir: Folder the file names are relative to.
            **kwargs: `from_files` and constructor arguments.

        Returns:
            A `DataGeneratorSimCLR`.
        """
        paths, labels, class_names = io.dataframe_files(
            dataframe, filename_column, label_column, base_dir)
        return cls.from_files(paths, image_size, batch_size, labels=labels,
                              class_names=class_names, **kwargs)
