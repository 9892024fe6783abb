"""Train, evaluate and export a Transformer translator with one command.

    python -m recipes.translation train --output runs/translation

trains `transformer_tiny` on the built-in English-German corpus (12-15
minutes on 2 CPU cores; see README for the measured time and BLEU), saves
it as a `zoo.Translator` folder (`runs/translation/model`: model,
tokenizers, decoding settings), evaluates it on the test split with
sacrebleu, plots a cross-attention map and exports a SavedModel for TF
Serving. Running the same command again after an interruption resumes
where it stopped; on a finished run it changes nothing (`train --help`,
`recipes.run_folder`). Other subcommands:

    python -m recipes.translation evaluate --output runs/translation
    python -m recipes.translation export --output runs/translation
    python -m recipes.translation translate --model runs/translation/export/translator/1 "I buy three apples."
    python -m recipes.translation translate --model runs/translation/model "I buy three apples."

`evaluate` and `export` read `<output>/model` (or, for runs trained before
task folders, `model.keras` and the tokenizers in `<output>`); decoding
flags (`--beam-width`, `--length-penalty`) override its saved settings.
`python -m recipes.translation COMMAND --help` lists each command's flags.
Data: `--data builtin` (default), `--data tsv:PATH` (source<TAB>target
lines; bad lines skipped and reported unless `--strict`),
`--data tfds:ted_hrlr_translate/pt_to_en`.
"""

import dataclasses
import functools
import itertools
import json
import os
import sys
import time

from recipes import commands, common, devices, fine_tune, trained_model, training

CONFIG_FILE = "config.json"
# What a run writes besides the files every run has (recipes.run_folder.RUN_FILES); model.keras: runs
# from before task folders.
ARTIFACTS = ("source_tokenizer", "target_tokenizer", "cross_attention.png", "model.keras")


PRESETS = functools.partial(common.preset_names, "transformer_translator_presets")
# zoo.Translator.compile's fine-tuning rate (keras-hub's Seq2SeqLM and the HF translation examples).
FINE_TUNING_LEARNING_RATE = 2e-5


