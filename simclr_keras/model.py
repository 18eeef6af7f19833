"""`SimCLR`: wraps any Keras 3 backbone for contrastive self-supervised training."""

import os

import keras
from keras import ops

from simclr_keras._atomic import atomic_save_model
from simclr_keras._checks import check_int, check_number, check_seed, check_temperature
from simclr_keras._export import simclr_export
from simclr_keras.backbones import freezing
from simclr_keras.backbones import spec as backbone_spec
from simclr_keras.backbones.export import standalone_backbone
from simclr_keras.data import batch_check
from simclr_keras.layers.augmentation import make_augmentation
from simclr_keras.layers.input_scaling import (
    apply_preprocessing,
    deserialize_preprocessing,
    serialize_preprocessing,
    warn_missing_preprocessing,
)
from simclr_keras.layers.projection_head import build_projection_head
from simclr_keras.losses import NTXent, contrastive_accuracy
from simclr_keras.recipe import OPTIMIZER_RECIPES, default_head_dims, head_dims, make_optimizer
from simclr_keras.training import view_cache
from simclr_keras.training.defaults import default_callbacks
from simclr_keras.training.distribution import check_batch_size
from simclr_keras.training.pretrained import recipe_arguments, warn_scratch_recipe_for_trained
from simclr_keras_rules.preprocessing_modes import check_preprocessing


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
            feature width and batch norm after every Dense. None (the
            default): `[w, min(128, w // 2)]`
            (`simclr_keras.recipe.default_head_dims`, as the CLI).
        num_of_unfrozen_layers: How many of the backbone's last layers *that
            hold weights* train (pooling/activation layers are not counted);
            `None` or -1 trains the whole backbone, 0 freezes it. For the
            scratch recipe only: with `recipe="pretrained"` it must stay
            None (the recipe unfreezes by its schedule). Read back, it is
            the backbone's current setting (a `GradualUnfreeze` moves it).
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
            scaling rule above). With `recipe="pretrained"` (and Adam), the
            rate of the backbone stage (default 5e-4; the head alone
            trains at 1e-3 first).
        recipe: None / `"scratch"` (the settings above, for backbones
            trained from scratch; None with a backbone whose weights look
            trained warns, `"scratch"` does not) or `"pretrained"`: for a backbone with
            pretrained weights, `fit()` trains the projection head alone for
            the first epoch (backbone frozen), then the top half of the
            backbone (its batch norm adapting to the images) at a lower
            rate (`simclr_keras.training.pretrained_schedule`, applied by a
            `GradualUnfreeze` callback unless one is passed), with the
            `"mild"` augmentation unless `augmentation` is given; leave
            `num_of_unfrozen_layers` None with it. The recipe is decided in
            `simclr_keras.training.pretrained` (the CLI uses the same).
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
        feat_dims_ph=None,
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
        self.recipe, num_of_unfrozen_layers, augmentation = recipe_arguments(
            recipe, num_of_unfrozen_layers, augmentation
        )
        # Builds a backbone without an Input on `input_shape` (so every
        # variable exists before the optimizer is built over them) and
        # refuses several inputs or outputs with one message.
        warn_missing_preprocessing(base_model, preprocessing)
        warn_scratch_recipe_for_trained(base_model, recipe)
        spec = backbone_spec.describe_backbone(base_model, input_shape, token_pooling)
        base_model = backbone_spec.single_output_model(base_model, spec)
        if feat_dims_ph is None:
            feat_dims_ph = default_head_dims(spec.width)
        if isinstance(feat_dims_ph, str):
            head, use_batch_norm_ph = head_dims(feat_dims_ph, spec.width), True
        else:
            feat_dims_ph = head = list(feat_dims_ph)
        # Config: the architecture (run state such as `save_path` is not).
        self.image_shape = spec.input_shape
        self.token_pooling = spec.token_pooling
        self.batch_size = batch_size
        self.feat_dims_ph = feat_dims_ph
        self.temperature = float(temperature)
        self.preprocessing = check_preprocessing(preprocessing)
        self.use_batch_norm_ph = bool(use_batch_norm_ph)
        self.l1_ph = float(l1_ph)
        self.seed = seed
        self.optimizer_recipe = optimizer if optimizer in OPTIMIZER_RECIPES else None
        # Layers.
        self.base_model = base_model
        self.backbone_spec = spec
        freezing.set_unfrozen_layers(
            base_model, freezing.check_unfrozen(base_model, num_of_unfrozen_layers)
        )
        self.to_backbone = backbone_spec.input_adapter(spec)
        self.projection_head = build_projection_head(
            spec.width, head, self.use_batch_norm_ph, self.l1_ph
        )
        # Assigned after the head: Keras names a sub-model's weights in a .keras
        # file by its class and position (`layers/sequential_1`), so a pooling
        # Sequential before the head would move the head's weights and files
        # saved earlier (tests/fixtures) would no longer load.
        self.pool = backbone_spec.pooling_layer(spec)
        self.augmentation = make_augmentation(augmentation, self.image_shape, self.seed)
        # Run state, not config: `fit()` adds a `ResumableCheckpoint` for it.
        self.save_path = save_path
        self.learning_rate = learning_rate
        self._cache_state = None  # while fit(cache_views=...) runs
        self.compile(optimizer=make_optimizer(optimizer, batch_size, learning_rate))
        # Every variable exists now (the backbone is built, the head has an
        # Input, the augmentation only holds seed states). Building the
        # optimizer too makes a model saved before training reload cleanly.
        self.built = True
        self.optimizer.build(self.trainable_variables)

    @property
    def num_of_unfrozen_layers(self):
        """How many of the backbone's last weighted layers train now (-1: all).

        Read from the layers' `trainable` flags, so it follows a
        `GradualUnfreeze` stage or a resumed checkpoint and is saved with
        the model as it is.
        """
        return freezing.unfrozen_count(self.base_model)

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
        if isinstance(images, dict):
            # Two cached views' maps from the frozen bottom (`fit(cache_views=...)`).
            a, b = (images[key] for key in view_cache.VIEW_KEYS)
            top = self._cache_state.top
            features = self.pool(top(ops.concatenate([a, b], axis=0), training=training))
        else:
            # Views are drawn in evaluation too, so `evaluate()` reports the
            # contrastive loss of the task the model is trained on.
            view_a = self.augmentation(images, training=True)
            view_b = self.augmentation(images, training=True)
            views = ops.concatenate([view_a, view_b], axis=0)
            features = self.encode(
                apply_preprocessing(views, self.preprocessing), training=training
            )
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

    def fit(self, x=None, y=None, epochs=1, callbacks=None, cache_views=None, **kwargs):
        """Train on images: a NumPy array (batched into full batches of
        `batch_size`, reshuffled each epoch), a `DataGeneratorSimCLR`, a
        `keras.utils.PyDataset` or a `tf.data.Dataset` of image batches
        (`simclr_keras.data.batch_check.simclr_batches`).

        Adds SimCLR's default callbacks to `callbacks`
        (`simclr_keras.training.defaults.default_callbacks`): a NaN loss
        stops training with `NaNLossError`; a loss at chance level,
        log(2B - 1), for an epoch gives a `ChanceLossWarning`; the
        pretrained recipe's unfreezing stages; a LARS recipe's schedule
        learns the run's length. With `save_path`, a
        `ResumableCheckpoint(save_path)` is added: a checkpoint is written
        atomically after every epoch, running the same call again after an
        interruption resumes from the last finished epoch, and the final
        model is saved to `save_path`.

        With `cache_views=V` (an int >= 2) and a backbone whose bottom stays
        frozen for the whole run (the pretrained recipe), `V` views of every
        image are drawn once and run through the frozen bottom once
        (`simclr_keras.training.view_cache`); each epoch then trains the top
        and the head on two different cached views of each image, several
        times faster per step. A resumed run draws its cache again.

        Returns:
            The Keras `History` (over all epochs when resumed).
        """
        check_int(epochs, "epochs", minimum=1)
        check_int(kwargs.get("initial_epoch", 0), "initial_epoch", minimum=0)
        cache_views = view_cache.check_cache_views(cache_views)
        x, kwargs = self._batches(x, y, "fit", kwargs)
        callbacks = default_callbacks(self, x, callbacks)
        if cache_views is None:
            with batch_check.reraising():  # a batch that failed its check
                return super().fit(x, epochs=epochs, callbacks=callbacks, **kwargs)
        pairs, top = view_cache.cached_pairs(
            self, x, cache_views, callbacks, epochs, verbose=kwargs.get("verbose", "auto") != 0
        )
        # Not an attribute Keras tracks: the top's layers are the backbone's own.
        self._cache_state = view_cache.CacheState(top)
        try:
            return super().fit(pairs, epochs=epochs, callbacks=callbacks, **kwargs)
        finally:
            self._cache_state = None

    def evaluate(self, x=None, y=None, **kwargs):
        """Contrastive loss and accuracy on images, batched like `fit()`."""
        x, kwargs = self._batches(x, y, "evaluate", kwargs)
        try:
            with batch_check.reraising():  # a batch that failed its check
                return super().evaluate(x, **kwargs)
        except Exception:
            if hasattr(self, "jax_state_sync"):
                # Keras' JAX evaluate() detaches the weights while it runs and
                # reattaches them only when it ends normally (fit() has a
                # `finally` for it): reattach them, or the model is unusable.
                self.jax_state_sync()
            raise

    def _batches(self, x, y, method, kwargs):
        return batch_check.simclr_batches(
            x,
            y,
            batch_size=self.batch_size,
            channels=self.image_shape[-1],
            seed=self.seed,
            method=method,
            kwargs=kwargs,
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

        The file is written atomically: an interrupted save leaves the
        previous file at `path` (or none), never half of one.

        Args:
            path: Output file, ending in `.keras`.

        Returns:
            The path.
        """
        atomic_save_model(
            standalone_backbone(self.base_model, self.backbone_spec, self.preprocessing), path
        )
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
        # The recipe is set on the built model: a saved model holds the
        # unfreezing it trained to (a pretrained run's top half, say), which
        # the recipe's arguments rule refuses from a caller.
        recipe = config.pop("recipe", None)
        model = cls(**config)
        model.recipe = recipe_arguments(recipe)[0]
        return model
