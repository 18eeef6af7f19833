"""Why JAX on the CPU trained EfficientNet-Lite0 ~7-9x slower than TensorFlow: depthwise
convolutions in XLA:CPU.

A depthwise convolution is a grouped convolution (`feature_group_count = C`)
in XLA. On the CPU backend of jaxlib 0.10.2 its forward pass runs about 10x
and its input gradient 20x to 45x slower than TensorFlow's depthwise kernels,
and its kernel gradient, a `batch_group_count = C` convolution, is rewritten
into a dense `C -> C` convolution followed by a diagonal mask: `C` times the
arithmetic (C = 480 to 1152 in the top half of EfficientNet-Lite0). The same
arithmetic written as a sum of `k * k` shifted, per-channel-scaled slices is
mathematically identical and XLA fuses it into elementwise loops.

Parts, each in its own subprocess (one framework per process), timed on the
shapes of the 8 depthwise convolutions in the top half of EfficientNet-Lite0 at
80 px with 128 views (SimCLR, B = 64 source images); medians of `--repeats`
calls after one warm-up, in milliseconds:

1. `lax`: pure JAX, `jax.lax.conv_general_dilated(..., feature_group_count=C)`
   against the shifted slices (`jnp`), forward, forward + input gradient
   (`dx`), forward + kernel gradient (`dk`) and forward + both (`train`); plus
   the optimised HLO of the kernel gradient, which shows the dense convolution.
   `tf`: `tf.nn.depthwise_conv2d` (with `tf.function`), `torch`:
   `F.conv2d(groups=C)`, the same four timings, for reference.
2. `--keras`: `keras.layers.DepthwiseConv2D` against
   `simclr_keras.backbones.efficientnet_lite.DepthwiseConv2D(implementation=
   "shifted")` on the JAX, TensorFlow and PyTorch backends (forward, `train`).
3. `--model`: the EfficientNet-Lite0 backbone at 80 px, batch 128, its top 49
   weighted layers trainable (the pretrained recipe's second stage): inference
   forward and one `train_on_batch` (MSE to zeros, SGD), with
   `depthwise_implementation="conv"` and `"shifted"`, per backend.
4. `--flags="A;B"`: part 1's JAX grouped convolution again under each
   `XLA_FLAGS` value (separated by `;`).

Commands (2 cores, lightly loaded: part 1 about 2 minutes, `--keras --model` about 10):
    PYTHONPATH=$PWD python benchmarks/jax_cpu_repro.py
    PYTHONPATH=$PWD python benchmarks/jax_cpu_repro.py --keras --model
    PYTHONPATH=$PWD python benchmarks/jax_cpu_repro.py --only-flags \\
        --flags="--xla_cpu_multi_thread_eigen=false;--xla_cpu_use_xnnpack=false"

Expected output of part 1 (AMD EPYC, 2 cores, load 0.6, jax 0.10.2, TF 2.21,
torch 2.13; the last lines of its table and the HLO):

    sum over the 8 top-half layers (counts: blocks_8 x1, blocks_9-10 x2, ...)
    grouped conv                      8 layers            563.1     5317.8     8721.0    14549.6
    shifted                           8 layers             31.0      315.0      485.0      780.0
    tf.nn.depthwise_conv2d            8 layers             58.7      170.6       64.3      209.1
    torch F.conv2d(groups=C)          8 layers            127.3      304.0      552.9      671.4

    optimised HLO of JAX's kernel gradient (blocks_9-10), its convolutions:
        ROOT %convolution.2 = f32[672,5,5,672]{3,2,1,0} convolution(%param_0.1, ...

The grouped convolution costs about 70x TensorFlow's time for a train step of
these layers, the shifted slices about 4x (and the whole JAX step then beats
TensorFlow's, see backend_compare.py). All logs and the report:
benchmarks/results/jax_cpu/.
"""

import argparse
import importlib.metadata
import json
import os
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))

# The depthwise convolutions of EfficientNet-Lite0's top half at 80 px, batch
# 128 (64 source images, 2 views): name, count, input size (padded), channels,
# kernel, stride.
SHAPES = (
    ("blocks_8", 1, 9, 480, 5, 1),
    ("blocks_9-10", 2, 9, 672, 5, 1),
    ("blocks_11", 1, 9, 672, 5, 2),
    ("blocks_12-14", 3, 7, 1152, 5, 1),
    ("blocks_15", 1, 5, 1152, 3, 1),
)
COLUMNS = ("fwd", "dx", "dk", "train")


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    p.add_argument("--batch", type=int, default=128, help="views per batch")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--keras", action="store_true", help="part 2: Keras layers, 3 backends")
    p.add_argument("--model", action="store_true", help="part 3: the backbone's train step")
    p.add_argument("--model-repeats", type=int, default=2)
    p.add_argument("--backends", default="jax,tensorflow,torch", help="of parts 2 and 3")
    p.add_argument("--flags", default="", help="part 4: XLA_FLAGS values separated by ';'")
    p.add_argument("--only-flags", action="store_true", help="skip parts 1 to 3")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _median_ms(fn, repeats):
    fn()  # compile / warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def _arrays(batch, size, channels, kernel, stride, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    out = (size - kernel) // stride + 1
    x = rng.normal(size=(batch, size, size, channels)).astype("float32")
    w = rng.normal(size=(kernel, kernel, channels, 1)).astype("float32") / kernel
    g = rng.normal(size=(batch, out, out, channels)).astype("float32")
    return x, w, g


