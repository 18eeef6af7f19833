"""`report.html`: one self-contained page per `pretrain` run.

The page is built from the files the run folder holds (`run.json`,
`metrics.json`, `augmentations.png`, `tsne.png` and every evaluation folder
with a `comparison.json`), so it can be written again at any time:
`pretrain` writes it when a run ends, `evaluate` rewrites it with the
comparison table and the t-SNE of the test images before and after SimCLR.
Figures are PNGs embedded as base64 `data:` URIs and the style sheet is
inline: the file opens from disk (`file://`), with no server, no network
and no script. A part the run does not have yet (no labels, no evaluation)
says so and names the command that adds it.

Building the page needs matplotlib only (no Keras): `write_report(folder)`
regenerates the report of any finished run.
"""

import base64
import datetime
import html
import io
import os
import sys

from simclr_keras_cli import run_files

REPORT_FILE = "report.html"
EVALUATION_FILE = "comparison.json"  # written by `compare_backbones`
EVALUATE_INFO = "evaluate.json"  # what `evaluate` compared, on which images
TSNE_PAIR = "tsne_before_after.png"
TSNE_POINTS = 1000  # test images in the before/after t-SNE

STYLE = """
:root { --ink:#1f2933; --muted:#52606d; --line:#d9e2ec; --bg:#f5f7fa; --card:#fff;
        --accent:#2f6fdf; --good:#1a7f37; --bad:#b42318; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.5 -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       color:var(--ink); background:var(--bg); }
header { background:#102a43; color:#fff; padding:24px 32px 18px; }
header h1 { margin:0 0 4px; font-size:24px; font-weight:600; }
header p { margin:0; color:#bcccdc; }
nav { background:#243b53; padding:8px 32px; position:sticky; top:0; z-index:1; }
nav a { color:#d9e2ec; margin-right:18px; text-decoration:none; font-size:14px; }
nav a:hover { color:#fff; text-decoration:underline; }
main { max-width:1120px; margin:0 auto; padding:8px 24px 48px; }
section { background:var(--card); border:1px solid var(--line); border-radius:8px;
          padding:18px 24px; margin:20px 0; }
h2 { margin:0 0 12px; font-size:19px; }
h3 { margin:18px 0 8px; font-size:16px; }
p { margin:8px 0; }
.muted { color:var(--muted); }
.note { background:#fff8e1; border-left:4px solid #f0b429; padding:10px 14px; margin:10px 0;
        border-radius:4px; }
.cards { display:flex; flex-wrap:wrap; gap:12px; margin:6px 0 14px; }
.card { flex:1 1 170px; border:1px solid var(--line); border-radius:6px; padding:10px 14px; }
.card .k { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.04em; }
.card .v { font-size:18px; font-weight:600; word-break:break-word; }
table { border-collapse:collapse; margin:8px 0; font-variant-numeric:tabular-nums; }
th, td { border-bottom:1px solid var(--line); padding:6px 12px; text-align:left; }
th { background:#f0f4f8; font-weight:600; }
td.num { text-align:right; }
.good { color:var(--good); font-weight:600; }
.bad { color:var(--bad); font-weight:600; }
figure { margin:10px 0; }
figure img { max-width:100%; height:auto; border:1px solid var(--line); border-radius:4px; }
figcaption { color:var(--muted); font-size:13px; margin-top:4px; }
code { background:#f0f4f8; padding:1px 5px; border-radius:3px; font-size:13px; }
footer { color:var(--muted); font-size:12px; text-align:center; padding:12px; }
"""

SECTIONS = (
    ("summary", "Summary"),
    ("training", "Training curves"),
    ("guard", "Guard scores"),
    ("augmentations", "Augmentations"),
    ("tsne", "t-SNE"),
    ("evaluation", "Evaluation"),
    ("files", "Files"),
)


