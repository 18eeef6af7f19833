"""BackboneGuard: start/best/last bookkeeping, restoring, resuming, messages."""

import json
import os

import keras
import numpy as np
import pytest
import testing
from digits_data import digits_rgb
from tiny_models import tiny_simclr

from simclr_keras.callbacks.backbone_guard import BackboneGuard


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


class CountingGuard(BackboneGuard):
    """A real guard that counts its feature extractions."""

    calls = 0

    def evaluate(self):
        self.calls += 1
        return super().evaluate()


class ScriptedBudgetGuard(BackboneGuard):
    """A budgets guard whose per-split accuracies are scripted: each entry is
    the per-budget mean, spread by a fixed small pattern over the splits.
    """

    def __init__(self, script, *args, **kwargs):
        kwargs.setdefault("verbose", 0)
        super().__init__(*args, **kwargs)
        self.script = list(script)
        self.calls = 0

    def evaluate(self):
        means = self.script[self.calls]
        self.calls += 1
        budgets = sorted({s.budget for s in self.splits})
        wobble = np.tile([0.002, -0.002], len(self.splits))[: len(self.splits)]
        values = np.array([means[budgets.index(s.budget)] for s in self.splits]) + wobble
        return {"budgets": float(np.mean(means)), "splits": values.tolist()}


def labelled():
    x, y = digits_rgb(8)
    return x[:100], y[:100]


class TestBestEpoch(testing.TestCase):
    """Scripted scores: the start, best and last epochs and what is restored."""

    def test_keeps_the_best_epoch_and_the_last_one_too(self):
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

    def test_says_plainly_when_no_epoch_beat_the_start_and_keeps_it(self):
        simclr = tiny_simclr()
        guard = ScriptedGuard([0.9, 0.8, 0.9, 0.7], images(), verbose=0)  # a tie is no gain
        recorder, _ = fit(simclr, guard)
        assert guard.best_epoch == 0 and not guard.improved()
        assert same(simclr.base_model.get_weights(), recorder.weights[0])
        assert "No epoch beat the start: the result is the start backbone" in guard.summary()

    def test_min_delta_and_the_last_epoch_as_best(self):
        simclr = tiny_simclr()
        guard = ScriptedGuard([0.5, 0.505, 0.52], images(), min_delta=0.01, verbose=0)
        recorder, _ = fit(simclr, guard, epochs=2)
        assert guard.best_epoch == 2  # 0.505 is within min_delta of the start, 0.52 is not
        assert same(simclr.base_model.get_weights(), recorder.weights[2])
        assert "The result is the last epoch's backbone (epoch 2)" in guard.summary()


class TestResume(testing.TestCase):
    """The guard's state across a resumed run, damaged or of another backbone."""

    def test_resumed_run_reads_the_guard_state_instead_of_a_new_start(self, tmp_path):
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

    def test_budget_guard_resumes_from_its_state_and_survives_damage(self, tmp_path):
        x, y = labelled()
        save_path = str(tmp_path / "run" / "simclr.keras")
        script = [(0.6, 0.7, 0.8), (0.62, 0.71, 0.81), (0.5, 0.5, 0.5)] + [(0.5, 0.5, 0.5)] * 3
        first = ScriptedBudgetGuard(script, x, y, folds=2, repeats=1)
        recorder, _ = fit(tiny_simclr(save_path=save_path), first, epochs=2)
        state_dir = tmp_path / "run" / "simclr_checkpoint" / "guard"
        assert {p.name for p in state_dir.iterdir()} == {
            "guard.json",
            "start_backbone.npz",
            "best_backbone.npz",
            "top_backbone.npz",
        }
        # Resumed with one more epoch: the start comes from the state, not the resumed weights.
        second = ScriptedBudgetGuard(
            [(0.61, 0.72, 0.8)] + [(0.5, 0.5, 0.5)] * 3, x, y, folds=2, repeats=1
        )
        simclr2 = tiny_simclr(save_path=save_path)
        fit(simclr2, second, epochs=3)
        assert second.calls == 1 + 3  # epoch 3, then the start mixed with epoch 1 at 3 alphas
        assert second.result["epoch"] == 1 and second.result["alpha"] is None
        assert same(second.start_weights, recorder.weights[0])
        assert same(simclr2.base_model.get_weights(), recorder.weights[1])
        # A truncated weights file: ignored with a warning naming it, the run goes on.
        best = state_dir / "best_backbone.npz"
        best.write_bytes(best.read_bytes()[:100])
        third = ScriptedBudgetGuard(
            [(0.6, 0.7, 0.8)] * 2 + [(0.5, 0.5, 0.5)] * 3, x, y, folds=2, repeats=1
        )
        with pytest.warns(UserWarning, match="best_backbone.npz cannot be read"):
            fit(tiny_simclr(save_path=save_path), third, epochs=4)
        assert third.start_epoch == 3  # the resumed weights taken as the start

    def test_guard_state_of_another_backbone_is_ignored_with_a_warning(self, tmp_path):
        x, y = labelled()
        folder = str(tmp_path / "guard")
        script = [(0.6, 0.7, 0.8), (0.62, 0.71, 0.81)] + [(0.5, 0.5, 0.5)] * 3
        first = ScriptedBudgetGuard(script, x, y, folds=2, repeats=1, directory=folder)
        fit(tiny_simclr(), first, epochs=1)
        other = ScriptedBudgetGuard(script, x, y, folds=2, repeats=1, directory=folder)
        from tiny_models import sequential_backbone

        from simclr_keras import SimCLR

        model = SimCLR(sequential_backbone((8, 8, 3)), (8, 8, 3), 8, [8, 4])
        other.set_model(model)
        with pytest.warns(UserWarning, match="weights of another backbone"):
            assert not other._load_state(epoch=1)


