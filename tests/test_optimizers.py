"""LARS against a float64 NumPy reference written from the update formulas."""

import keras
import numpy as np
import pytest
import testing
from testing import to_numpy

from simclr_keras.optimizers import LARS

# Paths are "<scope>/<name>", as for layer variables in Keras 3.
SHAPES = {
    "proj/kernel": (3, 2),
    "proj/bias": (2,),
    "bn1/gamma": (4,),
}


def make_variables(values):
    variables = []
    for path, value in values.items():
        scope, name = path.split("/")
        with keras.name_scope(scope):
            variables.append(keras.Variable(np.array(value, "float32"), name=name))
        assert variables[-1].path == path
    return variables


def reference_lars(
    weights, grads, lrs, momentum, weight_decay, eta, nesterov, use_wd, use_adaptation
):
    """One variable, `len(grads)` steps, in float64.

    g <- g + wd * w;  trust = eta ||w|| / ||g|| (1 if a norm is 0 or excluded)
    v <- m v + lr trust g;  w <- w - v  (nesterov: w - (m v + lr trust g))
    """
    w = np.array(weights, "float64")
    v = np.zeros_like(w)
    for g, lr in zip(grads, lrs):
        g = np.array(g, "float64")
        if use_wd:
            g = g + weight_decay * w
        trust = 1.0
        w_norm, g_norm = np.linalg.norm(w), np.linalg.norm(g)
        if use_adaptation and w_norm > 0 and g_norm > 0:
            trust = eta * w_norm / g_norm
        scaled_lr = lr * trust
        v = momentum * v + scaled_lr * g
        update = momentum * v + scaled_lr * g if nesterov else v
        w = w - update
    return w, v


def run_steps(optimizer, variables, grads_per_step):
    for grads in grads_per_step:
        optimizer.apply_gradients(
            [(keras.ops.convert_to_tensor(g, "float32"), v) for g, v in zip(grads, variables)]
        )
    return [to_numpy(v) for v in variables]


def exponential_lr(step, initial=0.5, decay_steps=2, decay_rate=0.5):
    return initial * decay_rate ** (step / decay_steps)


