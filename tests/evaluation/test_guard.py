"""BackboneGuard: start/best/last bookkeeping, restoring, resuming, messages."""

import json
import os

import keras
import numpy as np
import pytest
from digits_data import digits_rgb
from tiny_models import tiny_simclr

from simclr_keras.evaluation.guard import BackboneGuard


class ScriptedGuard(BackboneGuard):
    """A guard whose scores are given in advance (start first), to test the bookkeeping."""

    def __init__(self, scores, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.script = list(scores)
        self.calls = 0

    def evaluate(self):
        value = self.script[self.calls]
        self.calls += 1
        return {self.score_name: value}


class WeightsRecorder(keras.callbacks.Callback):
    """The backbone's weights at the start and after each epoch."""

    def __init__(self):
        super().__init__()
        self.weights = []

    def on_epoch_begin(self, epoch, logs=None):
        if not self.weights:
            self.weights.append(self.model.base_model.get_weights())

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append(self.model.base_model.get_weights())


def images(n=48):
    return np.ascontiguousarray(digits_rgb(8)[0][:n])


def same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a, b))


def fit(simclr, guard, epochs=3):
    recorder = WeightsRecorder()
    history = simclr.fit(images(), epochs=epochs, callbacks=[recorder, guard], verbose=0)
    return recorder, history


def test_keeps_the_best_epoch_and_the_last_one_too():
    simclr = tiny_simclr()
    guard = ScriptedGuard([0.5, 0.6, 0.8, 0.7], images(), verbose=0)
    recorder, history = fit(simclr, guard)
    assert guard.scores == {0: 0.5, 1: 0.6, 2: 0.8, 3: 0.7} and guard.best_epoch == 2
    assert same(simclr.base_model.get_weights(), recorder.weights[2])  # restored
    assert same(guard.last_weights, recorder.weights[3])
    assert not same(recorder.weights[2], recorder.weights[3])  # training moved the weights
    assert history.history["guard_score"] == [0.6, 0.8, 0.7]
    text = guard.summary()
    assert "start 0.5000, best 0.8000 (epoch 2), last 0.7000 (epoch 3)" in text
    assert "The result is epoch 2's backbone" in text
    guard.use("last")
    assert same(simclr.base_model.get_weights(), recorder.weights[3])


def test_says_plainly_when_no_epoch_beat_the_start_and_keeps_it():
    simclr = tiny_simclr()
    guard = ScriptedGuard([0.9, 0.8, 0.9, 0.7], images(), verbose=0)  # a tie is no gain
    recorder, _ = fit(simclr, guard)
    assert guard.best_epoch == 0 and not guard.improved()
    assert same(simclr.base_model.get_weights(), recorder.weights[0])
    assert "No epoch beat the start: the result is the start backbone" in guard.summary()


def test_min_delta_and_the_last_epoch_as_best():
    simclr = tiny_simclr()
    guard = ScriptedGuard([0.5, 0.505, 0.52], images(), min_delta=0.01, verbose=0)
    recorder, _ = fit(simclr, guard, epochs=2)
    assert guard.best_epoch == 2  # 0.505 is within min_delta of the start, 0.52 is not
    assert same(simclr.base_model.get_weights(), recorder.weights[2])
    assert "The result is the last epoch's backbone (epoch 2)" in guard.summary()


def test_resumed_run_reads_the_guard_state_instead_of_a_new_start(tmp_path):
    save_path = str(tmp_path / "run" / "simclr.keras")
    first = ScriptedGuard([0.5, 0.9, 0.6], images(), verbose=0)
    simclr = tiny_simclr(save_path=save_path)
    recorder, _ = fit(simclr, first, epochs=2)
    state_dir = tmp_path / "run" / "simclr_checkpoint" / "guard"
    saved = json.loads((state_dir / "guard.json").read_text())
    assert saved["scores"] == {"0": 0.5, "1": 0.9, "2": 0.6} and saved["best_epoch"] == 1
    # Rerun with more epochs: the model resumes at epoch 2, the guard from its state.
    second = ScriptedGuard([0.7], images(), verbose=0)
    simclr2 = tiny_simclr(save_path=save_path)
    recorder2, _ = fit(simclr2, second, epochs=3)
    assert second.calls == 1  # only epoch 3 scored: the start is not taken again
    assert second.scores == {0: 0.5, 1: 0.9, 2: 0.6, 3: 0.7} and second.best_epoch == 1
    assert same(simclr2.base_model.get_weights(), recorder.weights[1])
    assert same(second.last_weights, recorder2.weights[-1])


def test_real_scores_with_and_without_labels_go_into_the_logs():
    x, y = digits_rgb(8)
    simclr = tiny_simclr()
    labelled = BackboneGuard(x[:120], y[:120], verbose=0)
    free = BackboneGuard(x[:120], log_scores=("alpha_req", "uniformity"), verbose=0)
    history = simclr.fit(images(), epochs=1, callbacks=[labelled, free], verbose=0)
    assert labelled.score_name == "knn+linear" and free.score_name == "rankme"
    for key in ("guard_score", "knn_acc", "linear_acc", "guard_alpha_req", "guard_uniformity"):
        assert key in history.history, key
    for guard in (labelled, free):
        assert set(guard.scores) == {0, 1} and all(np.isfinite(list(guard.scores.values())))
    assert 0 <= labelled.scores[0] <= 1 and 1 <= free.scores[0] <= 8  # rankme <= min(N, d)


def test_bad_arguments_name_the_argument():
    x, y = digits_rgb(8)
    with pytest.raises(ValueError, match="`score` must be 'auto' or one of"):
        BackboneGuard(x[:20], y[:20], score="accuracy")
    with pytest.raises(ValueError, match="needs `labels`"):
        BackboneGuard(x[:20], score="knn")
    with pytest.raises(ValueError, match="one label per image"):
        BackboneGuard(x[:20], y[:10])
    with pytest.raises(ValueError, match="at least two classes"):
        BackboneGuard(x[:20], np.zeros(20))
    with pytest.raises(ValueError, match="No last weights yet"):
        BackboneGuard(x[:20]).use("last")
    assert not os.path.exists("guard.json")


class CountingGuard(BackboneGuard):
    """A real guard that counts its feature extractions."""

    calls = 0

    def evaluate(self):
        self.calls += 1
        return super().evaluate()


def test_an_epoch_that_left_the_backbone_unchanged_is_not_scored_again(capsys):
    from simclr_keras.training.unfreeze import GradualUnfreeze

    x, y = digits_rgb(8)
    simclr = tiny_simclr(num_of_unfrozen_layers=0)
    guard = CountingGuard(x[:60], y[:60], verbose=1)
    # Epoch 1: the backbone frozen (head only); epoch 2: its last two layers train.
    simclr.fit(images(), epochs=2, callbacks=[GradualUnfreeze({0: 0, 1: 2}), guard], verbose=0)
    assert guard.calls == 2  # the start and epoch 2; epoch 1 carried the start's score
    assert guard.scores[1] == guard.scores[0] and guard.details[1] == guard.details[0]
    assert "(backbone unchanged: not scored again)" in capsys.readouterr().out
    frozen = CountingGuard(x[:60], y[:60], verbose=0)
    tiny_simclr(num_of_unfrozen_layers=2).fit(images(), epochs=1, callbacks=[frozen], verbose=0)
    assert frozen.calls == 2  # the backbone trained: scored again
