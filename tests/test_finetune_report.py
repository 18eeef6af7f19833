"""The tables of docs/results/finetuning.md are what
`examples/finetune_proof.py --report` makes of the raw results in
benchmarks/results/finetuning.
"""

import importlib.util
import os

import testing

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results", "finetuning")
PAGE = os.path.join(ROOT, "docs", "results", "finetuning.md")


def _proof():
    spec = importlib.util.spec_from_file_location(
        "finetune_proof", os.path.join(ROOT, "examples", "finetune_proof.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class TestFinetuneReport(testing.TestCase):
    def test_every_table_row_on_the_page_comes_from_the_raw_results(self):
        rows = [line for line in _proof().report(RESULTS).splitlines() if line.startswith("| ")]
        assert len(rows) >= 1 + 6 + 1 + 1, "the raw results lost a set or a table"
        with open(PAGE, encoding="utf-8") as fh:
            page = set(fh.read().splitlines())
        missing = [line for line in rows if line not in page]
        assert not missing, "page rows the raw results no longer give:\n" + "\n".join(missing)
