"""ImageNet-5 with ResNet-50 from scratch: SimCLR vs guided G-SimCLR, linear probes at P1/P2/P3.

For each pre-training seed (`--seeds`) and method (`--methods`): `random`
(ResNet-50 at random init, P3 only), `simclr` (vanilla SimCLR) and
`gsimclr` (G-SimCLR: batches guided by denoising-autoencoder + k-means
`pseudo_labels` with k = the batch size by default, as in the G-SimCLR
code, so a batch holds about one image per pseudo-class). Each trained
model is scored by linear probes on frozen features at P1, P2 (inside the
projection head) and P3 (pooled backbone) with 10 % and 100 % of the
training labels (10 %: mean over `--label-draws` stratified draws), on the
250 test images. Optional `--supervised`: ResNet-50 trained from scratch on
all labels. Prints a table (mean ± std over seeds) beside the published
figures (G-SimCLR paper, linear probe: SimCLR 52.4 %, G-SimCLR 60.0 %,
supervised 67.6 %).

Needs: imagenet5/{train,test}/{airplane,car,cat,dog,elephant} (250 + 50
images per class); unpacked automatically from .data/imagenet5-224.tar or
../shared/data/imagenet5-224.tar when `--data-root` is missing. A GPU:
the defaults (224 px, batch 256, 200 epochs, 3 seeds x 2 methods) take
roughly 20-40 min on one H100; `--quick` runs in a few minutes on a CPU.

Commands:
    python examples/imagenet5_resnet50.py --quick --limit-per-class 16
    # GPU, JAX, 10-minute calls: copy the tar into .data/ (git-ignored) and
    # rerun the same command until it exits with code 0 (3 = not done yet):
    KERAS_BACKEND=jax python examples/imagenet5_resnet50.py --mixed-precision --max-minutes 8
    python examples/imagenet5_resnet50.py --image-size 128 --supervised --temperature 0.5
Every run checkpoints each epoch (runs/<method>_seed<s>/simclr.keras) and
finished runs keep their result.json, so rerunning resumes where it stopped.
Writes to --output: results.json, results.md, accuracy.png, tsne.png,
runs/*/training_curves.png.
"""

import os
import sys
import time

import _common as common
import numpy as np

from simclr_keras.evaluation import summarize
from simclr_keras.training import atomic_write_json

PUBLISHED = {"simclr": "52.4 %", "gsimclr": "60.0 %", "supervised": "67.6 %"}
LABELS = {
    "random": "ResNet-50 random init",
    "simclr": "SimCLR",
    "gsimclr": "G-SimCLR",
    "supervised": "supervised",
}


def parse_args():
    p = common.parser(__doc__)
    p.add_argument(
        "--data-root",
        default=".data/imagenet5",
        help="folder with train/ and test/ (default: %(default)s)",
    )
    p.add_argument(
        "--image-size",
        type=int,
        default=224,
        help="224, or 128 for a faster run (default: %(default)s)",
    )
    p.add_argument("--batch-size", type=int, default=256, help="(default: %(default)s)")
    p.add_argument("--epochs", type=int, default=200, help="(default: %(default)s)")
    p.add_argument(
        "--temperature",
        type=float,
        default=0.1,
        help="NT-Xent temperature, e.g. 0.1 or 0.5 (default: %(default)s)",
    )
    p.add_argument("--learning-rate", type=float, default=1e-3, help="Adam (default: %(default)s)")
    p.add_argument(
        "--blur", type=float, default=0.5, help="blur probability (default: %(default)s)"
    )
    p.add_argument(
        "--jitter", type=float, default=1.0, help="colour jitter strength (default: %(default)s)"
    )
    p.add_argument("--methods", default="random,simclr,gsimclr", help="(default: %(default)s)")
    p.add_argument(
        "--seeds",
        type=common.int_list,
        default=[0, 1, 2],
        help="pre-training seeds (default: 0,1,2)",
    )
    common.add_gsimclr_args(p)
    p.add_argument(
        "--label-draws",
        type=int,
        default=3,
        help="stratified draws of the 10 %% subset (default: %(default)s)",
    )
    common.add_probe_cs_arg(
        p,
        (0.01, 0.1, 1.0, 10.0),
        "linear-probe C values, chosen by CV on the labelled subset (default: 0.01,0.1,1,10)",
    )
    p.add_argument(
        "--supervised", action="store_true", help="also train a supervised ResNet-50 per seed"
    )
    p.add_argument("--supervised-epochs", type=int, default=100, help="(default: %(default)s)")
    common.add_limit_per_class_arg(p, "use at most N training images per class")
    common.add_common_args(p, "runs/imagenet5_resnet50")
    args = common.parse_with_quick(
        p,
        dict(
            image_size=32,
            batch_size=16,
            epochs=2,
            seeds=[0],
            ae_epochs=1,
            label_draws=2,
            supervised_epochs=2,
            probe_cs=(1.0,),
            limit_per_class=16,
        ),
    )
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    return args


