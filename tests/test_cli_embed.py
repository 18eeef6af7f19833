"""`simclr-keras embed`: one feature vector per image of a folder, in .npz, .csv
or .parquet, written atomically; bad files and bad arguments in one line.
"""

import csv
import importlib.util
import os

import keras
import numpy as np
import pytest
import testing
from digits_data import digits_rgb
from PIL import Image
from tiny_models import sequential_backbone

from simclr_keras.data import load_labelled_files
from simclr_keras.evaluation import extract_features
from simclr_keras_cli import embed as embed_command
from simclr_keras_cli import main as cli


def write_images(root, images, labels):
    """Each image as root/digit_LABEL/NNNN.png (root itself for label None)."""
    for i, (img, label) in enumerate(zip(images, labels)):
        folder = root if label is None else root / f"digit_{label}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(folder / f"{i:04d}.png")
    return root


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """10 digit images in two class folders, the backbone file and the
    expected `(relative paths, labels, features)`.
    """
    images, labels = digits_rgb(16)
    pick = [i for i, y in enumerate(labels) if y in (0, 1)][:10]
    root = write_images(tmp_path_factory.mktemp("embed") / "photos", images[pick], labels[pick])
    backbone = root.parent / "backbone.keras"
    sequential_backbone().save(backbone)
    files = sorted(str(p) for p in root.rglob("*.png"))
    x, _ = load_labelled_files(files, None, (16, 16), verbose=0)
    expected = extract_features(keras.saving.load_model(backbone), x, verbose=0)
    relative = [os.path.relpath(p, root).replace(os.sep, "/") for p in files]
    names = [p.split("/")[0] for p in relative]
    return root, backbone, (relative, names, expected)


def embed(folder, backbone, output, *extra):
    return cli.main(
        ["embed", str(folder), "--backbone", str(backbone), "--output", str(output), *extra]
    )


def one_usage_line(capsys):
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    line = err.strip().splitlines()[-1]
    assert line.startswith("simclr-keras embed: error: "), err
    return line


