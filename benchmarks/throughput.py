"""SimCLR training throughput: bare step, fit() on JPEGs, and PyTorch + lightly.

Prints, in one run and on the same image folder (source images per second;
each source image gives two views):

  (a) bare step: `simclr.fit` on one synthetic uint8 batch converted once to
      a device tensor and repeated (no host work), compile excluded;
  (b) `SimCLR.fit()` end to end on a JPEG folder through
      `DataGeneratorSimCLR.from_directory` (decoding happens once, at
      construction, and is reported apart; the timed part is batching,
      transfer, on-device augmentation and the step);
  (c) PyTorch + lightly end to end on the same folder (ImageFolder,
      SimCLRTransform in DataLoader workers on every core, NTXentLoss), run by
      benchmarks/peer_lightly.py in `--peer-python`;
  (d) like (b) but with the in-memory cache off (`cache_limit_bytes=0`):
      every batch is read and decoded again by parallel threads, as for a
      data set larger than memory;
  (n) like (a) with the augmentation replaced by a cast to float32 in
      [0, 1]: the step alone, so that (a)/(n) shows what the on-device
      augmentation costs (a second model, same backbone and initial weights);

then the ratios (b)/(a), (d)/(a), (a)/(n), (b)/(c) and (d)/(c). `--sweep 64,128,...` runs each batch size
in a fresh process (so peak memory is per size) and prints a table.

Examples:
    # CPU, small settings
    python benchmarks/throughput.py --backbone small_cnn --image-size 32 \
        --batch-size 64 --steps 10 --data /tmp/cifar10/train --max-images 2000
    # GPU (see benchmarks/gpu_run.sh)
    KERAS_BACKEND=jax python benchmarks/throughput.py --backbone resnet50 \
        --image-size 224 --batch-size 256 --precision mixed_bfloat16 --replicate 8
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(1, os.path.dirname(HERE))

import bench_data  # noqa: E402
import bench_sweep  # noqa: E402
import bench_timing  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    bench_data.add_run_args(p, repeats=3)
    p.add_argument(
        "--blur",
        type=float,
        default=None,
        help="blur probability (both sides); default 0.5 at >= 96 px, else 0",
    )
    p.add_argument(
        "--jitter-strength",
        type=float,
        default=None,
        help="colour jitter strength; default 1.0 at >= 96 px, else 0.5",
    )
    p.add_argument("--parts", default="abcdn", help="which of a, b, c, d, n to run")
    p.add_argument("--data", default=None, help="folder with one sub-folder of images per class")
    p.add_argument(
        "--data-tar",
        default=None,
        help="tar of such a folder (default: ImageNet-5 in .data/ or ../shared/data/)",
    )
    p.add_argument(
        "--tar-subdir", default=None, help="class folder inside the tar (default: its train/)"
    )
    p.add_argument(
        "--max-images", type=int, default=None, help="class-balanced subset of this size"
    )
    p.add_argument(
        "--replicate", type=int, default=1, help="link every image N times (longer epochs)"
    )
    p.add_argument(
        "--loader-workers",
        type=int,
        default=1,
        help="PyDataset workers for (b) (threads; 1 = Keras' default)",
    )
    p.add_argument(
        "--decode-workers",
        type=int,
        default=None,
        help="decoding threads of the data generator (default: one per core, up to 32)",
    )
    p.add_argument(
        "--peer-python", default=sys.executable, help="Python with torch, torchvision, lightly"
    )
    p.add_argument(
        "--peer-workers", type=int, default=os.cpu_count(), help="DataLoader workers for (c)"
    )
    p.add_argument(
        "--sweep", default=None, help="comma-separated batch sizes, e.g. 64,128,256,512,1024"
    )
    p.add_argument("--json", default=None, help="write the results to this JSON file")
    args = p.parse_args(argv)
    big = args.image_size >= 96
    args.blur = (0.5 if big else 0.0) if args.blur is None else args.blur
    args.jitter_strength = (
        (1.0 if big else 0.5) if args.jitter_strength is None else args.jitter_strength
    )
    if not set(args.parts) <= set("abcdn") or not args.parts:
        p.error(f"--parts must be letters of 'abcdn'. Received: {args.parts!r}")
    return args


def build_simclr(args, augmentation=None):
    """The benchmarked SimCLR; `augmentation` (a layer) replaces the default one."""
    import keras

    from simclr_keras import SimCLR
    from simclr_keras.backbones import zoo as backbones

    keras.mixed_precision.set_global_policy(args.precision)
    keras.utils.set_random_seed(0)
    base = backbones.get_backbone(args.backbone, (args.image_size, args.image_size, 3))
    size = args.image_size
    return SimCLR(
        base,
        (size, size, 3),
        batch_size=args.batch_size,
        feat_dims_ph=backbones.HEAD_DIMS[args.backbone],
        num_of_unfrozen_layers=None,
        augmentation=(
            {"blur_probability": args.blur, "jitter_strength": args.jitter_strength}
            if augmentation is None
            else augmentation
        ),
        seed=0,
    )


def no_augmentation():
    """(n)'s augmentation layer: uint8 to float32 in [0, 1], nothing drawn."""
    import keras
    from keras import ops

    class UnitCast(keras.layers.Layer):
        def call(self, images, training=None):
            return ops.cast(images, "float32") / 255.0

    return UnitCast(dtype="float32", name="augmentation")


