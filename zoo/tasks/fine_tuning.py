"""Fine-tuning a pretrained task: load any checkpoint zoo reads, adapt it, choose what trains.

- `load_pretrained(path, architecture=None)`: a zoo task folder (or a
  recipe's run folder), a MarianMT folder, an HF ViT folder, a timm folder
  or weights file, as a `zoo.Translator` or `zoo.ImageClassifier`.
- `with_new_head(classifier, class_names)`: the same backbone, a freshly
  initialised `head` for other classes.
- `with_image_size(classifier, image_size)`: the position table resampled to
  another patch grid (`PatchPositionEmbedding.resample`), the preprocessor's
  size changed with it.
- `freeze_backbone(classifier)`: only the head trains.
- `enable_lora(task, rank)` / `merge_lora(task)`: Keras' own LoRA
  (`layer.enable_lora`) on the attention and feed-forward projections (an
  image classifier's head trains too), and its low-rank update folded back
  into the kernels. `Task.save` and
  `export` call `merge_lora` first, so a saved folder or an export holds no
  LoRA variables or ops.

Call these before `compile` (Keras builds the optimizer for the variables
trainable then). The tasks' `compile()` defaults are fine-tuning rates
(`FINE_TUNING_OPTIMIZER`), lower than the recipes' from-scratch ones.
Written here because neither Keras nor keras-hub has a head swap, a
position-table resize or a LoRA merge for zoo's models; the LoRA itself is
Keras'.

Example:
>>> from zoo.models import VisionTransformer
>>> from zoo.preprocessing import ImagePreprocessor
>>> from zoo.tasks import ImageClassifier
>>> model = VisionTransformer(image_size=16, patch_size=8, num_classes=3, d_model=16,
...     num_encoder_layers=1, num_heads=2, d_ff=32)
>>> classifier = ImageClassifier(model, ImagePreprocessor(16, (0.5,) * 3, (0.5,) * 3, ("a", "b", "c")))
>>> classifier = with_new_head(classifier, ["x", "y"], log=None)
>>> classifier = with_image_size(classifier, 24, log=None)
>>> classifier.model.num_classes, classifier.model.grid_size
(2, (3, 3))
>>> enable_lora(classifier, rank=2, log=None)
>>> merge_lora(classifier, log=None)  # 4 attention and 2 feed-forward projections
6
"""

import gc
import os
import weakref

import keras
import numpy as np

from zoo.files import read_json
from zoo.layers.feed_forward import FeedForward
from zoo.layers.multi_head_attention import MultiHeadAttention
from zoo.layers.size_pair import size_pair

# What `load_pretrained` accepts, for its error message.
ACCEPTED = (
    "a zoo task folder (task.json, or a recipe's run folder holding model/), "
    "a MarianMT folder (config.json with model_type 'marian', weights, source.spm/target.spm, vocab.json), "
    "an HF ViT folder (config.json with model_type 'vit', preprocessor_config.json, weights), "
    "a timm folder (config.json with 'architecture', weights) "
    "or a timm weights file (.safetensors, .bin, .pth, .pt) with an architecture"
)
WEIGHT_FILE_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt")
# The one gradient-clipping rule of both tasks' `compile()`: the global norm of all gradients at most 1
# (transformers' Trainer `max_grad_norm`, big_vision's `grad_clip_norm`). Clipping each variable's
# gradient alone (Keras' `clipnorm`) changes the update's direction; the global norm only its length.
GLOBAL_CLIPNORM = 1.0

# model -> variables `enable_lora` froze (given back by `merge_lora`); weak so models are not kept alive.
_LORA_FROZEN = weakref.WeakKeyDictionary()


def _say(log, message):
    if log is not None:
        log(message)


