"""`simclr-keras evaluate`: a SimCLR backbone against a baseline at label fractions.

`run` calls one small function per step: check the files, find the labelled
data (the pretrain run's split by default), load the two backbones, decode
the images, score both.
"""

import os
import time
import zipfile

import keras

from simclr_keras.backbones.hub import import_for_loading
from simclr_keras.data import folders as class_folders
from simclr_keras.data import load_labelled_files
from simclr_keras.data.image_io import list_image_files
from simclr_keras.data.split import split_directory
from simclr_keras.evaluation import compare_backbones
from simclr_keras.layers import ImagePreprocess
from simclr_keras_cli import evaluate_checks, report, run_files
from simclr_keras_cli.main import print_seconds
from simclr_keras_cli.usage_errors import UsageError, as_usage_error


def run(args):
    """Run `evaluate` with the parsed arguments; returns the exit code."""
    evaluate_checks.check_arguments(args)
    folder = os.path.dirname(os.path.abspath(args.backbone))
    run = run_files.read_json(os.path.join(folder, run_files.RUN_FILE)) or {}
    labelled = labelled_files(args, run)  # folder errors before loading or decoding anything
    backbone = load_backbone(args)
    baseline = load_baseline(args, backbone, os.path.join(folder, run_files.INITIAL_BACKBONE))
    side = image_side(args, backbone)
    train, test = decode(*labelled, (side, side))
    start = time.time()
    compare_backbones(
        baseline,
        backbone,
        train,
        test,
        fractions=args.fractions,
        seeds=args.seeds,
        classifiers=args.classifiers,
        output_dir=args.output,
        preprocessing=args.preprocessing,  # a pretrain backbone.keras carries its own
        image_size=(side, side),
        names=("baseline", "SimCLR"),
        finetune_kwargs=dict(
            epochs=args.finetune_epochs,
            unfreeze=args.finetune_unfreeze,
            cache_dir=evaluate_checks.finetune_cache(args),
        ),
    )
    print_seconds("Evaluated", start)
    print(f"Table saved to {os.path.join(args.output, 'comparison.md')} and comparison.json")
    report.after_evaluate(args, baseline, backbone, test, labelled, side)  # t-SNE, report.html
    return 0


def labelled_files(args, run):
    """`(parts, class_names, where)`: the train and test `(paths, labels)`,
    checked, not decoded: from `--train-dir`/`--test-dir`, else from one
    folder split into two (`--data-dir`, or the pretrain run's).
    """
    evaluate_checks.check_data_arguments(args)
    if args.train_dir is None:
        return _split_files(args, run)
    with as_usage_error():
        tr = class_folders.scan_class_folders(args.train_dir, "--train-dir")
        te = class_folders.scan_class_folders(args.test_dir, "--test-dir")
        class_folders.check_same_classes(tr[2], te[2])
    note_seen_test_images(run, te[0])
    return [tr[:2], te[:2]], tr[2], f"{args.train_dir} and {args.test_dir}"


def _split_files(args, run):
    folder = args.data_dir or run.get("data_dir")
    if folder is None:
        raise UsageError(
            "Name the labelled images: `--data-dir FOLDER` (split by --test-split) or "
            "`--train-dir` and `--test-dir`."
        )
    fraction = args.test_split or run.get("test_split") or 0.2
    seed = args.split_seed if args.split_seed is not None else run.get("split_seed", 0)
    if args.data_dir is None:
        print(f"Using the pretrain run's folder {folder} (--test-split {fraction})")
    with as_usage_error():
        split = split_directory(folder, fraction, seed)
    note_seen_test_images(run, split.test_paths, folder)
    parts = [(split.train_paths, split.train_labels), (split.test_paths, split.test_labels)]
    where = f"{folder} split {1 - fraction:.0%}/{fraction:.0%} (seed {seed})"
    return parts, split.class_names, where


def note_seen_test_images(run, test_paths, folder=None):
    """Print a note when some of the test images were among the pretrain
    run's training images (`run`: its `run.json`), whatever named them: the
    run's folder without `--test-split`, another split of it (`--test-split`
    or `--split-seed` not the run's) or a `--test-dir` inside it.
    """
    data_dir = run.get("data_dir")
    if not data_dir or not os.path.isdir(data_dir):
        return
    try:
        if run.get("test_split"):
            split = split_directory(data_dir, run["test_split"], run.get("split_seed") or 0)
            trained = split.train_paths
        else:
            trained = list_image_files(data_dir)
    except ValueError:  # the folder changed since the run: nothing to compare
        return
    test = {os.path.realpath(p) for p in test_paths}
    seen = len(test & {os.path.realpath(p) for p in trained})
    if not seen:
        return
    if not run.get("test_split") and folder and os.path.abspath(folder) == data_dir:
        print(
            "Note: the backbone was pretrained on every image of this folder, the "
            "test part included (pretrain --test-split holds it out)."
        )
        return
    print(
        f"Note: {seen} of the {len(test)} test images were among the pretrain run's "
        f"training images ({data_dir}), so the scores may flatter SimCLR: test on the "
        "images the run held out (its --test-split and --split-seed, evaluate's default) "
        "or on images it never saw."
    )


