"""Train, evaluate and export a Vision Transformer classifier with one command.

    python -m recipes.image_classification train --output runs/vit

trains `vit_tiny_patch4_32` on the built-in handwritten digits (scikit-learn's
bundled scans, upscaled to 32x32; about 10 minutes on 2 CPU cores, see
README for the measured accuracy), saves it as a `zoo.ImageClassifier`
folder (`runs/vit/model`: model, preprocessing, class names), evaluates
top-1/top-5 on the test split, draws a confusion matrix, class-token
attention maps and attention rollouts (misclassified images first), and
exports a SavedModel for TF Serving. Running the same command again after
an interruption resumes where it stopped; on a finished run it changes
nothing (`train --help`, `recipes.run_folder`). Other subcommands:

    python -m recipes.image_classification evaluate --output runs/vit
    python -m recipes.image_classification export --output runs/vit
    python -m recipes.image_classification classify --model runs/vit/export/image_classifier/1 digit.png
    python -m recipes.image_classification classify --model runs/vit/model digit.png

`evaluate` and `export` read `<output>/model` (or, for runs trained before
task folders, `model.keras` and `class_names.json` in `<output>`); `--top-k`
overrides its saved setting. Images are decoded, resized and normalised by
the classifier's `zoo.preprocessing.ImagePreprocessor` in training,
evaluation and the export alike (the 8x8 digits upsampled to `--image-size`).
Data: `--data builtin` (default), `--data folder:PATH` (one sub-folder per
class), `--data tfds:cifar10`. The built-in digits are white strokes on
black, thick and filling the frame; `classify --help` says what that means
for your own images.
"""

import dataclasses
import functools
import json
import os
import sys

from recipes import commands, common, devices, fine_tune, trained_model, training

CONFIG_FILE = "config.json"
# What a run writes besides the files every run has (recipes.run_folder.RUN_FILES); model.keras and
# class_names.json: runs from before task folders.
ARTIFACTS = ("confusion_matrix.png", "attention_maps.png", "attention_rollout.png", "model.keras", "class_names.json")


PRESETS = functools.partial(common.preset_names, "vision_transformer_presets")
IMAGE_SIZE = 32  # the built-in digits' 8x8 scans, upsampled
SCRATCH_LEARNING_RATE = 1e-3
# zoo.ImageClassifier.compile's fine-tuning rate (keras-hub's and transformers' default).
FINE_TUNING_LEARNING_RATE = 5e-5


