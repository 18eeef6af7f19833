"""A corpus of bad input through the public API and the CLI.

Each row: what a user passes, and the fragments the one clear message (or the
one warning of a skip) must hold: the argument or file, the rule, the value.
No row trains beyond a step; the images are 8 x 8.
"""

import os
import sys

import keras
import numpy as np
import pytest
import testing
from PIL import Image

from simclr_keras import SimCLR
from simclr_keras.callbacks.knn_monitor import KNNMonitor
from simclr_keras.data import DataGeneratorSimCLR
from simclr_keras.data.pseudo_labels import pseudo_labels
from simclr_keras.evaluation import (
    compare_backbones,
    extract_features,
    finetune_evaluation,
    knn_accuracy,
    linear_evaluation,
)
from simclr_keras.evaluation.label_fractions import stratified_fraction
from simclr_keras.plots import plot_tsne
from simclr_keras_cli.main import main as cli_main

SHAPE = (8, 8, 3)
B = 4
RNG = np.random.default_rng(0)
GOOD_U8 = RNG.integers(0, 256, (8,) + SHAPE, dtype=np.uint8)
GOOD_F = (GOOD_U8 / 255.0).astype("float32")


def backbone(channels=3):
    return keras.Sequential(
        [keras.Input(SHAPE[:2] + (channels,)), keras.layers.Conv2D(4, 3), keras.layers.ReLU()],
        name="tiny",
    )


@pytest.fixture(scope="module")
def simclr():
    return SimCLR(backbone(), SHAPE, B, [8, 4], seed=0, augmentation={"jitter_strength": 0.5})


def with_nan(value=np.nan, at=(5, 1, 2, 0)):
    x = GOOD_F.copy()
    x[at] = value
    return x


def raises(fn, *fragments, exc=ValueError):
    with pytest.raises(exc) as info:
        fn()
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


# -- SimCLR(...) -------------------------------------------------------------

CONSTRUCTOR = [
    (dict(temperature="0.1"), ["`temperature`", "Received: temperature='0.1'", "string"]),
    (dict(temperature=0), ["`temperature` must be a positive number", "temperature=0"]),
    (dict(seed="3"), ["`seed` must be an int >= 0", "seed='3'"]),
    (dict(seed=-1), ["`seed`", "seed=-1"]),
    (dict(learning_rate=-0.1), ["`learning_rate` must be a positive number", "-0.1"]),
    (dict(learning_rate=0), ["`learning_rate`", "learning_rate=0"]),
    (dict(learning_rate="1e-3"), ["`learning_rate`", "'1e-3'"]),
    (dict(batch_size=1), ["`batch_size` must be an int >= 2", "negatives", "batch_size=1"]),
    (dict(batch_size="8"), ["`batch_size`", "batch_size='8'"]),
    (dict(batch_size=8.0), ["`batch_size`", "batch_size=8.0"]),
    (dict(feat_dims_ph="a,b"), ["`feat_dims_ph`", "feat_dims_ph='a,b'"]),
    (dict(feat_dims_ph=[8, 0]), ["`feat_dims_ph`", "[8, 0]"]),
    (dict(feat_dims_ph=[]), ["`feat_dims_ph`", "[]"]),
    (dict(num_of_unfrozen_layers=5), ["`num_of_unfrozen_layers`", "(1)", "=5"]),
    (dict(num_of_unfrozen_layers="1"), ["`num_of_unfrozen_layers`", "'1'"]),
    (dict(num_of_unfrozen_layers=-2), ["`num_of_unfrozen_layers`", "=-2"]),
    (dict(l1_ph=-1.0), ["`l1_ph`", "l1_ph=-1.0"]),
    (dict(save_path="run/model.h5"), ["`save_path`", ".keras", "model.h5"]),
    (dict(input_shape=(8, 8)), ["`input_shape`", "(8, 8)"]),
]


class TestSimCLRArguments(testing.TestCase):
    @pytest.mark.parametrize("change, fragments", CONSTRUCTOR, ids=lambda v: str(v)[:40])
    def test_constructor_rejects(self, change, fragments):
        args = dict(base_model=backbone(), input_shape=SHAPE, batch_size=B, feat_dims_ph=[8, 4])
        args.update(change)
        raises(lambda: SimCLR(**args), *fragments)

    def test_constructor_rejects_a_non_model(self):
        raises(lambda: SimCLR("resnet18", SHAPE, B), "`base_model`", "str", exc=TypeError)


