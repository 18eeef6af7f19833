"""`report.html`: built from a run folder's files, opened in a real headless
browser (Chromium through Selenium).

The browser tests skip only where Chromium, chromedriver or Selenium is
missing AND `SIMCLR_KERAS_REQUIRE_BROWSER` is unset; CI (`.ci/run`) installs
them and sets the variable, so there a missing browser fails the suite.
"""

import json
import os
import shutil

import numpy as np
import pytest
import testing
from PIL import Image

from simclr_keras_cli import main as cli
from simclr_keras_cli import report

REQUIRE_BROWSER = "SIMCLR_KERAS_REQUIRE_BROWSER"
SECTION_IDS = [key for key, _ in report.SECTIONS]


def _no_browser(reason):
    if os.environ.get(REQUIRE_BROWSER):
        pytest.fail(
            f"{reason}, and {REQUIRE_BROWSER} is set: install them "
            "(apt-get install chromium chromium-driver; pip install selenium)"
        )
    pytest.skip(f"{reason} (set {REQUIRE_BROWSER}=1 to make this a failure)")


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium driven by Selenium (skipped without one, see above)."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _no_browser("selenium is not installed")
    chrome = next(
        (
            shutil.which(name)
            for name in ("chromium", "chromium-browser", "google-chrome")
            if shutil.which(name)
        ),
        None,
    )
    driver_path = shutil.which("chromedriver")
    if chrome is None or driver_path is None:
        _no_browser("no Chromium browser or chromedriver on PATH")
    options = Options()
    options.binary_location = chrome
    for flag in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1200,900",
    ):
        options.add_argument(flag)
    # An explicit chromedriver: Selenium Manager downloads nothing.
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def open_report(driver, path):
    """Load `path` from disk and check what every report must have; returns
    the page's text.
    """
    from selenium.webdriver.common.by import By

    driver.get("file://" + os.path.abspath(path))
    assert driver.title.startswith("SimCLR run report: ")
    images = driver.execute_script(
        "return Array.from(document.images).map("
        "i => [i.complete, i.naturalWidth, i.naturalHeight, i.src.slice(0, 22)])"
    )
    assert images, "no figure in the report"
    for complete, width, height, src in images:
        assert complete and width > 0 and height > 0, "a figure did not decode"
        assert src == "data:image/png;base64,"
    for key in SECTION_IDS:
        assert driver.find_element(By.ID, key).is_displayed()
    # Self-contained: nothing fetched besides the file, no script, no style sheet link.
    assert driver.execute_script("return performance.getEntriesByType('resource').length") == 0
    assert not driver.find_elements(By.TAG_NAME, "script")
    assert not driver.find_elements(By.CSS_SELECTOR, "link[rel=stylesheet]")
    return driver.find_element(By.TAG_NAME, "body").text


# --- a run folder written by hand: fast, no Keras --------------------------------------


