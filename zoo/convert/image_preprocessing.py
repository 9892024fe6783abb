"""What a converted image classifier expects of its inputs, for `zoo.export`."""

import dataclasses
import json
import os

from zoo.convert.checkpoint import CheckpointError


@dataclasses.dataclass(frozen=True)
class ImagePreprocessing:
    """Input size, normalisation and class names that come with a checkpoint.

    The export (`zoo.export.image_classifier`) turns image bytes into float
    pixels `x` in `[0, 1]`, resizes them to `image_size` (bilinear, with
    antialiasing when downscaling) and feeds `(x - mean) / std` to the model:
    `mean` and `std` here are already in those `[0, 1]` units, whatever
    rescaling the source library applies first.

    What differs from the source library is only the resize: HF's
    `ViTImageProcessor` resizes straight to its `size` with the same
    antialiased bilinear filter as the export, but rounds the result to
    8 bits (pixels differ by at most one grey level); timm resizes the short side to `image_size / crop_pct`
    (`interpolation`, usually bicubic) and then center-crops. Images already
    at `image_size` go through all three identically when `crop_pct` is
    1.0 (or for HF); otherwise expect small score differences.

    Args:
        image_size: tuple of 2 ints. `(H, W)` the model reads.
        mean: tuple of floats. Per-channel mean of `[0, 1]` pixels.
        std: tuple of floats. Per-channel standard deviation.
        class_names: tuple of str. One name per logit, in order.
        interpolation: str. The source library's resize filter.
            Defaults to `"bilinear"`.
        crop_pct: float or None. timm's center-crop fraction; None when the
            source does not crop. Defaults to `None`.
        source: str. Where these values came from. Defaults to `""`.

    Example:
    >>> p = ImagePreprocessing((32, 32), (0.5,) * 3, (0.5,) * 3, ("cat", "dog"))
    >>> sorted(p.export_kwargs())
    ['class_names', 'image_size', 'mean', 'std']
    """

    image_size: tuple
    mean: tuple
    std: tuple
    class_names: tuple
    interpolation: str = "bilinear"
    crop_pct: float = None
    source: str = ""

    def __post_init__(self):
        object.__setattr__(self, "image_size", tuple(int(v) for v in self.image_size))
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        object.__setattr__(self, "class_names", tuple(str(c) for c in self.class_names))
        if len(self.image_size) != 2 or min(self.image_size) <= 0:
            raise CheckpointError(f"image_size must be 2 positive ints (H, W). Received: {self.image_size}")
        if len(self.mean) != len(self.std) or not self.mean:
            raise CheckpointError(
                f"mean and std must hold one value per channel. Received: mean={self.mean}, std={self.std}"
            )
        if any(s <= 0 for s in self.std):
            raise CheckpointError(f"std must be positive. Received: std={self.std}")

    def export_kwargs(self):
        """Keyword arguments for `zoo.export.image_classifier.export_image_classifier`."""
        return dict(
            class_names=list(self.class_names), image_size=self.image_size, mean=self.mean, std=self.std
        )

    def save(self, path):
        """Writes these values as JSON (beside a `.keras` file, which cannot hold them)."""
        with open(os.fspath(path), "w", encoding="utf-8") as f:
            json.dump(dataclasses.asdict(self), f, indent=2)

    @classmethod
    def load(cls, path):
        """Reads what `save` wrote."""
        with open(os.fspath(path), encoding="utf-8") as f:
            return cls(**json.load(f))


def class_names_from_mapping(mapping, num_classes, what):
    """Class names from `{index: name}` (JSON keys are strings) or a list.

    Raises a CheckpointError unless every index `0 .. num_classes - 1` is named.
    """
    if isinstance(mapping, (list, tuple)):
        names = [str(n) for n in mapping]
    else:
        try:
            by_index = {int(k): str(v) for k, v in mapping.items()}
        except (AttributeError, ValueError):
            raise CheckpointError(
                f"{what} must map class indices to names. Received: {str(mapping)[:200]}"
            ) from None
        names = [by_index.get(i) for i in range(num_classes)]
        if None in names or len(by_index) != num_classes:
            names = None
    if names is None or len(names) != num_classes:
        count = len(mapping) if hasattr(mapping, "__len__") else "?"
        raise CheckpointError(
            f"{what} must name each of the {num_classes} classes (indices 0 to {num_classes - 1}). "
            f"Received: {count} entries"
        )
    return names