# -- SimCLR.fit / evaluate ---------------------------------------------------

grey = GOOD_U8[..., :1]
FIT = [
    ("float [0, 255]", dict(x=GOOD_U8.astype("float32")), ["`x`", "[0, 1]", "divide by 255"]),
    ("float64 [0, 255]", dict(x=GOOD_U8.astype("float64")), ["divide by 255", "uint8"]),
    ("uint16", dict(x=GOOD_U8.astype("uint16") * 257), ["`x`", "uint16", "[0, 255]", "8 bits"]),
    ("int negative", dict(x=GOOD_U8.astype("int16") - 128), ["`x`", "[0, 255]", "-128"]),
    ("int8", dict(x=GOOD_U8.astype("int8")), ["`x`", "int8 holds [-128, 127]", "view('uint8')"]),
    (
        "list mixing uint8 and float",
        dict(x=[GOOD_U8[0], GOOD_F[1], GOOD_U8[2], GOOD_F[3]] * 2),
        ["`x` must hold images of one kind", "integer images (items 0, 2, 4, 6)", "float images"],
    ),
    ("[-1, 1]", dict(x=GOOD_F * 2 - 1), ["`x`", "[0, 1]", "(images + 1) / 2"]),
    ("NaN pixel", dict(x=with_nan()), ["`x`", "finite", "1 non-finite", "(5, 1, 2, 0)"]),
    ("inf pixel", dict(x=with_nan(np.inf, (2, 0, 0, 1))), ["`x`", "non-finite", "image 2"]),
    ("1 channel", dict(x=grey), ["`x` must have 3 channel(s)", "np.repeat"]),
    ("(N, H, W) grey", dict(x=grey[..., 0]), ["`x` must have 3 channel(s)"]),
    ("4 channels", dict(x=np.concatenate([GOOD_U8, grey], -1)), ["3 channel(s)", "alpha"]),
    ("rank 2", dict(x=GOOD_U8.reshape(8, -1)), ["`x`", "(N, H, W, C)", "(8, 192)"]),
    ("empty", dict(x=GOOD_U8[:0]), ["`x`", "non-empty", "(0, 8, 8, 3)"]),
    ("strings", dict(x=np.full((8, 8, 8, 3), "a")), ["`x`", "dtype <U1"]),
    ("bool", dict(x=GOOD_U8 > 9), ["`x`", "dtype bool"]),
    ("fewer than a batch", dict(x=GOOD_U8[:3]), ["`batch_size`", "batch_size=4 for 3 images"]),
    ("None", dict(x=None), ["`x` must be images", "x=None"]),
    ("epochs 0", dict(x=GOOD_U8, epochs=0), ["`epochs` must be an int >= 1", "epochs=0"]),
    ("epochs string", dict(x=GOOD_U8, epochs="2"), ["`epochs`", "epochs='2'"]),
    ("epochs float", dict(x=GOOD_U8, epochs=2.5), ["`epochs`", "epochs=2.5"]),
    ("labels", dict(x=GOOD_U8, y=np.zeros(8)), ["without labels", "ndarray"]),
    ("fit batch_size", dict(x=GOOD_U8, batch_size=2), ["`batch_size`", "(4)", "batch_size=2"]),
    (
        "generator of another batch size",
        dict(x=DataGeneratorSimCLR(GOOD_U8, 2, seed=0)),
        ["batch size must equal SimCLR's `batch_size` (4)", "batches of 2 images"],
    ),
    (
        "generator of float [0, 255]",
        dict(x="float-generator"),
        ["`images`", "divide by 255"],
    ),
    (
        "PyDataset of another batch size",
        dict(x="pydataset-2"),
        ["batch size must equal", "`x[0]` holds 2 images"],
    ),
    ("PyDataset of [0, 255] floats", dict(x="pydataset-255"), ["`x[0]`", "divide by 255"]),
]


