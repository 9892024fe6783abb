"""`ImageClassifier`: an image classifier as one object to load, call, fine-tune, save and export.

The classifier *owns* a Keras model (`self.model`, a `VisionTransformer`)
rather than being a `keras.Model` itself, as keras-hub's tasks are, because
what it adds around the model is not Keras: `predict` and the export run
TensorFlow graphs on encoded bytes (decoding, invalid rows, string labels
out) that `keras.Model.predict` cannot express, and its preprocessing stays
TensorFlow inside `tf.data` while the model runs on TensorFlow, JAX or
PyTorch. So `model.keras` in the task folder is the plain model, loadable
without `zoo.tasks`, and `fit` is `self.model.fit` on batches that
`zoo.preprocessing.ImagePreprocessor.batches` makes (the very decode,
resize, crop and normalisation that `predict` and the export run).

The inference graph is `zoo.tasks.image_classifier_graph`; `export` hands
its signatures to `zoo.export.writer.export_saved_model` (and the model to
`zoo.export.quantization.quantize_model` for an int8 copy): `zoo.export`
knows no model.
"""

import os
import warnings

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from zoo.convert.hf_vit import load_hf_vit
from zoo.convert.timm_vit import load_timm_vit
from zoo.export.quantization import check_mode, quantize_model, quantized_name
from zoo.export.writer import export_saved_model
from zoo.files import read_json
from zoo.models.attention_rollout import attention_rollout
from zoo.preprocessing.image_preprocessor import DEFAULT_MEAN, DEFAULT_STD, ImagePreprocessor
from zoo.tasks.compiled_call import CompiledCall
from zoo.tasks.fine_tuning import fine_tuning_optimizer, merge_lora
from zoo.tasks.image_classifier_graph import ImageClassifierGraph
from zoo.tasks.image_inputs import as_input, training_dataset
from zoo.tasks.task import Task, check_files, load_keras_model

# What recipes/image_classification.py normalises with and its config's
# defaults, for run folders written before `task.json`.
_RECIPE_DEFAULTS = dict(mean=DEFAULT_MEAN, std=DEFAULT_STD, image_size=32, top_k=5)
OUTPUTS = ("probabilities", "top_k_labels", "top_k_scores", "valid", "reason")
# `compile("auto")`: fine-tuning rates (see `ImageClassifier.compile`).
FINE_TUNING_LEARNING_RATE = 5e-5
FINE_TUNING_WEIGHT_DECAY = 0.01


