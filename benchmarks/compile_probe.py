"""Time XLA compilation of the pieces of a SimCLR train step, one piece per call.

The first H100 run of `gpu_run.sh main` spent over 7.5 minutes inside XLA's
compiler on the first `fit()` (ResNet-50, 224 px, B=256, mixed_bfloat16, JAX).
This script compiles one piece at a time so that the slow one shows:

    python benchmarks/compile_probe.py augmentation --batch-size 256
    python benchmarks/compile_probe.py backbone --batch-size 256
    python benchmarks/compile_probe.py simclr --batch-size 256

Each prints `PROBE <piece> ... lower=<s> compile=<s> step=<s> img/s=<rate>`:
step is the median of `--runs` runs of the compiled function after
compilation, and the rate counts source images per second of a training
step's share (the augmentation runs twice per step, once per view; the
backbone piece takes both views, 2B images, forward and backward), so the
three rates compare with throughput.py's (a). `--blur 0` and `--jitter 0`
switch those parts of the augmentation off, to see what each costs.
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402


def timed(fn, *args, runs=10):
    """Seconds to lower, to compile, and the median of `runs` runs."""
    start = time.perf_counter()
    lowered = jax.jit(fn).lower(*args)
    lowered_s = time.perf_counter() - start
    compiled = lowered.compile()
    compile_s = time.perf_counter() - start - lowered_s
    jax.block_until_ready(compiled(*args))
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - start)
    return lowered_s, compile_s, statistics.median(times)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("piece", choices=("augmentation", "backbone", "simclr"))
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--backbone", default="resnet50")
    p.add_argument("--blur", type=float, default=0.5, help="blur probability")
    p.add_argument("--jitter", type=float, default=1.0, help="colour-jitter strength")
    p.add_argument("--runs", type=int, default=10, help="timed runs after compiling")
    args = p.parse_args()
    from simclr_keras import SimCLR
    from simclr_keras.backbones import zoo
    from simclr_keras.layers.augmentation import SimCLRAugmentation

    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    size, batch = args.image_size, args.batch_size
    augmentation = {"blur_probability": args.blur, "jitter_strength": args.jitter}
    images = np.random.default_rng(0).integers(0, 256, (batch, size, size, 3), dtype="uint8")
    if args.piece == "augmentation":
        aug = SimCLRAugmentation(size, size, seed=0, **augmentation)
        aug.build((batch, size, size, 3))
        state = [v.value for v in aug.non_trainable_variables]

        def fn(state, x):
            return aug.stateless_call([], state, x, training=True)[0]

        result = timed(fn, state, images, runs=args.runs)
        per_step = 2 * result[2]  # two views per step
    elif args.piece == "backbone":
        base = zoo.get_backbone(args.backbone, (size, size, 3))
        trainable = [v.value for v in base.trainable_variables]
        frozen = [v.value for v in base.non_trainable_variables]
        views = np.random.default_rng(0).random((2 * batch, size, size, 3), dtype="float32")

        def loss(trainable, frozen, x):
            out, _ = base.stateless_call(trainable, frozen, x, training=True)
            return keras.ops.mean(keras.ops.square(keras.ops.cast(out, "float32")))

        result = timed(jax.grad(loss), trainable, frozen, views, runs=args.runs)
        per_step = result[2]
    else:
        base = zoo.get_backbone(args.backbone, (size, size, 3))
        model = SimCLR(
            base,
            (size, size, 3),
            batch_size=batch,
            feat_dims_ph=zoo.HEAD_DIMS[args.backbone],
            num_of_unfrozen_layers=None,
            augmentation=augmentation,
            seed=0,
        )
        start = time.perf_counter()
        model.fit(images, epochs=1, steps_per_epoch=1, verbose=0)
        first = time.perf_counter() - start
        # One fit of runs + 1 steps; its start-up is spread over the runs.
        images = np.concatenate([images] * (args.runs + 1))
        start = time.perf_counter()
        model.fit(images, epochs=1, verbose=0, shuffle=False)
        per_step = (time.perf_counter() - start) / (args.runs + 1)
        result = (0.0, first, per_step)
    print(
        "PROBE {} blur={} jitter={} lower={:.1f} compile={:.1f} step={:.4f} img/s={:.0f}".format(
            args.piece, args.blur, args.jitter, *result, batch / per_step
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
