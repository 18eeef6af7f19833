"""The `simclr-keras` command: `pretrain`, `evaluate` and `demo`."""

import argparse
import json
import os
import sys
import time


def _number(text, kind, rule, ok):
    """Parse `text` as `kind`; argparse names the flag in the error."""
    try:
        value = kind(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(
            f"must be {rule}. Received: {text!r} is not a number"
        ) from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"must be {rule}. Received: {text!r}")
    return value


def _int_at_least(minimum):
    def parse(text):
        return _number(text, int, f"an int >= {minimum}", lambda v: v >= minimum)

    parse.__name__ = f"int >= {minimum}"
    return parse


def _positive_float(text):
    return _number(text, float, "a positive number", lambda v: v > 0 and v != float("inf"))


def _non_negative_float(text):
    return _number(text, float, "a number >= 0", lambda v: 0 <= v < float("inf"))


def _probability(text):
    return _number(text, float, "a number in [0, 1]", lambda v: 0 <= v <= 1)


def _list_of(parse, rule):
    def parse_list(text):
        items = [v.strip() for v in text.split(",") if v.strip()]
        if not items:
            raise argparse.ArgumentTypeError(
                f"must be a comma-separated list of {rule}. Received: {text!r}"
            )
        try:
            return tuple(parse(v) for v in items)
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(
                f"must be a comma-separated list of {rule}, e.g. 512,128. Received: {text!r}"
            ) from None

    return parse_list


_floats = _list_of(
    lambda t: _number(t, float, "a fraction in (0, 1]", lambda v: 0 < v <= 1), "fractions in (0, 1]"
)
_ints = _list_of(_int_at_least(0), "ints >= 0")
_positive_ints = _list_of(_int_at_least(1), "positive ints")


