"""ImageNet-5 on a CPU: random init vs SimCLR vs G-SimCLR vs supervised, paired over seeds.

Five arms, each with the same backbone, images and augmentation, for every
seed of `--seeds` (run seed-major: all arms of seed 0, then seed 1, ..., so
partial results stay paired):

1. `random`: the backbone at random init, no training.
2. `simclr`: SimCLR with the library's default recipe, `--epochs` epochs.
3. `gsimclr`: the same SimCLR, with batches guided by pseudo-labels
   (k = batch size, as in the G-SimCLR code) from `--pseudo-label-source`:
   `efficientnet_lite0` (k-means on an ImageNet-pretrained EfficientNet-Lite0's
   features), `autoencoder` (G-SimCLR's denoising autoencoder) or
   `recluster` (the model's own features, re-clustered every
   `--recluster-every` epochs by `simclr_keras.ReclusterPseudoLabels`).
4. `supervised10`: the backbone trained from scratch with cross-entropy on
   the seed's labelled 10 % only (`stratified_fraction(labels, 0.1, seed)`,
   the subset every arm's 10 % probe uses), for as many steps as the
   other arms train.
5. `supervised`: the same on all 1 250 training labels, `--epochs` epochs.

Each is scored by a linear probe (logistic regression, C by CV on the
labelled subset only) on the pooled backbone (P3) with the seed's 10 % and
with 100 % of the training labels, on the 250 test images; the contrastive
arms also at P1/P2. The summary gives, per seed, the paired difference
G-SimCLR - SimCLR (same seed, same labelled subset, same test images), its
mean and a 95 % t-interval. Nothing is tuned on the test split.

Resumable: each arm-seed writes `runs/<arm>_seed<s>/result.json` when done,
SimCLR checkpoints every epoch, the supervised arms keep a
`keras.callbacks.BackupAndRestore` folder and the pseudo-labels are cached
(computed once, shared by all seeds; `--pseudo-labels-only` computes them alone);
rerunning the same command skips finished arm-seeds and resumes a killed one.

Commands (data: `tar xf /work/shared/data/imagenet5-224.tar -C /tmp`):
    KERAS_BACKEND=tensorflow python examples/imagenet5_gsimclr.py
    KERAS_BACKEND=tensorflow python examples/imagenet5_gsimclr.py --quick   # smoke, ~2 min
Writes to --output: results.json, results.md, tsne.png, loss_curves.png, paired.png.
"""

import os
import sys
import time

import _common as common
import numpy as np

from simclr_keras.evaluation import summarize
from simclr_keras.training import atomic_write_json

ARMS = ("random", "simclr", "gsimclr", "supervised10", "supervised")
LABELS = {
    "random": "random init",
    "simclr": "SimCLR",
    "gsimclr": "G-SimCLR",
    "supervised10": "supervised (CE), 10 % labels",
    "supervised": "supervised (CE), all labels",
}
SOURCES = ("efficientnet_lite0", "autoencoder", "recluster")
# G-SimCLR paper (arXiv:2009.12007), ImageNet-5, ResNet-50 at 224 px from scratch, linear probe.
PUBLISHED = {"simclr": "52.4 %", "gsimclr": "60.0 %", "supervised": "67.6 %"}


