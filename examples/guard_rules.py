"""Guard rules compared on the development sets' training images alone.

`BackboneGuard` accepts a candidate backbone when, at every label budget, its
paired gain over the start on the held-out training images is not worse
than one standard error and half a point, and keeps the accepted candidate
with the best mean accuracy. Is a stricter rule safer at 100 % of the
labels? This script answers it without any test image, in two steps:

1. `--dump`: run the README's quick start (`simclr-keras pretrain FOLDER
   --backbone efficientnet_lite0 --weights W --image-size 80 --test-split
   0.15 --seed S`) in this process and record, for every candidate the
   guard scores (the start, each epoch whose backbone changed, the WiSE-FT
   mixes), which of its held-out images every budget split's probe
   classifies correctly (`label_budgets.budget_correctness`). One
   `SET_sSEED.npz` + `.json` per run.
2. `--report`: for many random stratified halves of each run's held-out
   images, apply each rule on one half (the selection half) and measure the
   chosen candidate's gain over the start on the other half (an unbiased
   look at what the rule chose). Prints one row per rule: how often it
   kept the start, the mean gain at each budget on the other half, and how
   often that gain was below -0.5 points at 100 % and 20 %.

    python examples/guard_rules.py --dump --sets cifar10,digits,imagenet5 --seeds 0,1 \\
        --weights lite0.weights.h5 --output benchmarks/results/guard_rules
    python examples/guard_rules.py --report --output benchmarks/results/guard_rules
"""

import glob
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402

MAX_DROP = 0.005  # the guard's max_drop
# (name, z): "current" is the guard's rule (label_budgets.paired_comparison,
# m + z se >= 0 and m >= -max_drop at every budget); "strict" asks the
# opposite burden (m - z se >= -max_drop at every budget); "strict_high" is
# strict at 20 and 100 % only; "maxmin" keeps the candidate whose worst
# budget's m - z se is highest; "last_then_mixes" tries the last epoch, then
# the mixes from alpha 0.75 down, and keeps the first that passes strictly.
RULES = (
    ("current", 1.0),
    ("strict", 0.5),
    ("strict", 1.0),
    ("strict_high", 1.0),
    ("maxmin", 0.5),
    ("maxmin", 1.0),
    ("last_then_mixes", 0.5),
    ("last_then_mixes", 1.0),
)


def parse_args():
    p = _common.parser(__doc__)
    p.add_argument("--dump", action="store_true", help="run the quick starts and record")
    p.add_argument("--report", action="store_true", help="compare the rules on --output")
    p.add_argument("--sets", default="cifar10,digits,imagenet5", help="story sets")
    p.add_argument("--seeds", type=_common.int_list, default=[0, 1], help="pretrain seeds")
    p.add_argument("--weights", default=_common.LITE0_WEIGHTS, help="converted Lite0 weights")
    p.add_argument("--data-root", default="story_data", help="where the folders are made")
    p.add_argument("--output", required=True, help="folder of the raw files")
    p.add_argument("--halves", type=int, default=200, help="random halves per run (report)")
    return p.parse_args()


def dump(name, seed, args):
    """One quick start, every scored candidate's per-image correctness saved."""
    import cli_story

    from simclr_keras.callbacks import backbone_guard
    from simclr_keras.evaluation.label_budgets import budget_correctness
    from simclr_keras_cli.main import main

    stem = os.path.join(args.output, f"{name}_s{seed}")
    if os.path.isfile(stem + ".json"):
        print(f"{stem}: done already")
        return
    folder = cli_story.make_folder(name, args.data_root)
    candidates, guards = [], []

    def recording(features, labels, splits, *a, **k):
        correct = budget_correctness(features, labels, splits, *a, **k)
        candidates.append(correct)
        return np.array([float(np.mean(c)) for c in correct])

    original_scores, original_init = (
        backbone_guard.budget_scores,
        backbone_guard.BackboneGuard.__init__,
    )

    def init(self, *a, **k):
        original_init(self, *a, **k)
        guards.append(self)

    backbone_guard.budget_scores, backbone_guard.BackboneGuard.__init__ = recording, init
    try:
        code = main(
            ["pretrain", folder, "--backbone", "efficientnet_lite0", "--weights", args.weights]
            + ["--image-size", "80", "--test-split", "0.15", "--seed", str(seed)]
            + ["--output", stem]
        )
    finally:
        backbone_guard.budget_scores, backbone_guard.BackboneGuard.__init__ = (
            original_scores,
            original_init,
        )
    if code != 0:
        raise SystemExit(f"pretrain failed with exit code {code}")
    guard = guards[-1]
    arrays = {"labels": guard.labels}
    for i, split in enumerate(guard.splits):
        arrays[f"query_{i}"] = split.query
    for c, correct in enumerate(candidates):
        for i, row in enumerate(correct):
            arrays[f"c{c}_s{i}"] = row
    np.savez_compressed(stem + ".npz", **arrays)
    meta = {
        "set": name,
        "seed": seed,
        "budgets": [s.budget for s in guard.splits],
        "candidates": len(candidates),
        "mixes": sorted(guard.mix_scores),
        "result": guard.result,
        "summary": guard.summary(),
    }
    from simclr_keras.training import atomic_write_json

    atomic_write_json(meta, stem + ".json", indent=1)
    print(f"{stem}: {len(candidates)} candidates recorded", flush=True)


