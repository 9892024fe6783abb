"""Transfer, measured: fine-tuning a pretrained zoo task against training it from scratch.

    python -m bench.transfer vit --output runs/transfer            # 26 min on 2 busy CPU cores
    python -m bench.transfer translation --output runs/transfer    # 34 min, idem (3 epochs first)
    python -m bench.transfer all --smoke --output /tmp/transfer    # toy sizes, < 1 min (the test)

Two experiments on data that ships with the project, both through the task
objects and `zoo.tasks.fine_tuning` (what `train --init-from` uses):

1. `vit`: a `vit_tiny_patch4_32` `ImageClassifier` is pretrained on the
   built-in digits' classes 0-4 (`zoo.data.image_data.load_builtin`), then
   given a new head for classes 5-9 (`with_new_head`) and fine-tuned on a
   tenth of their training images (stratified, drawn by the seed); the same
   architecture from random weights trains on the same tenth for the same
   steps, with the same seed, optimizer, schedule and augmentation (the
   recipe's: AdamW, warm-up and cosine decay, random shifts and zooms).
   Test accuracy on classes 5-9's whole test split is measured every
   `--eval-every` steps for both; the curves go to `vit_transfer.png`.
   Each seed redraws the tenth, the new head, the scratch model's weights,
   the shuffling and the augmentation (the pretrained model is the same).
2. `translation` (`bench/transfer_translation.py`): a `transformer_tiny`
   `Translator` is trained on the built-in English-German corpus (the
   recipe's model, tokenizers and schedule, `--pretrain-epochs` epochs), or
   loaded with `--pretrained PATH` (e.g. the recipe's
   `runs/translation/model`), then fine-tuned on the train part of a
   shifted domain (`zoo.data.shifted_translation`: nouns the built-in
   corpus never uses) twice: all weights, and LoRA
   (`enable_lora`, merged with `merge_lora` before it is scored). BLEU and
   chrF (sacrebleu) on the shifted test part before and after, and on the
   built-in test split before and after (how much each forgets). The new
   words are tokenized by the built-in WordPiece vocabularies as sub-words
   (no new vocabulary); the report lists their pieces and any `[UNK]`.

Reports go to `<output>/vit_transfer.json` and `translation_transfer.json`
(with the wall time of each experiment and the load average before and
after); a markdown table is printed. Heavy runs stay out of the test suite:
`--smoke` runs both pipelines end to end at toy sizes.
"""

import argparse
import dataclasses
import os
import statistics
import time

import numpy as np

from bench import common
from bench.transfer_translation import load_average, run_translation

VIT_PRETRAIN_CLASSES = tuple(str(c) for c in range(5))
VIT_TRANSFER_CLASSES = tuple(str(c) for c in range(5, 10))
# Toy sizes for --smoke: the pipelines as they are, at a size that runs in seconds.
SMOKE_VIT = dict(image_size=8, patch_size=4, d_model=16, num_encoder_layers=1, num_heads=2, d_ff=32)


def _spread(values):
    """Mean, sample standard deviation (0 for one value), min and max."""
    values = [float(v) for v in values]
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
    }


# -- ViT on the digits -------------------------------------------------------------
def _tenth(labels, fraction, seed):
    """Sorted indices of `fraction` of each class's images (at least one), drawn by `seed`."""
    chosen = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        count = max(1, round(len(members) * fraction))
        chosen.append(np.random.default_rng([seed, int(c)]).choice(members, count, replace=False))
    return np.sort(np.concatenate(chosen))


def _subset(split, classes):
    images, labels = split
    names = np.asarray([str(label) for label in labels])
    keep = np.isin(names, classes)
    return images[keep], names[keep]


