"""What an image classifier does to pixels before the model: one object, saved with it.

`ImagePreprocessing` is the single source of an image classifier's input
size, resize filter, crop, normalisation and class names: the converters
read it from a checkpoint (`zoo.convert`), `zoo.ImageClassifier` saves it in
its folder and runs it in `predict`, and the TF Serving export
(`zoo.export.image_classifier`) puts the very same TensorFlow ops in its
graph. It is a frozen dataclass of plain values, so `get_config()` is JSON.

Pixels come in as float32 in `[0, 1]` (decoded 8-bit images divided by 255).
`resize` then either goes straight to `image_size` (`crop_pct=None`: Hugging
Face's `ViTImageProcessor`, zoo's recipes) or, as timm's evaluation
transform does, resizes to `floor(size / crop_pct)` (`crop_mode="center"`:
the shorter side, keeping the aspect ratio; `"squash"`: both sides) and cuts
the centre `image_size` out. Downscaling is antialiased, as PIL's filters
are, and the result is clipped to `[0, 1]` as PIL's 8-bit output is
(bicubic and Lanczos overshoot). `normalize` computes `(x - mean) / std`.

What differs from the source libraries is only the arithmetic of the resize:
PIL (under HF and timm) rounds resized pixels to 8 bits, so pixels differ by
about one grey level where the image is resized; at `image_size` with no
crop every path is the identity.
"""

import dataclasses
import math

import tensorflow as tf

from zoo.layers.size_pair import size_pair

# Maps [0, 1] pixels to [-1, 1], as big_vision does: what zoo's image recipe
# trains with (checkpoints bring their own mean and std).
DEFAULT_MEAN = (0.5, 0.5, 0.5)
DEFAULT_STD = (0.5, 0.5, 0.5)
INTERPOLATIONS = ("bilinear", "bicubic", "nearest", "lanczos3")
CROP_MODES = ("center", "squash")


@dataclasses.dataclass(frozen=True)
class ImagePreprocessing:
    """Input size, resize, crop, normalisation and class names of an image classifier.

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

    Example:
    >>> p = ImagePreprocessing(32, (0.5,) * 3, (0.5,) * 3, ("cat", "dog"))
    >>> p.image_size, tuple(p.prepare(tf.ones((2, 64, 48, 3))).shape)
    ((32, 32), (2, 32, 32, 3))
    >>> float(p.normalize(tf.ones((1, 3)))[0, 0])
    1.0
    >>> ImagePreprocessing.from_config(p.get_config()) == p
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

    def replace(self, **changes):
        """A copy with `changes` (checked like the constructor's arguments)."""
        return dataclasses.replace(self, **changes)

    def get_config(self):
        """The arguments, as JSON types."""
        config = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in config.items()}

    @classmethod
    def from_config(cls, config):
        """Reads `get_config()`'s dict; names unknown keys."""
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise ValueError(f"Unknown ImagePreprocessing fields {unknown}. Expected some of {sorted(known)}.")
        return cls(**config)
