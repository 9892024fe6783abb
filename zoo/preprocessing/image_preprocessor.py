"""What an image classifier does to images before the model: one object, saved with it.

`ImagePreprocessor` is the one place where images become model inputs, and
the single source of an image classifier's input size, resize filter, crop,
normalisation, decoding limits and class names. It runs

    decode (bytes) or pixels (arrays) -> resize (and crop) -> normalize

as TensorFlow ops, in every path that feeds the model: training batches
(`batches`, inside `tf.data`; augmentation runs between the resize and the
normalisation), `zoo.ImageClassifier.predict` and the TF Serving export
(`prepare_bytes`, `prepare`, in the graph of `zoo.tasks.image_classifier_graph`).
So a training batch and a served request of the same image give the model
the same numbers. The converters (`zoo.convert`) read it from a
checkpoint; `zoo.ImageClassifier` saves it in its folder. It is a frozen
dataclass of plain values, so `get_config()` is JSON.

Pixels are float32 in `[0, 1]` (8-bit images divided by 255, as
`tf.image.convert_image_dtype` does). `resize` then either goes straight to
`image_size` (`crop_pct=None`: Hugging Face's `ViTImageProcessor`, zoo's
recipes) or, as timm's evaluation transform does, resizes to
`floor(size / crop_pct)` (`crop_mode="center"`: the shorter side, keeping
the aspect ratio; `"squash"`: both sides) and cuts the centre `image_size`
out. Downscaling is antialiased, as PIL's filters are, and the result is
clipped to `[0, 1]` as PIL's 8-bit output is (bicubic and Lanczos
overshoot). `normalize` computes `(x - mean) / std`.

What differs from the source libraries is only the arithmetic of the resize:
PIL (under HF and timm) rounds resized pixels to 8 bits, so pixels differ by
about one grey level where the image is resized; at `image_size` with no
crop every path is the identity. Decoding is `zoo.preprocessing.image_decoding`.
Written here (not keras-hub's `ImageConverter`) because the same ops must run
in `tf.data` on any Keras backend and in a SavedModel that loads without zoo.
"""

import dataclasses
import math

import tensorflow as tf

from zoo.layers.size_pair import size_pair
from zoo.preprocessing.image_decoding import REFUSALS, check_image, decode_checked, decode_image

# Maps [0, 1] pixels to [-1, 1], as big_vision does: what zoo's image recipe
# trains with (checkpoints bring their own mean and std).
DEFAULT_MEAN = (0.5, 0.5, 0.5)
DEFAULT_STD = (0.5, 0.5, 0.5)
INTERPOLATIONS = ("bilinear", "bicubic", "nearest", "lanczos3")
CROP_MODES = ("center", "squash")
DEFAULT_MAX_BYTES = 32 * 2**20
DEFAULT_MAX_PIXELS = 64 * 2**20


