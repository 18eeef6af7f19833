"""Shared helpers of the example scripts: arguments, data subsets, time budget, resume, tables.

Not part of the library: the examples import public names from
`simclr_keras` and call it for everything it does (folder scanning,
decoding, `summarize` for mean/std, `atomic_write_json`); these few helpers hold only what
the scripts share and the library has no business doing (argument sets,
time budgets, tables, bar charts).
"""

import argparse
import json
import os
import sys
import time

import numpy as np

INCOMPLETE_EXIT_CODE = 3  # "rerun the same command to resume"
# The EfficientNet-Lite0 weights file `simclr-keras convert-weights` writes in the README.
LITE0_WEIGHTS = "lite0.weights.h5"


# -- arguments ---------------------------------------------------------------------


def parser(doc):
    """An `ArgumentParser` described by the first paragraph of a script's docstring."""
    return argparse.ArgumentParser(description=doc.split("\n\n")[0])


def int_list(text):
    """`"0,1,2"` -> `[0, 1, 2]` (an argparse type)."""
    return [int(v) for v in text.split(",")]


def float_tuple(text):
    """`"0.1,1"` -> `(0.1, 1.0)` (an argparse type)."""
    return tuple(float(v) for v in text.split(","))


def add_probe_cs_arg(parser, default, help):
    """`--probe-cs`: the linear probe's C values (`linear_evaluation`'s `Cs`)."""
    parser.add_argument("--probe-cs", type=float_tuple, default=default, help=help)


def add_limit_per_class_arg(parser, help, flag="--limit-per-class"):
    """`--limit-per-class` (or `flag`): at most N images per class; default all."""
    parser.add_argument(flag, type=int, default=None, help=help)


def add_gsimclr_args(parser):
    """G-SimCLR's pseudo-label options: `--clusters` and `--ae-epochs`."""
    parser.add_argument(
        "--clusters",
        type=int,
        default=None,
        help="G-SimCLR pseudo-classes k (default: the batch size, as in G-SimCLR)",
    )
    parser.add_argument(
        "--ae-epochs",
        type=int,
        default=10,
        help="denoising autoencoder epochs (default: %(default)s)",
    )


def add_pretrained_args(parser):
    """The ImageNet encoder of pseudo-labels: `--pretrained-weights`, `--pretrained-size`."""
    parser.add_argument(
        "--pretrained-weights",
        default=LITE0_WEIGHTS,
        help="EfficientNet-Lite0 ImageNet weights (no top), from `simclr-keras convert-weights "
        f"efficientnet_lite0 --output {LITE0_WEIGHTS}` (default: %(default)s)",
    )
    parser.add_argument(
        "--pretrained-size", type=int, default=224, help="its image size (default: %(default)s)"
    )


def add_report_args(parser, plot=None):
    """`--report` (print the tables from the results and stop) and, with a
    `plot` help text, `--plot PNG`.
    """
    parser.add_argument("--report", action="store_true", help="print the tables and stop")
    if plot:
        parser.add_argument("--plot", default=None, help=plot)


def add_common_args(parser, output):
    """Options every example has: output folder, seed, time budget, precision."""
    parser.add_argument("--output", default=output, help="results folder (default: %(default)s)")
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of weights, views, batch order (default: %(default)s)",
    )
    parser.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="stop training cleanly at the epoch end that would pass N minutes of wall "
        "time since the script started; rerun the same command to resume (default: no limit)",
    )
    parser.add_argument(
        "--mixed-precision",
        action="store_true",
        help="keras mixed_bfloat16 policy (GPU/TPU; slow on most CPUs)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny settings for a smoke test on a CPU (about a minute)",
    )
    return parser


def parse_with_quick(parser, quick_defaults):
    """Parse; with `--quick`, `quick_defaults` replace the defaults (explicit options still win)."""
    args = parser.parse_args()
    if args.quick:
        parser.set_defaults(**quick_defaults)
        args = parser.parse_args()
    return args


def setup_keras(args):
    """Seed and precision; returns the imported keras module."""
    import keras

    if args.mixed_precision:
        keras.config.set_dtype_policy("mixed_bfloat16")
    keras.utils.set_random_seed(args.seed)
    os.makedirs(args.output, exist_ok=True)
    return keras


def class_files(folder, limit_per_class=None, seed=0):
    """`(paths, labels, class_names)` of a folder with one sub-folder per class.

    With `limit_per_class`, a seeded random subset of each class is kept.
    """
    from simclr_keras.data.folders import scan_class_folders

    if not os.path.isdir(folder):
        sys.exit(
            f"Data folder not found: {folder!r} (see the header of this script for how to unpack it)"
        )
    paths, labels, class_names = scan_class_folders(folder, "folder")
    if limit_per_class:
        rng = np.random.default_rng(seed)
        keep = []
        for label in range(len(class_names)):
            members = np.flatnonzero(labels == label)
            if len(members) > limit_per_class:
                members = np.sort(rng.choice(members, limit_per_class, replace=False))
            keep.append(members)
        keep = np.concatenate(keep)
        paths, labels = [paths[i] for i in keep], labels[keep]
    return paths, labels, class_names


def load_class_folder(folder, image_size, batch_size, limit_per_class=None, seed=0, **kwargs):
    """A labelled `DataGeneratorSimCLR` of a class-per-sub-folder folder
    (`DataGeneratorSimCLR.from_files` on `class_files`).
    """
    from simclr_keras import DataGeneratorSimCLR

    paths, labels, names = class_files(folder, limit_per_class, seed)
    start = time.time()
    data = DataGeneratorSimCLR.from_files(
        paths,
        (image_size, image_size),
        min(batch_size, len(paths)),
        labels=labels,
        class_names=names,
        seed=seed,
        **kwargs,
    )
    print(
        f"{folder}: {data.num_images} images, {len(names)} classes, decoded in {time.time() - start:.1f} s",
        flush=True,
    )
    return data


