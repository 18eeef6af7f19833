"""ImageNet-5 on a CPU: random init vs SimCLR vs G-SimCLR vs supervised, linear probes, seeds.

Four arms, each with the same backbone, images, augmentation and epoch
budget, for every seed of `--seeds` (run seed-major: all arms of seed 0,
then seed 1, ..., so partial results stay balanced):

1. `random`: the backbone at random init, no training.
2. `simclr`: SimCLR with the library's default recipe.
3. `gsimclr`: G-SimCLR: the same SimCLR, with batches guided by
   pseudo-labels from the denoising autoencoder + k-means
   (`simclr_keras.pseudo_labels`, k = batch size by default, as in the
   G-SimCLR code).
4. `supervised`: the backbone trained from scratch with cross-entropy on
   all training labels, views from random resized crop + flip.

Each is scored by a linear probe (logistic regression, C by CV on the
labelled subset) on the pooled backbone (P3) with 10 % (mean of
`--label-draws` stratified draws) and 100 % of the 1 250 training labels,
on the 250 test images; the contrastive arms also at P1/P2 (inside the
projection head). The pseudo-labels' adjusted Rand index against the true
classes (k = B and k = 5 on the same autoencoder features) and the share of
same-class negatives in guided vs random batches are logged per seed.

Resumable: each arm-seed writes `runs/<arm>_seed<s>/result.json` when done,
SimCLR checkpoints every epoch (`save_path`), the supervised arm keeps a
`keras.callbacks.BackupAndRestore` folder and the pseudo-labels are cached
(computed once, shared by all seeds; `--pseudo-labels-only` computes them alone);
rerunning the same command skips finished arm-seeds and resumes a killed one.

Commands (data: `tar xf /work/shared/data/imagenet5-224.tar -C /tmp`):
    KERAS_BACKEND=tensorflow python examples/imagenet5_gsimclr.py
    KERAS_BACKEND=tensorflow python examples/imagenet5_gsimclr.py --quick   # smoke, ~2 min
Writes to --output: results.json, results.md, tsne.png, loss_curves.png.
"""

import argparse
import os
import sys
import time

import _common as common
import numpy as np

from simclr_keras.evaluation import summarize
from simclr_keras.training import atomic_write_json

ARMS = ("random", "simclr", "gsimclr", "supervised")
LABELS = {
    "random": "random init",
    "simclr": "SimCLR",
    "gsimclr": "G-SimCLR",
    "supervised": "supervised (CE)",
}
# G-SimCLR paper (arXiv:2009.12007), ImageNet-5, ResNet-50 at 224 px from scratch, linear probe.
PUBLISHED = {"simclr": "52.4 %", "gsimclr": "60.0 %", "supervised": "67.6 %"}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-root", default="/tmp/imagenet5", help="(default: %(default)s)")
    p.add_argument("--image-size", type=int, default=32, help="(default: %(default)s)")
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
        "--clusters",
        type=int,
        default=None,
        help="G-SimCLR pseudo-classes k (default: the batch size, as in G-SimCLR)",
    )
    p.add_argument("--ae-epochs", type=int, default=10, help="(default: %(default)s)")
    p.add_argument("--arms", default=",".join(ARMS), help="(default: %(default)s)")
    p.add_argument(
        "--seeds",
        type=lambda s: [int(v) for v in s.split(",")],
        default=[0, 1, 2],
        help="(default: 0,1,2)",
    )
    p.add_argument("--label-draws", type=int, default=3, help="draws of the 10 %% subset")
    p.add_argument(
        "--probe-cs",
        type=lambda s: tuple(float(v) for v in s.split(",")),
        default=(0.01, 0.1, 1.0, 10.0),
        help="linear-probe C grid, chosen by CV on the labelled subset",
    )
    p.add_argument(
        "--pseudo-labels-only",
        action="store_true",
        help="only compute (and cache) the G-SimCLR pseudo-labels, then exit",
    )
    p.add_argument("--limit-per-class", type=int, default=None, help="at most N train images/class")
    common.add_common_args(p, "runs/gsimclr")
    args = common.parse_with_quick(
        p,
        dict(
            image_size=16,
            batch_size=16,
            epochs=1,
            ae_epochs=1,
            seeds=[0],
            label_draws=2,
            probe_cs=(1.0,),
            limit_per_class=16,
            output="runs/gsimclr_quick",
        ),
    )
    args.arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    unknown = set(args.arms) - set(ARMS)
    if unknown:
        p.error(f"--arms: unknown {sorted(unknown)}; choose from {ARMS}")
    return args


def probes(model, data, depths, args):
    """Linear-probe accuracy per depth at 10 % and 100 % labels, plus test P3 features."""
    from simclr_keras import extract_features, linear_evaluation

    (x_tr, y_tr), (x_te, y_te) = data
    depths = list(depths)
    f_tr = extract_features(model, x_tr, depths, verbose=0)
    f_te = extract_features(model, x_te, depths, verbose=0)
    out = {}
    for depth in depths:
        for fraction, draws in ((0.1, range(args.label_draws)), (1.0, [0])):
            res = linear_evaluation(
                f_tr[depth], y_tr, f_te[depth], y_te, (fraction,), tuple(draws), Cs=args.probe_cs
            )
            out[f"{depth}@{fraction:g}"] = res[fraction]["accuracy"]["mean"]
    return out, f_te["P3"]


