"""`simclr_keras_rules` holds the library's lists without Keras: they match
what the library builds and scores.
"""

import subprocess
import sys

import numpy as np
import testing

from simclr_keras.backbones import zoo
from simclr_keras.evaluation.label_free import LABEL_FREE_SCORES
from simclr_keras.layers import input_scaling
from simclr_keras.training import pretrained
from simclr_keras_rules import backbone_names, guard_scores, preprocessing_modes, recipes


class TestRules(testing.TestCase):
    def test_the_lists_match_the_library(self):
        assert tuple(sorted(zoo.BACKBONES)) == backbone_names.BACKBONE_NAMES
        assert set(zoo.PREPROCESSING) <= set(backbone_names.BACKBONE_NAMES)
        assert tuple(LABEL_FREE_SCORES) == guard_scores.LABEL_FREE_SCORE_NAMES
        assert set(pretrained.RECIPE_EPOCHS) == set(recipes.RECIPES)
        assert set(pretrained.RECIPE_AUGMENTATION) == set(recipes.RECIPES)
        images = np.full((1, 2, 2, 3), 100.0, "float32")
        for name in preprocessing_modes.PREPROCESSING_MODES:  # each one the library can apply
            scaled = input_scaling.apply_preprocessing(images, name)
            assert tuple(scaled.shape) == (1, 2, 2, 3)

    def test_the_rules_import_no_keras(self):
        script = (
            "import sys, simclr_keras_rules.backbone_names, simclr_keras_rules.guard_scores, "
            "simclr_keras_rules.preprocessing_modes, simclr_keras_rules.recipes; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('keras', 'keras_hub', 'tensorflow', 'jax', 'torch', 'numpy', 'simclr_keras')))"
        )
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
        assert result.returncode == 0 and result.stdout.strip() == "[]", result.stderr[-2000:]