def parse_args():
    p = common.parser(__doc__)
    p.add_argument("--data-root", default="/tmp/imagenet5", help="(default: %(default)s)")
    p.add_argument("--image-size", type=int, default=64, help="(default: %(default)s)")
    p.add_argument(
        "--backbone", default="small_cnn", help="small_cnn or resnet18 (default: %(default)s)"
    )
    p.add_argument("--batch-size", type=int, default=64, help="(default: %(default)s)")
    p.add_argument(
        "--epochs", type=int, default=10, help="every trained arm (default: %(default)s)"
    )
    p.add_argument(
        "--temperature",
        type=float,
        default=None,
        help="NT-Xent temperature (default: the library's)",
    )
    p.add_argument("--optimizer", default=None, help="SimCLR optimizer (default: the library's)")
    p.add_argument(
        "--learning-rate", type=float, default=None, help="(default: the library's for SimCLR)"
    )
    p.add_argument(
        "--supervised-learning-rate", type=float, default=1e-3, help="Adam (default: %(default)s)"
    )
    p.add_argument(
        "--pseudo-label-source",
        default="efficientnet_lite0",
        choices=SOURCES,
        help="G-SimCLR pseudo-labels (default: %(default)s)",
    )
    common.add_gsimclr_args(p)
    common.add_pretrained_args(p)
    p.add_argument(
        "--pseudo-label-features",
        default=None,
        help="features_*.npz cached by examples/pseudo_label_quality.py for the same source: "
        "clustered instead of computing the features again",
    )
    p.add_argument(
        "--recluster-every", type=int, default=2, help="epochs between re-clusterings (recluster)"
    )
    p.add_argument("--arms", default=",".join(ARMS), help="(default: %(default)s)")
    p.add_argument(
        "--seeds",
        type=common.int_list,
        default=[0, 1, 2, 3, 4],
        help="(default: 0,1,2,3,4)",
    )
    common.add_probe_cs_arg(
        p, (0.01, 0.1, 1.0, 10.0), "linear-probe C grid, chosen by CV on the labelled subset"
    )
    p.add_argument(
        "--pseudo-labels-only",
        action="store_true",
        help="only compute (and cache) the G-SimCLR pseudo-labels, then exit",
    )
    p.add_argument(
        "--summary-only",
        action="store_true",
        help="train nothing: table, paired differences and plots of the finished arm-seeds",
    )
    common.add_limit_per_class_arg(p, "at most N train images/class")
    common.add_common_args(p, "runs/gsimclr64")
    args = common.parse_with_quick(
        p,
        dict(
            image_size=16,
            batch_size=16,
            epochs=1,
            ae_epochs=1,
            seeds=[0, 1],
            probe_cs=(1.0,),
            pretrained_size=64,
            limit_per_class=16,
            output="runs/gsimclr_quick",
        ),
    )
    args.arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    unknown = set(args.arms) - set(ARMS)
    if unknown:
        p.error(f"--arms: unknown {sorted(unknown)}; choose from {ARMS}")
    return args


def probes(model, data, depths, args, seed):
    """Linear-probe accuracy per depth at the seed's 10 % and at 100 % labels, plus test P3."""
    from simclr_keras import extract_features, linear_evaluation

    (x_tr, y_tr), (x_te, y_te) = data
    depths = list(depths)
    f_tr = extract_features(model, x_tr, depths, verbose=0)
    f_te = extract_features(model, x_te, depths, verbose=0)
    out = {}
    for depth in depths:
        for fraction, draws in ((0.1, [seed]), (1.0, [seed])):
            res = linear_evaluation(
                f_tr[depth], y_tr, f_te[depth], y_te, (fraction,), tuple(draws), Cs=args.probe_cs
            )
            out[f"{depth}@{fraction:g}"] = res[fraction]["accuracy"]["mean"]
    return out, f_te["P3"]


def guided_labels(args, x_tr, y_tr):
    """G-SimCLR's pseudo-labels from `--pseudo-label-source` and their quality.

    Computed once (seed `--seed`) and cached in the output folder, shared by
    every G-SimCLR seed: G-SimCLR derives its pseudo-labels once, before
    pre-training. The true classes only score the clusters.
    """
    from simclr_keras import encoder_pseudo_labels, get_backbone, pseudo_labels
    from simclr_keras.data import cluster_features

    seed, k = args.seed, args.clusters or args.batch_size
    source = args.pseudo_label_source
    path = os.path.join(args.output, f"pseudo_labels_{source}_k{k}_seed{seed}.npz")
    if not os.path.exists(path):
        start = time.time()
        if args.pseudo_label_features:
            cached = np.load(args.pseudo_label_features)
            info = {"features": cached["features"]}
            normalize = source != "autoencoder"  # as pseudo_label_quality.py clusters them
            labels, more = cluster_features(
                info["features"], k, classes=y_tr, normalize=normalize, seed=seed, return_info=True
            )
            info.update(more)
            start -= float(cached["seconds"])
        elif source == "autoencoder":
            labels, info = pseudo_labels(
                x_tr, k, epochs=args.ae_epochs, seed=seed, classes=y_tr, return_info=True, verbose=2
            )
            normalize = False  # as the G-SimCLR notebook
        else:
            size = args.pretrained_size
            images = common.load_class_folder(
                os.path.join(args.data_root, "train"), size, 1, args.limit_per_class
            ).load_all()[0]
            model = get_backbone(
                "efficientnet_lite0", (size, size, 3), weights=args.pretrained_weights
            )
            labels, info = encoder_pseudo_labels(
                model,
                images,
                k,
                classes=y_tr,
                preprocessing="efficientnet_lite",
                seed=seed,
                batch_size=50,
                return_info=True,
            )
            normalize = True
        k5 = cluster_features(
            info["features"], 5, classes=y_tr, normalize=normalize, seed=seed, return_info=True
        )[1]["quality"]
        quality = {
            "source": source,
            "n_clusters": k,
            "ari_k": info["quality"]["ari"],
            "purity_k": info["quality"]["purity"],
            "ari_k5": k5["ari"],
            "purity_k5": k5["purity"],
            "seconds": time.time() - start,
        }
        np.savez(path + ".tmp.npz", labels=labels, **{q: np.asarray(v) for q, v in quality.items()})
        os.replace(path + ".tmp.npz", path)
    saved = np.load(path)
    quality = {q: saved[q].item() for q in saved.files if q != "labels"}
    print(
        f"pseudo-labels ({source}): k={quality['n_clusters']}, ARI vs true classes "
        f"{quality['ari_k']:.3f}, purity {quality['purity_k']:.3f} (k=5 on the same features: "
        f"ARI {quality['ari_k5']:.3f}, purity {quality['purity_k5']:.3f})",
        flush=True,
    )
    return saved["labels"], quality