def _send(message):
    print("WORKER " + json.dumps(message), flush=True)


# ------------------------------------------------------------- part 1 workers


def worker_lax(args, only_conv=False):
    import jax.numpy as jnp
    from jax import lax

    def grouped(x, w, s):  # w: (k, k, 1, C), the lowering of keras.ops.depthwise_conv
        return lax.conv_general_dilated(
            x,
            w,
            (s, s),
            "VALID",
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
            feature_group_count=x.shape[-1],
        )

    def shifted(x, w, s):  # sum over (u, v) of x[:, s*i + u, s*j + v, c] * w[u, v, 0, c]
        k, out = w.shape[0], (x.shape[1] - w.shape[0]) // s + 1
        y = 0.0
        for u in range(k):
            for v in range(k):
                window = x[:, u : u + s * (out - 1) + 1 : s, v : v + s * (out - 1) + 1 : s, :]
                y = y + window * w[u, v, 0]
        return y

    forms = {"grouped conv": grouped, "shifted": shifted}
    if only_conv:
        forms.pop("shifted")
    for name, _, size, channels, kernel, stride in SHAPES:
        x, w, g = _arrays(args.batch, size, channels, kernel, stride)
        x, w, g = jnp.asarray(x), jnp.asarray(w.transpose(0, 1, 3, 2)), jnp.asarray(g)
        for form, f in forms.items():
            fns = _jax_fns(f, g, stride)
            row = {col: _median_ms(_jax_call(fn, x, w), args.repeats) for col, fn in fns.items()}
            _send({"part": "lax", "form": form, "shape": name, **row})
            if form == "grouped conv" and name == "blocks_9-10":
                hlo = fns["dk"].lower(x, w).compile().as_text()
                convs = [
                    re.sub(r"\s+", " ", line.strip())[:160]
                    for line in hlo.splitlines()
                    if " convolution(" in line
                ]
                _send({"part": "hlo", "shape": name, "convolutions": convs})


def _jax_fns(f, g, stride):
    """Jitted forward, input gradient, kernel gradient and both, of `sum(f(x, w) * g)`."""
    import jax
    import jax.numpy as jnp

    def loss(x, w):
        return jnp.sum(f(x, w, stride) * g)

    return {
        "fwd": jax.jit(lambda x, w: f(x, w, stride)),
        "dx": jax.jit(jax.grad(loss, 0)),
        "dk": jax.jit(jax.grad(loss, 1)),
        "train": jax.jit(jax.grad(loss, (0, 1))),
    }


def _jax_call(fn, x, w):
    import jax

    return lambda: jax.block_until_ready(fn(x, w))


def worker_tf(args):
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # one tf.function per shape: retracing is expected

    for name, _, size, channels, kernel, stride in SHAPES:
        x, w, g = (tf.constant(a) for a in _arrays(args.batch, size, channels, kernel, stride))
        row = {
            col: _median_ms(_tf_call(stride, wrt, x, w, g), args.repeats)
            for col, wrt in (("fwd", None), ("dx", [0]), ("dk", [1]), ("train", [0, 1]))
        }
        _send({"part": "lax", "form": "tf.nn.depthwise_conv2d", "shape": name, **row})


def _tf_call(stride, wrt, x, w, g):
    """`tf.nn.depthwise_conv2d` forward (`wrt=None`) or its gradients, in a tf.function."""
    import tensorflow as tf

    def fwd(x, w):
        return tf.nn.depthwise_conv2d(x, w, (1, stride, stride, 1), "VALID")

    @tf.function
    def grads(x, w):
        with tf.GradientTape() as tape:
            tape.watch([x, w])
            loss = tf.reduce_sum(fwd(x, w) * g)
        return tape.gradient(loss, [[x, w][i] for i in wrt])

    fn = tf.function(fwd) if wrt is None else grads
    return lambda: tf.nest.map_structure(lambda t: t.numpy(), fn(x, w))


