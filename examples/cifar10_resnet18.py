"""CIFAR-10 with ResNet-18 (small-image stem): SimCLR, kNN monitor, final linear probe, wall time.

Trains `simclr_keras.resnet18((32, 32, 3))` with SimCLR on the 50 000
training images (labels unused), with lightly's CIFAR-10 benchmark
settings by default: batch 512, 200 epochs, SGD (momentum 0.9, lr 0.06 x
batch/128, cosine decay, weight decay 5e-4), temperature 0.5, head
Dense 512 -> ReLU -> Dense 128, crops + flip + jitter 0.5 + grayscale, no
blur, inputs normalised by the ImageNet mean/std. Every `--knn-every` epochs a weighted kNN (k=200, T=0.1, as lightly
reports) scores the test set against the training features; at the end a linear
probe (StandardScaler + logistic regression) on the pooled backbone
features, also for the same backbone at random init. Prints the training
wall time, the last kNN accuracy and the linear accuracy beside lightly's 84.7 % kNN (200 epochs, 87 min on one
GPU) and this project's goal: 88 % linear within 15 minutes on one H100.

Needs: cifar10/{train,test}/<class>/*.jpg, unpacked automatically from
.data/cifar10-jpeg.tar.xz or ../shared/data/cifar10-jpeg.tar.xz when
`--data-root` is missing (or: tar xJf ../shared/data/cifar10-jpeg.tar.xz -C /tmp).
A GPU for the defaults; JAX is the fastest backend there. `--quick`
(500 images, 2 epochs) runs in about a minute on a 2-core CPU.

Commands:
    python examples/cifar10_resnet18.py --quick --data-root /tmp/cifar10
    # CPU-sized run (2 cores, about 30 min): a 3-layer CNN instead of ResNet-18
    python examples/cifar10_resnet18.py --backbone small_cnn --batch-size 256 --epochs 15 \
        --data-root /tmp/cifar10 --output runs/cifar10_small_cnn
    # GPU, 10-minute calls: copy the tar into .data/ (git-ignored), then rerun
    # the same command until it exits 0 (exit code 3 = stopped early, resumable):
    KERAS_BACKEND=jax python examples/cifar10_resnet18.py --mixed-precision --max-minutes 8
    # GPU, as many epochs as fit in 15 minutes of training (one process; see
    # benchmarks/gpu_run.sh cifar for the device machine's 10-minute calls):
    KERAS_BACKEND=jax python examples/cifar10_resnet18.py --mixed-precision --train-minutes 15
Writes to --output: metrics.json, training_curves.png, tsne.png,
backbone.keras, simclr.keras (+ checkpoints), epoch_seconds.json
(+ epoch_plan.json with --train-minutes).
"""

import os
import time

import _common as common
import numpy as np

from simclr_keras.training import atomic_write_json

LIGHTLY = "lightly: 84.7 % kNN after 200 epochs, batch 512 (87 min on one GPU)"
GOAL = "goal: 88 % linear within 15 min on one H100"


def parse_args():
    p = common.parser(__doc__)
    p.add_argument(
        "--data-root",
        default=".data/cifar10",
        help="folder with train/ and test/ (default: %(default)s)",
    )
    p.add_argument(
        "--backbone",
        choices=("resnet18", "small_cnn"),
        default="resnet18",
        help="small_cnn: a 3-layer CNN for a CPU-sized run (default: %(default)s)",
    )
    p.add_argument("--batch-size", type=int, default=512, help="(default: %(default)s)")
    p.add_argument("--epochs", type=int, default=200, help="(default: %(default)s)")
    p.add_argument(
        "--train-minutes",
        type=float,
        default=None,
        help="instead of --epochs: as many epochs as fit in N minutes of training wall "
        "time (compile and kNN monitor included), from a timed run of a throwaway copy "
        "of the model; the plan is kept in the output folder for resumed calls",
    )
    p.add_argument(
        "--optimizer", choices=("sgd", "adam"), default="sgd", help="(default: %(default)s)"
    )
    p.add_argument(
        "--learning-rate",
        type=float,
        default=None,
        help="peak learning rate (default: sgd 0.06 x batch/128, adam 1e-3), cosine decay to 0",
    )
    p.add_argument("--weight-decay", type=float, default=5e-4, help="(default: %(default)s)")
    p.add_argument("--temperature", type=float, default=0.5, help="(default: %(default)s)")
    p.add_argument(
        "--jitter", type=float, default=0.5, help="colour jitter strength (default: %(default)s)"
    )
    p.add_argument(
        "--knn-every",
        type=int,
        default=10,
        help="kNN monitor period in epochs (default: %(default)s)",
    )
    p.add_argument("--knn-k", type=int, default=200, help="(default: %(default)s)")
    common.add_probe_cs_arg(
        p,
        (0.1,),
        "linear-probe C values; several = chosen by 3-fold CV on the training "
        "features (slower) (default: 0.1)",
    )
    common.add_limit_per_class_arg(p, "training images per class (default: all)")
    common.add_limit_per_class_arg(
        p, "test images per class (default: all)", flag="--test-limit-per-class"
    )
    common.add_common_args(p, "runs/cifar10_resnet18")
    args = common.parse_with_quick(
        p,
        dict(
            batch_size=64,
            epochs=2,
            knn_every=1,
            knn_k=20,
            limit_per_class=50,
            test_limit_per_class=20,
        ),
    )
    if args.learning_rate is None:
        args.learning_rate = 0.06 * args.batch_size / 128 if args.optimizer == "sgd" else 1e-3
    return args


