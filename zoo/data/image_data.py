"""Labelled images in, as they are: the sources of image classification.

Sources (`load_image_data`), each giving an `ImageSplits` of images,
int32 labels and class names. Images are never resized here: the
classifier's `zoo.preprocessing.ImagePreprocessor` decodes, resizes, crops
and normalises them inside `tf.data`, the same way for training and serving.

- `builtin`: scikit-learn's bundled handwritten digits (`load_digits`, 1797
  scans of 8x8 grayscale digits, 10 classes), as uint8 `(N, 8, 8, 3)`
  arrays (values 0..16 scaled to 0..255, gray in three channels). They are
  real images that ship inside an installed package, so the recipe trains
  and tests offline with nothing downloaded and nothing synthetic. The
  preprocessor upsamples them to the model's size with its bilinear
  filter: a blurry scan, whereas nearest-neighbour would make each ViT
  patch one flat pixel.
- `folder:PATH`: one sub-folder per class (class names = sorted folder
  names), files with an image extension at any depth below it, as their
  encoded bytes (an object array of `bytes`), so images of different sizes
  mix. Files that do not decode are skipped and listed in
  `ImageSplits.skipped`, never silent, and fatal only with `strict` (or
  when a class has no readable image).
- `tfds:NAME`: a TFDS image dataset with supervised `(image, label)` keys,
  e.g. `cifar10`, as uint8 RGB arrays at the dataset's size (PNG bytes when
  its images differ in size); missing validation/test splits are carved out
  of train.

Splits of `builtin` and `folder:` (and carved TFDS splits) are stratified and
deterministic: each class is permuted with its own fixed seed and cut into
test, validation and train, so every class with >= 3 images is in every split
and no image is in two.

`image_dataset(images, labels)` makes a split a `tf.data.Dataset` of
`(image, label)` elements (shuffled, seeded, when asked), what
`ImagePreprocessor.batches` takes.
"""

import dataclasses
import os

import numpy as np
import tensorflow as tf

from zoo.data.translation_data import SHOWN_BAD_LINES, SPLITS, DataError, tfds_splits

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp")


@dataclasses.dataclass
class ImageSplits:
    """Train/validation/test `(images, labels)` tuples and the class names.

    Images are as the source holds them: uint8 `(N, H, W, 3)` arrays, or an
    object array `(N,)` of encoded image bytes (folders). Labels are int32
    `(N,)` indexing `class_names`. `skipped` lists files that could not be
    decoded.
    """

    train: tuple
    validation: tuple
    test: tuple
    class_names: list
    skipped: list = dataclasses.field(default_factory=list)

    @property
    def num_classes(self):
        return len(self.class_names)


def _stratified_split(labels, validation_fraction=0.1, test_fraction=0.1, seed=0):
    """`{"train": idx, "validation": idx, "test": idx}`, sorted int arrays.

    Each class is permuted by its own `default_rng([seed, class])`, so adding a
    class never reshuffles the others. Train keeps at least one image per class;
    test and validation get at least one each when their fraction is > 0 and
    the class has enough images.
    """
    if validation_fraction < 0 or test_fraction < 0 or validation_fraction + test_fraction >= 1:
        raise ValueError(
            "Need 0 <= validation_fraction, test_fraction and a sum below 1. Received: "
            f"validation_fraction={validation_fraction}, test_fraction={test_fraction}"
        )
    labels = np.asarray(labels)
    parts = {name: [] for name in SPLITS}
    for c in np.unique(labels):
        members = np.random.default_rng([seed, int(c)]).permutation(np.flatnonzero(labels == c))
        n = len(members)
        n_test = min(max(1, round(n * test_fraction)) if test_fraction else 0, n - 1)
        n_val = min(max(1, round(n * validation_fraction)) if validation_fraction else 0, n - 1 - n_test)
        parts["test"].append(members[:n_test])
        parts["validation"].append(members[n_test : n_test + n_val])
        parts["train"].append(members[n_test + n_val :])
    return {name: np.sort(np.concatenate(p)).astype(np.int64) for name, p in parts.items()}


