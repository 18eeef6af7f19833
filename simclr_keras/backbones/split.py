"""Cutting a backbone in two: a frozen bottom and a trainable top.

Fine-tuning only the top of a network leaves the bottom's output of an
image the same at every step (the bottom is frozen and runs in inference
mode), so that output can be computed once and cached: fine-tuning then
costs the top's steps only. `split_backbone` finds where a functional
backbone can be cut (a tensor every path from the input to the output
passes through) and returns the two halves as Keras models that share the
backbone's layers. `frozen_split` cuts a backbone in place below every
layer that will train, for SimCLR training on cached views
(`SimCLR.fit(cache_views=...)`).
"""

import dataclasses

import keras
import numpy as np

from simclr_keras.backbones import spec as backbone_spec
from simclr_keras.backbones.freezing import snapshot_backbone, weighted_layers
from simclr_keras.layers.input_scaling import ImagePreprocess

UNFREEZE = ("last_stage", "last_block", "all")


@dataclasses.dataclass(frozen=True)
class BackboneSplit:
    """What `split_backbone` returns.

    Attributes:
        bottom: A Keras model from `[0, 1]` images `image_shape` to the cut
            tensor (input scaling and resizing included); run it with
            `training=False`.
        top: A Keras model from the cut tensor to the pooled features
            `(B, width)`, the layers to fine-tune.
        cut_shape: The cut tensor's shape, without the batch axis.
        image_shape: The images `bottom` takes.
        description: Where it was cut, in words.
    """

    bottom: keras.Model
    top: keras.Model
    cut_shape: tuple
    image_shape: tuple
    description: str


def _is_functional(model):
    """A model with a graph of layers (functional or Sequential, built)."""
    if not isinstance(model, keras.Model):
        return False
    try:
        return bool(model.inputs) and bool(model.outputs)
    except (AttributeError, ValueError):
        return False


def _single(inputs):
    """A one-input model's input tensor itself (a list makes Keras warn when
    the model is called on a tensor).
    """
    return inputs[0] if len(inputs) == 1 else inputs


def _count(model):
    return int(sum(np.prod(w.shape) for w in model.weights))


def _cut_model(model, tensor):
    """`keras.Model(tensor, model.output)`, or None when `tensor` is not a
    cut (some path from the input to the output goes around it).
    """
    try:
        return keras.Model(tensor, model.outputs[0])
    except (ValueError, KeyError, AttributeError, IndexError):
        return None


def _nested_trunk(model):
    """The nested functional model holding most of `model`'s weights, when
    `model` is a thin wrapper around it (input scaling, pooling), else None.
    """
    nested = [layer for layer in model.layers if _is_functional(layer)]
    if len(nested) != 1 or _count(nested[0]) < 0.9 * max(_count(model), 1):
        return None
    trunk = nested[0]
    if len(trunk.inputs) != 1 or len(trunk.outputs) != 1:
        return None
    return trunk


def _cuts(model):
    """Every cut of a functional `model`, deepest first: `(layer, tensor,
    top)` where `top` is the functional model from `tensor` to the output.
    """
    for layer in reversed(model.layers[:-1]):
        if isinstance(layer, (keras.layers.InputLayer, keras.layers.ZeroPadding2D)):
            continue  # a padded map is the inside of a convolution, not a block's output
        tensor = getattr(layer, "output", None)
        if not isinstance(tensor, keras.KerasTensor) or len(tensor.shape) != 4:
            continue
        top = _cut_model(model, tensor)
        if top is not None and top.weights:
            yield layer, tensor, top


def _spatial(tensor, channels_first):
    shape = tuple(tensor.shape)
    return shape[2:4] if channels_first else shape[1:3]


def _size(tensor):
    return int(np.prod([d for d in tensor.shape[1:] if d is not None]))


