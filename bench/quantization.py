"""int8 vs float32 exports, side by side: size, speed, quality, logit drift, where the time goes.

    python -m bench.quantization --translator runs/translation --classifier runs/vit
    TF_ENABLE_ONEDNN_OPTS=0 python -m bench.quantization --translator ... --classifier ...
    python -m bench.quantization --parts size,speed        # random transformer_tiny / vit_tiny_patch4_32

Exports each model three ways (`--sides`) into a temporary base:

- `float`: `task.export(base)`;
- `int8`: `task.export(base, quantize="int8")`, what zoo ships: int8 weights,
  float activations (`zoo.export.quantization`);
- `int8_dynamic`: Keras' default int8 mode on the same layers, which also
  quantizes activations at run time and multiplies int8 x int8 -> int32
  (`BatchMatMulV3`); measured to show why zoo does not ship it.

Parts (`--parts`):

- `size`: bytes on disk of each version folder, of its `variables/` and of
  its graph (`saved_model.pb`), and int8 / float;
- `speed`: the loaded SavedModel's `serving_default` (`tf.saved_model.load`,
  graph mode), the sides timed in alternating windows in one process:
  translator sentences/s (beam and length from the task, built-in test
  sentences) and ViT images/s (PNG bytes of the digits test split), at
  `--batch-sizes`;
- `quality`: BLEU and chrF (sacrebleu) of each translator export on the
  built-in test split, top-1 of each ViT export on the digits test split
  (needs trained `--translator` / `--classifier` task folders; random
  weights score nothing meaningful);
- `marian`: how far int8 logits move from float32 on a converted MarianMT
  checkpoint (`--marian DIR`, or the random reference the tests build,
  which needs torch and transformers): `bench/quantization_profile.py`;
- `profile`: where a batch of the translator export spends its time, per
  op kind, run as TF Serving runs it (a TF1 session over the SavedModel):
  `bench/quantization_profile.py`.

pip's TensorFlow runs oneDNN kernels on x86 unless `TF_ENABLE_ONEDNN_OPTS=0`;
TF Serving's oneDNN build is a separate recipe (`--config=mkl`), so the
second command above is likely the closer stand-in for a stock server (not
checked against the `tensorflow/serving` image). The report records which
was used. Results: BENCHMARKS.md, "int8 exports".
"""

import os
import tempfile

import numpy as np

from bench import common

SIDES = ("float", "int8", "int8_dynamic")
PARTS = ("size", "speed", "quality", "marian", "profile")


# -- the models and their exports -------------------------------------------------
def random_translator(preset="transformer_tiny", layers=None):
    """A random translator with WordPiece tokenizers from the built-in training pairs."""
    import keras

    from zoo.data import builtin_translation
    from zoo.decoding import SearchSettings
    from zoo.models import TransformerTranslator
    from zoo.tasks import Translator
    from zoo.text import WordPieceTokenizer

    pairs = builtin_translation.load_splits(num_pairs=3000)["train"]
    source = WordPieceTokenizer.from_corpus([s for s, _ in pairs], 1000, lowercase=False)
    target = WordPieceTokenizer.from_corpus([t for _, t in pairs], 1000, lowercase=False)
    keras.utils.set_random_seed(0)
    overrides = {"num_encoder_layers": layers, "num_decoder_layers": layers} if layers else {}
    model = TransformerTranslator.from_preset(
        preset, source_vocab_size=source.vocabulary_size, target_vocab_size=target.vocabulary_size,
        max_length=40, dropout=0.0, **overrides,
    )
    return Translator(model, source, target, SearchSettings(beam_width=4, max_length=40))


def random_classifier(preset="vit_tiny_patch4_32", layers=None):
    import keras

    from zoo.preprocessing import ImagePreprocessor
    from zoo.models import VisionTransformer
    from zoo.tasks import ImageClassifier

    keras.utils.set_random_seed(0)
    overrides = {"num_encoder_layers": layers} if layers else {}
    model = VisionTransformer.from_preset(preset, num_classes=10, **overrides)
    names = [str(i) for i in range(10)]
    return ImageClassifier(model, ImagePreprocessor(model.image_size, (0.5,) * 3, (0.5,) * 3, names))


