"""SimCLR train step on TensorFlow, JAX and PyTorch side by side, per unfreezing mode.

The story of issue 22: a (pretrained) EfficientNet-Lite0 at 80 px, B = 64,
trained by SimCLR on about 2 000 images on 2 CPU cores, with every layer
training (`all`), with the top half of its weighted layers as the
pretrained recipe trains after its head epoch (`half`), with its last 20
weighted layers (`last20`), or frozen (`head`, the recipe's first epoch). This
script times the compiled train step of each (backend, mode) pair on one
synthetic uint8 batch handed out again every step (no host work; the
in-memory generator adds about 3 %, see throughput.py (b)/(a)), in source
images per second (each gives two views).

Each backend runs in its own subprocess (`KERAS_BACKEND` is per process).
Every worker builds and compiles all its models first (the first `fit()`
of 2 steps is printed as the compile time), then the parent runs
`--repeats` rounds in which every (backend, mode) pair gets one timed
`fit()` of `--steps + 1` batches in turn, so that the load of a shared
machine hits all pairs alike; idle workers wait on a pipe and use no CPU.
Reported: the median rate per pair and the per-round ratios to a reference
pair (median), which are the stable figures on a busy machine.

Also, per backend, once: the augmentation alone (both views of a batch,
compiled), and the evaluation of `simclr-keras evaluate`: feature
extraction of `--eval-images` images (`extract_features`) and the linear
probe at 5/20/100 % x 3 seeds on them (`linear_evaluation`, sklearn).

Modes `half_cached` and `head_cached` time the same stages with
`SimCLR.fit(cache_views=2)`: the step trains the top of the backbone and the
head on views already run through the frozen bottom (drawing the cache is
timed apart, per image and view).

Variants: `--backends tensorflow,tensorflow+bf16,jax,torch`: `+tree=PATH`
imports `simclr_keras` from another checkout (e.g. a `git worktree` of an
earlier commit, for a side-by-side against it) and `+modes=half:head` gives
that worker its own modes (a subset of `--modes`); `+bf16` trains
under the `mixed_bfloat16` dtype policy (`pretrain --mixed-precision`), `+xla` compiles
with `jit_compile=True`, `+nojit` with `jit_compile=False`, `+threads=N`
sets the backend's threads (TF: intra and inter op; JAX: XLA's CPU
pool, `+threads=1` only, by XLA_FLAGS; torch: `torch.set_num_threads`),
`+depthwise=conv` or `+depthwise=shifted` sets how EfficientNet-Lite's
depthwise convolutions compute (`DepthwiseConv2D.implementation`; the
default `auto` uses shifted slices on JAX on the CPU only, see
jax_cpu_repro.py).

Example (about 15 minutes on 2 cores):
    PYTHONPATH=$PWD python benchmarks/backend_compare.py --steps 4 --repeats 3
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(1, os.path.dirname(HERE))

import bench_timing  # noqa: E402

# Backbone layers that train: every one, the pretrained recipe's second stage
# (its top share of the weighted layers), the last 20, none.
MODES = {"all": -1, "half": "recipe", "last20": 20, "head": 0}
# The same stages trained on cached views (`SimCLR.fit(cache_views=2)`): the
# step then runs the top and the head only; the cache is drawn before the
# timed steps and reported apart.
CACHED = {"half_cached": "half", "head_cached": "head"}
MODES.update({name: MODES[stage] for name, stage in CACHED.items()})


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    p.add_argument("--backends", default="tensorflow,jax,torch")
    p.add_argument("--modes", default="all,half,head", help=f"any of {', '.join(MODES)}")
    p.add_argument("--backbone", default="efficientnet_lite0")
    p.add_argument("--weights", default=None, help="a .weights.h5 for the backbone")
    p.add_argument("--image-size", type=int, default=80)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=4, help="timed steps per round")
    p.add_argument("--repeats", type=int, default=3, help="rounds; medians reported")
    p.add_argument("--blur", type=float, default=0.0)
    p.add_argument("--jitter-strength", type=float, default=1.0)
    p.add_argument("--preprocessing", default="symmetric")
    p.add_argument("--eval-images", type=int, default=2000, help="0 skips the evaluation")
    p.add_argument("--no-augmentation-part", action="store_true", help="skip the augmentation")
    p.add_argument(
        "--parallel-build",
        action="store_true",
        help="workers build and compile at the same time (compile times then overlap)",
    )
    p.add_argument("--json", default=None)
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.modes = [m for m in args.modes.split(",") if m]
    bad = [m for m in args.modes if m not in MODES]
    if bad:
        p.error(f"--modes must be among {list(MODES)}. Received: {bad}")
    return args


# ----------------------------------------------------------------- worker side


def _variant(spec):
    """'tensorflow+xla+threads=1' -> ('tensorflow', {'xla': True, 'threads': 1})."""
    backend, *opts = spec.split("+")
    options = {}
    for opt in opts:
        key, _, value = opt.partition("=")
        options[key] = (int(value) if value.isdigit() else value) if value else True
    return backend, options


def _set_threads(backend, threads):
    if backend == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    elif backend == "torch":
        import torch

        torch.set_num_threads(threads)


def build_backbone(args):
    from simclr_keras.backbones import zoo

    shape = (args.image_size, args.image_size, 3)
    return zoo.get_backbone(args.backbone, shape, weights=args.weights)


def build_simclr(args, mode, options, augmentation=None):
    import keras

    from simclr_keras import SimCLR

    keras.utils.set_random_seed(0)
    if "bf16" in options:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    size = args.image_size
    backbone = build_backbone(args)
    unfrozen = MODES[mode]
    if unfrozen == "recipe":  # the layer count of the recipe's stage after the head epoch
        from simclr_keras.training.pretrained import pretrained_schedule

        unfrozen = pretrained_schedule(2, backbone)[1][0]
    simclr = SimCLR(
        backbone,
        (size, size, 3),
        batch_size=args.batch_size,
        feat_dims_ph=[512, 128],
        num_of_unfrozen_layers=unfrozen,
        augmentation=augmentation
        or {"blur_probability": args.blur, "jitter_strength": args.jitter_strength},
        preprocessing=args.preprocessing,
        learning_rate=1e-4,
        seed=0,
        recipe="scratch",  # the stage is set by num_of_unfrozen_layers
    )
    if "depthwise" in options:  # read when the step is traced
        from simclr_keras.backbones.efficientnet_lite import DepthwiseConv2D

        for layer in backbone.layers:
            if isinstance(layer, DepthwiseConv2D):
                layer.implementation = options["depthwise"]
    if "xla" in options or "nojit" in options:
        simclr.compile(optimizer=simclr.optimizer, jit_compile="xla" in options)
    return simclr


def _time_fit(model, data, steps, cached=False):
    """`(steps/s, fit's wall seconds)`; with `cached`, `data` is an image
    array that `fit(cache_views=2)` caches first (inside the wall time, not
    the steps/s).
    """
    import bench_timing

    timer = bench_timing.step_timer()
    start = time.perf_counter()
    options = dict(cache_views=2, verbose=0) if cached else dict(verbose=0)
    model.fit(data, epochs=1, steps_per_epoch=steps, callbacks=[timer], **options)
    return timer.batches / timer.seconds, time.perf_counter() - start


def _augmentation_rate(args, simclr, images, options):
    """Both views of one batch through the augmentation, compiled like the step."""
    import keras
    from keras import ops

    augmentation = simclr.augmentation

    class Views(keras.Model):
        def call(self, x):
            return ops.concatenate(
                [augmentation(x, training=True), augmentation(x, training=True)], axis=0
            )

    views = Views()
    if "xla" in options or "nojit" in options:
        views.compile(jit_compile="xla" in options)
    else:
        views.compile()
    start = time.perf_counter()
    ops.convert_to_numpy(views.predict_on_batch(images))
    first = time.perf_counter() - start
    times = []
    for _ in range(max(3, args.steps)):
        start = time.perf_counter()
        ops.convert_to_numpy(views.predict_on_batch(images))
        times.append(time.perf_counter() - start)
    return {
        "images_per_s": args.batch_size / statistics.median(times),
        "step_s": statistics.median(times),
        "compile_s": first - statistics.median(times),
    }


def _evaluation_cost(args, simclr):
    """`simclr-keras evaluate`'s two costs on `--eval-images` images."""
    import numpy as np

    from simclr_keras.evaluation.features import extract_features
    from simclr_keras.evaluation.linear_probe import linear_evaluation

    n = args.eval_images
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (n, args.image_size, args.image_size, 3), dtype="uint8")
    labels = np.arange(n) % 5
    start = time.perf_counter()
    extract_features(simclr, images[: min(n, 256)], verbose=0)  # compiles
    first = time.perf_counter() - start
    start = time.perf_counter()
    features = extract_features(simclr, images, verbose=0)
    extract_s = time.perf_counter() - start
    # Features of random images carry no class signal; give the probe some
    # (class means apart) so that it solves a problem of realistic hardness.
    features = features + 0.5 * features.std(0) * rng.normal(size=(5, features.shape[1]))[labels]
    cut = int(0.85 * n)
    start = time.perf_counter()
    linear_evaluation(features[:cut], labels[:cut], features[cut:], labels[cut:])
    probe_s = time.perf_counter() - start
    return {
        "extract_s": extract_s,
        "extract_first_s": first,
        "extract_images_per_s": n / extract_s,
        "probe_s": probe_s,
        "feature_dim": int(features.shape[1]),
    }