def guided_labels(args, x_tr, y_tr):
    """Autoencoder + k-means pseudo-labels and their quality vs the true classes.

    Computed once (seed `--seed`) and cached in the output folder, shared by
    every G-SimCLR seed: G-SimCLR derives its pseudo-labels once, before
    pre-training, and they do not depend on the SimCLR augmentation.
    """
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score

    from simclr_keras import pseudo_labels

    seed, k = args.seed, args.clusters or args.batch_size
    path = os.path.join(args.output, f"pseudo_labels_k{k}_seed{seed}.npz")
    if not os.path.exists(path):
        labels, info = pseudo_labels(
            x_tr, k, epochs=args.ae_epochs, seed=seed, return_info=True, verbose=2
        )
        k5 = KMeans(n_clusters=5, n_init=10, random_state=seed).fit_predict(info["features"])
        quality = {
            "n_clusters": k,
            "ari_k": float(adjusted_rand_score(y_tr, labels)),
            "ari_k5": float(adjusted_rand_score(y_tr, k5)),
            "reconstruction_mse": info["reconstruction_mse"],
            "autoencoder_seconds": info["seconds"],
        }
        np.savez(path + ".tmp.npz", labels=labels, **{q: np.asarray(v) for q, v in quality.items()})
        os.replace(path + ".tmp.npz", path)
    saved = np.load(path)
    quality = {q: saved[q].item() for q in saved.files if q != "labels"}
    print(
        f"pseudo-labels: k={quality['n_clusters']}, ARI vs true classes {quality['ari_k']:.3f} "
        f"(k=5 on the same features: {quality['ari_k5']:.3f})",
        flush=True,
    )
    return saved["labels"], quality


def run_contrastive(keras, args, arm, seed, data, shape, run_dir):
    from simclr_keras import DataGeneratorSimCLR, SimCLR, get_backbone, plot_history
    from simclr_keras.backbones.zoo import HEAD_DIMS
    from simclr_keras.data.guided import batch_stats

    (x_tr, y_tr) = data[0]
    result, labels = {}, None
    if arm == "gsimclr":
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
    clock = os.path.join(run_dir, "epoch_seconds.json")
    history = simclr.fit(
        train, epochs=args.epochs, verbose=2, callbacks=[common.epoch_clock(keras, clock)]
    )
    plot_history(
        history, os.path.join(run_dir, "training_curves.png"), f"{LABELS[arm]}, seed {seed}"
    )
    result["probes"], p3 = probes(simclr, data, ["P1", "P2", "P3"], args)
    result["loss"] = [float(v) for v in history.history["loss"]]
    result["contrastive_acc"] = [float(v) for v in history.history["contrastive_acc"]]
    result["train_seconds"] = common.train_seconds(clock, args.epochs)
    return result, p3


def run_supervised(keras, args, seed, data, shape, run_dir):
    from simclr_keras import SimCLRAugmentation, get_backbone

    (x_tr, y_tr), (x_te, y_te) = data
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
    outputs = keras.layers.Dense(int(y_tr.max()) + 1, dtype="float32")(x)
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
        epochs=args.epochs,
        verbose=2,
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
        "train_seconds": common.train_seconds(clock, args.epochs),
    }
    result["probes"], p3 = probes(base, data, ["P3"], args)
    return result, p3


def run_arm(keras, args, arm, seed, data, shape, run_dir):
    from simclr_keras import get_backbone

    if arm == "random":
        keras.utils.set_random_seed(seed)
        result = {"train_seconds": 0.0}
        result["probes"], p3 = probes(get_backbone(args.backbone, shape), data, ["P3"], args)
        return result, p3
    if arm == "supervised":
        return run_supervised(keras, args, seed, data, shape, run_dir)
    return run_contrastive(keras, args, arm, seed, data, shape, run_dir)


def summarise(args, results, settings):
    """Mean ± std over finished seeds per arm and depth; Markdown + JSON."""
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
    quality = [r["pseudo_labels"] for (a, _), r in sorted(results.items()) if a == "gsimclr"]
    extra = ""
    if quality:
        q = quality[0]
        extra += (
            f"\nPseudo-labels (autoencoder + k-means, computed once with seed {args.seed}), "
            f"adjusted Rand index vs the true classes: k = {q['n_clusters']}: {q['ari_k']:.3f}; "
            f"k = 5 on the same features: {q['ari_k5']:.3f}.\n"
        )
    for arm in ("simclr", "gsimclr"):
        shares = [r["true_class_negatives"] for (a, _), r in results.items() if a == arm]
        if shares:
            extra += (
                f"{LABELS[arm]}: share of an anchor's negatives of its own true class "
                f"{np.mean([s['share'] for s in shares]):.4f} (random batches: "
                f"{np.mean([s['random'] for s in shares]):.4f}).\n"
            )
    print(
        "\nImageNet-5 test accuracy, linear probe (mean ± std over seeds):\n" + table + "\n" + extra
    )
    runs = {f"{a}_seed{s}": r for (a, s), r in sorted(results.items())}
    atomic_write_json(
        {"settings": settings, "summary": summary, "runs": runs},
        os.path.join(args.output, "results.json"),
    )
    with open(os.path.join(args.output, "results.md"), "w") as fh:
        fh.write(table + "\n\n" + extra.lstrip("\n"))


def plots(args, results, test_labels, class_names):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    root = common.ensure_unpacked(args.data_root, ["/work/shared/data/imagenet5-224.tar"])
    train = common.load_split(
        os.path.join(root, "train"), args.image_size, args.batch_size, args.limit_per_class
    )
    test = common.load_split(os.path.join(root, "test"), args.image_size, 1)
    data, shape = (train.load_all(), test.load_all()), (args.image_size, args.image_size, 3)
    if args.pseudo_labels_only:
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
            summarise(args, results, settings)  # partial results are always on disk
    plots(args, results, data[1][1], test.class_names)
    print(f"total {time.time() - start:.0f} s this call; results in {os.path.abspath(args.output)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
