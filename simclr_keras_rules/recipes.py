"""The training recipes, how one is chosen, and the argument the pretrained
recipe rules out (no Keras needed; what a recipe does while training is in
`simclr_keras.training.pretrained`).
"""

RECIPES = ("scratch", "pretrained")


def check_recipe(recipe):
    """Return `recipe` ("scratch" for None) or raise naming the choices.

    Example:
    >>> check_recipe(None)
    'scratch'
    """
    if recipe is None:
        return "scratch"
    if not any(type(recipe) is type(c) and recipe == c for c in RECIPES):
        raise ValueError(
            f"`recipe` must be one of {(None,) + RECIPES}. Received: recipe={recipe!r}"
        )
    return recipe


def choose_recipe(recipe, has_weights=False):
    """The recipe in force: `recipe`, or for `"auto"` the pretrained one when
    the backbone comes with weights (`has_weights`), else scratch.

    Example:
    >>> choose_recipe("auto", has_weights=True), choose_recipe(None)
    ('pretrained', 'scratch')
    """
    if recipe == "auto":
        return "pretrained" if has_weights else "scratch"
    return check_recipe(recipe)


def check_unfrozen_layers(recipe, num_of_unfrozen_layers):
    """Raise when `num_of_unfrozen_layers` is set for the pretrained recipe,
    which unfreezes the backbone by its own schedule.

    Example:
    >>> check_unfrozen_layers("pretrained", 2)
    Traceback (most recent call last):
    ...
    ValueError: `num_of_unfrozen_layers` applies to the scratch recipe only: ...
    """
    if check_recipe(recipe) == "pretrained" and num_of_unfrozen_layers is not None:
        raise ValueError(
            "`num_of_unfrozen_layers` applies to the scratch recipe only: the pretrained "
            "recipe unfreezes the backbone by its own schedule (the projection head alone "
            "first, then the top half of the backbone), so leave `num_of_unfrozen_layers` "
            "unset, or pass a `GradualUnfreeze` with your own stages. Received: "
            f"num_of_unfrozen_layers={num_of_unfrozen_layers!r} with recipe='pretrained'"
        )