def choose_cut(model, unfreeze="last_stage", channels_first=False):
    """The tensor of a functional `model` where its trainable top starts.

    Args:
        model: A functional `keras.Model` with one 4-D output.
        unfreeze: `"last_stage"`: the top is every layer that works at the
            output's spatial resolution and the last block of the stage
            before it's out, i.e. the cut is the deepest block output at the
            resolution before the last (a cut tensor at most 1.5 times the
            smallest one there, so not the wide inside of a block);
            `"last_block"`: the deepest cut at the output's resolution with
            the smallest tensor there (the input of the last block).
        channels_first: Read spatial sizes as `(C, H, W)`.

    Returns:
        `(tensor, top)`, or `(None, None)` when `model` has no cut of that
        kind.
    """
    output = model.outputs[0]
    if len(output.shape) != 4:
        return None, None
    final = _spatial(output, channels_first)
    if None in final:
        return None, None
    total = max(_count(model), 1)
    found = []
    for _, tensor, top in _cuts(model):
        size = _spatial(tensor, channels_first)
        if None in size:
            break
        if unfreeze == "last_block":
            wanted = size == final
        else:  # the stage before works at about twice the final side
            wanted = size != final and all(f < d <= 2 * f + 1 for d, f in zip(size, final))
        if wanted and _count(top) >= 0.05 * total:
            found.append((tensor, top))
        elif found and size != final:
            break
    if not found:
        return None, None
    smallest = min(_size(tensor) for tensor, _ in found)
    limit = smallest * (1.5 if unfreeze == "last_stage" else 1.0)
    return next((t, top) for t, top in found if _size(t) <= limit)


def _inner_tensors(wrapper, trunk):
    """The tensors of `wrapper`'s graph that go into and come out of its
    nested `trunk` (Keras keeps them on the call's node).
    """
    node = trunk._inbound_nodes[0]
    return node.input_tensors[0], node.output_tensors[0]


def _find_cut(net, choose):
    """`(bottom, top, name)` models of `net` cut where `choose(functional)`
    says (`(tensor, top)` or `(None, None)`), or None.
    """
    if not _is_functional(net) or len(net.outputs) != 1:
        return None
    trunk = _nested_trunk(net)
    if trunk is not None:
        found = _find_cut(trunk, choose)
        if found is None:
            return None
        into, out = _inner_tensors(net, trunk)
        try:
            prefix = keras.Model(_single(net.inputs), into)
        except (ValueError, KeyError):
            return None
        bottom = _chain(prefix, found[0])
        if out is net.outputs[0]:  # nothing after the trunk
            return bottom, found[1], found[2]
        suffix = _cut_model(net, out)
        return None if suffix is None else (bottom, _chain(found[1], suffix), found[2])
    tensor, top = choose(net)
    if tensor is None:
        return None
    bottom = keras.Model(_single(net.inputs), tensor)
    layer = tensor._keras_history[0]
    return bottom, top, f"layer {layer.name!r}"


def frozen_split(backbone, trainable_layers):
    """Cut a backbone (not a copy) below every layer that will train.

    The cut is the deepest block output of the backbone's functional graph
    (as in `split_backbone`) below which none of `trainable_layers` lies,
    so the bottom stays frozen while the top trains. Both halves share the
    backbone's layers: training the top trains the backbone.

    Args:
        backbone: A functional `keras.Model` (a thin wrapper around one is
            cut inside).
        trainable_layers: The layers that train at any point (e.g. the
            last weighted layers a `GradualUnfreeze` schedule reaches).

    Returns:
        `(bottom, top, name)`: the model from the backbone's input to the
        cut tensor, the model from there to the backbone's output, and the
        name of the layer whose output is the cut; None when the backbone
        has no such cut (not functional, or a layer that trains lies below
        every cut).

    Example:
    >>> net = keras.Sequential([keras.Input((8, 8, 3)),
    ...                         keras.layers.Conv2D(4, 3, padding="same"),
    ...                         keras.layers.Conv2D(4, 3, padding="same"),
    ...                         keras.layers.Conv2D(4, 3, padding="same")])
    >>> bottom, top, name = frozen_split(net, net.layers[-1:])
    >>> len(bottom.layers), len(top.layers), top.layers[-1] is net.layers[-1]
    (3, 2, True)
    """
    wanted = {id(layer) for layer in trainable_layers}

    def choose(net):
        inside = wanted & {id(layer) for layer in weighted_layers(net)}
        for _, tensor, top in _cuts(net):
            if inside <= {id(layer) for layer in weighted_layers(top)}:
                return tensor, top
        return None, None

    found = _find_cut(backbone, choose)
    if found is None or wanted & {id(layer) for layer in weighted_layers(found[0])}:
        return None
    return found


