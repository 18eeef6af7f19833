"""Time the linear evaluation of `simclr-keras evaluate`, old code path vs new.

One labelled folder is split 80/20 with `split_directory`, features of a
seeded random-init backbone are extracted once, then the linear probe runs
at 5/20/100 % of the labels over three seeds twice: with the function as it
was at commit 60f824f (copied below: GridSearchCV over C, every seed's 100 %
refitted, default BLAS threads) and with today's `linear_evaluation`.
Both get the same features; the script prints each one's time and
accuracies (they should agree within noise).

Usage:
    tar xf /work/shared/data/imagenet5-224.tar -C /tmp
    PYTHONPATH=$PWD python benchmarks/evaluate_speed.py /tmp/imagenet5/train --image-size 64
"""

import argparse
import time
import warnings

import numpy as np


def old_select_linear_probe(features, labels, Cs, max_folds=5, seed=0, max_iter=2000):
    """`select_linear_probe` as of commit 60f824f."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    labels = np.asarray(labels)
    counts = np.unique(labels, return_counts=True)[1]
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter))
    folds = min(int(max_folds), int(counts.min()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if folds < 2 or len(Cs) == 1:
            C = float(Cs[0]) if len(Cs) == 1 else 1.0
            return pipe.set_params(logisticregression__C=C).fit(features, labels), C
        search = GridSearchCV(
            pipe,
            {"logisticregression__C": [float(c) for c in Cs]},
            cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
        )
        search.fit(features, labels)
    return search.best_estimator_, float(search.best_params_["logisticregression__C"])


def old_linear_evaluation(f_tr, y_tr, f_te, y_te, fractions, seeds, Cs):
    """`linear_evaluation` as of commit 60f824f (every seed refitted)."""
    from simclr_keras.evaluation.label_fractions import accuracy_and_f1, stratified_fraction

    out = {}
    for fraction in fractions:
        acc = []
        for seed in seeds:
            idx = stratified_fraction(y_tr, fraction, seed)
            probe, _ = old_select_linear_probe(f_tr[idx], y_tr[idx], Cs, 5, seed)
            acc.append(accuracy_and_f1(y_te, probe.predict(f_te))[0])
            print(f"  old {fraction:.0%} seed {seed}: accuracy {acc[-1]:.4f}", flush=True)
        out[fraction] = acc
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="a folder of class sub-folders (~2 000 images)")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--backbone", default="small_cnn", help="as for `pretrain`")
    parser.add_argument("--test-split", type=float, default=0.2)
    parser.add_argument("--skip-old", action="store_true", help="time the new path only")
    args = parser.parse_args()

    import keras

    from simclr_keras.backbones.zoo import PREPROCESSING, get_backbone
    from simclr_keras.data import load_split
    from simclr_keras.evaluation.features import extract_features
    from simclr_keras.evaluation.linear_probe import DEFAULT_CS, linear_evaluation

    fractions, seeds = (0.05, 0.2, 1.0), (0, 1, 2)
    size = (args.image_size, args.image_size)
    start = time.perf_counter()
    (x_tr, y_tr), (x_te, y_te) = load_split(args.folder, size, args.test_split, 0, verbose=0)
    print(f"{len(x_tr)} train + {len(x_te)} test images in {time.perf_counter() - start:.1f} s")
    keras.utils.set_random_seed(0)
    backbone = get_backbone(args.backbone, size + (3,))
    prep = dict(preprocessing=PREPROCESSING.get(args.backbone), image_size=size)
    start = time.perf_counter()
    f_tr = extract_features(backbone, x_tr, **prep)
    f_te = extract_features(backbone, x_te, **prep)
    print(f"features {f_tr.shape} + {f_te.shape} in {time.perf_counter() - start:.1f} s")

    start = time.perf_counter()
    new = linear_evaluation(f_tr, y_tr, f_te, y_te, fractions, seeds, verbose=1)
    new_s = time.perf_counter() - start
    print(f"NEW linear evaluation at 5/20/100 %, 3 seeds: {new_s:.1f} s", flush=True)
    old, old_s = None, float("nan")
    if not args.skip_old:
        start = time.perf_counter()
        old = old_linear_evaluation(f_tr, y_tr, f_te, y_te, fractions, seeds, DEFAULT_CS)
        old_s = time.perf_counter() - start
        print(f"OLD linear evaluation at 5/20/100 %, 3 seeds: {old_s:.1f} s", flush=True)
    print("\n| fraction | old accuracy % | new accuracy % |\n|---|---|---|")
    for f in fractions:
        o = (
            "—"
            if old is None
            else f"{100 * np.mean(old[f]):.1f} ± {100 * np.std(old[f], ddof=1):.1f}"
        )
        n = new[f]["accuracy"]
        print(f"| {f:.0%} | {o} | {100 * n['mean']:.1f} ± {100 * n['std']:.1f} |")
    print(f"| time | {old_s:.1f} s | {new_s:.1f} s |")


if __name__ == "__main__":
    main()