def bare_data(args):
    """(a)'s data: one synthetic uint8 batch, converted once to a device tensor
    and handed out again for every step (no decoding, no host-side work)."""
    length = max(args.steps + 1, args.warmup, 2)
    return bench_timing.repeated_batch(args.image_size, args.batch_size, length)[0]


def folder_data(args, folder, cache=True):
    """(b)'s data (or (d)'s with `cache=False`): DataGeneratorSimCLR.from_directory,
    and its one-off decode time (0 when nothing is cached)."""
    from simclr_keras import DataGeneratorSimCLR
    from simclr_keras.data.generator import DEFAULT_CACHE_LIMIT

    size = args.image_size
    start = time.perf_counter()
    gen = DataGeneratorSimCLR.from_directory(
        folder,
        image_size=(size, size),
        batch_size=args.batch_size,
        shuffle=True,
        seed=0,
        workers=args.loader_workers,
        cache_limit_bytes=DEFAULT_CACHE_LIMIT if cache else 0,
        decode_workers=args.decode_workers,
        verbose=0,
    )
    decode_s = time.perf_counter() - start
    if len(gen) < args.steps + 1:
        raise ValueError(
            f"--steps {args.steps} needs {args.steps + 1} batches per epoch but the folder gives "
            f"{len(gen)} of {args.batch_size}: use --replicate or fewer --steps"
        )
    return gen, {
        "decode_s": decode_s,
        "num_images": gen.num_images,
        "cached": bool(getattr(gen, "cached", True)),
    }


def bench_peer(args, folder):
    """(c): benchmarks/peer_lightly.py in `--peer-python`; `{"skipped": why}`
    when torch, torchvision or lightly do not import there or the run fails."""
    cmd = [
        args.peer_python,
        os.path.join(HERE, "peer_lightly.py"),
        "--data",
        folder,
        "--backbone",
        args.backbone,
        "--image-size",
        str(args.image_size),
        "--batch-size",
        str(args.batch_size),
        "--steps",
        str(args.steps),
        "--warmup",
        str(args.warmup),
        "--repeats",
        str(args.repeats),
        "--workers",
        str(args.peer_workers),
        "--precision",
        args.precision,
        "--blur",
        str(args.blur),
        "--jitter-strength",
        str(args.jitter_strength),
    ]
    if not shutil.which(args.peer_python):
        return {"skipped": f"--peer-python {args.peer_python} not found"}
    check = subprocess.run(
        [args.peer_python, "-c", "import torch, torchvision, lightly"],
        capture_output=True,
        text=True,
    )
    if check.returncode:
        why = (check.stderr.strip().splitlines() or ["unknown error"])[-1]
        return {
            "skipped": f"`import torch, torchvision, lightly` fails in {args.peer_python}: {why}"
        }
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("PEER_RESULT ")]
    if proc.returncode or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"skipped": f"peer run failed (exit {proc.returncode}): {tail}"}
    return json.loads(lines[-1][len("PEER_RESULT ") :])


def _fmt(result):
    runs = ", ".join(f"{r:.1f}" for r in result["runs"])
    return f"{result['images_per_s']:9.1f} img/s  (median of [{runs}])"


