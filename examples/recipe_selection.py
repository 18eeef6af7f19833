"""How the pretrained recipe's augmentation and length were chosen: the
guard's scores on training images only, never a test split.

Each run is the CLI's `pretrain` with the pretrained EfficientNet-Lite0 on
a development set (`cli_story.py`'s folders, 15 % held out and never
looked at here), for 10 epochs, once per augmentation policy. The guard
scores every epoch by cross-validated linear probes at 5, 20 and 100 % of
the labelled *training* images; `--report` prints each policy's estimate
per epoch and draws it.

Run (one policy after the other; rerunning resumes):
    python examples/recipe_selection.py --weights lite0.weights.h5 --policies mild,simclr
    python examples/recipe_selection.py --report --plot img/recipe_selection.png

Raw files of the README's figure: benchmarks/results/recipe_selection/.
"""

import os
import shutil
import subprocess
import sys

import _common as common
import numpy as np

RESULTS = os.path.join("benchmarks", "results", "recipe_selection")
BUDGETS = ("0.05", "0.2", "1.0")


def parse_args():
    p = common.parser(__doc__)
    p.add_argument("--weights", default=common.LITE0_WEIGHTS)
    p.add_argument("--policies", default="mild,simclr")
    p.add_argument("--sets", default="cifar10")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--output", default="runs/recipe_selection")
    p.add_argument("--data-root", default="runs/cli_story_data")
    p.add_argument(
        "--results", default=RESULTS, help="raw files (written by runs, read by --report)"
    )
    common.add_report_args(p, plot="with --report: draw the curves into this PNG")
    return p.parse_args()


def run(args):
    story = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cli_story.py")
    for policy in args.policies.split(","):
        command = [
            sys.executable, story, "--weights", args.weights, "--sets", args.sets,
            "--seeds", "0", "--epochs", str(args.epochs), "--augment", policy,
            "--classifiers", "none", "--output", os.path.join(args.output, policy),
            "--data-root", args.data_root,
        ]  # fmt: skip
        print("$ " + " ".join(command), flush=True)
        subprocess.run(command, check=True)
        os.makedirs(args.results, exist_ok=True)
        for data_set in args.sets.split(","):
            run_dir = os.path.join(args.output, policy, f"{data_set}_pretrained_s0")
            shutil.copyfile(
                os.path.join(run_dir, "metrics.json"),
                os.path.join(args.results, f"{data_set}_{policy}_s0_metrics.json"),
            )


def curves(path):
    """`{budget: [accuracy at the start, after epoch 1, ...]}` from a run's
    `metrics.json` (its history) or the guard's own `guard.json`.
    """
    data = common.read_json(path)
    if "history" in data:  # metrics.json of a finished run
        start = data["guard"]["budgets"]["start"]
        history = data["history"]
        return {b: [start[b]] + history[f"guard_linear_{float(b) * 100:g}pct"] for b in BUDGETS}
    details = data["details"]  # guard.json: per-split accuracies, budgets in order
    out = {b: [] for b in BUDGETS}
    for epoch in sorted(details, key=int):
        splits = np.asarray(details[epoch]["splits"])
        for b, chunk in zip(BUDGETS, np.split(splits, len(BUDGETS))):
            out[b].append(float(chunk.mean()))
    return out


def collect(folder):
    """`{(set, policy): curves}` of the raw files `SET_POLICY_s0_{metrics,guard}.json`."""
    runs = {}
    for name in sorted(os.listdir(folder)):
        if name.endswith(("_metrics.json", "_guard.json")):
            data_set, policy = name.split("_")[:2]
            runs[(data_set, policy)] = curves(os.path.join(folder, name))
    return runs


def report(folder):
    rows = [
        [data_set, policy, epoch, *(f"{100 * c[b][epoch]:.1f}" for b in BUDGETS)]
        for (data_set, policy), c in sorted(collect(folder).items())
        for epoch in range(len(c[BUDGETS[0]]))
    ]
    return common.markdown_table(("set", "augmentation", "epoch", "5 %", "20 %", "100 %"), rows)


def plot(folder, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = collect(folder)
    fig, axes = plt.subplots(1, len(BUDGETS), figsize=(12, 3.4), squeeze=False)
    for ax, budget in zip(axes[0], BUDGETS):
        for (data_set, policy), c in sorted(runs.items()):
            ax.plot(
                range(len(c[budget])),
                100 * np.asarray(c[budget]),
                marker="o",
                markersize=3,
                label=f"{data_set}, {policy}",
            )
        ax.set_title(f"{float(budget) * 100:g} % of the labels")
        ax.set_xlabel("epoch (0 = the ImageNet start)")
        ax.set_ylabel("linear probe, cross-validated (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(
        "The guard's estimate on training images: augmentation policies (EfficientNet-Lite0, 80 px)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


def main():
    args = parse_args()
    if args.report:
        print(report(args.results))
        if args.plot:
            plot(args.results, args.plot)
        return
    run(args)


if __name__ == "__main__":
    main()