def features_and_probes(model, data, depths, args, **prep):
    """Linear-probe accuracy per depth and label fraction, plus test P3 features."""
    from simclr_keras import extract_features, linear_evaluation

    (x_tr, y_tr), (x_te, y_te) = data
    # All depths from one backbone pass per split (one compiled step for both).
    depths = list(depths)
    feats_tr = extract_features(model, x_tr, depths, verbose=0, **prep)
    feats_te = extract_features(model, x_te, depths, verbose=0, **prep)
    out, test_p3 = {}, feats_te.get("P3")
    for depth in depths:
        f_tr, f_te = feats_tr[depth], feats_te[depth]
        for fraction, draws in ((0.1, range(args.label_draws)), (1.0, [0])):
            res = linear_evaluation(
                f_tr, y_tr, f_te, y_te, (fraction,), tuple(draws), Cs=args.probe_cs
            )
            out[f"{depth}@{fraction:g}"] = res[fraction]["accuracy"]["mean"]
    return out, test_p3


def supervised_baseline(keras, args, seed, data, shape, n_classes):
    """ResNet-50 from scratch on all training labels (flip + translate)."""
    (x_tr, y_tr), (x_te, y_te) = data
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape)
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = keras.layers.RandomFlip("horizontal", seed=seed)(x)
    x = keras.layers.RandomTranslation(0.1, 0.1, seed=seed)(x)
    x = keras.applications.ResNet50(weights=None, include_top=False, input_shape=shape)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(n_classes, dtype="float32")(x))
    model.compile(
        keras.optimizers.Adam(args.learning_rate),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(x_tr, y_tr, batch_size=min(64, len(x_tr)), epochs=args.supervised_epochs, verbose=2)
    return {"supervised@1": float(model.evaluate(x_te, y_te, verbose=0)[1])}


def run_one(keras, args, method, seed, data, shape, run_dir, start):
    """Train (or resume) one method/seed; returns its result dict, or None if stopped early."""
    from simclr_keras import DataGeneratorSimCLR, SimCLR, plot_history, pseudo_labels

    x_tr = data[0][0]
    keras.utils.set_random_seed(seed)
    base = keras.applications.ResNet50(weights=None, include_top=False, input_shape=shape)
    if method == "random":
        probes, p3 = features_and_probes(base, data, ["P3"], args, preprocessing="resnet50")
        return {"probes": probes}, p3
    if method == "supervised":
        return {
            "probes": supervised_baseline(
                keras, args, seed, data, shape, len(np.unique(data[0][1]))
            )
        }, None
    labels = None
    if method == "gsimclr":
        path = os.path.join(run_dir, "pseudo_labels.npy")  # cached: a resumed run keeps its batches
        if not os.path.exists(path):
            np.save(
                path,
                pseudo_labels(
                    x_tr,
                    args.clusters or min(args.batch_size, len(x_tr)),
                    epochs=args.ae_epochs,
                    seed=seed,
                    verbose=2,
                ),
            )
        labels = np.load(path)
    train = DataGeneratorSimCLR(
        x_tr, min(args.batch_size, len(x_tr)), seed=seed, pseudo_labels=labels
    )
    simclr = SimCLR(
        base,
        shape,
        train.batch_size,
        [2048, 128],
        None,
        temperature=args.temperature,
        augmentation=dict(jitter_strength=args.jitter, blur_probability=args.blur),
        preprocessing="resnet50",
        learning_rate=args.learning_rate,
        seed=seed,
        save_path=os.path.join(run_dir, "simclr.keras"),
    )
    clock = os.path.join(run_dir, "epoch_seconds.json")
    history = simclr.fit(
        train,
        epochs=args.epochs,
        verbose=2,
        callbacks=common.time_budget_callbacks(keras, args, start, clock),
    )
    if len(history.history["loss"]) < args.epochs:
        return None, None
    plot_history(
        history, os.path.join(run_dir, "training_curves.png"), f"{LABELS[method]}, seed {seed}"
    )
    probes, p3 = features_and_probes(simclr, data, ["P1", "P2", "P3"], args)
    result = {
        "probes": probes,
        "train_seconds": common.train_seconds(clock, args.epochs),
        "final_loss": float(history.history["loss"][-1]),
        "final_contrastive_acc": float(history.history["contrastive_acc"][-1]),
    }
    if labels is not None:
        result["batch_stats"] = train.batch_stats()
    return result, p3


def summarise(args, results):
    """Mean ± std over seeds per method and probe; table, JSON, plots."""
    rows, summary, groups = [], {}, {}
    for method in args.methods + (["supervised"] if args.supervised else []):
        done = [r for (m, _), r in results.items() if m == method]
        for depth in ("P3", "P2", "P1") if method != "supervised" else ("supervised",):
            cells = {}
            for frac in ("0.1", "1"):
                vals = [
                    r["probes"][f"{depth}@{frac}"] for r in done if f"{depth}@{frac}" in r["probes"]
                ]
                if vals:
                    cells[frac] = summarize(vals)
                    group = f"{'P3' if method == 'supervised' else depth}, {'10' if frac == '0.1' else '100'} % labels"
                    groups.setdefault(group, {})[LABELS[method]] = (
                        cells[frac]["mean"],
                        cells[frac]["std"],
                    )
            if not cells:
                continue
            summary[f"{method}/{depth}"] = cells
            rows.append(
                [
                    LABELS[method],
                    depth if method != "supervised" else "-",
                    *(common.pct(cells[f]) if f in cells else "—" for f in ("0.1", "1")),
                    len(done),
                    PUBLISHED.get(method, "") if depth in ("P3", "supervised") else "",
                ]
            )
    table = common.markdown_table(
        ["method", "features", "10 % labels", "100 % labels", "seeds", "published"], rows
    )
    print(
        "\nImageNet-5 test accuracy, linear probe (mean ± std over pre-training seeds):\n" + table
    )
    print(
        "published: G-SimCLR paper (ResNet-50 from scratch, linear probe); "
        "SimCLR-in-TF2 reports 52.8 % with 10 % labels."
    )
    atomic_write_json(
        {
            "settings": vars(args),
            "summary": summary,
            "runs": {f"{m}_seed{s}": r for (m, s), r in results.items()},
        },
        os.path.join(args.output, "results.json"),
    )
    with open(os.path.join(args.output, "results.md"), "w") as fh:
        fh.write(table + "\n")
    if groups:
        common.bar_chart(
            groups, os.path.join(args.output, "accuracy.png"), "ImageNet-5 linear probes"
        )


def main():
    args = parse_args()
    start = time.time()
    keras = common.setup_keras(args)
    from simclr_keras import plot_tsne_pair

    root = common.ensure_unpacked(
        args.data_root, [".data/imagenet5-224.tar", "../shared/data/imagenet5-224.tar"]
    )
    train, test = common.load_train_test(
        root, args.image_size, args.batch_size, args.limit_per_class
    )
    data, shape = (train.load_all(), test.load_all()), (args.image_size, args.image_size, 3)
    results, complete = {}, True
    methods = args.methods + (["supervised"] if args.supervised else [])
    for seed in args.seeds:
        for method in methods:
            run_dir = os.path.join(args.output, "runs", f"{method}_seed{seed}")
            os.makedirs(run_dir, exist_ok=True)
            saved = common.read_json(os.path.join(run_dir, "result.json"))
            if saved is None and complete:
                if args.max_minutes and time.time() - start > 0.8 * 60 * args.max_minutes:
                    print(
                        f"--max-minutes {args.max_minutes:g}: no time left to start {method} seed {seed}."
                    )
                    complete = False
                    continue
                print(f"\n=== {LABELS[method]}, seed {seed} ===", flush=True)
                saved, p3 = run_one(keras, args, method, seed, data, shape, run_dir, start)
                if saved is None:
                    complete = False
                    continue
                if p3 is not None:
                    np.save(os.path.join(run_dir, "test_p3.npy"), p3)
                atomic_write_json(saved, os.path.join(run_dir, "result.json"))
            if saved is not None:
                results[(method, seed)] = saved
    summarise(args, results)
    pair = [m for m in ("simclr", "gsimclr", "random") if (m, args.seeds[0]) in results][:2]
    feats = [
        os.path.join(args.output, "runs", f"{m}_seed{args.seeds[0]}", "test_p3.npy") for m in pair
    ]
    if len(pair) == 2 and all(os.path.exists(f) for f in feats):
        plot_tsne_pair(
            np.load(feats[0]),
            np.load(feats[1]),
            data[1][1],
            os.path.join(args.output, "tsne.png"),
            test.class_names,
            titles=tuple(f"{LABELS[m]} (P3, test)" for m in pair),
        )
    print(f"total {time.time() - start:.0f} s this call; results in {os.path.abspath(args.output)}")
    if not complete:
        print(
            f"Not finished: rerun the same command to resume (exit code {common.INCOMPLETE_EXIT_CODE})."
        )
        sys.exit(common.INCOMPLETE_EXIT_CODE)


if __name__ == "__main__":
    main()
