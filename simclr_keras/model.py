"""`SimCLR`: wraps any Keras 3 backbone for contrastive self-supervised training."""

import os

import keras
from keras import ops

from simclr_keras._checks import check_int, check_number, check_seed, check_temperature
from simclr_keras._export import simclr_export
from simclr_keras._images import check_image_shape, check_images
from simclr_keras.backbones import freezing as bb
from simclr_keras.backbones import spec as backbone_spec
from simclr_keras.callbacks.follow_epoch import FollowEpoch
from simclr_keras.callbacks.gradual_unfreeze import GradualUnfreeze
from simclr_keras.callbacks.resumable_checkpoint import ResumableCheckpoint
from simclr_keras.callbacks.stop_on_nan import StopOnNaN
from simclr_keras.callbacks.warn_on_chance_loss import WarnOnChanceLoss
from simclr_keras.data import batch_check
from simclr_keras.data.generator import DataGeneratorSimCLR
from simclr_keras.layers.augmentation import make_augmentation
from simclr_keras.layers.input_scaling import (
    ImagePreprocess,
    apply_preprocessing,
    check_preprocessing,
    deserialize_preprocessing,
    serialize_preprocessing,
    warn_missing_preprocessing,
)
from simclr_keras.layers.projection_head import build_projection_head
from simclr_keras.losses import NTXent, contrastive_accuracy
from simclr_keras.recipe import OPTIMIZER_RECIPES, WarmupCosine, head_dims, make_optimizer
from simclr_keras.training.distribution import check_batch_size
from simclr_keras.training.pretrained import AUGMENTATION as PRETRAINED_AUGMENTATION
from simclr_keras.training.pretrained import check_recipe, pretrained_unfreeze


def _check_arguments(base_model, batch_size, seed, save_path, l1_ph, learning_rate, temperature):
    """Fail early, naming the argument, on what `SimCLR(...)` cannot use."""
    check_int(batch_size, "batch_size", minimum=2, why="so every image has negatives")
    check_batch_size(batch_size)  # divisible by the devices, if distributed
    check_seed(seed)
    if save_path is not None and not (
        isinstance(save_path, (str, os.PathLike)) and os.fspath(save_path).endswith(".keras")
    ):
        raise ValueError(
            "`save_path` must be None or a file path ending in `.keras`. "
            f"Received: save_path={save_path!r}"
        )
    check_number(l1_ph, "l1_ph", minimum=0)
    if not isinstance(learning_rate, keras.optimizers.schedules.LearningRateSchedule):
        check_number(learning_rate, "learning_rate", positive=True, allow_none=True)
    check_temperature(temperature)


def _no_target(y_pred):
    """A placeholder target, one zero per projection (the losses ignore it)."""
    return ops.zeros_like(y_pred[:, 0])