def load_pretrained(path, architecture=None):
    """A pretrained checkpoint as a task object, whatever library wrote it.

    Args:
        path: str. One of: a zoo task folder (`task.json`; `Task.save`'s or
            a recipe's `<output>/model`) or a recipe's run folder (its
            `model/` is read); a MarianMT folder (`Translator.from_marian`);
            an HF `ViTForImageClassification` folder (`ImageClassifier.from_hf`);
            a timm folder (`save_for_hf`: `config.json` naming its
            `architecture`) or weights file (`ImageClassifier.from_timm`).
        architecture: str or None. The timm architecture (e.g.
            `vit_tiny_patch16_224`): needed for a weights file, overrides a
            timm folder's. Only timm checkpoints take one.

    Returns:
        `zoo.Translator` or `zoo.ImageClassifier`.

    Raises:
        ValueError: `path` is none of these (what was found is named), or a
            checkpoint's files cannot be read (`zoo.convert.CheckpointError`,
            a ValueError, names the file).
        FileNotFoundError: `path` does not exist.
    """
    from zoo.tasks.image_classifier import ImageClassifier
    from zoo.tasks.translator import Translator

    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No checkpoint at {path!r}. Expected {ACCEPTED}.")
    if os.path.isfile(path):
        if not path.endswith(WEIGHT_FILE_SUFFIXES):
            raise ValueError(f"{path} is a file of none of the kinds zoo fine-tunes. Expected {ACCEPTED}.")
        if not architecture:
            raise ValueError(
                f"{path} is a weights file: pass its timm architecture (architecture=..., --architecture), "
                "e.g. vit_tiny_patch16_224."
            )
        _check_timm_architecture(architecture)
        return ImageClassifier.from_timm(path, architecture=architecture)
    tasks = {"Translator": Translator, "ImageClassifier": ImageClassifier}
    for folder in (path, os.path.join(path, "model")):  # a task folder, or a recipe's run folder
        if os.path.isfile(os.path.join(folder, "task.json")):
            _refuse_architecture(architecture, folder, "a zoo task folder")
            kind = read_json(os.path.join(folder, "task.json")).get("task")
            if kind not in tasks:
                raise ValueError(f"{folder}/task.json names task {kind!r}; expected one of {sorted(tasks)}.")
            return tasks[kind].load(folder)
    config_path = os.path.join(path, "config.json")
    if os.path.isfile(config_path):
        config = read_json(config_path)
        model_type = config.get("model_type")
        if model_type == "marian":
            _refuse_architecture(architecture, path, "a MarianMT folder")
            return Translator.from_marian(path)
        if model_type == "vit":
            _refuse_architecture(architecture, path, "an HF ViT folder")
            return ImageClassifier.from_hf(path)
        if "architecture" in config or (architecture and model_type is None):
            _check_timm_architecture(architecture or config["architecture"])  # before reading the weights
            return ImageClassifier.from_timm(path, architecture=architecture)
        if os.path.isfile(os.path.join(path, "model.keras")):  # a run folder from before task folders
            for task in (ImageClassifier, Translator):
                loaded = task._load_earlier(path)
                if loaded is not None:
                    return loaded
        raise ValueError(
            f"{config_path} describes model_type={model_type!r} and names no timm architecture: not a "
            f"checkpoint zoo fine-tunes. Expected {ACCEPTED}."
        )
    found = sorted(os.listdir(path))
    shown = ", ".join(found[:10]) + (", ..." if len(found) > 10 else "") if found else "an empty folder"
    raise ValueError(f"{path} holds {shown}: none of the checkpoints zoo fine-tunes. Expected {ACCEPTED}.")


def _check_timm_architecture(architecture):
    """Raises `CheckpointError` (a ValueError) naming a timm architecture zoo does not import."""
    from zoo.convert.timm_vit import timm_arguments

    timm_arguments(architecture, {})


def _refuse_architecture(architecture, path, kind):
    if architecture:
        raise ValueError(
            f"{path} is {kind}, which names its own architecture; architecture= (--architecture) is for timm "
            f"checkpoints only. Received: architecture={architecture!r}"
        )


def _classifier_only(task, what):
    from zoo.tasks.image_classifier import ImageClassifier

    if not isinstance(task, ImageClassifier):
        raise TypeError(f"{what} takes a zoo.ImageClassifier. Received: {type(task).__name__}")
    if lora_layers(task.model, enabled=True):
        raise ValueError(f"{what}: the classifier has LoRA enabled; merge_lora(classifier) first.")


def _rebuilt(classifier, changes, copy):
    """A new `VisionTransformer` of the classifier's config with `changes`, weights copied by `copy(old, new)`."""
    old = classifier.model
    model = type(old).from_config({**old.get_config(), **changes})
    for source, target in zip(old.weights, model.weights):
        value = copy(source, target)
        if value is not None:
            target.assign(value)
    return model