def run_contrastive(keras, args, arm, seed, data, shape, run_dir):
    from simclr_keras import (
        DataGeneratorSimCLR,
        ReclusterPseudoLabels,
        SimCLR,
        get_backbone,
        plot_history,
    )
    from simclr_keras.backbones.zoo import HEAD_DIMS
    from simclr_keras.data.guided import batch_stats

    (x_tr, y_tr) = data[0]
    result, labels, callbacks = {}, None, []
    recluster = arm == "gsimclr" and args.pseudo_label_source == "recluster"
    if arm == "gsimclr" and not recluster:
        labels, result["pseudo_labels"] = guided_labels(args, x_tr, y_tr)
    keras.utils.set_random_seed(seed)
    base = get_backbone(args.backbone, shape)
    train = DataGeneratorSimCLR(x_tr, args.batch_size, seed=seed, pseudo_labels=labels)
    if labels is not None:
        result["batch_stats"] = train.batch_stats()
    # Share of same-*class* negatives in this arm's first-epoch batches vs random.
    true_stats = batch_stats([train.batch_indices(i) for i in range(len(train))], y_tr)
    result["true_class_negatives"] = {
        "share": true_stats["same_label_share"],
        "random": true_stats["random_same_label_share"],
    }
    options = {}
    if args.temperature is not None:
        options["temperature"] = args.temperature
    if args.optimizer is not None:
        options["optimizer"] = args.optimizer
    if args.learning_rate is not None:
        options["learning_rate"] = args.learning_rate
    simclr = SimCLR(
        base,
        shape,
        args.batch_size,
        HEAD_DIMS.get(args.backbone, [512, 128]),
        None,
        seed=seed,
        save_path=os.path.join(run_dir, "simclr.keras"),
        **options,
    )
    if recluster:  # the model's own P3 features, every few epochs (state next to checkpoints)
        callbacks.append(
            ReclusterPseudoLabels(
                train,
                args.recluster_every,
                args.clusters or args.batch_size,
                classes=y_tr,
                seed=seed,
            )
        )
    clock = os.path.join(run_dir, "epoch_seconds.json")
    history = simclr.fit(
        train,
        epochs=args.epochs,
        verbose=2,
        callbacks=callbacks + [common.epoch_clock(keras, clock)],
    )
    if recluster:
        result["reclusterings"] = callbacks[0].history
    plot_history(
        history, os.path.join(run_dir, "training_curves.png"), f"{LABELS[arm]}, seed {seed}"
    )
    result["probes"], p3 = probes(simclr, data, ["P1", "P2", "P3"], args, seed)
    result["loss"] = [float(v) for v in history.history["loss"]]
    result["contrastive_acc"] = [float(v) for v in history.history["contrastive_acc"]]
    result["train_seconds"] = common.train_seconds(clock, args.epochs)
    return result, p3


