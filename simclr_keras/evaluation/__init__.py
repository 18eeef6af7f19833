"""Evaluation: features at P1/P2/P3, linear probe and fine-tuning at label
fractions, kNN, label-free scores (RankMe, alpha-ReQ, uniformity), the label-budget
estimates, the baseline-vs-SimCLR table. The callbacks that use them while training
(`KNNMonitor`, `BackboneGuard`) are in `simclr_keras.callbacks`; the plots (t-SNE
included) in `simclr_keras.plots`.
"""

from simclr_keras.evaluation.compare import compare_backbones
from simclr_keras.evaluation.features import extract_features
from simclr_keras.evaluation.finetune import (
    Committee,
    FineTuner,
    accept_finetuning,
    finetune_classifier,
    finetune_evaluation,
    no_gain_yet,
)
from simclr_keras.evaluation.knn import knn_accuracy, knn_predict
from simclr_keras.evaluation.label_fractions import stratified_fraction, summarize
from simclr_keras.evaluation.label_free import alpha_req, rankme, uniformity_score
from simclr_keras.evaluation.linear_probe import (
    linear_evaluation,
    pixel_features,
    probe_predictions,
)

__all__ = [
    "Committee",
    "FineTuner",
    "accept_finetuning",
    "alpha_req",
    "compare_backbones",
    "extract_features",
    "finetune_classifier",
    "finetune_evaluation",
    "knn_accuracy",
    "knn_predict",
    "linear_evaluation",
    "no_gain_yet",
    "pixel_features",
    "probe_predictions",
    "rankme",
    "stratified_fraction",
    "summarize",
    "uniformity_score",
]