def with_new_head(classifier, class_names, log=print):
    """The classifier with a freshly initialised head for `class_names`; every other weight kept.

    Args:
        classifier: `zoo.ImageClassifier`.
        class_names: sequence of str. The new classes, in logit order.
        log: callable taking one line, or None. Says which layer was replaced.
            Defaults to `print`.

    Returns:
        A new `zoo.ImageClassifier` (the given one is unchanged), its
        preprocessor's class names replaced.
    """
    from zoo.tasks.image_classifier import ImageClassifier

    _classifier_only(classifier, "with_new_head")
    class_names = tuple(class_names) if not isinstance(class_names, str) else class_names
    preprocessor = classifier.preprocessor.replace(class_names=class_names)  # checks the names
    old = classifier.model
    head = {id(v) for v in old.head.weights}
    model = _rebuilt(classifier, {"num_classes": len(class_names)}, lambda s, t: None if id(s) in head else s)
    _say(log, f"new head: replaced layer '{old.head.name}' (Dense, {old.num_classes} classes) by a freshly "
              f"initialised one for {len(class_names)} classes")
    return ImageClassifier(model, preprocessor, min(classifier.top_k, len(class_names)))


def with_image_size(classifier, image_size, log=print):
    """The classifier at another input size: its position table resampled to the new patch grid.

    The class token's position is kept; the grid's positions are resized
    with the layer's interpolation (`PatchPositionEmbedding.resample`, as
    timm's `resample_abs_pos_embed` does when it loads a checkpoint at
    another size). The preprocessor resizes (and crops) to the new size.

    Args:
        classifier: `zoo.ImageClassifier`.
        image_size: int or tuple of 2 ints, multiples of the patch size.
        log: callable taking one line, or None. Defaults to `print`.

    Returns:
        A new `zoo.ImageClassifier` (the given one is unchanged).
    """
    from zoo.tasks.image_classifier import ImageClassifier

    _classifier_only(classifier, "with_image_size")
    old = classifier.model
    size, patch = size_pair(image_size, "image_size"), size_pair(old.patch_size, "patch_size")
    if size[0] % patch[0] or size[1] % patch[1]:
        raise ValueError(f"image_size must be a multiple of the model's patch size {patch}. Received: image_size={size}")
    if size == size_pair(old.image_size, "image_size"):
        return classifier
    grid = (size[0] // patch[0], size[1] // patch[1])
    table = old.position_embedding.embeddings
    model = _rebuilt(classifier, {"image_size": list(size)},
                     lambda s, t: old.position_embedding.resample(grid) if s is table else s)
    _say(log, f"image size {tuple(classifier.preprocessor.image_size)} -> {size}: position table resampled from a "
              f"{old.grid_size} to a {grid} patch grid (class token position kept)")
    return ImageClassifier(model, classifier.preprocessor.replace(image_size=size), classifier.top_k)


def freeze_backbone(task):
    """Makes only the classifier's `head` trainable (and everything before it frozen).

    A translator is refused: its only layer after the decoder, the output
    projection, is in most checkpoints (Marian, zoo's presets) the target
    embedding itself (tied weights), so "training the head" would retrain
    the decoder's input embedding too, or nothing at all. To adapt a
    translator cheaply, use `enable_lora`.

    Raises:
        TypeError: `task` is not a `zoo.ImageClassifier` (a translator is named with what to do instead).
    """
    from zoo.tasks.translator import Translator

    if isinstance(task, Translator):
        raise TypeError(
            "freeze_backbone takes a zoo.ImageClassifier: a translator has no separate head (its output "
            "projection is tied to the target embedding in Marian and zoo's presets). Use enable_lora(translator, "
            "rank) (--lora-rank N) to train a few weights of a translator."
        )
    _classifier_only(task, "freeze_backbone")
    for layer in task.model.layers:
        layer.trainable = layer is task.model.head


def lora_layers(model, enabled=None):
    """The projections `enable_lora` adapts: each `MultiHeadAttention`'s query, key, value and output
    and each `FeedForward`'s two dense layers (all of them, or those with LoRA on or off)."""
    found = []
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, MultiHeadAttention):
            found += [layer.query_dense, layer.key_dense, layer.value_dense, layer.output_dense]
        elif isinstance(layer, FeedForward):
            found += [layer.intermediate_dense, layer.output_dense]
    return [layer for layer in found if enabled is None or layer.lora_enabled == enabled]