def _chain(first, second):
    inputs = keras.Input(tuple(first.inputs[0].shape[1:]))
    return keras.Model(inputs, second(first(inputs)))


def split_backbone(
    backbone,
    image_shape,
    unfreeze="last_stage",
    *,
    preprocessing=None,
    image_size=None,
    channels=None,
    token_pooling=None,
):
    """Cut a copy of a backbone into a frozen bottom and a trainable top.

    The cut is a tensor of the backbone's functional graph that every path
    from the input to the output goes through (a block's output, not the
    inside of a residual block). A backbone wrapped in a thin functional
    model (input scaling, as `pretrain` saves it) is cut inside. A
    backbone with no such tensor (a subclassed model), or with
    `unfreeze="all"`, is cut at its input: the top is all of it.

    Args:
        backbone: A `keras.Model` image backbone; copied, never changed.
        image_shape: `(H, W, C)` (or `(H, W)`) of the `[0, 1]` images the
            bottom takes.
        unfreeze: `"last_stage"`: the top is every layer at the output's
            spatial resolution, cut at the smallest tensor of the stage
            before (for EfficientNet-Lite0 at 80 px, its last 8 blocks and
            the head convolution); `"last_block"`: the deepest cut whose
            top holds at least a tenth of the weights; `"all"`: the whole
            backbone. A rule that finds no cut falls back to the next one.
        preprocessing: The input scaling, as in `extract_features`.
        image_size: Resize images to this `(height, width)` first.
        channels: The backbone's channels (grey images are repeated).
        token_pooling: For a vision transformer, as in `extract_features`.

    Returns:
        A `BackboneSplit`.

    Example:
    >>> net = keras.Sequential([keras.Input((16, 16, 3)),
    ...                         keras.layers.Conv2D(4, 3, strides=2, padding="same"),
    ...                         keras.layers.Conv2D(8, 3, strides=2, padding="same"),
    ...                         keras.layers.Conv2D(8, 3, padding="same")])
    >>> split = split_backbone(net, (16, 16, 3))
    >>> split.cut_shape, split.top.output.shape
    ((8, 8, 4), (None, 8))
    """
    if unfreeze not in UNFREEZE:
        raise ValueError(f"`unfreeze` must be one of {UNFREEZE}. Received: unfreeze={unfreeze!r}")
    image_shape = tuple(int(d) for d in image_shape)
    image_shape = image_shape + (1,) if len(image_shape) == 2 else image_shape
    feed = tuple(image_size or image_shape[:2]) + (channels or image_shape[2],)
    spec = backbone_spec.describe_backbone(backbone, feed, token_pooling, name="backbone")
    net = snapshot_backbone(backbone_spec.single_output_model(backbone, spec))
    found = None
    rules = UNFREEZE[UNFREEZE.index(unfreeze) :]
    for rule in rules[:-1]:
        found = _find_cut(net, lambda n, rule=rule: choose_cut(n, rule, spec.channels_first))
        if found is not None:
            break
    inputs = keras.Input(image_shape)
    h = ImagePreprocess(image_size, channels, preprocessing)(inputs)
    adapt = backbone_spec.input_adapter(spec)
    h = adapt(h) if adapt is not None else h
    if found is None:
        bottom_net, top_net, where = None, net, "the whole backbone (cut at its input)"
    else:
        bottom_net, top_net, name = found
        where = f"the layers after {name} ({_count(top_net):,} of {_count(net):,} weights)"
    maps = bottom_net(h, training=False) if bottom_net is not None else h
    bottom = keras.Model(inputs, maps, name="frozen_bottom")
    cut_shape = tuple(int(d) for d in maps.shape[1:])
    top_in = keras.Input(cut_shape)
    pooled = backbone_spec.pooling_layer(spec)(top_net(top_in))
    top = keras.Model(top_in, pooled, name="trainable_top")
    return BackboneSplit(bottom, top, cut_shape, image_shape, where)
