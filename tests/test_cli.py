"""The `simclr-keras` command, run as a user would, on a tiny image folder."""

import importlib
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import testing
from digits_data import digits_rgb
from PIL import Image

from simclr_keras_cli import main as cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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


def default_sigint():
    """In a child before it runs: SIGINT handled by default (Ctrl-C ends it)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_cli(*args, cwd=None):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run(
        [sys.executable, "-m", "simclr_keras_cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=600,
    )


def keras_free_error(argv, cwd):
    """`simclr-keras ARGV` in a child with `-X importtime`: its exit code, its
    stderr without the import lines, and the backend modules it imported.
    """
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "simclr_keras_cli", *argv],
        capture_output=True,
        text=True,
        cwd=cwd,
    )
    lines = result.stderr.splitlines()
    imported = [
        line.rsplit("|", 1)[-1].strip() for line in lines if line.startswith("import time:")
    ]
    backends = [m for m in imported if m.split(".")[0] in ("keras", "tensorflow", "jax", "torch")]
    message = "\n".join(line for line in lines if not line.startswith("import time:"))
    return result.returncode, message, backends


class TestErrorsBeforeKeras(testing.TestCase):
    @pytest.mark.parametrize(
        "argv",
        [["pretrain", "no_such_folder"], ["evaluate", "--backbone", "no_such.keras"]],
    )
    def test_a_missing_path_is_reported_before_keras_loads(self, argv, tmp_path):
        result = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "simclr_keras_cli", *argv],
            capture_output=True,
            text=True,
            cwd=tmp_path,
        )
        assert result.returncode == 2 and argv[-1] in result.stderr
        imported = [line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()]
        assert not [
            m for m in imported if m.split(".")[0] in ("keras", "tensorflow", "jax", "torch")
        ]

    @pytest.mark.parametrize(
        "argv, expected",
        [
            (["pretrain", "data", "--backbone", "resnet99"], "Received: --backbone='resnet99'"),
            (["pretrain", "data", "--guard", "bogus"], "Received: --guard='bogus'"),
            (
                ["pretrain", "data", "--recipe", "pretrained", "--unfrozen-layers", "2"],
                "`--unfrozen-layers` applies to the scratch recipe only",
            ),
            (
                ["pretrain", "data", "--weights", "imagenet", "--unfrozen-layers", "2"],
                "--recipe auto chose pretrained",
            ),
            (["pretrain", "data", "--preprocessing", "bogus"], "Received: --preprocessing='bogus'"),
            (["pretrain", "data", "--backbone", "missing.keras"], "does not exist"),
            (["pretrain", "data", "--output", "b.keras"], "`--output` must be a folder"),
            (["evaluate", "--backbone", "b.keras", "--train-dir", "data"], "go together"),
            (["evaluate", "--backbone", "b.keras", "--baseline", "no.keras"], "`--baseline` must"),
            (
                ["evaluate", "--backbone", "b.keras", "--preprocessing", "x"],
                "`--preprocessing` must",
            ),
            (["embed", "data", "--backbone", "b.keras", "--output", "f.txt"], "must end in .npz"),
        ],
    )
    def test_argument_rule_errors_are_reported_before_keras_loads(self, argv, expected, tmp_path):
        """The library's lists and rules (zoo names, keras-hub preset names,
        guard scores, recipes, input scalings) refuse a bad flag with exit 2
        before Keras, keras-hub or a backend is imported.
        """
        (tmp_path / "data").mkdir()
        (tmp_path / "b.keras").write_bytes(b"")
        code, message, backends = keras_free_error(argv, tmp_path)
        assert code == 2 and expected in message, message
        assert message.startswith(f"simclr-keras {argv[0]}: error: ") and "Traceback" not in message
        assert not backends, backends

    def test_the_errors_before_keras_are_the_library_messages(self, tmp_path):
        """The early checks use the library's own rules: the same message as the
        library raises after Keras is imported.
        """
        from simclr_keras.backbones import zoo
        from simclr_keras.training.pretrained import recipe_arguments

        with pytest.raises(ValueError) as library:
            zoo.get_backbone("resnet99", (32, 32, 3))
        (tmp_path / "data").mkdir()
        code, message, _ = keras_free_error(
            ["pretrain", "data", "--backbone", "resnet99"], tmp_path
        )
        assert code == 2
        assert message.split("must be", 1)[1] == str(library.value).split("must be", 1)[1].replace(
            "backbone=", "--backbone="
        )
        with pytest.raises(ValueError, match="applies to the scratch recipe only"):
            recipe_arguments("pretrained", num_of_unfrozen_layers=2)

    def test_a_keras_hub_preset_name_passes_the_check_before_keras(self, tmp_path):
        """A keras-hub preset name is told from an unknown name without importing
        keras-hub: the name is read from its preset files (a superset of
        `Backbone.presets`, checked here), so the run goes on to import Keras.
        """
        keras_hub = pytest.importorskip("keras_hub")
        from simclr_keras_rules.backbone_names import builtin_preset_names, check_backbone_name

        names = builtin_preset_names()
        assert names is not None and set(keras_hub.models.Backbone.presets) <= names
        for name in ("resnet_50_imagenet", "vit_base_patch16_224_imagenet", "kaggle://a/b/c/d"):
            check_backbone_name(name, "--backbone", import_hub=False)
        with pytest.raises(ValueError, match="Received: --backbone='resnet99'"):
            check_backbone_name("resnet99", "--backbone", import_hub=False)


class TestRuns(testing.TestCase):
    def test_one_folder_story_interrupt_resume_finish_evaluate(self, folders, tmp_path):
        """split -> pretrain (Ctrl-C, resume, finished) -> evaluate, on ONE labelled folder."""
        out = tmp_path / "run"
        common = [
            "pretrain",
            str(folders / "train"),
            "--test-split",
            "0.25",
            "--backbone",
            "small_cnn",
            "--image-size",
            "16",
            "--batch-size",
            "16",
            "--output",
            str(out),
            "--feat-dims",
            "32,16",
        ]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        first = subprocess.Popen(
            [sys.executable, "-m", "simclr_keras_cli", *common, "--epochs", "200"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            # A process started in the background (`nohup`, `cmd &`) inherits
            # SIGINT ignored; the child must get the default handler back, as a
            # foreground command has, or the Ctrl-C below never reaches it.
            preexec_fn=default_sigint,
        )
        state = out / "simclr_checkpoint" / "state.json"
        deadline = time.time() + 600  # generous: a loaded 2-core machine
        try:
            while time.time() < deadline and first.poll() is None and not state.exists():
                time.sleep(0.1)
            assert state.exists(), "no checkpoint within 600 s"
            first.send_signal(signal.SIGINT)
            stdout, stderr = first.communicate(timeout=120)
        finally:
            first.kill()
        assert first.returncode == 130, stderr[-3000:]
        done = json.loads(state.read_text())["epoch"]
        assert f"stopped at epoch {done}; rerun to resume" in stdout
        assert "Traceback" not in stderr and "cudart" not in stderr
        assert (out / "initial_backbone.keras").is_file() and not (out / "metrics.json").exists()

        args = [*common, "--epochs", str(done + 1)]
        resumed = run_cli(*args)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        assert f"resuming from epoch {done} of {done + 1}" in resumed.stdout
        assert "24 training images (8 held out" in resumed.stdout
        for name in ("backbone.keras", "training_curves.png", "tsne.png", "run.json"):
            assert (out / name).is_file(), name
        assert not (out / "simclr_checkpoint").exists()  # pruned at the end
        metrics_text = (out / "metrics.json").read_text()
        metrics = json.loads(metrics_text)
        assert len(metrics["history"]["loss"]) == done + 1 and metrics["epochs_done"] == done + 1
        assert "guard_linear_5pct" in metrics["history"]

        again = run_cli(*args)  # finished: says so, trains nothing, keeps metrics.json
        assert again.returncode == 0, again.stderr[-3000:]
        assert "is a finished run" in again.stdout and "Epoch 1/" not in again.stdout
        assert (out / "metrics.json").read_text() == metrics_text

        table_dir = tmp_path / "eval"
        evaluation = run_cli(
            "evaluate",
            "--backbone",
            str(out / "backbone.keras"),
            "--fractions",
            "0.2,1",
            "--seeds",
            "0,1",
            "--output",
            str(table_dir),
        )
        assert evaluation.returncode == 0, evaluation.stderr[-3000:]
        text = evaluation.stdout
        assert "24 train + 8 test images, 2 classes" in text  # the pretrain run's split
        assert "the backbone before pretraining" in text
        assert text.count("  linear 20% seed") == 4 and text.count("  linear 100% seed 0") == 2
        assert "| fraction | classifier | baseline | SimCLR |" in text
        result = json.loads((table_dir / "comparison.json").read_text())
        accuracies = [
            row[name]["accuracy"]["mean"]
            for row in result["rows"]
            for name in ("baseline", "SimCLR")
        ]
        # Two well-separated digit classes: any sensible feature gets most right.
        assert len(accuracies) == 4 and np.mean(accuracies) > 0.6

    def test_evaluate_fine_tunes_a_start_once(self, folders, tmp_path, capsys):
        """`--finetune-cache`: a classifier already fine-tuned from the same
        weights, images and settings is read back, in this run and the next.
        """
        from tiny_models import sequential_backbone

        start = tmp_path / "start.keras"
        sequential_backbone().save(start)
        args = ["evaluate", "--backbone", str(start), "--baseline", str(start)]
        args += ["--train-dir", str(folders / "train"), "--test-dir", str(folders / "test")]
        args += ["--classifiers", "finetune", "--fractions", "1", "--seeds", "0"]
        args += ["--finetune-epochs", "1", "--output", str(tmp_path / "eval")]
        cache = tmp_path / "eval" / "finetune_cache"  # the default: inside --output
        assert cli.main(args) == 0
        first = capsys.readouterr().out
        # the two columns hold the same weights: the second is read back
        assert first.count("finetune 100% seed 0") == 2 and first.count(f"cached: {cache}") == 1
        assert len(os.listdir(cache)) == 1
        assert cli.main(args) == 0
        assert capsys.readouterr().out.count(f"cached: {cache}") == 2

        shared = tmp_path / "shared"
        assert cli.main([*args, "--finetune-cache", str(shared)]) == 0
        assert capsys.readouterr().out.count("cached") == 1 and len(os.listdir(shared)) == 1
        assert cli.main([*args, "--finetune-cache", "none", "--output", str(tmp_path / "e2")]) == 0
        assert "cached" not in capsys.readouterr().out
        assert not (tmp_path / "e2" / "finetune_cache").exists()
        assert cli.main([*args, "--finetune-cache", str(start)]) == 2
        err = capsys.readouterr().err
        assert "`--finetune-cache` must be a folder" in err and "start.keras" in err
        # Without --output: `eval_start` beside the backbone file, the cache inside it.
        assert args[-2] == "--output"
        assert cli.main(args[:-2]) == 0
        assert capsys.readouterr().out.count(f"cached: {tmp_path / 'eval_start'}") == 1
        assert (tmp_path / "eval_start" / "comparison.json").is_file()
        assert len(os.listdir(tmp_path / "eval_start" / "finetune_cache")) == 1

    def test_pretrained_backbone_file_gets_the_recipe_and_the_guard(
        self, folders, tmp_path, capsys
    ):
        """A .keras backbone (pretrained weights) -> recipe pretrained, guard, best and last exported."""
        from simclr_keras import small_cnn

        source = tmp_path / "pretrained.keras"
        small_cnn((16, 16, 3), widths=(8, 8, 16)).save(source)
        out = tmp_path / "run"
        code = cli.main(
            [
                "pretrain",
                str(folders / "train"),
                "--backbone",
                str(source),
                "--test-split",
                "0.25",
                "--epochs",
                "2",
                "--batch-size",
                "16",
                "--image-size",
                "16",
                "--feat-dims",
                "16,8",
                "--output",
                str(out),
            ]
        )
        text = capsys.readouterr().out
        assert code == 0, text[-3000:]
        assert "Recipe: pretrained (pretrained weights given)" in text
        assert "Augmentation: mild" in text
        assert "guard: start: linear probe 5 %" in text and "GradualUnfreeze" not in text
        assert text.count("Guard (") == 1  # once, in the final message
        final = text[text.rindex("Guard (") :]
        assert "linear probes at 5 % / 20 % / 100 %" in final and "start " in final
        held = re.search(r"The guard holds out (\d+) of the (\d+) training images", text)
        assert held and 0 < int(held[1]) < int(held[2])
        assert f"scored on {held[1]} that SimCLR did not train on" in final
        assert "No candidate was at least as good" in final or "result " in final
        for name in ("backbone.keras", "backbone_last.keras", "initial_backbone.keras"):
            assert (out / name).is_file(), name
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["recipe"] == "pretrained" and set(metrics["guard"]["scores"]) == {
            "0",
            "1",
            "2",
        }
        assert "guard_linear_100pct" in metrics["history"]
        budgets = metrics["guard"]["budgets"]
        assert set(budgets) == {"start", "result", "last"} and set(budgets["start"]) == {
            "0.05",
            "0.2",
            "1.0",
        }
        code = cli.main(
            [
                "pretrain",
                str(folders / "train"),
                "--backbone",
                str(source),
                "--unfrozen-layers",
                "2",
                "--output",
                str(tmp_path / "o2"),
            ]
        )
        err = capsys.readouterr().err
        assert code == 2 and "`--unfrozen-layers` applies to the scratch recipe only" in err
        assert (
            "--unfrozen-layers=2 with --recipe='pretrained'" in err and "--recipe auto chose" in err
        )


class TestUsageErrors(testing.TestCase):
    def test_argument_and_folder_errors_come_first(self, folders, tmp_path, capsys):
        out = tmp_path / "o"
        code = cli.main(
            ["pretrain", str(folders / "train"), "--backbone", "vgg17", "--output", str(out)]
        )
        err = capsys.readouterr()
        assert code == 2 and "--backbone" in err.err and "vgg17" in err.err
        assert "Found" not in err.out and not out.exists()  # nothing decoded, nothing written
        wrapper = tmp_path / "archive"
        wrapper.mkdir()
        os.symlink(folders / "train", wrapper / "photos")
        code = cli.main(["pretrain", str(wrapper), "--test-split", "0.2", "--output", str(out)])
        assert code == 2 and f"pass {str(wrapper / 'photos')!r} instead" in capsys.readouterr().err
        other = tmp_path / "other_test"
        images, labels = digits_rgb(16)
        write_folder(other, images[:100], labels[:100], classes=(0, 2))
        fake = tmp_path / "backbone.keras"
        fake.write_text("not loaded before the folders are checked")
        code = cli.main(
            [
                "evaluate",
                "--backbone",
                str(fake),
                "--train-dir",
                str(folders / "train"),
                "--test-dir",
                str(other),
                "--output",
                str(out),
            ]
        )
        err = capsys.readouterr().err
        assert code == 2 and "Only in train: ['digit_1']; only in test: ['digit_2']" in err

    def test_pretrain_reports_a_missing_folder(self, tmp_path):
        result = run_cli("pretrain", str(tmp_path / "nope"), "--output", str(tmp_path / "o"))
        assert result.returncode == 2
        assert "nope" in result.stderr and "Traceback" not in result.stderr
        assert not (tmp_path / "o").exists()

    @pytest.mark.parametrize("error", [ValueError, RuntimeError])
    def test_a_crash_inside_fit_keeps_its_traceback(self, folders, tmp_path, monkeypatch, error):
        """Only usage errors become one line and exit 2: a bug inside `fit` (even
        a ValueError) propagates with its traceback.
        """
        from simclr_keras.model import SimCLR

        def broken_fit(self, *args, **kwargs):
            raise error("a bug inside fit")

        monkeypatch.setattr(SimCLR, "fit", broken_fit)
        argv = ["pretrain", str(folders / "train"), "--image-size", "16", "--batch-size", "16"]
        with pytest.raises(error, match="a bug inside fit"):
            cli.main([*argv, "--feat-dims", "32,16", "--output", str(tmp_path / "run")])

    def test_a_guard_without_enough_labelled_images_is_a_usage_error(self, tmp_path, capsys):
        images, labels = digits_rgb(16)
        one = np.flatnonzero(labels == 1)[:1]
        zeros = np.flatnonzero(labels == 0)[:20]
        pick = np.r_[zeros, one]
        write_folder(tmp_path / "data", images[pick], labels[pick])
        argv = ["pretrain", str(tmp_path / "data"), "--image-size", "16", "--batch-size", "8"]
        code = cli.main([*argv, "--feat-dims", "16,8", "--output", str(tmp_path / "run")])
        err = capsys.readouterr().err
        assert code == 2 and "`--guard auto` cannot score these images" in err
        assert "needs at least 2 images" in err and "Traceback" not in err


class TestCommandLine(testing.TestCase):
    def test_console_script_points_at_main(self):
        with open(os.path.join(ROOT, "pyproject.toml")) as fh:
            target = re.search(r'^simclr-keras = "([^"]+)"$', fh.read(), re.M).group(1)
        module, _, name = target.partition(":")
        assert getattr(importlib.import_module(module), name) is cli.main
        # The entry module is outside the simclr_keras package, so `--help` need
        # not import it (importing simclr_keras imports everything, Keras too).
        assert not module.startswith("simclr_keras.")

    def test_help_explains_every_option(self, capsys):
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
                "evaluate": [
                    "--backbone",
                    "--baseline",
                    "--train-dir",
                    "--test-dir",
                    "--fractions",
                ],
                "demo": ["--output", "--epochs"],
            }[command]
            for option in parser_actions:
                assert option in text

    def test_help_imports_no_backend_and_escapes_percent(self):
        result = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "simclr_keras_cli", "demo", "--help"],
            capture_output=True,
            text=True,
        )
        imported = [line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()]
        assert result.returncode == 0 and "argparse" in imported
        assert not [
            m for m in imported if m.split(".")[0] in ("keras", "tensorflow", "jax", "torch")
        ]
        assert "5/20/100% of the labels" in result.stdout and "%%" not in result.stdout

    def test_a_closed_pipe_ends_quietly(self):
        """`simclr-keras backbones | head`: the reader leaves early; no traceback."""
        child = subprocess.Popen(
            [sys.executable, "-m", "simclr_keras_cli", "backbones"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        child.stdout.close()  # the reader has gone before the first line
        err = child.stderr.read()
        assert child.wait(timeout=600) == 141, err
        assert "Traceback" not in err and "BrokenPipe" not in err and "Exception ignored" not in err

    def test_version_and_the_backbone_list(self, capsys):
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["--version"])
        assert exit_info.value.code == 0
        assert re.fullmatch(r"simclr-keras \S+ \(keras \S+\)\n", capsys.readouterr().out)
        assert cli.main(["backbones"]) == 0
        text = capsys.readouterr().out
        from simclr_keras_rules.backbone_names import BACKBONE_NAMES

        for name in BACKBONE_NAMES:
            assert f"| {name} |" in text
        assert "| efficientnet_lite0 | efficientnet_lite | 1280,128 |" in text
        assert "keras-hub preset" in text and ".keras model" in text