@dataclasses.dataclass
class ImageClassificationConfig:
    """Everything a run depends on; saved as `<output>/config.json`."""

    preset: str = common.option("vit_tiny_patch4_32", "model size", choices=PRESETS)
    data: str = common.option(
        "builtin", "builtin (scikit-learn's 8x8 digit scans), folder:PATH (one sub-folder per class) or "
        "tfds:NAME (e.g. tfds:cifar10)",
        parse=common.data_spec("builtin", "folder:PATH", "tfds:NAME"))
    output: str = common.option("runs/image_classification", "run directory: config, model, metrics, plots, exports")
    image_size: int | None = common.option(
        None, "side of the square images the model takes, in pixels; none: 32, or the --init-from checkpoint's "
        "(another size resamples its position table)", minimum=1)
    # ~18 s each on 2 CPU cores; ViTs need many epochs on small data.
    epochs: int = common.option(30, "training epochs at most (early stopping may end sooner)", minimum=1)
    batch_size: int = common.option(64, "images per batch", minimum=1)
    learning_rate: float | None = common.option(
        None, "peak learning rate (warm-up, then cosine decay); "
        + fine_tune.learning_rate_help(SCRATCH_LEARNING_RATE, FINE_TUNING_LEARNING_RATE), minimum=0.0)
    weight_decay: float = common.option(0.05, "AdamW weight decay, as DeiT", minimum=0.0)
    warmup_epochs: int = common.option(3, "epochs of linear learning-rate warm-up", minimum=0)
    label_smoothing: float = common.option(0.1, "label smoothing of the loss", minimum=0.0)
    # Off by default: under tf.distribute, Keras clips each replica's
    # gradients before they are summed, so clipping changes results with the
    # number of replicas (measured in tests/recipes).
    gradient_clip_norm: float = common.option(0.0, "global gradient norm clip; 0: off", minimum=0.0)
    random_crop: bool = common.option(True, "augment with random shifts and zooms")
    # Off: digits are not mirror-symmetric; turn on for photos.
    random_flip: bool = common.option(False, "augment with horizontal flips")
    rand_augment: bool = common.option(False, "augment with Keras' RandAugment")
    mixup_alpha: float = common.option(0.0, "MixUp alpha; 0: off", minimum=0.0)
    cutmix_alpha: float = common.option(0.0, "CutMix alpha; 0: off", minimum=0.0)
    dropout: float | None = common.option(None, "dropout rate; none: the preset's", minimum=0.0)
    drop_path_rate: float | None = common.option(None, "stochastic depth rate; none: the preset's", minimum=0.0)
    patience: int = common.option(10, "epochs without a lower validation loss before stopping", minimum=1)
    mixed_precision: str = common.option("auto", devices.PRECISION_HELP, choices=devices.PRECISIONS)
    strict: bool = common.option(False, "stop at the first image file that does not decode instead of skipping it")
    distribute: str = common.option("none", devices.DISTRIBUTE_HELP, choices=devices.DISTRIBUTE)
    mesh: str | None = common.option(None, devices.MESH_HELP)
    top_k: int = common.option(5, "labels returned per image by the export", minimum=1)
    quantize: str = common.option("none", common.quantize_help("image_classifier"), choices=common.QUANTIZE)
    steps_per_epoch: int | None = common.option(None, "batches per epoch (smoke tests); none: the whole set", minimum=1)
    init_from: str | None = common.option(None, fine_tune.INIT_FROM_HELP)
    architecture: str | None = common.option(None, fine_tune.ARCHITECTURE_HELP)
    freeze_backbone: bool = common.option(False, fine_tune.FREEZE_HELP)
    lora_rank: int | None = common.option(None, fine_tune.LORA_HELP, minimum=1)
    seed: int = common.option(0, "random seed (initialisation, shuffling, augmentation)")
    determinism: str = common.option("auto", common.DETERMINISM_HELP, choices=common.DETERMINISM)


def augmenter(config):
    """Keras preprocessing layers applied to training batches (images in [0, 1])."""
    import keras

    # float32 under any --mixed-precision: Keras' MixUp and CutMix fail under
    # a mixed policy (float32 mixing weights times bfloat16 images).
    f32 = dict(dtype="float32")
    layers = []
    if config.random_crop:
        layers += [
            keras.layers.RandomTranslation(0.1, 0.1, fill_mode="constant", **f32),
            keras.layers.RandomZoom(0.1, **f32),
        ]
    if config.random_flip:
        layers.append(keras.layers.RandomFlip("horizontal", **f32))
    if config.rand_augment:
        layers.append(keras.layers.RandAugment(value_range=(0, 1), **f32))
    if config.mixup_alpha > 0:
        layers.append(keras.layers.MixUp(alpha=config.mixup_alpha, **f32))
    if config.cutmix_alpha > 0:
        layers.append(keras.layers.CutMix(factor=config.cutmix_alpha, **f32))
    if not layers:
        return None
    pipeline = keras.layers.Pipeline(layers)
    # The dict form carries labels through, and lets MixUp/CutMix mix them.
    return lambda batch: pipeline(batch, training=True)


def image_preprocessor(config, class_names):
    """The run's `zoo.preprocessing.ImagePreprocessor`: its image size, zoo's default mean/std, the data's
    class names."""
    from zoo.preprocessing import ImagePreprocessor
    from zoo.preprocessing.image_preprocessor import DEFAULT_MEAN, DEFAULT_STD

    return ImagePreprocessor(config.image_size or IMAGE_SIZE, DEFAULT_MEAN, DEFAULT_STD, class_names)


def load_run(config, preprocessor=None, data=None):
    """The run's data and its train / validation batches, made by the classifier's preprocessor
    (decode, resize; augmentation on training batches; normalise): `preprocessor`, else a new one."""
    from zoo.data.image_data import image_dataset, load_image_data

    data = load_image_data(config.data, strict=config.strict) if data is None else data
    preprocessor = image_preprocessor(config, data.class_names) if preprocessor is None else preprocessor
    batches = {}
    for split in ("train", "validation"):
        images, labels = getattr(data, split)
        training = split == "train"
        ds = image_dataset(images, labels, shuffle=training, seed=config.seed)
        batches[split] = preprocessor.batches(ds, config.batch_size, augment=augmenter(config) if training else None)
        print(f"{split}: {len(labels)} images, {data.num_classes} classes")
    return data, batches


