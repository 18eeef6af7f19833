"""How a backbone is named: a zoo name, a saved model file or a keras-hub
preset (a name, a handle or a folder), told apart without importing Keras.

The zoo's builders are in `simclr_keras.backbones.zoo`, keras-hub's loading
in `simclr_keras.backbones.hub`; `check_backbone_name` is the one check of
a name both the library and the `simclr-keras` command use.
"""

import ast
import functools
import glob
import importlib.util
import os

# The names `simclr_keras.backbones.zoo.BACKBONES` builds, sorted.
BACKBONE_NAMES = (
    "efficientnet_lite0",
    "mobilenet_v3_small",
    "resnet18",
    "resnet50",
    "small_cnn",
    "vgg16",
)
HANDLE_PREFIXES = ("kaggle://", "hf://", "gs://", "modelscope://", "file://")
INSTALL = 'pip install "simclr-keras[hub]" (or pip install keras-hub)'


def keras_hub_installed():
    """True when keras-hub can be imported (it is not imported here)."""
    return importlib.util.find_spec("keras_hub") is not None


def is_preset_folder(path):
    """True for a folder that holds a keras-hub preset (a `config.json`)."""
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, "config.json"))


@functools.lru_cache(maxsize=1)
def builtin_preset_names():
    """The preset names keras-hub ships, read from its preset files without
    importing it (a superset of `keras_hub.models.Backbone.presets`: they
    also name the presets of its tasks); None when keras-hub is not
    installed or its files are not where they were (then only keras-hub
    itself can tell).
    """
    spec = importlib.util.find_spec("keras_hub")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = list(spec.submodule_search_locations)[0]
    names = set()
    for path in glob.glob(os.path.join(root, "src", "models", "*", "*_presets.py")):
        try:
            with open(path, encoding="utf-8") as fh:
                tree = ast.parse(fh.read())
        except (OSError, SyntaxError, ValueError):
            return None
        for node in tree.body:
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, ast.Dict):
                names.update(
                    key.value
                    for key in node.value.keys
                    if isinstance(key, ast.Constant) and isinstance(key.value, str)
                )
    return frozenset(names) or None


def is_preset(name, import_hub=True):
    """True when `name` is a keras-hub preset: a folder, a handle or a known name.

    Args:
        name: A string or path.
        import_hub: Look the name up in keras-hub's own list (imports
            keras-hub, and so Keras). False: in `builtin_preset_names`
            instead; a name is then taken for a preset when that list
            cannot be read (True may still follow for a name keras-hub
            refuses).

    Example:
    >>> is_preset("resnet18")  # a zoo name, not a preset
    False
    """
    name = os.fspath(name) if isinstance(name, os.PathLike) else name
    if not isinstance(name, str):
        return False
    if is_preset_folder(name) or name.startswith(HANDLE_PREFIXES):
        return True
    if not keras_hub_installed():
        return False
    if not import_hub:
        names = builtin_preset_names()
        return names is None or name in names
    try:
        import keras_hub
    except ImportError:
        return False
    return name in keras_hub.models.Backbone.presets


def check_backbone_name(name_or_path, name="backbone", import_hub=True):
    """Raise unless `name_or_path` names a zoo backbone, an existing .keras/.h5
    file or a keras-hub preset (name, handle or folder).

    `import_hub=False` checks without importing keras-hub (see `is_preset`).

    Example:
    >>> check_backbone_name("resnet18")
    """
    if name_or_path in BACKBONE_NAMES:
        return
    if str(name_or_path).endswith((".keras", ".h5")) and os.path.isfile(name_or_path):
        return
    if is_preset(name_or_path, import_hub=import_hub):
        return
    if os.path.isdir(name_or_path):
        raise ValueError(
            f"`{name}` is a folder but not a keras-hub preset: it has no config.json (a preset "
            "folder is written by `backbone.save_to_preset(folder)`). "
            f"Received: {name}={name_or_path!r}"
        )
    if str(name_or_path).endswith((".keras", ".h5")):
        what = "does not exist" if not os.path.exists(name_or_path) else "is not a file"
        raise ValueError(
            f"`{name}` names a saved model file that {what}. Received: {name}={name_or_path!r}"
        )
    missing_hub = (
        f" keras-hub is not installed, so keras-hub preset names are unknown here: if "
        f"{name_or_path!r} is one, {INSTALL}."
        if not keras_hub_installed()
        else ""
    )
    raise ValueError(
        f"`{name}` must be one of {list(BACKBONE_NAMES)}, the path of a saved .keras model, "
        "or a keras-hub preset: a name such as 'resnet_50_imagenet' or "
        "'vit_base_patch16_224_imagenet', a handle ('kaggle://...', 'hf://...') or a "
        f"preset folder. Received: {name}={name_or_path!r}.{missing_hub}"
    )
