"""The digits demo: SimCLR on sklearn's bundled digits, linear probes at 5/20/100 % labels.

Trains a small CNN with SimCLR on 1257 of sklearn's 1797 digits (8x8,
resized to 16 px; labels unused), then compares linear probes on the 540
test digits for the CNN at random init, after SimCLR, and raw pixels
(mean ± std over label draws). Calls `simclr_keras.demo.run_demo`, the same
code as `simclr-keras demo`.

Needs: nothing to download; a CPU is enough. Time: about 5 minutes with the
defaults on 2 CPU cores (40 epochs), under a minute with `--quick`.

Commands:
    python examples/digits_demo.py
    python examples/digits_demo.py --quick
    KERAS_BACKEND=jax python examples/digits_demo.py --epochs 80 --output runs/digits_jax
Writes to --output: augmentations.png, training_curves.png, tsne.png,
metrics.json, results.md.
"""

import _common as common

from simclr_keras.demo import run_demo


def main():
    parser = common.parser(__doc__)
    parser.add_argument("--output", default="runs/digits_demo", help="(default: %(default)s)")
    parser.add_argument(
        "--epochs", type=int, default=40, help="SimCLR epochs (default: %(default)s)"
    )
    parser.add_argument("--batch-size", type=int, default=128, help="(default: %(default)s)")
    parser.add_argument(
        "--image-size",
        type=int,
        default=16,
        help="digits are resized to this (default: %(default)s)",
    )
    parser.add_argument(
        "--fractions",
        type=common.float_tuple,
        default=(0.05, 0.2, 1.0),
        help="label fractions (default: 0.05,0.2,1)",
    )
    parser.add_argument(
        "--label-seeds",
        type=common.int_list,
        default=(0, 1, 2),
        help="seeds of the label draws (default: 0,1,2)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of split, weights, views (default: %(default)s)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="2 epochs, one label draw (smoke test)"
    )
    args = common.parse_with_quick(parser, dict(epochs=2, label_seeds=[0]))
    run_demo(
        args.output,
        epochs=args.epochs,
        batch_size=args.batch_size,
        image_size=args.image_size,
        fractions=args.fractions,
        seeds=args.label_seeds,
        seed=args.seed,
    )


if __name__ == "__main__":
    main()
