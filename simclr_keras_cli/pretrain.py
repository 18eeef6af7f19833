"""`simclr-keras pretrain`: SimCLR-train a backbone on a folder of images.

`run` calls one small function per step: check the arguments, split the
folder, stop if the run has finished, build the backbone, load the images,
build the model, train (resuming a killed run), then export, plot and clean
up. Each step can be called alone.
"""

import os
import shutil
import time
import zipfile

import keras
import numpy as np

from simclr_keras._atomic import atomic_write
from simclr_keras.backbones import hub, zoo
from simclr_keras.backbones.freezing import check_unfrozen
from simclr_keras.backbones.spec import declared_input_shape
from simclr_keras.callbacks import (
    BackboneGuard,
    GradualUnfreeze,
    KNNMonitor,
    ResumableCheckpoint,
    StopOnCtrlC,
)
from simclr_keras.callbacks.resumable_checkpoint import checkpoint_dir, read_state
from simclr_keras.data import DataGeneratorSimCLR, pseudo_labels
from simclr_keras.data import folders as class_folders
from simclr_keras.data.split import split_directory
from simclr_keras.evaluation import extract_features
from simclr_keras.evaluation.knn import split_bank_queries
from simclr_keras.layers.augmentation import AUGMENTATION_POLICIES
from simclr_keras.model import SimCLR
from simclr_keras.plots import plot_history, plot_tsne, save_augmentation_preview
from simclr_keras.training import pretrained as recipes
from simclr_keras.training import view_cache
from simclr_keras.training.defaults import default_callbacks
from simclr_keras.training.pretrained import parse_unfreeze_schedule
from simclr_keras_cli import pretrain_checks, report, run_files
from simclr_keras_cli.main import print_seconds
from simclr_keras_cli.pretrain_checks import FLAGS
from simclr_keras_cli.usage_errors import UsageError, as_usage_error
from simclr_keras_rules.backbone_names import check_backbone_name, is_preset
from simclr_keras_rules.guard_scores import LABELLED_SCORES

SAMPLE = 2000  # labelled images for the kNN monitor, the guard and the t-SNE plot
LAST_BACKBONE = "backbone_last.keras"  # the last epoch's, next to the guard's result


def run(args):
    """Run `pretrain` with the parsed arguments; returns the exit code."""
    check_arguments(args)
    split = split_folder(args)
    recipe = choose_recipe(args)
    if args.epochs is None:
        args.epochs = recipes.RECIPE_EPOCHS[recipe]
        print(f"Epochs: {args.epochs} (the {recipe} recipe's default)", flush=True)
    if finished_run(args):
        return 0
    start = time.time()
    size = (args.image_size, args.image_size)
    base = build_backbone(args, size + (3,))
    schedule = unfreeze_schedule(args, base)  # before any image is decoded
    with as_usage_error(FLAGS):  # e.g. --batch-size above the number of images
        data = load_images(args, split, size, start)
        data, held_out = hold_out_for_guard(args, data)
    previous_run = run_files.read_json(os.path.join(args.output, run_files.RUN_FILE))
    os.makedirs(args.output, exist_ok=True)
    run_files.write_json(run_info(args), os.path.join(args.output, run_files.RUN_FILE))
    if args.guided or args.pseudo_label_clusters is not None:
        add_pseudo_labels(args, data)
    with as_usage_error(FLAGS):
        simclr = build_simclr(args, base, size + (3,), recipe)
        check_cache_views(args, simclr, data, recipe, schedule)
    save_initial_backbone(simclr, args.output, previous_run, run_info(args))
    sample = labelled_sample(data, args.seed)
    save_augmentation_preview(
        (data.images if data.cached else data[0])[:6],
        os.path.join(args.output, "augmentations.png"),
        simclr.augmentation,
    )
    guard = make_guard(args, data, sample, held_out)
    history = train(args, simclr, data, sample, recipe, guard, schedule)
    if history is None:
        return 130
    write_results(args, simclr, data, sample, history, start, guard)
    report.write_report(args.output)  # report.html, rewritten by evaluate
    return 0


def check_arguments(args):
    """Usage errors that need no image decoded and no folder written: those
    `main` checks before Keras loads (`pretrain_checks`), then the backbone
    name in keras-hub's own list of presets.
    """
    pretrain_checks.check_arguments(args)
    with as_usage_error(FLAGS):
        check_backbone_name(args.backbone, "--backbone")


