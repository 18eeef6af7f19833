"""Imports: eager and predictable; no scikit-learn or matplotlib to build or
load a model; a user's `python -m myproj.train` loads a saved backbone.
"""

import os
import subprocess
import sys
import textwrap

import testing

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_python(args, cwd, extra_path=()):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*extra_path, ROOT, env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300
    )


class TestImports(testing.TestCase):
    def test_building_and_loading_a_model_needs_neither_sklearn_nor_matplotlib(self, tmp_path):
        # `import keras` itself may load both (its wrappers and visualisation do,
        # when installed), so the check is that nothing here *needs* them: with
        # both made unimportable, import, build, save, export and load all work.
        script = textwrap.dedent(
            """
        import sys
        sys.modules["sklearn"] = None
        sys.modules["matplotlib"] = None
        import keras
        import simclr_keras
        from simclr_keras import SimCLR, small_cnn

        simclr = SimCLR(small_cnn((8, 8, 3), widths=(4, 4, 4)), (8, 8, 3), batch_size=2,
                        feat_dims_ph=[8, 4], preprocessing="symmetric")
        simclr.save("simclr.keras")
        simclr.export_backbone("backbone.keras")
        keras.saving.load_model("simclr.keras")
        keras.saving.load_model("backbone.keras")
        print("ok")
        """
        )
        result = run_python(["-c", script], cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
        assert result.stdout.strip().endswith("ok")

    def test_python_m_user_module_loads_a_saved_backbone(self, tmp_path):
        """`python -m myproj.train`, whose package imports simclr_keras, loads a
        backbone exported with its input scaling (a registered simclr_keras layer).
        """
        export = textwrap.dedent(
            """
        from simclr_keras import SimCLR, small_cnn

        simclr = SimCLR(small_cnn((8, 8, 3), widths=(4, 4, 4)), (8, 8, 3), batch_size=2,
                        feat_dims_ph=[8, 4], preprocessing="symmetric")
        simclr.export_backbone("backbone.keras")
        """
        )
        assert run_python(["-c", export], cwd=tmp_path).returncode == 0
        package = tmp_path / "src" / "myproj"
        package.mkdir(parents=True)
        (package / "__init__.py").write_text("import simclr_keras  # noqa: F401\n")
        (package / "train.py").write_text(
            textwrap.dedent(
                """
            import keras

            model = keras.saving.load_model("backbone.keras")
            print(type(model.layers[1]).__name__)
            """
            )
        )
        result = run_python(
            ["-m", "myproj.train"], cwd=tmp_path, extra_path=[str(tmp_path / "src")]
        )
        assert result.returncode == 0, result.stderr[-3000:]
        assert result.stdout.strip().endswith("ImagePreprocess")
