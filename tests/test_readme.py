"""The README's quick start runs as written."""

import os
import re

import numpy as np

README = os.path.join(os.path.dirname(__file__), os.pardir, "README.md")


def quick_start_code():
    text = open(README, encoding="utf-8").read()
    section = text.split("## Quick start", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_quick_start_runs_as_written():
    namespace = {}
    exec(compile(quick_start_code(), "README quick start", "exec"), namespace)
    features = namespace["features"]
    assert features.shape[0] == 64
    assert np.all(np.isfinite(features))
    assert namespace["simclr"].base_model is namespace["base"]
