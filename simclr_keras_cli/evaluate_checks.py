"""`evaluate`'s and `embed`'s argument checks that need no Keras: `main`
runs them before it loads Keras, so a missing file, a flag that needs
another or an unknown input scaling is refused in a fraction of a second.
"""

import importlib.util
import os

from simclr_keras_cli.usage_errors import (
    UsageError,
    as_usage_error,
    check_file,
    check_folder,
    check_output,
)
from simclr_keras_rules.preprocessing_modes import check_preprocessing

# The feature files `embed` writes, by extension.
FORMATS = (".npz", ".csv", ".parquet")


def check_arguments(args):
    """`evaluate`: the backbone file exists, `--output` (default: `default_output`)
    and `--finetune-cache` can be folders, the baseline is 'initial', 'random'
    or a file, the data flags go together and `--preprocessing` is known.
    """
    if args.output is None:
        args.output = default_output(args.backbone)
    check_file(args.backbone, "--backbone")
    check_output(args.output)
    finetune_cache(args)
    if args.baseline not in ("initial", "random") and not os.path.isfile(args.baseline):
        raise UsageError(
            "`--baseline` must be 'initial', 'random' or a saved .keras file. "
            f"Received: --baseline={args.baseline!r}"
        )
    check_data_arguments(args)
    check_scaling(args.preprocessing)


def default_output(backbone):
    """`eval` beside `backbone` (`eval_NAME` for a file not named backbone.keras)."""
    stem = os.path.splitext(os.path.basename(backbone))[0]
    name = "eval" if stem == "backbone" else f"eval_{stem}"
    return os.path.join(os.path.dirname(os.path.abspath(backbone)), name)


def finetune_cache(args):
    """The fine-tuning records' folder: `--finetune-cache`, by default inside
    `--output`; None for 'none' or when nothing is fine-tuned.
    """
    if "finetune" not in args.classifiers or (args.finetune_cache or "").lower() == "none":
        return None
    folder = args.finetune_cache or os.path.join(args.output, "finetune_cache")
    check_output(folder, "--finetune-cache")
    return folder


def check_data_arguments(args):
    """`--train-dir` and `--test-dir` go together, exist, and exclude `--data-dir`."""
    if (args.train_dir is None) != (args.test_dir is None):
        raise UsageError("`--train-dir` and `--test-dir` go together; pass both or neither.")
    if args.train_dir is None:
        return
    if args.data_dir is not None:
        raise UsageError("Pass `--data-dir` or `--train-dir`/`--test-dir`, not both.")
    check_folder(args.train_dir, "--train-dir")
    check_folder(args.test_dir, "--test-dir")


def check_scaling(preprocessing):
    """`--preprocessing` names a known input scaling (or is None)."""
    with as_usage_error({"preprocessing": "--preprocessing"}):
        check_preprocessing(preprocessing)


def check_embed_arguments(args):
    """`embed`: `--output` is a feature file it can write, the backbone file
    exists and `--preprocessing` is known; returns `--output`'s extension.
    """
    extension = check_output_file(args.output)
    check_file(args.backbone, "--backbone")
    check_scaling(args.preprocessing)
    return extension


def check_output_file(path):
    """The extension of `path` (`.npz`, `.csv` or `.parquet`), checked.

    Args:
        path: The `--output` file.

    Returns:
        The lower-case extension.

    Raises:
        UsageError: For another extension, a folder, or `.parquet` without
            pandas and pyarrow installed.
    """
    extension = os.path.splitext(path)[1].lower()
    if extension not in FORMATS:
        raise UsageError(
            f"`--output` must end in .npz, .csv or .parquet. Received: --output={path}"
        )
    if os.path.isdir(path):
        raise UsageError(
            f"`--output` must be a file; {path!r} is a folder. Received: --output={path}"
        )
    missing = [m for m in ("pandas", "pyarrow") if importlib.util.find_spec(m) is None]
    if extension == ".parquet" and missing:
        raise UsageError(
            f"`--output` .parquet needs pandas and pyarrow ({' and '.join(missing)} not "
            "installed): pip install pandas pyarrow, or write .npz or .csv. "
            f"Received: --output={path}"
        )
    return extension