def choose_recipe(args):
    """The recipe in force: `--recipe`, or for `auto` the pretrained one when
    the backbone comes with weights (`--weights` or a saved `.keras` file).
    """
    recipe = pretrain_checks.chosen_recipe(args)
    has_weights = pretrain_checks.has_weights(args)
    if has_weights and recipe == "scratch" and args.unfreeze_schedule is None:
        print(
            "Note: pretrained weights with --recipe scratch: every layer trains from the first "
            "step, which can overwrite what the backbone learnt; the guard keeps the start "
            "if no epoch beats it."
        )
    where = " (pretrained weights given)" if args.recipe == "auto" and has_weights else ""
    print(f"Recipe: {recipe}{where}", flush=True)
    return recipe


def split_folder(args):
    """The `--test-split` split of DATA_DIR's files (None without it); notes a
    folder that only wraps its class folders.
    """
    if args.test_split is None:
        inner = class_folders.nested_class_root(args.data_dir)
        if inner is not None:
            print(
                f"Note: {args.data_dir} holds a single folder whose sub-folders look like "
                f"classes; pass {inner} to use them for the kNN monitor and t-SNE."
            )
        return None
    with as_usage_error():
        class_folders.scan_class_folders(args.data_dir, "DATA_DIR")
        return split_directory(args.data_dir, args.test_split, args.split_seed)


def finished_run(args):
    """The metrics of a run in `--output` that has all `--epochs` done (it says
    so), else None.
    """
    done = run_files.read_json(os.path.join(args.output, run_files.METRICS_FILE))
    if not done or done.get("epochs_done", 0) < args.epochs:
        return None
    backbone = os.path.join(args.output, run_files.BACKBONE_FILE)
    print(
        f"{args.output} is a finished run ({done['epochs_done']} of {args.epochs} epochs): "
        f"nothing to train. Its backbone: {backbone}. Use another --output to train again."
    )
    return done


def build_backbone(args, shape):
    """Seed, precision and the backbone (before the images: a missing weights
    file fails in seconds).
    """
    if args.mixed_precision:
        keras.config.set_dtype_policy("mixed_bfloat16")
    keras.utils.set_random_seed(args.seed)
    with as_usage_error(FLAGS):
        base = zoo.get_backbone(args.backbone, shape, weights=args.weights)
        check_unfrozen(base, args.unfrozen_layers)
    declared = declared_input_shape(base)  # a ViT preset takes one image size
    if declared and None not in declared[:2] and declared[:2] != tuple(shape[:2]):
        raise UsageError(
            f"`--image-size` must be {declared[0]} for --backbone {args.backbone}: it takes "
            f"{declared[0]}x{declared[1]} images. Received: --image-size={args.image_size}"
        )
    return base


def load_images(args, split, size, start):
    """A `DataGeneratorSimCLR` of the training images (the split's train part,
    or every image of DATA_DIR).
    """
    cache = int(args.cache_limit_gb * 2**30)
    if split is None:
        data = DataGeneratorSimCLR.from_directory(
            args.data_dir, size, args.batch_size, seed=args.seed, cache_limit_bytes=cache
        )
        print_seconds(f"Found {data.num_images} images", start)
        return data
    data = DataGeneratorSimCLR.from_files(
        split.train_paths,
        size,
        args.batch_size,
        labels=split.train_labels,
        class_names=split.class_names,
        seed=args.seed,
        cache_limit_bytes=cache,
    )
    print_seconds(
        f"Found {data.num_images} training images ({len(split.test_paths)} held out for "
        f"evaluate, --test-split {args.test_split})",
        start,
    )
    return data


def run_info(args):
    """What `evaluate` reads back from `run.json`: data, split and input settings."""
    return {
        "data_dir": os.path.abspath(args.data_dir),
        "test_split": args.test_split,
        "split_seed": args.split_seed,
        "image_size": args.image_size,
        "backbone": args.backbone,
        "weights": args.weights,
        "seed": args.seed,
    }


def add_pseudo_labels(args, data):
    """G-SimCLR: pseudo-labels from a denoising autoencoder + k-means, for guided batches."""
    k = args.pseudo_label_clusters or data.batch_size
    if k > data.num_images:  # before the autoencoder trains
        raise UsageError(
            "`--pseudo-label-clusters` must be at most the number of training images "
            f"({data.num_images}): k-means needs an image per cluster. "
            f"Received: --pseudo-label-clusters={k}"
        )
    print(f"Pseudo-labels: denoising autoencoder + k-means (k={k})")
    data.pseudo_labels = pseudo_labels(data, n_clusters=k, seed=args.seed)
    stats = data.batch_stats()
    print(
        "Guided batches: share of same-pseudo-label negatives "
        f"{stats['same_label_share']:.4f} (random batches: "
        f"{stats['random_same_label_share']:.4f})"
    )