def keras_default_int8(task):
    """The task with Keras' default int8 mode (int8 activations too) on zoo's quantizable layers."""
    from zoo.export.quantization import copy_model, is_quantizable

    model = copy_model(task.model)
    model.quantize("int8", filters=is_quantizable)
    if type(task).__name__ == "Translator":
        return type(task)(model, task.source_tokenizer, task.target_tokenizer, task.settings)
    return type(task)(model, task.preprocessor, task.top_k)


def export_sides(task, base, kind, sides=SIDES):
    """`{side: SavedModel path}` of `task` exported as each side, under `base`."""
    paths = {}
    for side in sides:
        if side == "float":
            paths[side] = task.export(base, name=kind)
        elif side == "int8":
            paths[side] = task.export(base, name=f"{kind}_int8", quantize="int8")
        elif side == "int8_dynamic":
            paths[side] = keras_default_int8(task).export(base, name=f"{kind}_int8_dynamic")
        else:
            raise ValueError(f"Unknown side {side!r}. Expected some of {SIDES}.")
    return paths


# -- inputs ------------------------------------------------------------------------
def test_sentences():
    from zoo.data.translation_data import load_translation_data

    return load_translation_data("builtin")["test"]


def digit_pngs():
    """The digits test split (8x8) as PNG bytes, with integer labels and class names."""
    import tensorflow as tf

    from zoo.data.image_data import load_builtin

    data = load_builtin()
    images, labels = data.test
    return [tf.io.encode_png(image).numpy() for image in images], labels, data.class_names


# -- parts -------------------------------------------------------------------------
def folder_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    return total


def sizes(paths):
    out = {}
    for side, path in paths.items():
        out[side] = {
            "total_bytes": folder_bytes(path),
            "variables_bytes": folder_bytes(os.path.join(path, "variables")),
            "graph_bytes": os.path.getsize(os.path.join(path, "saved_model.pb")),
        }
    if "float" in out:
        for side in list(out):
            if side != "float":
                out[f"{side}_over_float"] = {k: out[side][k] / out["float"][k] for k in out["float"]}
    return out


def speed(signatures, make_input, output_key, batch_sizes, args):
    """Units/s of each side's signature, alternating windows, per batch size."""
    out = {}
    for batch in batch_sizes:
        inputs = make_input(batch)

        def step(signature, inputs=inputs, batch=batch):
            signature(**inputs)[output_key].numpy()
            return batch

        steps = {side: (lambda s=signature: step(s)) for side, signature in signatures.items()}
        results = common.interleaved(steps, args.windows, args.window_seconds, args.warmup_steps)
        case = {"per_s": {side: r["per_s"] for side, r in results.items()}}
        if "float" in results:
            case["over_float"] = {side: common.ratio(results, side, "float") for side in results if side != "float"}
        out[f"batch_{batch}"] = case
    return out


def translation_quality(signatures, sentences, batch_size=64):
    import sacrebleu
    import tensorflow as tf

    sources, references = [s for s, _ in sentences], [t for _, t in sentences]
    out, hypotheses = {}, {}
    for side, signature in signatures.items():
        texts = []
        for start in range(0, len(sources), batch_size):
            batch = tf.constant(sources[start : start + batch_size])
            texts += [t.decode("utf-8") for t in signature(sentences=batch)["translations"].numpy()]
        hypotheses[side] = texts
        out[side] = {
            "bleu": sacrebleu.metrics.BLEU().corpus_score(texts, [references]).score,
            "chrf": sacrebleu.metrics.CHRF().corpus_score(texts, [references]).score,
        }
    for side in hypotheses:
        if side != "float" and "float" in hypotheses:
            same = sum(a == b for a, b in zip(hypotheses[side], hypotheses["float"]))
            out[side]["same_translation_as_float"] = same / len(sources)
            out[side]["bleu_minus_float"] = out[side]["bleu"] - out["float"]["bleu"]
    out["sentences"] = len(sources)
    return out


def image_quality(signatures, pngs, labels, class_names, batch_size=64):
    import tensorflow as tf

    out, predictions = {}, {}
    for side, signature in signatures.items():
        top = []
        for start in range(0, len(pngs), batch_size):
            result = signature(image_bytes=tf.constant(pngs[start : start + batch_size]))
            top += [label.decode("utf-8") for label in result["top_k_labels"].numpy()[:, 0]]
        predictions[side] = top
        out[side] = {"top1": float(np.mean([t == class_names[y] for t, y in zip(top, labels)]))}
    for side in predictions:
        if side != "float" and "float" in predictions:
            out[side]["same_top1_as_float"] = float(np.mean([a == b for a, b in zip(predictions[side], predictions["float"])]))
            out[side]["top1_minus_float"] = out[side]["top1"] - out["float"]["top1"]
    out["images"] = len(pngs)
    return out


