import time

import jax
import jax.numpy as jnp
from jax import lax

B, H, C, K = 128, 9, 672, 5  # one depthwise conv of EfficientNet-Lite0 (80 px input, 128 images)
x = jax.random.normal(jax.random.key(0), (B, H, H, C))
w = jax.random.normal(jax.random.key(1), (K, K, 1, C))


def depthwise(x, w):  # what keras.ops.depthwise_conv lowers to
    return lax.conv_general_dilated(
        x, w, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=C
    )


def shifted(x, w):  # the same sum: K*K shifted slices scaled per channel
    out = H - K + 1
    return sum(x[:, u : u + out, v : v + out, :] * w[u, v, 0] for u in range(K) for v in range(K))


def timed(f, *args, n=5):
    jax.block_until_ready(f(*args))
    start = time.perf_counter()
    for _ in range(n):
        jax.block_until_ready(f(*args))
    return (time.perf_counter() - start) / n * 1000


for name, f in [("feature_group_count", depthwise), ("shifted slices", shifted)]:

    def loss(x, w, f=f):
        return jnp.sum(f(x, w) ** 2)

    fwd, dx, dk = jax.jit(f), jax.jit(jax.grad(loss, 0)), jax.jit(jax.grad(loss, 1))
    print(
        f"{name:>20}: forward {timed(fwd, x, w):7.1f} ms, d/dx {timed(dx, x, w):7.1f} ms, "
        f"d/dkernel {timed(dk, x, w):7.1f} ms"
    )
print(jnp.abs(jax.jit(depthwise)(x, w) - jax.jit(shifted)(x, w)).max())
dk = jax.jit(jax.grad(lambda x, w: jnp.sum(depthwise(x, w) ** 2), 1))
hlo = dk.lower(x, w).compile().as_text()  # the optimised HLO: its convolutions' shapes
print(
    [
        line.split("=")[1].split("{")[0].strip()
        for line in hlo.splitlines()
        if " convolution(" in line
    ]
)