class TestRealScores(testing.TestCase):
    """Real scores: what goes into the logs, and when an epoch is scored."""

    def test_real_scores_with_and_without_labels_go_into_the_logs(self):
        x, y = digits_rgb(8)
        simclr = tiny_simclr()
        labelled = BackboneGuard(x[:120], y[:120], verbose=0, folds=3, repeats=1)
        single = BackboneGuard(x[:120], y[:120], score="knn+linear", verbose=0)
        free = BackboneGuard(x[:120], log_scores=("alpha_req", "uniformity"), verbose=0)
        callbacks = [labelled, single, free]
        history = simclr.fit(images(), epochs=1, callbacks=callbacks, verbose=0)
        assert labelled.score_name == "budgets" and free.score_name == "rankme"
        for key in (
            "guard_score",
            "guard_linear_5pct",
            "guard_linear_20pct",
            "guard_linear_100pct",
            "knn_acc",
            "linear_acc",
            "guard_alpha_req",
            "guard_uniformity",
        ):
            assert key in history.history, key
        assert len(labelled.details[0]["splits"]) == 9  # 3 budgets x 3 folds x 1 repeat
        for guard in callbacks:
            assert set(guard.scores) == {0, 1} and all(np.isfinite(list(guard.scores.values())))
        assert 0 <= labelled.scores[0] <= 1 and 1 <= free.scores[0] <= 8  # rankme <= min(N, d)

    def test_an_epoch_that_left_the_backbone_unchanged_is_not_scored_again(self, capsys):
        from simclr_keras.callbacks.gradual_unfreeze import GradualUnfreeze

        x, y = digits_rgb(8)
        simclr = tiny_simclr(num_of_unfrozen_layers=0)
        guard = CountingGuard(x[:60], y[:60], verbose=1, interpolation=())  # no mixes to count
        # Epoch 1: the backbone frozen (head only); epoch 2: its last two layers train.
        simclr.fit(images(), epochs=2, callbacks=[GradualUnfreeze({0: 0, 1: 2}), guard], verbose=0)
        assert guard.calls == 2  # the start and epoch 2; epoch 1 carried the start's score
        assert guard.scores[1] == guard.scores[0] and guard.details[1] == guard.details[0]
        assert "(backbone unchanged: not scored again)" in capsys.readouterr().out
        frozen = CountingGuard(x[:60], y[:60], verbose=0, interpolation=())
        tiny_simclr(num_of_unfrozen_layers=2).fit(images(), epochs=1, callbacks=[frozen], verbose=0)
        assert frozen.calls == 2  # the backbone trained: scored again


class TestArguments(testing.TestCase):
    def test_bad_arguments_name_the_argument(self):
        x, y = digits_rgb(8)
        with pytest.raises(ValueError, match="`score` must be 'auto' or one of"):
            BackboneGuard(x[:20], y[:20], score="accuracy")
        with pytest.raises(ValueError, match="needs `labels`"):
            BackboneGuard(x[:20], score="knn")
        with pytest.raises(ValueError, match="one label per image"):
            BackboneGuard(x[:20], y[:10])
        with pytest.raises(ValueError, match="at least two classes"):
            BackboneGuard(x[:20], np.zeros(20))
        with pytest.raises(ValueError, match=r"`query_fraction` must be a number in \(0, 1\)"):
            BackboneGuard(x[:20], y[:20], score="knn", query_fraction=1.0)
        with pytest.raises(ValueError, match="No last weights yet"):
            BackboneGuard(x[:20]).use("last")
        assert not os.path.exists("guard.json")

    def test_max_images_too_small_for_the_classes_names_the_argument(self):
        x, y = digits_rgb(8)
        with pytest.raises(
            ValueError, match=r"`max_images` must be at least 2 per class \(20 for 10"
        ):
            BackboneGuard(x[:100], y[:100], max_images=5)
        with pytest.raises(ValueError, match="needs at least 2 images"):
            BackboneGuard(x[:11], np.r_[np.zeros(10), 1])


