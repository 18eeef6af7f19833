"""Frozen features of a backbone or a trained `SimCLR` at P3, P2, P1 or a named layer."""

import keras
import numpy as np
from keras import ops

from simclr_keras._checks import check_int
from simclr_keras._images import check_images, to_unit_range_np
from simclr_keras.backbones import spec as backbone_spec
from simclr_keras.layers.input_scaling import ImagePreprocess
from simclr_keras.model import SimCLR

DEPTHS = ("P3", "P2", "P1")


def model_input_size(model):
    """`((H, W) or None, C or None)` the backbone declares (functional inputs,
    else the shape a subclassed model was built with; a `channels_first`
    model's `(C, H, W)` read as `(H, W, C)`).
    """
    shape = backbone_spec.declared_input_shape(model)
    if shape is None:
        return None, None
    size = tuple(shape[:2]) if None not in shape[:2] else None
    return size, shape[2]


def _pooled(x):
    return x if len(x.shape) == 2 else ops.mean(x, axis=tuple(range(1, len(x.shape) - 1)))


def _is_relu(layer):
    if isinstance(layer, keras.layers.ReLU):
        return True
    return isinstance(layer, keras.layers.Activation) and getattr(
        layer.activation, "__name__", ""
    ) in ("relu",)


def _head_layers(head, depth):
    """The head's layers up to and including the ReLU that ends P2 (the
    first hidden block) or P1 (the last hidden block, the input of the
    output Dense).
    """
    layers = list(head.layers)
    relus = [i for i, layer in enumerate(layers) if _is_relu(layer)]
    if not relus:
        raise ValueError(
            f"`depth`={depth!r} reads the output of a hidden layer of the "
            "projection head (after its ReLU), but the head has only "
            f"{len(layers)} layer(s) and no ReLU: {[l.name for l in layers]}. "
            "Use 'P3' or a layer name."
        )
    end = relus[0] if depth == "P2" else relus[-1]
    return layers[: end + 1]


class _Extractor(keras.Model):
    """preprocess -> (adapt) -> backbone -> pool -> head prefix; holds no own weights.

    With `branches` (a list of head-layer prefixes, all on the same trunk) it
    returns one output per branch from a single backbone pass, each prefix
    continuing the previous one's output when it extends it (P3 -> P2 -> P1).
    """

    def __init__(self, prep, trunk, head_layers, pool, branches=None, adapt=None):
        super().__init__(name="feature_extractor")
        self.prep, self.trunk, self.head_layers, self.pool = prep, trunk, head_layers, pool
        self.branches, self.adapt = branches, adapt

    def call(self, images):
        x = self.prep(images)
        if self.adapt is not None:
            x = self.adapt(x)
        x = self.pool(self.trunk(x, training=False))
        if self.branches is None:
            for layer in self.head_layers:
                x = layer(x, training=False)
            return _pooled(x)
        outputs, done, y = [], [], x
        for layers in self.branches:
            if layers[: len(done)] != done:  # not an extension: restart from the trunk
                done, y = [], x
            for layer in layers[len(done) :]:
                y = layer(y, training=False)
            done = list(layers)
            outputs.append(_pooled(y))
        return tuple(outputs)


def _named_layer(model, name):
    """A model up to its layer `name`, or None when there is none."""
    try:
        layer = model.get_layer(name)
    except ValueError:
        return None
    try:
        return keras.Model(model.inputs, layer.output)
    except (AttributeError, ValueError) as error:
        raise ValueError(
            f"`depth`={name!r} names a layer of {model.name}, which is not a "
            "functional or Sequential model, so its inner outputs cannot be "
            f"read. Use depth='P3'. Backend error: {error}"
        ) from None


