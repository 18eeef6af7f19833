"""DataGeneratorSimCLR on real image files: loading, bad input, determinism."""

import os
import warnings

import keras
import numpy as np
import pytest
import testing
from PIL import Image
from sklearn.datasets import load_digits

from simclr_keras.data.generator import DataGeneratorSimCLR
from simclr_keras.data.image_io import load_image, to_rgb

SIZE = 16


def _digits(n):
    digits = load_digits()
    images = (digits.images[:n] * 16).clip(0, 255).astype(np.uint8)
    return images, digits.target[:n]


def _write_digits(folder, n=40, classes=True, fmt=("png", "JPG")):
    """n digits upscaled to 16x16 as PNG / JPEG, in class sub-folders or flat."""
    images, targets = _digits(n)
    paths = []
    for i, (img, y) in enumerate(zip(images, targets)):
        sub = os.path.join(folder, f"digit_{y}") if classes else folder
        os.makedirs(sub, exist_ok=True)
        path = os.path.join(sub, f"{i:03d}.{fmt[i % len(fmt)]}")
        Image.fromarray(img).resize((SIZE, SIZE), Image.NEAREST).save(path)
        paths.append(path)
    return paths, targets


@pytest.fixture
def data_digit_folder(tmp_path):
    folder = tmp_path / "digits"
    _write_digits(str(folder))
    return folder


def _epoch(gen):
    return [gen[i].copy() for i in range(len(gen))]


def _tiny_simclr(seed=0):
    from simclr_keras import SimCLR

    base = keras.Sequential(
        [
            keras.Input((SIZE, SIZE, 3)),
            keras.layers.Conv2D(4, 3, strides=2, activation="relu"),
            keras.layers.Conv2D(8, 3, strides=2, activation="relu"),
        ]
    )
    return SimCLR(
        base,
        (SIZE, SIZE, 3),
        batch_size=16,
        feat_dims_ph=[8, 4],
        num_of_unfrozen_layers=-1,
        seed=seed,
    )


