"""The README's and the user guides' Python examples run, in one namespace.

Every ```python block of README.md and of the pages in `PAGES` runs, in
that order, in one namespace (a guide's examples may use the names an
earlier one made, as the guides say). The README's first block runs as
written up to sizes; the others get tiny stand-ins for sizes, epochs and
data (`SUBSTITUTIONS`, each of which must still match the page) and a few
lines of setup for the names they take as given (`SETUP`). A block that
repeats an earlier one word for word runs once. The README's layout tree
names the folders that exist.
"""

import os
import re

import keras
import numpy as np
import pytest
import testing
from digits_data import digits_rgb
from PIL import Image

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
README = os.path.join(ROOT, "README.md")

# The pages whose Python blocks run, in this order (README first).
PAGES = (
    "README.md",
    "docs/guides/pretrained.md",
    "docs/guides/other-backbones.md",
    "docs/guides/own-folder.md",
    "docs/guides/gsimclr.md",
    "docs/guides/training-control.md",
    "docs/guides/evaluation.md",
    "docs/guides/backends.md",
    "docs/guides/report.md",
)


def page_blocks(page):
    """`(section heading, code)` of every ```python block of `page`, in order."""
    with open(os.path.join(ROOT, page), encoding="utf-8") as f:
        lines = f.read().splitlines()
    blocks, heading, fence, code = [], None, None, []
    for line in lines:
        if fence is None:
            if line.startswith("```"):
                fence, code = line[3:].strip(), []
            elif re.match(r"#+ ", line):
                heading = line.lstrip("#").strip()
        elif line.startswith("```"):
            if fence == "python":
                blocks.append((heading, "\n".join(code) + "\n"))
            fence = None
        else:
            code.append(line)
    return blocks


def all_blocks():
    """`(page, heading, code)` of every block that runs, in running order."""
    return [(page, h, code) for page in PAGES for h, code in page_blocks(page)]


def write_digit_folder(folder, n=24):
    images, labels = digits_rgb(16)
    for i in range(n):
        sub = os.path.join(folder, f"digit_{labels[i]}")
        os.makedirs(sub, exist_ok=True)
        Image.fromarray(images[i]).save(os.path.join(sub, f"{i:03d}.png"))


BLOCKS = all_blocks()

VGG_QUICK_START = "Quick start: your own VGG16 or ResNet50, in Python"
EVALUATION_QUICK_START = "Quick start: evaluation at 5 / 20 / 100 % of the labels"
HUB_QUICK_START = "Quick start: any other backbone (keras-hub, ViT)"

# A tiny keras-hub ViT stands in for the preset (no download).
HUB = [
    ("images = load_digits_rgb(224)[0][:256]", "images = load_digits_rgb(16)[0][:16]"),
    (
        "base = keras_hub.models.Backbone.from_preset(preset)",
        "base = keras_hub.models.ViTBackbone((16, 16, 3), 4, 2, 2, 8, 16)",
    ),
    ("(224, 224, 3),\n    64,\n    [768, 128],", "(16, 16, 3),\n    8,\n    [8, 4],"),
    ("preprocessing=preset_preprocessing(preset)", "preprocessing='symmetric'"),
    ("epochs=10", "epochs=1"),
]