def write_report(folder, evaluations=(), quiet=False):
    """Write `folder/report.html` from the files of the run in `folder`.

    Never raises: a report that cannot be written prints a warning (the
    run's results are on disk whatever happens here).

    Args:
        folder: A `pretrain` run's `--output` (or an `evaluate` output
            folder that belongs to no run).
        evaluations: Evaluation folders outside `folder` to show too (those
            inside it are found by themselves).
        quiet: No "Report: ..." line.

    Returns:
        The path written, or None when it could not be written.
    """
    path = os.path.join(folder, REPORT_FILE)
    try:
        from simclr_keras._atomic import atomic_write_text

        if not os.path.isdir(folder):  # a report of a run, never a folder made for it
            raise FileNotFoundError(f"{folder} is not a folder")
        atomic_write_text(build_report(folder, evaluations), path)
    except Exception as error:  # the report must never fail a finished run
        print(f"Note: could not write {path}: {type(error).__name__}: {error}", file=sys.stderr)
        return None
    if not quiet:
        print(f"Report: {path} (open it in a browser)", flush=True)
    return path


def build_report(folder, evaluations=()):
    """The HTML page of the run in `folder` (see `write_report`), as a string."""
    folder = os.path.abspath(folder)
    run = run_files.read_json(os.path.join(folder, run_files.RUN_FILE)) or {}
    metrics = run_files.read_json(os.path.join(folder, run_files.METRICS_FILE))
    evals = find_evaluations(folder, evaluations)
    name = os.path.basename(folder.rstrip(os.sep)) or folder
    body = [
        _summary(folder, run, metrics, evals),
        _training(metrics),
        _guard(metrics),
        _augmentations(folder, metrics),
        _tsne(folder, run, metrics, evals),
        _evaluation(folder, evals),
        _files(folder, evals),
    ]
    nav = "".join(f'<a href="#{key}">{title}</a>' for key, title in SECTIONS)
    backbone = run.get("backbone") or "a backbone"
    now = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>SimCLR run report: {_e(name)}</title><style>{STYLE}</style></head><body>"
        f"<header><h1>SimCLR run report: {_e(name)}</h1>"
        f"<p>{_e(backbone)} &middot; {_e(folder)} &middot; written {now}</p></header>"
        f"<nav>{nav}</nav><main>{''.join(body)}</main>"
        "<footer>Written by simclr-keras (pretrain and evaluate rewrite it). "
        "Self-contained: the figures are embedded, nothing is loaded from elsewhere.</footer>"
        "</body></html>\n"
    )


def find_evaluations(folder, extra=()):
    """`[(folder, comparison, info)]`: the evaluation folders of the run
    (sub-folders of `folder` holding a `comparison.json`, and `extra`),
    `eval` first.
    """
    found = []
    if os.path.isfile(os.path.join(folder, EVALUATION_FILE)):
        found.append(folder)
    try:
        entries = sorted(os.listdir(folder), key=lambda n: (n != "eval", n))
    except OSError:
        entries = []
    for entry in entries:
        sub = os.path.join(folder, entry)
        if os.path.isfile(os.path.join(sub, EVALUATION_FILE)):
            found.append(sub)
    for sub in extra:
        sub = os.path.abspath(sub)
        if sub not in found and os.path.isfile(os.path.join(sub, EVALUATION_FILE)):
            found.append(sub)
    out = []
    for sub in found:
        comparison = run_files.read_json(os.path.join(sub, EVALUATION_FILE))
        if comparison and comparison.get("rows"):
            out.append(
                (sub, comparison, run_files.read_json(os.path.join(sub, EVALUATE_INFO)) or {})
            )
    return out


# --- sections ---------------------------------------------------------------------------


def _section(key, body):
    title = dict(SECTIONS)[key]
    return f'<section id="{key}"><h2>{title}</h2>{body}</section>'


def _note(text):
    return f'<p class="note">{text}</p>'


def _card(key, value):
    return f'<div class="card"><div class="k">{_e(key)}</div><div class="v">{_e(value)}</div></div>'


def kept_backbone(metrics):
    """In words, which backbone the run kept as `backbone.keras`."""
    if not metrics:
        return "unknown (the run has not finished)"
    guard = metrics.get("guard")
    epochs = metrics.get("epochs_done")
    if not guard:
        return f"the last epoch's (epoch {epochs}; no guard)"
    result = guard.get("result") or {}
    epoch, alpha = result.get("epoch"), result.get("alpha")
    scored = [int(k) for k in (guard.get("scores") or {})]
    start = min(scored) if scored else 0
    if alpha is not None:
        return f"epoch {epoch} mixed with the start (WiSE-FT, alpha {alpha:g})"
    if epoch is None or epoch == start:
        return "the start (unchanged)"
    if epoch == epochs:
        return f"the last epoch's (epoch {epoch})"
    return f"epoch {epoch}'s"