def worker_torch(args):
    import torch

    for name, _, size, channels, kernel, stride in SHAPES:
        x, w, g = _arrays(args.batch, size, channels, kernel, stride)
        x = torch.tensor(x.transpose(0, 3, 1, 2).copy())
        w = torch.tensor(w.transpose(2, 3, 0, 1).copy())
        g = torch.tensor(g.transpose(0, 3, 1, 2).copy())
        row = {
            col: _median_ms(_torch_call(stride, wrt, x, w, g), args.repeats)
            for col, wrt in (("fwd", ()), ("dx", (0,)), ("dk", (1,)), ("train", (0, 1)))
        }
        _send({"part": "lax", "form": "torch F.conv2d(groups=C)", "shape": name, **row})


def _torch_call(stride, wrt, x, w, g):
    import torch
    from torch.nn import functional

    def run():
        xs, ws = x.clone().requires_grad_(0 in wrt), w.clone().requires_grad_(1 in wrt)
        y = functional.conv2d(xs, ws, stride=stride, groups=x.shape[1])
        if wrt:
            torch.autograd.grad(y, [[xs, ws][i] for i in wrt], g)

    return run


# ------------------------------------------------------------- part 2 worker


def _layer_grads_fn(layer, x, g):
    """A function running `layer` forward and back (input and kernel gradients)."""
    import keras
    from keras import ops

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        def loss(x, values):
            y, _ = layer.stateless_call(values, [], x)
            return ops.sum(y * g)

        step = jax.jit(jax.grad(loss, (0, 1)))
        values = [v.value for v in layer.trainable_weights]
        x = ops.convert_to_tensor(x)
        return lambda: jax.block_until_ready(step(x, values))
    if backend == "tensorflow":
        import tensorflow as tf

        x, g = tf.constant(x), tf.constant(g)

        @tf.function
        def step(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = tf.reduce_sum(layer(x) * g)
            return tape.gradient(loss, [x, *[v.value for v in layer.trainable_weights]])

        return lambda: [t.numpy() for t in step(x)]
    import torch

    x, g = torch.tensor(x), torch.tensor(g)

    def step():
        xs = x.clone().requires_grad_(True)
        y = layer(xs)
        torch.autograd.grad(y, [xs, *[v.value for v in layer.trainable_weights]], g)

    return step


def _layer_forward_fn(layer, x):
    import keras
    from keras import ops

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        fwd = jax.jit(lambda values, x: layer.stateless_call(values, [], x)[0])
        values = [v.value for v in layer.trainable_weights]
        x = ops.convert_to_tensor(x)
        return lambda: jax.block_until_ready(fwd(values, x))
    if backend == "tensorflow":
        import tensorflow as tf

        x = tf.constant(x)
        fwd = tf.function(layer)
        return lambda: fwd(x).numpy()
    import torch

    x = torch.tensor(x)

    def fwd():
        with torch.no_grad():
            layer(x)

    return fwd


def worker_keras(args):
    import keras

    from simclr_keras.backbones.efficientnet_lite import DepthwiseConv2D

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        tf.get_logger().setLevel("ERROR")  # one tf.function per layer: retracing is expected
    for name, _, size, channels, kernel, stride in SHAPES:
        x, w, g = _arrays(args.batch, size, channels, kernel, stride)
        for form in ("keras DepthwiseConv2D", "shifted"):
            if form == "shifted":
                layer = DepthwiseConv2D(kernel, stride, use_bias=False, implementation="shifted")
            else:
                layer = keras.layers.DepthwiseConv2D(kernel, stride, use_bias=False)
            layer.build(x.shape)
            layer.set_weights([w])
            row = {
                "fwd": _median_ms(_layer_forward_fn(layer, x), args.repeats),
                "train": _median_ms(_layer_grads_fn(layer, x, g), args.repeats),
            }
            _send({"part": "keras", "form": f"{backend}: {form}", "shape": name, **row})


# ------------------------------------------------------------- part 3 worker


def worker_model(args):
    import keras
    import numpy as np

    from simclr_keras.backbones.efficientnet_lite import efficientnet_lite0
    from simclr_keras.backbones.freezing import weighted_layers

    backend = keras.backend.backend()
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (args.batch, 80, 80, 3)).astype("float32")
    for impl in ("conv", "shifted"):
        keras.utils.set_random_seed(0)
        model = efficientnet_lite0((80, 80, 3), depthwise_implementation=impl)
        for layer in weighted_layers(model)[:-49]:
            layer.trainable = False
        model.compile(optimizer=keras.optimizers.SGD(1e-4), loss="mse")
        y = np.zeros((args.batch, *model.output_shape[1:]), "float32")
        start = time.perf_counter()
        model.train_on_batch(x, y)
        first = time.perf_counter() - start
        row = {
            "fwd": _median_ms(lambda m=model: m.predict_on_batch(x), args.model_repeats),
            "train": _median_ms(lambda m=model, y=y: m.train_on_batch(x, y), args.model_repeats),
            "first_train_s": first,
        }
        _send({"part": "model", "form": f"{backend}: {impl}", "shape": "lite0 top half", **row})