@dataclasses.dataclass
class TranslationConfig:
    """Everything a run depends on; saved as `<output>/config.json`."""

    preset: str = common.option("transformer_tiny", "model size", choices=PRESETS)
    data: str = common.option(
        "builtin", "builtin (offline English-German), tsv:PATH (source<TAB>target lines; extra columns "
        "ignored) or tfds:NAME (e.g. tfds:ted_hrlr_translate/pt_to_en)",
        parse=common.data_spec("builtin", "tsv:PATH", "tfds:NAME"))
    output: str = common.option("runs/translation", "run directory: config, vocabularies, model, metrics, exports")
    epochs: int = common.option(8, "training epochs at most (early stopping may end sooner)", minimum=1)
    batch_size: int = common.option(64, "sentence pairs per batch", minimum=1)
    # The built-in corpus tops out near 30 tokens.
    max_length: int = common.option(40, "tokens per sentence the model reads and writes", minimum=2)
    # ~1,500 distinct words per side in the built-in corpus.
    vocabulary_size: int = common.option(2000, "WordPiece vocabulary size per language", minimum=8)
    lowercase: bool = common.option(False, "lowercase text before tokenizing")
    # The paper's schedule with a shorter warm-up: 4000 steps is more than
    # the ~5000 steps of a CPU run, and the peak would come too late.
    warmup_steps: int = common.option(800, "learning-rate warm-up steps (inverse square root schedule)", minimum=1)
    learning_rate_scale: float = common.option(1.0, "multiplies the schedule's learning rate", minimum=0.0)
    label_smoothing: float = common.option(0.1, "label smoothing of the loss", minimum=0.0)
    dropout: float | None = common.option(None, "dropout rate; none: the preset's", minimum=0.0)
    d_model: int | None = common.option(None, "model width; none: the preset's", minimum=1)
    num_layers: int | None = common.option(None, "encoder and decoder layers each; none: the preset's", minimum=1)
    patience: int = common.option(3, "epochs without a lower validation loss before stopping", minimum=1)
    overlong: str = common.option(
        "truncate", "training pairs longer than --max-length: cut or left out", choices=("truncate", "drop"))
    strict: bool = common.option(
        False, "stop at the first bad TSV line (no tab, not UTF-8, an empty side) instead of skipping "
        "it; more than 10%% bad lines always stop")
    # bfloat16 on GPUs: the logits and the attention softmax stay float32 (zoo.models).
    mixed_precision: str = common.option("auto", devices.PRECISION_HELP, choices=devices.PRECISIONS)
    distribute: str = common.option("none", devices.DISTRIBUTE_HELP, choices=devices.DISTRIBUTE)
    mesh: str | None = common.option(None, devices.MESH_HELP)
    beam_width: int = common.option(4, "beam width for evaluate and the export", minimum=1)
    quantize: str = common.option("none", common.quantize_help("translator"), choices=common.QUANTIZE)
    length_penalty: float = common.option(0.6, "beam search's GNMT length penalty alpha", minimum=0.0)
    eval_sentences: int = common.option(1000, "test sentences scored by evaluate; 0: all", minimum=0)
    steps_per_epoch: int | None = common.option(None, "batches per epoch (smoke tests); none: the whole set", minimum=1)
    # No --freeze-backbone or --architecture: a translator has no separate head (zoo.tasks.fine_tuning.freeze_backbone)
    # and every translator checkpoint names its architecture.
    init_from: str | None = common.option(None, fine_tune.TRANSLATOR_INIT_FROM_HELP)
    lora_rank: int | None = common.option(None, fine_tune.LORA_HELP, minimum=1)
    learning_rate: float | None = common.option(
        None, "constant AdamW learning rate (gradients clipped to global norm 1); none: from scratch the inverse "
        f"square root schedule (--warmup-steps, --learning-rate-scale), {FINE_TUNING_LEARNING_RATE} with --init-from "
        f"({FINE_TUNING_LEARNING_RATE * fine_tune.LORA_RATE_FACTOR} with --lora-rank)", minimum=0.0)
    seed: int = common.option(0, "random seed (initialisation, shuffling, dropout)")
    determinism: str = common.option("auto", common.DETERMINISM_HELP, choices=common.DETERMINISM)


def build_tokenizers(config, splits, reuse=False):
    """Learns one WordPiece vocabulary per language, or with `reuse` reloads the run's (a resumed run)."""
    from zoo.text import WordPieceTokenizer

    tokenizers = {}
    for side, index in (("source", 0), ("target", 1)):
        directory = os.path.join(config.output, f"{side}_tokenizer")
        if reuse and os.path.exists(os.path.join(directory, "tokenizer.json")):
            tokenizers[side] = WordPieceTokenizer.load(directory)
            continue
        texts = [pair[index] for pair in splits["train"]]
        tokenizers[side] = WordPieceTokenizer.from_corpus(texts, config.vocabulary_size, lowercase=config.lowercase)
        tokenizers[side].save(directory)
    return tokenizers["source"], tokenizers["target"]


def model_config(config, source_tokenizer, target_tokenizer):
    """The model's config: the preset's, with the tokenizers' ids and the run's overrides."""
    from zoo.models.presets import preset_config
    from zoo.models.transformer_translator_presets import TRANSFORMER_TRANSLATOR_PRESETS

    overrides = dict(
        source_vocab_size=source_tokenizer.vocabulary_size,
        target_vocab_size=target_tokenizer.vocabulary_size,
        max_length=config.max_length,
        pad_token_id=target_tokenizer.pad_id,
        start_token_id=target_tokenizer.start_id,
        end_token_id=target_tokenizer.end_id,
    )
    if config.dropout is not None:
        overrides["dropout"] = config.dropout
    if config.d_model is not None:
        overrides["d_model"] = config.d_model
    if config.num_layers is not None:
        overrides["num_encoder_layers"] = overrides["num_decoder_layers"] = config.num_layers
    return preset_config(TRANSFORMER_TRANSLATOR_PRESETS, config.preset, overrides, "TransformerTranslator")


def build_model(config, source_tokenizer, target_tokenizer):
    from zoo.models import TransformerTranslator

    return TransformerTranslator(**model_config(config, source_tokenizer, target_tokenizer))


