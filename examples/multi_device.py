"""Train SimCLR on every local device with Keras' DataParallel (JAX backend).

The global batch is split evenly over the devices; the loss is the global
NT-Xent (every image sees the negatives of all devices) and BatchNorm is
synchronised, because Keras compiles one step over the global batch.

Run on the GPUs/TPUs of this host:
    KERAS_BACKEND=jax python examples/multi_device.py
Try it on a CPU-only machine with 2 simulated devices:
    XLA_FLAGS=--xla_force_host_platform_device_count=2 KERAS_BACKEND=jax \
        python examples/multi_device.py
"""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")  # before keras is imported

import keras
import numpy as np
from sklearn.datasets import load_digits

from simclr_keras import SimCLR
from simclr_keras.training.distribution import check_batch_size, data_parallel

# 1. Data: sklearn's 8x8 digits as 16x16 RGB uint8 images.
digits = load_digits().images  # (1797, 8, 8), values 0..16
images = np.kron(digits, np.ones((2, 2)))[..., None].repeat(3, axis=-1)
images = (images * (255 / 16)).astype("uint8")

# 2. One data-parallel distribution over all devices. The global batch must
#    divide by the number of devices: 32 images per device here.
devices = keras.distribution.list_devices()
batch_size = 32 * len(devices)
distribution = data_parallel(batch_size, devices)
print(f"{len(devices)} device(s): {devices}")
print(f"global batch {batch_size}, {check_batch_size(batch_size, distribution)} images per device")

# 3. Build and train inside the distribution's scope, so the weights are
#    replicated on every device and each batch is sharded across them.
with distribution.scope():
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.BatchNormalization()(x)  # sees all 2B views: sync BN
    x = keras.layers.Conv2D(64, 3, strides=2, padding="same", activation="relu")(x)
    base = keras.Model(inputs, x, name="small_cnn")
    simclr = SimCLR(
        base,
        (16, 16, 3),
        batch_size=batch_size,
        feat_dims_ph=[64, 32],
        augmentation={"jitter_strength": 0.5},
        seed=0,
    )
    history = simclr.fit(images, epochs=2, verbose=2)

print("loss per epoch:", [round(v, 3) for v in history.history["loss"]])
# The backbone's weights are ordinary Keras weights: use it on one device too.
features = simclr.base_model.predict(images[:8], verbose=0)
print("backbone output for 8 images:", features.shape)