def _summary(folder, run, metrics, evals):
    args = (metrics or {}).get("args") or {}
    parts = []
    if metrics is None:
        parts.append(
            _note(
                f"The run has not finished: there is no <code>{run_files.METRICS_FILE}</code> "
                "yet. Rerun the same <code>simclr-keras pretrain</code> command to resume it; "
                "the report is written again when it ends."
            )
            if run
            else _note(
                "No <code>pretrain</code> run in this folder (no <code>run.json</code>): "
                "only the evaluation is shown."
            )
        )
    cards = [
        ("backbone", run.get("backbone") or args.get("backbone") or "—"),
        ("kept as backbone.keras", kept_backbone(metrics)),
    ]
    if metrics:
        cards += [
            ("recipe", metrics.get("recipe", "—")),
            ("epochs", f"{metrics.get('epochs_done', '—')}"),
            ("images trained on", f"{metrics.get('num_images', '—')}"),
            ("time", _duration(metrics.get("seconds"))),
        ]
    parts.append('<div class="cards">' + "".join(_card(k, v) for k, v in cards) + "</div>")
    guard = (metrics or {}).get("guard")
    if guard and guard.get("summary"):
        parts.append(f"<p>{_e(guard['summary'])}</p>")
    elif metrics and not guard:
        parts.append(
            "<p>The guard was off (<code>--guard off</code>): <code>backbone.keras</code> is "
            "the last epoch's backbone.</p>"
        )
    if evals:
        sub, comparison, _ = evals[0]
        headline = _headline(comparison)
        if headline:
            where = os.path.relpath(sub, folder)
            parts.append(f"<p><b>Evaluation</b> (<code>{_e(where)}</code>): {_e(headline)}</p>")
    settings = [
        ("data", run.get("data_dir") or args.get("data_dir")),
        ("held out for evaluate", _held_out(run)),
        ("image size", run.get("image_size") or args.get("image_size")),
        ("weights", run.get("weights") or args.get("weights")),
        ("augmentation", args.get("augment")),
        ("batch size", args.get("batch_size")),
        ("guard", args.get("guard")),
        ("seed", run.get("seed", args.get("seed"))),
    ]
    rows = "".join(
        f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in settings if v is not None
    )
    if rows:
        parts.append(f"<h3>Settings</h3><table>{rows}</table>")
    return _section("summary", "".join(parts))


def _held_out(run):
    if not run:
        return None
    if not run.get("test_split"):
        return "nothing (--test-split not given)"
    return f"{run['test_split']:.0%} of each class (split seed {run.get('split_seed', 0)})"


def _headline(comparison):
    """'SimCLR − baseline: +x at 5 %, ...' for the linear probe, or None."""
    columns = comparison.get("columns") or []
    if len(columns) < 2:
        return None
    first, second = columns[0], columns[1]
    gains = []
    for row in sorted(comparison["rows"], key=lambda r: r["fraction"]):
        if row.get("classifier") != "linear":
            continue
        a, b = _mean(row.get(first)), _mean(row.get(second))
        if a is not None and b is not None:
            gains.append(f"{100 * (b - a):+.1f} points at {row['fraction']:.0%} of the labels")
    if not gains:
        return None
    return f"linear probe, {second} minus {first}: " + ", ".join(gains) + "."


def _training(metrics):
    history = (metrics or {}).get("history") or {}
    if not history.get("loss"):
        return _section(
            "training", _note("No training history yet: the run has not finished an epoch.")
        )
    panels = [("loss", "contrastive loss (NT-Xent)")]
    if history.get("contrastive_acc"):
        panels.append(("contrastive_acc", "contrastive accuracy (positive pair ranked first)"))
    knn = [k for k in history if k == "knn_acc" or k.endswith("knn_acc")]
    if knn and not (metrics or {}).get("guard"):
        panels.append((knn[0], "kNN accuracy of the features (labelled sample)"))
    png = _plot_curves(history, panels, metrics.get("epochs_done") or len(history["loss"]))
    caption = (
        "Per epoch, averaged over the epoch's batches. The loss falls as the two views of an "
        "image move closer than the other images of the batch; it need not reach zero."
    )
    return _section("training", _figure(png, "training curves", caption))


