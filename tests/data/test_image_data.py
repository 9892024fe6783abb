import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from zoo.data.image_data import (
    ImageSplits, _stratified_split, _tfds_class_names, image_dataset, load_builtin, load_folder, load_image_data,
    load_tfds)
from zoo.data.translation_data import DataError

SPLITS = ("train", "validation", "test")


@pytest.fixture(scope="module")
def digits():
    return load_builtin()


def test_builtin_shapes_dtypes_and_classes(digits):
    assert isinstance(digits, ImageSplits)
    assert digits.class_names == [str(i) for i in range(10)] and digits.num_classes == 10
    sizes = []
    for name in SPLITS:
        images, labels = getattr(digits, name)
        assert images.shape[1:] == (8, 8, 3) and images.dtype == np.uint8  # as scanned: the preprocessor resizes
        assert labels.shape == (len(images),) and labels.dtype == np.int32
        np.testing.assert_array_equal(images[..., 0], images[..., 2])  # gray in 3 channels
        assert set(np.unique(labels)) == set(range(10))  # stratified: every class in every split
        sizes.append(len(labels))
    assert sum(sizes) == 1797 and 0.78 < sizes[0] / 1797 < 0.82
    assert digits.train[0].max() == 255 and digits.train[0].min() == 0  # 0..16 scaled to 0..255
    assert digits.skipped == []


def test_builtin_is_deterministic(digits):
    again = load_builtin()
    for name in SPLITS:
        np.testing.assert_array_equal(getattr(digits, name)[0], getattr(again, name)[0])
        np.testing.assert_array_equal(getattr(digits, name)[1], getattr(again, name)[1])


def test_stratified_split_is_disjoint_complete_and_seeded():
    from sklearn.datasets import load_digits

    labels = load_digits().target
    split = _stratified_split(labels)
    sets = [set(split[name].tolist()) for name in SPLITS]
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
    assert set.union(*sets) == set(range(len(labels)))
    for name in ("validation", "test"):
        counts = np.bincount(labels[split[name]], minlength=10)
        assert (counts >= 17).all() and (counts <= 19).all()  # 10% of each class
    again = _stratified_split(labels)
    other_seed = _stratified_split(labels, seed=1)
    assert all(np.array_equal(split[k], again[k]) for k in SPLITS)
    assert not np.array_equal(split["test"], other_seed["test"])
    tiny = np.array([0, 1, 1, 2, 2, 2])  # small classes: train keeps one image each, then test, then validation
    tiny_split = _stratified_split(tiny)
    assert [tiny[tiny_split[name]].tolist() for name in SPLITS] == [[0, 1, 2], [2], [1, 2]]
    with pytest.raises(ValueError, match="Received: validation_fraction=0.5, test_fraction=0.5"):
        _stratified_split(labels, 0.5, 0.5)


def _encode(array, fmt):
    if fmt == "png":
        return tf.io.encode_png(array).numpy()
    if fmt == "jpg":
        return tf.io.encode_jpeg(array).numpy()
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format={"bmp": "BMP", "gif": "GIF"}[fmt])
    return buffer.getvalue()


