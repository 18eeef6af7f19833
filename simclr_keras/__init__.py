"""simclr_keras: SimCLR self-supervised training for any Keras 3 backbone.

Wrap a backbone, fit on unlabelled images, evaluate. The names here are the
ones a user needs; lower-level pieces live in the subpackages `layers`,
`backbones`, `data`, `callbacks`, `training` and `evaluation`, the loss functions in
`losses`, and every PNG plot the library draws in `plots`. Importing the package
imports all of them, so every class that a saved `.keras` file may name is
registered. scikit-learn and matplotlib are imported only when an evaluation or a
plot runs.

Example:
>>> import numpy as np
>>> from simclr_keras import SimCLR, small_cnn
>>> simclr = SimCLR(small_cnn((16, 16, 3)), (16, 16, 3), batch_size=8,
...                 feat_dims_ph=[32, 16], num_of_unfrozen_layers=None)
>>> simclr.fit(np.zeros((16, 16, 16, 3), "uint8"), epochs=1, verbose=0)  # doctest: +SKIP
"""

from simclr_keras import (
    backbones,
    callbacks,
    data,
    evaluation,
    layers,
    losses,
    optimizers,
    plots,
    recipe,
    training,
)
from simclr_keras.backbones import efficientnet_lite0 as efficientnet_lite0
from simclr_keras.backbones import get_backbone as get_backbone
from simclr_keras.backbones import resnet18 as resnet18
from simclr_keras.backbones import small_cnn as small_cnn
from simclr_keras.backbones import snapshot_backbone as snapshot_backbone
from simclr_keras.callbacks import BackboneGuard as BackboneGuard
from simclr_keras.callbacks import GradualUnfreeze as GradualUnfreeze
from simclr_keras.callbacks import KNNMonitor as KNNMonitor
from simclr_keras.callbacks import NaNLossError as NaNLossError
from simclr_keras.callbacks import ReclusterPseudoLabels as ReclusterPseudoLabels
from simclr_keras.callbacks import ResumableCheckpoint as ResumableCheckpoint
from simclr_keras.callbacks import StopOnNaN as StopOnNaN
from simclr_keras.data import DataGeneratorSimCLR as DataGeneratorSimCLR
from simclr_keras.data import encoder_pseudo_labels as encoder_pseudo_labels
from simclr_keras.data import pseudo_labels as pseudo_labels
from simclr_keras.evaluation import (
    compare_backbones as compare_backbones,
)
from simclr_keras.evaluation import (
    extract_features as extract_features,
)
from simclr_keras.evaluation import (
    finetune_evaluation as finetune_evaluation,
)
from simclr_keras.evaluation import (
    linear_evaluation as linear_evaluation,
)
from simclr_keras.layers import SimCLRAugmentation as SimCLRAugmentation
from simclr_keras.layers import SoftmaxCosineSim as SoftmaxCosineSim
from simclr_keras.losses import NTXent as NTXent
from simclr_keras.losses import nt_xent as nt_xent
from simclr_keras.model import SimCLR as SimCLR
from simclr_keras.optimizers import LARS as LARS
from simclr_keras.plots import plot_history as plot_history
from simclr_keras.plots import plot_tsne as plot_tsne
from simclr_keras.plots import plot_tsne_pair as plot_tsne_pair
from simclr_keras.plots import save_augmentation_preview as save_augmentation_preview
from simclr_keras.recipe import WarmupCosine as WarmupCosine
from simclr_keras.training import (
    data_parallel as data_parallel,
)
from simclr_keras.training import (
    fit_in_rounds as fit_in_rounds,
)

__version__ = "0.2.0"

_SUBPACKAGES = (
    backbones,
    callbacks,
    data,
    evaluation,
    layers,
    losses,
    optimizers,
    plots,
    recipe,
    training,
)

# The public names are the ones imported above as `name as name` (the
# explicit re-export form): `__all__` is derived from them, not repeated.
__all__ = sorted(
    name
    for name, value in dict(globals()).items()
    if not name.startswith("_")
    and value not in _SUBPACKAGES
    and getattr(value, "__module__", "").startswith("simclr_keras.")
)
