"""The names and rules of `simclr_keras`'s arguments that need no Keras.

A package of its own, beside `simclr_keras` (importing which imports Keras
and every module it has), so that the `simclr-keras` command can refuse a
bad argument in a fraction of a second, before it loads Keras, with the
library's own lists and rules: `backbone_names` (the zoo's names and how a
keras-hub preset or a saved model file is told apart from them),
`guard_scores` (the scores `BackboneGuard` takes), `preprocessing_modes`
(the input scalings a `preprocessing` argument names) and `recipes` (the
training recipes and the argument the pretrained one rules out). The library imports
these names from here; nothing here imports Keras.
"""