class ImageClassifier(Task):
    """An `ImagePreprocessor`, a `VisionTransformer` and its class names, as one thing.

    `predict` runs the very graph the TF Serving export runs
    (`zoo.tasks.image_classifier_graph.ImageClassifierGraph`: the
    preprocessor's decoding, resize, crop and normalisation, softmax,
    top-k), so it gives the export's numbers. Images that cannot be decoded
    (empty, not an image, truncated beyond repair, too large) come back as the
    export's invalid rows: `valid` False, zero probabilities, empty labels.
    A path to no file is an error, raised before anything runs. On the JAX
    and PyTorch backends decoding, preprocessing, softmax and top-k are the
    same TensorFlow functions and the model runs on the backend
    (`zoo.tasks.compiled_call`: jitted on JAX), so the numbers are the
    export's within float rounding; `export` still writes the TensorFlow
    SavedModel (see `Task.export`). `fit` trains or fine-tunes the model on
    labelled images (see there).

    Args:
        model: `zoo.models.VisionTransformer` (normalised images to logits).
        preprocessor: `zoo.preprocessing.ImagePreprocessor`, with one class
            name per logit.
        top_k: int. Labels and scores per image. Defaults to `5`.

    Example:
    >>> from zoo.models import VisionTransformer
    >>> model = VisionTransformer(image_size=8, patch_size=4, num_classes=3, d_model=16,
    ...     num_encoder_layers=1, num_heads=2, d_ff=32)
    >>> prep = ImagePreprocessor(8, (0.5,) * 3, (0.5,) * 3, ("cat", "dog", "bird"))
    >>> classifier = ImageClassifier(model, prep, top_k=2)
    >>> out = classifier.predict([np.zeros((20, 30, 3), "uint8"), b"not an image"])
    >>> out["top_k_labels"].shape, out["valid"].tolist()
    ((2, 2), [True, False])
    """

    def __init__(self, model, preprocessor, top_k=5):
        super().__init__(model)
        if not isinstance(preprocessor, ImagePreprocessor):
            raise TypeError(
                f"preprocessor must be a zoo.preprocessing.ImagePreprocessor. Received: {type(preprocessor).__name__}"
            )
        self.preprocessor = preprocessor
        self.top_k = top_k
        self._graphs = {}  # (top_k, model, preprocessor) -> ImageClassifierGraph (its functions trace once)
        self._logits = {}  # model -> CompiledCall, off TensorFlow
        self.graph()  # checks the class names against the model, and top_k

    def graph(self, top_k=None):
        """The `ImageClassifierGraph` that `predict` runs (and `export` writes), for `top_k` (default: the
        classifier's); one per top-k, model and preprocessor, so its functions trace once."""
        top_k = self.top_k if top_k is None else top_k
        key = (top_k, id(self.model), self.preprocessor)
        if key not in self._graphs:
            self._graphs[key] = ImageClassifierGraph(self.model, self.preprocessor, top_k)
        return self._graphs[key]

    @property
    def class_names(self):
        return self.preprocessor.class_names

    def predict(self, images, top_k=None, batch_size=32):
        """Classifies images.

        Args:
            images: a list of file paths, encoded image bytes (JPEG, PNG,
                GIF, BMP), PIL images or arrays (`(H, W[, C])` uint8, or
                `(H, W, 3)` float in `[0, 1]`), mixed freely; or a
                `(B, H, W, C)` array or an object array of them (as
                `zoo.data.image_data` holds a folder's files); or one image.
            top_k: int. Overrides the classifier's `top_k` for this call.
            batch_size: int. Images per call of the graph (encoded images
                together; float pixels together when of one size).
                Defaults to `32`.

        Returns:
            A dict of NumPy arrays, the export's outputs: `probabilities`
            `(N, classes)`, `top_k_labels` `(N, k)` str, `top_k_scores`
            `(N, k)`, `valid` `(N,)` bool and `reason` `(N,)` str (`""`, or
            why the image is not valid: over a limit, not decodable,
            non-finite pixels).
        """
        graph = self.graph(top_k)
        if keras.backend.backend() == "tensorflow":
            on_bytes, on_pixels = graph.serving_default, graph.classify_pixels
        else:  # the same functions, with the model run on the backend between TF halves
            on_bytes = lambda b: self._outputs(graph, *graph.prepare_bytes(b))  # noqa: E731
            on_pixels = lambda p: self._outputs(graph, *graph.prepare_pixels(p))  # noqa: E731
        outputs = self._run(images, on_bytes, on_pixels, batch_size)
        outputs = {key: outputs[key] for key in OUTPUTS}
        for key in ("top_k_labels", "reason"):
            outputs[key] = np.char.decode(outputs[key].astype(bytes), "utf-8")
        return outputs

    def prepare(self, images, batch_size=32):
        """The model's inputs for `images`, as `predict` and the export compute them.

        Args:
            images: what `predict` takes.
            batch_size: int. Images per call of the graph. Defaults to `32`.

        Returns:
            A dict of NumPy arrays: `inputs` `(N, H, W, 3)` float32, the
            normalised images the model reads (`H, W` the preprocessor's
            `image_size`); `pixels`, the same images in `[0, 1]` before
            normalisation (resized and cropped: what the model sees); and
            `valid` `(N,)` bool (an image that does not decode: zeros, False)
            and `reason` `(N,)` bytes (why not valid).
        """
        graph = self.graph()
        outputs = self._run(
            images, lambda b: dict(zip(("inputs", "valid", "reason"), graph.prepare_bytes(b))),
            lambda p: dict(zip(("inputs", "valid", "reason"), graph.prepare_pixels(p))), batch_size,
        )
        mean, std = (np.asarray(v, np.float32) for v in (self.preprocessor.mean, self.preprocessor.std))
        outputs["pixels"] = np.clip(outputs["inputs"] * std + mean, 0.0, 1.0) * outputs["valid"][:, None, None, None]
        return outputs

    def attention_rollout(self, images, batch_size=32):
        """Attention rollout maps (`zoo.models.attention_rollout`) of images, preprocessed as `predict` does.

        Args:
            images: what `predict` takes.
            batch_size: int. Images per model call. Defaults to `32`.

        Returns:
            `(N, grid_h, grid_w)` float32 NumPy maps over the model's patch
            grid at the preprocessor's `image_size`, each non-negative and
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

    def _outputs(self, graph, inputs, valid, reason):
        """The export's outputs for prepared `inputs` `(B, H, W, 3)`, the model run on the active backend."""
        if id(self.model) not in self._logits:
            self._logits = {id(self.model): CompiledCall(self.model, lambda x: ops.cast(self.model(x, training=False), "float32"))}
        logits = self._logits[id(self.model)](inputs.numpy())
        return graph.outputs_from_logits(tf.constant(logits, tf.float32), valid, reason)

    def _run(self, images, on_bytes, on_pixels, batch_size):
        """Runs `on_bytes` on the encoded images and `on_pixels` on float arrays of one size, in
        batches; gathers their dict outputs in the images' order (one host copy per output and batch)."""
        if isinstance(images, np.ndarray) and (images.ndim == 4 or images.dtype == object):  # a batch
            images = list(images)
        elif not isinstance(images, (list, tuple)):
            images = [images]
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int. Received: batch_size={batch_size!r}")
        inputs = [as_input(image, i) for i, image in enumerate(images)]  # every path checked before running
        # Encoded images in one group; float pixels grouped by size (a batch is one array).
        groups = {}
        for i, (kind, value) in enumerate(inputs):
            groups.setdefault("bytes" if kind == "bytes" else value.shape, []).append(i)
        outputs = {}
        for group, members in groups.items():
            for start in range(0, len(members), batch_size):
                chunk = members[start : start + batch_size]
                if group == "bytes":
                    out = on_bytes(tf.constant([inputs[i][1] for i in chunk], tf.string))
                else:
                    out = on_pixels(tf.constant(np.stack([inputs[i][1] for i in chunk])))
                for key, value in out.items():
                    value = value.numpy()
                    if key not in outputs:
                        outputs[key] = np.zeros((len(inputs), *value.shape[1:]), value.dtype)
                    outputs[key][chunk] = value
        if outputs:
            return outputs
        # No images: the outputs' shapes with no rows, from a call on one blank image.
        out = on_pixels(tf.zeros([1, 8, 8, 3]))
        return {key: np.zeros((0, *value.shape[1:]), value.dtype.as_numpy_dtype) for key, value in out.items()}

    # -- training --------------------------------------------------------------
    def compile(self, optimizer="auto", loss="auto", metrics="auto", **kwargs):
        """Compiles the model for `fit` (`keras.Model.compile`); `"auto"` picks the defaults below.

        Args:
            optimizer: `"auto"`: `keras.optimizers.AdamW` at 5e-5 (keras-hub's
                `ImageClassifier` and transformers' `Trainer` fine-tune at
                that rate), weight decay 0.01, gradients clipped to global
                norm 1 (as ViT fine-tuning does; the translator's rule too,
                `zoo.tasks.fine_tuning.GLOBAL_CLIPNORM`): rates for fine-tuning a
                trained or converted model. From scratch, pass a higher rate
                or a schedule (the recipe's warm-up and cosine decay,
                `keras.optimizers.schedules.CosineDecay`). Or any Keras
                optimizer.
            loss: `"auto"`: `keras.losses.CategoricalCrossentropy` on the
                logits and the one-hot labels of `ImagePreprocessor.batches`
                (so MixUp and CutMix labels work).
            metrics: `"auto"`: accuracy (`"accuracy"`).
            **kwargs: more `keras.Model.compile` arguments.
        """
        if optimizer == "auto":
            optimizer = fine_tuning_optimizer(FINE_TUNING_LEARNING_RATE, FINE_TUNING_WEIGHT_DECAY)
        if loss == "auto":
            loss = keras.losses.CategoricalCrossentropy(from_logits=True)
        if metrics == "auto":
            metrics = [keras.metrics.CategoricalAccuracy(name="accuracy")]
        self.model.compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    def fit(self, x, y=None, validation_data=None, epochs=1, batch_size=32, callbacks=None, verbose="auto",
            augment=None, shuffle=True, seed=0, **kwargs):
        """Trains the model on labelled images (fine-tunes it, when it was trained or converted).

        Every image goes through the preprocessor as `predict` and the export
        take it (decode or pixels, resize, crop, normalise), inside `tf.data`
        (`ImagePreprocessor.batches`); `augment` runs between the resize and
        the normalisation. A model not compiled yet is compiled with
        `compile()`'s defaults first. Runs on any Keras backend (Keras' JAX
        and PyTorch trainers read `tf.data`).

        Args:
            x: the training images, one of:
                - a folder path: one sub-folder per class, each named as one
                  of the classifier's classes (`zoo.data.image_data.load_folder`:
                  unreadable files are skipped and listed);
                - an array `(N, H, W, C)`, uint8 or float in `[0, 1]`, C of
                  1 to 4 (then `y` holds the labels);
                - a `tf.data.Dataset` of `(image, label)`: encoded bytes or
                  `(H, W, C)` pixels, and a class index or name (a dataset of
                  batches is unbatched and batched by `batch_size`; read in
                  its own order).
            y: `(N,)` class indices or class names, with an array `x`.
            validation_data: a folder path, an `(x, y)` tuple, a
                `tf.data.Dataset` as `x`, or None. Never augmented. Defaults
                to `None`.
            epochs: int. Defaults to `1`.
            batch_size: int. Images per batch. Defaults to `32`.
            callbacks: list of `keras.callbacks.Callback`. Defaults to `None`.
            verbose: Keras' `verbose` (`"auto"`, 0, 1, 2). Defaults to `"auto"`.
            augment: None or a callable on `{"images", "labels"}` batches:
                Keras image preprocessing layers (see
                `ImagePreprocessor.batches`). Defaults to `None`.
            shuffle: bool. Shuffle a folder's or an array's images (anew each
                epoch, with `seed`); a dataset is read in its own order.
                Defaults to `True`.
            seed: int. Defaults to `0`.
            **kwargs: more `keras.Model.fit` arguments (`initial_epoch`,
                `steps_per_epoch`: then the images repeat, ...).

        Returns:
            Keras' `History`.

        Raises:
            ValueError: labels that are not the classifier's class names or
                indices (named), or images that are not images.
        """
        train = training_dataset(x, y, self.class_names, "x", shuffle=shuffle, seed=seed)
        train = self.preprocessor.batches(train, batch_size, augment=augment)
        validation = None
        if validation_data is not None:
            pair = isinstance(validation_data, tuple) and len(validation_data) == 2
            x_val, y_val = validation_data if pair else (validation_data, None)
            validation = training_dataset(x_val, y_val, self.class_names, "validation_data")
            validation = self.preprocessor.batches(validation, batch_size)
        if kwargs.get("steps_per_epoch"):
            train = train.repeat()
        if not self.model.compiled:
            self.compile()
        with warnings.catch_warnings():
            # Keras warns at the end of each pass over a dataset of unknown length (an unbatched one)
            # that the input "ran out of data"; for a finite dataset that is the end of an epoch.
            warnings.filterwarnings("ignore", message="Your input ran out of data", category=UserWarning)
            return self.model.fit(
                train, validation_data=validation, epochs=epochs, callbacks=callbacks, verbose=verbose,
                shuffle=False, **kwargs,  # the images are shuffled already
            )

    # -- export ----------------------------------------------------------------
    def export(self, base, name=None, version=None, quantize=None):
        """Writes the TF Serving export `<base>/<name>/<version>/` (the next free version by default) and
        returns its path; on JAX or PyTorch through the TensorFlow backend in a subprocess (`Task.export`).

        The graph is `ImageClassifierGraph`'s (`serving_default` on image
        bytes, `classify_pixels`), written by `zoo.export.writer` with
        warm-up requests. `quantize="int8"` exports an int8 copy of the
        model (`zoo.export.quantization.quantize_model`; this classifier is
        not changed) as `image_classifier_int8` unless `name` is given;
        `name` defaults to `image_classifier`. LoRA is merged into the
        kernels first (`zoo.tasks.fine_tuning.merge_lora`).
        """
        name = quantized_name("image_classifier", check_mode(quantize)) if name is None else name
        merge_lora(self)
        if keras.backend.backend() != "tensorflow":
            return self._export_on_tensorflow(base, name, version, quantize)
        if quantize is None:
            graph, summary = self.graph(), None
        else:
            model, summary = quantize_model(self.model, quantize)
            graph = ImageClassifierGraph(model, self.preprocessor, self.top_k)
        return export_saved_model(
            base, name, graph.endpoints(), resources=(graph.class_names,), warmup_requests=[graph.warmup_request()],
            version=version, quantization=summary,
        )

    @classmethod
    def from_hf(cls, path, top_k=5):
        """An HF `ViTForImageClassification` folder (`save_pretrained`) as an
        `ImageClassifier`, with its `preprocessor_config.json`'s preprocessing
        and `id2label` class names (`zoo.convert.hf_vit`)."""
        parts = load_hf_vit(path)
        return cls(parts.model, parts.preprocessor, top_k)

    @classmethod
    def from_timm(cls, source, architecture=None, pretrained_cfg=None, top_k=5, **model_args):
        """A timm `vit_*` / `deit_*` checkpoint (a `save_for_hf` folder, a weights
        file or a state dict, see `zoo.convert.timm_vit.load_timm_vit`) as an
        `ImageClassifier`, preprocessing as timm's evaluation transform."""
        parts = load_timm_vit(source, architecture=architecture, pretrained_cfg=pretrained_cfg, **model_args)
        return cls(parts.model, parts.preprocessor, top_k)

    # -- the saved folder ------------------------------------------------------
    def get_settings(self):
        return {"preprocessing": self.preprocessor.get_config(), "top_k": self.top_k}

    @classmethod
    def _from_folder(cls, directory, model, settings):
        if "preprocessing" not in settings:
            raise ValueError(f"{directory}/task.json has no preprocessing settings.")
        return cls(model, ImagePreprocessor.from_config(settings["preprocessing"]), settings.get("top_k", 5))

    @classmethod
    def _load_earlier(cls, directory):
        """An image-classification recipe's run folder (`model.keras`,
        `class_names.json`, `config.json`), written before `task.json`."""
        if not os.path.exists(os.path.join(directory, "class_names.json")):
            return None
        check_files(directory, ("model.keras", "config.json"), "image classification run")
        config = {**_RECIPE_DEFAULTS, **read_json(os.path.join(directory, "config.json"))}
        class_names = read_json(os.path.join(directory, "class_names.json"), expected=list)
        preprocessor = ImagePreprocessor(config["image_size"], config["mean"], config["std"], class_names)
        return cls(load_keras_model(directory), preprocessor, config["top_k"])

    def __repr__(self):
        return (
            f"<ImageClassifier {type(self.model).__name__} ({self.model.count_params():,} parameters), "
            f"{len(self.class_names)} classes, {self.preprocessor.image_size}>"
        )