def build_simclr(args, base, shape, recipe="scratch"):
    """The `SimCLR` model of the arguments (head sizes and input scaling
    default to what suits the named backbone; a keras-hub preset's input
    scaling is read from its image converter).
    """
    preprocessing = args.preprocessing or zoo.PREPROCESSING.get(args.backbone)
    if preprocessing is None and is_preset(args.backbone):
        preprocessing = hub.preset_preprocessing(args.backbone)
        if preprocessing:
            print(f"Input scaling of the preset: {preprocessing}")
    return SimCLR(
        base,
        shape,
        args.batch_size,
        list(args.feat_dims) if args.feat_dims else None,  # None: sized by the backbone
        args.unfrozen_layers,
        temperature=args.temperature,
        learning_rate=args.learning_rate,
        recipe=recipe,
        preprocessing=preprocessing,
        augmentation=augmentation_policy(args, recipe),
        seed=args.seed,
    )


def augmentation_policy(args, recipe):
    """`--augment` as `SimCLRAugmentation` arguments (auto: the recipe's
    policy); `--jitter-strength` overrides the policy's strength when given.
    """
    chosen = None if args.augment == "auto" else args.augment
    name = recipes.recipe_arguments(recipe, augmentation=chosen)[2]
    print(f"Augmentation: {name}", flush=True)
    policy = {**AUGMENTATION_POLICIES[name], "blur_probability": args.blur}
    if args.jitter_strength is not None:
        policy["jitter_strength"] = args.jitter_strength
    return policy


# What `run.json` records of the network that `initial_backbone.keras` holds.
NETWORK_KEYS = ("backbone", "weights", "image_size", "seed")


def save_initial_backbone(simclr, output, previous_run=None, info=None):
    """`evaluate`'s baseline: the backbone before SimCLR, saved like
    `backbone.keras` (with its input scaling), atomically (a kill or a full
    disk leaves no half-written file).

    The file of a first attempt in the same `--output` is kept only when
    that attempt's `run.json` (`previous_run`) recorded the same backbone,
    weights, image size and seed as this one (`info`) and the file is
    intact; otherwise (another network, a damaged file) it is written
    again, with a note.
    """
    initial = os.path.join(output, run_files.INITIAL_BACKBONE)
    if os.path.exists(initial):
        stale = _why_not_kept(initial, previous_run, info)
        if stale is None:
            return
        print(f"Note: writing {initial} again: {stale}", flush=True)
    atomic_write(initial, simclr.export_backbone)


def _why_not_kept(initial, previous_run, info):
    """Why the `initial_backbone.keras` of a first attempt cannot be kept (None: it can)."""
    if info is not None:
        before = {k: (previous_run or {}).get(k) for k in NETWORK_KEYS}
        now = {k: info.get(k) for k in NETWORK_KEYS}
        if before != now:
            changed = [k for k in NETWORK_KEYS if before[k] != now[k]]
            return (
                "the first attempt in this folder had "
                + ", ".join(f"{k}={before[k]!r}" for k in changed)
                + " (now "
                + ", ".join(f"{k}={now[k]!r}" for k in changed)
                + ")"
            )
    try:
        with zipfile.ZipFile(initial) as archive:
            bad = archive.testzip()
            if bad is not None or "config.json" not in archive.namelist():
                raise zipfile.BadZipFile(f"damaged member {bad or 'config.json'}")
    except (OSError, zipfile.BadZipFile, EOFError, ValueError) as error:
        return f"the first attempt's file is damaged or incomplete ({error})"
    return None


def labelled_sample(data, seed):
    """Up to `SAMPLE` cached images with their labels, for the kNN monitor and
    the t-SNE plot; None when the images are not cached or have fewer than
    two classes.
    """
    if not data.cached or data.labels is None:
        return None
    images, labels = data.load_all()
    if len(set(labels.tolist())) < 2:
        return None
    pick = np.random.default_rng(seed).permutation(len(images))[:SAMPLE]
    return images[pick], labels[pick]


