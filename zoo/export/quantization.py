"""Post-training int8 weight quantization of a model, for smaller TF Serving exports.

`quantize_model(model, "int8")` returns a quantized *copy* (the caller's
float model is untouched) and a `QuantizationSummary` of what was
quantized and what stayed float. It is Keras' own quantization
(`keras.Model.quantize`), applied to the layers Keras can quantize:
`Dense` (feed-forward layers, classifier heads), `EinsumDense` (the
attention projections) and `Embedding` / `ReversibleEmbedding` (token
tables, including the tied output projection, which reads the same int8
table). Each weight matrix becomes int8 with one float scale per output
channel (abs-max, symmetric); biases stay float. Everything else stays
float and is listed: convolutions (Keras has no int8 `Conv2D`: the ViT
patch embedding), layer norms, position tables, class tokens, output
biases.

Activations stay float ("weight-only" int8): each quantized layer casts its
int8 weights to float inside the graph and multiplies with float
activations. Keras' default int8 mode also quantizes activations on the
fly and multiplies int8 x int8; in a stock TF Serving graph on CPU that is
a `BatchMatMulV3` int8 -> int32 kernel (Eigen), which measured slower than
float32 matmuls and lost more accuracy (BENCHMARKS.md, "int8 exports"),
so zoo does not use it. Written here, around Keras, because what to
quantize, the copy, and the record of what stayed float are zoo's to say.

The summary is written next to the export as
`assets.extra/zoo_quantization.json` (TF Serving ignores it);
`read_quantization(saved_model_dir)` reads it back.
"""

import dataclasses
import json
import math
import os
import warnings

import keras

from zoo.files import read_json

MODES = ("int8",)
SUMMARY_FILE = os.path.join("assets.extra", "zoo_quantization.json")
# Layers Keras 3 quantizes to int8 (its `quantize` refuses subclasses).
_QUANTIZABLE = (
    keras.layers.Dense,
    keras.layers.EinsumDense,
    keras.layers.Embedding,
    keras.layers.ReversibleEmbedding,
)
_WHY_FLOAT = {
    "Conv1D": "Keras has no int8 convolution",
    "Conv2D": "Keras has no int8 convolution",
    "Conv3D": "Keras has no int8 convolution",
    "LayerNormalization": "a norm: scale and offset only",
    "BatchNormalization": "a norm: scale and offset only",
}


def check_mode(quantize):
    """`quantize` if it is None or a supported mode; a ValueError naming it otherwise."""
    if quantize is not None and quantize not in MODES:
        raise ValueError(f"quantize must be None (float) or one of {MODES}. Received: quantize={quantize!r}")
    return quantize


def quantized_name(name, quantize):
    """The default model name of an export: `name`, or `name_int8` when quantized.

    A separate name (not a new version of the float model) lets TF Serving
    serve both side by side, and never swaps a float model for an int8
    one just because a higher version appeared.
    """
    return name if quantize is None else f"{name}_{quantize}"


@dataclasses.dataclass
class QuantizationSummary:
    """What `quantize_model` did.

    Attributes:
        mode: str. `"int8"`.
        quantized: list of `{"layer", "class", "weights"}`: the layers whose
            kernels (or tables) are int8.
        kept_float: list of `{"layer", "class", "weights", "why"}`: the
            layers holding float weights (not counting the biases of
            quantized layers).
        keras_version: str.
    """

    mode: str
    quantized: list
    kept_float: list
    keras_version: str = keras.__version__

    @property
    def quantized_weights(self):
        return sum(entry["weights"] for entry in self.quantized)

    @property
    def float_weights(self):
        return sum(entry["weights"] for entry in self.kept_float)

    def to_json(self):
        return {
            "mode": self.mode,
            "activations": "float",
            "quantized_weights": self.quantized_weights,
            "float_weights": self.float_weights,
            "quantized": self.quantized,
            "kept_float": self.kept_float,
            "keras_version": self.keras_version,
        }

    def describe(self):
        """One line for logs (`describe`)."""
        return describe(self.to_json())


def describe(summary):
    """One line for logs from a summary's JSON (`read_quantization`): how many
    layers and weights are int8, and which layer kinds stayed float."""
    kinds = {}
    for entry in summary["kept_float"]:
        count, weights = kinds.get(entry["class"], (0, 0))
        kinds[entry["class"]] = (count + 1, weights + entry["weights"])
    floats = ", ".join(f"{count} {name} ({weights:,} weights)" for name, (count, weights) in sorted(kinds.items()))
    return (
        f"{summary['mode']}: {len(summary['quantized'])} layers quantized ({summary['quantized_weights']:,} "
        f"weights); kept float: {floats or 'nothing'}"
    )