def _take(images, labels, split):
    return {name: (images[idx], labels[idx]) for name, idx in split.items()}


def _rgb(images):
    """uint8 `(..., H, W, C)` with 1, 3 or 4 channels to 3 (gray repeated, alpha dropped)."""
    return np.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images[..., :3]


def load_builtin():
    """The scikit-learn digits, 80/10/10 stratified, as uint8 `(N, 8, 8, 3)` images."""
    from sklearn.datasets import load_digits  # only needed for this source

    digits = load_digits()
    gray = np.round(digits.images[..., None] * (255.0 / 16.0)).astype(np.uint8)  # (N, 8, 8, 1)
    images = _rgb(gray)
    labels = digits.target.astype(np.int32)
    parts = _take(images, labels, _stratified_split(labels))
    return ImageSplits(**parts, class_names=[str(name) for name in digits.target_names])


def _image_files(class_dir):
    """Sorted image-extension files below `class_dir`, and the count of other files."""
    found, others = [], 0
    for root, _, files in tf.io.gfile.walk(class_dir):
        for name in files:
            if name.lower().endswith(IMAGE_EXTENSIONS):
                found.append(os.path.join(root, name))
            else:
                others += 1
    return sorted(found), others


def load_folder(path, validation_fraction=0.1, test_fraction=0.1, seed=0, strict=False):
    """Images from `path/<class name>/...` as encoded bytes, split stratified and deterministically.

    Each file is decoded once here to check it (`tf.io.decode_image`).
    Corrupt or unreadable files are skipped, listed in `skipped` and
    summarised in print (the first few named); with `strict` the first one
    raises `DataError`. A class folder with no readable image always does.
    """
    if not tf.io.gfile.isdir(path):
        raise DataError(f"Image folder not found: {path!r}. Expected a directory with one sub-folder per class.")
    class_names = sorted(
        name.rstrip("/") for name in tf.io.gfile.listdir(path)
        if tf.io.gfile.isdir(os.path.join(path, name)) and not name.startswith(".")
    )
    if not class_names:
        raise DataError(f"No class sub-folders in {path!r}. Expected {path}/<class name>/<image files>.")
    if len(class_names) < 2:
        raise DataError(f"Need at least 2 classes to classify. Received 1 class folder in {path!r}: {class_names}")
    images, labels, skipped, ignored = [], [], [], 0
    for label, name in enumerate(class_names):
        files, others = _image_files(os.path.join(path, name))
        ignored += others
        loaded = 0
        for file in files:
            try:
                data = tf.io.read_file(file)
                tf.io.decode_image(data, channels=3, expand_animations=False)
            except (tf.errors.OpError, OSError) as e:
                if strict:
                    raise DataError(f"Cannot decode image {file!r} ({_first_line(e)}); without --strict, "
                                    "unreadable images are skipped") from None
                skipped.append(file)
                continue
            images.append(data.numpy())
            labels.append(label)
            loaded += 1
        if not loaded:
            raise DataError(
                f"Class folder {os.path.join(path, name)!r} has no readable images. Expected files "
                f"ending in {IMAGE_EXTENSIONS}; found {len(files)} such file(s), none decodable, "
                f"and {others} other file(s)."
            )
    if skipped or ignored:
        print(
            f"load_folder: {len(labels)} images in {len(class_names)} classes from {path}; "
            f"skipped {len(skipped)} unreadable image file(s); ignored {ignored} file(s) without an image extension"
            + "".join(f"\n  {file}" for file in skipped[:SHOWN_BAD_LINES])
            + (f"\n  ... and {len(skipped) - SHOWN_BAD_LINES} more" if len(skipped) > SHOWN_BAD_LINES else "")
        )
    images, labels = _object_array(images), np.asarray(labels, np.int32)
    parts = _take(images, labels, _stratified_split(labels, validation_fraction, test_fraction, seed))
    return ImageSplits(**parts, class_names=class_names, skipped=skipped)