def _guard(metrics):
    if metrics is None:
        return _section("guard", _note("No guard scores yet: the run has not finished."))
    guard = metrics.get("guard")
    if not guard:
        return _section(
            "guard",
            _note(
                "The guard was off (<code>--guard off</code>): no scores per epoch, and "
                "<code>backbone.keras</code> is the last epoch's backbone."
            ),
        )
    history = metrics.get("history") or {}
    epochs = metrics.get("epochs_done") or len(history.get("loss", []))
    result = guard.get("result") or {}
    budgets = guard.get("budgets")
    parts = []
    if guard.get("score") == "budgets" and budgets:
        png = _plot_budgets(history, budgets, guard, epochs)
        caption = (
            "Linear-probe accuracy at each label budget, epoch 0 being the backbone before "
            "SimCLR. A candidate is kept only when it is at least as good as the start at every "
            "budget (within the noise of the paired comparison); the dashed line marks the kept "
            "epoch."
        )
        parts.append(_figure(png, "guard scores per label budget and epoch", caption))
        parts.append(_budget_table(budgets))
    else:
        png = _plot_scores(guard, epochs)
        caption = (
            f"The guard's score ({_e(guard.get('score'))}) per epoch, epoch 0 being the backbone "
            "before SimCLR; the dashed line marks the kept epoch."
        )
        parts.append(_figure(png, "guard score per epoch", caption))
    parts.append(f"<p>Kept as <code>backbone.keras</code>: <b>{_e(kept_backbone(metrics))}</b>.")
    if result.get("epoch") != epochs or result.get("alpha") is not None:
        parts.append(" The last epoch's backbone is <code>backbone_last.keras</code>.")
    parts.append("</p>")
    return _section("guard", "".join(parts))


def _budget_table(budgets):
    keys = list(budgets.get("start") or {})
    head = "".join(f"<th>{float(k):.0%} of the labels</th>" for k in keys)
    rows = []
    for name, label in (
        ("start", "start (before SimCLR)"),
        ("result", "result (backbone.keras)"),
        ("last", "last epoch"),
    ):
        row = budgets.get(name)
        if not row:
            continue
        cells = []
        for k in keys:
            value = row.get(k)
            text = "—" if value is None else f"{100 * value:.1f} %"
            if name != "start" and value is not None and budgets["start"].get(k) is not None:
                delta = 100 * (value - budgets["start"][k])
                text += f' <span class="{_sign(delta)}">({delta:+.1f})</span>'
            cells.append(f'<td class="num">{text}</td>')
        rows.append(f"<tr><th>{label}</th>{''.join(cells)}</tr>")
    return f"<table><tr><th></th>{head}</tr>{''.join(rows)}</table>"


def _augmentations(folder, metrics):
    path = os.path.join(folder, "augmentations.png")
    if not os.path.isfile(path):
        return _section(
            "augmentations",
            _note("No <code>augmentations.png</code> in the run folder: the run has not started."),
        )
    aug = ((metrics or {}).get("args") or {}).get("augment")
    caption = (
        "Each row: a training image and views of it drawn by the run's augmentation layer"
        + (f" (<code>--augment {_e(aug)}</code>)" if aug and aug != "auto" else "")
        + ". SimCLR draws two such views of every image and trains the backbone to match them."
    )
    figure = _figure(_read_png(path), "augmentation examples", caption, width=640)
    return _section("augmentations", figure)