# Errors of `keras.saving.load_model` on a file that is not a loadable model.
LOAD_ERRORS = (ValueError, OSError, EOFError, KeyError, TypeError, zipfile.BadZipFile)


def load_model_file(path, flag="--backbone"):
    """The image backbone saved in `path`, with keras-hub imported first when
    the file holds a keras-hub backbone (importing it registers its classes).

    Raises a `UsageError` naming `flag`, the file and what to do when the
    file is empty, damaged or truncated, is the whole SimCLR model, or is
    not a model of images `(B, H, W, C)`.
    """
    with as_usage_error():
        import_for_loading(path)
    fix = {
        run_files.INITIAL_BACKBONE: "rerun the pretrain command if the run is unfinished (it "
        "writes the file again), or pass --baseline random",
        run_files.BACKBONE_FILE: "rerun pretrain into a new --output",
    }.get(os.path.basename(path), "save the model again")
    if os.path.getsize(path) == 0:
        raise UsageError(f"`{flag}` {path} is empty (0 bytes): {fix}. Received: {flag}={path!r}")
    if not zipfile.is_zipfile(path):
        raise UsageError(
            f"`{flag}` must be a .keras model file; {path} is not one (a truncated or damaged "
            f"file, or another format): {fix}. Received: {flag}={path!r}"
        )
    try:
        model = keras.saving.load_model(path, compile=False)
    except LOAD_ERRORS as error:
        reason = " ".join(str(error).split())[:300] or type(error).__name__
        raise UsageError(
            f"`{flag}` {path} cannot be loaded ({type(error).__name__}: {reason}); it is damaged "
            f"or not a Keras model: {fix}. Received: {flag}={path!r}"
        ) from None
    check_image_model(model, path, flag)
    return model


def check_image_model(model, path, flag):
    """Raise a `UsageError` unless `model` is a backbone of images."""
    from simclr_keras.model import SimCLR

    if isinstance(model, SimCLR):
        exported = os.path.join(os.path.dirname(path), run_files.BACKBONE_FILE)
        raise UsageError(
            f"`{flag}` must be a backbone; {path} is the whole SimCLR model (backbone and "
            f"projection head). Pass the backbone pretrain exported ({exported}), or "
            f"`SimCLR.export_backbone`'s file. Received: {flag}={path!r}"
        )
    shape = getattr(model, "input_shape", None)
    if not isinstance(model, keras.Model) or not isinstance(shape, tuple) or len(shape) != 4:
        raise UsageError(
            f"`{flag}` must be a model of images (input shape (batch, height, width, "
            f"channels)); {path} takes {shape}. Received: {flag}={path!r}"
        )


def load_backbone(args):
    """The SimCLR backbone; `--preprocessing` only for a file without its own scaling."""
    backbone = load_model_file(args.backbone)
    if args.preprocessing and any(isinstance(layer, ImagePreprocess) for layer in backbone.layers):
        raise UsageError(
            "`--preprocessing` must be left out: the backbone file applies the input "
            f"scaling it was pretrained with. Received: --preprocessing={args.preprocessing}"
        )
    return backbone


def image_side(args, backbone):
    """The side images are decoded at: `--image-size`, else the backbone's input size.

    Args:
        args: The parsed arguments (`image_size`, `backbone`: the file's path).
        backbone: The loaded backbone.

    Returns:
        An int.

    Raises:
        UsageError: When the backbone takes images of any size and
            `--image-size` is not given.
    """
    side = args.image_size or backbone.input_shape[1]
    if side is None:
        raise UsageError(
            f"`--image-size` is needed: {args.backbone} takes images of any size "
            f"(input shape {backbone.input_shape}). Received: --image-size=None"
        )
    return side


def load_baseline(args, backbone, initial):
    """The baseline: the backbone before pretraining (`initial`), the same
    architecture at a seeded random init, or a `.keras` file.
    """
    keras.utils.set_random_seed(args.seed)
    if args.baseline not in ("initial", "random"):
        return load_model_file(args.baseline, "--baseline")
    if args.baseline == "initial" and os.path.isfile(initial):
        print(f"Baseline: the backbone before pretraining ({initial})")
        return load_model_file(initial, "--baseline initial")
    if args.baseline == "initial":
        print(f"Baseline: no {initial}; using the same architecture at a seeded random init")
    return keras.models.clone_model(backbone)  # same layers, new weights (seeded)


def decode(parts, class_names, where, size):
    """The images of `labelled_files`' parts, decoded at `size`:
    `[(x_train, y_train), (x_test, y_test)]`.
    """
    start = time.time()
    out = [load_labelled_files(paths, labels, size, class_names) for paths, labels in parts]
    print_seconds(
        f"{len(out[0][0])} train + {len(out[1][0])} test images, {len(class_names)} classes, "
        f"from {where}",
        start,
    )
    return out
