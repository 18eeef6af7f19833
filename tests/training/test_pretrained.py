"""The pretrained recipe: its schedule, the CLI's schedule syntax, SimCLR(recipe=...)."""

import keras
import numpy as np
import pytest
import testing
from digits_data import digits_rgb
from testing import to_numpy
from tiny_models import tiny_simclr

from simclr_keras import SimCLR
from simclr_keras.training.pretrained import parse_unfreeze_schedule, pretrained_schedule


def dense_stack(n=10):
    return keras.Sequential([keras.Input((4,))] + [keras.layers.Dense(2) for _ in range(n)])


class TestPretrainedSchedule(testing.TestCase):
    @pytest.mark.parametrize(
        "epochs, expected",
        [
            (1, {0: (0, 1e-3)}),
            (2, {0: (0, 1e-3), 1: (5, 5e-4)}),
            (3, {0: (0, 1e-3), 1: (5, 5e-4)}),
            (10, {0: (0, 1e-3), 1: (5, 5e-4)}),
        ],
    )
    def test_schedule_head_first_then_the_top_half(self, epochs, expected):
        assert pretrained_schedule(epochs, dense_stack()) == expected

    def test_schedule_without_rates_head_epochs_or_with_another_share(self):
        base = dense_stack()
        assert pretrained_schedule(3, base, head_epochs=0, learning_rate=None) == {0: 5}
        assert pretrained_schedule(3, base, head_epochs=2, share=1.0) == {
            0: (0, 1e-3),
            2: (-1, 5e-4),
        }
        assert pretrained_schedule(3, base, share=0.01) == {0: (0, 1e-3), 1: (1, 5e-4)}
        with pytest.raises(ValueError, match="`epochs` must be an int >= 1"):
            pretrained_schedule(0, base)
        with pytest.raises(
            ValueError,
            match=r"`share` must be a number in \(0, 1\] \(a fraction.*Received: share=0",
        ):
            pretrained_schedule(3, base, share=0)

    def test_parse_unfreeze_schedule_and_its_error(self):
        base = dense_stack()
        assert parse_unfreeze_schedule("0:0:1e-3, 1:50%:5e-4, 3:-1", base) == {
            0: (0, 1e-3),
            1: (5, 5e-4),
            3: -1,
        }
        assert parse_unfreeze_schedule("0:100%", base) == {0: -1}
        for bad in ("0", "0:11", "x:1", "0:1:-1", "0:150%"):
            with pytest.raises(ValueError, match="EPOCH:LAYERS"):
                parse_unfreeze_schedule(bad, base)

    @pytest.mark.parametrize("rate", ["nan", "inf", "-inf", "0"])
    def test_parse_unfreeze_schedule_refuses_a_rate_that_is_not_finite(self, rate):
        with pytest.raises(ValueError, match=rf"LR a finite rate > 0.*Received: '1:-1:{rate}'"):
            parse_unfreeze_schedule(f"0:0,1:-1:{rate}", dense_stack())

    def test_parse_unfreeze_schedule_refuses_a_repeated_or_late_epoch(self):
        base = dense_stack()
        with pytest.raises(ValueError, match="each epoch once; epoch 1 has two stages"):
            parse_unfreeze_schedule("0:0,1:2,1:-1", base)
        with pytest.raises(ValueError, match=r"--epochs 3 .*epoch 3 would never apply"):
            parse_unfreeze_schedule("0:0,3:-1", base, epochs=3)
        assert parse_unfreeze_schedule("0:0,2:-1", base, epochs=3) == {0: 0, 2: -1}
        assert parse_unfreeze_schedule("0:0,9:-1", base) == {0: 0, 9: -1}  # no epochs: no check


class TestPretrainedRecipe(testing.TestCase):
    def test_simclr_recipe_trains_the_head_alone_first_then_the_backbone(self):
        simclr = tiny_simclr(recipe="pretrained")  # starts with 0 backbone layers training
        before = simclr.base_model.get_weights()
        seen = []

        class Record(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                seen.append(self.model.base_model.get_weights())

        x = np.ascontiguousarray(digits_rgb(8)[0][:32])
        simclr.fit(x, epochs=2, callbacks=[Record()], verbose=0)
        assert all(np.array_equal(a, b) for a, b in zip(before, seen[0]))  # epoch 1: head only
        # Epoch 2: the top half (bn, c2) trains, batch norm's statistics included; c1 stays.
        base = simclr.base_model
        assert simclr.num_of_unfrozen_layers == 2
        assert [l.name for l in base.layers if l.trainable and l.weights] == ["bn", "c2"]
        c1, bn, c2 = (base.get_layer(n) for n in ("c1", "bn", "c2"))
        assert all(np.array_equal(a, b) for a, b in zip(c1.get_weights(), [before[0], before[1]]))
        names = [w.path.split("/")[-1] for w in bn.weights]
        moved = {
            n for n, a, b in zip(names, before[2:6], bn.get_weights()) if not np.array_equal(a, b)
        }
        assert {"gamma", "beta", "moving_mean", "moving_variance"} <= moved, moved
        assert not np.array_equal(before[6], c2.get_weights()[0])
        lr = float(to_numpy(simclr.optimizer.learning_rate))
        assert lr == pytest.approx(5e-4)
        clone = SimCLR.from_config(simclr.get_config())
        assert clone.recipe == "pretrained"
        with pytest.raises(
            ValueError, match=r"`recipe` must be one of \(None, 'scratch', 'pretrained'\)"
        ):
            tiny_simclr(recipe="finetune")

    def test_freeze_batch_norm_keeps_statistics_while_convolutions_train(self):
        from simclr_keras import GradualUnfreeze

        simclr = tiny_simclr(num_of_unfrozen_layers=0)
        bn = simclr.base_model.get_layer("bn")
        conv = simclr.base_model.get_layer("c1")
        before = [w.copy() for w in bn.get_weights()], conv.get_weights()[0].copy()
        x = np.ascontiguousarray(digits_rgb(8)[0][:32])
        simclr.fit(
            x, epochs=1, callbacks=[GradualUnfreeze({0: -1}, freeze_batch_norm=True)], verbose=0
        )
        assert all(np.array_equal(a, b) for a, b in zip(before[0], bn.get_weights()))
        assert not np.array_equal(before[1], conv.get_weights()[0])
        assert not bn.trainable and conv.trainable