def write_run(folder, guard="budgets", evaluation=True, labelled=True):
    """The files a finished pretrain run (and evaluate) leave, with small values."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "run.json").write_text(
        json.dumps(
            {
                "data_dir": "/data/photos",
                "test_split": 0.2,
                "split_seed": 0,
                "image_size": 32,
                "backbone": "resnet50v2",
                "weights": "imagenet",
                "seed": 0,
            }
        )
    )
    history = {"loss": [4.1, 3.9, 3.8], "contrastive_acc": [0.2, 0.3, 0.35]}
    metrics = {
        "history": history,
        "epochs_done": 3,
        "num_images": 120,
        "seconds": 321.0,
        "args": {"augment": "mild", "batch_size": 32, "guard": guard},
        "recipe": "pretrained",
    }
    if guard == "budgets":
        history.update(
            guard_linear_5pct=[0.62, 0.66, 0.64],
            guard_linear_20pct=[0.75, 0.78, 0.77],
            guard_linear_100pct=[0.85, 0.86, 0.86],
        )
        metrics["guard"] = {
            "score": "budgets",
            "scores": {"0": 0.73, "1": 0.74, "2": 0.767, "3": 0.757},
            "best_epoch": 2,
            "result": {"epoch": 2, "alpha": 0.5},
            "budgets": {
                "start": {"0.05": 0.6, "0.2": 0.74, "1.0": 0.85},
                "result": {"0.05": 0.67, "0.2": 0.79, "1.0": 0.86},
                "last": {"0.05": 0.64, "0.2": 0.77, "1.0": 0.86},
            },
            "summary": "Guard (...): start 60.0 / 74.0 / 85.0 %, result 67.0 / 79.0 / 86.0 %.",
        }
    elif guard == "rankme":
        history["guard_score"] = [10.0, 11.0, 10.5]
        metrics["guard"] = {
            "score": "rankme",
            "scores": {"0": 9.0, "1": 10.0, "2": 11.0, "3": 10.5},
            "best_epoch": 2,
            "result": {"epoch": 2, "alpha": None},
            "budgets": None,
            "summary": "Guard (RankMe (effective rank) of the backbone's features, 120 images)",
        }
    (folder / "metrics.json").write_text(json.dumps(metrics))
    pixels = np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(folder / "augmentations.png")
    if labelled:
        Image.fromarray(pixels).save(folder / "tsne.png")
    if evaluation:
        cell = lambda m: {"accuracy": {"mean": m, "std": 0.01, "values": [m]}}  # noqa: E731
        comparison = {
            "columns": ["baseline", "SimCLR"],
            "rows": [
                {"fraction": f, "classifier": "linear", "baseline": cell(b), "SimCLR": cell(s)}
                for f, b, s in ((1.0, 0.85, 0.86), (0.2, 0.74, 0.79), (0.05, 0.6, 0.58))
            ],
        }
        (folder / "eval").mkdir()
        (folder / "eval" / "comparison.json").write_text(json.dumps(comparison))
        Image.fromarray(pixels).save(folder / "eval" / report.TSNE_PAIR)
        report.write_evaluate_info(
            str(folder / "eval"),
            {"backbone": str(folder / "backbone.keras"), "baseline": "initial", "data": "x"},
        )
    return folder


class TestHandWrittenRun(testing.TestCase):
    def test_a_finished_and_evaluated_run_has_every_part(self, tmp_path):
        folder = write_run(tmp_path / "run")
        assert report.write_report(str(folder)) == str(folder / "report.html")
        page = (folder / "report.html").read_text()
        for key in SECTION_IDS:
            assert f'id="{key}"' in page
        assert "epoch 2 mixed with the start (WiSE-FT, alpha 0.5)" in page
        assert "+5.0" in page and "-2.0" in page  # SimCLR minus baseline, in points
        assert "No evaluation yet" not in page and "has not finished" not in page
        # the figures: curves, guard, augmentations and the t-SNE pair, all embedded
        assert page.count('src="data:image/png;base64,') == 4
        assert "http://" not in page and "https://" not in page and "<script" not in page

    def test_missing_parts_say_so(self, tmp_path):
        folder = write_run(tmp_path / "run", guard="off", evaluation=False, labelled=False)
        page = report.build_report(str(folder))
        assert "No evaluation yet" in page
        assert "simclr-keras evaluate --backbone" in page
        assert "The guard was off" in page
        assert "No t-SNE: it needs class sub-folders" in page
        (folder / "metrics.json").unlink()
        page = report.build_report(str(folder))
        assert "The run has not finished" in page

    def test_a_run_that_kept_the_start_points_at_the_last_epoch(self, tmp_path):
        folder = write_run(tmp_path / "run")
        metrics = json.loads((folder / "metrics.json").read_text())
        metrics["guard"]["result"] = {"epoch": 0, "alpha": None}
        (folder / "metrics.json").write_text(json.dumps(metrics))
        page = report.build_report(str(folder))
        assert "the start (unchanged)" in page
        assert "both columns score the same network" in page
        assert f"--backbone {folder / 'backbone_last.keras'}" in page

    def test_a_label_free_guard_is_plotted_per_epoch(self, tmp_path):
        folder = write_run(tmp_path / "run", guard="rankme", evaluation=False)
        page = report.build_report(str(folder))
        assert "guard score per epoch" in page  # the figure's alt text
        assert "epoch 2&#x27;s" in page
        assert "The before/after pair appears once" in page

    def test_a_report_that_cannot_be_written_does_not_raise(self, tmp_path, capsys):
        missing = tmp_path / "nowhere"
        assert report.write_report(str(missing)) is None
        assert "could not write" in capsys.readouterr().err

    def test_the_hand_written_run_opens_in_a_browser(self, browser, tmp_path):
        folder = write_run(tmp_path / "run")
        report.write_report(str(folder))
        text = open_report(browser, folder / "report.html")
        assert "Kept as backbone.keras" in text
        rows = browser.find_elements("css selector", "table.evaluation tr")
        assert len(rows) == 4  # the header and three fractions


# --- a real run: pretrain, then evaluate ------------------------------------------------


def write_folder(root, images, labels):
    """Class folders of PNG images."""
    for i, (img, label) in enumerate(zip(images, labels)):
        (root / f"digit_{label}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(root / f"digit_{label}" / f"{i:04d}.png")
    return root


class TestPretrainAndEvaluateReport(testing.TestCase):
    def test_pretrain_and_evaluate_write_a_report_that_opens_in_a_browser(
        self, browser, digits, tmp_path, capsys
    ):
        from selenium.webdriver.common.by import By

        images, labels = digits
        keep = np.isin(labels[:150], (0, 1, 2))
        data = write_folder(tmp_path / "data", images[:150][keep], labels[:150][keep])
        out = tmp_path / "run"
        code = cli.main(
            [
                "pretrain",
                str(data),
                "--test-split",
                "0.3",
                "--backbone",
                "small_cnn",
                "--image-size",
                "16",
                "--batch-size",
                "16",
                "--feat-dims",
                "32,16",
                "--epochs",
                "2",
                "--output",
                str(out),
            ]
        )
        assert code == 0
        assert f"Report: {out / 'report.html'}" in capsys.readouterr().out
        text = open_report(browser, out / "report.html")
        assert "No evaluation yet" in text
        assert "The before/after pair appears once" in text

        code = cli.main(
            [
                "evaluate",
                "--backbone",
                str(out / "backbone.keras"),
                "--seeds",
                "0",
                "--fractions",
                "0.2,1",
            ]
        )
        assert code == 0
        assert (out / "eval" / report.TSNE_PAIR).is_file()
        text = open_report(browser, out / "report.html")
        assert "No evaluation yet" not in text
        rows = browser.find_elements(By.CSS_SELECTOR, "table.evaluation tr")
        assert len(rows) == 3  # the header and the two fractions
        assert "SimCLR − baseline" in text
        alts = [img.get_attribute("alt") for img in browser.find_elements(By.TAG_NAME, "img")]
        assert alts == [
            "training curves",
            "guard scores per label budget and epoch",
            "augmentation examples",
            "t-SNE before and after SimCLR",
        ]
