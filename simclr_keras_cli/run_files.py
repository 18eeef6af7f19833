"""The files a `pretrain` run leaves for `evaluate` and for a rerun."""

import json

RUN_FILE = "run.json"  # data, split and input settings, read by evaluate
INITIAL_BACKBONE = "initial_backbone.keras"  # evaluate's default baseline
METRICS_FILE = "metrics.json"  # written last: its presence marks a finished run
BACKBONE_FILE = "backbone.keras"
MODEL_FILE = "simclr.keras"


def read_json(path):
    """The JSON object in `path`, or None when it is missing or unreadable."""
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def write_json(obj, path):
    """Write `obj` as indented JSON (values JSON cannot hold as strings),
    atomically: a killed run never leaves half a `metrics.json`, whose
    presence marks a finished run.
    """
    from simclr_keras._atomic import atomic_write

    def write(tmp):
        with open(tmp, "w") as fh:
            json.dump(obj, fh, indent=2, default=str)

    atomic_write(path, write)