# Per section: (page text, tiny stand-in). Sizes, epochs and batch sizes
# shrink; the calls stay those of the page.
SUBSTITUTIONS = {
    VGG_QUICK_START: [
        ("load_digits_rgb(64)", "load_digits_rgb(32)"),
        ("(64, 64, 3), 32, [512, 128]", "(64, 64, 3), 8, [512, 128]"),
        ("(64, 64, 3)", "(32, 32, 3)"),
        ("simclr.fit(images[:512], epochs=3)", "simclr.fit(images[:16], epochs=1)"),
        ("extract_features(simclr, images)", "extract_features(simclr, images[:64])"),
    ],
    EVALUATION_QUICK_START: [
        ('load_split("photos/", (64, 64)', 'load_split("photos/", (32, 32)'),
        ("(64, 64, 3), 32, [512, 128]", "(64, 64, 3), 8, [512, 128]"),
        ("(64, 64, 3)", "(32, 32, 3)"),
        ("simclr.fit(x_train, epochs=3)", "simclr.fit(x_train, epochs=1)"),
        ("fractions=(0.05, 0.2, 1.0),", "fractions=(0.2, 1.0),\n    seeds=(0,),"),
        ("(f_train, y_train, f_test, y_test)", "(f_train, y_train, f_test, y_test, seeds=(0,))"),
    ],
    HUB_QUICK_START: HUB,
    "Any backbone: keras-hub and vision transformers": HUB,
    # EfficientNet-Lite0 as written, on fewer images.
    "In Python": [
        ("images[256:512], labels[256:512]", "images[256:316], labels[256:316]"),
        ("simclr.fit(images[:256], epochs=2,", "simclr.fit(images[:32], epochs=2,"),
    ],
    "From a folder": [
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
    "Guided batches": [
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
        # Later blocks use the folder guide's `simclr`: keep this one apart.
        ("simclr = SimCLR(", "simclr_recipe = SimCLR("),
        ("simclr.fit(train,", "simclr_recipe.fit(train,"),
    ],
    "Training control": [("epochs=30", "epochs=1")],
    "Evaluation": [
        ('load_split("photos/", (64, 64)', 'load_split("photos/", (32, 32)'),
        ("simclr.fit(x_train, epochs=50)", "simclr.fit(x_train, epochs=1)"),
        ("fractions=(0.05, 0.2, 1.0)", "fractions=(1.0,)"),
        ('output_dir="eval/",', 'output_dir="eval/", seeds=(0,), finetune_kwargs=TINY_FINETUNE,'),
    ],
    "Several devices (JAX)": [
        ("data_parallel(batch_size=512)", "data_parallel(batch_size=8)"),
        ("(224, 224, 3), batch_size=512", "(16, 16, 3), batch_size=8"),
        ("SimCLR(base,", "SimCLR(small_cnn((16, 16, 3)),"),
        ("epochs=100", "epochs=1"),
    ],
}

# Sections whose code the pages give for JAX only.
JAX_ONLY = {"Several devices (JAX)"}

# Sections that cannot run here, with the reason.
NOT_RUN = {"Several hosts (JAX)": "needs several hosts"}

# Per section: code run first, for names the page takes as given.
SETUP = {
    EVALUATION_QUICK_START: "write_digit_folder('photos', n=100)\n",
    "From a folder": "write_digit_folder('my_images')\n",
    "SimCLR's augmentation, recipe and larger sources": (
        "from simclr_keras import DataGeneratorSimCLR, SimCLR, small_cnn\n"
        "write_digit_folder('train')\n"
    ),
    "Training control": "x_labelled, y_labelled = digits_rgb(16)[0][:40], digits_rgb(16)[1][:40]\n",
    "Evaluation": (
        "backbone = simclr.base_model\n"
        "write_digit_folder('photos', n=60)\n"
        "TINY_FINETUNE = dict(epochs=1, views=1, batch_size=16, jit_compile=False)\n"
    ),
    "Several devices (JAX)": "from simclr_keras import SimCLR, small_cnn\n",
    "Where it is written": "import os\nos.makedirs('runs/photos', exist_ok=True)\n",
}


def tiny_code(heading, code):
    for old, new in SUBSTITUTIONS.get(heading, []):
        assert old in code, f"section {heading!r} no longer holds {old!r}"
        code = code.replace(old, new)
    return SETUP.get(heading, "") + code


@pytest.fixture(scope="module")
def namespace(tmp_path_factory):
    folder = tmp_path_factory.mktemp("readme")
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        yield {"digits_rgb": digits_rgb, "write_digit_folder": write_digit_folder, "np": np}
    finally:
        os.chdir(cwd)


class TestPageBlocks(testing.TestCase):
    def test_every_python_block_is_run(self):
        headings = [h for _, h, _ in BLOCKS]
        assert [h for h, _ in page_blocks("README.md")] == [
            VGG_QUICK_START,
            EVALUATION_QUICK_START,
            HUB_QUICK_START,
        ]
        assert set(SUBSTITUTIONS) | set(SETUP) | set(NOT_RUN) <= set(headings)
        assert len(set(headings)) == len(headings), "headings of run blocks must be unique"
        # Every page of docs/ with Python examples is in PAGES, so its blocks run.
        docs = os.path.join(ROOT, "docs")
        for folder, _, names in os.walk(docs):
            for name in names:
                page = os.path.relpath(os.path.join(folder, name), ROOT).replace(os.sep, "/")
                if name.endswith(".md") and page_blocks(page):
                    assert page in PAGES, f"{page} has Python blocks that no test runs"

    @pytest.mark.parametrize("index", range(len(BLOCKS)), ids=[f"{p}: {h}" for p, h, _ in BLOCKS])
    def test_block_runs(self, index, namespace):
        page, heading, code = BLOCKS[index]
        if heading in NOT_RUN:
            pytest.skip(f"{page}: {heading!r} {NOT_RUN[heading]}")
        if heading in JAX_ONLY and keras.backend.backend() != "jax":
            pytest.skip(f"{page}: {heading!r} is for the JAX backend")
        if "keras_hub" in code:
            pytest.importorskip("keras_hub")  # the `hub` extra (CI installs it)
        earlier = [c for _, _, c in BLOCKS[:index]]
        if code in earlier:
            return  # the same example as an earlier block, which ran
        exec(compile(tiny_code(heading, code), f"{page}: {heading}", "exec"), namespace)
        if heading == VGG_QUICK_START:
            assert namespace["features"].shape == (64, 512)
            assert np.all(np.isfinite(namespace["features"]))
            assert namespace["simclr"].base_model is namespace["base"]
            assert os.path.isfile("vgg16_simclr.keras")
        if heading == "Where it is written":
            assert os.path.isfile(os.path.join("runs", "photos", "report.html"))
        if heading == EVALUATION_QUICK_START:
            assert os.path.isfile(os.path.join("eval", "comparison.md"))
            assert set(namespace["results"]) == {0.05, 0.2, 1.0}
        if heading == "In Python":
            features = namespace["features"]
            assert features.shape[0] == 64 and np.all(np.isfinite(features))
            assert namespace["simclr"].base_model is namespace["base"]
        if heading == "Evaluation":
            assert os.path.isfile(os.path.join("eval", "comparison.md"))
            assert set(namespace["by_depth"]) == {"P1", "P2", "P3"}


class TestLayout(testing.TestCase):
    def test_layout_tree_matches_the_folders(self):
        text = open(README, encoding="utf-8").read()
        tree = text.split("## Layout", 1)[1].split("```")[1]
        named = set(re.findall(r"^\s*([\w.]+/)", tree, re.M))
        assert {"simclr_keras/", "layers/", "data/", "tests/"} <= named
        package = os.path.join(ROOT, "simclr_keras")
        for folder in named:
            here = folder.rstrip("/")
            assert os.path.isdir(os.path.join(package, here)) or os.path.isdir(
                os.path.join(ROOT, here)
            )
        subpackages = {
            name + "/"
            for name in os.listdir(package)
            if os.path.isfile(os.path.join(package, name, "__init__.py"))
        }
        assert subpackages <= named, f"not in the README layout: {subpackages - named}"
        modules = set(re.findall(r"\b(\w+\.py)\b", tree))
        top = {n for n in os.listdir(package) if n.endswith(".py") and not n.startswith("_")}
        assert top <= modules, f"not in the README layout: {top - modules}"
