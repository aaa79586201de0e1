"""Probe data: loading a class-folder tree or an .npz, the split, the data checks
(ML001-ML008), and the synthetic data set (determinism, balance, and that its
classes need a large receptive field). Framework-free: numpy, Pillow, scikit-learn."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PIL")
pytest.importorskip("sklearn")

from PIL import Image  # noqa: E402

from modellint.probes.data import DATA_CHECKS, Dataset, load_dataset  # noqa: E402
from modellint.probes.synth import SHAPES, synth_dataset_arrays, write_synthetic  # noqa: E402


# -- helpers -----------------------------------------------------------------------------

def _img(seed: int, h: int = 24, w: int = 24, grey: bool = False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(h, w) if grey else (h, w, 3), dtype=np.uint8)


def _folder(root: Path, per_class: dict, h: int = 24, w: int = 24, ext: str = "png") -> Path:
    """Class folders of distinct random images (``{class: count}``)."""
    k = 0
    for name, n in per_class.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.fromarray(_img(1000 + k, h, w)).save(root / name / f"{i:03d}.{ext}")
            k += 1
    return root


def _codes(ds: Dataset) -> set:
    return {c["code"] for c in ds.checks}


def _check(ds: Dataset, code: str) -> dict:
    return next(c for c in ds.checks if c["code"] == code)


def _tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*.png")):
        h.update(p.relative_to(root).as_posix().encode())
        h.update(p.read_bytes())
    return h.hexdigest()


# -- folder loading --------------------------------------------------------------------

def test_folder_of_mixed_formats(tmp_path):
    root = tmp_path / "data"
    (root / "b_dogs").mkdir(parents=True)
    (root / "a_cats" / "nested").mkdir(parents=True)
    (root / ".hidden").mkdir()
    cats = root / "a_cats"
    Image.fromarray(_img(1)).save(cats / "one.png")
    Image.fromarray(_img(2)).save(cats / "two.JPG", format="JPEG")
    Image.fromarray(_img(3)).save(cats / "nested" / "three.bmp")
    Image.fromarray(_img(4, grey=True)).save(cats / "grey.png")
    Image.fromarray(_img(5)).convert("P").save(cats / "four.gif")
    Image.fromarray(_img(6)).save(root / "b_dogs" / "five.webp", lossless=True)
    Image.fromarray(_img(7, 30, 40)).save(root / "b_dogs" / "six.jpeg")
    (root / "b_dogs" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not really a png")
    (root / "b_dogs" / "notes.txt").write_text("ignored")
    shutil.copy(cats / "one.png", root / "b_dogs" / "copy_of_one.png")

    ds = load_dataset(root, image_size=(16, 16), channels=3, val_fraction=0.0)
    assert ds.class_names == ["a_cats", "b_dogs"]
    assert ds.x_train.shape == (8, 16, 16, 3) and ds.x_train.dtype == np.float32
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0
    assert ds.y_train.dtype == np.int64 and sorted(ds.y_train.tolist()) == [0] * 5 + [1] * 3
    assert ds.x_val.shape == (0, 16, 16, 3)
    assert any("grey->RGB: 1" in n for n in ds.notes)
    assert any("ignored 1 file" in n for n in ds.notes)
    bad = _check(ds, "ML002")  # corrupt file: named, skipped, not fatal
    assert bad["files"] == ["b_dogs/broken.png"] and bad["category"] == "data"
    across = _check(ds, "ML004")
    assert set(across["files"]) == {"a_cats/one.png", "b_dogs/copy_of_one.png"}
    grey = _check(ds, "ML007")  # one grey image for an RGB model
    assert grey["files"] == ["a_cats/grey.png"] and grey["severity"] == "info"
    s = ds.summary()
    assert s["classes"] == 2 and s["train"] == 8 and s["train_per_class"] == {"a_cats": 5, "b_dogs": 3}
    assert s["image_shape"] == [16, 16, 3]


def test_grey_model_and_resize_content(tmp_path):
    root = tmp_path / "d"
    (root / "x").mkdir(parents=True)
    flat = np.full((10, 20, 3), (255, 0, 0), np.uint8)  # pure red
    Image.fromarray(flat).save(root / "x" / "red.png")
    ds = load_dataset(root, image_size=(5, 5), channels=1, val_fraction=0.0)
    assert ds.x_train.shape == (1, 5, 5, 1)
    assert np.allclose(ds.x_train, 76 / 255, atol=2 / 255)  # ITU-R 601 luma of red
    assert any("RGB->grey" in n for n in ds.notes)
    assert _check(ds, "ML007")["evidence"]["colour"] == 1


def test_bad_paths(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_dataset(tmp_path / "missing")
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    with pytest.raises(ValueError):
        load_dataset(tmp_path / "empty")
    (tmp_path / "only_bad" / "cls").mkdir(parents=True)
    (tmp_path / "only_bad" / "cls" / "a.png").write_bytes(b"nope")
    with pytest.raises(ValueError, match="could be read"):
        load_dataset(tmp_path / "only_bad")


# -- npz loading ------------------------------------------------------------------------

def test_npz_variants(tmp_path):
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 10)
    nhwc = rng.integers(0, 256, (30, 12, 12, 3), dtype=np.uint8)
    np.savez(tmp_path / "a.npz", x=nhwc, y=y, class_names=np.array(["r", "g", "b"]))
    ds = load_dataset(tmp_path / "a.npz", image_size=(12, 12), val_fraction=0.2)
    assert ds.class_names == ["r", "g", "b"]
    assert len(ds.y_train) == 24 and len(ds.y_val) == 6
    whole = np.concatenate([ds.x_train, ds.x_val])
    assert np.allclose(np.sort(whole.ravel()), np.sort(nhwc.ravel() / 255.0), atol=1e-6)

    nhw = rng.random((30, 8, 8)).astype(np.float32)  # grey floats in [0, 1], one-hot labels
    np.savez(tmp_path / "b.npz", x=nhw, y=np.eye(3)[y])
    ds = load_dataset(tmp_path / "b.npz", image_size=(8, 8), channels=3, val_fraction=0.0)
    assert ds.class_names == ["0", "1", "2"] and ds.x_train.shape == (30, 8, 8, 3)
    assert np.allclose(ds.x_train[..., 0], ds.x_train[..., 2])
    key = lambda a: a[np.argsort(a.reshape(len(a), -1).sum(axis=1))]  # noqa: E731 - rows are shuffled
    assert np.allclose(key(ds.x_train[:, :, :, 0]), key(nhw), atol=1e-6)
    assert any("one-hot" in n for n in ds.notes) and "ML007" in _codes(ds)

    nchw = rng.integers(0, 256, (30, 3, 10, 10), dtype=np.uint8)
    np.savez(tmp_path / "c.npz", x=nchw, y=y)
    ds = load_dataset(tmp_path / "c.npz", image_size=(20, 20), val_fraction=0.0)
    assert ds.x_train.shape == (30, 20, 20, 3) and any("NCHW" in n for n in ds.notes)

    np.savez(tmp_path / "bad.npz", images=nhwc, labels=y)
    with pytest.raises(ValueError, match="'x' and 'y'"):
        load_dataset(tmp_path / "bad.npz")


def test_npz_pixel_statistics_in_raw_units(tmp_path):
    x = np.zeros((20, 4, 4, 3), np.float32)
    x[..., 0] = 100.0
    x[..., 1] = np.tile([0.0, 200.0], 40).reshape(20, 4, 1)
    x[..., 2] = 255.0
    np.savez(tmp_path / "s.npz", x=x, y=np.repeat([0, 1], 10))
    ds = load_dataset(tmp_path / "s.npz", image_size=(4, 4), val_fraction=0.0)
    ev = _check(ds, "ML008")["evidence"]
    assert ev["min"] == 0 and ev["max"] == 255
    assert ev["mean"] == pytest.approx([100, 100, 255]) and ev["std"] == pytest.approx([0, 100, 0])
    assert np.isclose(ds.x_train[..., 0], 100 / 255).all()  # 0-255 floats scaled to [0, 1]


def test_npz_refusals_before_reading(tmp_path, monkeypatch):
    """What an .npz may not be: each refused with a ValueError naming the file and the problem."""
    from modellint.probes import data as data_module

    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (20, 8, 8, 3), dtype=np.uint8), np.arange(20) % 2
    cases = {
        "nan": (dict(x=np.where(x > 250, np.nan, x / 255.0), y=y), "NaN or infinite"),
        "negative": (dict(x=x, y=y - 1), "negative labels"),
        "fraction": (dict(x=x, y=y + 0.5), "integer class labels"),
        "wide_one_hot": (dict(x=x, y=np.zeros((20, 200_000), np.uint8)), "at most 100,000 classes"),
        "object_names": (dict(x=x, y=y, class_names=np.array(["a", None], dtype=object)), "object array"),
        "complex": (dict(x=x.astype(np.complex64), y=y), "dtype complex64"),
        "five_d": (dict(x=x[None], y=y), "NHWC, NHW or NCHW"),
    }
    for name, (arrays, problem) in cases.items():
        path = tmp_path / f"{name}.npz"
        np.savez(path, **arrays)
        with pytest.raises(ValueError, match=problem) as err:
            load_dataset(path, image_size=(8, 8))
        assert str(path) in str(err.value), name
    (tmp_path / "plain.npz").write_bytes(np.lib.format.magic(1, 0) + b"not a zip")
    with pytest.raises(ValueError, match="not an .npz"):
        load_dataset(tmp_path / "plain.npz")
    # the caps: images over the pixel cap, and a small compressed file declaring much more than its size
    monkeypatch.setattr(data_module, "MAX_IMAGE_PIXELS", 32)
    np.savez(tmp_path / "ok.npz", x=x, y=y)
    with pytest.raises(ValueError, match="8x8 images, over the cap"):
        load_dataset(tmp_path / "ok.npz", image_size=(8, 8))
    monkeypatch.setattr(data_module, "MAX_IMAGE_PIXELS", 25_000_000)
    monkeypatch.setattr(data_module, "MAX_NPZ_BYTES", 10_000)
    np.savez_compressed(tmp_path / "zeros.npz", x=np.zeros((200, 16, 16, 3), np.uint8), y=np.arange(200) % 2)
    with pytest.raises(ValueError, match="MiB uncompressed"):
        load_dataset(tmp_path / "zeros.npz", image_size=(8, 8))
    load_dataset(tmp_path / "ok.npz", image_size=(8, 8))  # uncompressed: within 4x its own size


def test_pixel_cap_skips_large_images_and_drafts_large_jpegs(tmp_path, monkeypatch):
    """Over MAX_IMAGE_PIXELS (patched small here) a PNG is skipped before decoding (ML002, a note); a JPEG is
    decoded at a reduced scale (Pillow's draft) and its size recorded from the file."""
    from modellint.probes import data as data_module

    monkeypatch.setattr(data_module, "MAX_IMAGE_PIXELS", 100 * 100)
    root = _folder(tmp_path / "data", {"a": 3, "b": 3})
    Image.new("RGB", (300, 200), (200, 30, 30)).save(root / "a" / "big.jpg", quality=95)
    Image.new("RGB", (300, 200), (30, 30, 200)).save(root / "b" / "big.png")
    ds = load_dataset(root, image_size=(24, 24), val_fraction=0.0)
    assert len(ds.y_train) == 7
    bad = _check(ds, "ML002")
    assert bad["files"] == ["b/big.png"] and "300x200 pixels" in bad["evidence"]["errors"]["b/big.png"]
    assert any("pixel cap" in n and "b/big.png" in n for n in ds.notes)
    assert ds.facts["image_sizes"]["200x300"] == 1  # the JPEG, by its own size
    red = ds.x_train[ds.y_train == 0]
    assert any(np.allclose(img[..., 0], 200 / 255, atol=0.03) for img in red)  # decoded, at 1/4 scale


def test_sixteen_bit_grey_is_scaled_and_repeated(tmp_path):
    root = tmp_path / "data"
    for c, value in (("a", 65535), ("b", 1000)):
        (root / c).mkdir(parents=True)
        Image.fromarray(np.full((30, 40), value, np.uint16)).save(root / c / "g.png")
    ds = load_dataset(root, image_size=(10, 10), channels=3, val_fraction=0.0)
    assert ds.x_train.shape == (2, 10, 10, 3)
    bright = ds.x_train[ds.y_train == 0][0]
    assert np.allclose(bright, 1.0) and np.allclose(ds.x_train[ds.y_train == 1][0], 1000 / 65535, atol=1e-5)
    stats = _check(ds, "ML008")["evidence"]
    assert len(stats["mean"]) == 3 and stats["max"] == 255


# -- split and subsampling -------------------------------------------------------------

def _labelled_npz(path: Path, counts) -> Path:
    y = np.concatenate([np.full(n, c) for c, n in enumerate(counts)])
    x = np.arange(len(y) * 4 * 4 * 3, dtype=np.int64).reshape(len(y), 4, 4, 3) % 251  # every row distinct
    np.savez(path, x=x.astype(np.uint8), y=y)
    return path


def test_stratified_split_proportions_and_determinism(tmp_path):
    p = _labelled_npz(tmp_path / "d.npz", [50, 30, 20])
    a = load_dataset(p, image_size=(4, 4), val_fraction=0.2, seed=3)
    assert np.bincount(a.y_val).tolist() == [10, 6, 4]
    assert np.bincount(a.y_train).tolist() == [40, 24, 16]
    b = load_dataset(p, image_size=(4, 4), val_fraction=0.2, seed=3)
    assert np.array_equal(a.x_val, b.x_val) and np.array_equal(a.y_train, b.y_train)
    c = load_dataset(p, image_size=(4, 4), val_fraction=0.2, seed=4)
    assert not np.array_equal(a.x_val, c.x_val)
    assert np.bincount(c.y_val).tolist() == [10, 6, 4]
    assert "ML005" not in _codes(a)
    assert len(set(a.y_train[:12].tolist())) > 1  # shuffled: the first rows mix classes
    whole = load_dataset(p, image_size=(4, 4), val_fraction=0.0, seed=3)
    assert len(set(whole.y_train[:12].tolist())) > 1


def test_max_images_is_stratified_and_deterministic(tmp_path):
    p = _labelled_npz(tmp_path / "d.npz", [60, 30, 30])
    a = load_dataset(p, image_size=(4, 4), val_fraction=0.25, seed=0, max_images=40)
    assert len(a.y_train) + len(a.y_val) == 40
    assert np.bincount(np.concatenate([a.y_train, a.y_val])).tolist() == [20, 10, 10]
    b = load_dataset(p, image_size=(4, 4), val_fraction=0.25, seed=0, max_images=40)
    assert np.array_equal(a.x_train, b.x_train)
    assert any("kept 40 of 120" in n for n in a.notes)


# -- data checks: each fires on its case and not on clean data --------------------------

def test_clean_folder_has_only_the_statistics(tmp_path):
    root = _folder(tmp_path / "clean", {"a": 10, "b": 10, "c": 10}, 16, 16)
    ds = load_dataset(root, image_size=(16, 16), val_fraction=0.2)
    assert _codes(ds) == {"ML008"}
    assert all(set(c) >= {"code", "severity", "message", "evidence", "files"} for c in ds.checks)
    from modellint.rules import REGISTRY

    assert set(DATA_CHECKS) == {f"ML00{i}" for i in range(1, 9)}
    assert all(REGISTRY[code].name == name for code, (name, _, _) in DATA_CHECKS.items())


def test_class_imbalance(tmp_path):
    ds = load_dataset(_folder(tmp_path / "i", {"big": 13, "small": 3}, 8, 8), image_size=(8, 8))
    c = _check(ds, "ML001")
    assert c["evidence"]["per_class"] == {"big": 13, "small": 3} and c["evidence"]["max_min_ratio"] > 3
    ok = load_dataset(_folder(tmp_path / "ok", {"big": 9, "small": 3}, 8, 8), image_size=(8, 8))
    assert "ML001" not in _codes(ok)  # exactly 3x is tolerated


def test_duplicates_within_across_and_split(tmp_path):
    root = _folder(tmp_path / "dup", {"a": 10, "b": 10}, 12, 12)
    shutil.copy(root / "a" / "000.png", root / "a" / "copy1.png")
    shutil.copy(root / "a" / "000.png", root / "a" / "copy2.bmp")  # bytes differ, pixels equal
    Image.open(root / "a" / "000.png").save(root / "a" / "copy3.bmp")
    ds = load_dataset(root, image_size=(12, 12), val_fraction=0.5, seed=0)
    within = _check(ds, "ML003")
    assert within["evidence"]["extra_copies"] == 3 and "ML004" not in _codes(ds)
    assert "ML005" in _codes(ds)  # four copies, half to validation: some straddle the split
    assert _check(ds, "ML005")["evidence"]["leaked"] >= 1

    shutil.copy(root / "b" / "005.png", root / "a" / "from_b.png")
    ds = load_dataset(root, image_size=(12, 12), val_fraction=0.2)
    across = _check(ds, "ML004")
    assert across["severity"] == "error" and "b/005.png" in across["files"]


def test_image_size_and_aspect(tmp_path):
    root = _folder(tmp_path / "wide", {"a": 6, "b": 6}, 20, 30)  # HxW 20x30
    ds = load_dataset(root, image_size=(16, 16), val_fraction=0.0)
    c = _check(ds, "ML006")
    assert c["severity"] == "warning" and c["evidence"]["most_common"] == "20x30"
    assert c["evidence"]["histogram"] == {"20x30": 12} and "aspect" in c["message"]
    small = load_dataset(_folder(tmp_path / "same", {"a": 6, "b": 6}, 16, 16), image_size=(16, 16))
    assert "ML006" not in _codes(small)
    mild = load_dataset(_folder(tmp_path / "mild", {"a": 6, "b": 6}, 20, 20), image_size=(16, 16))
    assert _check(mild, "ML006")["severity"] == "info"  # same aspect, modest resize


def test_channel_mismatch(tmp_path):
    root = tmp_path / "g"
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(5):
            Image.fromarray(_img(10 * ord(c) + i, 8, 8, grey=True)).save(root / c / f"{i}.png")
    ds = load_dataset(root, image_size=(8, 8), channels=3, val_fraction=0.0)
    c = _check(ds, "ML007")
    assert c["severity"] == "warning" and c["evidence"]["grey"] == 10
    assert "ML007" not in _codes(load_dataset(root, image_size=(8, 8), channels=1, val_fraction=0.0))


# -- synthetic data ----------------------------------------------------------------------

def test_synthetic_is_deterministic_and_balanced(tmp_path):
    seen = []

    def progress(done, total):
        seen.append((done, total))

    info = write_synthetic(tmp_path / "s1", classes=13, size=64, count=30, seed=5, progress=progress)
    write_synthetic(tmp_path / "s2", classes=13, size=64, count=30, seed=5)
    write_synthetic(tmp_path / "s3", classes=13, size=64, count=30, seed=6)
    assert _tree_hash(tmp_path / "s1") == _tree_hash(tmp_path / "s2")
    assert _tree_hash(tmp_path / "s1") != _tree_hash(tmp_path / "s3")
    assert seen[-1] == (30, 30)
    folders = sorted(p.name for p in (tmp_path / "s1").iterdir())
    assert folders == [f"class_{i:02d}" for i in range(13)]
    counts = [len(list((tmp_path / "s1" / f).glob("*.png"))) for f in folders]
    assert sum(counts) == 30 and max(counts) - min(counts) <= 1
    assert info["shapes"]["class_00"] == SHAPES[0]

    # the files are the in-memory arrays, losslessly, and load as a clean data set
    x, y, names = synth_dataset_arrays(classes=13, size=64, count=30, seed=5)
    assert x.shape == (30, 64, 64, 3) and x.dtype == np.uint8 and names == folders
    assert np.array_equal(np.asarray(Image.open(tmp_path / "s1" / "class_00" / "img_00000.png")), x[0])
    ds = load_dataset(tmp_path / "s1", image_size=(64, 64), val_fraction=0.0)
    assert _codes(ds) == {"ML008"}
    assert any(np.allclose(row, x[0] / 255.0) for row in ds.x_train)


def _grey(x):
    g = x.astype(np.float32).mean(-1)
    g -= np.median(g, axis=(1, 2), keepdims=True)
    return g / (g.std(axis=(1, 2), keepdims=True) + 1e-6)


def _pool(a, f):
    n, h, w = a.shape
    return a.reshape(n, h // f, f, w // f, f).mean(axis=(2, 4))


def _bag_of_local_words(g, window=32, stride=8, words=64, seed=0):
    """Histogram of k-means 'visual words' over all window x window patches (each
    reduced to 8x8): the translation-invariant local statistics a small receptive
    field followed by global average pooling can use."""
    from sklearn.cluster import MiniBatchKMeans

    n = len(g)
    f = window // 8
    patches = np.stack([_pool(g[:, i:i + window, j:j + window], f).reshape(n, -1)
                        for i in range(0, g.shape[1] - window + 1, stride)
                        for j in range(0, g.shape[2] - window + 1, stride)], axis=1)
    flat = patches.reshape(-1, patches.shape[-1])
    sample = flat[np.random.default_rng(seed).choice(len(flat), min(len(flat), 20000), replace=False)]
    km = MiniBatchKMeans(words, random_state=seed, n_init=3, batch_size=2048).fit(sample)
    labels = km.predict(flat).reshape(n, -1)
    return np.stack([np.bincount(r, minlength=words) for r in labels]).astype(np.float32) / labels.shape[1]


def _whole_image_descriptor(g, rings=10, angles=32, harmonics=9):
    """Rotation-invariant whole-image feature: the smoothed ink sampled on rings around
    its centroid, |FFT| along each ring (which symmetries the outline has, at which radius)."""
    from scipy.ndimage import gaussian_filter, map_coordinates

    n, h, w = g.shape
    yy, xx = np.mgrid[0:h, 0:w]
    r = np.linspace(3, min(h, w) / 2 - 1, rings)[:, None]
    a = np.linspace(0, 2 * np.pi, angles, endpoint=False)[None, :]
    out = []
    for im in g:
        ink = gaussian_filter(np.clip(im, 0, None), 2.0)
        ink = np.clip(ink - np.percentile(ink, 50), 0, None)
        s = ink.sum() + 1e-6
        cy, cx = (ink * yy).sum() / s, (ink * xx).sum() / s
        v = map_coordinates(ink, [cy + r * np.sin(a), cx + r * np.cos(a)], order=1, mode="constant")
        out.append((np.abs(np.fft.rfft(v, axis=1))[:, :harmonics] / (v.sum() + 1e-6)).ravel())
    return np.asarray(out)


def _holdout_accuracy(features, y):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    tr, te = train_test_split(np.arange(len(y)), test_size=0.4, stratify=y, random_state=0)
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.1))
    return clf.fit(features[tr], y[tr]).score(features[te], y[te])


def test_synthetic_classes_need_the_whole_image():
    """Local 32x32 evidence is weak; whole-image evidence is clearly stronger.

    780 images (60 per class) at 128 px; logistic regression, 40% held out; chance is
    1/13 = 0.077. Seeds 0-3 gave: random-crop pixels 0.07-0.10, bag of local words
    0.13-0.18, whole-image descriptor 0.33-0.36 (seed 0: 0.077, 0.179, 0.362)."""
    x, y, _ = synth_dataset_arrays(classes=13, size=128, count=780, seed=0)
    g = _grey(x)
    chance = 1 / 13
    crops = np.stack([g[k, i:i + 32, j:j + 32]
                      for k, (i, j) in enumerate(np.random.default_rng(0).integers(0, 97, size=(len(g), 2)))])
    crop_acc = _holdout_accuracy(_pool(crops, 2).reshape(len(g), -1), y)
    local_acc = _holdout_accuracy(_bag_of_local_words(g), y)
    global_acc = _holdout_accuracy(_whole_image_descriptor(g), y)
    assert crop_acc < chance + 0.06, crop_acc
    assert local_acc < 0.20, local_acc
    assert global_acc > 0.25, global_acc
    assert global_acc > local_acc + 0.12, (local_acc, global_acc)
