"""Docstring `>>>` examples run (as keras-hub's docstring test does).

Each module's examples run with the module's own namespace plus `keras`,
`ops` and `np`; examples that need files or long training are marked
`# doctest: +SKIP` in the docstring.
"""

import doctest
import importlib
import pkgutil

import keras
import numpy as np
import pytest
import testing
from keras import ops

import simclr_keras
import simclr_keras_cli
import simclr_keras_rules


def all_modules():
    names = []
    for package in (simclr_keras, simclr_keras_cli, simclr_keras_rules):
        names.append(package.__name__)
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if info.name != "simclr_keras_cli.__main__":  # runs the command on import
                names.append(info.name)
    return sorted(names)


MODULES = all_modules()


class TestDocstrings(testing.TestCase):
    def test_every_module_is_found(self):
        assert "simclr_keras.layers.augmentation" in MODULES
        assert "simclr_keras.evaluation.knn" in MODULES
        assert len(MODULES) > 30

    @pytest.mark.parametrize("name", MODULES)
    def test_docstring_examples(self, name):
        module = importlib.import_module(name)
        finder = doctest.DocTestFinder(exclude_empty=True)
        runner = doctest.DocTestRunner(
            optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
        )
        report = []
        for test in finder.find(module, name, globs={}):
            if test.lineno is None or not test.filename.startswith(module.__file__[:-3]):
                continue  # a docstring imported from another module is tested there
            test.globs = dict(vars(module), keras=keras, ops=ops, np=np)
            runner.run(test, out=report.append)
            test.globs.clear()
        result = runner.summarize(verbose=False)
        assert result.failed == 0, "".join(report)
