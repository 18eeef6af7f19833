"""DataGeneratorSimCLR's decoding threads end with the generator."""

import gc
import pickle
import threading
import time

import numpy as np
import pytest
import testing
from PIL import Image

from simclr_keras.data.generator import DataGeneratorSimCLR


@pytest.fixture
def image_files(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(12):
        path = tmp_path / f"{i:02d}.png"
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return paths


def uncached(paths):
    # cache_limit_bytes=0: batches are decoded per call by the thread pools.
    return DataGeneratorSimCLR.from_files(
        paths, (8, 8), batch_size=4, cache_limit_bytes=0, decode_workers=2, seed=0, verbose=0
    )


def threads_settle(before, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        gc.collect()
        extra = set(threading.enumerate()) - before
        if not extra:
            return extra
        time.sleep(0.05)
    return extra


def iterate(gen):
    for _ in range(2):
        for i in range(len(gen)):
            assert gen[i].shape == (4, 8, 8, 3)
        gen.on_epoch_end()
    assert gen.images.shape == (12, 8, 8, 3)


class TestGeneratorThreads(testing.TestCase):
    def test_no_thread_outlives_a_deleted_generator(self, image_files):
        before = set(threading.enumerate())
        gen = uncached(image_files)
        iterate(gen)
        assert set(threading.enumerate()) - before, "the uncached path decodes in threads"
        del gen
        assert not threads_settle(before)

    def test_close_and_context_manager_end_the_threads(self, image_files):
        before = set(threading.enumerate())
        with uncached(image_files) as gen:
            iterate(gen)
        assert not threads_settle(before)
        # A closed generator still works (the pools start again) and closes again.
        iterate(gen)
        gen.close()
        gen.close()
        assert not threads_settle(before)

    def test_a_pickled_generator_decodes_with_threads_of_its_own(self, image_files):
        gen = uncached(image_files)
        copy = pickle.loads(pickle.dumps(gen))  # what use_multiprocessing does
        self.assertAllEqual(copy[0], gen[0])
        gen.close()
        self.assertAllEqual(copy[1], uncached(image_files)[1])
        copy.close()