class TestOptimizers(testing.TestCase):
    @pytest.mark.parametrize("use_schedule", [False, True], ids=["constant_lr", "schedule"])
    @pytest.mark.parametrize("nesterov", [False, True], ids=["classic", "nesterov"])
    def test_matches_reference(self, nesterov, use_schedule):
        rng = np.random.default_rng(0)
        steps, momentum, weight_decay, eta = 6, 0.9, 0.05, 0.3
        initial = {path: rng.normal(size=shape) for path, shape in SHAPES.items()}
        grads = [[rng.normal(size=shape) for shape in SHAPES.values()] for _ in range(steps)]
        if use_schedule:
            learning_rate = keras.optimizers.schedules.ExponentialDecay(0.5, 2, 0.5)
            lrs = [exponential_lr(t) for t in range(steps)]
        else:
            learning_rate = 0.2
            lrs = [0.2] * steps

        variables = make_variables(initial)
        optimizer = LARS(
            learning_rate,
            momentum=momentum,
            weight_decay=weight_decay,
            eta=eta,
            nesterov=nesterov,
        )
        results = run_steps(optimizer, variables, grads)

        # Default exclusions: the bias and the BN gamma get neither wd nor adaptation.
        excluded = {"proj/kernel": False, "proj/bias": True, "bn1/gamma": True}
        for i, (path, result) in enumerate(zip(SHAPES, results)):
            expected_w, expected_v = reference_lars(
                initial[path],
                [step[i] for step in grads],
                lrs,
                momentum,
                weight_decay,
                eta,
                nesterov,
                use_wd=not excluded[path],
                use_adaptation=not excluded[path],
            )
            self.assertAllClose(result, expected_w, rtol=1e-5, atol=1e-6, msg=path)
            velocity = to_numpy(optimizer.momentums[i])
            self.assertAllClose(velocity, expected_v, rtol=1e-5, atol=1e-6, msg=path)
        assert int(optimizer.iterations) == steps

    def test_trust_ratio_is_one_for_zero_weights(self):
        grad = np.array([[0.3, -0.4], [1.0, 2.0]])
        (variable,) = make_variables({"proj/kernel": np.zeros((2, 2))})
        optimizer = LARS(0.1, momentum=0.9, weight_decay=0.1, eta=0.001)
        (result,) = run_steps(optimizer, [variable], [[grad]])
        # trust = 1: w = 0 - 0.1 * g (eta * ||w|| / ||g|| would be 0 and freeze w).
        self.assertAllClose(result, -0.1 * grad, rtol=1e-6)

    def test_trust_ratio_is_one_for_zero_gradient(self):
        w0 = np.array([[1.0, -2.0], [0.5, 3.0]])
        grads = [[np.array([[0.2, 0.1], [-0.3, 0.4]])], [np.zeros((2, 2))], [np.zeros((2, 2))]]
        (variable,) = make_variables({"proj/kernel": w0})
        optimizer = LARS(0.5, momentum=0.9, weight_decay=0.0, eta=0.01)
        (result,) = run_steps(optimizer, [variable], grads)
        expected, expected_v = reference_lars(
            w0, [g[0] for g in grads], [0.5] * 3, 0.9, 0.0, 0.01, False, False, True
        )
        assert np.all(np.isfinite(result))
        self.assertAllClose(result, expected, rtol=1e-5)
        velocity = to_numpy(optimizer.momentums[0])
        self.assertAllClose(velocity, expected_v, rtol=1e-5)

    @pytest.mark.parametrize("nesterov", [False, True], ids=["classic", "nesterov"])
    def test_excluded_variable_gets_plain_momentum_sgd(self, nesterov):
        rng = np.random.default_rng(1)
        w0 = rng.normal(size=(5,))
        grads = [[rng.normal(size=(5,))] for _ in range(5)]
        (lars_var,) = make_variables({"head/bias": w0})
        (sgd_var,) = make_variables({"head/bias": w0})
        lars = LARS(0.1, momentum=0.8, weight_decay=0.5, eta=0.001, nesterov=nesterov)
        sgd = keras.optimizers.SGD(0.1, momentum=0.8, nesterov=nesterov)
        (lars_result,) = run_steps(lars, [lars_var], grads)
        (sgd_result,) = run_steps(sgd, [sgd_var], grads)
        self.assertAllClose(lars_result, sgd_result, rtol=1e-5, atol=1e-6)
        expected, _ = reference_lars(
            w0, [g[0] for g in grads], [0.1] * 5, 0.8, 0.5, 0.001, nesterov, False, False
        )
        self.assertAllClose(lars_result, expected, rtol=1e-5, atol=1e-6)

    def test_custom_exclusions_are_separate(self):
        rng = np.random.default_rng(2)
        values = {"proj/kernel": rng.normal(size=(3, 2)), "special/kernel": rng.normal(size=(4,))}
        grads = [[rng.normal(size=v.shape) for v in values.values()] for _ in range(5)]
        variables = make_variables(values)
        # "special" gets no weight decay but keeps the layer-wise rate; "proj"
        # gets weight decay but plain momentum SGD.
        optimizer = LARS(
            0.3,
            momentum=0.9,
            weight_decay=0.1,
            eta=0.2,
            exclude_from_weight_decay=["^special/"],
            exclude_from_layer_adaptation=["^proj/"],
        )
        results = run_steps(optimizer, variables, grads)
        flags = {"proj/kernel": (True, False), "special/kernel": (False, True)}
        for i, (path, result) in enumerate(zip(values, results)):
            use_wd, use_adaptation = flags[path]
            expected, _ = reference_lars(
                values[path],
                [step[i] for step in grads],
                [0.3] * 5,
                0.9,
                0.1,
                0.2,
                False,
                use_wd,
                use_adaptation,
            )
            self.assertAllClose(result, expected, rtol=1e-5, atol=1e-6, msg=path)

    def test_layer_adaptation_exclusions_default_to_weight_decay_ones(self):
        optimizer = LARS(exclude_from_weight_decay=["bias"])
        assert optimizer.get_config()["exclude_from_layer_adaptation"] == ["bias"]
        optimizer = LARS(exclude_from_weight_decay=["bias"], exclude_from_layer_adaptation=[])
        assert optimizer.get_config()["exclude_from_layer_adaptation"] == []

    def test_default_exclusions_cover_named_normalization_layers(self):
        model = keras.Sequential(
            [
                keras.Input((4,)),
                keras.layers.Dense(3, name="fc"),
                keras.layers.BatchNormalization(name="bn1"),
                keras.layers.LayerNormalization(name="ln1"),
            ]
        )
        optimizer = LARS()
        optimizer.build(model.trainable_variables)
        decayed = [
            v.path
            for v, use in zip(model.trainable_variables, optimizer._lars_use_weight_decay)
            if use
        ]
        assert [path.split("/", 1)[1] for path in decayed] == ["fc/kernel"]
        assert optimizer._lars_use_adaptation == optimizer._lars_use_weight_decay
        # Decoupled decay of the base class stays off.
        assert optimizer.weight_decay is None

    @pytest.mark.parametrize(
        "learning_rate",
        [0.25, keras.optimizers.schedules.CosineDecay(0.3, decay_steps=100, warmup_steps=10)],
        ids=["float", "schedule"],
    )
    def test_config_round_trip(self, learning_rate):
        optimizer = LARS(
            learning_rate,
            momentum=0.8,
            weight_decay=1e-4,
            eta=0.002,
            exclude_from_weight_decay=("bias",),
            exclude_from_layer_adaptation=("bias", "gamma"),
            nesterov=True,
            clipnorm=1.0,
        )
        config = optimizer.get_config()
        for key, value in {
            "momentum": 0.8,
            "weight_decay": 1e-4,
            "eta": 0.002,
            "exclude_from_weight_decay": ["bias"],
            "exclude_from_layer_adaptation": ["bias", "gamma"],
            "nesterov": True,
            "clipnorm": 1.0,
            "name": "LARS",
        }.items():
            assert config[key] == value, key
        restored = LARS.from_config(config)
        assert isinstance(restored, LARS)
        assert restored.get_config() == config
        assert not isinstance(
            config["learning_rate"], keras.optimizers.schedules.LearningRateSchedule
        )
        restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
        assert isinstance(restored, LARS)
        assert restored.get_config() == config

    def test_model_with_lars_saves_and_loads(self):
        model = keras.Sequential(
            [keras.Input((4,)), keras.layers.Dense(3), keras.layers.BatchNormalization()]
        )
        schedule = keras.optimizers.schedules.ExponentialDecay(0.2, 10, 0.9)
        model.compile(optimizer=LARS(schedule, weight_decay=1e-4, nesterov=True), loss="mse")
        rng = np.random.default_rng(3)
        x = rng.normal(size=(8, 4)).astype("float32")
        y = rng.normal(size=(8, 3)).astype("float32")
        model.fit(x, y, batch_size=8, epochs=2, verbose=0)

        loaded = self.run_model_saving_test(
            model, x, call=lambda m, x: m.predict(x, verbose=0), rtol=1e-6, atol=0
        )
        assert type(loaded.optimizer) is LARS
        assert loaded.optimizer.get_config() == model.optimizer.get_config()
        assert int(loaded.optimizer.iterations) == 2
        assert len(loaded.optimizer.momentums) == len(model.optimizer.momentums) == 4
        for a, b in zip(model.optimizer.momentums, loaded.optimizer.momentums):
            self.assertAllClose(a, b)

    @pytest.mark.parametrize(
        "kwargs, message",
        [
            ({"learning_rate": 0.0}, "`learning_rate` must be a positive number"),
            ({"learning_rate": -0.1}, "Received: learning_rate=-0.1"),
            ({"learning_rate": "0.3"}, "Received: learning_rate='0.3'"),
            ({"learning_rate": True}, "`learning_rate` must be a positive number"),
            ({"learning_rate": float("nan")}, "`learning_rate` must be a positive number"),
            (
                {"momentum": 1.5},
                r"`momentum` must be a finite number in \[0, 1\). Received: momentum=1.5",
            ),
            ({"momentum": 1.0}, r"`momentum` must be a finite number in \[0, 1\)"),
            ({"momentum": -0.1}, r"`momentum` must be a finite number in \[0, 1\)"),
            ({"momentum": "0.9"}, "Received: momentum='0.9'"),
            ({"weight_decay": -1e-6}, "`weight_decay` must be a finite number >= 0"),
            ({"weight_decay": None}, "Received: weight_decay=None"),
            ({"weight_decay": False}, "`weight_decay` must be a finite number >= 0"),
            ({"eta": 0}, "`eta` must be a positive number. Received: eta=0"),
            ({"eta": float("inf")}, "`eta` must be a positive number"),
            ({"nesterov": "yes"}, "`nesterov` must be True or False"),
            ({"exclude_from_weight_decay": [1]}, "`exclude_from_weight_decay` must contain"),
            ({"exclude_from_weight_decay": None}, "`exclude_from_weight_decay` must be a list"),
            ({"exclude_from_layer_adaptation": ["("]}, "invalid regular expression"),
        ],
    )
    def test_bad_arguments(self, kwargs, message):
        with pytest.raises(ValueError, match=message):
            LARS(**kwargs)

    def test_integer_learning_rate_and_single_pattern_are_accepted(self):
        optimizer = LARS(learning_rate=1, exclude_from_weight_decay="bias")
        config = optimizer.get_config()
        assert config["learning_rate"] == 1.0
        assert config["exclude_from_weight_decay"] == ["bias"]