def make_optimizer(keras, args, steps_per_epoch):
    schedule = keras.optimizers.schedules.CosineDecay(
        args.learning_rate, args.epochs * steps_per_epoch
    )
    if args.optimizer == "sgd":
        return keras.optimizers.SGD(schedule, momentum=0.9, weight_decay=args.weight_decay)
    return keras.optimizers.AdamW(schedule, weight_decay=args.weight_decay)


def build_simclr(keras, args, steps_per_epoch, save_path=None):
    """The SimCLR model of this script (lightly's CIFAR-10 settings)."""
    from simclr_keras import SimCLR, get_backbone
    from simclr_keras.backbones.zoo import HEAD_DIMS

    shape = (32, 32, 3)
    return SimCLR(
        get_backbone(args.backbone, shape),
        shape,
        args.batch_size,
        HEAD_DIMS[args.backbone],
        None,
        temperature=args.temperature,
        augmentation=dict(jitter_strength=args.jitter, blur_probability=0.0),
        preprocessing="torch",  # ImageNet mean/std, as lightly normalises
        optimizer=make_optimizer(keras, args, steps_per_epoch),
        seed=args.seed,
        save_path=save_path,
    )


def plan_epochs(keras, args, x_train, steps_per_epoch, knn):
    """Epochs that fit in `--train-minutes`, from a throwaway copy of the model.

    Times the copy's first fit (compile), a fit of up to 30 batches and one
    kNN evaluation, then takes the most epochs N with
    compile + N x epoch + (kNN evaluations) x kNN <= the budget. The plan is
    written to the output folder, and a resumed call reads it back, so that
    every call trains towards the same N (the learning-rate schedule spans N).
    """
    path = os.path.join(args.output, "epoch_plan.json")
    plan = common.read_json(path)
    if plan and plan["train_minutes"] == args.train_minutes:
        print(f"--train-minutes {args.train_minutes:g}: {plan['epochs']} epochs (from {path})")
        return plan["epochs"]
    batch = args.batch_size
    probe = build_simclr(keras, args, steps_per_epoch)
    start = time.time()
    probe.fit(x_train[: 2 * batch], epochs=1, verbose=0, shuffle=False)
    compile_s = time.time() - start
    steps = min(30, len(x_train) // batch)
    start = time.time()
    probe.fit(x_train[: steps * batch], epochs=1, verbose=0, shuffle=False)
    epoch_s = (time.time() - start) / steps * steps_per_epoch
    knn.set_model(probe)
    knn.evaluate()  # compiles the feature extractor
    start = time.time()
    knn.evaluate()
    knn_s = time.time() - start
    budget = 60 * args.train_minutes

    def cost(epochs):
        evaluations = -(-epochs // args.knn_every)  # every knn_every-th epoch and the last
        return compile_s + epochs * epoch_s + evaluations * knn_s

    epochs = 1
    while cost(epochs + 1) <= budget:
        epochs += 1
    plan = {
        "train_minutes": args.train_minutes,
        "epochs": epochs,
        "compile_seconds": round(compile_s, 2),
        "epoch_seconds": round(epoch_s, 3),
        "knn_seconds": round(knn_s, 3),
        "planned_train_seconds": round(cost(epochs), 1),
    }
    atomic_write_json(plan, path)
    print(
        f"--train-minutes {args.train_minutes:g}: {epochs} epochs (compile {compile_s:.1f} s, "
        f"{epoch_s:.2f} s per epoch, kNN {knn_s:.2f} s every {args.knn_every} epochs: "
        f"{cost(epochs) / 60:.1f} min planned)",
        flush=True,
    )
    return epochs


def device_name(keras):
    try:
        return str(keras.distribution.list_devices()[0])
    except Exception:  # not every backend lists devices
        return "unknown"


def main():
    args = parse_args()
    start = time.time()
    keras = common.setup_keras(args)
    from simclr_keras import (
        KNNMonitor,
        extract_features,
        get_backbone,
        linear_evaluation,
        plot_history,
        plot_tsne_pair,
    )

    root = common.ensure_unpacked(
        args.data_root, [".data/cifar10-jpeg.tar.xz", "../shared/data/cifar10-jpeg.tar.xz"]
    )
    train, test = common.load_train_test(
        root, 32, args.batch_size, args.limit_per_class, args.test_limit_per_class, args.seed
    )
    (x_tr, y_tr), (x_te, y_te) = train.load_all(), test.load_all()

    shape, title = (32, 32, 3), {"resnet18": "ResNet-18", "small_cnn": "small CNN"}[args.backbone]
    knn = KNNMonitor(
        x_tr,
        y_tr,
        k=min(args.knn_k, len(x_tr)),
        temperature=0.1,
        every=args.knn_every,
        validation=(x_te, y_te),
        batch_size=1024,
    )
    if args.train_minutes is not None:
        args.epochs = plan_epochs(keras, args, x_tr, len(train), knn)
    keras.utils.set_random_seed(args.seed)
    simclr = build_simclr(keras, args, len(train), os.path.join(args.output, "simclr.keras"))
    clock = os.path.join(args.output, "epoch_seconds.json")
    history = simclr.fit(
        train,
        epochs=args.epochs,
        verbose=2,
        callbacks=[knn] + common.time_budget_callbacks(keras, args, start, clock),
    )
    common.finished_or_exit(history, args.epochs)
    train_seconds = common.train_seconds(clock, args.epochs)
    simclr.export_backbone(os.path.join(args.output, "backbone.keras"))
    plot_history(
        history,
        os.path.join(args.output, "training_curves.png"),
        f"SimCLR, {title}, CIFAR-10",
        knn_every=args.knn_every,
    )

    t0 = time.time()
    f_tr = extract_features(simclr, x_tr, "P3", batch_size=1024, verbose=0)
    f_te = extract_features(simclr, x_te, "P3", batch_size=1024, verbose=0)
    linear = linear_evaluation(f_tr, y_tr, f_te, y_te, (1.0,), (0,), Cs=args.probe_cs, max_folds=3)[
        1.0
    ]
    probe_seconds = time.time() - t0
    knn_values = history.history.get("knn_acc", [])
    knn_final = float(knn_values[-1]) if knn_values else None

    keras.utils.set_random_seed(args.seed)  # the same weights SimCLR started from
    random_init = get_backbone(args.backbone, shape)
    prep = dict(preprocessing="torch", verbose=0, batch_size=1024)
    r_tr, r_te = (
        extract_features(random_init, x_tr, **prep),
        extract_features(random_init, x_te, **prep),
    )
    baseline = linear_evaluation(
        r_tr, y_tr, r_te, y_te, (1.0,), (0,), Cs=args.probe_cs, max_folds=3
    )[1.0]
    sub = np.random.default_rng(0).permutation(len(x_te))[:2000]
    plot_tsne_pair(
        r_te[sub],
        f_te[sub],
        y_te[sub],
        os.path.join(args.output, "tsne.png"),
        test.class_names,
        titles=(f"{title} at random init (test)", f"{title} after SimCLR (test)"),
    )

    metrics = {
        "linear_accuracy": linear["accuracy"]["mean"],
        "linear_C": linear["C"][0],
        "random_init_linear_accuracy": baseline["accuracy"]["mean"],
        "knn_accuracy_final": knn_final,
        "knn_every": args.knn_every,
        "train_seconds": round(train_seconds, 1),
        "probe_seconds": round(probe_seconds, 1),
        "epochs": args.epochs,
        "images": len(x_tr),
        "test_images": len(x_te),
        "history": {k: [float(v) for v in vals] for k, vals in history.history.items()},
        "settings": {
            **vars(args),
            "backend": keras.backend.backend(),
            "device": device_name(keras),
        },
        "reference": [LIGHTLY, GOAL],
    }
    atomic_write_json(metrics, os.path.join(args.output, "metrics.json"))
    knn_text = f"{100 * knn_final:.1f} %" if knn_final is not None else "—"
    print(
        "\n"
        + common.markdown_table(
            ["", "epochs", "train wall time", f"kNN (k={knn.k})", "linear probe"],
            [
                [
                    f"this run ({title}, {keras.backend.backend()})",
                    args.epochs,
                    f"{train_seconds / 60:.1f} min",
                    knn_text,
                    f"{100 * linear['accuracy']['mean']:.1f} %",
                ],
                [
                    f"{title} at random init",
                    "",
                    "",
                    "",
                    f"{100 * baseline['accuracy']['mean']:.1f} %",
                ],
                ["lightly (PyTorch)", 200, "87 min", "84.7 %", "—"],
                ["goal (one H100)", "", "≤ 15 min", "", "88 %"],
            ],
        )
    )
    print(
        f"\nlinear probe: C={linear['C'][0]}, {probe_seconds:.0f} s; total {time.time() - start:.0f} s this call; "
        f"results in {os.path.abspath(args.output)}"
    )


if __name__ == "__main__":
    main()
