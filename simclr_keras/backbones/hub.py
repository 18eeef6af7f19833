"""keras-hub backbones by preset: a preset name (downloaded once by keras-hub),
a handle (`kaggle://...`, `hf://...`) or a local preset folder (written by
`backbone.save_to_preset(folder)`).

keras-hub is an optional extra (`pip install "simclr-keras[hub]"`); nothing
here imports it before a preset is asked for. How a preset is told apart
from a zoo name or a saved model file: `simclr_keras_rules.backbone_names`.
"""

import json
import os

from simclr_keras_rules.backbone_names import INSTALL, is_preset_folder


def _keras_hub():
    try:
        import keras_hub
    except ImportError:
        return None
    return keras_hub


def load_preset(preset, name="backbone"):
    """`keras_hub.models.Backbone.from_preset(preset)`, with clear errors.

    Args:
        preset: A preset name, handle or local preset folder.
        name: The argument's name, for messages.

    Returns:
        A keras-hub `Backbone` (a `keras.Model`).
    """
    preset = os.fspath(preset)
    if is_preset_folder(preset):
        check_preset_files(preset, name)
    hub = _keras_hub()
    if hub is None:
        raise ValueError(
            f"`{name}`={preset!r} is a keras-hub preset, and keras-hub is not installed: {INSTALL}."
        )
    if os.path.isdir(preset):
        if not is_preset_folder(preset):
            raise ValueError(
                f"`{name}` must be a keras-hub preset folder (with a config.json, written by "
                f"`backbone.save_to_preset(folder)`); {preset} has none. Received: {name}={preset!r}"
            )
        return hub.models.Backbone.from_preset(preset)
    try:
        return hub.models.Backbone.from_preset(preset)
    except (ValueError, TypeError):
        raise  # keras-hub's own message (e.g. a preset that is not a backbone) is clear
    except Exception as error:  # no internet, proxy, certificate, quota...
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(
            f"Could not fetch the keras-hub preset {preset!r}: {reason[:300]}. Either run once "
            "on a machine with internet (keras-hub caches it under ~/.cache/kagglehub; copying "
            "that folder here works), or save it to a folder there with "
            f"`keras_hub.models.Backbone.from_preset({preset!r}).save_to_preset('FOLDER')` "
            f"and pass the folder: {name}='FOLDER' (CLI: --backbone FOLDER)."
        ) from None


def check_preset_files(folder, name="backbone"):
    """Raise a ValueError naming the file when a JSON file of the preset
    `folder` (`config.json`, `metadata.json`, ...) cannot be read.

    Example:
    >>> check_preset_files("my_preset")                 # doctest: +SKIP
    """
    for file in sorted(os.listdir(folder)):
        path = os.path.join(folder, file)
        if not file.endswith(".json") or not os.path.isfile(path):
            continue
        try:
            with open(path, encoding="utf-8") as fh:
                json.load(fh)
        except (OSError, ValueError) as error:
            raise ValueError(
                f"`{name}` is a keras-hub preset folder whose {path} is damaged "
                f"({type(error).__name__}: {error}); save the preset again with "
                f"`backbone.save_to_preset(folder)` or copy it anew. Received: {name}={folder!r}"
            ) from None


# keras-hub image converters scale [0, 255] images by `scale` then add
# `offset`; these are the simclr_keras preprocessing modes that do the same.
_MODES = {
    "unit": ([1 / 255.0] * 3, [0.0] * 3),
    "symmetric": ([1 / 127.5] * 3, [-1.0] * 3),
    "torch": (
        [1 / (255.0 * s) for s in (0.229, 0.224, 0.225)],
        [-m / s for m, s in zip((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))],
    ),
    "raw255": ([1.0] * 3, [0.0] * 3),
}


def _as_three(value, default):
    if value is None:
        return [default] * 3
    if isinstance(value, (int, float)):
        return [float(value)] * 3
    value = [float(v) for v in value]
    return value * 3 if len(value) == 1 else value


def preset_preprocessing(preset):
    """The preprocessing mode matching a preset's image converter, or None.

    Reads `scale` and `offset` of the converter keras-hub saved with the
    preset (`image_converter.json` in a folder, else
    `ImageConverter.from_preset`) and returns `"unit"`, `"symmetric"`,
    `"torch"` or `"raw255"` when they match one, else None (no converter,
    or one these modes cannot express).
    """
    config = None
    preset = os.fspath(preset)
    if os.path.isdir(preset):
        path = os.path.join(preset, "image_converter.json")
        if not os.path.isfile(path):
            return None
        try:
            with open(path) as fh:
                config = json.load(fh).get("config", {})
        except (OSError, ValueError):
            return None
    else:
        hub = _keras_hub()
        try:
            converter = hub.layers.ImageConverter.from_preset(preset)
            config = converter.get_config()
        except Exception:  # no converter in the preset, or it cannot be fetched
            return None
    scale = _as_three(config.get("scale"), 1.0)
    offset = _as_three(config.get("offset"), 0.0)
    for mode, (want_scale, want_offset) in _MODES.items():
        if len(scale) == 3 and len(offset) == 3:
            close = all(abs(a - b) <= 1e-3 * max(1.0, abs(b)) for a, b in zip(scale, want_scale))
            if close and all(abs(a - b) <= 1e-3 for a, b in zip(offset, want_offset)):
                return mode
    return None


def needs_keras_hub(path):
    """True when a saved `.keras` file refers to keras-hub classes (so
    `keras_hub` must be imported before loading it).
    """
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            return b"keras_hub" in archive.read("config.json")
    except (OSError, KeyError, zipfile.BadZipFile):
        return False


def import_for_loading(path):
    """Import keras-hub when the `.keras` file at `path` needs it (it
    registers its classes for loading); a clear error when it is missing.
    """
    if not needs_keras_hub(path):
        return
    if _keras_hub() is None:
        raise ValueError(
            f"{path} holds a keras-hub model, and keras-hub is not installed: {INSTALL}."
        )
