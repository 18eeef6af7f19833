"""SimCLR on your own image folder with a keras.applications backbone (VGG16 or ResNet-50).

The three-line story: `DataGeneratorSimCLR.from_directory(folder)`,
`SimCLR(base, ...)`, `fit`; then the trained backbone is exported
(`backbone.keras`, loads with plain Keras). When the folder has one
sub-folder per class, the labels are used only afterwards: a kNN monitor
during training, a t-SNE of the backbone features before/after SimCLR and
a linear probe on a stratified 80/20 split of the folder.

Needs: a folder of images (jpg, png, ...; searched recursively). To make
one from the project's data:
    tar xf ../shared/data/imagenet5-224.tar -C /tmp      # -> /tmp/imagenet5/{train,test}/<class>
Backbone weights: `--weights imagenet` (the default) needs Keras to download
them once, or the file in ~/.keras/models/; offline, the library's error says
how to get it. `--weights none` starts from random weights, `--weights
PATH.h5` from a file. `--quick` uses random weights.
Device/time: a GPU for the defaults (224 px, 50 epochs: minutes on one
GPU); `--quick` runs in about a minute on a 2-core CPU.

Commands:
    python examples/custom_folder.py /tmp/imagenet5/train
    python examples/custom_folder.py /tmp/imagenet5/train --backbone resnet50 --epochs 100
    python examples/custom_folder.py /tmp/imagenet5/train --quick --limit-per-class 16
    KERAS_BACKEND=jax python examples/custom_folder.py /tmp/imagenet5/train --quick
Interrupted or stopped by `--max-minutes`? Rerun the same command: training
resumes from the last finished epoch (checkpoints next to `simclr.keras`).
Writes to --output: augmentations.png, training_curves.png, tsne.png,
backbone.keras, simclr.keras, metrics.json.
"""

import os
import time

import _common as common
import numpy as np

from simclr_keras.training import atomic_write_json

BACKBONES = ("vgg16", "resnet50")


