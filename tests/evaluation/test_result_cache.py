"""Tests of simclr_keras.evaluation.result_cache and the fine-tuning cache:
a record comes back only for the same model, data, draw and settings.
"""

import os

import keras
import numpy as np
import pytest
import testing
from tiny_models import sequential_backbone

from simclr_keras.evaluation import finetune
from simclr_keras.evaluation.finetune import finetune_evaluation
from simclr_keras.evaluation.result_cache import ResultCache, fingerprint

# ---- fingerprint -------------------------------------------------------------------


@pytest.fixture
def small_digits(digits):
    x, y = digits
    return (x[:160], y[:160]), (x[160:240], y[160:240])


def _count_runs(monkeypatch):
    """Wrap `FineTuner.fit` so the test sees how often a classifier trains."""
    calls = []
    real = finetune.FineTuner.fit

    def counted(self, *args, **kwargs):
        calls.append(kwargs.get("seed"))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(finetune.FineTuner, "fit", counted)
    return calls


RUN = dict(fractions=(0.25, 1.0), seeds=(0, 1), epochs=1, views=1, jit_compile=False)


class TestResultCache(testing.TestCase):
    def test_fingerprint_follows_content_not_identity(self):
        x = np.arange(24, dtype="uint8").reshape(2, 3, 4)
        assert fingerprint(x, {"a": 1, "b": 2}) == fingerprint(x.copy(), {"b": 2, "a": 1})
        changed = x.copy()
        changed[1, 2, 3] += 1
        others = [
            changed,  # one value
            x.astype("int64"),  # same values, another dtype
            x.reshape(4, 3, 2),  # same bytes, another shape
            np.asfortranarray(x),  # same array, other memory order: equal (checked below)
        ]
        digests = [fingerprint(o) for o in others]
        assert fingerprint(x) not in digests[:3]
        assert digests[3] == fingerprint(x)
        assert fingerprint(x, 1) != fingerprint(1, x)  # the order counts
        assert fingerprint(np.array(["a", 1], dtype=object)) != fingerprint(
            np.array(["a", 2], object)
        )

    def test_fingerprint_of_a_model_follows_its_weights(self):
        model = sequential_backbone()
        before = fingerprint(model)
        assert fingerprint(model) == before
        kernel = model.layers[0].kernel
        kernel.assign(keras.ops.convert_to_numpy(kernel))
        assert fingerprint(model) == before  # same values
        value = keras.ops.convert_to_numpy(kernel).copy()
        value[0, 0, 0, 0] += 1e-3
        kernel.assign(value)
        assert fingerprint(model) != before

    # ---- ResultCache ------------------------------------------------------------------

    def test_result_cache_round_trip_and_unreadable_records(self, tmp_path):
        cache = ResultCache(tmp_path / "cache", "finetune")
        key = fingerprint("k")
        assert cache.get(key) is None and not (tmp_path / "cache").exists()
        cache.put(key, {"accuracy": 0.5, "C": None})
        assert cache.get(key) == {"accuracy": 0.5, "C": None}
        assert os.listdir(tmp_path / "cache") == [f"finetune-{key}.json"]
        with open(cache.path(key), "w") as fh:
            fh.write('{"accuracy": 0.')  # cut short, as by a kill during a write elsewhere
        assert cache.get(key) is None

    def test_result_cache_refuses_a_file_as_folder(self, tmp_path):
        path = tmp_path / "file.txt"
        path.write_text("x")
        with pytest.raises(ValueError, match=r"`cache_dir` must be a folder.*file\.txt"):
            ResultCache(path, "finetune")
        with pytest.raises(ValueError, match="`cache_dir` must be a folder path"):
            ResultCache("", "finetune")

    # ---- finetune_evaluation(cache_dir=) ----------------------------------------------

    def test_finetune_cache_reuses_each_run_and_resumes(self, small_digits, tmp_path, monkeypatch):
        train, test = small_digits
        backbone = sequential_backbone()
        calls = _count_runs(monkeypatch)
        first = finetune_evaluation(backbone, train, test, cache_dir=tmp_path, **RUN)
        # 25 %: two draws; 100 %: both seeds draw every label, trained once
        assert len(calls) == 3 and len(os.listdir(tmp_path)) == 3
        assert first[1.0]["seeds"] == [0]

        again = finetune_evaluation(backbone, train, test, cache_dir=tmp_path, **RUN)
        assert len(calls) == 3  # nothing trained
        assert again == first

        # an interrupted evaluation: one record missing, only that run trains again
        os.remove(sorted(tmp_path.iterdir())[0])
        resumed = finetune_evaluation(backbone, train, test, cache_dir=tmp_path, **RUN)
        assert len(calls) == 4
        for fraction in RUN["fractions"]:
            assert resumed[fraction]["n_labelled"] == first[fraction]["n_labelled"]
            # the one retrained run may differ in the last bits on some backends
            self.assertAllClose(
                resumed[fraction]["accuracy"]["values"],
                first[fraction]["accuracy"]["values"],
                atol=0.0251,
            )

    @pytest.mark.parametrize("change", ["weights", "test labels", "settings", "protocol"])
    def test_finetune_cache_misses_when_anything_that_decides_the_result_changes(
        self, change, small_digits, tmp_path, monkeypatch
    ):
        train, test = small_digits
        backbone = sequential_backbone()
        run = dict(RUN, fractions=(1.0,), seeds=(0,))
        finetune_evaluation(backbone, train, test, cache_dir=tmp_path, **run)
        calls = _count_runs(monkeypatch)
        if change == "weights":
            bias = backbone.layers[0].bias
            bias.assign(keras.ops.convert_to_numpy(bias) + 0.01)
        elif change == "test labels":
            test = (test[0], np.roll(test[1], 1))
        elif change == "settings":
            run["epochs"] = 2
        else:  # a new fine-tuning protocol (FORMAT raised)
            monkeypatch.setattr(finetune, "FORMAT", -1)
        finetune_evaluation(backbone, train, test, cache_dir=tmp_path, **run)
        assert len(calls) == 1
        assert len(os.listdir(tmp_path)) == 2  # the old record is kept beside the new one

    def test_finetune_without_cache_writes_nothing(self, small_digits, tmp_path, monkeypatch):
        train, test = small_digits
        monkeypatch.chdir(tmp_path)
        finetune_evaluation(sequential_backbone(), train, test, **dict(RUN, seeds=(0,)))
        assert os.listdir(tmp_path) == []
