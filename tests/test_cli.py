"""The `simclr-keras` command, run as a user would, on a tiny image folder."""

import json
import os
import subprocess
import sys
from importlib import metadata

import numpy as np
import pytest
from digits_data import digits_rgb
from PIL import Image

from simclr_keras import cli


def write_folder(root, images, labels, classes=(0, 1)):
    for i, (img, label) in enumerate(zip(images, labels)):
        if label in classes:
            folder = root / f"digit_{label}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(folder / f"{i:04d}.png")
    return root


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    images, labels = digits_rgb(16)
    root = tmp_path_factory.mktemp("cli_data")
    write_folder(root / "train", images[:160], labels[:160])
    write_folder(root / "test", images[160:320], labels[160:320])
    return root


def run_cli(*args, cwd=None):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run(
        [sys.executable, "-m", "simclr_keras.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=600,
    )


def test_console_script_points_at_main():
    scripts = {ep.name: ep for ep in metadata.entry_points(group="console_scripts")}
    assert scripts["simclr-keras"].load() is cli.main


def test_help_explains_every_option(capsys):
    for command in ("pretrain", "evaluate", "demo"):
        with pytest.raises(SystemExit) as exit_info:
            cli.main([command, "--help"])
        assert exit_info.value.code == 0
        text = capsys.readouterr().out
        parser_actions = {
            "pretrain": [
                "--backbone",
                "--image-size",
                "--epochs",
                "--batch-size",
                "--output",
                "--pseudo-label-clusters",
            ],
            "evaluate": ["--backbone", "--baseline", "--train-dir", "--test-dir", "--fractions"],
            "demo": ["--output", "--epochs"],
        }[command]
        for option in parser_actions:
            assert option in text


def test_pretrain_resume_and_evaluate(folders, tmp_path):
    out = tmp_path / "run"
    args = [
        "pretrain",
        str(folders / "train"),
        "--backbone",
        "small_cnn",
        "--image-size",
        "16",
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--output",
        str(out),
        "--feat-dims",
        "32,16",
    ]
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr[-3000:]
    for name in (
        "simclr.keras",
        "backbone.keras",
        "training_curves.png",
        "augmentations.png",
        "tsne.png",
        "metrics.json",
    ):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["history"]["loss"]) == 2
    assert "knn_acc" in metrics["history"]
    for png in ("training_curves.png", "augmentations.png", "tsne.png"):
        with Image.open(out / png) as img:
            assert min(img.size) > 100

    again = run_cli(*args)  # a finished run is resumed, not trained again
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Epoch 1/2" not in again.stdout
    assert len(json.loads((out / "metrics.json").read_text())["history"]["loss"]) == 2

    table_dir = tmp_path / "eval"
    evaluation = run_cli(
        "evaluate",
        "--backbone",
        str(out / "backbone.keras"),
        "--train-dir",
        str(folders / "train"),
        "--test-dir",
        str(folders / "test"),
        "--classifiers",
        "linear",
        "--fractions",
        "0.2,1",
        "--seeds",
        "0,1",
        "--output",
        str(table_dir),
    )
    assert evaluation.returncode == 0, evaluation.stderr[-3000:]
    assert "| fraction | classifier | baseline | SimCLR |" in evaluation.stdout
    result = json.loads((table_dir / "comparison.json").read_text())
    accuracies = [
        row[name]["accuracy"]["mean"] for row in result["rows"] for name in ("baseline", "SimCLR")
    ]
    assert len(accuracies) == 4 and all(0.0 <= a <= 1.0 for a in accuracies)
    # Two well-separated digit classes: any sensible feature gets most right.
    assert np.mean(accuracies) > 0.6


def test_pretrain_reports_a_missing_folder(tmp_path):
    result = run_cli("pretrain", str(tmp_path / "nope"), "--output", str(tmp_path / "o"))
    assert result.returncode != 0
    assert "nope" in result.stderr
