"""`pretrain`'s argument checks that need no Keras: `main` runs them before
it loads Keras, so a bad flag is refused in a fraction of a second, with
the library's own lists and rules (`simclr_keras_rules`).
"""

from simclr_keras_cli.usage_errors import UsageError, as_usage_error, check_folder, check_output
from simclr_keras_rules.backbone_names import BACKBONE_NAMES, check_backbone_name
from simclr_keras_rules.guard_scores import SCORES
from simclr_keras_rules.preprocessing_modes import check_preprocessing
from simclr_keras_rules.recipes import check_unfrozen_layers, choose_recipe

# The library's argument names -> the flags, for usage errors raised before `fit`.
FLAGS = {
    "batch_size": "--batch-size",
    "num_of_unfrozen_layers": "--unfrozen-layers",
    "recipe": "--recipe",
    "GradualUnfreeze": "--unfreeze-schedule",
    "preprocessing": "--preprocessing",
    "n_clusters": "--pseudo-label-clusters",
    "temperature": "--temperature",
    "feat_dims_ph": "--feat-dims",
    "learning_rate": "--learning-rate",
    "jitter_strength": "--jitter-strength",
    "blur_probability": "--blur",
    "seed": "--seed",
    "image_size": "--image-size",
    "weights": "--weights",
    "cache_views": "--cache-views",
}


def check_arguments(args):
    """Raise a `UsageError` for a missing DATA_DIR, an `--output` that is a
    file, an unknown `--backbone`, `--preprocessing` or `--guard`, or `--unfrozen-layers` with
    the pretrained recipe (keras-hub, when installed, is not imported: its
    preset names are read from its files).
    """
    check_folder(args.data_dir, "DATA_DIR")
    check_output(args.output)
    with as_usage_error(FLAGS):
        check_backbone_name(args.backbone, "--backbone", import_hub=False)
        check_preprocessing(args.preprocessing)
    if args.guard not in ("auto", "off") + SCORES:
        raise UsageError(
            f"`--guard` must be auto, off or one of {', '.join(SCORES)}. "
            f"Received: --guard={args.guard!r}"
        )
    chosen_recipe(args)


def has_weights(args):
    """Whether the backbone comes with weights: `--weights`, or a backbone
    that is not a zoo name (a saved `.keras` file or a keras-hub preset).
    """
    return args.weights is not None or args.backbone not in BACKBONE_NAMES


def chosen_recipe(args):
    """The recipe in force (`--recipe`, or for `auto` the pretrained one when
    the backbone comes with weights); a `UsageError` when `--unfrozen-layers`
    is set for the pretrained recipe.
    """
    recipe = choose_recipe(args.recipe, has_weights(args))
    try:
        with as_usage_error(FLAGS):  # the library's rule: --unfrozen-layers is for scratch
            check_unfrozen_layers(recipe, args.unfrozen_layers)
    except UsageError as error:
        if args.recipe != "auto":
            raise
        raise UsageError(
            f"{error} (--recipe auto chose pretrained because the backbone has pretrained "
            "weights; pass --recipe scratch to set --unfrozen-layers)"
        ) from None
    return recipe
