"""How well G-SimCLR's pseudo-labels match the true classes of ImageNet-5.

Trains the denoising autoencoder of `simclr_keras.pseudo_labels` on the
1 250 training images, clusters the pooled encoder features with k-means at
k = 5 (the number of classes) and k = the batch size (G-SimCLR's choice), and
prints for each k the adjusted Rand index against the true classes and the
share of an anchor's negatives of its own *true* class in guided vs random
batches (what G-SimCLR is meant to lower).

Command (data: `tar xf /work/shared/data/imagenet5-224.tar -C /tmp`):
    KERAS_BACKEND=tensorflow python examples/pseudo_label_quality.py --image-size 32
"""

import argparse
import json
import os
import time

import _common as common


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-root", default="/tmp/imagenet5")
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=64, help="SimCLR batch size B")
    p.add_argument("--ae-epochs", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", default=None, help="optional JSON file for the figures")
    args = p.parse_args()

    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score

    from simclr_keras import DataGeneratorSimCLR, pseudo_labels
    from simclr_keras.data.guided import batch_stats

    train = common.load_split(os.path.join(args.data_root, "train"), args.image_size, 1)
    x, y = train.load_all()
    start = time.time()
    labels_b, info = pseudo_labels(
        x, args.batch_size, epochs=args.ae_epochs, seed=args.seed, return_info=True, verbose=2
    )
    print(f"autoencoder + k-means: {time.time() - start:.0f} s", flush=True)
    report = {"image_size": args.image_size, "ae_epochs": args.ae_epochs, "seed": args.seed}
    k5 = KMeans(n_clusters=5, n_init=10, random_state=args.seed).fit_predict(info["features"])
    for k, labels in ((5, k5), (args.batch_size, labels_b)):
        gen = DataGeneratorSimCLR(x, args.batch_size, seed=args.seed, pseudo_labels=labels)
        batches = [gen.batch_indices(i) for i in range(len(gen))]
        true = batch_stats(batches, y)
        pseudo = gen.batch_stats()
        report[f"k={k}"] = row = {
            "ari": float(adjusted_rand_score(y, labels)),
            "same_pseudo_label_share": pseudo["same_label_share"],
            "same_pseudo_label_share_random": pseudo["random_same_label_share"],
            "same_true_class_share": true["same_label_share"],
            "same_true_class_share_random": true["random_same_label_share"],
        }
        print(
            f"k={k:3d}: ARI {row['ari']:.3f}; same-pseudo-label negatives "
            f"{row['same_pseudo_label_share']:.4f} guided vs "
            f"{row['same_pseudo_label_share_random']:.4f} random; same-true-class negatives "
            f"{row['same_true_class_share']:.4f} guided vs "
            f"{row['same_true_class_share_random']:.4f} random",
            flush=True,
        )
    if args.output:
        with open(args.output, "w") as fh:
            json.dump(report, fh, indent=2)


if __name__ == "__main__":
    main()
