"""Which encoder gives G-SimCLR the best pseudo-labels on ImageNet-5?

k-means on the features of several encoders of the 1 250 training images,
at k = 5 (the number of classes) and k = the SimCLR batch size B (G-SimCLR's
choice), scored against the true training classes (adjusted Rand index and
purity, `simclr_keras.data.cluster_quality`; the labels only score, they
never shape the clusters). The test split is not read.

Sources (`--sources`, in this order; each one's features are cached in
`--output`, so a rerun only adds what is missing):

- `random`: the small CNN at random init (`--image-size`): a floor.
- `autoencoder`: G-SimCLR's denoising autoencoder trained on the images at
  `--image-size` for `--ae-epochs` (the paper's method; k-means on the raw
  pooled features, as its notebook does).
- `efficientnet_lite0`: ImageNet-pretrained EfficientNet-Lite0 at
  `--pretrained-size` px (`--pretrained-weights`, converted by
  `simclr-keras convert-weights efficientnet_lite0`). Its ImageNet training
  set very likely holds these very images: treat it as a pretrained
  backbone a user brings, not as a label-free method.
- `simclr:PATH` (any number): a trained `SimCLR` model's pooled backbone
  (P3), e.g. `runs/.../simclr_seed0/simclr.keras` from
  `examples/imagenet5_gsimclr.py`: what `ReclusterPseudoLabels` clusters.

Command (data: `tar xf /work/shared/data/imagenet5-224.tar -C /tmp`):
    KERAS_BACKEND=tensorflow python examples/pseudo_label_quality.py --image-size 64 \\
        --sources random,efficientnet_lite0,autoencoder
Writes `quality.json`, `quality.md` and `quality.png` to `--output`.
"""

import os
import time

import _common as common
import numpy as np


def parse_args():
    p = common.parser(__doc__)
    p.add_argument("--data-root", default="/tmp/imagenet5")
    p.add_argument("--image-size", type=int, default=64, help="random / autoencoder (default: 64)")
    p.add_argument("--batch-size", type=int, default=64, help="SimCLR batch size B = k")
    p.add_argument("--ae-epochs", type=int, default=10)
    common.add_pretrained_args(p)
    p.add_argument("--sources", default="random,efficientnet_lite0,autoencoder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", default="runs/pseudo_label_quality")
    return p.parse_args()


def source_features(source, args, y):
    """`(features, seconds, note)` of one source, computed once and cached."""
    import keras

    from simclr_keras import extract_features, get_backbone, pseudo_labels

    safe = source.replace(":", "_").replace("/", "_").replace(".", "_")
    path = os.path.join(args.output, f"features_{safe}.npz")
    if os.path.exists(path):
        saved = np.load(path)
        return saved["features"], float(saved["seconds"]), str(saved["note"])
    root = os.path.join(args.data_root, "train")
    start = time.time()
    if source == "random":
        x = common.load_class_folder(root, args.image_size, 1).load_all()[0]
        keras.utils.set_random_seed(args.seed)
        model = get_backbone("small_cnn", (args.image_size, args.image_size, 3))
        features, note = extract_features(model, x, verbose=0), f"small CNN, {args.image_size} px"
    elif source == "autoencoder":
        x = common.load_class_folder(root, args.image_size, 1).load_all()[0]
        _, info = pseudo_labels(
            x, 5, epochs=args.ae_epochs, seed=args.seed, return_info=True, verbose=2
        )
        features = info["features"]
        note = (
            f"{args.image_size} px, {args.ae_epochs} epochs, "
            f"reconstruction MSE {info['reconstruction_mse']:.4f}"
        )
    elif source == "efficientnet_lite0":
        size = args.pretrained_size
        x = common.load_class_folder(root, size, 1).load_all()[0]
        model = get_backbone("efficientnet_lite0", (size, size, 3), weights=args.pretrained_weights)
        features = extract_features(
            model, x, preprocessing="efficientnet_lite", batch_size=50, verbose=0
        )
        note = f"ImageNet weights, {size} px"
    elif source.startswith("simclr:"):
        model = keras.saving.load_model(source.split(":", 1)[1])
        x = common.load_class_folder(root, model.image_shape[0], 1).load_all()[0]
        features = extract_features(model, x, "P3", verbose=0)
        note = f"P3 of {source.split(':', 1)[1]}, {model.image_shape[0]} px"
    else:
        raise SystemExit(f"--sources: unknown source {source!r}")
    seconds = time.time() - start
    np.savez(path + ".tmp.npz", features=features, seconds=seconds, note=note)
    os.replace(path + ".tmp.npz", path)
    return features, seconds, note


def main():
    args = parse_args()
    os.makedirs(args.output, exist_ok=True)
    from simclr_keras.data import cluster_features
    from simclr_keras.training import atomic_write_json

    y = common.class_files(os.path.join(args.data_root, "train"))[1]
    y = np.asarray(y)
    report = common.read_json(os.path.join(args.output, "quality.json"), {})
    for source in [s.strip() for s in args.sources.split(",") if s.strip()]:
        print(f"\n=== {source} ===", flush=True)
        features, seconds, note = source_features(source, args, y)
        row = {"note": note, "dims": int(features.shape[1]), "feature_seconds": round(seconds, 1)}
        # The autoencoder's k-means runs on the raw features, as the G-SimCLR notebook;
        # the others on unit-length features (cosine), as SimCLR compares them.
        normalize = source != "autoencoder"
        for k in (5, args.batch_size):
            _, info = cluster_features(
                features, k, classes=y, normalize=normalize, seed=args.seed, return_info=True
            )
            row[f"k={k}"] = info["quality"]
        report[source] = row
        atomic_write_json(report, os.path.join(args.output, "quality.json"))
    b = args.batch_size
    rows = [
        [
            name,
            r["note"],
            r["dims"],
            f"{r['k=5']['ari']:.3f}",
            f"{r['k=5']['purity']:.3f}",
            f"{r[f'k={b}']['ari']:.3f}",
            f"{r[f'k={b}']['purity']:.3f}",
            f"{r['feature_seconds']:.0f}",
        ]
        for name, r in report.items()
    ]
    header = ["source", "conditions", "dims", "ARI k=5", "purity k=5", f"ARI k={b}"]
    header += [f"purity k={b}", "features s"]
    table = common.markdown_table(header, rows)
    best = max(report, key=lambda name: report[name][f"k={b}"]["ari"])
    text = f"{table}\n\nBest at k = {b} (adjusted Rand index): {best}\n"
    print("\n" + text)
    with open(os.path.join(args.output, "quality.md"), "w") as fh:
        fh.write(text)

    def short(name):  # simclr:runs/x/simclr_seed0/simclr.keras -> SimCLR P3 (simclr_seed0)
        if name.startswith("simclr:"):
            return f"SimCLR P3 ({os.path.basename(os.path.dirname(name.split(':', 1)[1]))})"
        return name

    groups = {
        short(name): {
            "ARI, k=5": (r["k=5"]["ari"], 0.0),
            "purity, k=5": (r["k=5"]["purity"], 0.0),
            f"ARI, k={b}": (r[f"k={b}"]["ari"], 0.0),
            f"purity, k={b}": (r[f"k={b}"]["purity"], 0.0),
        }
        for name, r in report.items()
    }
    common.bar_chart(
        groups,
        os.path.join(args.output, "quality.png"),
        "ImageNet-5 train (1 250 images): k-means pseudo-labels vs the 5 classes",
        ylabel="score (x 100)",
    )


if __name__ == "__main__":
    main()