WORKERS = {
    "lax": worker_lax,
    "lax-conv": lambda args: worker_lax(args, only_conv=True),
    "tf": worker_tf,
    "torch": worker_torch,
    "keras": worker_keras,
    "model": worker_model,
}

# ------------------------------------------------------------- parent


def _run_worker(kind, argv, backend=None, xla_flags=None):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    if backend:
        env["KERAS_BACKEND"] = backend
    if xla_flags is not None:
        env["XLA_FLAGS"] = xla_flags
    proc = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), *argv, "--worker", kind],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    rows = []
    for line in proc.stdout:
        if line.startswith("WORKER "):
            rows.append(json.loads(line[len("WORKER ") :]))
            yield rows[-1]
    if proc.wait():
        raise RuntimeError(f"worker {kind} ({backend}, {xla_flags}) failed: exit {proc.returncode}")


def _table(title, rows, columns):
    print(f"\n{title}")
    counts = {name: count for name, count, *_ in SHAPES}
    print(f"{'':<34}{'layer':<14}" + "".join(f"{c + ' ms':>11}" for c in columns))
    sums = {}
    for r in rows:
        print(
            f"{r['form']:<34}{r['shape']:<14}" + "".join(f"{r[c]:11.1f}" for c in columns),
            flush=True,
        )
        total = sums.setdefault(r["form"], dict.fromkeys(columns, 0.0))
        for c in columns:
            total[c] += counts.get(r["shape"], 1) * r[c]
    if len(rows) > len(sums):
        print(
            "sum over the 8 top-half layers (counts: "
            + ", ".join(f"{n} x{c}" for n, c, *_ in SHAPES)
            + ")"
        )
        for form, total in sums.items():
            print(f"{form:<34}{'8 layers':<14}" + "".join(f"{total[c]:11.1f}" for c in columns))
    return sums


def parent(args, argv):
    import platform

    versions = {}
    for dist in ("jax", "jaxlib", "tensorflow", "torch", "keras", "numpy"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    print(
        f"batch {args.batch} views, medians of {args.repeats} calls after a warm-up; "
        f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}, "
        + ", ".join(f"{k} {v}" for k, v in versions.items())
        + f"; XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}",
        flush=True,
    )
    results = {}
    if not args.only_flags:
        rows, hlo = [], []
        for kind in ("lax", "tf", "torch"):
            for r in _run_worker(kind, argv):
                (hlo if r["part"] == "hlo" else rows).append(r)
        results["lax"] = _table(
            "1. one depthwise convolution (fwd; fwd+dx; fwd+dk; train = fwd+dx+dk)", rows, COLUMNS
        )
        for h in hlo:
            print(f"\noptimised HLO of JAX's kernel gradient ({h['shape']}), its convolutions:")
            for line in h["convolutions"]:
                print("   ", line)
    backends = [b for b in args.backends.split(",") if b]
    if args.keras and not args.only_flags:
        rows = [r for b in backends for r in _run_worker("keras", argv, backend=b)]
        results["keras"] = _table(
            "2. Keras layers (fwd; train = fwd+dx+dk)", rows, ("fwd", "train")
        )
    if args.model and not args.only_flags:
        rows = [r for b in backends for r in _run_worker("model", argv, backend=b)]
        print(
            "\n3. EfficientNet-Lite0 at 80 px, top 49 weighted layers trainable (fwd: predict_on_batch)"
        )
        print(f"{'':<34}{'fwd ms':>11}{'train ms':>11}{'first train s':>15}")
        for r in rows:
            print(f"{r['form']:<34}{r['fwd']:11.0f}{r['train']:11.0f}{r['first_train_s']:15.1f}")
        results["model"] = rows
    if args.flags:
        rows = []
        for flags in [""] + [f.strip() for f in args.flags.split(";") if f.strip()]:
            for r in _run_worker("lax-conv", argv, xla_flags=flags):
                if r["part"] == "lax":
                    r["form"] = flags.replace("--xla_cpu_", "") or "(no flags)"
                    rows.append(r)
        results["flags"] = _table("4. JAX grouped convolution under XLA_FLAGS", rows, COLUMNS)
    return results


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.worker:
        if args.worker in ("keras", "model"):
            sys.path.insert(0, os.path.dirname(HERE))
        WORKERS[args.worker](args)
        return 0
    parent(args, list(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