def _modes(args, options):
    """The modes a worker runs: `+modes=a:b` or all of `--modes`."""
    if "modes" in options:
        return [m for m in str(options["modes"]).split(":") if m in args.modes]
    return list(args.modes)


def worker(args):
    """Build, compile, then answer the parent's commands on stdin (JSON lines)."""
    backend, options = _variant(args.worker)
    if "tree" in options:  # before anything imports simclr_keras
        sys.path.insert(0, os.path.abspath(options["tree"]))
    if "threads" in options:
        _set_threads(backend, options["threads"])
    import keras

    from simclr_keras.callbacks import ChanceLossWarning

    warnings.filterwarnings("ignore", category=ChanceLossWarning)
    import numpy as np

    assert keras.backend.backend() == backend, (keras.backend.backend(), backend)
    steps = max(2, args.steps + 1)
    data, images = bench_timing.repeated_batch(args.image_size, args.batch_size, max(steps, 3))
    # The images a cached mode caches (2 views each) before its steps.
    pool = np.random.default_rng(0).integers(
        0, 256, (args.batch_size * max(steps, 3),) + images.shape[1:], dtype="uint8"
    )
    models, info = {}, {}
    modes = _modes(args, options)
    for mode in modes:
        cached = mode in CACHED
        feed = pool if cached else data
        start = time.perf_counter()
        models[mode] = build_simclr(args, mode, options)
        build_s = time.perf_counter() - start
        start = time.perf_counter()
        if cached:
            models[mode].fit(pool, epochs=1, steps_per_epoch=2, cache_views=2, verbose=0)
        else:
            models[mode].fit(data, epochs=1, steps_per_epoch=2, verbose=0)
        first_fit_s = time.perf_counter() - start
        rate, wall = _time_fit(models[mode], feed, 3, cached)
        if cached:  # the wall time outside the 2 timed steps: the cache, mostly
            cache_s = wall - 2 / rate
            info_cache = {"cache_s_per_view_image": cache_s / (2 * len(pool))}
        else:
            info_cache = {}
        info[mode] = {
            **info_cache,
            "build_s": build_s,
            "first_fit_s": first_fit_s,
            # the first fit's 2 steps minus 2 ordinary steps
            "compile_s": first_fit_s - 2 / rate,
            "trainable_weights": len(models[mode].trainable_weights),
        }
        _send({"event": "ready", "mode": mode, **info[mode]})
    extra = {}
    if not args.no_augmentation_part:
        extra["augmentation"] = _augmentation_rate(args, models[modes[0]], images, options)
    if args.eval_images:
        extra["evaluation"] = _evaluation_cost(args, models[modes[0]])
    _send({"event": "extra", **extra})
    for line in sys.stdin:
        command = json.loads(line)
        if command["do"] == "quit":
            break
        mode = command["mode"]
        cached = mode in CACHED
        rate, wall = _time_fit(models[mode], pool if cached else data, steps, cached)
        _send(
            {
                "event": "timed",
                "mode": command["mode"],
                "images_per_s": rate * args.batch_size,
                "fit_s": wall,
                "load": os.getloadavg()[0],
            }
        )


