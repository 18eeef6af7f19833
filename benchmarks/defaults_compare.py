"""Old vs new `SimCLR` defaults on ImageNet-5: same data, backbone and budget.

Trains `SimCLR(backbone, input_shape, batch_size, **extra)` from scratch for
a fixed number of epochs, then scores the frozen P3 features of the test
split with kNN (k=20, cosine, temperature 0.1) and a linear probe on all
training labels. Runs against whichever `simclr_keras` is on the path, so
the same command on an older checkout gives the old defaults.

Example:
    tar xf ../shared/data/imagenet5-224.tar -C /tmp
    python benchmarks/defaults_compare.py --data /tmp/imagenet5 --epochs 15 \
        --label old --json runs/old.json
"""

import argparse
import json
import os
import platform
import time


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="/tmp/imagenet5")
    parser.add_argument("--backbone", default="small_cnn")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument(
        "--source-size", type=int, default=None, help="decode size (default: image size)"
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--label", default="run")
    parser.add_argument("--extra", default="{}", help="JSON dict of extra SimCLR keyword arguments")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    import keras

    import simclr_keras
    from simclr_keras import DataGeneratorSimCLR, SimCLR, extract_features, get_backbone
    from simclr_keras.evaluation import linear_evaluation
    from simclr_keras.evaluation.knn import knn_accuracy

    keras.utils.set_random_seed(args.seed)
    size = (args.image_size, args.image_size)
    source = (args.source_size or args.image_size,) * 2
    start = time.time()
    train = DataGeneratorSimCLR.from_directory(
        os.path.join(args.data, "train"), source, args.batch_size, seed=args.seed, verbose=0
    )
    test = DataGeneratorSimCLR.from_directory(
        os.path.join(args.data, "test"), size, args.batch_size, seed=args.seed, verbose=0
    )
    decode_s = time.time() - start
    shape = (*size, 3)
    extra = json.loads(args.extra)
    simclr = SimCLR(get_backbone(args.backbone, shape), shape, args.batch_size, **extra)
    start = time.time()
    history = simclr.fit(train, epochs=args.epochs, verbose=2)
    train_s = time.time() - start
    x_tr, y_tr = train.load_all()
    x_te, y_te = test.load_all()
    if x_tr.shape[1:3] != size:
        x_tr = (
            keras.ops.convert_to_numpy(
                keras.ops.image.resize(x_tr.astype("float32"), size, antialias=True)
            )
            .clip(0, 255)
            .astype("uint8")
        )
    f_tr = extract_features(simclr, x_tr, verbose=0)
    f_te = extract_features(simclr, x_te, verbose=0)
    knn = float(knn_accuracy(f_tr, y_tr, f_te, y_te, k=20, temperature=0.1))
    linear = linear_evaluation(f_tr, y_tr, f_te, y_te, fractions=(1.0,), seeds=(0,))
    result = {
        "label": args.label,
        "simclr_keras": getattr(simclr_keras, "__version__", "?"),
        "backend": keras.backend.backend(),
        "machine": f"{os.cpu_count()}-core CPU ({platform.machine()})",
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "args": vars(args),
        "optimizer": type(simclr.optimizer).__name__,
        "head": [layer.name for layer in simclr.projection_head.layers],
        "augmentation": simclr.augmentation.get_config(),
        "decode_s": round(decode_s, 1),
        "train_s": round(train_s, 1),
        "final_loss": float(history.history["loss"][-1]),
        "final_contrastive_acc": float(history.history["contrastive_acc"][-1]),
        "knn_top1": knn,
        "linear_top1": linear[1.0]["accuracy"]["mean"],
    }
    print(json.dumps(result, default=str))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1, default=str)


if __name__ == "__main__":
    main()