def build_parser():
    """The argument parser of `simclr-keras` (every option documented)."""
    parser = argparse.ArgumentParser(
        prog="simclr-keras",
        description="SimCLR self-supervised training for Keras 3 backbones. "
        "The backend is chosen by KERAS_BACKEND (tensorflow, jax or torch).",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser(
        "demo",
        help="SimCLR on sklearn's bundled digits: linear probes at 5/20/100%% labels.",
        description="Train a small CNN with SimCLR on sklearn's digits (no download), "
        "then print linear-probe accuracy at 5/20/100%% of the labels for the CNN at "
        "random init, after SimCLR, and for raw pixels. Writes plots and metrics.",
    )
    demo.add_argument(
        "--output",
        default="simclr_demo_output",
        help="folder for plots and metrics (default: %(default)s)",
    )
    demo.add_argument(
        "--epochs", type=_int_at_least(1), default=40, help="SimCLR epochs (default: %(default)s)"
    )
    demo.add_argument(
        "--batch-size",
        type=_int_at_least(2),
        default=128,
        help="source images per step (default: %(default)s)",
    )
    demo.add_argument(
        "--seed",
        type=_int_at_least(0),
        default=0,
        help="seed of split, weights and views (default: %(default)s)",
    )

    pre = sub.add_parser(
        "pretrain",
        help="SimCLR-train a backbone on a folder of images.",
        description="Train a backbone with SimCLR on DATA_DIR (searched recursively; class "
        "sub-folders, if any, are used only for the kNN monitor and the t-SNE plot). "
        "Rerunning the same command after an interruption resumes from the last finished epoch.",
    )
    pre.add_argument(
        "data_dir", metavar="DATA_DIR", help="folder of images (jpg, png, bmp, gif, webp, tif)"
    )
    pre.add_argument(
        "--backbone",
        default="small_cnn",
        help="small_cnn, resnet18, resnet50, vgg16, mobilenet_v3_small (random init), "
        "or the path of a saved .keras model (default: %(default)s)",
    )
    pre.add_argument(
        "--image-size",
        type=_int_at_least(1),
        default=64,
        help="images are resized to this square size (default: %(default)s)",
    )
    pre.add_argument(
        "--epochs", type=_int_at_least(1), default=20, help="training epochs (default: %(default)s)"
    )
    pre.add_argument(
        "--batch-size",
        type=_int_at_least(2),
        default=64,
        help="source images per step; 2x views (default: %(default)s)",
    )
    pre.add_argument("--output", default="simclr_run", help="output folder (default: %(default)s)")
    pre.add_argument(
        "--feat-dims",
        type=_positive_ints,
        default=None,
        help="projection head sizes, e.g. 512,128 (default: suits the backbone)",
    )
    pre.add_argument(
        "--unfrozen-layers",
        type=_int_at_least(-1),
        default=-1,
        help="how many of the backbone's last weighted layers train; -1 = all (default: %(default)s)",
    )
    pre.add_argument(
        "--temperature",
        type=_positive_float,
        default=0.1,
        help="NT-Xent temperature (default: %(default)s)",
    )
    pre.add_argument(
        "--learning-rate",
        type=_positive_float,
        default=1e-3,
        help="Adam learning rate (default: %(default)s)",
    )
    pre.add_argument(
        "--jitter-strength",
        type=_non_negative_float,
        default=0.5,
        help="colour jitter strength s (default: %(default)s)",
    )
    pre.add_argument(
        "--blur",
        type=_probability,
        default=0.0,
        help="Gaussian blur probability (default: %(default)s)",
    )
    pre.add_argument(
        "--preprocessing",
        default=None,
        help="backbone input scaling: unit, symmetric, caffe, torch, raw255 or a keras.applications "
        "family name (default: what the named backbone expects, else unit [0, 1])",
    )
    pre.add_argument(
        "--pseudo-label-clusters",
        type=_int_at_least(0),
        default=0,
        help="k > 0: G-SimCLR guided batches from autoencoder + k-means pseudo-labels (default: off)",
    )
    pre.add_argument(
        "--cache-limit-gb",
        type=_non_negative_float,
        default=2.0,
        help="decoded images kept in memory up to this size (default: %(default)s)",
    )
    pre.add_argument(
        "--seed",
        type=_int_at_least(0),
        default=0,
        help="seed of weights, views and batch order (default: %(default)s)",
    )
    pre.add_argument("--mixed-precision", action="store_true", help="train under mixed_bfloat16")

    ev = sub.add_parser(
        "evaluate",
        help="Linear and fine-tuned evaluation of a backbone against a baseline.",
        description="Compare a SimCLR backbone with a baseline (the same architecture at random "
        "init, or another saved model) on labelled train/test folders at several label fractions.",
    )
    ev.add_argument(
        "--backbone",
        required=True,
        help="the SimCLR backbone, a .keras file (e.g. RUN/backbone.keras)",
    )
    ev.add_argument(
        "--baseline",
        default="random",
        help="'random' (same architecture, fresh weights) or a .keras file (default: %(default)s)",
    )
    ev.add_argument(
        "--train-dir", required=True, help="labelled training images, one sub-folder per class"
    )
    ev.add_argument(
        "--test-dir", required=True, help="labelled test images, one sub-folder per class"
    )
    ev.add_argument(
        "--image-size",
        type=_int_at_least(1),
        default=None,
        help="resize size (default: the backbone's input size)",
    )
    ev.add_argument(
        "--preprocessing",
        default=None,
        help="input scaling of a backbone file that has none (a pretrain "
        "backbone.keras carries its own; default: unit)",
    )
    ev.add_argument(
        "--fractions",
        type=_floats,
        default=(0.05, 0.2, 1.0),
        help="label fractions (default: 0.05,0.2,1)",
    )
    ev.add_argument(
        "--seeds", type=_ints, default=(0, 1, 2), help="seeds of the label draws (default: 0,1,2)"
    )
    ev.add_argument(
        "--classifiers",
        default="linear,finetune",
        help="linear and/or finetune (default: %(default)s)",
    )
    ev.add_argument(
        "--output",
        default="simclr_eval",
        help="folder for comparison.json/.md (default: %(default)s)",
    )
    return parser


def _check_folder(path, flag):
    if not os.path.isdir(path):
        what = "is not a folder" if os.path.exists(path) else "does not exist"
        raise ValueError(f"`{flag}` must be a folder of images; {path!r} {what}")


def _check_file(path, flag):
    if not os.path.isfile(path):
        what = "is not a file" if os.path.exists(path) else "does not exist"
        raise ValueError(f"`{flag}` must be a saved .keras model file; {path!r} {what}")


def _print_seconds(label, start):
    print(f"{label} in {time.time() - start:.0f} s", flush=True)


def run_pretrain(args):
    """`simclr-keras pretrain`: train, checkpoint, export, plot."""
    import keras
    import numpy as np

    from simclr_keras.backbones import zoo as backbones
    from simclr_keras.data.generator import DataGeneratorSimCLR
    from simclr_keras.evaluation.plots import plot_history, save_augmentation_preview
    from simclr_keras.model import SimCLR
    from simclr_keras.training.knn_monitor import KNNMonitor

    _check_folder(args.data_dir, "DATA_DIR")
    backbones.check_backbone_name(args.backbone, "--backbone")
    os.makedirs(args.output, exist_ok=True)
    if args.mixed_precision:
        keras.config.set_dtype_policy("mixed_bfloat16")
    keras.utils.set_random_seed(args.seed)
    size = (args.image_size, args.image_size)
    start = time.time()
    data = DataGeneratorSimCLR.from_directory(
        args.data_dir,
        size,
        args.batch_size,
        seed=args.seed,
        cache_limit_bytes=int(args.cache_limit_gb * 2**30),
    )
    _print_seconds(f"Found {data.num_images} images", start)
    images, labels = data.load_all() if data.cached else (None, data.labels)
    if args.pseudo_label_clusters > 0:
        from simclr_keras.data.pseudo_labels import pseudo_labels

        print(f"Pseudo-labels: denoising autoencoder + k-means (k={args.pseudo_label_clusters})")
        data.pseudo_labels = pseudo_labels(
            data, n_clusters=args.pseudo_label_clusters, seed=args.seed
        )
    shape = size + (3,)
    base = backbones.get_backbone(args.backbone, shape)
    feat_dims = (
        list(args.feat_dims)
        if args.feat_dims
        else (backbones.HEAD_DIMS.get(args.backbone, [512, 128]))
    )
    preprocessing = args.preprocessing or backbones.PREPROCESSING.get(args.backbone)
    simclr = SimCLR(
        base,
        shape,
        args.batch_size,
        feat_dims,
        args.unfrozen_layers,
        temperature=args.temperature,
        learning_rate=args.learning_rate,
        preprocessing=preprocessing,
        augmentation=dict(jitter_strength=args.jitter_strength, blur_probability=args.blur),
        seed=args.seed,
        save_path=os.path.join(args.output, "simclr.keras"),
    )
    preview_source = images if images is not None else data[0]
    save_augmentation_preview(
        preview_source[:6], os.path.join(args.output, "augmentations.png"), simclr.augmentation
    )
    callbacks = []
    if labels is not None and images is not None and len(set(labels.tolist())) > 1:
        pick = np.random.default_rng(args.seed).permutation(len(images))[:2000]
        callbacks.append(KNNMonitor(images[pick], labels[pick], k=20, seed=args.seed))
    # Rerunning the same command resumes from the last finished epoch.
    history = simclr.fit(data, epochs=args.epochs, callbacks=callbacks, verbose=1)
    simclr.export_backbone(os.path.join(args.output, "backbone.keras"))
    plot_history(history, os.path.join(args.output, "training_curves.png"))
    metrics = {
        "history": {k: [float(v) for v in vals] for k, vals in history.history.items()},
        "num_images": int(data.num_images),
        "seconds": round(time.time() - start, 1),
        "args": vars(args),
    }
    if labels is not None and images is not None:
        from simclr_keras.evaluation.features import extract_features
        from simclr_keras.evaluation.plots import plot_tsne

        pick = np.random.default_rng(args.seed).permutation(len(images))[:2000]
        features = extract_features(simclr, images[pick], verbose=1)
        plot_tsne(
            features,
            labels[pick],
            os.path.join(args.output, "tsne.png"),
            class_names=data.class_names,
            title="t-SNE of the SimCLR backbone's features",
        )
    with open(os.path.join(args.output, "metrics.json"), "w") as fh:
        json.dump(metrics, fh, indent=2, default=str)
    print(
        f"Backbone: {os.path.join(args.output, 'backbone.keras')}; plots and metrics in {args.output}"
    )
    return 0


def run_evaluate(args):
    """`simclr-keras evaluate`: the baseline vs SimCLR table."""
    import keras

    from simclr_keras.data.generator import DataGeneratorSimCLR
    from simclr_keras.evaluation.compare import compare_backbones
    from simclr_keras.layers.input_scaling import ImagePreprocess

    _check_file(args.backbone, "--backbone")
    if args.baseline != "random":
        _check_file(args.baseline, "--baseline")
    _check_folder(args.train_dir, "--train-dir")
    _check_folder(args.test_dir, "--test-dir")
    classifiers = tuple(c.strip() for c in args.classifiers.split(",") if c.strip())
    unknown = sorted(set(classifiers) - {"linear", "finetune"}) or ([] if classifiers else [""])
    if unknown:
        raise ValueError(
            "`--classifiers` must list linear and/or finetune. "
            f"Received: --classifiers={args.classifiers!r}"
        )
    backbone = keras.saving.load_model(args.backbone, compile=False)
    if args.preprocessing and any(isinstance(l, ImagePreprocess) for l in backbone.layers):
        raise SystemExit(
            "`--preprocessing` must be left out: the backbone file applies the input "
            f"scaling it was pretrained with. Received: --preprocessing={args.preprocessing}"
        )
    if args.baseline == "random":
        baseline = keras.models.clone_model(backbone)  # same layers, new weights
    else:
        baseline = keras.saving.load_model(args.baseline, compile=False)
    side = args.image_size or backbone.input_shape[1]
    size = (side, side)
    split = {}
    for name, folder in (("train", args.train_dir), ("test", args.test_dir)):
        data = DataGeneratorSimCLR.from_directory(folder, size, 1, shuffle=False)
        images, labels = data.load_all()
        if labels is None:
            raise SystemExit(f"`--{name}-dir` needs one sub-folder per class. Received: {folder}")
        split[name] = (images, labels)
    compare_backbones(
        baseline,
        backbone,
        split["train"],
        split["test"],
        fractions=args.fractions,
        seeds=args.seeds,
        classifiers=classifiers,
        output_dir=args.output,
        preprocessing=args.preprocessing,
        image_size=size,
        names=("baseline", "SimCLR"),
    )
    print(f"Table saved to {os.path.join(args.output, 'comparison.md')} and comparison.json")
    return 0


def main(argv=None):
    """Entry point of `simclr-keras`."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "demo":
            from simclr_keras.demo import run_demo

            run_demo(args.output, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed)
            return 0
        if args.command == "pretrain":
            return run_pretrain(args)
        return run_evaluate(args)
    except (ValueError, OSError) as error:
        # Bad input: one line naming the flag, file or value, no traceback.
        parser.exit(2, f"simclr-keras {args.command}: error: {error}\n")


if __name__ == "__main__":
    sys.exit(main())