def run_once(args):
    import keras

    print(
        f"backend={keras.backend.backend()} backbone={args.backbone} image={args.image_size}px "
        f"B={args.batch_size} precision={args.precision} blur={args.blur} "
        f"jitter={args.jitter_strength} steps={args.steps}x{args.repeats} cores={os.cpu_count()} "
        f"load={os.getloadavg()[0]:.2f}",
        flush=True,
    )
    results = {"config": vars(args).copy(), "backend": keras.backend.backend()}
    folder = workdir = None
    if set("bcd") & set(args.parts):
        folder, count, workdir = bench_data.prepare(
            args.data, args.data_tar, args.tar_subdir, args.max_images, args.replicate
        )
        print(f"data: {folder} ({count} images)")
        results["data"] = {"folder": folder, "num_images": count}
    try:
        _run_parts(args, folder, results)
    finally:
        if workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    return results


def _run_parts(args, folder, results):
    # The peer runs first, in its own process, before this process takes device memory.
    if "c" in args.parts:
        results["c"] = c = bench_peer(args, folder)
        if "skipped" in c:
            print(f"(c) PyTorch + lightly: skipped: {c['skipped']}")
        else:
            print(
                f"(c) PyTorch + lightly end to end ({c['workers']} workers):   {_fmt(c)}\n"
                f"    lightly model alone on one on-device batch: {c['bare_images_per_s']:.1f} img/s "
                f"(torch {c['torch']}, {c['device']})"
            )
    datasets, info = {}, {}
    if set("an") & set(args.parts):
        bare = bare_data(args)
    if "a" in args.parts:
        datasets["a"] = bare
    if "b" in args.parts:
        datasets["b"], info = folder_data(args, folder)
    if "d" in args.parts:
        datasets["d"], info_d = folder_data(args, folder, cache=False)
        if datasets["d"].cached:
            raise RuntimeError("(d) must decode per batch but the generator cached its images")
    fits = {}
    if datasets:
        simclr = build_simclr(args)
        fits = {name: (simclr, data) for name, data in datasets.items()}
    if "n" in args.parts:
        fits["n"] = (build_simclr(args, no_augmentation()), bare)
    if fits:
        results.update(bench_timing.timed_fits(fits, args))
    if "a" in results:
        print(f"(a) bare step (fit, one on-device batch):      {_fmt(results['a'])}", flush=True)
    if "n" in results:
        print(f"(n) bare step without augmentation:            {_fmt(results['n'])}", flush=True)
    if "b" in results:
        b = results["b"]
        b.update(info)
        print(
            f"(b) SimCLR.fit on JPEGs (from_directory):       {_fmt(b)}\n"
            f"    whole fit() calls incl. start-up: {b['whole_fit_images_per_s']:.1f} img/s; "
            f"one-off decode of {b['num_images']} images: {b['decode_s']:.1f} s",
            flush=True,
        )
    if "d" in results:
        results["d"]["num_images"] = info_d["num_images"]
        print(
            f"(d) SimCLR.fit on JPEGs, no cache (decode per batch): {_fmt(results['d'])}\n"
            f"    whole fit() calls incl. start-up: "
            f"{results['d']['whole_fit_images_per_s']:.1f} img/s",
            flush=True,
        )
    results["memory"] = bench_timing.peak_memory()
    ratios = {}
    for num, den in (("b", "a"), ("d", "a"), ("a", "n")):
        if num in results and den in results:
            # Median of the per-round ratios: the parts alternate within a round.
            ratios[f"{num}/{den}"] = bench_timing.paired_ratio(results[num], results[den])
    for part in "bd":
        if part in results and "images_per_s" in results.get("c", {}):
            ratios[f"{part}/c"] = results[part]["images_per_s"] / results["c"]["images_per_s"]
    results["ratios"] = ratios
    for name, value in ratios.items():
        print(f"ratio {name} = {value:.3f}")
    mem = results["memory"]
    device = "n/a" if mem["peak_device_mb"] is None else f"{mem['peak_device_mb']:.0f} MiB"
    print(f"peak host RSS {mem['peak_host_rss_mb']:.0f} MiB, peak device memory {device}")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    results = bench_sweep.run_sweep(args, argv, __file__) if args.sweep else run_once(args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