def feature_model(
    model, depth="P3", preprocessing=None, image_size=None, channels=None, token_pooling=None
):
    """The Keras model that `extract_features` runs, from [0, 1] images.

    Args: See `extract_features`; `channels` is the images' channel count,
        used for a backbone that declares none.

    Returns:
        A `keras.Model` mapping float [0, 1] images to `(B, d)` features.
    """
    if not isinstance(model, keras.Model):
        raise TypeError(
            "`model` must be a Keras backbone or a `SimCLR` model. Received: "
            f"model of type {type(model).__name__}"
        )
    head_layers = []
    if isinstance(model, SimCLR):
        if preprocessing is not None or image_size is not None or token_pooling is not None:
            raise ValueError(
                "`preprocessing`, `image_size` and `token_pooling` are taken from the "
                "SimCLR model (`simclr.preprocessing`, `simclr.image_shape`, "
                f"`simclr.token_pooling`); leave them None. Received: preprocessing="
                f"{preprocessing!r}, image_size={image_size!r}, token_pooling={token_pooling!r}"
            )
        backbone, head = model.base_model, model.projection_head
        size, channels = model.image_shape[:2], model.image_shape[2]
        preprocessing = model.preprocessing
        pool, adapt = model.pool, model.to_backbone
    else:
        backbone, head = model, None
        size, declared = model_input_size(model)
        size = tuple(image_size) if image_size is not None else size
        channels = declared or channels or 3
        if size is None:
            raise ValueError(
                f"`image_size` must be given for a backbone that declares no image size "
                f"({model.name}). Received: image_size=None"
            )
        spec = backbone_spec.describe_backbone(
            model, tuple(size) + (channels,), token_pooling, name="model"
        )
        backbone = backbone_spec.single_output_model(model, spec)
        pool = backbone_spec.pooling_layer(spec)
        adapt = backbone_spec.input_adapter(spec)
    trunk = backbone
    if depth in ("P2", "P1"):
        if head is None:
            raise ValueError(
                f"`depth`={depth!r} reads the projection head, which only a "
                "`SimCLR` model has; a plain backbone takes 'P3' or a layer "
                f"name. Received: depth={depth!r} with model {model.name}"
            )
        head_layers = _head_layers(head, depth)
    elif depth != "P3":
        trunk = _named_layer(backbone, depth) if isinstance(depth, str) else None
        if trunk is not None:
            pool = _pooled
        if trunk is None and head is not None and isinstance(depth, str):
            names = [l.name for l in head.layers]
            if depth in names:
                trunk, head_layers = backbone, head.layers[: names.index(depth) + 1]
        if trunk is None:
            known = [l.name for l in backbone.layers] + (
                [l.name for l in head.layers] if head else []
            )
            raise ValueError(
                "`depth` must be 'P3', 'P2', 'P1' (P2/P1 only for SimCLR) or "
                f"the name of a backbone or head layer, one of {known}. "
                f"Received: depth={depth!r}"
            )
    prep = ImagePreprocess(size, channels, preprocessing)
    extractor = _Extractor(prep, trunk, head_layers, pool, adapt=adapt)
    extractor.built = True
    return extractor


def _cached_extractor(model, depths, preprocessing, image_size, channels=None, token_pooling=None):
    """One extractor per (model, depths, settings), kept on the model so that
    repeated calls (train then test split) reuse its compiled predict step
    (a new model would make JAX and `tf.function` compile again).
    """
    prep_key = preprocessing if isinstance(preprocessing, (str, type(None))) else id(preprocessing)
    key = (
        depths,
        prep_key,
        None if image_size is None else tuple(image_size),
        channels,
        token_pooling,
    )
    cache = model.__dict__.get("_simclr_feature_extractors")
    if cache is None:
        cache = {}
        # object.__setattr__: Keras would track a dict of models as sub-layers.
        object.__setattr__(model, "_simclr_feature_extractors", cache)
    if key not in cache:
        parts = [
            feature_model(model, d, preprocessing, image_size, channels, token_pooling)
            for d in depths
        ]
        first = parts[0]
        if len(parts) > 1 and all(
            p.trunk is first.trunk and type(p.pool) is type(first.pool) for p in parts
        ):
            first = _Extractor(
                first.prep,
                first.trunk,
                [],
                first.pool,
                branches=[list(p.head_layers) for p in parts],
                adapt=first.adapt,
            )
            first.built = True
            parts = [first]
        cache[key] = parts
    return cache[key]