def model_config(config, num_classes):
    """The model's config: the preset's, with the data's classes and the run's overrides."""
    from zoo.models.presets import preset_config
    from zoo.models.vision_transformer_presets import VISION_TRANSFORMER_PRESETS

    overrides = dict(num_classes=num_classes, image_size=config.image_size or IMAGE_SIZE)
    if config.dropout is not None:
        overrides["dropout"] = config.dropout
    if config.drop_path_rate is not None:
        overrides["drop_path_rate"] = config.drop_path_rate
    return preset_config(VISION_TRANSFORMER_PRESETS, config.preset, overrides, "VisionTransformer")


def build_model(config, num_classes):
    from zoo.models import VisionTransformer

    return VisionTransformer(**model_config(config, num_classes))


def compile_model(model, config, steps_per_epoch):
    import keras

    total = max(config.epochs * steps_per_epoch, 1)
    warmup = min(config.warmup_epochs * steps_per_epoch, total - 1)
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=total - warmup, warmup_steps=warmup,
        warmup_target=fine_tune.learning_rate(config, SCRATCH_LEARNING_RATE, FINE_TUNING_LEARNING_RATE),
    )
    model.compile(
        optimizer=keras.optimizers.AdamW(
            schedule, weight_decay=config.weight_decay, global_clipnorm=config.gradient_clip_norm or None
        ),
        loss=keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=config.label_smoothing),
        metrics=[
            keras.metrics.CategoricalAccuracy(name="accuracy"),
            keras.metrics.TopKCategoricalAccuracy(k=min(5, model.num_classes), name="top5"),
        ],
    )


def train(config, run):
    """Trains the run's classifier (new, resumed or continued), evaluates and exports it (`RunFolder.train`)."""
    return run.train(lambda: train_classifier(config, run),
                     evaluate=lambda classifier, data: evaluate(config, classifier=classifier, data=data),
                     export=lambda classifier: export(config, classifier=classifier))