def compile_model(model, config):
    """From scratch: Adam on the paper's inverse square root schedule. Fine-tuning (or `--learning-rate`):
    AdamW at a constant rate, clipped as `zoo.Translator.compile` clips (`zoo.tasks.fine_tuning`)."""
    import keras

    from zoo.models.losses import SparseCrossentropyWithSmoothing
    from zoo.schedules import InverseSqrtSchedule
    from zoo.tasks.fine_tuning import fine_tuning_optimizer

    if config.init_from or config.learning_rate is not None:
        optimizer = fine_tuning_optimizer(fine_tune.learning_rate(config, None, FINE_TUNING_LEARNING_RATE))
    else:
        schedule = InverseSqrtSchedule(model.d_model, config.warmup_steps, config.learning_rate_scale)
        optimizer = keras.optimizers.Adam(schedule, beta_1=0.9, beta_2=0.98, epsilon=1e-9)
    model.compile(
        optimizer=optimizer,
        loss=SparseCrossentropyWithSmoothing(config.label_smoothing),
        weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )


def load_run(config, resuming=False, splits=None, preprocessor=None):
    """Data splits, tokenizers (the run's own when `resuming`; `preprocessor`'s when given: a checkpoint's)
    and the datasets for a run."""
    from zoo.data.translation_data import load_translation_data, make_batches
    from zoo.preprocessing import TranslationPreprocessor

    splits = load_translation_data(config.data, strict=config.strict) if splits is None else splits
    if preprocessor is None:
        source_tokenizer, target_tokenizer = build_tokenizers(config, splits, reuse=resuming)
        preprocessor = TranslationPreprocessor(source_tokenizer, target_tokenizer, config.max_length)
    source_tokenizer, target_tokenizer = preprocessor.source_tokenizer, preprocessor.target_tokenizer
    batches = {}
    for split in ("train", "validation"):
        batches[split], stats = make_batches(
            splits[split], preprocessor, config.batch_size, overlong=config.overlong, shuffle=split == "train",
            seed=config.seed,
        )
        print(f"{split}: {stats}")
    return splits, source_tokenizer, target_tokenizer, batches


def search_settings(config, max_length=None):
    """The decoding settings the run's flags and config.json give (`max_length`: `--max-length`'s unless given)."""
    from zoo.decoding import SearchSettings

    return SearchSettings(beam_width=config.beam_width, alpha=config.length_penalty,
                          max_length=max_length or config.max_length)


def train(config, run):
    """Trains the run's translator (new, resumed or continued), evaluates and exports it (`RunFolder.train`)."""
    return run.train(lambda: train_translator(config, run),
                     evaluate=lambda translator, splits: evaluate(config, translator=translator, splits=splits),
                     export=lambda translator: export(config, translator=translator))


def train_translator(config, run):
    """Trains (or, with `--init-from`, fine-tunes) and saves the run's `zoo.Translator`; returns it and the
    data splits."""
    import zoo
    from zoo.data.translation_data import load_translation_data
    from zoo.models import TransformerTranslator

    fine_tune.check_flags(config)
    devices.start(config)  # before anything touches a device (a JAX cluster joins first)
    # Seeded before the checkpoint loads: its dropout seeds, a new head and LoRA start alike in every (re)start.
    print(f"op determinism: {'on' if training.seed_everything(config.seed, config.determinism) else 'off'}")
    pretrained = fine_tune.load_checkpoint(config, zoo.Translator) if config.init_from else None
    splits = load_translation_data(config.data, strict=config.strict)  # read and checked before anything is written
    preprocessor = None
    if pretrained is not None:  # its tokenizers, at most --max-length tokens per sentence
        max_length = min(config.max_length, pretrained.model.max_length)
        pretrained = zoo.Translator(pretrained.model, pretrained.source_tokenizer, pretrained.target_tokenizer,
                                    search_settings(config, max_length), max_length=max_length)
        preprocessor = pretrained.preprocessor
    os.makedirs(config.output, exist_ok=True)
    print(f"precision: {devices.set_precision(config.mixed_precision)}")
    splits, source_tokenizer, target_tokenizer, batches = load_run(config, run.resuming, splits, preprocessor)
    architecture = (model_config(config, source_tokenizer, target_tokenizer) if pretrained is None
                    else pretrained.model.get_config())
    with devices.training_scope(config, TransformerTranslator, architecture) as engine:
        model = TransformerTranslator(**architecture) if pretrained is None else fine_tune.in_scope(pretrained, config)
        compile_model(model, config)
        model.summary(print_fn=lambda line, **_: print(line))
        training.fit(model, batches["train"], batches["validation"], config, run, engine)
    max_length = preprocessor.max_length if preprocessor is not None else None
    translator = zoo.Translator(model, source_tokenizer, target_tokenizer, search_settings(config, max_length),
                                max_length=max_length)
    run.save_task(translator)
    return translator, splits