def _leaf_layers(model):
    # The layers `keras.Model.quantize` visits: those with no sublayers.
    return [layer for layer in model._flatten_layers(include_self=False) if not list(layer._flatten_layers(include_self=False))]


def _count(variables):
    return int(sum(math.prod(v.shape) for v in variables))


def is_quantizable(layer):
    """Whether Keras quantizes `layer` to int8 (a plain Dense, EinsumDense, Embedding or ReversibleEmbedding)."""
    return type(layer) in _QUANTIZABLE


def _why_float(layer):
    name = type(layer).__name__
    return _WHY_FLOAT.get(name, "Keras quantizes Dense, EinsumDense and Embedding weights only")


def copy_model(model):
    """A new model of the same class and config, holding copies of `model`'s weights."""
    copy = type(model).from_config(model.get_config())
    if not copy.built:
        copy.build()
    copy.set_weights(model.get_weights())
    return copy


def quantize_model(model, mode="int8"):
    """Returns `(quantized copy, QuantizationSummary)`; `model` is not changed.

    Args:
        model: a built Keras model whose class round-trips `get_config()`
            (every zoo model does).
        mode: str. `"int8"`: int8 weights, one scale per output channel,
            float activations.

    Example:
    >>> from zoo.models import VisionTransformer
    >>> model = VisionTransformer(image_size=8, patch_size=4, num_classes=3, d_model=16,
    ...     num_encoder_layers=1, num_heads=2, d_ff=32)
    >>> quantized, summary = quantize_model(model)
    >>> quantized.head.kernel.dtype, model.head.kernel.dtype
    ('int8', 'float32')
    >>> [entry["class"] for entry in summary.kept_float if entry["class"] == "Conv2D"]
    ['Conv2D']
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}. Received: mode={mode!r}")
    if not model.built:
        raise ValueError(f"Quantize a built model. Received: an unbuilt {type(model).__name__}")
    already = [layer.path for layer in _leaf_layers(model) if getattr(layer, "quantization_mode", None)]
    if already:
        raise ValueError(f"The model is already quantized ({already[0]}, ...). Quantize its float original.")
    copy = copy_model(model)
    # Weight-only: no activation quantizer (see the module docstring).
    config = keras.quantizers.Int8QuantizationConfig(activation_quantizer=None)
    with warnings.catch_warnings():
        # Keras' numpy conversions while quantizing; nothing the caller can act on.
        warnings.filterwarnings("ignore", message=".*__array__ implementation doesn't accept a copy keyword.*")
        copy.quantize(config=config, filters=is_quantizable)
    quantized, kept_float = [], []
    for layer in _leaf_layers(copy):
        if is_quantizable(layer):
            if getattr(layer, "quantization_mode", None) != mode:
                raise RuntimeError(f"Keras did not quantize {layer.path} ({type(layer).__name__}).")
            # The int8 matrix itself, not its scales or bias.
            int8 = [v for v in layer.weights if v.dtype == mode]
            quantized.append({"layer": layer.path, "class": type(layer).__name__, "weights": _count(int8)})
            floats = [v for v in layer.weights if v.dtype != mode and not v.path.endswith(("scale", "bias"))]
            if floats:  # e.g. a LoRA adapter
                kept_float.append({"layer": layer.path, "class": type(layer).__name__, "weights": _count(floats),
                                   "why": "float weights besides the quantized kernel"})
        elif layer.weights:
            kept_float.append({"layer": layer.path, "class": type(layer).__name__, "weights": _count(layer.weights),
                               "why": _why_float(layer)})
    # Weights held by a composite layer or the model itself (e.g. the
    # translator's tied-logits bias).
    in_leaves = {id(v) for layer in _leaf_layers(copy) for v in layer.weights}
    for variable in copy.weights:
        if id(variable) not in in_leaves:
            kept_float.append({"layer": variable.path, "class": "weight", "weights": _count([variable]),
                               "why": "a weight of the model or a composite layer, not of a quantizable layer"})
    return copy, QuantizationSummary(mode, quantized, kept_float)


def write_quantization(saved_model_dir, summary):
    """Writes `summary` as `assets.extra/zoo_quantization.json` of an export."""
    path = os.path.join(saved_model_dir, SUMMARY_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(summary.to_json(), f, indent=2)
    return path


def read_quantization(saved_model_dir):
    """The quantization summary of an export (a dict), or None for a float export."""
    path = os.path.join(saved_model_dir, SUMMARY_FILE)
    return read_json(path) if os.path.exists(path) else None