def _tsne(folder, run, metrics, evals):
    parts = []
    for sub, _, info in evals:
        path = os.path.join(sub, TSNE_PAIR)
        if os.path.isfile(path):
            n = info.get("tsne_points")
            caption = (
                f"{'The ' + str(n) if n else 'The'} test images of "
                f"<code>{_e(os.path.relpath(sub, folder))}</code>, embedded by the baseline "
                "(left) and the SimCLR backbone (right), coloured by class. Classes that "
                "separate better on the right are what SimCLR added."
            )
            parts.append(_figure(_read_png(path), "t-SNE before and after SimCLR", caption))
    if not parts:
        after = os.path.join(folder, "tsne.png")
        if os.path.isfile(after):
            parts.append(
                _figure(
                    _read_png(after),
                    "t-SNE after SimCLR",
                    "A labelled sample of the training images, embedded by the kept backbone.",
                )
            )
        if evals or os.path.isfile(after):
            parts.append(
                _note(
                    "The before/after pair is drawn by <code>simclr-keras evaluate</code> on the "
                    "test images; this evaluation has none."
                    if evals
                    else "The before/after pair appears once <code>simclr-keras evaluate "
                    f"--backbone {_e(os.path.join(folder, run_files.BACKBONE_FILE))}</code> has run."
                )
            )
        elif metrics is not None or run:
            parts.append(
                _note(
                    "No t-SNE: it needs class sub-folders in DATA_DIR (labels colour the "
                    "points) and images that fit <code>--cache-limit-gb</code>. "
                    "<code>simclr-keras evaluate</code> with labelled images draws it before "
                    "and after SimCLR."
                )
            )
        else:
            parts.append(_note("No t-SNE in this folder."))
    return _section("tsne", "".join(parts))


def _evaluation(folder, evals):
    if not evals:
        backbone = os.path.join(folder, run_files.BACKBONE_FILE)
        return _section(
            "evaluation",
            _note(
                "No evaluation yet. <code>simclr-keras evaluate --backbone "
                f"{_e(backbone)}</code> compares the backbone with the one before SimCLR at "
                "5, 20 and 100 % of the labels and adds the table here (it needs labelled "
                "images: the run's <code>--test-split</code>, <code>--data-dir</code> or "
                "<code>--train-dir</code>/<code>--test-dir</code>)."
            ),
        )
    parts = []
    kept_start = kept_backbone(run_files.read_json(os.path.join(folder, run_files.METRICS_FILE)))
    kept_start = kept_start.startswith("the start")
    for sub, comparison, info in evals:
        where = os.path.relpath(sub, folder)
        parts.append(f"<h3><code>{_e(where)}</code></h3>")
        evaluated = os.path.basename(info.get("backbone") or "")
        if (
            kept_start
            and evaluated == run_files.BACKBONE_FILE
            and info.get("baseline") == "initial"
        ):
            last = os.path.join(folder, "backbone_last.keras")
            parts.append(
                _note(
                    "The guard kept the start, so <code>backbone.keras</code> is the backbone "
                    "before SimCLR and both columns score the same network. "
                    f"<code>simclr-keras evaluate --backbone {_e(last)}</code> scores the last "
                    "epoch's backbone (into <code>eval_backbone_last</code>)."
                )
            )
        described = []
        if info.get("backbone"):
            described.append(f"SimCLR: <code>{_e(info['backbone'])}</code>")
        if info.get("baseline"):
            described.append(f"baseline: <code>{_e(info['baseline'])}</code>")
        if info.get("data"):
            described.append(f"images: {_e(info['data'])}")
        if described:
            parts.append(f'<p class="muted">{"; ".join(described)}.</p>')
        parts.append(comparison_table(comparison))
    parts.append(
        '<p class="muted">Accuracy on the test images, mean &plusmn; standard deviation over '
        "the label draws (seeds); the last column is the second minus the first, in points.</p>"
    )
    return _section("evaluation", "".join(parts))


def comparison_table(comparison, metric="accuracy"):
    """The rows of a `compare_backbones` result as an HTML table (with the
    difference of the first two columns).
    """
    columns = comparison.get("columns") or []
    delta = len(columns) >= 2
    head = "<th>labels</th><th>classifier</th>" + "".join(f"<th>{_e(c)}</th>" for c in columns)
    if delta:
        head += f"<th>{_e(columns[1])} &minus; {_e(columns[0])}</th>"
    rows = []
    for row in comparison.get("rows", []):
        cells = [f"<td>{row['fraction']:.0%}</td><td>{_e(row.get('classifier'))}</td>"]
        for name in columns:
            cell = row.get(name)
            if cell is None or metric not in cell:
                cells.append('<td class="num">—</td>')
            else:
                m, s = cell[metric]["mean"], cell[metric]["std"]
                cells.append(f'<td class="num">{100 * m:.1f} &plusmn; {100 * s:.1f}</td>')
        if delta:
            a, b = _mean(row.get(columns[0]), metric), _mean(row.get(columns[1]), metric)
            if a is None or b is None:
                cells.append('<td class="num">—</td>')
            else:
                d = 100 * (b - a)
                cells.append(f'<td class="num {_sign(d)}">{d:+.1f}</td>')
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return f'<table class="evaluation"><tr>{head}</tr>{"".join(rows)}</table>'


