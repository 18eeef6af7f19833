"""Online kNN accuracy of the backbone's features, logged during `fit()`."""

import keras
import numpy as np

from simclr_keras._checks import check_fraction, check_int, check_labels
from simclr_keras._images import check_images
from simclr_keras.evaluation.features import UnitRangeBatches, feature_model
from simclr_keras.evaluation.knn import knn_accuracy, knn_predict, split_bank_queries


class KNNMonitor(keras.callbacks.Callback):
    """Log the kNN accuracy of the backbone's features at the end of epochs.

    The value goes into the epoch's `logs` under `name`, so `History`,
    `CSVLogger`, `TensorBoard` and the progress bar show it. Keras passes one
    `logs` dict to the callbacks in list order and appends `History` and the
    `ProgbarLogger` after the user's callbacks, so both always see the value;
    put `KNNMonitor` before `CSVLogger`/`TensorBoard`/`EarlyStopping` in the
    list. On epochs skipped by `every` the key is absent, as Keras does with
    `validation_freq`.

    Args:
        images: Labelled images `(N, H, W, C)`, uint8 or float in [0, 1].
        labels: `(N,)` integer class ids (as everywhere: map names to ids first).
        k: Neighbours (Wu et al. use 200 on ImageNet; 20 suits small sets).
        temperature: Vote temperature, or None for a majority vote.
        every: Evaluate every `every` epochs (and after the last epoch).
        name: Key written into `logs`.
        validation: Optional `(images, labels)` queries; then all of
            `images` form the memory bank. Otherwise `query_fraction` of
            `images` (stratified) are the queries.
        query_fraction: Share of `images` used as queries without
            `validation`.
        batch_size: Images per forward pass.
        seed: Seed of the bank/query split.

    Returns:
        A `keras.callbacks.Callback`; `.values` lists `(epoch, accuracy)`.

    Example:
    >>> simclr.fit(x, epochs=10, callbacks=[KNNMonitor(x_small, y_small)])
    ... # doctest: +SKIP

    Reference:
        Wu, Xiong, Yu, Lin, "Unsupervised Feature Learning via Non-Parametric
        Instance Discrimination", CVPR 2018.
    """

    def __init__(
        self,
        images,
        labels,
        k=20,
        temperature=0.1,
        every=1,
        name="knn_acc",
        validation=None,
        query_fraction=0.2,
        batch_size=256,
        seed=0,
    ):
        super().__init__()
        images, labels = _check_labelled(images, labels, "images", "labels")
        if validation is not None:
            if not isinstance(validation, (tuple, list)) or len(validation) != 2:
                raise ValueError(
                    "`validation` must be a pair (images, labels). Received: "
                    f"validation of type {type(validation).__name__}"
                )
            query_images, query_labels = _check_labelled(
                *validation, "validation[0]", "validation[1]"
            )
            self.bank = (images, labels)
            self.queries = (query_images, query_labels)
        else:
            check_fraction(query_fraction, "query_fraction", allow_one=False)
            bank_idx, query_idx = split_bank_queries(labels, query_fraction, seed)
            if len(query_idx) == 0:
                raise ValueError(
                    "`images` are too few to split into a memory bank and "
                    f"queries; pass more or `validation=`. Received: {len(images)} images"
                )
            self.bank = (images[bank_idx], labels[bank_idx])
            self.queries = (images[query_idx], labels[query_idx])
        check_int(every, "every", minimum=1)
        check_int(batch_size, "batch_size", minimum=1)
        knn_predict(
            np.ones((1, 1)), [0], np.ones((1, 1)), k=k, temperature=temperature
        )  # validates k, T
        self.k, self.temperature, self.every, self.name = k, temperature, every, name
        self.batch_size = batch_size
        self.values = []
        self._extractor = self._extractor_of = None

    def evaluate(self):
        """KNN accuracy of the model's current backbone features."""
        bank = self._features(self.bank[0])
        queries = self._features(self.queries[0])
        return knn_accuracy(
            bank, self.bank[1], queries, self.queries[1], k=self.k, temperature=self.temperature
        )

    def _features(self, images):
        """P3 features, as `extract_features` computes them."""
        # The extractor shares the model's weights and is kept, and
        # `predict_on_batch` skips `predict`'s per-call data pipeline set-up
        # (about 0.2 s on TF), so an evaluation costs little beyond the
        # forward passes.
        if self._extractor is None or self._extractor_of is not self.model:
            self._extractor, self._extractor_of = feature_model(self.model, "P3"), self.model
        batches = UnitRangeBatches(images, batch_size=self.batch_size)
        out = [self._extractor.predict_on_batch(batches[i]) for i in range(len(batches))]
        return np.concatenate([np.asarray(o, dtype="float32") for o in out], axis=0)

    def on_epoch_end(self, epoch, logs=None):
        last = self.params.get("epochs") if self.params else None
        if (epoch + 1) % self.every and epoch + 1 != last:
            return
        accuracy = self.evaluate()
        self.values.append((epoch, accuracy))
        if logs is not None:
            logs[self.name] = accuracy


def _check_labelled(images, labels, image_name, label_name):
    images = np.asarray(images)
    if images.ndim not in (3, 4):
        raise ValueError(
            f"`{image_name}` must be (N, H, W, C) or (N, H, W). Received: shape {images.shape}"
        )
    if images.ndim == 3:
        images = images[..., None]
    check_images(images, image_name)  # float images outside [0, 1] fail here, not after an epoch
    # Integer class ids: the one rule for labels, as in the linear probe and fine-tuning.
    return images, check_labels(labels, len(images), label_name)