def hold_out_for_guard(args, data):
    """`(data, held_out)`: with a labelled guard scoring label budgets, a
    stratified `--guard-holdout` share of the training images is kept out
    of SimCLR for the guard to score (SimCLR's own training images flatter
    every trained candidate); `held_out` is `(images, labels)`, else None.
    """
    if (
        args.guard not in ("auto", "budgets")
        or not args.guard_holdout
        or not data.cached
        or data.labels is None
        or len(set(data.labels.tolist())) < 2
    ):
        return data, None
    images, labels = data.load_all()
    keep, held = split_bank_queries(labels, args.guard_holdout, args.seed)
    if len(keep) < args.batch_size:
        raise UsageError(
            f"`--guard-holdout` leaves {len(keep)} images for SimCLR, fewer than --batch-size "
            f"{args.batch_size}. Received: --guard-holdout={args.guard_holdout}"
        )
    print(
        f"The guard holds out {len(held)} of the {len(labels)} training images "
        f"(--guard-holdout {args.guard_holdout}); SimCLR trains on {len(keep)}",
        flush=True,
    )
    trained = DataGeneratorSimCLR(
        images[keep],
        args.batch_size,
        seed=args.seed,
        labels=labels[keep],
        class_names=data.class_names,
    )
    return trained, (images[held], labels[held])


