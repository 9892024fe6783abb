"""What `zoo.ImageClassifier` takes as images: `predict`'s inputs, and `fit`'s labelled images.

`as_input` turns one image of `predict` (a path, bytes, a PIL image, an
array) into encoded bytes or float pixels; `training_dataset` turns `fit`'s
`x` / `y` (a class folder, arrays with labels, a `tf.data.Dataset`) into
`(image, class index)` elements for `ImagePreprocessor.batches`, checking
every label against the classifier's class names first (`label_indices`:
the one place a label that is not a class is refused, by name).
"""

import os

import numpy as np
import tensorflow as tf

from zoo.data.image_data import image_dataset, load_folder


def _is_pil_image(value):
    return type(value).__module__.startswith("PIL.") and hasattr(value, "convert")


def as_input(image, index):
    """One image as `("bytes", encoded)` or `("pixels", float32 (H, W, 3))`.

    Paths are read (a missing file is an error, not an invalid row); PIL
    images and integer arrays become PNG bytes, exactly the pixels an
    export request would carry; float arrays are `[0, 1]` pixels.
    """
    if isinstance(image, (str, os.PathLike)):
        path = os.fspath(image)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"No image file at {path} (images[{index}]).")
        with open(path, "rb") as f:
            return "bytes", f.read()
    if isinstance(image, (bytes, bytearray)):
        return "bytes", bytes(image)
    if _is_pil_image(image):
        image = np.asarray(image.convert("RGBA" if "A" in image.getbands() else "RGB"))
    if isinstance(image, np.ndarray):
        if image.ndim == 2:
            image = image[:, :, None]
        if image.ndim != 3 or image.shape[-1] not in (1, 3, 4) or 0 in image.shape:
            raise ValueError(
                f"An image array must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4). "
                f"Received: shape {image.shape} at images[{index}]"
            )
        if np.issubdtype(image.dtype, np.floating):
            if image.shape[-1] != 3:
                raise ValueError(f"Float pixels must be (H, W, 3) RGB in [0, 1]. Received: shape {image.shape} at images[{index}]")
            return "pixels", image.astype(np.float32)
        if np.issubdtype(image.dtype, np.integer) and image.min() >= 0 and image.max() <= 255:
            return "bytes", tf.io.encode_png(image.astype(np.uint8)).numpy()
        raise ValueError(
            f"Image arrays must hold uint8-range integers or [0, 1] floats. Received: dtype {image.dtype}, "
            f"values {image.min()}..{image.max()} at images[{index}]"
        )
    raise TypeError(
        "images must be file paths, encoded bytes, PIL images or arrays. "
        f"Received: {type(image).__name__} at images[{index}]"
    )


def training_dataset(x, y, class_names, what, shuffle=False, seed=0):
    """A `tf.data.Dataset` of `(image, label)` elements from `fit`'s `x` and `y`, every label checked.

    Args:
        x: a class-folder path, an `(N, H, W, C)` image array, or a
            `tf.data.Dataset` of `(image, label)` (batched ones are unbatched).
        y: `(N,)` labels with an array `x`; None otherwise.
        class_names: the classifier's class names.
        what: str. The argument's name, for errors (`"x"`, `"validation_data"`).
        shuffle: bool. Shuffle a folder's or an array's images each epoch.
        seed: int. The shuffle's seed.
    """
    if isinstance(x, (str, os.PathLike)):
        if y is not None:
            raise ValueError(f"{what} is a folder: its labels are its sub-folder names. Received labels too.")
        data = load_folder(os.fspath(x), validation_fraction=0.0, test_fraction=0.0)
        names = np.array(data.class_names)[data.train[1]]
        labels = label_indices(names, class_names, f"{what} (the class folders of {os.fspath(x)})")
        return image_dataset(data.train[0], labels, shuffle=shuffle, seed=seed)
    if isinstance(x, tf.data.Dataset):
        if y is not None:
            raise ValueError(f"{what} is a tf.data.Dataset of (image, label): give no separate labels.")
        spec = x.element_spec
        if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[0], tf.TensorSpec):
            if spec[0].shape.rank == (1 if spec[0].dtype == tf.string else 4):  # batched
                x = x.unbatch()
        return x
    images = image_array(x, what)
    if y is None:
        raise ValueError(f"{what} is an array of images: give its labels (y) too.")
    labels = np.asarray(y)
    if labels.shape != (len(images),):
        raise ValueError(
            f"{what} needs one label per image: {len(images)} images. Received labels of shape {labels.shape}"
        )
    return image_dataset(images, label_indices(labels, class_names, what), shuffle=shuffle, seed=seed)


def label_indices(labels, class_names, what):
    """Class indices (int32) of `labels`, class names or indices; a ValueError naming every label
    that is not one of `class_names` (a classifier for other classes needs another head)."""
    labels = np.asarray(labels)
    if labels.dtype.kind in "USO":
        labels = labels.astype(str)
        unknown = sorted(set(labels.tolist()) - set(class_names))
        if unknown:
            raise ValueError(
                f"Labels of {what} are not among the classifier's class names: {unknown[:20]}"
                f"{' ...' if len(unknown) > 20 else ''}. Expected some of {list(class_names)}."
            )
        index = {name: i for i, name in reversed(list(enumerate(class_names)))}  # the first of a repeated name
        return np.array([index[label] for label in labels], np.int32)
    if labels.dtype.kind not in "iu":
        raise ValueError(f"Labels of {what} must be class indices or class names. Received: dtype {labels.dtype}")
    outside = sorted(set(labels[(labels < 0) | (labels >= len(class_names))].tolist()))
    if outside:
        raise ValueError(
            f"Labels of {what} must be class indices in [0, {len(class_names)}) ({len(class_names)} classes). "
            f"Received: {outside[:20]}"
        )
    return labels.astype(np.int32)


def image_array(x, what):
    """`x` as a uint8 or float32 `(N, H, W, C)` NumPy array; an error saying what it is otherwise."""
    if not isinstance(x, np.ndarray) and not (hasattr(x, "shape") and hasattr(x, "dtype")):
        raise TypeError(
            f"{what} must be a folder path, an (N, H, W, C) image array or a tf.data.Dataset of (image, label). "
            f"Received: {type(x).__name__}"
        )
    x = np.asarray(x)
    if x.ndim != 4 or not 1 <= x.shape[-1] <= 4 or 0 in x.shape[1:]:
        raise ValueError(f"{what} must be images (N, H, W, C) with C of 1 to 4. Received: shape {x.shape}")
    if np.issubdtype(x.dtype, np.floating):
        if x.size and (not np.isfinite(x).all() or x.min() < 0 or x.max() > 1):
            raise ValueError(f"Float images in {what} must be pixels in [0, 1]. Received: values {x.min()}..{x.max()}")
        return x.astype(np.float32)
    if np.issubdtype(x.dtype, np.integer) and (not x.size or (x.min() >= 0 and x.max() <= 255)):
        return x.astype(np.uint8)
    values = f", values {x.min()}..{x.max()}" if x.size and x.dtype != bool else ""
    raise ValueError(f"{what} must hold uint8-range integers or [0, 1] floats. Received: dtype {x.dtype}{values}")