def run_supervised(keras, args, seed, data, shape, run_dir, fraction=1.0):
    """Cross-entropy from scratch on `fraction` of the labels (the probes' 10 % draw
    of this seed), for as many optimizer steps as an arm on all images takes.
    """
    from simclr_keras import SimCLRAugmentation, get_backbone
    from simclr_keras.evaluation import stratified_fraction

    (x_all, y_all), (x_te, y_te) = data
    subset = stratified_fraction(y_all, fraction, seed)
    x_tr, y_tr = x_all[subset], y_all[subset]
    steps_all = -(-len(x_all) // args.batch_size)
    epochs = round(args.epochs * steps_all / -(-len(x_tr) // args.batch_size))
    keras.utils.set_random_seed(seed)
    base = get_backbone(args.backbone, shape)
    inputs = keras.Input(shape)
    # Random resized crop + flip only: SimCLR's crop with colour, grey and blur off.
    x = SimCLRAugmentation(
        shape[0],
        shape[1],
        jitter_probability=0.0,
        grayscale_probability=0.0,
        blur_probability=0.0,
        seed=seed,
    )(inputs)
    x = keras.layers.GlobalAveragePooling2D()(base(x))
    outputs = keras.layers.Dense(int(y_all.max()) + 1, dtype="float32")(x)
    model = keras.Model(inputs, outputs)
    model.compile(
        keras.optimizers.Adam(args.supervised_learning_rate),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    clock = os.path.join(run_dir, "epoch_seconds.json")
    history = model.fit(
        x_tr.astype("float32") / 255.0,
        y_tr,
        batch_size=args.batch_size,
        epochs=epochs,
        verbose=2 if epochs <= 30 else 0,
        callbacks=[
            keras.callbacks.BackupAndRestore(os.path.join(run_dir, "backup")),
            common.epoch_clock(keras, clock),
        ],
    )
    result = {
        "end_to_end_test_accuracy": float(
            model.evaluate(x_te.astype("float32") / 255.0, y_te, verbose=0)[1]
        ),
        "loss": [float(v) for v in history.history["loss"]],
        "train_seconds": common.train_seconds(clock, epochs),
        "n_labelled": int(len(x_tr)),
        "epochs": epochs,
    }
    result["probes"], p3 = probes(base, data, ["P3"], args, seed)
    return result, p3


def run_arm(keras, args, arm, seed, data, shape, run_dir):
    from simclr_keras import get_backbone

    if arm == "random":
        keras.utils.set_random_seed(seed)
        result = {"train_seconds": 0.0}
        result["probes"], p3 = probes(get_backbone(args.backbone, shape), data, ["P3"], args, seed)
        return result, p3
    if arm == "supervised":
        return run_supervised(keras, args, seed, data, shape, run_dir)
    if arm == "supervised10":
        return run_supervised(keras, args, seed, data, shape, run_dir, fraction=0.1)
    return run_contrastive(keras, args, arm, seed, data, shape, run_dir)


def paired(results, arm_a, arm_b, key):
    """Per-seed differences `arm_a - arm_b` of probe `key`, their mean and 95 % t-interval."""
    from scipy import stats

    seeds = sorted(
        s
        for (a, s) in results
        if a == arm_a and (arm_b, s) in results and key in results[(a, s)]["probes"]
    )
    diffs = [results[(arm_a, s)]["probes"][key] - results[(arm_b, s)]["probes"][key] for s in seeds]
    out = {"seeds": seeds, "diffs": diffs}
    if diffs:
        out["mean"] = float(np.mean(diffs))
    if len(diffs) > 1:
        half = stats.t.ppf(0.975, len(diffs) - 1) * np.std(diffs, ddof=1) / np.sqrt(len(diffs))
        out["ci95"] = [out["mean"] - half, out["mean"] + half]
    return out


def points(d):
    """'+1.2 [-0.3, +2.7] (n = 3; per seed +0.4, +2.0, +1.2)' in points."""
    if not d["diffs"]:
        return "—"
    text = f"{100 * d['mean']:+.1f}"
    text += f" [{100 * d['ci95'][0]:+.1f}, {100 * d['ci95'][1]:+.1f}]" if "ci95" in d else ""
    per_seed = ", ".join(f"{100 * v:+.1f}" for v in d["diffs"])
    return f"{text} (n = {len(d['diffs'])}: {per_seed})"


PAIRS = (("gsimclr", "simclr"), ("simclr", "supervised10"), ("gsimclr", "supervised10"))


def summarise(args, results, settings):
    """Mean ± std over finished seeds per arm and depth, paired differences; Markdown + JSON."""
    rows, summary = [], {}
    for arm in args.arms:
        done = [r for (a, _), r in sorted(results.items()) if a == arm]
        if not done:
            continue
        for depth in ("P3", "P2", "P1"):
            cells = {}
            for frac in ("0.1", "1"):
                vals = [
                    r["probes"][f"{depth}@{frac}"] for r in done if f"{depth}@{frac}" in r["probes"]
                ]
                if vals:
                    cells[frac] = summarize(vals)
            if not cells:
                continue
            summary[f"{arm}/{depth}"] = cells
            secs = [r["seconds"] for r in done]
            rows.append(
                [
                    LABELS[arm],
                    depth,
                    *(common.pct(cells[f]) if f in cells else "—" for f in ("0.1", "1")),
                    len(done),
                    f"{np.mean(secs) / 60:.1f}" if depth == "P3" else "",
                    PUBLISHED.get(arm, "") if depth == "P3" else "",
                ]
            )
    table = common.markdown_table(
        [
            "arm",
            "features",
            "10 % labels",
            "100 % labels",
            "seeds",
            "min / arm-seed",
            "paper (ResNet-50, 224 px)",
        ],
        rows,
    )
    diff_rows = []
    for arm_a, arm_b in PAIRS:
        d10, d100 = (paired(results, arm_a, arm_b, f"P3@{f}") for f in ("0.1", "1"))
        summary[f"{arm_a}-{arm_b}"] = {"0.1": d10, "1": d100}
        if d10["diffs"] or d100["diffs"]:
            diff_rows.append([f"{LABELS[arm_a]} − {LABELS[arm_b]}", points(d10), points(d100)])
    diffs = common.markdown_table(
        ["paired difference (P3, points)", "10 % labels: mean [95 % t-interval]", "100 % labels"],
        diff_rows,
    )
    quality = [r["pseudo_labels"] for (a, _), r in sorted(results.items()) if "pseudo_labels" in r]
    extra = ""
    if quality:
        q = quality[0]
        extra += (
            f"\nPseudo-labels ({q['source']}, computed once with seed {args.seed}) vs the true "
            f"classes: k = {q['n_clusters']}: ARI {q['ari_k']:.3f}, purity {q['purity_k']:.3f}; "
            f"k = 5 on the same features: ARI {q['ari_k5']:.3f}, purity {q['purity_k5']:.3f}.\n"
        )
    reclustered = [
        r["reclusterings"][-1] for (a, _), r in sorted(results.items()) if r.get("reclusterings")
    ]
    if reclustered:
        extra += (
            f"\nPseudo-labels re-clustered from the model's own P3 features every "
            f"{args.recluster_every} epochs; the last clustering (epoch "
            f"{reclustered[0]['epoch'] + 1}) vs the true classes, mean over seeds: ARI "
            f"{np.mean([q['quality']['ari'] for q in reclustered]):.3f}, purity "
            f"{np.mean([q['quality']['purity'] for q in reclustered]):.3f}.\n"
        )
    for arm in ("simclr", "gsimclr"):
        shares = [r["true_class_negatives"] for (a, _), r in results.items() if a == arm]
        if shares:
            extra += (
                f"{LABELS[arm]}: share of an anchor's negatives of its own true class "
                f"{np.mean([s['share'] for s in shares]):.4f} (random batches: "
                f"{np.mean([s['random'] for s in shares]):.4f}).\n"
            )
    text = table + "\n\n" + (diffs + "\n" if diff_rows else "") + extra
    print("\nImageNet-5 test accuracy, linear probe (mean ± std over seeds):\n" + text)
    runs = {f"{a}_seed{s}": r for (a, s), r in sorted(results.items())}
    atomic_write_json(
        {"settings": settings, "summary": summary, "runs": runs},
        os.path.join(args.output, "results.json"),
    )
    with open(os.path.join(args.output, "results.md"), "w") as fh:
        fh.write(text.lstrip("\n"))
    return summary


def paired_plot(args, results):
    """Per-seed test accuracy (P3) of every arm, seeds joined by lines, at 10 % and 100 %."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = [a for a in args.arms if any(k[0] == a for k in results)]
    seeds = sorted({s for (_, s) in results})
    if not arms or not seeds:
        return
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8), sharey=True)
    for ax, frac in zip(axes, ("0.1", "1")):
        for seed in seeds:
            ys = [
                100 * results[(a, seed)]["probes"][f"P3@{frac}"] if (a, seed) in results else np.nan
                for a in arms
            ]
            ax.plot(range(len(arms)), ys, "o-", alpha=0.6, label=f"seed {seed}")
        ax.set_xticks(range(len(arms)), [LABELS[a].replace(", ", "\n") for a in arms], fontsize=7)
        ax.set_title(
            f"linear probe (P3), {'10 %' if frac == '0.1' else '100 %'} labels", fontsize=9
        )
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("ImageNet-5 test accuracy (%)")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(args.output, "paired.png"), dpi=110)
    plt.close(fig)


def plots(args, results, test_labels, class_names):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paired_plot(args, results)

    from simclr_keras import plot_tsne_pair

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for (arm, seed), r in sorted(results.items()):
        if "loss" in r and arm in ("simclr", "gsimclr"):
            style = "-" if arm == "simclr" else "--"
            ax.plot(range(1, len(r["loss"]) + 1), r["loss"], style, label=f"{LABELS[arm]} s{seed}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("NT-Xent loss")
    ax.set_title("ImageNet-5 pre-training loss", fontsize=10)
    if ax.lines:
        ax.legend(fontsize=7, ncol=2)
        fig.tight_layout()
        fig.savefig(os.path.join(args.output, "loss_curves.png"), dpi=110)
    plt.close(fig)
    seed = next(
        (s for s in args.seeds if ("simclr", s) in results and ("gsimclr", s) in results), None
    )
    if seed is None:
        return
    feats = [
        os.path.join(args.output, "runs", f"{a}_seed{seed}", "test_p3.npy")
        for a in ("simclr", "gsimclr")
    ]
    if all(os.path.exists(f) for f in feats):
        plot_tsne_pair(
            np.load(feats[0]),
            np.load(feats[1]),
            test_labels,
            os.path.join(args.output, "tsne.png"),
            class_names,
            titles=(f"SimCLR (P3, test, seed {seed})", f"G-SimCLR (P3, test, seed {seed})"),
        )


def main():
    args = parse_args()
    start = time.time()
    keras = common.setup_keras(args)
    root = common.ensure_unpacked(
        args.data_root,
        [os.path.join(os.environ.get("SIMCLR_SHARED_DATA", "../shared/data"), "imagenet5-224.tar")],
    )
    train, test = common.load_train_test(
        root, args.image_size, args.batch_size, args.limit_per_class
    )
    data, shape = (train.load_all(), test.load_all()), (args.image_size, args.image_size, 3)
    if args.pseudo_labels_only:
        if args.pseudo_label_source != "recluster":  # recluster labels come while training
            guided_labels(args, *data[0])
        return 0
    settings = dict(vars(args), backend=keras.backend.backend(), keras=keras.__version__)
    results = {}
    for seed in args.seeds:
        for arm in args.arms:
            run_dir = os.path.join(args.output, "runs", f"{arm}_seed{seed}")
            os.makedirs(run_dir, exist_ok=True)
            path = os.path.join(run_dir, "result.json")
            saved = common.read_json(path)
            if saved is None and args.summary_only:
                continue
            if saved is None:
                print(f"\n=== {LABELS[arm]}, seed {seed} ===", flush=True)
                t0 = time.time()
                saved, p3 = run_arm(keras, args, arm, seed, data, shape, run_dir)
                saved["seconds"] = time.time() - t0
                saved["finished_utc"] = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
                np.save(os.path.join(run_dir, "test_p3.npy"), p3)
                atomic_write_json(saved, path)
                print(
                    f"{arm} seed {seed}: {saved['probes']} in {saved['seconds']:.0f} s", flush=True
                )
            results[(arm, seed)] = saved
            if not args.summary_only:
                summarise(args, results, settings)  # partial results are always on disk
    if args.summary_only:
        summarise(args, results, settings)
    plots(args, results, data[1][1], test.class_names)
    print(f"total {time.time() - start:.0f} s this call; results in {os.path.abspath(args.output)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