# -- the run -----------------------------------------------------------------------
def load_task(kind, path, args):
    if kind == "translator":
        if path:
            from zoo.tasks import Translator

            return Translator.load(path)
        return random_translator(args.translator_preset, args.layers)
    if path:
        from zoo.tasks import ImageClassifier

        return ImageClassifier.load(path)
    return random_classifier(args.classifier_preset, args.layers)


def run_model(kind, task, base, args, parts, trained):
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  registers the tokenizer ops

    paths = export_sides(task, base, kind, args.sides)
    report = {"exports": paths}
    if "size" in parts:
        report["size"] = sizes(paths)
    signatures = {side: tf.saved_model.load(path).signatures["serving_default"] for side, path in paths.items()}
    if kind == "translator":
        pairs = test_sentences()
        if "speed" in parts:
            good = [s for s, _ in pairs[: max(args.batch_sizes)]]
            report["sentences_per_s"] = speed(
                signatures, lambda b: {"sentences": tf.constant(good[:b])}, "translations", args.batch_sizes, args
            )
        if "quality" in parts and trained:
            report["quality"] = translation_quality(signatures, pairs[: args.eval_sentences or None])
        if "profile" in parts:
            from bench.quantization_profile import profile_translator

            report["profile"] = profile_translator(paths, [s for s, _ in pairs[: args.profile_batch]], args.profile_runs)
    else:
        pngs, labels, class_names = digit_pngs()
        if "speed" in parts:
            report["images_per_s"] = speed(
                signatures, lambda b: {"image_bytes": tf.constant(pngs[:b])}, "top_k_scores", args.batch_sizes, args
            )
        if "quality" in parts and trained:
            report["quality"] = image_quality(signatures, pngs, labels, class_names)
    return report


def main(argv=None):
    parser = common.base_parser(__doc__.splitlines()[0], batch_size=32, windows=7, window_seconds=3.0)
    parser.add_argument("--translator", default=None, help="a zoo.Translator folder (or a recipe run folder)")
    parser.add_argument("--classifier", default=None, help="a zoo.ImageClassifier folder (or a recipe run folder)")
    parser.add_argument("--models", default="translator,classifier", help="comma list")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma list of {PARTS}")
    parser.add_argument("--sides", default=",".join(SIDES), help=f"comma list of {SIDES}")
    parser.add_argument("--batch-sizes", default="1,32", help="comma list")
    parser.add_argument("--eval-sentences", type=int, default=1000, help="test sentences for BLEU; 0: all")
    parser.add_argument("--marian", default=None, help="a MarianMT checkpoint folder (default: the tests' random one)")
    parser.add_argument("--profile-batch", type=int, default=32)
    parser.add_argument("--profile-runs", type=int, default=3)
    parser.add_argument("--translator-preset", default="transformer_tiny", help="without --translator")
    parser.add_argument("--classifier-preset", default="vit_tiny_patch4_32", help="without --classifier")
    parser.add_argument("--layers", type=int, default=None, help="layers of the random models (smoke tests)")
    args = parser.parse_args(argv)
    args.sides = tuple(args.sides.split(","))
    args.batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    parts = set(args.parts.split(","))
    unknown = parts - set(PARTS)
    if unknown:
        parser.error(f"unknown --parts {sorted(unknown)}; expected some of {PARTS}")
    report = {
        "benchmark": "quantization",
        "system": common.system_info(),
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on for x86 pip builds)"),
        "sides": list(args.sides),
    }
    with tempfile.TemporaryDirectory() as base:
        for kind in args.models.split(","):
            path = args.translator if kind == "translator" else args.classifier
            task = load_task(kind, path, args)
            report[kind] = {"task": path or f"random {args.translator_preset if kind == 'translator' else args.classifier_preset}"}
            report[kind].update(run_model(kind, task, base, args, parts, trained=path is not None))
    if "marian" in parts:
        from bench.quantization_profile import marian_drift

        report["marian_logit_drift"] = marian_drift(args.marian)
    return common.emit(report, args.json)


if __name__ == "__main__":
    main()
