"""`simclr-keras backbones`: the names `--backbone` takes, and how to name others."""

from simclr_keras.backbones import zoo
from simclr_keras_rules.backbone_names import BACKBONE_NAMES

WEIGHTS = {
    "small_cnn": "random init (trained from scratch)",
    "resnet18": "random init (trained from scratch)",
    "efficientnet_lite0": "ImageNet via `simclr-keras convert-weights efficientnet_lite0` "
    "(offline), or a .weights.h5 file",
    "resnet50": "--weights imagenet (downloaded once) or a .weights.h5 file",
    "vgg16": "--weights imagenet (downloaded once) or a .weights.h5 file",
    "mobilenet_v3_small": "--weights imagenet (downloaded once) or a .weights.h5 file",
}


def table():
    """The zoo as a Markdown table: name, input scaling, head, weights."""
    rows = [
        "| --backbone | input scaling | projection head | weights |",
        "|---|---|---|---|",
    ]
    for name in BACKBONE_NAMES:
        scaling = zoo.PREPROCESSING.get(name, "unit ([0, 1])")
        head = ",".join(str(d) for d in zoo.HEAD_DIMS.get(name, [512, 128]))
        rows.append(f"| {name} | {scaling} | {head} | {WEIGHTS.get(name, 'random init')} |")
    return "\n".join(rows)


def run(args):
    """Print the zoo and the other ways to name a backbone; returns 0."""
    print(table())
    print(
        "\nAlso accepted by --backbone:\n"
        "  - the path of a saved .keras model (e.g. a backbone.keras from an earlier run);\n"
        "  - a keras-hub preset (pip install keras-hub): a name such as resnet_50_imagenet or\n"
        "    vit_base_patch16_224_imagenet (--image-size must be the size it was built for,\n"
        "    224 for these), a handle (kaggle://..., hf://...) or a folder written by\n"
        "    backbone.save_to_preset(FOLDER). Preset names: keras_hub.models.Backbone.presets\n"
        "    or https://keras.io/keras_hub/presets/."
    )
    return 0