def make_guard(args, data, sample, held_out=None):
    """The `BackboneGuard` of `--guard` (None for off): labelled on the
    training images' class folders (scored on `held_out` images SimCLR does
    not train on, when given), else label-free on a sample of them.
    """
    if args.guard == "off":
        return None
    if args.guard in LABELLED_SCORES and sample is None:
        raise UsageError(
            f"`--guard {args.guard}` needs class sub-folders in DATA_DIR (and images that fit "
            "--cache-limit-gb); use a label-free score such as --guard rankme."
        )
    holdout = None
    if sample is not None and held_out is not None:
        images = np.concatenate([sample[0], held_out[0]])
        labels = np.concatenate([sample[1], held_out[1]])
        holdout = np.r_[np.zeros(len(sample[1]), bool), np.ones(len(held_out[1]), bool)]
    elif sample is not None:
        images, labels = sample
    elif data.cached:
        images, labels = data.images[: args.guard_images], None
    else:  # not cached: a few batches of the (shuffled) training images
        n = min(len(data), max(1, args.guard_images // data.batch_size))
        images, labels = np.concatenate([np.asarray(data[i]) for i in range(n)]), None
    model_path = os.path.join(args.output, run_files.MODEL_FILE)
    try:
        return BackboneGuard(
            images,
            labels,
            score=args.guard,
            directory=os.path.join(checkpoint_dir(model_path), "guard"),  # resumes with the run
            max_images=args.guard_images,
            seed=args.seed,
            print_summary=False,  # the run's final message holds it
            holdout=holdout,
        )
    except ValueError as error:  # too few labelled images for the score
        raise UsageError(
            f"`--guard {args.guard}` cannot score these images: {error}. Use --guard off, "
            "--guard rankme or more images per class folder."
        ) from None


def unfreeze_schedule(args, base):
    """`--unfreeze-schedule` checked against the backbone and `--epochs` (None
    without it), before any image is decoded or file written.

    `--learning-rate` goes to the stages that carry no rate of their own
    (with either recipe; without it they keep the optimizer's rate).
    """
    if args.unfreeze_schedule is None:
        return None
    with as_usage_error():
        schedule = parse_unfreeze_schedule(args.unfreeze_schedule, base, epochs=args.epochs)
    if args.learning_rate is not None:
        schedule = {
            epoch: stage if isinstance(stage, tuple) else (stage, args.learning_rate)
            for epoch, stage in schedule.items()
        }
    return schedule


def check_cache_views(args, simclr, data, recipe, schedule=None):
    """`--cache-views` needs a bottom of the backbone that no stage trains:
    a `ValueError` naming the rule otherwise (before anything is written).
    """
    if args.cache_views:
        callbacks = schedule_callbacks(args, recipe, simclr, schedule)
        view_cache.cache_split(
            simclr.base_model,
            default_callbacks(simclr, data, callbacks),
            args.epochs,
            args.cache_views,
        )


def schedule_callbacks(args, recipe, simclr, schedule=None):
    """The `GradualUnfreeze` of `--unfreeze-schedule` (`schedule`, parsed by
    `unfreeze_schedule`); without it none (the model applies its recipe).
    """
    if schedule is None and args.unfreeze_schedule is not None:
        schedule = unfreeze_schedule(args, simclr.base_model)
    if schedule is not None:
        return [GradualUnfreeze(schedule, verbose=1)]
    return []  # SimCLR(recipe=..., learning_rate=...) schedules itself


def train(args, simclr, data, sample, recipe="scratch", guard=None, schedule=None):
    """`fit` with checkpoints that resume a killed run; None when interrupted (Ctrl-C)."""
    model_path = os.path.join(args.output, run_files.MODEL_FILE)
    callbacks = schedule_callbacks(args, recipe, simclr, schedule)
    if guard is not None:
        callbacks.append(guard)
    elif sample:
        callbacks.append(KNNMonitor(*sample, k=20, seed=args.seed))
    callbacks.append(ResumableCheckpoint(model_path))
    callbacks.append(StopOnCtrlC())  # last: an epoch that ends is checkpointed first
    report_resume(args, model_path)
    try:
        return simclr.fit(
            data,
            epochs=args.epochs,
            callbacks=callbacks,
            verbose=1,
            cache_views=args.cache_views or None,
        )
    except KeyboardInterrupt:
        state = read_state(model_path)
        print(f"\nstopped at epoch {state['epoch'] if state else 0}; rerun to resume", flush=True)
        return None


def _string_keys(table):
    """A nested dict with float keys (budgets) as a JSON-able one."""
    if not isinstance(table, dict):
        return table
    return {str(k): _string_keys(v) for k, v in table.items()}


def report_resume(args, model_path):
    """Say whether the run resumes, or starts again after its checkpoints were removed."""
    state = read_state(model_path)
    done = run_files.read_json(os.path.join(args.output, run_files.METRICS_FILE))
    if state and 0 < state["epoch"] < args.epochs:
        print(f"resuming from epoch {state['epoch']} of {args.epochs}", flush=True)
    elif done and not state:
        print(
            f"Note: {args.output} finished {done.get('epochs_done')} epochs before but its "
            "checkpoints were removed (--keep-checkpoints keeps them): training "
            f"{args.epochs} epochs from the start.",
            flush=True,
        )


def write_results(args, simclr, data, sample, history, start, guard=None):
    """Export the backbone (the guard's result, and the last epoch's), plot
    the curves and the t-SNE, write `metrics.json` (last: it marks the run
    finished), remove the checkpoints, print the guard's start / best / last.
    """
    if guard is not None:
        guard.finish(simclr)  # done by fit(); reads the saved state if fit() trained nothing
    simclr.export_backbone(os.path.join(args.output, run_files.BACKBONE_FILE))
    if guard is not None:
        guard.use("last")
        simclr.export_backbone(os.path.join(args.output, LAST_BACKBONE))
        guard.use("best")
    plot_history(history, os.path.join(args.output, "training_curves.png"))
    if sample is not None:
        plot_tsne(
            extract_features(simclr, sample[0], verbose=0),
            sample[1],
            os.path.join(args.output, "tsne.png"),
            class_names=data.class_names,
            title="t-SNE of the SimCLR backbone's features",
        )
    metrics = {
        "history": {k: [float(v) for v in vals] for k, vals in history.history.items()},
        "epochs_done": len(history.history.get("loss", [])),
        "num_images": int(data.num_images),
        "seconds": round(time.time() - start, 1),
        "args": vars(args),
        "recipe": simclr.recipe,
    }
    if guard is not None:
        metrics["guard"] = {
            "score": guard.score_name,
            "scores": {str(k): v for k, v in guard.scores.items()},
            "best_epoch": guard.best_epoch,
            "result": guard.result,
            "budgets": _string_keys(guard.budget_table()),
            "summary": guard.summary(),
        }
    run_files.write_json(metrics, os.path.join(args.output, run_files.METRICS_FILE))
    if not args.keep_checkpoints:
        shutil.rmtree(
            checkpoint_dir(os.path.join(args.output, run_files.MODEL_FILE)), ignore_errors=True
        )
    backbone = os.path.join(args.output, run_files.BACKBONE_FILE)
    if guard is None:
        print(f"Backbone: {backbone}; plots and metrics in {args.output}")
        return
    print(guard.summary())
    print(
        f"Backbone: {backbone} (the guard's result; the last epoch's: {LAST_BACKBONE}); plots "
        f"and metrics in {args.output}; {time.time() - start:.0f} s in all"
    )
