"""`ImageClassifier`: a trained image classifier as one object to load, call, save and export."""

import os

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from zoo.convert.hf_vit import load_hf_vit
from zoo.convert.timm_vit import load_timm_vit
from zoo.data.image_preprocessing import DEFAULT_MEAN, DEFAULT_STD, ImagePreprocessing
from zoo.export.image_classifier import ImageClassifierModule, export_image_classifier
from zoo.models.attention_rollout import attention_rollout
from zoo.tasks.compiled_call import CompiledCall
from zoo.tasks.task import Task, check_files, load_keras_model, read_json_file

# What recipes/image_classification.py normalises with and its config's
# defaults, for run folders written before `task.json`.
_RECIPE_DEFAULTS = dict(mean=DEFAULT_MEAN, std=DEFAULT_STD, image_size=32, top_k=5)
OUTPUTS = ("probabilities", "top_k_labels", "top_k_scores", "valid")


def _is_pil_image(value):
    return type(value).__module__.startswith("PIL.") and hasattr(value, "convert")


def _as_input(image, index):
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


class ImageClassifier(Task):
    """Image preprocessing, a `VisionTransformer` and its class names, as one thing.

    `predict` runs the very graph the TF Serving export runs (the same
    `zoo.export.image_classifier.ImageClassifierModule`: decoding,
    `ImagePreprocessing`'s resize, crop and normalisation, softmax, top-k),
    so it gives the export's numbers. Images that cannot be decoded (empty,
    not an image, truncated beyond repair, too large) come back as the
    export's invalid rows: `valid` False, zero probabilities, empty labels.
    A path to no file is an error, raised before anything runs. On the JAX
    and PyTorch backends decoding, preprocessing, softmax and top-k are the
    same TensorFlow functions and the model runs on the backend
    (`zoo.tasks.compiled_call`: jitted on JAX), so the numbers are the
    export's within float rounding; `export` still writes the TensorFlow
    SavedModel (see `Task.export`).

    Args:
        model: `zoo.models.VisionTransformer` (normalised images to logits).
        preprocessing: `zoo.data.ImagePreprocessing`, with one class name
            per logit.
        top_k: int. Labels and scores per image. Defaults to `5`.

    Example:
    >>> from zoo.models import VisionTransformer
    >>> model = VisionTransformer(image_size=8, patch_size=4, num_classes=3, d_model=16,
    ...     num_encoder_layers=1, num_heads=2, d_ff=32)
    >>> prep = ImagePreprocessing(8, (0.5,) * 3, (0.5,) * 3, ("cat", "dog", "bird"))
    >>> classifier = ImageClassifier(model, prep, top_k=2)
    >>> out = classifier.predict([np.zeros((20, 30, 3), "uint8"), b"not an image"])
    >>> out["top_k_labels"].shape, out["valid"].tolist()
    ((2, 2), [True, False])
    """

    def __init__(self, model, preprocessing, top_k=5):
        super().__init__(model)
        if not isinstance(preprocessing, ImagePreprocessing):
            raise TypeError(
                f"preprocessing must be a zoo.data.ImagePreprocessing. Received: {type(preprocessing).__name__}"
            )
        self.preprocessing = preprocessing
        self.top_k = top_k
        self._modules = {}  # (top_k, model, preprocessing) -> ImageClassifierModule (its functions trace once)
        self._logits = {}  # model -> CompiledCall, off TensorFlow
        self._module(top_k)  # checks the class names against the model, and top_k

    def _module(self, top_k):
        key = (top_k, id(self.model), self.preprocessing)
        if key not in self._modules:
            self._modules[key] = ImageClassifierModule(self.model, self.preprocessing, top_k)
        return self._modules[key]

    @property
    def class_names(self):
        return self.preprocessing.class_names

    def predict(self, images, top_k=None, batch_size=32):
        """Classifies images.

        Args:
            images: a list of file paths, encoded image bytes (JPEG, PNG,
                GIF, BMP), PIL images or arrays (`(H, W[, C])` uint8, or
                `(H, W, 3)` float in `[0, 1]`), mixed freely; or a
                `(B, H, W, C)` array; or one image.
            top_k: int. Overrides the classifier's `top_k` for this call.
            batch_size: int. Images per call of the graph (encoded images
                together; float pixels together when of one size).
                Defaults to `32`.

        Returns:
            A dict of NumPy arrays, the export's outputs: `probabilities`
            `(N, classes)`, `top_k_labels` `(N, k)` str, `top_k_scores`
            `(N, k)` and `valid` `(N,)` bool.
        """
        module = self._module(self.top_k if top_k is None else top_k)
        if keras.backend.backend() == "tensorflow":
            on_bytes, on_pixels = module.serving_default, module.classify_pixels
        else:  # the same functions, with the model run on the backend between TF halves
            on_bytes = lambda b: self._outputs(module, *module.prepare_bytes(b))  # noqa: E731
            on_pixels = lambda p: self._outputs(module, module.prepare_pixels(p), tf.ones(tf.shape(p)[:1], tf.bool))  # noqa: E731
        outputs = self._run(images, on_bytes, on_pixels, batch_size)
        outputs = {key: outputs[key] for key in OUTPUTS}
        outputs["top_k_labels"] = np.char.decode(outputs["top_k_labels"].astype(bytes), "utf-8")
        return outputs

    def prepare(self, images, batch_size=32):
        """The model's inputs for `images`, as `predict` and the export compute them.

        Args:
            images: what `predict` takes.
            batch_size: int. Images per call of the graph. Defaults to `32`.

        Returns:
            A dict of NumPy arrays: `inputs` `(N, H, W, 3)` float32, the
            normalised images the model reads (`H, W` the preprocessing's
            `image_size`); `pixels`, the same images in `[0, 1]` before
            normalisation (resized and cropped: what the model sees); and
            `valid` `(N,)` bool (an image that does not decode: zeros, False).
        """
        module = self._module(self.top_k)
        outputs = self._run(
            images, lambda b: dict(zip(("inputs", "valid"), module.prepare_bytes(b))),
            lambda p: {"inputs": module.prepare_pixels(p), "valid": tf.ones(tf.shape(p)[:1], tf.bool)}, batch_size,
        )
        mean, std = (np.asarray(v, np.float32) for v in (self.preprocessing.mean, self.preprocessing.std))
        outputs["pixels"] = np.clip(outputs["inputs"] * std + mean, 0.0, 1.0) * outputs["valid"][:, None, None, None]
        return outputs

    def attention_rollout(self, images, batch_size=32):
        """Attention rollout maps (`zoo.models.attention_rollout`) of images, preprocessed as `predict` does.

        Args:
            images: what `predict` takes.
            batch_size: int. Images per model call. Defaults to `32`.

        Returns:
            `(N, grid_h, grid_w)` float32 NumPy maps over the model's patch
            grid at the preprocessing's `image_size`, each non-negative and
            summing to 1.

        Raises:
            ValueError: an image does not decode (named by its index).
        """
        prepared = self.prepare(images, batch_size=batch_size)
        bad = np.flatnonzero(~prepared["valid"]).tolist()
        if bad:
            raise ValueError(
                f"Images {bad} could not be decoded (empty, not an image, truncated or too large); "
                "attention rollout needs decodable images."
            )
        inputs = prepared["inputs"]
        maps = [
            np.asarray(ops.convert_to_numpy(attention_rollout(self.model, inputs[start : start + batch_size])))
            for start in range(0, len(inputs), batch_size)
        ]
        grid = self.model.patch_embedding.grid_size(inputs.shape)
        return np.concatenate(maps) if maps else np.zeros((0, *grid), np.float32)

    def _outputs(self, module, inputs, valid):
        """The export's outputs for prepared `inputs` `(B, H, W, 3)`, the model run on the active backend."""
        if id(self.model) not in self._logits:
            self._logits = {id(self.model): CompiledCall(self.model, lambda x: ops.cast(self.model(x, training=False), "float32"))}
        logits = self._logits[id(self.model)](inputs.numpy())
        return module.outputs_from_logits(tf.constant(logits, tf.float32), valid)

    def _run(self, images, on_bytes, on_pixels, batch_size):
        """Runs `on_bytes` on the encoded images and `on_pixels` on float arrays of one size, in
        batches; stacks their dict outputs in the images' order."""
        if isinstance(images, np.ndarray) and images.ndim == 4:
            images = list(images)
        elif not isinstance(images, (list, tuple)):
            images = [images]
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int. Received: batch_size={batch_size!r}")
        inputs = [_as_input(image, i) for i, image in enumerate(images)]  # every path checked before running
        rows = [None] * len(inputs)
        # Encoded images in one group; float pixels grouped by size (a batch is one array).
        groups = {}
        for i, (kind, value) in enumerate(inputs):
            groups.setdefault("bytes" if kind == "bytes" else value.shape, []).append(i)
        for group, members in groups.items():
            for start in range(0, len(members), batch_size):
                chunk = members[start : start + batch_size]
                if group == "bytes":
                    out = on_bytes(tf.constant([inputs[i][1] for i in chunk], tf.string))
                else:
                    out = on_pixels(tf.constant(np.stack([inputs[i][1] for i in chunk])))
                for j, i in enumerate(chunk):
                    rows[i] = {key: value[j].numpy() for key, value in out.items()}
        if rows:
            return {key: np.stack([row[key] for row in rows]) for key in rows[0]}
        # No images: the outputs' shapes with no rows, from a call on one blank image.
        out = on_pixels(tf.zeros([1, 8, 8, 3]))
        return {key: np.zeros((0, *value.shape[1:]), value.dtype.as_numpy_dtype) for key, value in out.items()}

    def export(self, base, name=None, version=None, quantize=None):
        """Writes the TF Serving export `<base>/<name>/<version>/` (`zoo.export.export_image_classifier`);
        on JAX or PyTorch through the TensorFlow backend in a subprocess (`Task.export`).

        `quantize="int8"` exports an int8 copy of the model (this
        classifier is not changed) as `image_classifier_int8` unless `name`
        is given; `name` defaults to `image_classifier`.
        """
        if keras.backend.backend() != "tensorflow":
            return self._export_on_tensorflow(base, name, version, quantize)
        return export_image_classifier(
            self.model, self.preprocessing, base, name=name, version=version, top_k=self.top_k, quantize=quantize
        )

    @classmethod
    def from_hf(cls, path, top_k=5):
        """An HF `ViTForImageClassification` folder (`save_pretrained`) as an
        `ImageClassifier`, with its `preprocessor_config.json`'s preprocessing
        and `id2label` class names (`zoo.convert.hf_vit`)."""
        parts = load_hf_vit(path)
        return cls(parts.model, parts.preprocessing, top_k)

    @classmethod
    def from_timm(cls, source, architecture=None, pretrained_cfg=None, top_k=5, **model_args):
        """A timm `vit_*` / `deit_*` checkpoint (a `save_for_hf` folder, a weights
        file or a state dict, see `zoo.convert.timm_vit.load_timm_vit`) as an
        `ImageClassifier`, preprocessing as timm's evaluation transform."""
        parts = load_timm_vit(source, architecture=architecture, pretrained_cfg=pretrained_cfg, **model_args)
        return cls(parts.model, parts.preprocessing, top_k)

    # -- the saved folder ------------------------------------------------------
    def get_settings(self):
        return {"preprocessing": self.preprocessing.get_config(), "top_k": self.top_k}

    @classmethod
    def _from_folder(cls, directory, model, settings):
        if "preprocessing" not in settings:
            raise ValueError(f"{directory}/task.json has no preprocessing settings.")
        return cls(model, ImagePreprocessing.from_config(settings["preprocessing"]), settings.get("top_k", 5))

    @classmethod
    def _load_earlier(cls, directory):
        """An image-classification recipe's run folder (`model.keras`,
        `class_names.json`, `config.json`), written before `task.json`."""
        if not os.path.exists(os.path.join(directory, "class_names.json")):
            return None
        check_files(directory, ("model.keras", "config.json"), "image classification run")
        config = {**_RECIPE_DEFAULTS, **read_json_file(os.path.join(directory, "config.json"))}
        class_names = read_json_file(os.path.join(directory, "class_names.json"))
        preprocessing = ImagePreprocessing(config["image_size"], config["mean"], config["std"], class_names)
        return cls(load_keras_model(directory), preprocessing, config["top_k"])

    def __repr__(self):
        return (
            f"<ImageClassifier {type(self.model).__name__} ({self.model.count_params():,} parameters), "
            f"{len(self.class_names)} classes, {self.preprocessing.image_size}>"
        )
