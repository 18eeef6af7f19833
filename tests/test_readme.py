"""The README's Python examples run, top to bottom, in one namespace.

Every ```python block runs. The quick start runs as written; the others get
tiny stand-ins for sizes, epochs and data (`SUBSTITUTIONS`, each of which
must still match the README) and a few lines of setup for the names they
take as given (`SETUP`). The layout tree names the folders that exist.
"""

import os
import re

import keras
import numpy as np
import pytest
from digits_data import digits_rgb
from PIL import Image

README = os.path.join(os.path.dirname(__file__), os.pardir, "README.md")
ROOT = os.path.dirname(README)


def python_blocks():
    """`(section heading, code)` of every ```python block, in order."""
    text = open(README, encoding="utf-8").read()
    blocks, heading = [], None
    for match in re.finditer(r"^(#+ [^\n]*)$|^```python\n(.*?)^```", text, re.S | re.M):
        if match.group(1):
            heading = match.group(1).lstrip("# ").strip()
        else:
            blocks.append((heading, match.group(2)))
    return blocks


def write_digit_folder(folder, n=24):
    images, labels = digits_rgb(16)
    for i in range(n):
        sub = os.path.join(folder, f"digit_{labels[i]}")
        os.makedirs(sub, exist_ok=True)
        Image.fromarray(images[i]).save(os.path.join(sub, f"{i:03d}.png"))


BLOCKS = python_blocks()

# Per section: (README text, tiny stand-in). Sizes, epochs and batch sizes
# shrink; the calls stay those of the README.
SUBSTITUTIONS = {
    "Your own image folder": [
        ("image_size=(96, 96), batch_size=128", "image_size=(16, 16), batch_size=8"),
        (
            "resnet18((96, 96, 3)),\n    (96, 96, 3),\n    128,",
            "small_cnn((16, 16, 3)),\n    (16, 16, 3),\n    8,",
        ),
        (
            "import DataGeneratorSimCLR, SimCLR, resnet18",
            "import DataGeneratorSimCLR, SimCLR, small_cnn",
        ),
        ("epochs=100", "epochs=1"),
    ],
    "Guided batches (G-SimCLR)": [
        ("epochs=10, seed=0", "epochs=1, seed=0"),
        ("epochs=100", "epochs=1"),
    ],
    "Pseudo-labels from any encoder, or re-clustered while training": [
        ("epochs=100", "epochs=1"),
        # No ImageNet weights offline: a random small CNN stands in for the pretrained one.
        (
            'get_backbone("efficientnet_lite0", (224, 224, 3), weights="imagenet")',
            'get_backbone("small_cnn", (16, 16, 3))',
        ),
        ('preprocessing="efficientnet_lite", image_size=(224, 224)', "image_size=(16, 16)"),
        ("every=5", "every=1"),
    ],
    "SimCLR's augmentation, recipe and larger sources": [
        (
            '"train/", image_size=(96, 96), batch_size=256',
            '"train/", image_size=(24, 24), batch_size=8',
        ),
        (
            "resnet18((64, 64, 3)), (64, 64, 3), 256,",
            "small_cnn((16, 16, 3)), (16, 16, 3), 8,",
        ),
        ("epochs=100", "epochs=1"),
        # Later blocks use the quick start's `simclr`: keep this one apart.
        ("simclr = SimCLR(", "simclr_recipe = SimCLR("),
        ("simclr.fit(train,", "simclr_recipe.fit(train,"),
    ],
    "keras-hub backbones and vision transformers": [
        (
            "base = keras_hub.models.Backbone.from_preset(preset)",
            "base = keras_hub.models.ViTBackbone((16, 16, 3), 4, 2, 2, 8, 16)",
        ),
        ("(224, 224, 3),\n    64,\n    [768, 128],", "(16, 16, 3),\n    8,\n    [8, 4],"),
        ("preprocessing=preset_preprocessing(preset)", "preprocessing='symmetric'"),
        ("epochs=10", "epochs=1"),
    ],
    "Training control": [("epochs=30", "epochs=1")],
    "Evaluation": [
        ('load_split("photos/", (64, 64)', 'load_split("photos/", (32, 32)'),
        ("simclr.fit(x_train, epochs=50)", "simclr.fit(x_train, epochs=1)"),
        ("fractions=(0.05, 0.2, 1.0)", "fractions=(1.0,)"),
        ('output_dir="eval/",', 'output_dir="eval/", seeds=(0,), finetune_kwargs=TINY_FINETUNE,'),
    ],
    "Backends and multiple devices": [
        ("data_parallel(batch_size=512)", "data_parallel(batch_size=8)"),
        ("(224, 224, 3), batch_size=512", "(16, 16, 3), batch_size=8"),
        ("SimCLR(base,", "SimCLR(small_cnn((16, 16, 3)),"),
        ("epochs=100", "epochs=1"),
    ],
}