def _write_folder(root, classes=("cat", "dog", "emu"), per_class=6, bad=True):
    rng = np.random.default_rng(0)
    formats = ["png", "jpg", "bmp", "gif", "PNG", "JPEG"]
    for c, name in enumerate(classes):
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            fmt = formats[i % len(formats)]
            size = (10 + i, 12, 3) if i % 2 else (9, 7, 3)  # mixed sizes, kept
            array = np.full(size, 40 * c, np.uint8) + rng.integers(0, 20, size, dtype=np.uint8)
            (folder / f"img_{i}.{fmt}").write_bytes(_encode(array, {"JPEG": "jpg", "PNG": "png"}.get(fmt, fmt)))
    (root / "notes.txt").write_text("top-level files are not classes")
    bad_files = []
    if bad:
        jpeg = _encode(np.zeros((16, 16, 3), np.uint8), "jpg")
        bad_files = [root / "cat" / "truncated.jpg", root / "dog" / "empty.png", root / "emu" / "text.jpg"]
        bad_files[0].write_bytes(jpeg[: len(jpeg) // 2])
        bad_files[1].write_bytes(b"")
        bad_files[2].write_text("this is not an image")
        (root / "emu" / "README.md").write_text("not an image extension: ignored")
    return sorted(str(p) for p in bad_files)


def test_folder_skips_and_reports_bad_files(tmp_path, capsys):
    bad = _write_folder(tmp_path)
    data = load_folder(str(tmp_path))
    assert data.class_names == ["cat", "dog", "emu"]
    assert sorted(data.skipped) == bad
    summary, *named = capsys.readouterr().out.strip().splitlines()
    assert "skipped 3 unreadable image file(s)" in summary and "ignored 1 file(s)" in summary
    assert sorted(line.strip() for line in named) == bad  # each skipped file named
    with pytest.raises(DataError, match=r"Cannot decode image .*truncated.jpg.*without --strict"):
        load_folder(str(tmp_path), strict=True)
    total = 0
    for name in SPLITS:
        images, labels = getattr(data, name)
        assert images.dtype == object and all(isinstance(image, bytes) for image in images)  # the files' bytes
        assert labels.dtype == np.int32 and set(labels.tolist()) == {0, 1, 2}  # every class in every split
        total += len(labels)
    assert total == 18
    # class c was drawn around 40 * c: labels follow the sorted folder names; sizes are the files' own
    train_images, train_labels = data.train
    decoded = [tf.io.decode_image(image, channels=3, expand_animations=False).numpy() for image in train_images]
    assert {image.shape for image in decoded} >= {(9, 7, 3), (11, 12, 3)}
    for c in range(3):
        assert abs(np.mean([d.mean() for d, label in zip(decoded, train_labels) if label == c]) - (40 * c + 10)) < 6
    again = load_image_data(f"folder:{tmp_path}")
    assert data.test[0].tolist() == again.test[0].tolist()


def test_folder_errors(tmp_path):
    with pytest.raises(DataError, match="Image folder not found: .*missing"):
        load_folder(str(tmp_path / "missing"))
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "a.png").write_bytes(_encode(np.zeros((4, 4, 3), np.uint8), "png"))
    with pytest.raises(DataError, match="No class sub-folders"):
        load_folder(str(tmp_path / "flat"))
    _write_folder(tmp_path / "one", classes=("only",), bad=False)
    with pytest.raises(DataError, match="at least 2 classes.*'only'"):
        load_folder(str(tmp_path / "one"))
    _write_folder(tmp_path / "broken", classes=("a", "b"), bad=False)
    (tmp_path / "broken" / "c").mkdir()
    (tmp_path / "broken" / "c" / "x.jpg").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"'.*c' has no readable images.*found 1 such file\(s\), none decodable"):
        load_folder(str(tmp_path / "broken"))
    with pytest.raises(DataError, match="Unknown image data source 'csv:x'"):
        load_image_data("csv:x")


def test_tfds_via_mock_data(monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=40):
        data = load_tfds("cifar10")
        assert data.class_names == [str(i) for i in range(10)]  # mocked info has no label names
        for name in SPLITS:
            images, labels = getattr(data, name)
            assert images.shape == (40, 32, 32, 3) and images.dtype == np.uint8 and labels.dtype == np.int32
        gray = load_image_data("tfds:mnist")  # (28, 28, 1) -> (28, 28, 3)
        assert gray.train[0].shape[1:] == (28, 28, 3)
        np.testing.assert_array_equal(gray.train[0][..., 0], gray.train[0][..., 1])

        real_load = tfds.load

        def train_only(name, split, **kwargs):  # as for a dataset without validation/test splits
            if split != "train":
                raise ValueError(f"Unknown split {split!r}")
            return real_load(name, split=split, **kwargs)

        monkeypatch.setattr(tfds, "load", train_only)
        carved = load_tfds("cifar10")
        sizes = [len(getattr(carved, name)[1]) for name in SPLITS]
        assert sum(sizes) == 40 and min(sizes) >= 1 and sizes[0] > sizes[1]


def test_tfds_class_names_from_info_or_fallback():
    class Label:
        names = ["airplane", "automobile", "bird"]

    class Info:
        supervised_keys = ("image", "label")
        features = {"label": Label()}

    class Builder:
        info = Info()

    assert _tfds_class_names(Builder(), 3) == ["airplane", "automobile", "bird"]
    assert _tfds_class_names(Builder(), 4) == ["0", "1", "2", "3"]  # names do not cover the labels
    Info.features = {}
    assert _tfds_class_names(Builder(), 2) == ["0", "1"]


def test_image_dataset_keeps_the_order_or_shuffles_seeded():
    images = np.arange(10 * 4 * 4 * 3, dtype=np.int64).reshape(10, 4, 4, 3).astype(np.uint8)
    labels = np.arange(10, dtype=np.int64) % 3
    elements = list(image_dataset(images, labels).as_numpy_iterator())
    assert len(elements) == 10 and elements[0][0].dtype == np.uint8 and elements[0][1].dtype == np.int32
    np.testing.assert_array_equal(np.stack([e[0] for e in elements]), images)
    assert [int(e[1]) for e in elements] == labels.tolist()
    first = [int(e[1]) for e in image_dataset(images, np.arange(10), shuffle=True, seed=1)]
    again = [int(e[1]) for e in image_dataset(images, np.arange(10), shuffle=True, seed=1)]
    assert first == again != list(range(10)) and sorted(first) == list(range(10))  # seeded, a permutation
    encoded = image_dataset(np.array([b"png", b"jpeg bytes"], dtype=object), ["cat", "dog"])
    assert encoded.element_spec[0].dtype == tf.string and encoded.element_spec[1].dtype == tf.string
    with pytest.raises(ValueError, match="Received: 10 images, 9 labels"):
        image_dataset(images, labels[:9])
    with pytest.raises(DataError, match="class indices or class names. Received: float64 labels"):
        image_dataset(images, labels / 2)
