"""Time XLA compilation of the pieces of a SimCLR train step, one piece per call.

The first H100 run of `gpu_run.sh main` spent over 7.5 minutes inside XLA's
compiler on the first `fit()` (ResNet-50, 224 px, B=256, mixed_bfloat16, JAX).
This script compiles one piece at a time so that the slow one shows:

    python benchmarks/compile_probe.py augmentation --batch-size 256
    python benchmarks/compile_probe.py backbone --batch-size 256
    python benchmarks/compile_probe.py simclr --batch-size 256

Each prints `PROBE <piece> lower=<s> compile=<s> step=<s>` (step: one run of
the compiled function after compilation).
"""

import argparse
import os
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402


def timed(fn, *args):
    start = time.perf_counter()
    lowered = jax.jit(fn).lower(*args)
    lowered_s = time.perf_counter() - start
    compiled = lowered.compile()
    compile_s = time.perf_counter() - start - lowered_s
    start = time.perf_counter()
    jax.block_until_ready(compiled(*args))
    return lowered_s, compile_s, time.perf_counter() - start


def main():
    p = argparse.ArgumentParser()
    p.add_argument("piece", choices=("augmentation", "backbone", "simclr"))
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--backbone", default="resnet50")
    p.add_argument("--blur", type=float, default=0.5)
    args = p.parse_args()
    from simclr_keras import SimCLR
    from simclr_keras.backbones import zoo
    from simclr_keras.layers.augmentation import SimCLRAugmentation

    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    size, batch = args.image_size, args.batch_size
    images = np.random.default_rng(0).integers(0, 256, (batch, size, size, 3), dtype="uint8")
    if args.piece == "augmentation":
        aug = SimCLRAugmentation(size, size, blur_probability=args.blur, seed=0)
        aug.build((batch, size, size, 3))
        state = [v.value for v in aug.non_trainable_variables]

        def fn(state, x):
            return aug.stateless_call([], state, x, training=True)[0]

        result = timed(fn, state, images)
    elif args.piece == "backbone":
        base = zoo.get_backbone(args.backbone, (size, size, 3))
        trainable = [v.value for v in base.trainable_variables]
        frozen = [v.value for v in base.non_trainable_variables]
        views = np.random.default_rng(0).random((2 * batch, size, size, 3), dtype="float32")

        def loss(trainable, frozen, x):
            out, _ = base.stateless_call(trainable, frozen, x, training=True)
            return keras.ops.mean(keras.ops.square(keras.ops.cast(out, "float32")))

        result = timed(jax.grad(loss), trainable, frozen, views)
    else:
        base = zoo.get_backbone(args.backbone, (size, size, 3))
        model = SimCLR(
            base,
            (size, size, 3),
            batch_size=batch,
            feat_dims_ph=zoo.HEAD_DIMS[args.backbone],
            num_of_unfrozen_layers=None,
            augmentation={"blur_probability": args.blur},
            seed=0,
        )
        start = time.perf_counter()
        model.fit(images, epochs=1, steps_per_epoch=1, verbose=0)
        first = time.perf_counter() - start
        start = time.perf_counter()
        model.fit(images, epochs=1, steps_per_epoch=1, verbose=0)
        result = (0.0, first, time.perf_counter() - start)
    print(
        "PROBE {} blur={} lower={:.1f} compile={:.1f} step={:.3f}".format(
            args.piece, args.blur, *result
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
