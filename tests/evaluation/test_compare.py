"""compare_backbones hands its arguments to the evaluators by name."""

import keras
import numpy as np
import testing

from simclr_keras.evaluation import compare


class TestCompareBackbones(testing.TestCase):
    def test_batch_size_reaches_finetune_evaluation_by_keyword(self, monkeypatch):
        calls = []

        def fake_finetune_evaluation(backbone, train, test, *args, **kwargs):
            calls.append((args, kwargs))
            cell = {"mean": 0.5, "std": 0.0, "values": [0.5]}
            return {1.0: {"accuracy": cell, "macro_f1": cell}}

        monkeypatch.setattr(compare, "finetune_evaluation", fake_finetune_evaluation)
        backbone = keras.Sequential([keras.Input((4, 4, 3)), keras.layers.Flatten()])
        data = (np.zeros((4, 4, 4, 3), "uint8"), np.array([0, 1, 0, 1]))
        compare.compare_backbones(
            backbone,
            backbone,
            data,
            data,
            fractions=(1.0,),
            seeds=(0,),
            classifiers=("finetune",),
            batch_size=7,
            finetune_kwargs={"batch_size": 3},
            verbose=0,
        )
        assert len(calls) == 2
        for args, kwargs in calls:
            assert args == ()  # no argument rides on its position
            assert kwargs["predict_batch_size"] == 7
            assert kwargs["batch_size"] == 3  # the training batch size is the caller's
            assert kwargs["fractions"] == (1.0,) and kwargs["seeds"] == (0,)
