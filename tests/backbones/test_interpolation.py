"""WiSE-FT weight interpolation: endpoints, linearity, dtypes, refusals."""

import keras
import numpy as np
import pytest
import testing
from tiny_models import functional_backbone

from simclr_keras.backbones.interpolation import interpolate_weights


class TestInterpolation(testing.TestCase):
    def test_endpoints_are_exact_and_the_path_is_linear(self):
        model = functional_backbone()
        start = model.get_weights()
        end = [
            w + np.random.default_rng(i).normal(size=w.shape).astype(w.dtype)
            for i, w in enumerate(start)
        ]
        for a, b in zip(interpolate_weights(start, end, 0.0), start):
            assert np.array_equal(a, b)
        for a, b in zip(interpolate_weights(start, end, 1.0), end):
            self.assertAllClose(a, b, rtol=1e-6, atol=1e-6)
        quarter, half = interpolate_weights(start, end, 0.25), interpolate_weights(start, end, 0.5)
        for s, q, h, e in zip(start, quarter, half, end):
            assert q.dtype == s.dtype and q.shape == s.shape
            self.assertAllClose(q, 0.75 * s + 0.25 * e, rtol=1e-5, atol=1e-6)
            self.assertAllClose(h, (s + e) / 2, rtol=1e-5, atol=1e-6)
        model.set_weights(half)  # an ordinary set of weights for the same model
        assert isinstance(model, keras.Model)

    def test_non_float_weights_take_the_end_and_bad_input_is_refused(self):
        start, end = [np.zeros(3, "int64"), np.zeros(2)], [np.full(3, 7, "int64"), np.ones(2)]
        mixed = interpolate_weights(start, end, 0.5)
        assert mixed[0].tolist() == [7, 7, 7] and mixed[1].tolist() == [0.5, 0.5]
        with pytest.raises(ValueError, match="`alpha` must be a finite number in \\[0, 1\\]"):
            interpolate_weights(start, end, 1.5)
        with pytest.raises(ValueError, match="weight 1 of shapes"):
            interpolate_weights(start, [end[0], np.ones(3)], 0.5)
        with pytest.raises(ValueError, match="2 and 1 arrays"):
            interpolate_weights(start, end[:1], 0.5)