def _object_array(items):
    """A 1-D object array of `items` (NumPy would make equal-length bytes a fixed-width array)."""
    array = np.empty(len(items), dtype=object)
    array[:] = items
    return array


def _first_line(error):
    return (getattr(error, "message", None) or str(error)).strip().splitlines()[0]


def _tfds_to_numpy(ds):
    """uint8 RGB images as they are (stacked when of one size, else PNG bytes) and int32 labels."""
    images, labels = [], []
    for x, y in ds.prefetch(tf.data.AUTOTUNE).as_numpy_iterator():
        images.append(_rgb(np.asarray(x, np.uint8)))
        labels.append(y)
    labels = np.asarray(labels, np.int32)
    if not images:
        return np.zeros((0, 1, 1, 3), np.uint8), labels
    if len({image.shape for image in images}) == 1:
        return np.stack(images), labels
    return _object_array([tf.io.encode_png(image).numpy() for image in images]), labels


def _tfds_class_names(builder, num_labels):
    try:
        keys = builder.info.supervised_keys
        label_key = keys[1] if keys and isinstance(keys[1], str) else "label"
        names = list(builder.info.features[label_key].names)
    except (AttributeError, KeyError, TypeError, ValueError):
        names = []
    return names if len(names) >= num_labels else [str(i) for i in range(num_labels)]


def load_tfds(name, data_dir=None, validation_fraction=0.1, test_fraction=0.1, seed=0):
    """A TFDS image dataset (e.g. `cifar10`), 3-channel uint8 at its own size.

    Missing validation/test splits are carved out of train (stratified,
    deterministic); known splits are used as they are.
    """
    splits, builder = tfds_splits(name, data_dir, _tfds_to_numpy)
    if "validation" not in splits or "test" not in splits:
        images, labels = splits["train"]
        carved = _take(images, labels, _stratified_split(
            labels,
            validation_fraction if "validation" not in splits else 0,
            test_fraction if "test" not in splits else 0,
            seed,
        ))
        splits = {"train": carved["train"], **{k: splits.get(k, carved[k]) for k in ("validation", "test")}}
    num_labels = 1 + max(int(labels.max()) for _, labels in splits.values() if len(labels))
    return ImageSplits(**splits, class_names=_tfds_class_names(builder, num_labels))


def load_image_data(spec, strict=False):
    """`ImageSplits` from a data spec: `builtin`, `folder:PATH` or `tfds:NAME`; `strict` as `load_folder`."""
    if spec == "builtin":
        return load_builtin()
    if spec.startswith("folder:"):
        return load_folder(spec[len("folder:"):], strict=strict)
    if spec.startswith("tfds:"):
        return load_tfds(spec[len("tfds:"):])
    raise DataError(f"Unknown image data source {spec!r}. Expected 'builtin', 'folder:PATH' or 'tfds:NAME'.")


def image_dataset(images, labels, shuffle=False, seed=0):
    """A `tf.data.Dataset` of `(image, label int32)` elements, one per image.

    Args:
        images: uint8 `(N, H, W, C)` array, or `(N,)` encoded image bytes
            (an object array or a list), as `ImageSplits` holds them.
        labels: `(N,)` ints (class indices) or strs (class names).
        shuffle: bool. Shuffle all `N` (seeded; a new order each epoch).
            Defaults to `False`: the images' order.
        seed: int. The shuffle's seed. Defaults to `0`.
    """
    if len(images) != len(labels):
        raise ValueError(f"images and labels differ in length. Received: {len(images)} images, {len(labels)} labels")
    labels = np.asarray(labels)
    if labels.dtype.kind in "iu":
        labels = labels.astype(np.int32)
    elif labels.dtype.kind in "US":
        labels = labels.astype(str)
    else:
        raise DataError(f"Labels must be class indices or class names. Received: {labels.dtype} labels")
    if isinstance(images, np.ndarray) and images.dtype != object:
        images = tf.constant(images)
    else:
        images = tf.constant(list(images), tf.string)
    ds = tf.data.Dataset.from_tensor_slices((images, labels))
    if shuffle:
        ds = ds.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
    return ds
