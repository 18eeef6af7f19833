"""Time SimCLR's colour jitter: all 4 adjustments at each step (the old
formulation) against `ColorJitter`, which computes each one once per image.

Until 2026-12-07 `ColorJitter.transform` computed brightness, contrast,
saturation and hue for every image at each of the 4 steps and kept one with
`ops.where` (16 adjustments to apply 4); `OldColorJitter` below keeps a copy
of that code, for this comparison only. Both layers are called whole
(drawing their parameters, then applying them) on one batch of `--batch`
images of `--size` px (default 128 x 80 x 80: both views of B = 64),
compiled as a training step would be: `jax.jit` of the stateless call, a
TensorFlow `tf.function` with XLA (`jit_compile=True`, what `fit` uses) and
without, eager PyTorch (Keras' default for torch).

Each backend runs in its own subprocess (`KERAS_BACKEND` is per process).
After one warm-up call each (compilation), `--repeats` rounds time `--calls`
calls of the old layer, then of the new, one after the other, so that a
change of machine load hits both alike. Printed per backend: the median ms
per call of each, every round's figures, and the median of the per-round
ratios old / new.

    python benchmarks/color_jitter_speed.py --backends tensorflow,jax,torch
"""

import argparse
import os
import statistics
import subprocess
import sys
import time


def old_jitter_class():
    """`ColorJitter` with the sampling and transform of before 2026-12-07."""
    import keras
    from keras import ops

    from simclr_keras.layers.color_jitter import (
        OPERATIONS,
        ColorJitter,
        adjust_brightness,
        adjust_contrast,
        adjust_hue,
        adjust_saturation,
    )

    class OldColorJitter(ColorJitter):
        def sample_parameters(self, batch_size):
            low, high = self.factor_range()
            gen = self.seed_generator

            def uniform(shape, lo, hi):
                return keras.random.uniform(shape, lo, hi, dtype="float32", seed=gen)

            params = {name: uniform((batch_size,), low, high) for name in OPERATIONS[:3]}
            params["hue"] = uniform((batch_size,), -0.2 * self.strength, 0.2 * self.strength)
            params["order"] = ops.cast(
                ops.argsort(uniform((batch_size, 4), 0.0, 1.0), axis=-1), "int32"
            )
            params["apply"] = uniform((batch_size,), 0.0, 1.0) < self.probability
            return params

        def transform(self, images, params):
            x = ops.cast(images, "float32")
            adjust = (
                lambda v: adjust_brightness(v, params["brightness"]),
                lambda v: adjust_contrast(v, params["contrast"]),
                lambda v: adjust_saturation(v, params["saturation"]),
                lambda v: adjust_hue(v, params["hue"]),
            )
            order = params["order"]
            out = x
            for step in range(4):
                which = ops.reshape(order[:, step], (-1, 1, 1, 1))
                stepped = out
                for index, fn in enumerate(adjust):
                    if self.strength == 0:
                        break
                    stepped = ops.where(which == index, fn(out), stepped)
                out = ops.clip(stepped, 0.0, 1.0)
            return ops.where(ops.reshape(params["apply"], (-1, 1, 1, 1)), out, x)

    return OldColorJitter


def compiled_calls(layer, images, backend, xla):
    """A no-argument function that runs `layer` once on `images` and waits."""
    layer.build(images.shape)
    if backend == "jax":
        import jax

        state = [v.value for v in layer.non_trainable_variables]
        step = jax.jit(lambda s, x: layer.stateless_call([], s, x, training=True))
        holder = {"state": state}

        def run():
            out, holder["state"] = step(holder["state"], images)
            jax.block_until_ready(out)

        return run
    if backend == "tensorflow":
        import tensorflow as tf

        x = tf.constant(images)
        step = tf.function(lambda t: layer(t, training=True), jit_compile=xla)
        return lambda: step(x).numpy()
    import torch

    x = torch.as_tensor(images)

    def run():
        with torch.no_grad():
            layer(x, training=True).cpu()

    return run


def backend_version(backend):
    import importlib

    return importlib.import_module(backend).__version__


def worker(args):
    import keras
    import numpy as np

    from simclr_keras.layers import ColorJitter

    backend = keras.backend.backend()
    print(f"  Keras {keras.__version__}, {backend} {backend_version(backend)}")
    images = np.random.default_rng(0).uniform(0, 1, (args.batch, args.size, args.size, 3))
    images = images.astype("float32")
    old_cls = old_jitter_class()
    variants = [("tensorflow+xla", True), ("tensorflow graph", False)]
    if backend != "tensorflow":
        variants = [(backend + (" jit" if backend == "jax" else " eager"), False)]
    for name, xla in variants:
        runs = {}
        for label, cls in (("old", old_cls), ("new", ColorJitter)):
            runs[label] = compiled_calls(cls(1.0, 0.8, seed=0), images, backend, xla)
            start = time.perf_counter()
            runs[label]()
            print(f"  {name} {label}: first call (compile) {time.perf_counter() - start:.1f} s")
        times = {"old": [], "new": []}
        for _ in range(args.repeats):
            for label in ("old", "new"):
                start = time.perf_counter()
                for _ in range(args.calls):
                    runs[label]()
                times[label].append(1000 * (time.perf_counter() - start) / args.calls)
        old, new = statistics.median(times["old"]), statistics.median(times["new"])
        ratio = statistics.median(a / b for a, b in zip(times["old"], times["new"]))
        print(
            f"RESULT {name}: old {old:.1f} ms/call, new {new:.1f} ms/call, "
            f"old/new {ratio:.2f} (median of {args.repeats} rounds of {args.calls} calls)"
        )
        print("  rounds old:", " ".join(f"{t:.1f}" for t in times["old"]))
        print("  rounds new:", " ".join(f"{t:.1f}" for t in times["new"]))
        sys.stdout.flush()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backends", default="tensorflow,jax", help="comma-separated")
    p.add_argument("--batch", type=int, default=128, help="images per call (2 views of B)")
    p.add_argument("--size", type=int, default=80, help="image side in pixels")
    p.add_argument("--repeats", type=int, default=11, help="interleaved timing rounds")
    p.add_argument("--calls", type=int, default=2, help="calls per round and layer")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args)
        return
    import platform

    print(
        f"colour jitter, {args.batch} images of {args.size} px, strength 1.0, p 0.8; "
        f"{platform.node()} {os.cpu_count()} CPUs; {time.strftime('%Y-%m-%d %H:%M')}"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for backend in args.backends.split(","):
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
        print(f"[{backend}]", flush=True)
        command = [sys.executable, os.path.abspath(__file__), "--worker"]
        command += ["--batch", str(args.batch), "--size", str(args.size)]
        command += ["--repeats", str(args.repeats), "--calls", str(args.calls)]
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        print(done.stdout, end="", flush=True)
        if done.returncode:
            print(done.stderr[-3000:])


if __name__ == "__main__":
    main()