@dataclasses.dataclass(frozen=True)
class ImagePreprocessor:
    """Decoding, resize, crop, normalisation and class names of an image classifier.

    Args:
        image_size: int or tuple of 2 ints. `(H, W)` the model reads.
        mean: tuple of floats. Per-channel mean of `[0, 1]` pixels.
        std: tuple of floats. Per-channel standard deviation (positive).
        class_names: tuple of str. One non-empty, single-line name per logit,
            in order.
        interpolation: str. Resize filter: `"bilinear"`, `"bicubic"`,
            `"nearest"` or `"lanczos3"`. Defaults to `"bilinear"`.
        crop_pct: float or None. None: resize straight to `image_size`. A
            fraction in `(0, 1]`: resize to `floor(size / crop_pct)`, then
            take the centre `image_size` (timm's `crop_pct`). Defaults to `None`.
        crop_mode: str. With `crop_pct`: `"center"` resizes the shorter side
            and keeps the aspect ratio (needs a square `image_size`),
            `"squash"` resizes both sides. Defaults to `"center"`.
        source: str. Where these values came from (for people, not code).
            Defaults to `""`.
        max_bytes: int. Encoded images longer than this are not decoded.
            Defaults to 32 MiB.
        max_pixels: int. Images whose header declares more pixels are not
            decoded. Defaults to 64 megapixels.

    Example:
    >>> p = ImagePreprocessor(32, (0.5,) * 3, (0.5,) * 3, ("cat", "dog"))
    >>> p.image_size, tuple(p.prepare(tf.ones((2, 64, 48, 3))).shape)
    ((32, 32), (2, 32, 32, 3))
    >>> float(p.normalize(tf.ones((1, 3)))[0, 0])
    1.0
    >>> inputs, valid = p.prepare_bytes(tf.constant([tf.io.encode_png(tf.zeros((5, 7, 1), "uint8")).numpy(), b"?"]))
    >>> tuple(inputs.shape), valid.numpy().tolist()
    ((2, 32, 32, 3), [True, False])
    >>> ImagePreprocessor.from_config(p.get_config()) == p
    True
    """

    image_size: tuple
    mean: tuple
    std: tuple
    class_names: tuple
    interpolation: str = "bilinear"
    crop_pct: float = None
    crop_mode: str = "center"
    source: str = ""
    max_bytes: int = DEFAULT_MAX_BYTES
    max_pixels: int = DEFAULT_MAX_PIXELS

    def __post_init__(self):
        def set_(name, value):
            object.__setattr__(self, name, value)

        set_("image_size", size_pair(self.image_size, "image_size"))
        set_("mean", tuple(float(v) for v in self.mean))
        set_("std", tuple(float(v) for v in self.std))
        if isinstance(self.class_names, str):
            raise ValueError(f"class_names must be a sequence of names. Received: class_names={self.class_names!r}")
        set_("class_names", tuple(str(c) for c in self.class_names))
        if len(self.mean) != len(self.std) or not self.mean:
            raise ValueError(
                f"mean and std must hold one value per channel. Received: mean={self.mean}, std={self.std}"
            )
        if not all(s > 0 for s in self.std):
            raise ValueError(f"std must be positive. Received: std={self.std}")
        if not self.class_names or any(not c or "\n" in c for c in self.class_names):
            raise ValueError(f"class_names must be non-empty single lines. Received: class_names={self.class_names!r}")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {INTERPOLATIONS}. Received: {self.interpolation!r}")
        if self.crop_mode not in CROP_MODES:
            raise ValueError(f"crop_mode must be one of {CROP_MODES}. Received: {self.crop_mode!r}")
        for name in ("max_bytes", "max_pixels"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int. Received: {name}={value!r}")
        if self.crop_pct is not None:
            set_("crop_pct", float(self.crop_pct))
            if not 0.0 < self.crop_pct <= 1.0:
                raise ValueError(f"crop_pct must be None or in (0, 1]. Received: crop_pct={self.crop_pct}")
            if self.crop_mode == "center" and self.image_size[0] != self.image_size[1]:
                raise ValueError(
                    "crop_mode='center' keeps the aspect ratio and needs a square image_size; use "
                    f"crop_mode='squash'. Received: image_size={self.image_size}"
                )

    @property
    def num_classes(self):
        return len(self.class_names)

    # -- images to pixels -----------------------------------------------------
    def decode(self, data):
        """One encoded image (scalar `tf.string`) to float32 RGB `(H, W, 3)` in `[0, 1]`
        (`zoo.preprocessing.image_decoding.decode_image` with this preprocessor's limits)."""
        return decode_image(data, self.max_bytes, self.max_pixels)

    def pixels(self, images):
        """Decoded images `(..., H, W, C)`, uint8 or float in `[0, 1]`, C of 1 to 4, to float32 RGB in `[0, 1]`.

        uint8 becomes float as `decode` makes it; grayscale is repeated in
        three channels and alpha is dropped, as `decode` does for PNGs.
        """
        images = tf.convert_to_tensor(images)
        if images.dtype == tf.uint8:
            images = tf.image.convert_image_dtype(images, tf.float32)
        elif images.dtype.is_floating:
            images = tf.cast(images, tf.float32)
        else:
            raise TypeError(f"Image pixels must be uint8 or float in [0, 1]. Received: dtype {images.dtype.name}")
        channels = images.shape[-1]
        if channels in (3, 4):
            return images[..., :3]
        if channels in (1, 2):  # gray (and alpha)
            return tf.repeat(images[..., :1], 3, axis=-1)
        if channels is None:
            count = tf.shape(images)[-1]
            return tf.ensure_shape(
                tf.cond(count >= 3, lambda: images[..., :3], lambda: tf.repeat(images[..., :1], 3, axis=-1)),
                images.shape[:-1].concatenate([3]),
            )
        raise ValueError(f"Images must have 1 to 4 channels. Received: shape {images.shape}")

    # -- pixels to model inputs -----------------------------------------------
    def _resize_to(self, images, size):
        images = tf.image.resize(images, size, method=self.interpolation, antialias=True)
        return tf.clip_by_value(images, 0.0, 1.0)

    def resize(self, images):
        """Float pixels `(H0, W0, C)` or `(B, H0, W0, C)` in `[0, 1]` to `image_size` (and crop)."""
        if self.crop_pct is None:
            return self._resize_to(images, self.image_size)
        height, width = self.image_size
        scaled = [math.floor(s / self.crop_pct) for s in self.image_size]
        if self.crop_mode == "squash":
            resized = self._resize_to(images, scaled)
        else:  # the shorter side to `scaled`, the longer one in proportion (torchvision's Resize(int))
            shape = tf.shape(images)
            h, w = tf.cast(shape[-3], tf.float64), tf.cast(shape[-2], tf.float64)
            short, long = tf.minimum(h, w), tf.maximum(h, w)
            new_long = tf.cast(scaled[0] * long / short, tf.int32)  # truncated, as int() does
            size = tf.where(h <= w, tf.stack([scaled[0], new_long]), tf.stack([new_long, scaled[0]]))
            resized = self._resize_to(images, size)
        shape = tf.shape(resized)
        # The centre, rounded half to even as Python's round() (torchvision's CenterCrop).
        top = tf.cast(tf.round(tf.cast(shape[-3] - height, tf.float32) / 2.0), tf.int32)
        left = tf.cast(tf.round(tf.cast(shape[-2] - width, tf.float32) / 2.0), tf.int32)
        cropped = resized[..., top : top + height, left : left + width, :]
        cropped.set_shape(resized.shape[:-3].concatenate([height, width, resized.shape[-1]]))  # static for the model
        return cropped

    def normalize(self, images):
        """`(x - mean) / std` over the last (channel) axis."""
        return (images - tf.constant(self.mean, tf.float32)) / tf.constant(self.std, tf.float32)

    def prepare(self, images):
        """`normalize(resize(images))`: float `[0, 1]` pixels to model inputs."""
        return self.normalize(self.resize(images))

    def refusal_reasons(self):
        """Why `prepare_bytes` marks an image not valid, by its code: `check_image`'s refusals with
        this preprocessor's limits, then bytes that do not decode."""
        limits = {"too many bytes": f"more than max_bytes={self.max_bytes} bytes",
                  "too many pixels": f"more than max_pixels={self.max_pixels} pixels in its header"}
        return [limits.get(r, r) for r in REFUSALS] + ["not a decodable image (or truncated, or corrupt)"]

    def prepare_bytes(self, image_bytes, with_reasons=False):
        """Encoded images `(B,)` to `(inputs (B, H, W, 3) float32, valid (B,) bool)`: each decoded,
        resized and normalised; an image that does not decode is zeros and not valid. With
        `with_reasons`, also `(B,)` strings: `""` for a valid image, else why not (`refusal_reasons`).

        Each image is checked (`check_image`: its length and header) and
        decoded only if the check passed, in a `tf.data` pipeline with
        `ignore_errors()`, so one bad image never fails the others (the
        export's invalid rows).
        """
        n = tf.shape(image_bytes, out_type=tf.int64)[0]
        height, width = self.image_size

        def one(i, data):
            data, refusal, _ = check_image(data, self.max_bytes, self.max_pixels)
            image = tf.cond(tf.equal(refusal, 0), lambda: self.prepare(decode_checked(data, self.max_pixels)),
                            lambda: tf.zeros([height, width, 3]))
            return i, image, refusal

        decoded = tf.data.Dataset.from_tensor_slices((tf.range(n), image_bytes)).map(one).ignore_errors()
        # Decoded images batched together, then a batch of none in case all failed.
        empty = tf.data.Dataset.from_tensors(
            (tf.zeros([0], tf.int64), tf.zeros([0, height, width, 3]), tf.zeros([0], tf.int32))
        )
        index, images, refusals = decoded.batch(tf.maximum(n, 1)).concatenate(empty).take(1).get_single_element()
        full = tf.scatter_nd(index[:, None], images, tf.stack([n, height, width, 3]))
        # Codes: the check's refusal where the image came through, one past them where it failed to decode.
        codes = tf.tensor_scatter_nd_update(tf.fill([n], len(REFUSALS)), index[:, None], refusals)
        valid = tf.equal(codes, 0)
        if not with_reasons:
            return full, valid
        return full, valid, tf.gather(tf.constant(self.refusal_reasons()), codes)

    # -- training batches -----------------------------------------------------
    def label_indices(self, labels):
        """Class indices (int32) of labels given as indices or as class names; an error
        (raised when the graph runs) for any label that is neither."""
        labels = tf.convert_to_tensor(labels)
        if labels.dtype == tf.string:
            matches = tf.equal(tf.expand_dims(labels, -1), tf.constant(self.class_names))
            found = tf.reduce_all(tf.reduce_any(matches, -1))
            shown = ", ".join(self.class_names[:20]) + (", ..." if self.num_classes > 20 else "")
            message = f"Labels must be class names ({shown}). Received"
            with tf.control_dependencies([tf.debugging.Assert(found, [message, labels], summarize=10)]):
                return tf.argmax(tf.cast(matches, tf.int32), -1, output_type=tf.int32)
        if not labels.dtype.is_integer:
            raise TypeError(
                f"Labels must be class indices (int) or class names (str). Received: dtype {labels.dtype.name}"
            )
        labels = tf.cast(labels, tf.int32)
        inside = tf.reduce_all((labels >= 0) & (labels < self.num_classes))
        message = f"Label indices must be in [0, {self.num_classes}) ({self.num_classes} class names). Received"
        with tf.control_dependencies([tf.debugging.Assert(inside, [message, labels], summarize=10)]):
            return tf.identity(labels)

    def batches(self, dataset, batch_size, augment=None):
        """Training (or evaluation) batches: `(inputs (B, H, W, 3) float32, one-hot labels (B, C) float32)`.

        Args:
            dataset: `tf.data.Dataset` of `(image, label)` elements: `image`
                encoded bytes (scalar string) or pixels `(H, W, C)` (uint8 or
                float in `[0, 1]`, any size, 1 to 4 channels); `label` a
                class index or a class name. Used in its own order.
            batch_size: int. Images per batch.
            augment: None, or a callable taking and returning `{"images",
                "labels"}` batches (`(B, H, W, 3)` float pixels in `[0, 1]` at
                `image_size`, one-hot labels): the dict interface of Keras'
                image preprocessing layers, so a layer or a
                `keras.layers.Pipeline` fits as it is (give them
                `value_range=(0, 1)` where they have one; call with
                `training=True`). Runs after the resize, before normalising.
                Defaults to `None`.

        Returns:
            A `tf.data.Dataset`, prefetched. The image path is `decode` or
            `pixels`, then `resize`, then `augment`, then `normalize`: what
            `prepare_bytes` feeds the model, but for `augment`.
        """
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int. Received: batch_size={batch_size!r}")
        spec = dataset.element_spec
        if not isinstance(spec, tuple) or len(spec) != 2 or not all(isinstance(s, tf.TensorSpec) for s in spec):
            raise ValueError(f"The dataset must give (image, label) pairs. Received elements of {spec}")
        image_spec, label_spec = spec
        encoded = image_spec.dtype == tf.string
        if image_spec.shape.rank != (0 if encoded else 3) or label_spec.shape.rank != 0:
            raise ValueError(
                "The dataset must give one image and one label at a time (unbatched): encoded bytes (a scalar "
                f"string) or pixels (H, W, C), and a scalar label. Received elements of {spec}"
            )
        load = self.decode if encoded else self.pixels
        ds = dataset.map(lambda image, label: (self.resize(load(image)), self.label_indices(label)),
                         num_parallel_calls=tf.data.AUTOTUNE)

        def finish(images, labels):
            labels = tf.one_hot(labels, self.num_classes, dtype=tf.float32)
            if augment is not None:
                out = augment({"images": images, "labels": labels})
                # Keras layers compute in the global policy's dtype (bfloat16
                # under mixed precision); batches stay float32.
                images, labels = tf.cast(out["images"], tf.float32), tf.cast(out["labels"], tf.float32)
            return self.normalize(images), labels

        return ds.batch(batch_size).map(finish, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)

    # -- config ---------------------------------------------------------------
    def replace(self, **changes):
        """A copy with `changes` (checked like the constructor's arguments)."""
        return dataclasses.replace(self, **changes)

    def get_config(self):
        """The arguments, as JSON types."""
        config = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in config.items()}

    @classmethod
    def from_config(cls, config):
        """Reads `get_config()`'s dict (one written before the decoding limits were settings
        gets the defaults); names unknown keys."""
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise ValueError(f"Unknown ImagePreprocessor fields {unknown}. Expected some of {sorted(known)}.")
        return cls(**config)