class _Batches(keras.utils.PyDataset):
    def __init__(self, images, batch_size):
        super().__init__()
        self.images, self.batch_size = images, batch_size

    def __len__(self):
        return len(self.images) // self.batch_size

    def __getitem__(self, i):
        return self.images[i * self.batch_size : (i + 1) * self.batch_size]


def _data(x):
    if not isinstance(x, str):
        return x
    if x == "float-generator":
        return DataGeneratorSimCLR(GOOD_U8.astype("float32"), B)
    if x == "pydataset-2":
        return _Batches(GOOD_U8, 2)
    if x == "pydataset-255":
        return _Batches(GOOD_U8.astype("float32"), B)
    raise AssertionError(x)


# evaluate() takes the data cases; the others name fit-only arguments (epochs, ...).
FIT_AND_EVALUATE = [(method, *case) for case in FIT for method in ("fit", "evaluate")
                    if method == "fit" or not set(case[1]) - {"x", "y"}]  # fmt: skip


def later_batch_bad(kind):
    """Eight batches of B images; batch 5 bad in `kind`'s way (the first is fine)."""
    x = np.concatenate([GOOD_F] * 4)
    if kind == "nan":
        x[5 * B + 1, 2, 3, 0] = np.nan
    elif kind == "255":
        x[5 * B : 6 * B] *= 255.0
    return x