def _files(folder, evals):
    known = {
        run_files.BACKBONE_FILE: "the kept backbone (load it with keras.saving.load_model)",
        "backbone_last.keras": "the last epoch's backbone",
        run_files.INITIAL_BACKBONE: "the backbone before SimCLR (evaluate's baseline)",
        run_files.MODEL_FILE: "the whole SimCLR model",
        run_files.RUN_FILE: "data, split and input settings",
        run_files.METRICS_FILE: "history, guard scores, arguments",
        "training_curves.png": "training curves",
        "augmentations.png": "augmentation preview",
        "tsne.png": "t-SNE after SimCLR",
    }
    rows = [
        f'<tr><td><a href="{_e(name)}">{_e(name)}</a></td><td>{_e(what)}</td></tr>'
        for name, what in known.items()
        if os.path.isfile(os.path.join(folder, name))
    ]
    for sub, _, _ in evals:
        rel = os.path.relpath(sub, folder)
        for name, what in (
            ("comparison.md", "the evaluation table (Markdown)"),
            (EVALUATION_FILE, "the evaluation, every draw"),
            (TSNE_PAIR, "t-SNE before and after"),
        ):
            if os.path.isfile(os.path.join(sub, name)):
                link = f"{rel}/{name}" if rel != "." else name
                rows.append(f'<tr><td><a href="{_e(link)}">{_e(link)}</a></td><td>{what}</td></tr>')
    if not rows:
        return _section("files", _note("No files of a run in this folder."))
    return _section("files", f"<table>{''.join(rows)}</table>")


# --- figures ----------------------------------------------------------------------------


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: works on machines with no display
    import matplotlib.pyplot as plt

    return plt


def _integer_epochs(ax):
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _png(fig):
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    _pyplot().close(fig)
    return buffer.getvalue()


def _read_png(path):
    with open(path, "rb") as fh:
        return fh.read()


def _figure(png, alt, caption, width=None):
    data = base64.b64encode(png).decode("ascii")
    size = f' style="width:{width}px"' if width else ""
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{_e(alt)}"{size}>'
        f"<figcaption>{caption}</figcaption></figure>"
    )


def _epochs_of(n_values, n_epochs):
    """Epoch numbers of a metric logged `n_values` times: the last ones."""
    first = max(n_epochs - n_values + 1, 1)
    return list(range(first, first + n_values))


