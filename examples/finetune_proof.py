"""Fine-tuned against linear, through `simclr-keras evaluate`, on pretrain run folders.

For each run folder (a `pretrain` run: `backbone.keras`, `initial_backbone.keras`,
`run.json`) this runs

    simclr-keras evaluate --backbone RUN/backbone.keras --classifiers linear,finetune

(the start and the SimCLR result, linear probe and fine-tuning at 5 / 20 / 100 %
of the labels, three label draws) into OUTPUT/NAME, timed, and copies each
run's `comparison.json`, its log and the time into OUTPUT. A finished set is
skipped, so rerunning the command resumes. `--report` prints the tables of the
documentation's fine-tuning results page from OUTPUT:

    python examples/finetune_proof.py --runs cifar10=runs/cifar10_pretrained_s0,... \
        --output benchmarks/results/finetuning
    python examples/finetune_proof.py --output benchmarks/results/finetuning --report
"""

import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402

FRACTIONS = (0.05, 0.2, 1.0)


def parse_args():
    p = _common.parser(__doc__)
    p.add_argument(
        "--runs",
        default="",
        help="NAME=RUN_FOLDER pairs, comma-separated (the pretrain runs to evaluate)",
    )
    p.add_argument("--output", required=True, help="folder for the raw files")
    p.add_argument("--report", action="store_true", help="print the tables from --output")
    return p.parse_args()


def evaluate(name, run, output):
    """One `evaluate` run into OUTPUT/NAME; its comparison, log and time kept."""
    target = os.path.join(output, name)
    if os.path.isfile(os.path.join(output, f"{name}.json")):
        print(f"{name}: done already ({output}/{name}.json)")
        return
    command = [
        "simclr-keras",
        "evaluate",
        "--backbone",
        os.path.join(run, "backbone.keras"),
        "--classifiers",
        "linear,finetune",
        "--finetune-cache",
        "none",
        "--output",
        target,
    ]
    print(" ".join(command), flush=True)
    start, load_before = time.time(), os.getloadavg()[0]
    with open(os.path.join(output, f"{name}.log"), "w") as log:
        subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=True)
    seconds = time.time() - start
    with open(os.path.join(target, "comparison.json")) as fh:
        comparison = json.load(fh)
    record = {
        "command": " ".join(command),
        "seconds": round(seconds, 1),
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        **comparison,
    }
    from simclr_keras.training import atomic_write_json

    atomic_write_json(record, os.path.join(output, f"{name}.json"))
    print(f"{name}: {seconds / 60:.1f} min", flush=True)


def report(output):
    """The results page's tables, from OUTPUT/*.json, as Markdown text."""
    names = sorted(f[:-5] for f in os.listdir(output) if f.endswith(".json"))
    lines = [
        "| set | backbone | labels | linear | fine-tuned | fine-tuned − linear "
        "| lowest draw | probe kept |",
        "|---|---|---|---|---|---|---|---|",
    ]
    records = {}
    for name in names:
        with open(os.path.join(output, f"{name}.json")) as fh:
            records[name] = json.load(fh)
        results = records[name]["results"]
        for column, label in (("baseline", "start"), ("SimCLR", "SimCLR result")):
            for fraction in FRACTIONS:
                key = str(fraction)
                linear = results["linear"][column][key]["accuracy"]["mean"] * 100
                tuned_entry = results["finetune"][column][key]
                tuned = tuned_entry["accuracy"]["mean"] * 100
                kept = tuned_entry["kept"]
                pairs = zip(
                    tuned_entry["accuracy"]["values"],
                    results["linear"][column][key]["accuracy"]["values"],
                )
                lowest = min(100 * (t - lin) for t, lin in pairs)
                lines.append(
                    f"| {name} | {label} | {fraction:.0%} | {linear:.1f} | {tuned:.1f} | "
                    f"{tuned - linear:+.1f} | {lowest:+.1f} | {kept.count('probe')} of {len(kept)} |"
                )
    lines += ["", "| set | evaluate (linear + fine-tuned, both backbones) |", "|---|---|"]
    lines += [f"| {name} | {records[name]['seconds'] / 60:.1f} min |" for name in names]
    lines += ["", "Load average (1 min) at the start and end of each run: "]
    lines[-1] += "; ".join(
        f"{name} {'/'.join(str(v) for v in records[name].get('load_average', ['?']))}"
        for name in names
    )
    return "\n".join(lines)


def main():
    args = parse_args()
    os.makedirs(args.output, exist_ok=True)
    if args.report:
        print(report(args.output))
        return
    for pair in filter(None, args.runs.split(",")):
        name, run = pair.split("=", 1)
        evaluate(name, run, args.output)


if __name__ == "__main__":
    main()