def _send(message):
    print("WORKER " + json.dumps(message), flush=True)


# ----------------------------------------------------------------- parent side


class Worker:
    def __init__(self, spec, argv, args):
        backend, options = _variant(spec)
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
        if backend == "jax" and options.get("threads") == 1:
            # XLA's CPU threads are set before JAX starts, by a flag (one or all cores).
            flag = "--xla_cpu_multi_thread_eigen=false"
            env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " " + flag).strip()
        self.spec = spec
        self.modes = _modes(args, options)
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), *argv, "--worker", spec],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )

    def receive(self):
        for line in self.proc.stdout:
            if line.startswith("WORKER "):
                return json.loads(line[len("WORKER ") :])
        raise RuntimeError(f"worker {self.spec} ended (exit {self.proc.wait()})")

    def send(self, command):
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()


def parent(args, argv):
    specs = [s for s in args.backends.split(",") if s]
    print(
        f"backbone={args.backbone} weights={args.weights} image={args.image_size}px "
        f"B={args.batch_size} steps={args.steps}x{args.repeats} modes={args.modes} "
        f"blur={args.blur} jitter={args.jitter_strength} cores={os.cpu_count()} "
        f"load={os.getloadavg()[0]:.2f} at {time.strftime('%H:%M:%S')}",
        flush=True,
    )
    results = {"config": vars(args).copy(), "pairs": {}, "extra": {}}
    # Workers build one after the other (compile times then compare), or all
    # at once with --parallel-build (quicker on a busy machine).
    workers = [Worker(spec, argv, args) for spec in specs] if args.parallel_build else []
    for i, spec in enumerate(specs):
        if not args.parallel_build:
            workers.append(Worker(spec, argv, args))
        w = workers[i]
        for mode in w.modes:
            msg = w.receive()
            results["pairs"][f"{spec}/{mode}"] = {"compile": msg, "runs": [], "loads": []}
            print(
                f"  {spec:>16}/{mode:<11} built in {msg['build_s']:.1f} s, first fit() of 2 "
                f"steps {msg['first_fit_s']:.1f} s (compile ~{msg['compile_s']:.1f} s), "
                f"{msg['trainable_weights']} trainable weights",
                flush=True,
            )
            if "cache_s_per_view_image" in msg:
                print(
                    f"  {spec:>16}/{mode:<11} drawing the cache: "
                    f"{1 / msg['cache_s_per_view_image']:.0f} views/s through the frozen bottom",
                    flush=True,
                )
        extra = w.receive()
        extra.pop("event")
        results["extra"][spec] = extra
        if "augmentation" in extra:
            a = extra["augmentation"]
            print(
                f"  {spec:>16} augmentation alone (2 views): {a['images_per_s']:.0f} img/s "
                f"({a['step_s'] * 1000:.0f} ms per batch, compile {a['compile_s']:.1f} s)",
                flush=True,
            )
        if "evaluation" in extra:
            e = extra["evaluation"]
            print(
                f"  {spec:>16} evaluation: features of {args.eval_images} images "
                f"{e['extract_s']:.1f} s ({e['extract_images_per_s']:.0f} img/s; first call "
                f"{e['extract_first_s']:.1f} s), linear probe 5/20/100 % x 3 seeds on "
                f"{e['feature_dim']}-d features {e['probe_s']:.1f} s",
                flush=True,
            )
    for round_ in range(1, args.repeats + 1):
        for w in workers:
            for mode in w.modes:
                w.send({"do": "time", "mode": mode})
                msg = w.receive()
                pair = results["pairs"][f"{w.spec}/{mode}"]
                pair["runs"].append(msg["images_per_s"])
                pair["loads"].append(msg["load"])
                print(
                    f"  round {round_}: {w.spec:>16}/{mode:<11} {msg['images_per_s']:6.1f} img/s "
                    f"(load {msg['load']:.1f})",
                    flush=True,
                )
    for w in workers:
        w.send({"do": "quit"})
        w.proc.wait()
    _report(args, specs, results)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return results