# Sections whose code the README gives for JAX only.
JAX_ONLY = {"Backends and multiple devices"}

# Per section: code run first, for names the README takes as given.
SETUP = {
    "Your own image folder": "write_digit_folder('my_images')\n",
    "SimCLR's augmentation, recipe and larger sources": (
        "from simclr_keras import DataGeneratorSimCLR, SimCLR, small_cnn\n"
        "write_digit_folder('train')\n"
    ),
    "keras-hub backbones and vision transformers": "images = digits_rgb(16)[0][:16]\n",
    "Training control": "x_labelled, y_labelled = digits_rgb(16)[0][:40], digits_rgb(16)[1][:40]\n",
    "Evaluation": (
        "backbone = simclr.base_model\n"
        "write_digit_folder('photos', n=60)\n"
        "TINY_FINETUNE = dict(head_epochs=1, finetune_epochs=1, batch_size=16, jit_compile=False)\n"
    ),
    "Backends and multiple devices": "from simclr_keras import SimCLR, small_cnn\n",
}


def tiny_code(heading, code):
    for old, new in SUBSTITUTIONS.get(heading, []):
        assert old in code, f"README section {heading!r} no longer holds {old!r}"
        code = code.replace(old, new)
    return SETUP.get(heading, "") + code


def test_every_python_block_is_run():
    headings = [h for h, _ in BLOCKS]
    assert headings[0] == "Quick start" and "Quick start" not in SUBSTITUTIONS
    assert set(SUBSTITUTIONS) | set(SETUP) <= set(headings)
    assert len(BLOCKS) >= 6


@pytest.fixture(scope="module")
def namespace(tmp_path_factory):
    folder = tmp_path_factory.mktemp("readme")
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        yield {"digits_rgb": digits_rgb, "write_digit_folder": write_digit_folder}
    finally:
        os.chdir(cwd)


@pytest.mark.parametrize("index", range(len(BLOCKS)), ids=[h for h, _ in BLOCKS])
def test_readme_block_runs(index, namespace):
    heading, code = BLOCKS[index]
    if heading in JAX_ONLY and keras.backend.backend() != "jax":
        pytest.skip(f"README section {heading!r} is for the JAX backend")
    if "keras_hub" in code:
        pytest.importorskip("keras_hub")  # the `hub` extra (CI installs it)
    exec(compile(tiny_code(heading, code), f"README: {heading}", "exec"), namespace)
    if heading == "Quick start":
        features = namespace["features"]
        assert features.shape[0] == 64 and np.all(np.isfinite(features))
        assert namespace["simclr"].base_model is namespace["base"]
    if heading == "Evaluation":
        assert os.path.isfile(os.path.join("eval", "comparison.md"))
        assert set(namespace["by_depth"]) == {"P1", "P2", "P3"}


def test_layout_tree_matches_the_folders():
    text = open(README, encoding="utf-8").read()
    tree = text.split("## Layout", 1)[1].split("```")[1]
    named = set(re.findall(r"^\s*([\w.]+/)", tree, re.M))
    assert {"simclr_keras/", "layers/", "data/", "tests/"} <= named
    package = os.path.join(ROOT, "simclr_keras")
    for folder in named:
        here = folder.rstrip("/")
        assert os.path.isdir(os.path.join(package, here)) or os.path.isdir(os.path.join(ROOT, here))
    subpackages = {
        name + "/"
        for name in os.listdir(package)
        if os.path.isfile(os.path.join(package, name, "__init__.py"))
    }
    assert subpackages <= named, f"not in the README layout: {subpackages - named}"
    modules = set(re.findall(r"\b(\w+\.py)\b", tree))
    top = {n for n in os.listdir(package) if n.endswith(".py") and not n.startswith("_")}
    assert top <= modules, f"not in the README layout: {top - modules}"