def _plot_curves(history, panels, n_epochs):
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.4), squeeze=False)
    for ax, (key, title) in zip(axes[0], panels):
        values = history[key]
        ax.plot(_epochs_of(len(values), n_epochs), values, marker="o", markersize=3)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch")
        _integer_epochs(ax)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def _plot_budgets(history, budgets, guard, n_epochs):
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.0))
    start = budgets.get("start") or {}
    result = guard.get("result") or {}
    colors = plt.get_cmap("tab10")
    for i, key in enumerate(start):
        percent = float(key) * 100
        name = f"guard_linear_{percent:g}pct"
        values = history.get(name) or []
        xs = [0] + _epochs_of(len(values), n_epochs)
        ys = [100 * start[key]] + [100 * v for v in values]
        ax.plot(xs, ys, marker="o", markersize=4, color=colors(i), label=f"{percent:g} % of labels")
        if result.get("alpha") is not None and (budgets.get("result") or {}).get(key) is not None:
            ax.axhline(100 * budgets["result"][key], color=colors(i), linestyle=":", linewidth=1)
    _mark_kept(ax, result)
    ax.set_xlabel("epoch (0 = before SimCLR)")
    _integer_epochs(ax)
    ax.set_ylabel("linear-probe accuracy (%)")
    ax.set_title("Guard: linear probe per label budget", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return _png(fig)


def _plot_scores(guard, n_epochs):
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    scores = sorted((int(k), v) for k, v in (guard.get("scores") or {}).items())
    ax.plot([k for k, _ in scores], [v for _, v in scores], marker="o", markersize=4)
    _mark_kept(ax, guard.get("result") or {})
    ax.set_xlabel("epoch (0 = before SimCLR)")
    _integer_epochs(ax)
    ax.set_ylabel(str(guard.get("score")))
    ax.set_title(f"Guard: {guard.get('score')} per epoch", fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def _mark_kept(ax, result):
    epoch = result.get("epoch")
    if epoch is None:
        return
    alpha = result.get("alpha")
    label = f"kept: epoch {epoch}" + (f" mixed with the start (alpha {alpha:g})" if alpha else "")
    ax.axvline(epoch, color="0.3", linestyle="--", linewidth=1, label=label)
    ax.legend(fontsize=8, loc="best")


def save_tsne_before_after(
    baseline, backbone, test, class_names, path, image_size, preprocessing=None, seed=0
):
    """Draw the t-SNE of up to `TSNE_POINTS` test images embedded by the
    baseline and by the SimCLR backbone side by side (`plot_tsne_pair`).

    Returns:
        The number of images drawn.
    """
    import numpy as np

    from simclr_keras.evaluation import extract_features
    from simclr_keras.plots import plot_tsne_pair

    images, labels = test
    pick = np.sort(np.random.default_rng(seed).permutation(len(images))[:TSNE_POINTS])
    prep = dict(preprocessing=preprocessing, image_size=image_size, verbose=0)
    before = extract_features(baseline, images[pick], **prep)
    after = extract_features(backbone, images[pick], **prep)
    plot_tsne_pair(
        before,
        after,
        np.asarray(labels)[pick],
        path,
        class_names=class_names,
        titles=("Baseline (before SimCLR)", "SimCLR backbone"),
        seed=seed,
    )
    return len(pick)


def after_evaluate(args, baseline, backbone, test, labelled, side):
    """What `evaluate` adds to the report once its table is written: the
    t-SNE of the test images before and after SimCLR and `evaluate.json`
    in `args.output`, then `report.html` written again (in the pretrain run
    beside `--backbone`, else in `args.output`).

    Args:
        args: `evaluate`'s parsed arguments.
        baseline: The baseline backbone.
        backbone: The SimCLR backbone.
        test: `(images, labels)` of the test images.
        labelled: `(parts, class_names, where)` of `labelled_files`.
        side: The image side the images were decoded at.

    Returns:
        The report's path, or None when it could not be written.
    """
    info = {
        "backbone": os.path.abspath(args.backbone),
        "baseline": args.baseline,
        "data": labelled[2],
        "test_images": len(test[1]),
    }
    try:
        info["tsne_points"] = save_tsne_before_after(
            baseline,
            backbone,
            test,
            labelled[1],
            os.path.join(args.output, TSNE_PAIR),
            (side, side),
            args.preprocessing,
            seed=args.seed,
        )
    except Exception as error:  # a figure must never fail a finished evaluation
        print(f"Note: no t-SNE before/after: {type(error).__name__}: {error}", file=sys.stderr)
    write_evaluate_info(args.output, info)
    return write_report(report_folder(args.backbone, args.output), [args.output])


def write_evaluate_info(folder, info):
    """`evaluate.json` in the evaluation folder: what was compared, for the report."""
    run_files.write_json(info, os.path.join(folder, EVALUATE_INFO))


def report_folder(backbone_path, output):
    """Where `evaluate` writes the report: the pretrain run beside the
    backbone file, else the evaluation's `output` folder.
    """
    folder = os.path.dirname(os.path.abspath(backbone_path))
    if os.path.isfile(os.path.join(folder, run_files.RUN_FILE)) or os.path.isfile(
        os.path.join(folder, run_files.METRICS_FILE)
    ):
        return folder
    return output


# --- helpers ----------------------------------------------------------------------------


def _e(value):
    return html.escape(str(value), quote=True)


def _mean(cell, metric="accuracy"):
    if not cell or metric not in cell:
        return None
    return cell[metric]["mean"]


def _sign(delta):
    if delta > 0.05:
        return "good"
    if delta < -0.05:
        return "bad"
    return ""


def _duration(seconds):
    if seconds is None:
        return "—"
    seconds = float(seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
