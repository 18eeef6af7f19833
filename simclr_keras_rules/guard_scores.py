"""The scores `BackboneGuard` ranks candidates by (no Keras needed)."""

# Scores that need labels (class folders), and those that need none (their
# functions: `simclr_keras.evaluation.label_free.LABEL_FREE_SCORES`).
LABELLED_SCORES = ("budgets", "knn", "linear", "knn+linear")
LABEL_FREE_SCORE_NAMES = ("rankme", "alpha_req", "uniformity")
SCORES = LABELLED_SCORES + LABEL_FREE_SCORE_NAMES