def _report(args, specs, results):
    pairs = results["pairs"]
    for pair in pairs.values():
        pair["images_per_s"] = statistics.median(pair["runs"])
    ref_key = next(iter(pairs))  # the first worker's first mode
    ref = pairs[ref_key]["runs"]
    print(
        f"\nsource images/s, median of {args.repeats} interleaved rounds "
        f"(ratio: per-round median against {ref_key}); compile = first fit() minus 2 steps"
    )
    print(f"{'backend':>16} {'mode':<11} {'img/s':>7} {'ratio':>6} {'compile s':>9}  epoch of 2032")
    for key, pair in pairs.items():
        spec, mode = key.rsplit("/", 1)
        ratio = statistics.median(r / q for r, q in zip(pair["runs"], ref))
        pair["ratio_to_ref"] = ratio
        epoch_min = 2032 / pair["images_per_s"] / 60
        print(
            f"{spec:>16} {mode:<11} {pair['images_per_s']:7.1f} {ratio:6.2f} "
            f"{pair['compile']['compile_s']:9.1f}  {epoch_min:.1f} min"
        )
    loads = [x for p in pairs.values() for x in p["loads"]]
    print(f"1-minute load during the timed rounds: {min(loads):.1f} to {max(loads):.1f}")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.worker:
        worker(args)
    else:
        rest, skip = [], False
        for a in argv:  # the workers get the options, not --json
            if not skip and not a.startswith("--json"):
                rest.append(a)
            skip = a == "--json"
        parent(args, rest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