class TestCliEmbed(testing.TestCase):
    def test_npz_holds_features_paths_and_labels(self, photos, tmp_path, capsys, monkeypatch):
        root, backbone, (relative, names, expected) = photos
        monkeypatch.setattr(embed_command, "CHUNK_BATCHES", 1)  # chunks of 4: progress lines
        out = tmp_path / "features.npz"
        assert embed(root, backbone, out, "--batch-size", "4") == 0
        text = capsys.readouterr().out
        assert "Embedded 4/10 images" in text and "Embedded 10/10 images" in text
        assert f"Features saved to {out}" in text
        with np.load(out, allow_pickle=False) as data:
            assert sorted(data.files) == ["features", "labels", "paths"]
            features, paths, labels = data["features"], data["paths"], data["labels"]
        assert features.dtype == np.float32 and features.shape == (10, expected.shape[1])
        assert paths.shape == labels.shape == (10,)
        assert paths.tolist() == relative and labels.tolist() == names
        assert set(names) == {"digit_0", "digit_1"}
        self.assertAllClose(features, expected, rtol=1e-5, atol=1e-6)

    def test_csv_round_trip_and_unlabelled_folder(self, photos, tmp_path):
        root, backbone, (relative, names, expected) = photos
        out = tmp_path / "features.csv"
        assert embed(root, backbone, out) == 0
        with open(out, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
        d = expected.shape[1]
        assert rows[0] == ["path", "label"] + [f"f{j}" for j in range(d)]
        assert [r[0] for r in rows[1:]] == relative and [r[1] for r in rows[1:]] == names
        values = np.array([r[2:] for r in rows[1:]], dtype=np.float32)
        self.assertAllClose(values, expected, rtol=1e-5, atol=1e-6)

        flat = tmp_path / "flat"  # no sub-folders: no label column
        write_images(flat, digits_rgb(16)[0][:3], [None] * 3)
        assert embed(flat, backbone, tmp_path / "flat.csv") == 0
        with open(tmp_path / "flat.csv", newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
        assert rows[0][:2] == ["path", "f0"] and len(rows) == 4
        assert [r[0] for r in rows[1:]] == ["0000.png", "0001.png", "0002.png"]

    def test_parquet_table(self, photos, tmp_path):
        pd = pytest.importorskip("pandas")
        pytest.importorskip("pyarrow")
        root, backbone, (relative, names, expected) = photos
        out = tmp_path / "features.parquet"
        assert embed(root, backbone, out) == 0
        frame = pd.read_parquet(out)
        d = expected.shape[1]
        assert list(frame.columns) == ["path", "label"] + [f"f{j}" for j in range(d)]
        assert frame["path"].tolist() == relative and frame["label"].tolist() == names
        values = frame[[f"f{j}" for j in range(d)]].to_numpy()
        assert values.dtype == np.float32
        self.assertAllClose(values, expected, rtol=1e-5, atol=1e-6)

    def test_parquet_without_pyarrow_says_what_to_install(
        self, photos, tmp_path, capsys, monkeypatch
    ):
        root, backbone, _ = photos
        real = importlib.util.find_spec
        monkeypatch.setattr(
            importlib.util,
            "find_spec",
            lambda name, *a: None if name == "pyarrow" else real(name, *a),
        )
        out = tmp_path / "features.parquet"
        assert embed(root, backbone, out) == 2
        line = one_usage_line(capsys)
        assert "pip install pandas pyarrow" in line and f"Received: --output={out}" in line
        assert not out.exists()

    def test_bad_extension_is_one_usage_line(self, photos, capsys):
        root, backbone, _ = photos
        assert embed(root, backbone, "features.txt") == 2
        assert one_usage_line(capsys) == (
            "simclr-keras embed: error: `--output` must end in .npz, .csv or .parquet. "
            "Received: --output=features.txt"
        )

    def test_empty_folder_and_broken_backbone_are_usage_errors(self, photos, tmp_path, capsys):
        root, backbone, _ = photos
        empty = tmp_path / "empty"
        (empty / "sub").mkdir(parents=True)
        (empty / "notes.txt").write_text("no images here")
        assert embed(empty, backbone, tmp_path / "f.npz") == 2
        line = one_usage_line(capsys)
        assert (
            "`FOLDER` holds no image files" in line and f"Received: FOLDER={str(empty)!r}" in line
        )

        truncated = tmp_path / "truncated.keras"
        truncated.write_bytes(backbone.read_bytes()[:1000])
        for path, expected in (
            (truncated, "truncated or damaged"),
            (tmp_path / "no.keras", "does"),
        ):
            assert embed(root, path, tmp_path / "f.npz") == 2
            line = one_usage_line(capsys)
            assert "`--backbone`" in line and str(path) in line and expected in line
        assert not (tmp_path / "f.npz").exists()

    def test_broken_image_is_skipped_with_a_warning(self, photos, tmp_path):
        _, backbone, (_, _, expected) = photos
        folder = write_images(tmp_path / "photos", digits_rgb(16)[0][:3], [0, 0, 1])
        (folder / "digit_1" / "broken.png").write_bytes(b"not a PNG")
        with pytest.warns(
            UserWarning, match=r"Skipped 1 unreadable image file\(s\) of 4"
        ) as record:
            assert embed(folder, backbone, tmp_path / "f.npz") == 0
        assert any("broken.png" in str(w.message) for w in record)
        with np.load(tmp_path / "f.npz") as data:
            assert data["paths"].tolist() == [
                "digit_0/0000.png",
                "digit_0/0001.png",
                "digit_1/0002.png",
            ]
            assert data["labels"].tolist() == ["digit_0", "digit_0", "digit_1"]
            assert data["features"].shape == (3, expected.shape[1])

    def test_output_appears_only_complete(self, photos, tmp_path, monkeypatch):
        root, backbone, _ = photos
        out = tmp_path / "features.npz"
        out.write_bytes(b"previous run")

        def killed_midway(path, *args):
            with open(path, "wb") as f:
                f.write(b"PK half a file")
            raise KeyboardInterrupt

        monkeypatch.setitem(embed_command.WRITERS, ".npz", killed_midway)
        assert embed(root, backbone, out) == 130
        assert out.read_bytes() == b"previous run"  # the old file, untouched
        assert os.listdir(tmp_path) == ["features.npz"]  # no temporary file left
        fresh = tmp_path / "new" / "features.npz"
        assert embed(root, backbone, fresh) == 130
        assert not fresh.exists() and os.listdir(fresh.parent) == []

    def test_help_explains_every_option(self, capsys):
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["embed", "--help"])
        assert exit_info.value.code == 0
        text = capsys.readouterr().out
        for option in ("FOLDER", "--backbone", "--output", "--image-size", "--batch-size"):
            assert option in text
        assert ".parquet" in text
