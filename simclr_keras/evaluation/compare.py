"""The baseline-vs-SimCLR comparison table: linear probe and fine-tuning per label fraction."""

import os
import time

from simclr_keras._atomic import atomic_write_json, atomic_write_text
from simclr_keras._checks import check_fractions, check_labelled_pair, check_seeds
from simclr_keras.evaluation.features import extract_features
from simclr_keras.evaluation.finetune import finetune_evaluation
from simclr_keras.evaluation.linear_probe import linear_evaluation
from simclr_keras.model import SimCLR


def format_table(comparison, metric="accuracy"):
    """Markdown table `| fraction | classifier | <column>... |`, cells in % as mean ± std."""
    columns = comparison["columns"]
    lines = [
        "| fraction | classifier | " + " | ".join(columns) + " |",
        "|---" * (len(columns) + 2) + "|",
    ]
    for row in comparison["rows"]:
        cells = []
        for name in columns:
            cell = row.get(name)
            cells.append(
                "—"
                if cell is None
                else f"{100 * cell[metric]['mean']:.1f} ± {100 * cell[metric]['std']:.1f}"
            )
        lines.append(f"| {row['fraction']:.0%} | {row['classifier']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _probe_kept_note(finetuned):
    """A line under the table: how often fine-tuning kept the linear probe."""
    parts = []
    for name, by_fraction in finetuned.items():
        kept = [k for row in by_fraction.values() for k in row.get("kept", [])]
        if kept:
            parts.append(f"{name} {kept.count('probe')} of {len(kept)}")
    if not parts:
        return ""
    return (
        "\n\nFine-tuned rows: the linear probe was kept where the fine-tuned fold copies did "
        "not beat it on the labelled images they did not train on ("
        + ", ".join(parts)
        + " classifiers)."
    )


def compare_backbones(
    baseline,
    simclr_backbone,
    train,
    test,
    fractions=(0.05, 0.2, 1.0),
    seeds=(0, 1, 2),
    classifiers=("linear", "finetune"),
    depth="P3",
    extra_features=None,
    output_dir=None,
    preprocessing=None,
    image_size=None,
    batch_size=256,
    linear_kwargs=None,
    finetune_kwargs=None,
    names=("baseline", "SimCLR"),
    verbose=1,
):
    """Compare a baseline backbone with the SimCLR one; print and save the table.

    Keep the baseline with `snapshot_backbone(backbone)` before `SimCLR.fit`
    (which trains the backbone in place) for "the same backbone at random
    init". Neither model is changed.

    Args:
        baseline: A `keras.Model` (read at P3).
        simclr_backbone: A `SimCLR` (read at `depth`; fine-tuned through
            its `base_model`) or a plain `keras.Model`.
        train: `(images, labels)` the classifiers are trained on.
        test: `(images, labels)`, used only to score.
        fractions: Label fractions in (0, 1], as in `linear_evaluation`.
        seeds: One run per seed, as in `linear_evaluation`.
        classifiers: Any of `"linear"`, `"finetune"`.
        depth: Feature depth of `simclr_backbone` for the linear probe.
        extra_features: Optional `{name: (train_features, test_features)}`
            (e.g. `pixel_features`), extra linear-probe columns.
        output_dir: If given, writes `comparison.json` and `comparison.md`.
        preprocessing: For plain backbones, as in `extract_features` (a
            SimCLR's own settings apply to the baseline too when this and
            `image_size` are None).
        image_size: For plain backbones, as in `extract_features`.
        batch_size: Feature-extraction and test-scoring batch size.
        linear_kwargs: Passed to `linear_evaluation`.
        finetune_kwargs: Passed to `finetune_evaluation`.
        names: Column names of the two backbones.
        verbose: 1 prints progress and the table.

    Returns:
        `{"columns", "rows", "markdown", "results"}`.

    Example:
    >>> baseline = snapshot_backbone(backbone)                # doctest: +SKIP
    >>> simclr.fit(x_unlabelled, epochs=50)                   # doctest: +SKIP
    >>> table = compare_backbones(baseline, simclr, (x_tr, y_tr), (x_te, y_te))  # doctest: +SKIP
    """
    train = check_labelled_pair(train, "train", min_classes=2)
    test = check_labelled_pair(test, "test")
    fractions, seeds = check_fractions(fractions), check_seeds(seeds)
    if isinstance(classifiers, str):
        classifiers = (classifiers,)
    unknown = set(classifiers) - {"linear", "finetune"}
    if unknown:
        raise ValueError(
            f"`classifiers` must be among 'linear', 'finetune'. Received: {sorted(unknown)}"
        )
    if isinstance(simclr_backbone, SimCLR) and preprocessing is None and image_size is None:
        preprocessing, image_size = simclr_backbone.preprocessing, simclr_backbone.image_shape[:2]
    models = {names[0]: (baseline, "P3"), names[1]: (simclr_backbone, depth)}
    results = {"linear": {}, "finetune": {}}
    linear_kwargs, finetune_kwargs = dict(linear_kwargs or {}), dict(finetune_kwargs or {})
    linear_kwargs.setdefault("verbose", verbose)
    probe_kwargs = {k: linear_kwargs[k] for k in ("Cs", "max_folds") if k in linear_kwargs}
    for name, (model, model_depth) in models.items():
        plain = not isinstance(model, SimCLR)
        prep = dict(preprocessing=preprocessing, image_size=image_size) if plain else {}
        features = None
        if "linear" in classifiers:
            # Features once per backbone; every fraction and seed slices them.
            start = time.perf_counter()
            f_tr = extract_features(model, train[0], model_depth, batch_size, verbose=0, **prep)
            f_te = extract_features(model, test[0], model_depth, batch_size, verbose=0, **prep)
            if verbose:
                print(
                    f"{name}: features of {len(f_tr)} train + {len(f_te)} test images "
                    f"({f_tr.shape[1]}-d) in {time.perf_counter() - start:.1f} s",
                    flush=True,
                )
            results["linear"][name] = linear_evaluation(
                f_tr, train[1], f_te, test[1], fractions, seeds, **linear_kwargs
            )
            if model_depth == "P3":  # a kept probe is then the linear row's probe
                features = (f_tr, f_te)
        if "finetune" in classifiers:
            if verbose:
                print(f"{name}: fine-tuning", flush=True)
            results["finetune"][name] = finetune_evaluation(
                model,
                train,
                test,
                fractions=fractions,
                seeds=seeds,
                predict_batch_size=batch_size,
                verbose=verbose,
                probe_features=features,
                probe_kwargs=probe_kwargs,
                **prep,
                **finetune_kwargs,
            )
    for name, (f_tr, f_te) in (extra_features or {}).items():
        if "linear" in classifiers:
            results["linear"][name] = linear_evaluation(
                f_tr, train[1], f_te, test[1], fractions, seeds, **linear_kwargs
            )
    columns = list(models) + list(extra_features or {})
    rows = [
        {
            "fraction": float(f),
            "classifier": kind,
            **{n: results[kind].get(n, {}).get(float(f)) for n in columns},
        }
        for f in sorted(fractions, reverse=True)
        for kind in classifiers
    ]
    comparison = {"columns": columns, "rows": rows, "results": results}
    comparison["markdown"] = format_table(comparison) + _probe_kept_note(results["finetune"])
    if verbose:
        print(comparison["markdown"])
    if output_dir:
        atomic_write_json(comparison, os.path.join(output_dir, "comparison.json"), indent=2)
        atomic_write_text(comparison["markdown"] + "\n", os.path.join(output_dir, "comparison.md"))
    return comparison
