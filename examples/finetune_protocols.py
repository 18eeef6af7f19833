"""Fine-tuning settings compared on training labels only: the cross-fitted
held-out accuracy that `FineTuner.fit` computes after each epoch, and its
paired gain over the probes (test accuracy is recorded beside it, never used
to choose).

    python examples/finetune_protocols.py --backbone RUN/initial_backbone.keras \
        --data-dir DATA/cifar10 --unfreeze last_stage --lr 1e-3 --views 4 \
        --fractions 1,0.2 --out benchmarks/results/finetuning/protocols.jsonl

One JSON line per fraction and seed: the settings, `cv` (held-out accuracy
after 0..epochs epochs; 0 is the linear probe), the choice, the test accuracy
and the time.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402


def parse_args():
    p = _common.parser(__doc__)
    p.add_argument("--backbone", required=True, help="a backbone .keras file")
    p.add_argument("--data-dir", required=True, help="class folders, split 85/15 (seed 0)")
    p.add_argument("--image-size", type=int, default=80)
    p.add_argument("--unfreeze", default="last_stage")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--views", type=int, default=4)
    p.add_argument("--no-warmup", action="store_true")
    p.add_argument("--optimizer", default="adam", choices=("adam", "sgd"))
    p.add_argument("--fractions", type=_common.float_tuple, default=(1.0, 0.2))
    p.add_argument("--seeds", type=_common.int_list, default=[0])
    p.add_argument("--out", required=True, help="JSON-lines file the records are appended to")
    return p.parse_args()


def main():
    args = parse_args()
    import keras

    import simclr_keras  # noqa: F401  (registers the saved layers)
    from simclr_keras.data import load_labelled_files, split_directory
    from simclr_keras.evaluation import FineTuner, stratified_fraction

    model = keras.saving.load_model(args.backbone, compile=False)
    split = split_directory(args.data_dir, 0.15, 0)
    size = (args.image_size, args.image_size)
    x_tr, y_tr = load_labelled_files(split.train_paths, split.train_labels, size, split.class_names)
    x_te, y_te = load_labelled_files(split.test_paths, split.test_labels, size, split.class_names)
    start = time.time()
    tuner = FineTuner(
        model,
        x_tr,
        unfreeze=args.unfreeze,
        views=args.views,
        warmup=not args.no_warmup,
        optimizer=args.optimizer,
        verbose=1,
    )
    test_maps = tuner.maps_of(x_te)
    cached = time.time() - start
    for fraction in args.fractions:
        for seed in args.seeds:
            start = time.time()
            idx = stratified_fraction(y_tr, fraction, seed)
            model, info = tuner.fit(
                idx,
                y_tr[idx],
                len(split.class_names),
                seed=seed,
                epochs=args.epochs,
                learning_rate=args.lr,
                curve=True,
                verbose=1,
            )
            record = {
                "backbone": args.backbone,
                "data_dir": args.data_dir,
                "unfreeze": args.unfreeze,
                "lr": args.lr,
                "views": args.views,
                "warmup": not args.no_warmup,
                "optimizer": args.optimizer,
                "epochs": args.epochs,
                "fraction": fraction,
                "seed": seed,
                "cv": info["cv_accuracy"],
                "cv_gain": info.get("cv_gain"),
                "cv_se": info.get("cv_se"),
                "kept": info["kept"],
                "ft_epoch": info["finetune_epoch"],
                "test": float((tuner.predict_classes(model, test_maps) == y_te).mean()),
                "seconds": round(time.time() - start, 1),
                "cache_s": round(cached, 1),
            }
            print(json.dumps(record), flush=True)
            with open(args.out, "a") as fh:
                fh.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
