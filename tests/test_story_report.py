"""The story tables of docs/results/pretrained-story.md are what
`examples/cli_story.py --report` makes of the raw results, and the report's
arithmetic (each run against its own start, the mean and the lowest run)
holds on run folders written here.
"""

import importlib.util
import json
import os

import numpy as np
import pytest
import testing

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results", "cli_story")


@pytest.fixture(scope="module")
def story():
    spec = importlib.util.spec_from_file_location(
        "cli_story", os.path.join(ROOT, "examples", "cli_story.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _row(classifier, fraction, baseline, simclr):
    def column(values):
        return {"accuracy": {"mean": float(np.mean(values)), "values": list(values)}}

    return {
        "fraction": fraction,
        "classifier": classifier,
        "baseline": column(baseline),
        "SimCLR": column(simclr),
    }


def _write_run(root, name, scores, best_epoch, finetune=None, minutes=(3.0, 1.0)):
    """A run folder as `cli_story.py` leaves it. `scores` and `finetune`:
    `{fraction: (start accuracies, SimCLR accuracies)}` over the label draws.
    """
    folder = os.path.join(root, name)
    os.makedirs(os.path.join(folder, "eval"))
    rows = [_row("linear", float(f), *scores[f]) for f in ("0.05", "0.2", "1.0")]
    with open(os.path.join(folder, "eval", "comparison.json"), "w") as f:
        json.dump({"columns": ["baseline", "SimCLR"], "rows": rows}, f)
    with open(os.path.join(folder, "metrics.json"), "w") as f:
        json.dump({"guard": {"best_epoch": best_epoch}}, f)
    times = {"pretrain": 60 * minutes[0], "eval": 60 * minutes[1]}
    if finetune is not None:
        os.makedirs(os.path.join(folder, "eval_finetune"))
        rows = [_row("finetune", float(f), *finetune[f]) for f in ("0.05", "0.2", "1.0")]
        with open(os.path.join(folder, "eval_finetune", "comparison.json"), "w") as f:
            json.dump({"columns": ["baseline", "SimCLR"], "rows": rows}, f)
        times["eval_finetune"] = 600.0
    with open(os.path.join(folder, "story_times.json"), "w") as f:
        json.dump(times, f)


def _table_lines(text):
    return [line for line in text.splitlines() if line.startswith("| ")]


CONFIRMATION = os.path.join(
    ROOT, "benchmarks", "results", "confirmation", "guard_on_held_out_images"
)


CURRENT = os.path.join(ROOT, "benchmarks", "results", "current_recipe")


class TestStoryReport(testing.TestCase):
    @pytest.mark.parametrize(
        "results, least", [(RESULTS, 3 * 4 + 3 * 3), (CONFIRMATION, 4), (CURRENT, 3 * 4)]
    )
    def test_every_story_table_row_on_the_results_page_comes_from_the_raw_results(
        self, story, results, least
    ):
        lines = _table_lines(story.report(results))
        assert len(lines) >= least, "the raw results lost runs or tables"
        with open(
            os.path.join(ROOT, "docs", "results", "pretrained-story.md"), encoding="utf-8"
        ) as f:
            page = set(f.read().splitlines())
        missing = [line for line in lines if line not in page]
        assert not missing, "page rows that the raw results no longer give:\n" + "\n".join(missing)

    def test_gain_is_each_run_against_its_own_start(self, story, tmp_path):
        start = {"0.05": [0.60, 0.62], "0.2": [0.70], "1.0": [0.80]}
        _write_run(
            tmp_path,
            "cifar10_pretrained_s0",
            {f: (v, [x + 0.05 for x in v]) for f, v in start.items()},
            best_epoch=3,
            finetune={"0.05": ([0.50], [0.56]), "0.2": ([0.70], [0.69]), "1.0": ([0.80], [0.83])},
        )
        _write_run(  # the guard kept the start: SimCLR equals the start
            tmp_path,
            "cifar10_pretrained_s1",
            {f: (v, v) for f, v in start.items()},
            best_epoch=0,
            finetune={"0.05": ([0.52], [0.52]), "0.2": ([0.70], [0.70]), "1.0": ([0.80], [0.80])},
        )
        rows = {line.split(" | ")[0]: line for line in _table_lines(story.report(str(tmp_path)))}
        gain = rows["| gain: pretrained recipe − start, mean (lowest run)"].split(" | ")
        assert gain[1:5] == ["2", "+2.5 (+0.0)", "+2.5 (+0.0)", "+2.5 (+0.0)"]
        guard = rows[
            "| pretrained recipe (the CLI's default with weights), guard's result (kept the start in 1)"
        ]
        # mean 0.61 + 0.05 and 0.61 over the runs: 63.5 ± 3.5 (sample std)
        assert guard.split(" | ")[2] == "63.5 ± 3.5"
        assert guard.endswith("| 4.0 |")  # pretrain + evaluate minutes, mean over the runs
        # fine-tuning: the two runs' starts differ at 5 %, each gain against its own
        finetuned = [
            line for line in _table_lines(story.report(str(tmp_path))) if "CIFAR-10" in line
        ]
        cells = {line.split(" | ")[1]: line.split(" | ") for line in finetuned}
        assert cells["pretrained start"][3] == "51.0 ± 1.4"
        assert cells["gain: pretrained recipe − start, mean (lowest run)"][3:6] == [
            "+3.0 (+0.0)",
            "-0.5 (-1.0)",
            "+1.5 (+0.0)",
        ]

    def test_plot_draws_every_set_and_recipe_measured(self, story, tmp_path):
        pytest.importorskip("matplotlib")
        scores = {f: ([0.6], [0.65]) for f in ("0.05", "0.2", "1.0")}
        _write_run(tmp_path, "digits_pretrained_s0", scores, best_epoch=2, finetune=scores)
        _write_run(tmp_path, "digits_scratch_s0", scores, best_epoch=1)
        path = tmp_path / "story.png"
        story.plot(str(tmp_path), str(path))
        assert path.stat().st_size > 10_000