@simclr_export("simclr_keras.SimCLR")
class SimCLR(keras.Model):
    """SimCLR around any Keras backbone: augment twice, encode, project, NT-Xent.

    One training step takes a batch of `B` source images, draws two augmented
    views of each on the device, runs the `2B` views through the backbone in
    one call (a real batch, so BatchNorm sees `2B` images), average-pools a
    4-D output, projects with the MLP head and scores the `2B` projections
    with NT-Xent (`losses.NTXent`); `call` returns the projections.
    A vision transformer's `(B, T, D)` tokens are pooled by the class token
    (or the mean of the patch tokens, `token_pooling`).
    `fit()` logs `loss` and `contrastive_acc` (positive ranked first of its
    `2B - 1` candidates). The backbone is trained in place: `simclr.base_model`
    is the object passed in.

    Args:
        base_model: A `keras.Model` with one image input and one output:
            functional, Sequential (with or without an `Input`: a model
            without one is built on `input_shape`), subclassed, from
            `keras.applications` (e.g. with `include_top=False`) or a
            keras-hub backbone (`keras_hub.models.Backbone.from_preset`),
            CNN or vision transformer. Its output may be `(B, d)`, a
            feature map `(B, H, W, C)` (average-pooled) or tokens
            `(B, T, D)` (see `token_pooling`). A `channels_first` backbone
            is fed transposed images.
        input_shape: `(H, W, C)` of the images the backbone takes (channels
            last); views are cropped and resized to it.
        batch_size: Source images per step (`B`, at least 2); each step has
            `2B` views. Arrays passed to `fit()` are batched with it.
        feat_dims_ph: Output sizes of the projection head's Dense layers,
            e.g. `[2048, 128]`, or a paper's head: `"simclr_v1"` (`[w, 128]`)
            or `"simclr_v2"` (`[w, w, 128]`), with `w` the backbone's
            feature width and batch norm after every Dense.
        num_of_unfrozen_layers: How many of the backbone's last layers *that
            hold weights* train (pooling/activation layers are not counted);
            `None` or -1 trains the whole backbone, 0 freezes it.
        temperature: NT-Xent temperature (> 0).
        token_pooling: For a backbone that outputs tokens `(B, T, D)` (a
            vision transformer): `"class"`, the class token (token 0), or
            `"mean"`, the mean of the patch tokens (class, distillation and
            register tokens left out). None: the class token when the
            backbone has one, else the mean (a keras-hub ViT with
            `use_class_token=False`, a Swin). Used by `encode`,
            `extract_features` and the exported backbone.
        augmentation: A policy name: `"simclr"` (the default: SimCLR's
            crop of 8-100 % of the image, flip, colour jitter, grayscale),
            `"mild"` (crops of 50-100 %, for a pretrained start) or
            `"colour"` (colour only, the whole image); or a
            `SimCLRAugmentation`, or a dict of its arguments.
        preprocessing: How augmented [0, 1] images are scaled for the
            backbone: None (keep [0, 1]), a mode or `keras.applications`
            family name such as `"vgg16"`, or a callable taking [0, 255]
            images such as `keras.applications.vgg16.preprocess_input`.
            A `keras.applications` or keras-hub network passed without it
            gets a warning that names the scaling it needs.
        use_batch_norm_ph: BatchNorm in the projection head (SimCLR v2).
        l1_ph: L1 activity regularisation of the head's output (off).
        optimizer: A Keras optimizer or its name (default Adam), or
            SimCLR's recipe: `"lars"`: `LARS` (momentum 0.9, weight decay
            1e-6, batch-norm and bias variables excluded) with peak rate
            `0.075 * sqrt(batch_size)` (square-root scaling, SimCLR
            appendix B.1 / v2, for small batches), linear warm-up over 10
            epochs (at most 10 % of the run) then cosine decay to 0
            (`WarmupCosine`); `"lars_linear"`: the same with `0.3 *
            batch_size / 256`. The schedule's length is set by the first
            `fit()` from `len(data)` (or `steps_per_epoch`) and `epochs`,
            the run's total, and is saved with the optimizer, so a resumed
            or reloaded model continues the same schedule.
        learning_rate: Used when `optimizer` is None or a name: Adam's rate
            (default 1e-3) or the recipe's peak rate (default: the
            scaling rule above).
        recipe: None / `"scratch"` (the settings above, for backbones
            trained from scratch) or `"pretrained"`: for a backbone with
            pretrained weights, `fit()` trains the projection head alone for
            the first epoch (backbone frozen), then the top half of the
            backbone (its batch norm adapting to the images) at a lower
            rate (`simclr_keras.training.pretrained_schedule`, applied by a
            `GradualUnfreeze` callback unless one is passed), with the
            `"mild"` augmentation unless `augmentation` is given.
            Pair it with a `BackboneGuard` to keep the best epoch.
        save_path: Optional `.keras` path: a convenience that makes `fit()`
            add `ResumableCheckpoint(save_path)` (per-epoch kill-safe
            checkpoints, resume, final save). Run state, not architecture:
            neither it nor `learning_rate` is in `get_config()`, so a
            reloaded model does not resume the run that saved it (pass the
            callback, or set `simclr.save_path`, to checkpoint again; the
            learning rate is restored with the compiled optimizer).
        seed: Integer seed for the augmentation and the batch order.
        **kwargs: Standard `keras.Model` arguments.

    Returns:
        A compiled `keras.Model`; `fit(images)` trains it.

    Example:
    >>> base = keras.applications.VGG16(include_top=False, weights=None,
    ...                                 input_shape=(64, 64, 3))
    >>> simclr = SimCLR(base, (64, 64, 3), batch_size=16, feat_dims_ph=[256, 64],
    ...                 num_of_unfrozen_layers=2, preprocessing="vgg16")
    >>> simclr.fit(images, epochs=2)                      # doctest: +SKIP
    >>> features = extract_features(simclr, images)       # doctest: +SKIP

    Reference:
        Chen, Kornblith, Norouzi, Hinton, "A Simple Framework for
        Contrastive Learning of Visual Representations", ICML 2020.
    """

    def __init__(
        self,
        base_model,
        input_shape,
        batch_size,
        feat_dims_ph=(2048, 128),
        num_of_unfrozen_layers=None,
        *,
        temperature=0.1,
        token_pooling=None,
        augmentation=None,
        preprocessing=None,
        use_batch_norm_ph=False,
        l1_ph=0.0,
        optimizer=None,
        learning_rate=None,
        save_path=None,
        seed=None,
        recipe=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        _check_arguments(base_model, batch_size, seed, save_path, l1_ph, learning_rate, temperature)
        # Builds a backbone without an Input on `input_shape` (so every
        # variable exists before the optimizer is built over them) and
        # refuses several inputs or outputs with one message.
        warn_missing_preprocessing(base_model, preprocessing)
        spec = backbone_spec.describe_backbone(base_model, input_shape, token_pooling)
        base_model = backbone_spec.single_output_model(base_model, spec)
        if isinstance(feat_dims_ph, str):
            head, use_batch_norm_ph = head_dims(feat_dims_ph, spec.width), True
        else:
            feat_dims_ph = head = list(feat_dims_ph)
        # Config: the architecture (run state such as `save_path` is not).
        self.image_shape = spec.input_shape
        self.token_pooling = spec.token_pooling
        self.batch_size = batch_size
        self.feat_dims_ph = feat_dims_ph
        self.num_of_unfrozen_layers = bb.check_unfrozen(base_model, num_of_unfrozen_layers)
        self.temperature = float(temperature)
        self.preprocessing = check_preprocessing(preprocessing)
        self.use_batch_norm_ph = bool(use_batch_norm_ph)
        self.l1_ph = float(l1_ph)
        self.seed = seed
        self.optimizer_recipe = optimizer if optimizer in OPTIMIZER_RECIPES else None
        # Layers.
        self.base_model = base_model
        self.backbone_spec = spec
        bb.set_unfrozen_layers(base_model, self.num_of_unfrozen_layers)
        self.to_backbone = backbone_spec.input_adapter(spec)
        self.projection_head = build_projection_head(
            spec.width, head, self.use_batch_norm_ph, self.l1_ph
        )
        # Assigned after the head: Keras names a sub-model's weights in a .keras
        # file by its class and position (`layers/sequential_1`), so a pooling
        # Sequential before the head would move the head's weights and files
        # saved earlier (tests/fixtures) would no longer load.
        self.pool = backbone_spec.pooling_layer(spec)
        if augmentation is None and recipe == "pretrained":
            augmentation = PRETRAINED_AUGMENTATION
        self.augmentation = make_augmentation(augmentation, self.image_shape, self.seed)
        # Run state, not config: `fit()` adds a `ResumableCheckpoint` for it.
        self.save_path = save_path
        self.learning_rate = learning_rate
        self.recipe = check_recipe(recipe)
        self.compile(optimizer=make_optimizer(optimizer, batch_size, learning_rate))
        # Every variable exists now (the backbone is built, the head has an
        # Input, the augmentation only holds seed states). Building the
        # optimizer too makes a model saved before training reload cleanly.
        self.built = True
        self.optimizer.build(self.trainable_variables)

    def compile(self, optimizer="adam", loss=None, metrics=None, **kwargs):
        """Compile with NT-Xent and the contrastive accuracy.

        `loss` and `metrics` default to `NTXent(temperature)` and
        `contrastive_acc`; other `keras.Model.compile` arguments pass through.
        """
        loss = loss or NTXent(self.temperature)
        metrics = metrics or [
            keras.metrics.MeanMetricWrapper(contrastive_accuracy, name="contrastive_acc")
        ]
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    def compile_from_config(self, config):
        loss = config.get("loss")
        if isinstance(loss, dict) and loss.get("class_name") == "IOIOCrossEntropy":
            # Saved by 0.2.0, which trained on the `[I|O|I|O]` block: the
            # same loss is now `NTXent` on the projections (the default).
            config = {k: v for k, v in config.items() if k not in ("loss", "metrics")}
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def encode(self, images, training=False):
        """Pooled backbone features (P3) of already-preprocessed images."""
        if self.to_backbone is not None:
            images = self.to_backbone(images)
        return self.pool(self.base_model(images, training=training))

    def call(self, images, training=False):
        # Views are drawn in evaluation too, so `evaluate()` reports the
        # contrastive loss of the task the model is trained on.
        view_a = self.augmentation(images, training=True)
        view_b = self.augmentation(images, training=True)
        views = apply_preprocessing(ops.concatenate([view_a, view_b], axis=0), self.preprocessing)
        features = self.encode(views, training=training)
        if not self.base_model.trainable_weights:
            # A frozen backbone needs no backward pass. TensorFlow's tape
            # would still build one (its variables stay watched) and prune
            # it only at run time, after optimising it: a longer compile.
            features = ops.stop_gradient(features)
        return self.projection_head(features, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        # No labels: the positives follow from the layout of `y_pred` (view a
        # then view b). Keras' compiled loss wants a target; this one is unused.
        return super().compute_loss(
            x=x, y=_no_target(y_pred), y_pred=y_pred, sample_weight=sample_weight, training=training
        )

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        return super().compute_metrics(x, _no_target(y_pred), y_pred, sample_weight)

    def fit(self, x=None, y=None, epochs=1, shuffle=True, callbacks=None, **kwargs):
        """Train on images: a NumPy array (batched into full batches of
        `batch_size`, reshuffled each epoch), a `DataGeneratorSimCLR`, a
        `keras.utils.PyDataset` or a `tf.data.Dataset` of image batches.

        A NaN loss stops training with `NaNLossError`; a loss at chance
        level, log(2B - 1), for an epoch gives a `ChanceLossWarning`. With
        `save_path`, a `ResumableCheckpoint(save_path)` is added: a
        checkpoint is written atomically after every epoch, running the same
        call again after an interruption resumes from the last finished
        epoch, and the final model is saved to `save_path`.

        Returns:
            The Keras `History` (over all epochs when resumed).
        """
        if y is not None:
            raise ValueError(
                "SimCLR trains without labels: pass images only. Received: "
                "y of type " + type(y).__name__
            )
        check_int(epochs, "epochs", minimum=1)
        check_int(kwargs.get("initial_epoch", 0), "initial_epoch", minimum=0)
        batches = self._as_batches(x, shuffle, kwargs.get("initial_epoch"))
        if batches is not x:
            self._check_fit_batch_size(kwargs.pop("batch_size", None))
            x = batches
        if isinstance(x, keras.utils.PyDataset):
            # The data set orders its batches from its own seed; Keras would
            # reorder them again with Python's unseeded `random`.
            shuffle = False
        self._configure_schedule(x, epochs, kwargs.get("steps_per_epoch"))
        callbacks = self._default_callbacks(x, callbacks)
        if self.recipe == "pretrained" and not any(
            isinstance(c, GradualUnfreeze) for c in callbacks
        ):
            callbacks.insert(0, pretrained_unfreeze(self, epochs))
        try:
            return super().fit(x, epochs=epochs, shuffle=shuffle, callbacks=callbacks, **kwargs)
        except Exception as error:
            batch_check.reraise(error)  # a batch that failed its check
            raise

    def _default_callbacks(self, x, callbacks):
        """The caller's callbacks plus, unless given: `StopOnNaN` and
        `WarnOnChanceLoss` first, `ResumableCheckpoint(save_path)` last, and
        for a `DataGeneratorSimCLR` the batch order of the epoch that runs
        (a resumed run continues the interrupted run's order).
        """
        callbacks = list(callbacks or [])
        if not any(isinstance(c, StopOnNaN) for c in callbacks):
            callbacks.insert(0, StopOnNaN())
        if not any(isinstance(c, WarnOnChanceLoss) for c in callbacks):
            callbacks.insert(1, WarnOnChanceLoss())
        if isinstance(x, DataGeneratorSimCLR):
            callbacks.insert(0, FollowEpoch(x))
        if self.save_path and not any(isinstance(c, ResumableCheckpoint) for c in callbacks):
            callbacks.append(ResumableCheckpoint(self.save_path))
        return callbacks

    def _configure_schedule(self, x, epochs, steps_per_epoch=None):
        """Give a `WarmupCosine` learning rate its run length, once: from
        `steps_per_epoch`, else `len(x)`, and `epochs`.
        """
        schedule = getattr(self.optimizer, "_learning_rate", None)
        if not isinstance(schedule, WarmupCosine) or schedule.configured:
            return
        if steps_per_epoch is None:
            try:
                steps_per_epoch = len(x)
            except TypeError:
                raise ValueError(
                    "The warm-up + cosine schedule needs the number of steps per "
                    "epoch: pass `steps_per_epoch` to `fit()` for data without a "
                    f"length. Received: x of type {type(x).__name__}"
                ) from None
        schedule.configure(int(steps_per_epoch), int(epochs))
        self.train_function = None  # trace again with the configured schedule

    def evaluate(self, x=None, y=None, **kwargs):
        """Contrastive loss and accuracy on images, batched like `fit()`."""
        if y is not None:
            raise ValueError(
                "SimCLR evaluates without labels: pass images only. Received: "
                "y of type " + type(y).__name__
            )
        batches = self._as_batches(x, shuffle=False)
        if batches is not x:
            self._check_fit_batch_size(kwargs.pop("batch_size", None))
        try:
            return super().evaluate(batches, **kwargs)
        except Exception as error:
            if hasattr(self, "jax_state_sync"):
                # Keras' JAX evaluate() detaches the weights while it runs and
                # reattaches them only when it ends normally (fit() has a
                # `finally` for it): reattach them, or the model is unusable.
                self.jax_state_sync()
            batch_check.reraise(error)  # a batch that failed its check
            raise

    def _as_batches(self, x, shuffle=True, initial_epoch=0):
        """An image array as a `DataGeneratorSimCLR` of `self.batch_size`
        (full batches, seeded order from `self.seed`, starting at
        `initial_epoch`); any other data is returned unchanged.
        """
        if isinstance(x, (list, tuple)):
            x = check_image_shape(x, "x")  # a list of images
        if not (hasattr(x, "shape") and hasattr(x, "dtype")):
            self._check_data(x)
            channels = self.image_shape[-1]
            if isinstance(x, keras.utils.PyDataset) and not isinstance(x, DataGeneratorSimCLR):
                return batch_check.CheckedBatches(x, channels, self.batch_size)
            if batch_check.is_tf_dataset(x):
                return batch_check.checked_tf_dataset(x, channels, self.batch_size)
            return x
        x = check_images(x, "x", channels=self.image_shape[-1])
        batches = DataGeneratorSimCLR(
            x, batch_size=self.batch_size, shuffle=shuffle, seed=self.seed, _checked=True
        )
        batches.set_epoch(int(initial_epoch or 0))
        return batches

    def _check_fit_batch_size(self, batch_size):
        """Arrays are batched by `self.batch_size`; another `batch_size` is an error."""
        if batch_size is not None and batch_size != self.batch_size:
            raise ValueError(
                "`batch_size` of `fit`/`evaluate` must be None or SimCLR's `batch_size` "
                f"({self.batch_size}), which batches arrays. Received: batch_size={batch_size!r}"
            )

    def _check_data(self, x):
        """Early checks of a data set passed to `fit`/`evaluate`: its batch size
        must be `self.batch_size` (the loss and the BatchNorm statistics depend
        on it) and its first batch must hold valid images.
        """
        if x is None:
            raise ValueError(
                "`x` must be images: an array (N, H, W, C), a DataGeneratorSimCLR or a "
                "keras.utils.PyDataset / tf.data.Dataset of image batches. Received: x=None"
            )
        size = getattr(x, "batch_size", None)
        if isinstance(x, DataGeneratorSimCLR):
            first_shape = (size,) + x.image_shape
        elif isinstance(x, keras.utils.PyDataset) and (x.num_batches or 0) > 0:
            # The first and the last batch now (a short last batch fails at
            # once); every batch again as it is read (`CheckedBatches`).
            channels = self.image_shape[-1]
            first = batch_check.check_batch(x[0], "x[0]", channels, self.batch_size)
            last = x.num_batches - 1
            batch_check.check_batch(x[last], f"x[{last}]", channels, self.batch_size)
            first_shape, size = first.shape, len(first)
        else:
            return
        if size != self.batch_size:
            raise ValueError(
                f"The data set's batch size must equal SimCLR's `batch_size` "
                f"({self.batch_size}): the loss and the negatives depend on it. Received: "
                f"batches of {size} images from {type(x).__name__}; build it with "
                f"batch_size={self.batch_size} or the model with batch_size={size}"
            )
        if first_shape[-1] != self.image_shape[-1]:
            raise ValueError(
                f"`x` must have {self.image_shape[-1]} channel(s), as the backbone's "
                f"input. Received: batches of shape {first_shape}"
            )

    def export_backbone(self, path):
        """Save the trained backbone with its input scaling as `.keras`.

        The saved model takes what `SimCLR` feeds its augmentation's output
        to: float `(B, H, W, C)` images in [0, 1]. With `preprocessing`,
        it is `ImagePreprocess(preprocessing)` followed by the backbone, so
        `extract_features`, `finetune_evaluation` and `simclr-keras
        evaluate` score it with the scaling it was pretrained with and no
        repeated flag (keras-hub likewise keeps its image converter with
        the model); loading it takes `import simclr_keras` (which registers
        the layer). Without `preprocessing` it is the backbone alone and
        loads with plain `keras.saving.load_model`, without simclr_keras.
        A backbone that outputs tokens is saved with its token pooling
        (plain Keras layers), so the file outputs the `(B, D)` features
        SimCLR trained; a `channels_first` backbone is saved between two
        `Permute` layers, so the file takes and returns channels-last
        tensors like any other.

        Args:
            path: Output file, ending in `.keras`.

        Returns:
            The path.
        """
        model = self.base_model
        spec = self.backbone_spec
        if self.preprocessing is not None or spec.channels_first or spec.layout == "tokens":
            inputs = keras.Input(self.image_shape, name="images")
            x = inputs
            if self.preprocessing is not None:
                x = ImagePreprocess(preprocessing=self.preprocessing, name="input_scaling")(x)
            if self.to_backbone is not None:
                x = keras.layers.Permute((3, 1, 2), name="to_channels_first")(x)
            x = model(x)
            if spec.layout == "tokens":
                x = backbone_spec.pooling_layer(spec, name="token_pooling")(x)
            elif spec.layout == "map" and spec.channels_first:
                x = keras.layers.Permute((2, 3, 1), name="to_channels_last")(x)
            suffix = "_with_input_scaling" if self.preprocessing is not None else "_export"
            model = keras.Model(inputs, x, name=f"{model.name}{suffix}")
        model.save(path)
        return path

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "base_model": keras.saving.serialize_keras_object(self.base_model),
                "input_shape": self.image_shape,
                "batch_size": self.batch_size,
                "feat_dims_ph": (
                    self.feat_dims_ph
                    if isinstance(self.feat_dims_ph, str)
                    else list(self.feat_dims_ph)
                ),
                "num_of_unfrozen_layers": self.num_of_unfrozen_layers,
                "temperature": self.temperature,
                "token_pooling": self.token_pooling,
                "augmentation": keras.saving.serialize_keras_object(self.augmentation),
                "preprocessing": serialize_preprocessing(self.preprocessing),
                "use_batch_norm_ph": self.use_batch_norm_ph,
                "l1_ph": self.l1_ph,
                "optimizer": self.optimizer_recipe,
                "seed": self.seed,
                "recipe": self.recipe,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        # Files saved by 0.2.0 kept run state in the config: a reloaded model
        # then resumed the old run. The learning rate is restored with the
        # compiled optimizer; a save path is the caller's to give again.
        config.pop("save_path", None)
        config.pop("learning_rate", None)
        config["base_model"] = keras.saving.deserialize_keras_object(config["base_model"])
        config["augmentation"] = keras.saving.deserialize_keras_object(config["augmentation"])
        config["preprocessing"] = deserialize_preprocessing(config.get("preprocessing"))
        return cls(**config)