class _Partial(_Batches):
    def __len__(self):  # a short last batch, as many loaders give by default
        return -(-len(self.images) // self.batch_size)


class TestFitAndEvaluateInput(testing.TestCase):
    @pytest.mark.parametrize(
        "method, case, kwargs, fragments",
        FIT_AND_EVALUATE,
        ids=[f"{c[1]}-{c[0]}" for c in FIT_AND_EVALUATE],
    )
    def test_fit_and_evaluate_reject(self, simclr, method, case, kwargs, fragments):
        kwargs = dict(kwargs)
        x = kwargs.pop("x")
        raises(lambda: getattr(simclr, method)(_data(x), verbose=0, **kwargs), *fragments)

    @pytest.mark.parametrize(
        "kind, fragments", [("nan", ["non-finite"]), ("255", ["divide by 255"])]
    )
    def test_pydataset_later_batch_is_checked(self, simclr, kind, fragments):
        # Only the first batch was checked: a bad batch 5 trained silently.
        raises(
            lambda: simclr.fit(_Batches(later_batch_bad(kind), B), verbose=0), "`x[5]`", *fragments
        )
        raises(
            lambda: simclr.fit(_Partial(np.concatenate([GOOD_F, GOOD_F[:2]]), B), verbose=0),
            "`x[2]`",
            "holds 2 images",
        )

    @pytest.mark.parametrize(
        "kind, fragments", [("nan", ["non-finite"]), ("255", ["divide by 255"])]
    )
    def test_tf_data_batches_are_checked(self, simclr, kind, fragments):
        tf = pytest.importorskip("tensorflow")
        good = tf.data.Dataset.from_tensor_slices(np.concatenate([GOOD_F] * 4)).batch(B)
        history = simclr.fit(good, epochs=1, verbose=0)
        assert np.isfinite(history.history["loss"][0])
        bad = tf.data.Dataset.from_tensor_slices(later_batch_bad(kind)).batch(B)
        raises(lambda: simclr.fit(bad, verbose=0), "`x's batch 6`", *fragments)
        first = tf.data.Dataset.from_tensor_slices(GOOD_U8 * 1.0).batch(B)  # floats in [0, 255]
        raises(lambda: simclr.fit(first, verbose=0), "`x's batch 1`", "divide by 255")
        ragged = tf.data.Dataset.from_tensor_slices(np.concatenate([GOOD_F, GOOD_F[:2]])).batch(B)
        raises(lambda: simclr.fit(ragged, verbose=0), "holds 2 images", "drop_remainder=True")
        labelled = tf.data.Dataset.from_tensor_slices((later_batch_bad(kind), np.zeros(32))).batch(
            B
        )
        raises(lambda: simclr.evaluate(labelled.map(lambda a, b: a), verbose=0), *fragments)

    def test_fit_accepts_good_images_of_every_documented_kind(self, simclr):
        for x in (GOOD_U8, GOOD_F, GOOD_U8.astype("int64")):
            history = simclr.fit(x, epochs=1, verbose=0, steps_per_epoch=1)
            assert np.isfinite(history.history["loss"][0])

    def test_image_advice_fits_the_input(self, simclr):
        # int8 is not 16-bit data; a uint8/float mix is not "[0, 255] floats".
        message = raises(lambda: simclr.fit(GOOD_U8.astype("int8"), verbose=0), "int8")
        assert "16-bit" not in message and "257" not in message
        mixed = [GOOD_U8[0], GOOD_F[1]] * 4
        message = raises(lambda: simclr.fit(mixed, verbose=0), "one kind")
        assert "divide by 255" not in message

    def test_image_check_reads_every_image_not_only_the_first_64(self):
        x = np.zeros((200,) + SHAPE, "float32")
        x[-1, 0, 0, 0] = 255.0
        raises(lambda: DataGeneratorSimCLR(x, B), "`images`", "255", "divide by 255")
        x[-1, 0, 0, 0] = np.nan
        raises(lambda: DataGeneratorSimCLR(x, B), "1 non-finite", "image 199")


# -- DataGeneratorSimCLR and its constructors ---------------------------------


def _png(path, colour=(10, 20, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), colour).save(path)
    return path


GENERATOR = [
    (lambda p: DataGeneratorSimCLR(GOOD_U8, 4, seed="1"), ["`seed`", "seed='1'"]),
    (lambda p: DataGeneratorSimCLR(GOOD_U8, "4"), ["`batch_size`", "batch_size='4'"]),
    (lambda p: DataGeneratorSimCLR(GOOD_U8, 0), ["`batch_size`", "batch_size=0"]),
    (
        lambda p: DataGeneratorSimCLR(GOOD_U8, 4, labels=["cat"] * 8),
        ["`labels` must be integer class ids", "<U3"],
    ),
    (
        lambda p: DataGeneratorSimCLR(GOOD_U8, 4, labels=[0, 1]),
        ["`labels` must hold one label per image (8)", "(2,)"],
    ),
    (
        lambda p: DataGeneratorSimCLR(GOOD_U8, 4, labels=[0.0] * 7 + [np.nan]),
        [
            "`labels` must be integer class ids, with none missing",
            "1 NaN label(s) of 8",
            "labels[7]",
        ],
    ),
    (lambda p: DataGeneratorSimCLR(GOOD_U8 * 1.0, 4), ["`images`", "divide by 255"]),
    (
        lambda p: DataGeneratorSimCLR(GOOD_U8, 4, pseudo_labels=[0] * 3),
        ["`pseudo_labels`", "(3,)"],
    ),
    (
        lambda p: DataGeneratorSimCLR(GOOD_U8, 4, pseudo_labels=["cluster"] * 8),
        ["`pseudo_labels` must be integer class ids", "'cluster'"],
    ),
    (
        lambda p: DataGeneratorSimCLR.from_directory(p / "nope", (8, 8), 2),
        ["`directory` does not exist", "nope"],
    ),
    (
        lambda p: DataGeneratorSimCLR.from_directory(p / "classes", (8, 8), 2, labels="yes"),
        ["`labels` must be 'inferred' or None", "labels='yes'"],
    ),
    (
        lambda p: DataGeneratorSimCLR.from_directory(p / "classes", "8", 2),
        ["`image_size`", "image_size='8'"],
    ),
    (
        lambda p: DataGeneratorSimCLR.from_directory(p / "classes", (8, 8), 2, background=300),
        ["`background`", "background=300"],
    ),
    (
        lambda p: DataGeneratorSimCLR.from_directory(p / "classes", (8, 8), 2, resize_mode="fit"),
        ["`resize_mode` must be one of", "resize_mode='fit'"],
    ),
    (
        lambda p: DataGeneratorSimCLR.from_files(
            [str(p / "classes/a/0.png")] * 3, (8, 8), 2, labels=[0]
        ),
        ["`labels` must hold one label per image (3)"],
    ),
]


@pytest.fixture
def folders(tmp_path):
    for cls in ("a", "b"):
        for i in range(3):
            _png(tmp_path / "classes" / cls / f"{i}.png")
    return tmp_path


class TestGeneratorInput(testing.TestCase):
    @pytest.mark.parametrize("make, fragments", GENERATOR)
    def test_generator_rejects(self, folders, make, fragments):
        raises(lambda: make(folders), *fragments)

    def test_dataframe_rows_without_a_file_name_are_skipped_with_a_warning(self, folders):
        pd = pytest.importorskip("pandas")
        frame = pd.DataFrame(
            {
                "filename": ["a/0.png", np.nan, "b/0.png", 3, "b/1.png"],
                "label": ["x", "y", None, "y", "y"],
            }
        )
        with pytest.warns(UserWarning) as caught:
            gen = DataGeneratorSimCLR.from_dataframe(
                frame, (8, 8), 2, base_dir=folders / "classes", label_column="label"
            )
        message = " ".join(str(w.message) for w in caught)
        for fragment in ("Skipped 3 of 5", "row 1", "nan", "row 2: label", "row 3", "3"):
            assert fragment in message
        assert gen.num_images == 2 and gen.labels.tolist() == [0, 1]
        raises(
            lambda: DataGeneratorSimCLR.from_dataframe(frame, (8, 8), 2, filename_column="path"),
            "`filename_column` must name a column",
            "filename_column='path'",
        )
        raises(
            lambda: DataGeneratorSimCLR.from_dataframe(frame, (8, 8), 2, label_column="y"),
            "`label_column`",
            "label_column='y'",
        )

    def test_empty_class_folder_is_reported_and_keeps_its_id(self, folders):
        (folders / "classes" / "aa_empty").mkdir()
        (folders / "classes" / "aa_empty" / "notes.txt").write_text("no images")
        with pytest.warns(UserWarning, match=r"hold no image files.*'aa_empty'"):
            gen = DataGeneratorSimCLR.from_directory(folders / "classes", (8, 8), 2)
        assert gen.class_names == ["a", "aa_empty", "b"]
        assert sorted(set(gen.labels.tolist())) == [0, 2]

    def test_unreadable_files_are_skipped_with_one_warning_naming_them(self, folders):
        (folders / "classes" / "a" / "broken.png").write_bytes(b"\x89PNG half")
        with pytest.warns(UserWarning, match=r"Skipped 1 unreadable.*broken\.png"):
            gen = DataGeneratorSimCLR.from_directory(folders / "classes", (8, 8), 2)
        assert gen.num_images == 6

    @pytest.mark.skipif(not hasattr(os, "symlink") or os.name == "nt", reason="POSIX symlinks")
    def test_symlink_loops_and_repeated_links_neither_hang_nor_duplicate(self, folders):
        root = folders / "classes"
        os.symlink(root, root / "a" / "loop")  # a link to an ancestor
        os.symlink(root, root / "b" / "loop2")  # and a second one
        os.symlink(root / "a", root / "b" / "again")  # a folder reached twice
        gen = DataGeneratorSimCLR.from_directory(root, (8, 8), 2)
        assert gen.num_images == 6
        assert len(set(map(os.path.realpath, gen.paths))) == 6

    @pytest.mark.skipif(sys.platform != "linux", reason="arbitrary bytes in names: Linux")
    def test_non_utf8_and_unicode_file_names_load(self, tmp_path):
        folder = tmp_path / "imgs"
        folder.mkdir()
        raw = os.fsencode(folder) + b"/caf\xe9-latin1.png"  # not valid UTF-8
        try:
            Image.new("RGB", (8, 8), (1, 2, 3)).save(open(raw, "wb"), format="PNG")
        except OSError:
            pytest.skip("the file system refuses non-UTF-8 names")
        _png(folder / "日本語-é.png")
        gen = DataGeneratorSimCLR.from_directory(folder, (8, 8), 2)
        assert gen.num_images == 2 and gen.images.shape == (2, 8, 8, 3)
        assert any("\udce9" in p for p in gen.paths)  # surrogate-escaped, reopens fine


# -- pseudo_labels --------------------------------------------------------------

PSEUDO = [
    (dict(images=GOOD_U8 * 1.0), ["`images`", "divide by 255"]),
    (dict(images=with_nan()), ["`images`", "non-finite"]),
    (dict(n_clusters=1), ["`n_clusters`", "n_clusters=1"]),
    (dict(n_clusters="3"), ["`n_clusters`", "n_clusters='3'"]),
    (dict(epochs=0), ["`epochs`", "epochs=0"]),
    (dict(noise_std=-1), ["`noise_std`", "noise_std=-1"]),
    (dict(seed="0"), ["`seed`", "seed='0'"]),
]


class TestPseudoLabelsArguments(testing.TestCase):
    @pytest.mark.parametrize("change, fragments", PSEUDO, ids=[str(c[0])[:30] for c in PSEUDO])
    def test_pseudo_labels_rejects(self, change, fragments):
        args = dict(images=GOOD_U8, n_clusters=2, epochs=1, verbose=0)
        args.update(change)
        raises(lambda: pseudo_labels(**args), *fragments)


# -- evaluation helpers -----------------------------------------------------------

F_TR, Y_TR = RNG.normal(size=(12, 4)), np.arange(12) % 2
F_TE, Y_TE = RNG.normal(size=(6, 4)), np.arange(6) % 2
EVAL = [
    (
        lambda: linear_evaluation(F_TR, Y_TR[:-1], F_TE, Y_TE),
        ["`train_labels` must hold one label per row of `train_features` (12)", "(11,)"],
    ),
    (
        lambda: linear_evaluation(F_TR, Y_TR, F_TE, Y_TE[:2]),
        ["`test_labels`", "row of `test_features` (6)", "(2,)"],
    ),
    (
        lambda: linear_evaluation(F_TR, Y_TR * 0, F_TE, Y_TE),
        ["`train_labels` must hold at least 2 classes", "[0]"],
    ),
    (
        lambda: linear_evaluation(F_TR, np.where(Y_TR == 1, np.nan, Y_TR), F_TE, Y_TE),
        ["`train_labels`", "6 NaN label(s) of 12", "train_labels[1]"],
    ),
    (
        lambda: stratified_fraction(np.r_[Y_TR, np.nan], 0.5),
        ["`labels`", "none missing", "1 NaN label(s) of 13", "labels[12]"],
    ),
    (lambda: stratified_fraction(["a", "b", "a"], 0.5), ["`labels`", "integer class ids", "<U1"]),
    (
        lambda: KNNMonitor(GOOD_U8, ["cat", "dog"] * 4),
        ["`labels` must be integer class ids", "np.unique", "'cat'"],
    ),
    (
        lambda: KNNMonitor(GOOD_U8, Y_TR[:8], validation=(GOOD_U8, [np.nan] * 8)),
        ["`validation[1]`", "8 NaN label(s)"],
    ),
    (lambda: knn_accuracy(F_TR, ["a"] * 12, F_TE, Y_TE), ["`bank_labels`", "integer class ids"]),
    (lambda: knn_accuracy(F_TR, Y_TR, F_TE, ["a"] * 6), ["`query_labels`", "integer class ids"]),
    (
        lambda: finetune_evaluation(
            backbone(), (GOOD_U8, ["a", "b"] * 4), (GOOD_U8, Y_TR[:8]), fractions=[1]
        ),
        ["`train[1]` must be integer class ids"],
    ),
    (
        lambda: linear_evaluation(F_TR, Y_TR, F_TE, Y_TE, fractions=(0,)),
        ["`fractions[0]`", "(0, 1]"],
    ),
    (lambda: linear_evaluation(F_TR, Y_TR, F_TE, Y_TE, fractions=(1.5,)), ["fractions[0]=1.5"]),
    (lambda: linear_evaluation(F_TR, Y_TR, F_TE, Y_TE, fractions="0.1"), ["fractions[0]='0.1'"]),
    (lambda: linear_evaluation(F_TR, Y_TR, F_TE, Y_TE, fractions=()), ["`fractions`", "non-empty"]),
    (lambda: linear_evaluation(F_TR, Y_TR, F_TE, Y_TE, seeds=("a",)), ["`seeds[0]`", "'a'"]),
    (lambda: linear_evaluation(F_TR, Y_TR, F_TE[:, :2], Y_TE), ["as many columns", "2 and 4"]),
    (
        lambda: linear_evaluation(np.where(F_TR > 1, np.nan, F_TR), Y_TR, F_TE, Y_TE),
        ["`train_features` must be finite", "NaN"],
    ),
    (lambda: linear_evaluation(F_TR, ["a"] * 12, F_TE, Y_TE), ["integer class ids"]),
    (lambda: stratified_fraction(Y_TR, 0.0), ["`fraction`", "(0, 1]", "fraction=0.0"]),
    (lambda: stratified_fraction(Y_TR, "0.5"), ["`fraction`", "fraction='0.5'"]),
    (lambda: extract_features(backbone(), GOOD_U8 * 1.0), ["`images`", "divide by 255"]),
    (lambda: extract_features(backbone(), with_nan()), ["`images`", "non-finite"]),
    (
        lambda: extract_features(backbone(), np.concatenate([GOOD_U8, GOOD_U8], -1)),
        ["3 channel(s)", "6 channel(s)"],
    ),
    (lambda: extract_features(backbone(), GOOD_U8, batch_size="8"), ["`batch_size`", "'8'"]),
    (
        lambda: finetune_evaluation(backbone(), (GOOD_U8, Y_TR[:8][:-1]), (GOOD_U8, Y_TR[:8])),
        ["`train`", "8 rows and 7 labels"],
    ),
    (
        lambda: finetune_evaluation(backbone(), (GOOD_U8 * 1.0, Y_TR[:8]), (GOOD_U8, Y_TR[:8])),
        ["`train[0]`", "divide by 255"],
    ),
    (
        lambda: finetune_evaluation(
            backbone(), (GOOD_U8, Y_TR[:8]), (GOOD_U8, Y_TR[:8]), fractions=[2]
        ),
        ["fractions[0]=2"],
    ),
    (
        lambda: finetune_evaluation(backbone(), GOOD_U8, (GOOD_U8, Y_TR[:8])),
        ["`train` must be a pair"],
    ),
    (
        lambda: compare_backbones(backbone(), backbone(), (GOOD_U8, Y_TR[:7]), (GOOD_U8, Y_TR[:8])),
        ["`train`", "8 rows and 7 labels"],
    ),
    (
        lambda: compare_backbones(
            backbone(), backbone(), (GOOD_U8, Y_TR[:8]), (GOOD_U8, Y_TR[:8]), classifiers="svm"
        ),
        ["`classifiers`", "svm"],
    ),
    (lambda: plot_tsne(F_TR, Y_TR[:5], "x.png"), ["`features`", "12, 4", "5 labels"]),
    (lambda: plot_tsne(np.full((12, 4), np.nan), Y_TR, "x.png"), ["`features` must be finite"]),
]


class TestEvaluationArguments(testing.TestCase):
    @pytest.mark.parametrize("make, fragments", EVAL)
    def test_evaluation_helpers_reject(self, make, fragments, tmp_path, monkeypatch):
        monkeypatch.chdir(tmp_path)
        raises(make, *fragments)
        assert not os.path.exists(tmp_path / "x.png")

    def test_test_classes_missing_from_training_are_reported(self):
        with pytest.warns(UserWarning, match=r"absent from the training labels.*\[2\]"):
            linear_evaluation(F_TR, Y_TR, F_TE, np.r_[Y_TE[:-1], 2], fractions=(1.0,), seeds=(0,))


# -- the CLI (in-process) ------------------------------------------------------


def run_cli(capsys, *argv):
    try:  # argparse errors exit; checks after parsing return the exit code
        code = cli_main([str(a) for a in argv])
    except SystemExit as info:
        code = info.code
    assert code == 2
    return capsys.readouterr().err


CLI = [
    (["pretrain", "{tmp}/nope", "--output", "{tmp}/out"], ["DATA_DIR", "nope", "does not exist"]),
    (
        ["pretrain", "{tmp}/data", "--feat-dims", "a,b", "--output", "{tmp}/out"],
        ["--feat-dims", "'a,b'"],
    ),
    (["pretrain", "{tmp}/data", "--feat-dims", "128,0"], ["--feat-dims", "positive"]),
    (
        ["pretrain", "{tmp}/data", "--epochs", "0", "--output", "{tmp}/out"],
        ["--epochs", "int >= 1", "'0'"],
    ),
    (["pretrain", "{tmp}/data", "--epochs", "2.5"], ["--epochs", "'2.5' is not a number"]),
    (["pretrain", "{tmp}/data", "--batch-size", "1"], ["--batch-size", "int >= 2"]),
    (["pretrain", "{tmp}/data", "--temperature", "-0.1"], ["--temperature", "positive"]),
    (["pretrain", "{tmp}/data", "--learning-rate", "abc"], ["--learning-rate", "'abc'"]),
    (["pretrain", "{tmp}/data", "--blur", "1.5"], ["--blur", "[0, 1]"]),
    (["pretrain", "{tmp}/data", "--image-size", "0"], ["--image-size", "int >= 1"]),
    (["pretrain", "{tmp}/data", "--seed", "-3"], ["--seed"]),
    (["pretrain", "{tmp}/data", "--unfrozen-layers", "-5"], ["--unfrozen-layers", "int >= -1"]),
    (
        ["pretrain", "{tmp}/data", "--backbone", "resnet9", "--output", "{tmp}/out"],
        ["`--backbone` must be one of", "resnet9"],
    ),
    (
        [
            "evaluate",
            "--backbone",
            "{tmp}/none.keras",
            "--train-dir",
            "{tmp}/data",
            "--test-dir",
            "{tmp}/data",
        ],
        ["`--backbone`", "none.keras", "does not exist"],
    ),
    (
        [
            "evaluate",
            "--backbone",
            "{tmp}/b.keras",
            "--train-dir",
            "{tmp}/nope",
            "--test-dir",
            "{tmp}/data",
        ],
        ["`--train-dir`", "nope"],
    ),
    (
        [
            "evaluate",
            "--backbone",
            "{tmp}/b.keras",
            "--train-dir",
            "{tmp}/data",
            "--test-dir",
            "{tmp}/data",
            "--classifiers",
            "svm",
        ],
        ["--classifiers", "svm", "linear and/or finetune"],
    ),
    (
        [
            "evaluate",
            "--backbone",
            "b",
            "--train-dir",
            "d",
            "--test-dir",
            "d",
            "--fractions",
            "0,1",
        ],
        ["--fractions", "'0,1'"],
    ),
    (["demo", "--epochs", "-1"], ["--epochs"]),
    (
        ["evaluate", "--backbone", "{tmp}/b.keras", "--fractions", "0.1,x"],
        ["--fractions", "fractions in (0, 1], e.g. 0.05,0.2,1", "'0.1,x'"],
    ),
    (["evaluate", "--backbone", "b", "--seeds", "0,-1"], ["--seeds", "e.g. 0,1,2"]),
    (
        ["pretrain", "{tmp}/data", "--backbone", "{tmp}/gone.keras", "--output", "{tmp}/out"],
        ["`--backbone` names a saved model file that does not exist", "gone.keras"],
    ),
    (
        ["pretrain", "{tmp}/data", "--output", "{tmp}/b.keras"],
        ["`--output` must be a folder", "b.keras", "is a file"],
    ),
    (
        ["evaluate", "--backbone", "{tmp}/b.keras", "--output", "{tmp}/b.keras"],
        ["`--output` must be a folder", "is a file"],
    ),
    (["demo", "--output", "{tmp}/b.keras"], ["`--output` must be a folder", "is a file"]),
]


class TestCliArguments(testing.TestCase):
    @pytest.mark.parametrize("argv, fragments", CLI, ids=[" ".join(c[0][:4]) for c in CLI])
    def test_cli_rejects(self, tmp_path, capsys, argv, fragments):
        _png(tmp_path / "data" / "a" / "0.png")
        (tmp_path / "b.keras").write_bytes(b"")
        err = run_cli(capsys, *[a.format(tmp=tmp_path) for a in argv])
        for fragment in fragments:
            assert fragment in err, f"{fragment!r} not in {err!r}"
        assert "Traceback" not in err
        assert not (tmp_path / "out").exists()  # nothing written for bad input
