"""Cost of the image check (`_images.check_images`, every pixel) inside `fit()`.

Times `SimCLR.fit` on a float32 array (the worst case: uint8 needs no range
pass) with the check and with only its shape part (range/NaN pass skipped),
alternating the two so both see the same machine load, and prints both and
their ratio; then the check alone on a bigger array.

Usage: KERAS_BACKEND=jax python benchmarks/bench_image_check.py [N] [SIZE] [REPEATS]
"""

import statistics
import sys
import time

import keras
import numpy as np

import simclr_keras.model as model_module
from simclr_keras import SimCLR
from simclr_keras._images import check_image_shape, check_images


def shape_only(images, name="images", channels=None, allow_grey=False):
    return check_image_shape(images, name, channels, allow_grey)


def main(n=1024, size=32, repeats=3):
    rng = np.random.default_rng(0)
    x = rng.random((n, size, size, 3), dtype=np.float32)
    base = keras.Sequential(
        [
            keras.Input((size, size, 3)),
            keras.layers.Conv2D(16, 3, strides=2, activation="relu"),
            keras.layers.Conv2D(32, 3, strides=2, activation="relu"),
        ]
    )
    simclr = SimCLR(base, (size, size, 3), 64, [64, 32], seed=0)
    simclr.fit(x, epochs=1, verbose=0)  # compile and warm up
    times = {"with check": [], "without": []}
    for _ in range(repeats):
        for label, check in (("with check", check_images), ("without", shape_only)):
            model_module.check_images = check
            start = time.perf_counter()
            simclr.fit(x, epochs=1, verbose=0)
            times[label].append(time.perf_counter() - start)
    model_module.check_images = check_images
    with_check, without = (statistics.median(times[k]) for k in ("with check", "without"))
    print(
        f"backend {keras.backend.backend()}, fit() of one epoch, {n} float32 images {size}x{size}x3"
    )
    print(f"  with the check    : {with_check:.3f} s (median of {repeats})")
    print(f"  without the check : {without:.3f} s")
    print(f"  ratio             : {with_check / without:.3f}")
    start = time.perf_counter()
    for _ in range(20):
        check_images(x)
    alone = (time.perf_counter() - start) / 20
    print(f"  the check alone on these images: {alone * 1e3:.2f} ms ({alone / without:.2%} of fit)")
    big = rng.random((20000, 32, 32, 3), dtype=np.float32)
    start = time.perf_counter()
    for _ in range(5):
        check_images(big)
    per = (time.perf_counter() - start) / 5
    print(
        f"check alone on 20000 float32 32x32x3 images ({big.nbytes / 2**20:.0f} MiB): "
        f"{per * 1e3:.1f} ms ({per / len(big) * 1e6:.2f} us per image)"
    )


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