def load(stem):
    """`(meta, budgets, queries, correct)`: correct[c][i] for candidate c, split i."""
    meta = _common.read_json(stem + ".json")
    z = np.load(stem + ".npz")
    n = len(meta["budgets"])
    queries = [z[f"query_{i}"] for i in range(n)]
    correct = [[z[f"c{c}_s{i}"] for i in range(n)] for c in range(meta["candidates"])]
    return meta, np.array(meta["budgets"]), queries, correct, z["labels"]


def accuracies(correct, masks):
    """`(candidates, splits)` accuracy over each split's images in `masks[i]`."""
    return np.array([[row[i][masks[i]].mean() for i in range(len(masks))] for row in correct])


def gains(acc, budgets, c):
    """`{budget: (m, se)}` of candidate c's paired gain over the start (row 0)."""
    d = acc[c] - acc[0]
    out = {}
    for b in sorted(set(budgets)):
        v = d[budgets == b]
        out[b] = (float(v.mean()), float(v.std(ddof=1) / np.sqrt(len(v))))
    return out


def choose(acc, budgets, rule, mixes):
    """The candidate (row of `acc`, 0 = the start) a rule keeps."""
    from simclr_keras.evaluation.label_budgets import paired_comparison

    name, z = rule
    rows = range(1, len(acc))
    score = {
        c: np.mean([acc[c][budgets == b].mean() for b in sorted(set(budgets))])
        for c in range(len(acc))
    }
    if name == "maxmin":
        low = {c: min(m - z * se for m, se in gains(acc, budgets, c).values()) for c in rows}
        best = max(low, key=low.get)
        return best if low[best] >= -MAX_DROP else 0
    if name == "last_then_mixes":
        last = len(acc) - 1 - mixes
        for c in [last] + list(range(len(acc) - 1, last, -1)):
            if all(m - z * se >= -MAX_DROP for m, se in gains(acc, budgets, c).values()):
                return c
        return 0
    best = 0
    for c in rows:
        if name == "current":
            splits = [_Split(b) for b in budgets]
            ok = paired_comparison(splits, acc[c], acc[0], MAX_DROP, z)["accepted"]
        else:
            ok = all(
                m - z * se >= -MAX_DROP
                if (name == "strict" or b > 0.1)
                else (m + se >= 0 and m >= -MAX_DROP)
                for b, (m, se) in gains(acc, budgets, c).items()
            )
        if ok and score[c] > score[best]:
            best = c
    return best


class _Split:
    """What `paired_comparison` reads of a split: its budget."""

    def __init__(self, budget):
        self.budget = float(budget)


def report(args):
    rng = np.random.default_rng(0)
    stems = sorted(p[: -len(".npz")] for p in glob.glob(os.path.join(args.output, "*.npz")))
    rows = {rule: [] for rule in RULES}
    for stem in stems:
        meta, budgets, queries, correct, labels = load(stem)
        held = np.unique(np.concatenate(queries))
        for _ in range(args.halves):
            half = np.concatenate(
                [
                    rng.choice(
                        held[labels[held] == y], (labels[held] == y).sum() // 2, replace=False
                    )
                    for y in np.unique(labels[held])
                ]
            )
            select = [np.isin(q, half) for q in queries]
            acc_select = accuracies(correct, select)
            acc_check = accuracies(correct, [~m for m in select])
            for rule in RULES:
                c = choose(acc_select, budgets, rule, len(meta["mixes"]))
                g = gains(acc_check, budgets, c) if c else {b: (0.0, 0.0) for b in set(budgets)}
                rows[rule].append((os.path.basename(stem), c, [g[b][0] for b in sorted(g)]))
    names = [os.path.basename(s) for s in stems]
    header = [
        "rule",
        "start kept",
        "gain 5 %",
        "gain 20 %",
        "gain 100 %",
        "P(100 % < -0.5)",
        "P(20 % < -0.5)",
    ]
    header += [f"{n} (5 / 20 / 100 %)" for n in names]
    table = []
    for rule, found in rows.items():
        g = 100 * np.array([r[2] for r in found])
        per_run = [
            " / ".join(
                f"{v:+.1f}" for v in 100 * np.mean([r[2] for r in found if r[0] == n], axis=0)
            )
            for n in names
        ]
        table.append(
            [f"{rule[0]} z={rule[1]:g}", f"{100 * np.mean([r[1] == 0 for r in found]):.0f} %"]
            + [f"{v:+.1f}" for v in g.mean(axis=0)]
            + [f"{100 * np.mean(g[:, 2] < -0.5):.0f} %", f"{100 * np.mean(g[:, 1] < -0.5):.0f} %"]
            + per_run
        )
    text = _common.markdown_table(header, table)
    print(text)
    with open(os.path.join(args.output, "report.md"), "w") as fh:
        fh.write(text + "\n")


def main():
    args = parse_args()
    os.makedirs(args.output, exist_ok=True)
    if args.dump:
        for seed in args.seeds:
            for name in filter(None, args.sets.split(",")):
                dump(name, seed, args)
    if args.report:
        report(args)


if __name__ == "__main__":
    main()