def load_train_test(
    root, image_size, batch_size, limit_per_class=None, test_limit_per_class=None, seed=0
):
    """`(train, test)`: `load_class_folder` of `root/train` (batches of
    `batch_size`) and of `root/test` (batches of 1), each at most N images per
    class where a limit is given.
    """
    train = load_class_folder(
        os.path.join(root, "train"), image_size, batch_size, limit_per_class, seed
    )
    test = load_class_folder(os.path.join(root, "test"), image_size, 1, test_limit_per_class, seed)
    return train, test


def epoch_clock(keras, clock_path, max_minutes=None, start=None):
    """A callback that logs each epoch's wall time and, with `max_minutes`,
    stops at the time budget.

    Epoch times go to `clock_path` (JSON `{epoch: seconds}`), so the total
    survives resumes; a resumed run overwrites later epochs. The stop is
    predictive: training ends after the epoch if one more epoch (as long as
    the last one) would pass `max_minutes` since `start`.
    """
    from simclr_keras.training import atomic_write_json

    times = read_json(clock_path, {})

    class EpochClock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.time()

        def on_epoch_end(self, epoch, logs=None):
            seconds = time.time() - self.t0
            times[str(epoch)] = round(seconds, 3)
            for key in [k for k in times if int(k) > epoch]:
                del times[key]
            atomic_write_json(times, clock_path)
            last = epoch + 1 >= (self.params or {}).get("epochs", 0)
            if max_minutes is not None and not last:
                if time.time() - start + 1.1 * seconds > 60 * max_minutes:
                    print(
                        f"\n--max-minutes {max_minutes:g}: stopping after epoch {epoch + 1}; "
                        "rerun the same command to resume.",
                        flush=True,
                    )
                    self.model.stop_training = True

    return EpochClock()


def time_budget_callbacks(keras, args, start, clock_path):
    """`[epoch_clock(...)]` with the script's `--max-minutes` budget."""
    return [epoch_clock(keras, clock_path, args.max_minutes, start)]


def train_seconds(clock_path, epochs):
    """Summed wall time of epochs 0..epochs-1 over every (resumed) call."""
    times = read_json(clock_path, {})
    return float(sum(v for k, v in times.items() if int(k) < epochs))


def finished_or_exit(history, epochs, what="training"):
    """Exit with `INCOMPLETE_EXIT_CODE` when fit stopped before `epochs`."""
    done = len(history.history.get("loss", []))
    if done < epochs:
        print(
            f"{what}: {done}/{epochs} epochs done. Rerun the same command to resume "
            f"(exit code {INCOMPLETE_EXIT_CODE}).",
            flush=True,
        )
        sys.exit(INCOMPLETE_EXIT_CODE)
    return done


def read_json(path, default=None):
    """The JSON file at `path`, or `default` when there is none."""
    if not os.path.exists(path):
        return default
    with open(path) as fh:
        return json.load(fh)


def pct(stat):
    """'52.4 ± 1.3 %' from a mean/std dict of fractions."""
    return f"{100 * stat['mean']:.1f} ± {100 * stat['std']:.1f} %"


def mean_std_cell(values):
    """'52.4 ± 1.3' (percent) from fractions: mean ± sample std, the value
    alone for one, '-' for none.
    """
    v = 100 * np.asarray(values, dtype=float)
    if len(v) == 0:
        return "-"
    return f"{v.mean():.1f} ± {v.std(ddof=1):.1f}" if len(v) > 1 else f"{v.mean():.1f}"


def markdown_table(header, rows):
    """A Markdown table; an empty cell is written `| |`."""
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    lines += [
        ("| " + " | ".join(str(c) for c in row) + " |").replace("|  |", "| |") for row in rows
    ]
    return "\n".join(lines)


def ensure_unpacked(data_root, tar_candidates):
    """Unpack the first existing tar of `tar_candidates` when `data_root` is missing.

    The tars hold one top folder (e.g. `imagenet5/`), extracted next to
    `data_root`, so `data_root` should end in that folder's name.
    """
    if os.path.isdir(os.path.join(data_root, "train")):
        return data_root
    for tar in tar_candidates:
        if tar and os.path.exists(tar):
            import tarfile

            target = os.path.dirname(os.path.abspath(data_root))
            print(f"Unpacking {tar} into {target} ...", flush=True)
            os.makedirs(target, exist_ok=True)
            with tarfile.open(tar) as archive:
                archive.extractall(target)
            if os.path.isdir(os.path.join(data_root, "train")):
                return data_root
    sys.exit(
        f"No data at {data_root!r} (expected {data_root}/train/<class>/...) and none of the "
        f"tars {[t for t in tar_candidates if t]} exists; see the header of this script."
    )


def bar_chart(groups, path, title, ylabel="test accuracy (%)"):
    """Grouped bars: `groups` is `{group: {bar: (mean, std)}}` in fractions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bars = list(dict.fromkeys(b for g in groups.values() for b in g))
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(groups) * len(bars) + 2), 3.6))
    width = 0.8 / max(1, len(bars))
    for i, bar in enumerate(bars):
        xs = [j + i * width for j, g in enumerate(groups) if bar in groups[g]]
        vals = [groups[g][bar] for g in groups if bar in groups[g]]
        ax.bar(
            xs,
            [100 * m for m, _ in vals],
            width,
            yerr=[100 * s for _, s in vals],
            capsize=3,
            label=bar,
        )
    ax.set_xticks(
        [j + width * (len(bars) - 1) / 2 for j in range(len(groups))], list(groups), fontsize=8
    )
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