class TestGenerator(testing.TestCase):
    def test_from_directory_labels_shapes_and_dtype(self, data_digit_folder):
        gen = DataGeneratorSimCLR.from_directory(
            data_digit_folder, image_size=(12, 10), batch_size=8, seed=0
        )
        _, targets = _digits(40)
        assert gen.class_names == [f"digit_{c}" for c in sorted(set(targets))]
        assert gen.num_images == 40 and len(gen) == 5
        images, labels = gen.load_all()
        assert images.shape == (40, 12, 10, 3) and images.dtype == np.uint8
        assert labels.dtype == np.int64
        # Files are sorted by folder, then name: labels follow the sorted targets.
        self.assertAllEqual(labels, np.sort(targets))
        assert all(b.shape == (8, 12, 10, 3) and b.dtype == np.uint8 for b in _epoch(gen))

    def test_flat_folder_is_unlabelled_recursive_and_case_insensitive(self, tmp_path):
        _write_digits(
            str(tmp_path / "a"),
            n=10,
            classes=False,
            fmt=("PNG", "jpeg", "Bmp", "tif", "webp", "GIF"),
        )
        os.makedirs(tmp_path / "b" / "deep")
        Image.new("RGB", (5, 5), (1, 2, 3)).save(tmp_path / "b" / "deep" / "x.TIFF")
        (tmp_path / "b" / "notes.txt").write_text("not an image, not listed")
        gen = DataGeneratorSimCLR.from_directory(tmp_path, (8, 8), batch_size=4, labels=None)
        assert gen.labels is None and gen.class_names is None and gen.num_images == 11

    def test_batches_deterministic_full_and_vary_across_epochs(self, data_digit_folder):
        def make():
            return DataGeneratorSimCLR.from_directory(
                data_digit_folder, (SIZE, SIZE), batch_size=6, seed=3
            )

        a, b = make(), make()
        assert len(a) == 40 // 6
        first = _epoch(a)
        for x, y in zip(first, _epoch(b)):
            self.assertAllEqual(x, y)
        seen = np.concatenate([a.batch_indices(i) for i in range(len(a))])
        assert len(seen) == 36 and len(set(seen.tolist())) == 36  # full, no repeats
        a.on_epoch_end()
        assert not all(np.array_equal(x, y) for x, y in zip(first, _epoch(a)))
        other = DataGeneratorSimCLR.from_directory(
            data_digit_folder, (SIZE, SIZE), batch_size=6, seed=4
        )
        assert not np.array_equal(a.batch_indices(0), other.batch_indices(0))

    def test_cache_and_no_cache_give_identical_batches(self, data_digit_folder):
        cached = DataGeneratorSimCLR.from_directory(
            data_digit_folder, (SIZE, SIZE), batch_size=8, seed=1
        )
        lazy = DataGeneratorSimCLR.from_directory(
            data_digit_folder, (SIZE, SIZE), batch_size=8, seed=1, cache_limit_bytes=0
        )
        assert cached.cached and not lazy.cached
        for _ in range(2):
            for x, y in zip(_epoch(cached), _epoch(lazy)):
                self.assertAllEqual(x, y)
            cached.on_epoch_end(), lazy.on_epoch_end()
        self.assertAllEqual(cached.images, lazy.images)

    def test_uncached_batches_decoded_ahead_stay_correct(self, data_digit_folder):
        # Without the cache, batch i + 1 is decoded in the background while batch
        # i trains; any access order, a new epoch or new pseudo-labels must still
        # give exactly the batch asked for.
        cached = DataGeneratorSimCLR.from_directory(
            data_digit_folder, (SIZE, SIZE), batch_size=8, seed=1
        )
        lazy = DataGeneratorSimCLR.from_directory(
            data_digit_folder, (SIZE, SIZE), batch_size=8, seed=1, cache_limit_bytes=0
        )
        for index in [0, 1, 3, 2, 4, 4, 0]:
            self.assertAllEqual(lazy[index], cached[index])
        assert lazy._prefetch is not None and lazy._prefetch[0] == (0, 1)  # batch 1 decoded ahead
        lazy.on_epoch_end(), cached.on_epoch_end()  # the batch decoded ahead is for the old plan
        self.assertAllEqual(lazy[1], cached[1])
        lazy[0]  # decodes batch 1 of the current plan ahead
        lazy.pseudo_labels = cached.pseudo_labels = np.arange(40) % 5  # same epoch, new plan
        for index in [1, 0, 2, 3, 4]:
            self.assertAllEqual(lazy[index], cached[index])
        lazy.workers = 2  # Keras' enqueuer runs ahead itself: no decoding ahead here
        lazy._prefetch = None
        lazy[0]
        assert lazy._prefetch is None

    def test_decoded_pixels_match_source(self, tmp_path):
        _write_digits(str(tmp_path), n=6, classes=False, fmt=("png",))
        gen = DataGeneratorSimCLR.from_directory(
            tmp_path, (SIZE, SIZE), batch_size=2, shuffle=False
        )
        images, _ = _digits(6)
        expected = np.stack(
            [np.asarray(Image.fromarray(i).resize((SIZE, SIZE), Image.NEAREST)) for i in images]
        )
        self.assertAllEqual(gen.images, np.repeat(expected[..., None], 3, axis=-1))
        self.assertAllEqual(gen[0], gen.images[:2])  # shuffle=False keeps file order

    def test_every_pil_mode_becomes_rgb(self, tmp_path):
        rng = np.random.default_rng(0)
        grey = rng.integers(0, 256, (9, 7), dtype=np.uint8)
        rgba = np.zeros((9, 7, 4), np.uint8)
        rgba[..., 3] = 0  # fully transparent: composited on white
        cases = {
            "l.png": Image.fromarray(grey),
            "la.png": Image.merge("LA", [Image.fromarray(grey), Image.new("L", (7, 9), 255)]),
            "p.png": Image.fromarray(grey).convert("P"),
            "rgba.png": Image.fromarray(rgba),
            "cmyk.jpg": Image.new("CMYK", (7, 9), (0, 0, 0, 0)),
            "i16.png": Image.fromarray(grey.astype(np.uint16) * 257),
            "one.bmp": Image.fromarray(grey > 127).convert("1"),
            "f.tif": Image.fromarray(grey.astype(np.float32) / 255.0),
        }
        for name, img in cases.items():
            img.save(tmp_path / name)
        out = {name: load_image(tmp_path / name, (9, 7), "stretch") for name in cases}
        for name, array in out.items():
            assert array.shape == (9, 7, 3) and array.dtype == np.uint8, name
        for name in ("l.png", "la.png", "p.png", "i16.png", "f.tif"):
            self.assertAllEqual(out[name][..., 0], grey, msg=name)
            self.assertAllEqual(out[name][..., 2], grey, msg=name)
        assert (out["rgba.png"] == 255).all()  # transparent -> white background
        assert (out["cmyk.jpg"] >= 250).all()  # no ink is white
        self.assertAllEqual(out["one.bmp"][..., 0], np.where(grey > 127, 255, 0))
        black = to_rgb(Image.fromarray(rgba), background=0)
        assert (np.asarray(black) == 0).all()
        gen = DataGeneratorSimCLR.from_directory(tmp_path, (9, 7), batch_size=4)
        assert gen.num_images == len(cases) and not gen.skipped_files

    @pytest.mark.parametrize("name", ["dark16.png", "dark16.tif"])
    def test_dark_16_bit_image_is_scaled_by_its_bit_depth_not_its_values(self, tmp_path, name):
        # Every value <= 255, yet 16-bit: 200 of 65535 is nearly black, not 200 of 255.
        values = np.random.default_rng(0).integers(0, 256, (9, 7)).astype(np.uint16)
        Image.fromarray(values).save(tmp_path / name)
        got = load_image(tmp_path / name, (9, 7), "stretch")
        want = np.round(values * 255.0 / 65535).astype(np.uint8)
        self.assertAllEqual(got[..., 0], want)
        assert got.max() <= 1
        # A rotated 16-bit TIFF: the upright copy forgets the file, not its depth.
        exif = Image.Exif()
        exif[0x0112] = 3
        Image.fromarray(values).save(tmp_path / ("rot_" + name), exif=exif.tobytes())
        assert load_image(tmp_path / ("rot_" + name), (9, 7), "stretch").max() <= 1

    def test_float_tiff_with_nan_is_skipped_with_a_warning_naming_it(self, tmp_path):
        good = np.random.default_rng(0).random((8, 8)).astype(np.float32)
        for i in range(4):
            Image.fromarray(good).save(tmp_path / f"good{i}.tif")
        Image.fromarray(np.full((8, 8), np.nan, np.float32)).save(tmp_path / "all_nan.tif")
        partly = good.copy()
        partly[2, 3] = np.inf
        Image.fromarray(partly).save(tmp_path / "one_inf.tif")
        with pytest.warns(UserWarning, match="Skipped 2 unreadable image file") as caught:
            gen = DataGeneratorSimCLR.from_directory(tmp_path, (8, 8), batch_size=2)
        text = " ".join(str(w.message) for w in caught)
        assert "all_nan.tif" in text and "64 NaN or inf pixel(s) of 64 (every pixel)" in text
        assert "one_inf.tif" in text and "1 NaN or inf pixel(s) of 64" in text
        assert gen.num_images == 4
        assert sorted(os.path.basename(p) for p, _ in gen.skipped_files) == [
            "all_nan.tif",
            "one_inf.tif",
        ]

    def test_exif_orientation_is_honoured(self, tmp_path):
        # Stored 20 wide x 10 high, left half black; orientation 6 says "rotate
        # 90 degrees clockwise to display", so it shows 10 wide x 20 high with
        # the black half on top.
        stored = np.full((10, 20, 3), 255, np.uint8)
        stored[:, :10] = 0
        exif = Image.Exif()
        exif[0x0112] = 6
        Image.fromarray(stored).save(tmp_path / "rot.jpg", exif=exif.tobytes(), quality=95)
        upright = load_image(tmp_path / "rot.jpg", (20, 10), "stretch")
        assert upright.shape == (20, 10, 3)
        assert upright[:8].mean() < 30 and upright[12:].mean() > 225
        cropped = load_image(tmp_path / "rot.jpg", (8, 8), "crop")  # centre crop of a tall image
        assert cropped.shape == (8, 8, 3) and cropped[:3].mean() < 40 and cropped[5:].mean() > 215

    def test_crop_keeps_aspect_stretch_does_not(self, tmp_path):
        wide = np.zeros((10, 30, 3), np.uint8)
        wide[:, 10:20] = 255  # white centre third
        Image.fromarray(wide).save(tmp_path / "wide.png")
        crop = load_image(tmp_path / "wide.png", (10, 10), "crop")
        stretch = load_image(tmp_path / "wide.png", (10, 10), "stretch")
        assert crop.min() == 255  # the centre square only
        assert stretch[:, 0].max() == 0 and stretch[:, 5].min() == 255

    def test_bad_files_skipped_with_one_warning(self, data_digit_folder):
        bad = data_digit_folder / "digit_0"
        (bad / "empty.png").write_bytes(b"")
        (bad / "text.jpg").write_text("this is not a JPEG")
        good_jpeg = next(p for p in sorted(data_digit_folder.rglob("*.JPG")))
        (bad / "truncated.jpg").write_bytes(good_jpeg.read_bytes()[:-40])
        with pytest.warns(
            UserWarning, match=r"Skipped 3 unreadable image file\(s\) of 43"
        ) as record:
            gen = DataGeneratorSimCLR.from_directory(
                data_digit_folder, (SIZE, SIZE), batch_size=8, seed=0
            )
        assert len([w for w in record if "unreadable" in str(w.message)]) == 1
        message = str(record[0].message)
        for name in ("empty.png", "text.jpg", "truncated.jpg"):
            assert name in message
        assert gen.num_images == 40 and len(gen.skipped_files) == 3  # every good image kept
        assert len(gen.labels) == 40

    @pytest.mark.parametrize(
        "make, match",
        [
            (
                lambda p: DataGeneratorSimCLR.from_directory(p / "missing", (8, 8), 4),
                r"does not exist.*missing",
            ),
            (
                lambda p: DataGeneratorSimCLR.from_directory(p / "empty", (8, 8), 4),
                r"no image files.*empty",
            ),
            (
                lambda p: DataGeneratorSimCLR.from_directory(p / "texts", (8, 8), 4),
                r"no image files.*texts",
            ),
            (
                lambda p: DataGeneratorSimCLR.from_directory(p / "broken", (8, 8), 4),
                r"None of the 2 image files",
            ),
            (
                lambda p: DataGeneratorSimCLR.from_directory(p / "three", (8, 8), 4),
                r"batch_size=4 for 3 images",
            ),
            (
                lambda p: DataGeneratorSimCLR.from_directory(
                    p / "three", (8, 8), 2, resize_mode="fit"
                ),
                r"resize_mode='fit'",
            ),
            (
                lambda p: DataGeneratorSimCLR.from_directory(p / "three", (8,), 2),
                r"image_size=\(8,\)",
            ),
            (
                lambda p: DataGeneratorSimCLR(np.zeros((5, 4, 4, 3)), 6),
                r"batch_size=6 for 5 images",
            ),
            (lambda p: DataGeneratorSimCLR(np.zeros((5, 4)), 2), r"shape \(5, 4\)"),
            (
                lambda p: DataGeneratorSimCLR(np.zeros((5, 4, 4, 3)), 2, pseudo_labels=[0, 1]),
                r"pseudo_labels of shape \(2,\)",
            ),
        ],
    )
    def test_bad_input_raises_one_clear_error(self, tmp_path, make, match):
        (tmp_path / "empty").mkdir()
        (tmp_path / "texts").mkdir()
        (tmp_path / "texts" / "readme.txt").write_text("no images here")
        (tmp_path / "broken").mkdir()
        (tmp_path / "broken" / "a.png").write_bytes(b"")
        (tmp_path / "broken" / "b.jpg").write_text("nope")
        (tmp_path / "three").mkdir()
        for i in range(3):
            Image.new("RGB", (8, 8)).save(tmp_path / "three" / f"{i}.png")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pytest.raises(ValueError, match=match):
                make(tmp_path)

    def test_from_dataframe(self, tmp_path):
        pd = pytest.importorskip("pandas")
        paths, targets = _write_digits(str(tmp_path), n=20, classes=False)
        names = [os.path.basename(p) for p in paths] + ["gone.png"]
        df = pd.DataFrame({"file": names, "kind": [f"k{t % 3}" for t in targets] + ["k0"]})
        with pytest.warns(UserWarning, match="gone.png"):
            gen = DataGeneratorSimCLR.from_dataframe(
                df,
                (SIZE, SIZE),
                batch_size=5,
                filename_column="file",
                label_column="kind",
                base_dir=str(tmp_path),
            )
        assert gen.class_names == ["k0", "k1", "k2"]
        self.assertAllEqual(gen.labels, targets % 3)
        assert gen.num_images == 20 and len(gen) == 4
        with pytest.raises(
            ValueError, match=r"\['file', 'kind'\]\). Received: filename_column='filename'"
        ):
            DataGeneratorSimCLR.from_dataframe(df, (SIZE, SIZE), batch_size=5)
        with pytest.raises(ValueError, match=r"label_column='y'"):
            DataGeneratorSimCLR.from_dataframe(
                df, (SIZE, SIZE), 5, filename_column="file", label_column="y"
            )

    def test_array_generator_keeps_dtype_and_guides_batches(self):
        images = np.random.default_rng(0).random((30, 4, 4, 3), dtype=np.float32)
        pseudo = np.repeat(np.arange(5), 6)  # 5 clusters of 6, 7 batches of 4
        gen = DataGeneratorSimCLR(images, 4, seed=0, pseudo_labels=pseudo)
        assert gen[0].dtype == np.float32 and gen[0].shape == (4, 4, 4, 3)
        for _ in range(3):
            stats = gen.batch_stats()
            assert (
                stats["max_per_label"] == 1 and stats["repeat_share"] == 0.0 and stats["bound"] == 1
            )
            for i in range(len(gen)):
                assert len(set(pseudo[gen.batch_indices(i)].tolist())) == 4
                self.assertAllEqual(gen[i], images[gen.batch_indices(i)])
            gen.on_epoch_end()
        assert gen.batch_stats()["epoch"] == 3

    def test_simclr_fits_on_folder_generator_plain_then_guided(self, tmp_path):
        _write_digits(str(tmp_path), n=64)
        gen = DataGeneratorSimCLR.from_directory(tmp_path, (SIZE, SIZE), batch_size=16, seed=0)
        simclr = _tiny_simclr()
        # One model, two fits: the second reuses the compiled step (fast on JAX).
        for pseudo in (None, gen.labels % 4):  # labels mod 4: clusters of any sizes
            gen.pseudo_labels = pseudo
            start = gen.epoch
            history = simclr.fit(gen, epochs=2, verbose=0)
            losses = history.history["loss"]
            assert len(losses) == 2 and np.isfinite(losses).all()
            # Keras calls on_epoch_end after every epoch (and once before the
            # first), so each epoch gets new batches.
            assert gen.epoch >= start + 2
        stats = gen.batch_stats()
        largest = np.bincount(gen.labels % 4).max()
        assert stats["max_per_label"] <= stats["bound"] == -(-largest // len(gen))