class _AccuracyCurve:
    """Test accuracy of a classifier's model on prepared inputs, at step 0 and after every epoch."""

    def __init__(self, classifier, images, names, steps_per_epoch):
        import keras

        self.inputs = classifier.prepare(images)["inputs"]
        self.labels = np.asarray([classifier.class_names.index(n) for n in names])
        self.steps_per_epoch = steps_per_epoch
        self.points = [(0, self.accuracy(classifier.model))]
        curve = self

        class Callback(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                curve.points.append(((epoch + 1) * curve.steps_per_epoch, curve.accuracy(self.model)))

        self.callback = Callback()

    def accuracy(self, model):
        from keras import ops

        logits = ops.convert_to_numpy(model(self.inputs, training=False))
        return float(np.mean(np.argmax(logits, -1) == self.labels))


def _vit_config(args):
    from recipes.image_classification import ImageClassificationConfig

    return ImageClassificationConfig(batch_size=args.batch_size, learning_rate=args.learning_rate, seed=0)


def _vit_model(args, num_classes):
    from zoo.models import VisionTransformer

    return VisionTransformer.from_preset(
        "vit_tiny_patch4_32", num_classes=num_classes, **(SMOKE_VIT if args.smoke else {}))


def _compile(model, config, epochs, steps_per_epoch, warmup_epochs):
    from recipes.image_classification import compile_model

    compile_model(model, dataclasses.replace(config, epochs=epochs, warmup_epochs=warmup_epochs), steps_per_epoch)


def pretrain_classifier(args, data):
    """A classifier of classes 0-4 trained on their training images (the recipe's optimizer and augmentation)."""
    import zoo
    from recipes.image_classification import augmenter, image_preprocessor
    from recipes.training import seed_everything

    seed_everything(0)
    config = _vit_config(args)
    images, names = _subset(data.train, VIT_PRETRAIN_CLASSES)
    model = _vit_model(args, len(VIT_PRETRAIN_CLASSES))
    size = model.image_size if isinstance(model.image_size, int) else model.image_size[0]
    preprocessor = image_preprocessor(dataclasses.replace(config, image_size=size), list(VIT_PRETRAIN_CLASSES))
    classifier = zoo.ImageClassifier(model, preprocessor)
    steps = args.steps_per_epoch or -(-len(names) // args.batch_size)
    _compile(model, config, args.pretrain_epochs, steps, min(3, args.pretrain_epochs - 1))
    classifier.fit(images, names, epochs=args.pretrain_epochs, batch_size=args.batch_size,
                   augment=augmenter(config), seed=0, verbose=2, steps_per_epoch=args.steps_per_epoch)
    test_images, test_names = _subset(data.test, VIT_PRETRAIN_CLASSES)
    predicted = classifier.predict(test_images, top_k=1)["top_k_labels"][:, 0]
    return classifier, float(np.mean(predicted == test_names))


def transfer_run(args, data, pretrained, seed):
    """Fine-tuned and from-scratch accuracy curves on classes 5-9 for one seed."""
    import zoo
    from recipes.image_classification import augmenter
    from recipes.training import seed_everything
    from zoo.tasks.fine_tuning import with_new_head

    config = _vit_config(args)
    images, names = _subset(data.train, VIT_TRANSFER_CLASSES)
    few = _tenth(names, args.fraction, seed)
    images, names = images[few], names[few]
    test_images, test_names = _subset(data.test, VIT_TRANSFER_CLASSES)
    epochs = args.steps // args.eval_every
    curves = {}
    for kind in ("fine_tuned", "scratch"):
        seed_everything(seed)
        if kind == "fine_tuned":
            classifier = with_new_head(pretrained, VIT_TRANSFER_CLASSES)
        else:
            model = _vit_model(args, len(VIT_TRANSFER_CLASSES))
            preprocessor = pretrained.preprocessor.replace(class_names=VIT_TRANSFER_CLASSES)
            classifier = zoo.ImageClassifier(model, preprocessor, top_k=pretrained.top_k)
        _compile(classifier.model, config, epochs, args.eval_every, max(1, epochs // 10))
        curve = _AccuracyCurve(classifier, test_images, test_names, args.eval_every)
        started = time.time()
        classifier.fit(images, names, epochs=epochs, steps_per_epoch=args.eval_every, batch_size=args.batch_size,
                       augment=augmenter(config), seed=seed, callbacks=[curve.callback], verbose=0)
        curves[kind] = {"steps": [s for s, _ in curve.points], "accuracy": [a for _, a in curve.points],
                        "seconds": time.time() - started}
        print(f"seed {seed} {kind}: test accuracy {curve.points[-1][1]:.3f} after {curve.points[-1][0]} steps")
    return {"seed": seed, "train_images": len(names), "test_images": len(test_names), **curves}


def plot_curves(runs, path):
    """Test accuracy against steps, fine-tuned vs from scratch: each seed thin, the mean thick."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    for kind, color in (("fine_tuned", "tab:blue"), ("scratch", "tab:orange")):
        steps = runs[0][kind]["steps"]
        for run in runs:
            ax.plot(steps, run[kind]["accuracy"], color=color, alpha=0.3, linewidth=1)
        mean = np.mean([run[kind]["accuracy"] for run in runs], axis=0)
        label = "fine-tuned from classes 0-4" if kind == "fine_tuned" else "from scratch"
        ax.plot(steps, mean, color=color, linewidth=2.5, label=f"{label} (mean of {len(runs)} seeds)")
    ax.set_xlabel("training step")
    ax.set_ylabel("test accuracy, classes 5-9")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title(f"ViT on digits 5-9, {runs[0]['train_images']} training images")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def run_vit(args):
    from zoo.data.image_data import load_builtin

    started, load_before = time.time(), load_average()
    data = load_builtin()
    if args.pretrained:
        from zoo.tasks.fine_tuning import load_pretrained

        pretrained, pretrain_accuracy = load_pretrained(args.pretrained), None
    else:
        pretrained, pretrain_accuracy = pretrain_classifier(args, data)
        pretrained.save(os.path.join(args.output, "vit_pretrained"), overwrite=True)
    runs = [transfer_run(args, data, pretrained, seed) for seed in args.seeds]
    final = {kind: _spread([run[kind]["accuracy"][-1] for run in runs]) for kind in ("fine_tuned", "scratch")}
    report = {
        "benchmark": "transfer_vit",
        "command": "python -m bench.transfer " + " ".join(args.argv),
        "system": common.system_info(),
        "pretrain": {"classes": VIT_PRETRAIN_CLASSES, "epochs": None if args.pretrained else args.pretrain_epochs,
                     "from": args.pretrained, "test_accuracy_classes_0_4": pretrain_accuracy},
        "transfer": {"classes": VIT_TRANSFER_CLASSES, "fraction": args.fraction, "steps": args.steps,
                     "batch_size": args.batch_size, "learning_rate": args.learning_rate, "seeds": args.seeds},
        "final_test_accuracy": final,
        "runs": runs,
        "plot": plot_curves(runs, os.path.join(args.output, "vit_transfer.png")),
        "wall_seconds": time.time() - started,
        "load_average_before": load_before,
        "load_average_after": load_average(),
    }
    return common.emit(report, os.path.join(args.output, "vit_transfer.json"))


# -- command line ------------------------------------------------------------------------
def markdown(vit=None, translation=None):
    """The README / BENCHMARKS tables of the reports."""
    lines = []
    if vit:
        final = vit["final_test_accuracy"]
        lines += ["| classes 5-9, a tenth of their images | test accuracy, mean ± std (min-max) |", "|---|---|"]
        for kind, label in (("fine_tuned", "fine-tuned from classes 0-4"), ("scratch", "from scratch")):
            f = final[kind]
            lines.append(f"| {label} | {f['mean']:.3f} ± {f['std']:.3f} ({f['min']:.3f}-{f['max']:.3f}) |")
        lines.append("")
    if translation:
        lines += ["| model | shifted test BLEU / chrF | built-in test BLEU / chrF |", "|---|---|---|"]
        for name, result in translation["results"].items():
            s, b = result["shifted_test"], result["builtin_test"]
            lines.append(f"| {name} | {s['bleu']:.1f} / {s['chrf']:.1f} | {b['bleu']:.1f} / {b['chrf']:.1f} |")
    text = "\n".join(lines)
    print(text)
    return text


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment", choices=("vit", "translation", "all"))
    parser.add_argument("--output", default="runs/transfer", help="folder for the reports, plot and pretrained tasks")
    parser.add_argument("--smoke", action="store_true", help="toy sizes: the pipelines end to end in seconds")
    parser.add_argument("--pretrained", default=None,
                        help="a task folder to fine-tune instead of pretraining one (one experiment only)")
    parser.add_argument("--pretrain-epochs", type=int, default=None, help="vit: 20, translation: 3")
    parser.add_argument("--steps-per-epoch", type=int, default=None, help="batches per epoch (smoke)")
    vit = parser.add_argument_group("vit")
    vit.add_argument("--seeds", type=int, nargs="+", default=None, help="[0, 1]; [0] with --smoke")
    vit.add_argument("--fraction", type=float, default=0.1, help="of classes 5-9's training images")
    vit.add_argument("--steps", type=int, default=150, help="training steps of each transfer run")
    vit.add_argument("--eval-every", type=int, default=10, help="steps between test accuracy points")
    vit.add_argument("--batch-size", type=int, default=32)
    vit.add_argument("--learning-rate", type=float, default=None,
                     help="vit: peak rate of both runs (1e-3, the recipe's); translation: full fine-tuning (1e-4)")
    text = parser.add_argument_group("translation")
    text.add_argument("--lora-rank", type=int, default=8)
    text.add_argument("--lora-learning-rate", type=float, default=1e-3)
    text.add_argument("--fine-tune-epochs", type=int, default=10)
    text.add_argument("--fine-tune-batch-size", type=int, default=16)
    text.add_argument("--shifted-pairs", type=int, default=400)
    text.add_argument("--shifted-test-pairs", type=int, default=100)
    text.add_argument("--eval-sentences", type=int, default=500, help="built-in test sentences scored")
    text.add_argument("--beam-width", type=int, default=4)
    args = parser.parse_args(argv)
    if args.smoke:
        args.steps_per_epoch = args.steps_per_epoch or 2
        args.steps, args.eval_every, args.batch_size = 4, 2, 8
        args.fine_tune_epochs, args.shifted_pairs, args.shifted_test_pairs = 1, 40, 8
        args.eval_sentences, args.beam_width = 8, 1
    args.seeds = args.seeds or ([0] if args.smoke else [0, 1])
    if args.pretrained and args.experiment == "all":
        parser.error("--pretrained names one experiment's task: run vit or translation, not all")
    if args.steps < args.eval_every:
        parser.error(f"--steps must be at least --eval-every. Received: {args.steps} < {args.eval_every}")
    return args


def main(argv=None):
    import sys

    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse(argv)
    args.argv = argv
    os.makedirs(args.output, exist_ok=True)
    reports = {}
    for name, run, pretrain_epochs, learning_rate in (("vit", run_vit, 20, 1e-3),
                                                      ("translation", run_translation, 3, 1e-4)):
        if args.experiment in (name, "all"):
            experiment = argparse.Namespace(**vars(args))
            experiment.pretrain_epochs = 1 if args.smoke else (args.pretrain_epochs or pretrain_epochs)
            experiment.learning_rate = args.learning_rate or learning_rate
            reports[name] = run(experiment)
    reports["markdown"] = markdown(reports.get("vit"), reports.get("translation"))
    return reports


if __name__ == "__main__":
    main()