class TestLabelBudgets(testing.TestCase):
    """The budgets score: the paired rule, weight-space mixes, held-out images."""

    def test_a_candidate_worse_at_one_budget_is_refused_and_a_mix_can_win(self):
        x, y = labelled()
        simclr = tiny_simclr()
        # start; epoch 1 better everywhere; epoch 2 much better at 5 % but 3 points
        # worse at 100 % (the highest mean: mixed with the start); mixes 0.25, 0.5, 0.75.
        script = [
            (0.60, 0.70, 0.80),
            (0.62, 0.71, 0.80),
            (0.70, 0.75, 0.77),
            (0.65, 0.73, 0.805),
            (0.68, 0.74, 0.80),
            (0.69, 0.745, 0.79),
        ]
        guard = ScriptedBudgetGuard(script, x, y, folds=2, repeats=1)
        recorder, _ = fit(simclr, guard, epochs=2)
        assert guard.comparisons[1]["accepted"] and not guard.comparisons[2]["accepted"]
        assert guard.best_epoch == 1 and guard.top_epoch == 2
        assert guard.result == {"epoch": 2, "alpha": 0.5}
        assert not guard.mix_scores[0.75]["comparison"]["accepted"]
        from simclr_keras.backbones.interpolation import interpolate_weights

        want = interpolate_weights(recorder.weights[0], recorder.weights[2], 0.5)
        assert all(np.allclose(a, b) for a, b in zip(simclr.base_model.get_weights(), want))
        text = guard.summary()
        assert (
            "start 60.0 / 70.0 / 80.0 %, result 68.0 / 74.0 / 80.0 % (+8.0 / +4.0 / +0.0 " in text
        )
        # The gains' standard errors, and the budgets where a gain is not clear of the noise.
        rows = guard.mix_scores[0.5]["comparison"]["budgets"]
        errors = " / ".join(f"{100 * rows[b]['se']:.1f}" for b in (0.05, 0.2, 1.0))
        assert f"+0.0 points, standard errors {errors})" in text
        unclear = [
            f"{b:.0%}".replace("%", " %")
            for b in (0.05, 0.2, 1.0)
            if rows[b]["gain"] <= 2 * rows[b]["se"]
        ]
        assert (
            unclear
            and ("At " + " and ".join(unclear) + " of the labels the gain is within two") in text
        )
        assert "mixed with the start in weight space (alpha 0.5, WiSE-FT)" in text
        assert "Last epoch (2): 70.0 / 75.0 / 77.0 %, not accepted." in text
        guard.use("start")
        assert same(simclr.base_model.get_weights(), recorder.weights[0])

    def test_nothing_accepted_keeps_the_start_and_says_so(self):
        x, y = labelled()
        simclr = tiny_simclr()
        script = [(0.6, 0.7, 0.8), (0.7, 0.7, 0.79), (0.7, 0.7, 0.78)] + [(0.65, 0.7, 0.79)] * 3
        guard = ScriptedBudgetGuard(script, x, y, folds=2, repeats=1)
        recorder, _ = fit(simclr, guard, epochs=2)
        assert not guard.improved() and guard.best_epoch == 0
        assert same(simclr.base_model.get_weights(), recorder.weights[0])
        assert same(guard.last_weights, recorder.weights[2])
        assert "No candidate was at least as good as the start at every label budget" in (
            guard.summary()
        )
        assert guard.calls == 6  # start, 2 epochs, 3 mixes

    def test_interpolation_off_and_restore_best_off(self):
        x, y = labelled()
        simclr = tiny_simclr()
        script = [(0.6, 0.7, 0.8), (0.7, 0.75, 0.81)]
        guard = ScriptedBudgetGuard(script, x, y, folds=2, repeats=1, interpolation=())
        recorder, _ = fit(simclr, guard, epochs=1)
        assert guard.result == {"epoch": 1, "alpha": None} and guard.calls == 2
        assert "The result is" not in guard.summary() and "epoch 1's backbone" in guard.summary()
        kept = ScriptedBudgetGuard(
            [(0.6, 0.7, 0.8), (0.7, 0.75, 0.75)] + [(0.6, 0.7, 0.8)] * 3,
            x,
            y,
            folds=2,
            repeats=1,
            restore_best=False,
        )
        recorder, _ = fit(tiny_simclr(), kept, epochs=1)
        assert not kept.improved()
        assert same(kept.model.base_model.get_weights(), recorder.weights[1])  # the last stays

    def test_holdout_images_are_the_only_queries_and_survive_the_subsample(self):
        x, y = digits_rgb(8)
        holdout = np.zeros(300, bool)
        holdout[::5] = True
        guard = BackboneGuard(x[:300], y[:300], holdout=holdout, max_images=150, verbose=0)
        assert len(guard.images) <= 150
        queries = {int(i) for s in guard.splits for i in s.query}
        trains = {int(i) for s in guard.splits for i in s.train}
        assert len(queries) == 60 and not queries & trains  # every held-out image, only they
        simclr = tiny_simclr()
        simclr.fit(images(), epochs=1, callbacks=[guard], verbose=0)
        assert "scored on 60 that SimCLR did not train on" in guard.summary()
        with pytest.raises(ValueError, match="`holdout` must be None or, with `labels`"):
            BackboneGuard(x[:300], holdout=holdout)
