"""Timing and memory helpers of throughput.py and backend_compare.py (Keras side)."""

import resource
import statistics
import time
import warnings


def peak_memory():
    """Peak host RSS of this process (not the peer's) and device memory, MiB."""
    import keras

    host = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    device, backend = None, keras.backend.backend()
    try:
        if backend == "jax":
            import jax

            dev = jax.devices()[0]
            stats = dev.memory_stats() if dev.platform != "cpu" else None
            device = stats["peak_bytes_in_use"] / 2**20 if stats else None
        elif backend == "tensorflow":
            import tensorflow as tf

            if tf.config.list_logical_devices("GPU"):
                device = tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
        elif backend == "torch":
            import torch

            if torch.cuda.is_available():
                device = torch.cuda.max_memory_allocated() / 2**20
    except Exception as err:  # memory stats are a nicety, never fatal
        print(f"  (device memory unavailable: {err})")
    return {"peak_host_rss_mb": host, "peak_device_mb": device}


def repeated_batch(image_size, batch_size, length):
    """One synthetic uint8 batch, converted once to a device tensor and handed
    out again for every step (no decoding, no host-side work).

    Args:
        image_size: Height and width of the images.
        batch_size: Images in the batch.
        length: Batches per epoch (the dataset's `len`).

    Returns:
        `(dataset, images)`: a `keras.utils.PyDataset` of `length` batches, all
        the same tensor, and the NumPy images (seeded: the same on every backend).
    """
    import keras
    import numpy as np
    from keras import ops

    images = np.random.default_rng(0).integers(
        0, 256, (batch_size, image_size, image_size, 3), dtype="uint8"
    )

    class RepeatedBatch(keras.utils.PyDataset):
        def __init__(self, tensor):
            super().__init__()
            self.tensor = tensor

        def __len__(self):
            return length

        def __getitem__(self, index):
            return (self.tensor,)  # a tuple: PyDataset takes bare NumPy only

    return RepeatedBatch(ops.convert_to_tensor(images)), images


def step_timer():
    import keras
    from keras import ops

    class StepTimer(keras.callbacks.Callback):
        """Times batches 1..n-1 of a fit; waits for the device at both ends."""

        def on_train_batch_end(self, batch, logs=None):
            last = self.params["steps"] - 1
            if batch in (0, last):
                ops.convert_to_numpy(logs["loss"])  # device done with this step
                if batch == 0:
                    self.start = time.perf_counter()
                else:
                    self.seconds = time.perf_counter() - self.start
                    self.batches = last

    return StepTimer()


def timed_fits(fits, args):
    """Timed fits of `steps + 1` batches for each (model, data) pair, interleaved.

    After one warm-up fit per pair, each of `repeats` rounds fits every pair
    once in turn, so that a change of machine load hits all of them alike
    and per-round ratios stay meaningful on a busy machine. The first batch
    of each fit (fit's start-up, the loader's first batch) is left out of
    the rate; `whole_fit_images_per_s` counts it in.

    Args:
        fits: `{name: (model, data)}`: a compiled SimCLR model and what to
            pass to its `fit`. Pairs may share a model.
        args: Parsed options (`steps`, `warmup`, `repeats`, `batch_size`).

    Returns:
        `{name: {"images_per_s": median, "runs": [...], ...}}`.
    """
    from simclr_keras.callbacks import ChanceLossWarning

    # Timed fits are a few steps long, on one repeated batch: the loss says
    # nothing about learning there.
    warnings.filterwarnings("ignore", category=ChanceLossWarning)
    out = {}
    for name, (model, data) in fits.items():
        start = time.perf_counter()
        model.fit(data, epochs=1, steps_per_epoch=max(2, args.warmup), verbose=0)
        out[name] = {"runs": [], "walls": [], "warmup_s": time.perf_counter() - start}
        print(f"    ({name}) warm-up fit (compiles): {out[name]['warmup_s']:.1f} s", flush=True)
    steps = max(2, args.steps + 1)
    for _ in range(args.repeats):
        for name, (model, data) in fits.items():
            timer = step_timer()
            start = time.perf_counter()
            model.fit(data, epochs=1, steps_per_epoch=steps, callbacks=[timer], verbose=0)
            fit_s = time.perf_counter() - start
            out[name]["walls"].append(steps * args.batch_size / fit_s)
            out[name]["runs"].append(timer.batches * args.batch_size / timer.seconds)
            rate, round_ = out[name]["runs"][-1], len(out[name]["runs"])
            print(f"    ({name}) round {round_}: {rate:.1f} img/s, fit() {fit_s:.1f} s", flush=True)
    for result in out.values():
        result["images_per_s"] = statistics.median(result["runs"])
        result["whole_fit_images_per_s"] = statistics.median(result.pop("walls"))
    return out


def paired_ratio(num, den):
    """Median over rounds of num/den rates (from interleaved `timed_fits`)."""
    return statistics.median(n / d for n, d in zip(num["runs"], den["runs"]))