def extract_features(
    model,
    images,
    depth="P3",
    batch_size=256,
    preprocessing=None,
    image_size=None,
    verbose=1,
    token_pooling=None,
):
    """Frozen features of images, preprocessed exactly as for training.

    Images go through grayscale-to-RGB (when the model takes 3 channels),
    a resize to the model's input size, `apply_preprocessing` and the
    backbone in inference mode, with no augmentation. A 4-D output is
    average-pooled; a vision transformer's tokens `(B, T, D)` are pooled by
    the class token or the mean of the patch tokens (`token_pooling`; a
    `SimCLR` uses its own). For a `SimCLR` model the depths read its head
    `simclr.projection_head.layers` (a Sequential; with
    `feat_dims_ph=[d0, d1]` they are `[Dense, ReLU, Dense]`, or
    `[Dense, BN, ReLU, Dense, BN]` with `use_batch_norm_ph`). Pre-activation
    Dense outputs are not offered as depths: they are an affine map of the
    depth before, which adds nothing for a linear probe.

    - `"P3"`: the pooled backbone output (`simclr.encode`).
    - `"P2"`: the output of the head's first hidden block, after its
      ReLU (G-SimCLR's P2): `Dense -> ReLU`, or `Dense -> BN -> ReLU`.
    - `"P1"`: the output of the head's last hidden block, after its ReLU:
      the input of the output Dense. For a two-layer head (SimCLR v1,
      `[d0, d1]`) P1 and P2 are the same; for `[d0, d1, d2]` (SimCLR v2,
      G-SimCLR) P1 follows the second hidden block.
    - a layer name: the output of that layer of the backbone (functional or
      Sequential backbones) or of the head.

    ```
    image -> backbone -> pool ------------------------------> P3  (h)
                          Dense(d0) [-> BN] -> ReLU ---------> P2
                          Dense(d1) [-> BN] -> ReLU ---------> P1  (3-layer heads)
                          Dense(out) [-> BN]  --------------> z   (the loss)
    ```

    Several depths at once (`depth=("P1", "P2", "P3")`) share one pass of
    the backbone. Calls on the same model with the same settings reuse one
    compiled step, and the last batch is padded to `batch_size`, so a
    train and a test split compile once.

    Args:
        model: A plain `keras.Model` backbone or a `SimCLR` model.
        images: `(N, H, W)` or `(N, H, W, C)`, uint8 in [0, 255] or float in
            [0, 1].
        depth: `"P3"`, `"P2"`, `"P1"` or a layer name, or a list or tuple of
            them.
        batch_size: Images per forward pass.
        preprocessing: Plain backbones only: the backbone's input scaling
            (see `simclr_keras.layers.input_scaling`); a `SimCLR` uses its own.
        image_size: Plain backbones only: `(H, W)` to resize to; default:
            the size the backbone declares, else the images' own size.
        verbose: 1 shows Keras' progress bar, 0 is silent.
        token_pooling: Plain backbones that output tokens only: `"class"`,
            `"mean"` or None (the class token when there is one), as in
            `SimCLR`; a `SimCLR` uses its own.

    Returns:
        float32 NumPy array `(N, d)`; for a list or tuple of depths, a dict
        `{depth: (N, d) array}`.

    Example:
    >>> feats = extract_features(simclr, x_train, depth="P2")  # doctest: +SKIP
    >>> by_depth = extract_features(simclr, x_train, ("P1", "P2", "P3"))  # doctest: +SKIP

    Reference:
        Chakraborty, Gosthipaty, Paul, "G-SimCLR: Self-Supervised Contrastive
        Learning with Guided Projection via Pseudo Labelling", ICDM
        Workshops 2020 (the P1/P2/P3 depths).
    """
    if isinstance(model, keras.Model):
        channels = model.image_shape[2] if isinstance(model, SimCLR) else model_input_size(model)[1]
        images = check_images(images, channels=channels, allow_grey=True)
    check_int(batch_size, "batch_size", minimum=1)
    many = isinstance(depth, (list, tuple))
    depths = tuple(depth) if many else (depth,)
    if not depths or len(set(depths)) != len(depths):
        raise ValueError(f"`depth` must list each depth once. Received: depth={depth!r}")
    batch_size = min(batch_size, len(images))  # no padding beyond the data set
    batches = UnitRangeBatches(images, batch_size=batch_size, pad_last=True)
    channels = None
    if isinstance(model, keras.Model) and not isinstance(model, SimCLR):
        # A backbone that declares no size or channels (a Sequential without
        # an Input) takes the images' own.
        size, declared = model_input_size(model)
        if size is None and image_size is None:
            image_size = tuple(images.shape[1:3])
        channels = None if declared else (images.shape[-1] if images.ndim == 4 else 1)
    results = []
    for extractor in _cached_extractor(
        model, depths, preprocessing, image_size, channels, token_pooling
    ):
        out = extractor.predict(batches, verbose=verbose)
        outs = out if isinstance(out, (list, tuple)) else [out]
        results += [np.asarray(o[: len(images)], dtype="float32") for o in outs]
    return dict(zip(depths, results)) if many else results[0]


class UnitRangeBatches(keras.utils.PyDataset):
    """Batches of an image array as float32 in [0, 1] (uint8 is divided by 255
    on the host, one batch at a time), with optional labels and shuffling.
    `pad_last` repeats the last image to fill the last batch (slice the
    outputs to `len(images)`), so that every batch has one shape and a
    compiled step is not traced again for the remainder. `min_batches`
    makes an epoch at least that many batches by cycling through the
    images again (each pass in a new order when shuffling), so that a tiny
    labelled set still gets training steps per epoch.
    """

    def __init__(
        self,
        images,
        labels=None,
        batch_size=256,
        shuffle=False,
        seed=None,
        pad_last=False,
        min_batches=0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.images, self.labels = images, labels
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.pad_last = bool(pad_last)
        n = len(images)
        self._passes = max(1, -(-int(min_batches) * self.batch_size // max(n, 1)))
        self._rng = np.random.default_rng(seed)
        self._order = np.tile(np.arange(n), self._passes)
        self.on_epoch_end()

    def __len__(self):
        return -(-len(self._order) // self.batch_size)

    def __getitem__(self, index):
        idx = self._order[index * self.batch_size : (index + 1) * self.batch_size]
        if self.pad_last and len(idx) < self.batch_size:
            idx = np.concatenate([idx, np.full(self.batch_size - len(idx), idx[-1])])
        x = to_unit_range_np(self.images[idx])
        return x if self.labels is None else (x, self.labels[idx])

    def on_epoch_end(self):
        if self.shuffle:
            n = len(self.images)
            self._order = np.concatenate([self._rng.permutation(n) for _ in range(self._passes)])