def parse_args():
    parser = common.parser(__doc__)
    parser.add_argument(
        "folder", help="folder of images; class sub-folders give labels for evaluation only"
    )
    parser.add_argument(
        "--backbone", choices=BACKBONES, default="vgg16", help="(default: %(default)s)"
    )
    parser.add_argument(
        "--weights",
        default="imagenet",
        help="imagenet, none (random init) or a .h5 weights file (default: %(default)s)",
    )
    parser.add_argument("--image-size", type=int, default=224, help="(default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=64, help="(default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=50, help="(default: %(default)s)")
    parser.add_argument(
        "--unfrozen-layers",
        type=int,
        default=None,
        help="last layers with weights that train; -1 = all (default: 4 with ImageNet "
        "weights, all from random init)",
    )
    parser.add_argument("--temperature", type=float, default=0.1, help="(default: %(default)s)")
    parser.add_argument(
        "--learning-rate", type=float, default=1e-4, help="Adam (default: %(default)s)"
    )
    common.add_limit_per_class_arg(parser, "use at most N images per class")
    common.add_common_args(parser, "runs/custom_folder")
    return common.parse_with_quick(
        parser, dict(image_size=32, batch_size=16, epochs=2, limit_per_class=12, weights="none")
    )


def load_data(args):
    from simclr_keras import DataGeneratorSimCLR
    from simclr_keras.data.image_io import list_image_files

    size = (args.image_size, args.image_size)
    if not args.limit_per_class:
        return DataGeneratorSimCLR.from_directory(
            args.folder, size, args.batch_size, seed=args.seed
        )
    has_classes = any(os.path.isdir(os.path.join(args.folder, d)) for d in os.listdir(args.folder))
    if has_classes:
        return common.load_class_folder(
            args.folder, args.image_size, args.batch_size, args.limit_per_class, args.seed
        )
    paths = list_image_files(args.folder)
    keep = np.random.default_rng(args.seed).permutation(len(paths))[: args.limit_per_class]
    return DataGeneratorSimCLR.from_files(
        [paths[i] for i in sorted(keep)], size, args.batch_size, seed=args.seed
    )


def main():
    args = parse_args()
    start = time.time()
    keras = common.setup_keras(args)
    from simclr_keras import (
        KNNMonitor,
        SimCLR,
        extract_features,
        get_backbone,
        linear_evaluation,
        plot_history,
        plot_tsne_pair,
        save_augmentation_preview,
        snapshot_backbone,
    )
    from simclr_keras.backbones.zoo import HEAD_DIMS, PREPROCESSING

    data = load_data(args)
    images, labels = data.load_all()
    labelled = labels is not None and len(np.unique(labels)) > 1
    print(
        f"{data.num_images} images, {'classes: ' + ', '.join(data.class_names) if labelled else 'unlabelled'}"
    )

    shape = (args.image_size, args.image_size, 3)
    pretrained = args.weights != "none"
    base = get_backbone(args.backbone, shape, weights=args.weights if pretrained else None)
    unfrozen = (
        args.unfrozen_layers if args.unfrozen_layers is not None else (4 if pretrained else None)
    )
    baseline = snapshot_backbone(base) if labelled else None  # SimCLR trains `base` in place
    simclr = SimCLR(
        base,
        shape,
        args.batch_size,
        HEAD_DIMS[args.backbone],
        unfrozen,
        temperature=args.temperature,
        preprocessing=PREPROCESSING[args.backbone],
        learning_rate=args.learning_rate,
        seed=args.seed,
        save_path=os.path.join(args.output, "simclr.keras"),
        recipe="scratch",  # its own unfreezing above (the last 4 layers with ImageNet weights)
    )
    save_augmentation_preview(
        images[:6], os.path.join(args.output, "augmentations.png"), simclr.augmentation
    )

    clock = os.path.join(args.output, "epoch_seconds.json")
    callbacks = []
    if labelled:
        sub = np.random.default_rng(args.seed).permutation(len(images))[
            :2000
        ]  # keeps the monitor cheap
        callbacks.append(
            KNNMonitor(
                images[sub],
                labels[sub],
                k=min(20, len(sub) // 5),
                every=max(1, args.epochs // 10),
                seed=args.seed,
            )
        )
    callbacks += common.time_budget_callbacks(keras, args, start, clock)
    history = simclr.fit(data, epochs=args.epochs, callbacks=callbacks, verbose=2)
    common.finished_or_exit(history, args.epochs)
    simclr.export_backbone(os.path.join(args.output, "backbone.keras"))
    plot_history(
        history, os.path.join(args.output, "training_curves.png"), f"SimCLR, {args.backbone}"
    )

    metrics = {
        "settings": {
            **vars(args),
            "pretrained": pretrained,
            "unfrozen_layers": unfrozen,
            "backend": keras.backend.backend(),
        },
        "train_seconds": common.train_seconds(clock, args.epochs),
        "history": {k: [float(v) for v in vals] for k, vals in history.history.items()},
    }
    if labelled:
        from sklearn.model_selection import train_test_split

        prep = dict(preprocessing=PREPROCESSING[args.backbone], image_size=shape[:2], verbose=0)
        before = extract_features(baseline, images, **prep)
        after = extract_features(simclr, images, verbose=0)
        names = ("ImageNet weights" if pretrained else "random init", "after SimCLR")
        plot_tsne_pair(
            before,
            after,
            labels,
            os.path.join(args.output, "tsne.png"),
            data.class_names,
            titles=tuple(f"{args.backbone}, {n}" for n in names),
        )
        tr, te = train_test_split(
            np.arange(len(labels)), test_size=0.2, stratify=labels, random_state=args.seed
        )
        metrics["linear_probe_80_20"] = {}
        for name, feats in zip(names, (before, after)):
            res = linear_evaluation(
                feats[tr], labels[tr], feats[te], labels[te], (1.0,), (0,), max_folds=3
            )
            metrics["linear_probe_80_20"][name] = res[1.0]["accuracy"]["mean"]
            print(
                f"linear probe (80/20 split of the folder), {name}: {100 * res[1.0]['accuracy']['mean']:.1f} %"
            )
    atomic_write_json(metrics, os.path.join(args.output, "metrics.json"))
    print(
        f"SimCLR training {metrics['train_seconds']:.0f} s; total {time.time() - start:.0f} s; "
        f"results in {os.path.abspath(args.output)}"
    )


if __name__ == "__main__":
    main()