def train_classifier(config, run):
    """Trains (or, with `--init-from`, fine-tunes) and saves the run's `zoo.ImageClassifier`; returns it and the data."""
    import zoo
    from zoo.data.image_data import load_image_data
    from zoo.models import VisionTransformer

    fine_tune.check_flags(config)
    devices.start(config)  # before anything touches a device (a JAX cluster joins first)
    # Seeded before the checkpoint loads: its dropout seeds, a new head and LoRA start alike in every (re)start.
    print(f"op determinism: {'on' if training.seed_everything(config.seed, config.determinism) else 'off'}")
    pretrained = fine_tune.load_checkpoint(config, zoo.ImageClassifier) if config.init_from else None
    data = load_image_data(config.data, strict=config.strict)  # read and checked before anything is written
    if pretrained is not None:
        pretrained, data = fine_tuned(config, pretrained, data)
    os.makedirs(config.output, exist_ok=True)
    print(f"precision: {devices.set_precision(config.mixed_precision)}")
    preprocessor = image_preprocessor(config, data.class_names) if pretrained is None else pretrained.preprocessor
    data, batches = load_run(config, preprocessor, data)
    steps = config.steps_per_epoch or -(-len(data.train[1]) // config.batch_size)
    architecture = model_config(config, data.num_classes) if pretrained is None else pretrained.model.get_config()
    with devices.training_scope(config, VisionTransformer, architecture) as engine:
        if pretrained is None:
            model = VisionTransformer(**architecture)
        else:
            model = fine_tune.in_scope(pretrained, config)
        compile_model(model, config, steps)
        training.fit(model, batches["train"], batches["validation"], config, run, engine)
    classifier = zoo.ImageClassifier(model, preprocessor, config.top_k)
    run.save_task(classifier)
    return classifier, data


def fine_tuned(config, classifier, data):
    """The `--init-from` classifier made ready for the run's data: its classes (a new head when they
    differ), `--image-size`; returns it and the data, labels in the classifier's class order."""
    from zoo.tasks.fine_tuning import with_image_size, with_new_head

    channels = classifier.model.num_channels
    if channels != 3:
        raise ValueError(f"--init-from {config.init_from}: its ViT reads {channels} channel(s) per pixel, fewer than "
                         "the 3 (RGB) every image is decoded to. Expected a checkpoint with num_channels=3.")
    if set(data.class_names) == set(classifier.class_names):
        data = fine_tune.align_classes(data, classifier.class_names, f"--init-from {config.init_from}")
    else:
        classifier = with_new_head(classifier, data.class_names)
    if config.image_size and (config.image_size,) * 2 != tuple(classifier.preprocessor.image_size):
        classifier = with_image_size(classifier, config.image_size)
    return classifier, data


def load_classifier(config):
    """The run's `zoo.ImageClassifier` (before it is trained, the `--init-from` checkpoint), with config.json's
    and the flags' `top_k`."""
    import zoo

    if config.init_from and not trained_model.has_task(config.output):
        classifier = fine_tune.load_checkpoint(config, zoo.ImageClassifier)
        if config.image_size and (config.image_size,) * 2 != tuple(classifier.preprocessor.image_size):
            from zoo.tasks.fine_tuning import with_image_size

            classifier = with_image_size(classifier, config.image_size)
    else:
        classifier = trained_model.load_task(zoo.ImageClassifier, config.output, "image_classification")
    if classifier.top_k == config.top_k:
        return classifier
    return zoo.ImageClassifier(classifier.model, classifier.preprocessor, config.top_k)


def evaluate(config, classifier=None, data=None):
    """Top-1/top-k accuracy on the test split, a confusion matrix, attention maps and rollouts.

    The test images run through the export's graph (`classifier.predict`
    in batches; arrays as `[0, 1]` pixels): the same preprocessing and model
    as a served PNG of the image, without encoding and decoding each one.
    """
    import numpy as np
    import tensorflow as tf

    from zoo.data.image_data import load_image_data
    from zoo.plots import plot_attention_maps, plot_confusion_matrix, plot_rollout_grid

    classifier = load_classifier(config) if classifier is None else classifier
    data = load_image_data(config.data, strict=config.strict) if data is None else data
    data = fine_tune.align_classes(data, classifier.class_names, "the classifier")
    os.makedirs(config.output, exist_ok=True)  # evaluate --init-from: a run folder not trained yet
    images, labels = data.test

    def probabilities_of(chunk):  # encoded bytes as they are; uint8 to [0, 1] pixels with the export's op
        chunk = list(chunk) if chunk.dtype == object else tf.image.convert_image_dtype(chunk, tf.float32).numpy()
        return classifier.predict(chunk, batch_size=config.batch_size)["probabilities"]

    probabilities = np.concatenate([probabilities_of(images[i : i + 1024]) for i in range(0, len(images), 1024)])
    k = min(config.top_k, probabilities.shape[1])
    top_k = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]  # (N, k) class indices
    metrics = {
        "top1": round(float((top_k[:, 0] == labels).mean()), 4),
        f"top{k}": round(float((top_k == labels[:, None]).any(axis=1).mean()), 4),
        "test_images": int(len(labels)),
    }
    print(json.dumps(metrics, indent=2))
    with open(os.path.join(config.output, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    names = classifier.class_names
    plot_confusion_matrix(labels, top_k[:, 0], names, os.path.join(config.output, "confusion_matrix.png"))
    plot_attention_maps(classifier, images[:6], os.path.join(config.output, "attention_maps.png"),
                        [names[i] for i in labels[:6]], [names[i] for i in top_k[:6, 0]])
    # Rollout over all layers, misclassified test images first (rollouts only for the 8 drawn).
    plot_rollout_grid(classifier, list(images), labels, os.path.join(config.output, "attention_rollout.png"),
                      predicted_labels=top_k[:, 0], count=8, batch_size=config.batch_size)
    return metrics


def export(config, classifier=None):
    """Writes the next version of `<output>/export/image_classifier/` (`image_classifier_int8/` with
    `--quantize int8`)."""
    classifier = load_classifier(config) if classifier is None else classifier
    path = classifier.export(os.path.join(config.output, "export"), quantize=common.quantize_mode(config))
    print(f"exported {path}")
    return path


def classifier_function(model_path):
    """`list of image bytes -> outputs` for an export directory or a task folder.

    An export runs as TF Serving would (its `serving_default`); a task
    folder runs `zoo.ImageClassifier.predict`, the same graph in process.
    """
    kind, path = trained_model.task_or_export(
        model_path, "runs/image_classification/model", "runs/image_classification/export/image_classifier/1",
        "image_bytes",
    )
    if kind == "task":
        import zoo

        return zoo.ImageClassifier.load(path).predict
    from zoo.tasks.image_classifier_graph import classify_with_saved_model

    return lambda images: classify_with_saved_model(path, images)


def classify(model_path, paths):
    """Classifies image files with an export (as TF Serving would) or a task folder; one line per path, in order.

    A file that cannot be read gets a `cannot read` line, one the model
    refuses an `invalid image` line with the reason it gives (too large, not
    decodable), and the others are still classified. Returns `(lines,
    unreadable count)`.
    """
    run = classifier_function(model_path)
    contents = {}
    for path in paths:
        try:
            with open(path, "rb") as f:
                contents[path] = f.read()
        except OSError as e:
            contents[path] = e
    readable = [path for path in paths if isinstance(contents[path], bytes)]
    outputs = run([contents[p] for p in readable]) if readable else {}
    results = {path: i for i, path in enumerate(readable)}
    lines = []
    for path in paths:
        if path not in results:
            lines.append(f"{path}\tcannot read: {contents[path].strerror or contents[path]}")
            continue
        i = results[path]
        if not outputs["valid"][i]:
            reason = outputs["reason"][i] if "reason" in outputs else ""  # exports from before the reason output
            reason = reason.decode("utf-8", "replace") if isinstance(reason, bytes) else str(reason)
            lines.append(f"{path}\tinvalid image" + (f": {reason}" if reason else ""))
            continue
        labels, scores = outputs["top_k_labels"][i], outputs["top_k_scores"][i]
        labels = [label.decode() if isinstance(label, bytes) else str(label) for label in labels]
        lines.append(f"{path}\t" + ", ".join(f"{label} {score:.3f}" for label, score in zip(labels, scores)))
    return lines, len(paths) - len(readable)


CLASSIFY_HELP = (
    "Classify image files with an exported SavedModel, as TF Serving would, or with a saved "
    "zoo.ImageClassifier folder (the same graph, in process): one line per image, "
    "'path<TAB>label score, ...' with the top labels first. JPEG, PNG, GIF or BMP of any size; the "
    "export resizes them to the model's size. A model trained on the built-in digits expects what "
    "scikit-learn's scans look like: a white (bright) digit on a black background, with thick strokes, "
    "filling the frame. A thin dark digit drawn on white paper is out of that distribution and is "
    "misread: invert it and crop it to the digit first."
)


def parse_args(argv):
    parser, sub = common.recipe_parser(
        "python -m recipes.image_classification", __doc__, ImageClassificationConfig,
        {
            "train": "Train an image classifier, then evaluate and export it.",
            "evaluate": "Top-1/top-k accuracy of a trained run on the test split, a confusion matrix, "
                        "attention maps and attention rollouts (true and predicted labels above each image).",
            "export": "Write the next TF Serving version of a trained run to <output>/export/image_classifier/ "
                      "(image_classifier_int8/ with --quantize int8).",
        },
    )
    classify_parser = common.add_command(sub, "classify", CLASSIFY_HELP)
    classify_parser.add_argument(
        "--model", required=True,
        help="export directory: a version (runs/image_classification/export/image_classifier/1) or the "
             "directory holding versions (its highest version is used); or a task folder "
             "(runs/image_classification/model)")
    classify_parser.add_argument("images", nargs="+", help="image files")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    with common.command_line(args.verbose):
        if args.command == "classify":
            common.import_tensorflow(args.verbose)
            lines, unreadable = classify(args.model, args.images)
            print("\n".join(lines))
            if unreadable:
                raise FileNotFoundError(f"{unreadable} of {len(args.images)} image files could not be read")
            return None
        handlers = {"train": train, "evaluate": evaluate, "export": export}
        return commands.run_command(args, ImageClassificationConfig, handlers, "image_classification", CONFIG_FILE,
                                    ARTIFACTS)


if __name__ == "__main__":
    main()
