"""`simclr-keras embed`: one feature vector per image of a folder, to a file.

`run` checks the output name, lists the folder's images (recursively, as
`pretrain` does), loads the backbone file as `evaluate` does, then decodes
and embeds the images a chunk at a time (memory stays bounded on a large
folder) and writes `.npz`, `.csv` or `.parquet` atomically: a killed run
leaves the previous file, or none, never half of one.
"""

import csv
import os
import time

import numpy as np

from simclr_keras._atomic import atomic_write
from simclr_keras.data import image_io
from simclr_keras.data.folders import nested_class_root
from simclr_keras.evaluation import extract_features
from simclr_keras.evaluation.features import model_input_size
from simclr_keras_cli import evaluate_checks
from simclr_keras_cli.evaluate import image_side, load_backbone
from simclr_keras_cli.main import print_seconds
from simclr_keras_cli.usage_errors import UsageError, as_usage_error

# Images decoded and embedded at a time: this many batches (a progress line each).
CHUNK_BATCHES = 16


def run(args):
    """Run `embed` with the parsed arguments; returns the exit code."""
    extension = evaluate_checks.check_embed_arguments(args)
    paths, labels = folder_images(args.folder)  # folder errors before loading anything
    backbone = load_backbone(args)
    side = image_side(args, backbone)
    start = time.time()
    features, kept = embed_files(
        backbone, paths, (side, side), args.batch_size, args.preprocessing, args.folder
    )
    print_seconds(
        f"Embedded {len(kept)} images ({features.shape[1]} features each) from {args.folder}",
        start,
    )
    relative = [os.path.relpath(paths[i], args.folder).replace(os.sep, "/") for i in kept]
    labels = None if labels is None else labels[kept]
    atomic_write(args.output, lambda tmp: WRITERS[extension](tmp, features, relative, labels))
    print(f"Features saved to {args.output}")
    return 0


def folder_images(folder):
    """Every image file under `folder` and, where they sit in class sub-folders, labels.

    Args:
        folder: The FOLDER argument, searched recursively.

    Returns:
        `(paths, labels)`: sorted file paths, and a str array of each
        file's first-level sub-folder name ('' for an image directly in
        `folder`), or None when no image sits in a sub-folder.

    Raises:
        UsageError: When `folder` is missing or holds no image files.
    """
    with as_usage_error({"directory": "FOLDER"}):
        paths, _, _, _ = image_io.scan_directory(folder, labels=None)
    parts = [os.path.relpath(p, folder).split(os.sep) for p in paths]
    if all(len(q) == 1 for q in parts):
        return paths, None
    inner = nested_class_root(folder)
    if inner is not None:
        print(
            f"Note: {folder} holds a single folder, so every label is its name; pass {inner} "
            "to label the images by its sub-folders."
        )
    return paths, np.array([q[0] if len(q) > 1 else "" for q in parts], dtype=str)


def embed_files(backbone, paths, size, batch_size, preprocessing=None, where="FOLDER"):
    """Features of image files, decoded and embedded a chunk at a time.

    Unreadable files are skipped with one warning naming each (as
    `DataGeneratorSimCLR.from_files` does). A folder of more than one chunk
    (`CHUNK_BATCHES` batches) gets a progress line per chunk.

    Args:
        backbone: A loaded backbone (`keras.Model`).
        paths: Image file paths.
        size: `(H, W)` the images are decoded at.
        batch_size: Images per forward pass.
        preprocessing: The backbone's input scaling, for a file without its own.
        where: The folder, named in messages.

    Returns:
        `(features, kept)`: float32 `(n, d)` features of the decoded files
        and their indices in `paths` (int array, in order).

    Raises:
        UsageError: When no file can be decoded.
    """
    chunk = batch_size * CHUNK_BATCHES
    declared, _ = model_input_size(backbone)
    parts, kept, skipped = [], [], []
    start = time.time()
    for first in range(0, len(paths), chunk):
        names = paths[first : first + chunk]
        images = np.empty((len(names),) + tuple(size) + (3,), np.uint8)
        ok, errors = image_io.decode_files(names, size, out=images, verbose=0)
        skipped += [(names[i], errors[i]) for i in sorted(errors)]
        good = np.flatnonzero(ok)
        if len(good):
            features = extract_features(
                backbone,
                images[good],
                batch_size=batch_size,
                preprocessing=preprocessing,
                image_size=None if declared else size,
                verbose=0,
            )
            parts.append(features)
            kept.append(first + good)
        done = min(first + chunk, len(paths))
        if len(paths) > chunk:
            print(f"Embedded {done}/{len(paths)} images ({time.time() - start:.0f} s)", flush=True)
    image_io.warn_skipped_files(skipped, len(paths))
    if not parts:
        raise UsageError(
            f"`FOLDER` must hold images that can be decoded; none of its {len(paths)} image "
            f"files could (e.g. {skipped[0][0]}: {skipped[0][1]}). Received: FOLDER={where}"
        )
    return np.concatenate(parts), np.concatenate(kept)


def write_npz(path, features, paths, labels):
    """Write `features`, `paths` and (when not None) `labels` arrays to an `.npz` file.

    Args:
        path: The file to create.
        features: float32 `(N, d)`.
        paths: N file paths relative to FOLDER.
        labels: N class sub-folder names, or None.

    Returns:
        None.
    """
    arrays = {"features": np.asarray(features, np.float32), "paths": np.array(paths, dtype=str)}
    if labels is not None:
        arrays["labels"] = np.array(labels, dtype=str)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def columns(d, labels):
    """The table's column names: path, label (when labelled), f0 ... f{d-1}."""
    return ["path"] + (["label"] if labels is not None else []) + [f"f{j}" for j in range(d)]


def write_csv(path, features, paths, labels):
    """Write one row per image to a `.csv` file: path, label (if any), f0 ... f{d-1}.

    Values are written with 9 significant digits, which read back as the
    same float32 numbers.

    Args:
        path: The file to create.
        features: float32 `(N, d)`.
        paths: N file paths relative to FOLDER.
        labels: N class sub-folder names, or None.

    Returns:
        None.
    """
    with open(path, "w", newline="", encoding="utf-8", errors="surrogateescape") as f:
        writer = csv.writer(f)
        writer.writerow(columns(features.shape[1], labels))
        for i, row in enumerate(features):
            first = [paths[i]] + ([labels[i]] if labels is not None else [])
            writer.writerow(first + [f"{v:.9g}" for v in row.tolist()])


def write_parquet(path, features, paths, labels):
    """Write the `.csv` file's table to a `.parquet` file (needs pandas and pyarrow).

    Args:
        path: The file to create.
        features: float32 `(N, d)`.
        paths: N file paths relative to FOLDER.
        labels: N class sub-folder names, or None.

    Returns:
        None.
    """
    import pandas as pd

    table = {"path": list(paths)}
    if labels is not None:
        table["label"] = [str(v) for v in labels]
    names = columns(features.shape[1], None)[1:]
    frame = pd.concat(
        [pd.DataFrame(table), pd.DataFrame(np.asarray(features, np.float32), columns=names)],
        axis=1,
    )
    frame.to_parquet(path, engine="pyarrow", index=False)


WRITERS = {".npz": write_npz, ".csv": write_csv, ".parquet": write_parquet}