def load_translator(config):
    """The run's `zoo.Translator` (before it is trained, the `--init-from` checkpoint), decoding as
    config.json and the flags say (they may override its settings)."""
    import zoo

    if config.init_from and not trained_model.has_task(config.output):
        translator = fine_tune.load_checkpoint(config, zoo.Translator)
        os.makedirs(config.output, exist_ok=True)  # evaluate --init-from: a run folder not trained yet
    else:
        translator = trained_model.load_task(zoo.Translator, config.output, "translation")
    settings = translator.settings.replace(
        beam_width=config.beam_width, alpha=config.length_penalty,
        max_length=min(config.max_length, translator.model.max_length),
    )
    if settings == translator.settings:
        return translator
    return zoo.Translator(translator.model, translator.source_tokenizer, translator.target_tokenizer, settings)


def export(config, translator=None):
    """Writes the next version of `<output>/export/translator/` (`translator_int8/` with `--quantize int8`)
    and checks it answers."""
    translator = load_translator(config) if translator is None else translator
    path = translator.export(os.path.join(config.output, "export"), quantize=common.quantize_mode(config))
    sample = "I buy three apples."
    print(f"exported {path}\n  {sample!r} -> {translator_function(path)([sample.encode()])[0][0]!r}")
    return path


def evaluate(config, translator=None, splits=None):
    """BLEU and chrF on the test split, a few samples, and the attention plot."""
    import sacrebleu

    from zoo.data.translation_data import load_translation_data
    from zoo.plots import plot_cross_attention

    translator = load_translator(config) if translator is None else translator  # first: the clearest error
    splits = load_translation_data(config.data, strict=config.strict) if splits is None else splits
    test = splits["test"][: config.eval_sentences or None]
    sources, references = [s for s, _ in test], [t for _, t in test]
    started = time.time()
    hypotheses = translator.translate(sources)
    seconds = time.time() - started
    truncated = sum(translator.is_truncated(sources))
    if truncated:
        print(f"warning: {truncated} of {len(sources)} test sentences are longer than --max-length "
              f"{translator.model.max_length} tokens and were cut; their translations are scored as they are")
    bleu_metric, chrf_metric = sacrebleu.metrics.BLEU(), sacrebleu.metrics.CHRF()
    bleu = bleu_metric.corpus_score(hypotheses, [references])
    chrf = chrf_metric.corpus_score(hypotheses, [references])
    for source, reference, hypothesis in list(zip(sources, references, hypotheses))[:5]:
        print(f"  source:     {source}\n  reference:  {reference}\n  hypothesis: {hypothesis}\n")
    metrics = {
        "bleu": round(bleu.score, 2),
        "chrf": round(chrf.score, 2),
        "sentences": len(test),
        "truncated_sources": truncated,
        "seconds": round(seconds, 1),
        "bleu_signature": str(bleu_metric.get_signature()),
    }
    print(json.dumps(metrics, indent=2))
    with open(os.path.join(config.output, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    plot_path = os.path.join(config.output, "cross_attention.png")
    # The longest of the first sentences: more words, more reordering to see.
    plot_cross_attention(translator, max(sources[:50], key=len), plot_path)
    print(f"cross-attention plot: {plot_path}")
    return metrics


def read_sentences(arguments, stdin=None):
    """The sentences as the OS gave them, in bytes: `arguments`, else the lines of `stdin`.

    Bytes, because input need not be UTF-8: Python hands undecodable
    arguments over as surrogate escapes (undone by `os.fsencode`), and the
    export repairs invalid UTF-8 itself, as it does for TF Serving.
    """
    if arguments:
        yield from (os.fsencode(sentence) for sentence in arguments)
        return
    for line in (sys.stdin.buffer if stdin is None else stdin):
        yield line.rstrip(b"\r\n")


def translator_function(model_path):
    """`batch of bytes -> (translations, scores, truncated)` for an export directory or a task folder.

    An export runs as TF Serving would (its `serving_default`); a task
    folder runs `zoo.Translator.translate`, the same graph in process.
    """
    import tensorflow as tf

    kind, path = trained_model.task_or_export(
        model_path, "runs/translation/model", "runs/translation/export/translator/1", "sentences"
    )
    if kind == "task":
        import zoo

        translator = zoo.Translator.load(path)

        def run(batch):
            pairs = translator.translate(batch, return_scores=True)
            return [t for t, _ in pairs], [s for _, s in pairs], translator.is_truncated(batch)

        return run
    import tensorflow_text  # noqa: F401  registers the tokenizer ops

    signature = tf.saved_model.load(path).signatures["serving_default"]

    def run(batch):
        outputs = signature(sentences=tf.constant(batch, tf.string))
        translations = [t.decode("utf-8", "replace") for t in outputs["translations"].numpy()]
        cut = outputs["truncated"].numpy() if "truncated" in outputs else [False] * len(batch)  # older exports
        return translations, outputs["scores"].numpy(), cut

    return run


def translate_command(model_path, sentences, scores=False, batch_size=64):
    """Translates with an export (as TF Serving would) or a task folder, one batch at a time.

    Prints one translation per sentence (with `scores`: `score<TAB>translation`)
    as each batch is done; a sentence longer than the model reads is named on
    stderr. Returns the number of truncated sentences.
    """
    run = translator_function(model_path)
    truncated, number = 0, 0
    sentences = iter(sentences)
    while True:
        batch = list(itertools.islice(sentences, batch_size))
        if not batch:
            return truncated
        for source, (translation, score, was_cut) in zip(batch, zip(*run(batch))):
            number += 1
            if was_cut:
                truncated += 1
                shown = source.decode("utf-8", "replace")
                shown = shown if len(shown) <= 40 else shown[:40] + "..."
                print(f"warning: sentence {number} is longer than the model reads; only its beginning was "
                      f"translated: {shown!r}", file=sys.stderr)
            print(f"{score:.3f}\t{translation}" if scores else translation)


def parse_args(argv):
    parser, sub = common.recipe_parser(
        "python -m recipes.translation", __doc__, TranslationConfig,
        {
            "train": "Train a translator, then evaluate and export it.",
            "evaluate": "BLEU and chrF of a trained run on the test split, and its cross-attention plot.",
            "export": "Write the next TF Serving version of a trained run to <output>/export/translator/ "
                      "(translator_int8/ with --quantize int8).",
        },
    )
    translate = common.add_command(
        sub, "translate",
        "Translate sentences with an exported SavedModel, as TF Serving would, or with a saved "
        "zoo.Translator folder (the same graph, in process). One output line per input sentence; "
        "sentences longer than the model reads are translated from their beginning and named on "
        "stderr. Invalid UTF-8 is repaired, as the server does.",
    )
    translate.add_argument("--model", required=True,
                           help="export directory: a version (runs/translation/export/translator/1) or the "
                                "directory holding versions (its highest version is used); or a task folder "
                                "(runs/translation/model)")
    translate.add_argument("--scores", action="store_true",
                           help="print 'score<TAB>translation': the beam's length-normalised log-probability "
                                "(0 is certain; lower is less sure)")
    translate.add_argument("sentences", nargs="*", help="sentences to translate; read from stdin, one per line, "
                                                        "when none are given")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    with common.command_line(args.verbose):
        if args.command == "translate":
            common.import_tensorflow(args.verbose)
            translate_command(args.model, read_sentences(args.sentences), scores=args.scores)
            return None
        handlers = {"train": train, "evaluate": evaluate, "export": export}
        return commands.run_command(args, TranslationConfig, handlers, "translation", CONFIG_FILE, ARTIFACTS)


if __name__ == "__main__":
    main()
