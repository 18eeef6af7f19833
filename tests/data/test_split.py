"""Tests of simclr_keras.data.split, .folders and .loading: stratified reproducible split,
folder checks, decoding the split."""

import os

import numpy as np
import pytest
import testing
from PIL import Image

from simclr_keras.data import DataGeneratorSimCLR, load_split, split_directory
from simclr_keras.data.folders import check_same_classes, nested_class_root, scan_class_folders


def _folder(root, counts):
    for name, n in counts.items():
        os.makedirs(root / name, exist_ok=True)
        for i in range(n):
            Image.new("RGB", (6, 6), (i * 20 % 255, 0, 0)).save(root / name / f"{i}.png")
    return root


class TestSplitDirectory(testing.TestCase):
    def test_split_is_stratified_reproducible_and_disjoint(self, tmp_path):
        root = _folder(tmp_path / "photos", {"cat": 10, "dog": 21, "owl": 2})
        a = split_directory(root, test_fraction=0.2, seed=0)
        assert a.class_names == ["cat", "dog", "owl"]
        # floor(0.2 n + 0.5), at least one and at most n - 1: 2, 4, 1.
        assert np.bincount(a.test_labels).tolist() == [2, 4, 1]
        assert np.bincount(a.train_labels).tolist() == [8, 17, 1]
        assert not set(a.train_paths) & set(a.test_paths)
        assert len(a.train_paths) + len(a.test_paths) == 33
        for paths, labels in ((a.train_paths, a.train_labels), (a.test_paths, a.test_labels)):
            assert [a.class_names[y] for y in labels] == [
                os.path.basename(os.path.dirname(p)) for p in paths
            ]
        b = split_directory(root, test_fraction=0.2, seed=0)
        assert a.test_paths == b.test_paths
        c = split_directory(root, test_fraction=0.2, seed=1)
        assert a.test_paths != c.test_paths
        gen = DataGeneratorSimCLR.from_files(a.train_paths, (4, 4), 2, labels=a.train_labels)
        assert gen.num_images == 26
        (x_tr, y_tr), (x_te, y_te) = load_split(root, (4, 4), 0.2, 0, verbose=0)
        assert x_tr.shape == (26, 4, 4, 3) and x_te.dtype == np.uint8
        assert y_te.tolist() == a.test_labels.tolist()
        with pytest.raises(ValueError, match="test_fraction"):
            split_directory(root, test_fraction=1.0)


class TestClassFolders(testing.TestCase):
    def test_wrapping_folder_is_named_and_single_class_rejected(self, tmp_path):
        _folder(tmp_path / "archive" / "photos", {"cat": 2, "dog": 2})
        assert nested_class_root(tmp_path / "archive") == str(tmp_path / "archive" / "photos")
        assert nested_class_root(tmp_path / "archive" / "photos") is None
        with pytest.raises(ValueError, match="pass .*photos' instead"):
            split_directory(tmp_path / "archive")
        with pytest.warns(UserWarning, match="pass .*photos"):
            DataGeneratorSimCLR.from_directory(tmp_path / "archive", (4, 4), 2)
        _folder(tmp_path / "one", {"cat": 3})
        with pytest.raises(ValueError, match="--train-dir.*one class"):
            scan_class_folders(tmp_path / "one", "--train-dir")

    def test_class_names_must_match(self):
        check_same_classes(["a", "b"], ["a", "b"])
        with pytest.raises(ValueError, match=r"Only in train: \['c'\]; only in test: \['d'\]"):
            check_same_classes(["a", "b", "c"], ["a", "b", "d"])