def enable_lora(task, rank, log=print):
    """Low-rank adaptation: Keras' `enable_lora(rank)` on every attention and feed-forward projection,
    every other weight frozen (biases, norms, embeddings) but an image classifier's head.

    The head trains in full, as PEFT's sequence-classification LoRA keeps
    its classifier: after `with_new_head` it holds random weights, and the
    new classes cannot be learned through low-rank updates feeding a
    random, frozen layer; a pretrained head is a few thousand weights. A
    translator's output projection is its target embedding (tied), so it
    stays frozen.

    Each adapted kernel `W` becomes `W + (alpha / rank) A B` with `A` and
    `B` trained and `W` frozen (Keras' `Dense`/`EinsumDense.enable_lora`;
    `B` starts at zero, so the task answers as before until it trains).
    Call before `compile`. `merge_lora` folds the update back.

    Args:
        task: `zoo.Translator` or `zoo.ImageClassifier`.
        rank: int. The rank of the update, at least 1.
        log: callable taking one line, or None. Defaults to `print`.

    Raises:
        ValueError: `rank` is not a positive int, or LoRA is already enabled.
    """
    from zoo.tasks.image_classifier import ImageClassifier

    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise ValueError(f"rank must be a positive int. Received: rank={rank!r}")
    model = task.model
    layers = lora_layers(model)
    if any(layer.lora_enabled for layer in layers):
        raise ValueError("LoRA is already enabled on this task's model; merge_lora(task) first.")
    before = {id(v) for v in model.weights}
    for layer in layers:
        layer.enable_lora(rank)
    head = {id(v) for v in model.head.weights} if isinstance(task, ImageClassifier) else set()
    frozen = [v for v in model.weights if id(v) in before and v.trainable and id(v) not in head]
    for variable in frozen:
        variable.trainable = False
    _LORA_FROZEN[model] = frozen
    trained = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    _say(log, f"LoRA rank {rank} on {len(layers)} projections{' (and the head)' if head else ''}: {trained:,} of "
              f"{model.count_params():,} parameters train, the rest are frozen")


def merge_lora(task, log=print):
    """Folds each LoRA update into its kernel (`W + (alpha / rank) A B`) and removes the LoRA weights.

    Afterwards the model holds the plain layers it had before `enable_lora`
    (same variables, no `lora_rank` in its config), and the weights that
    `enable_lora` froze train again. `Task.save` and `export` call this
    first. Returns the number of layers merged (0: nothing to do).
    """
    model = task.model
    layers = lora_layers(model, enabled=True)
    # `del layer.lora_kernel_a` (keras.Layer.__delattr__) untracks the variable, then runs a full
    # gc.collect() per variable: 58-73 s for transformer_base's 96 projections on a busy 2-core CPU. With
    # the objects that exist frozen (gc.freeze), each collection scans only those made since: 0.5-0.7 s,
    # as fast as untracking through Keras' private API and skipping __delattr__ was. Not when
    # the process froze objects of its own (a pre-fork server): unfreezing would hand those back too.
    freeze = gc.get_freeze_count() == 0
    if freeze:
        gc.freeze()
    try:
        for layer in layers:
            merged = keras.ops.convert_to_numpy(layer.kernel)  # Keras' kernel property adds the update
            del layer.lora_kernel_a, layer.lora_kernel_b
            layer.lora_enabled = False
            layer.lora_rank = None
            layer.lora_alpha = None
            layer.kernel.trainable = True  # the plain kernel variable, now that LoRA is off
            layer.kernel.assign(merged)
    finally:
        if freeze:
            gc.unfreeze()
    for variable in _LORA_FROZEN.pop(model, ()):
        variable.trainable = True
    if layers:
        _say(log, f"merged LoRA into the kernels of {len(layers)} projections")
        for cache in ("_graphs", "_searches", "_logits"):  # traced with the LoRA variables
            if isinstance(getattr(task, cache, None), dict):
                getattr(task, cache).clear()
    return len(layers)


def fine_tuning_optimizer(learning_rate, weight_decay=0.01):
    """AdamW at `learning_rate` with the tasks' one clipping rule (`GLOBAL_CLIPNORM`): what the tasks'
    `compile()` use by default."""
    return keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay, global_clipnorm=GLOBAL_CLIPNORM)
