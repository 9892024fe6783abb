"""Train, evaluate and export a Transformer translator with one command.

    python -m recipes.translation train --output runs/translation

trains `transformer_tiny` on the built-in English-German corpus (about 10
minutes on 2 CPU cores; see README for the measured BLEU), evaluates it on
the test split with sacrebleu, plots a cross-attention map and exports a
SavedModel for TF Serving. Running the same command again after an
interruption resumes from the last epoch. Other subcommands:

    python -m recipes.translation evaluate --output runs/translation
    python -m recipes.translation export --output runs/translation
    python -m recipes.translation translate --model runs/translation/export/translator/1 "I buy three apples."

Data: `--data builtin` (default), `--data tsv:PATH` (source<TAB>target
lines), `--data tfds:ted_hrlr_translate/pt_to_en`.
"""

import dataclasses
import json
import os
import sys
import time

from recipes import common

CONFIG_FILE = "config.json"


@dataclasses.dataclass
class TranslationConfig:
    """Everything a run depends on; saved as `<output>/config.json`."""

    preset: str = "transformer_tiny"
    data: str = "builtin"
    output: str = "runs/translation"
    epochs: int = 8
    batch_size: int = 64
    max_length: int = 40  # tokens; the built-in corpus tops out near 30
    vocabulary_size: int = 2000  # per language; the built-in corpus has ~1,500 distinct words per side
    lowercase: bool = False
    # The paper's schedule with a shorter warm-up: 4000 steps is more than
    # the ~5000 steps of a CPU run, and the peak would come too late.
    warmup_steps: int = 800
    learning_rate_scale: float = 1.0
    label_smoothing: float = 0.1
    dropout: float | None = None  # None: the preset's
    d_model: int | None = None
    num_layers: int | None = None  # encoder and decoder each
    patience: int = 3  # early stopping on validation loss
    overlong: str = "truncate"
    distribute: str = "none"
    beam_width: int = 4
    length_penalty: float = 0.6
    eval_sentences: int = 1000  # test sentences scored by evaluate (0: all)
    steps_per_epoch: int | None = None  # for smoke tests
    seed: int = 0


def build_tokenizers(config, splits):
    """Learns (or reloads) one WordPiece vocabulary per language."""
    from zoo.text import WordPieceTokenizer

    tokenizers = {}
    for side, index in (("source", 0), ("target", 1)):
        directory = os.path.join(config.output, f"{side}_tokenizer")
        if os.path.exists(os.path.join(directory, "tokenizer.json")):
            tokenizers[side] = WordPieceTokenizer.load(directory)
            continue
        texts = [pair[index] for pair in splits["train"]]
        tokenizers[side] = WordPieceTokenizer.from_corpus(texts, config.vocabulary_size, lowercase=config.lowercase)
        tokenizers[side].save(directory)
    return tokenizers["source"], tokenizers["target"]


def build_model(config, source_tokenizer, target_tokenizer):
    from zoo.models import TransformerTranslator

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
    return TransformerTranslator.from_preset(config.preset, **overrides)


def compile_model(model, config):
    import keras

    from zoo.models.losses import SparseCrossentropyWithSmoothing
    from zoo.schedules import InverseSqrtSchedule

    schedule = InverseSqrtSchedule(model.d_model, config.warmup_steps, config.learning_rate_scale)
    model.compile(
        optimizer=keras.optimizers.Adam(schedule, beta_1=0.9, beta_2=0.98, epsilon=1e-9),
        loss=SparseCrossentropyWithSmoothing(config.label_smoothing),
        weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )


def load_run(config):
    """Data splits, tokenizers and the datasets for a run."""
    from zoo.data.translation_data import load_translation_data, make_batches

    splits = load_translation_data(config.data)
    source_tokenizer, target_tokenizer = build_tokenizers(config, splits)
    batches = {}
    for split in ("train", "validation"):
        batches[split], stats = make_batches(
            splits[split], source_tokenizer, target_tokenizer, config.batch_size, config.max_length,
            overlong=config.overlong, shuffle=split == "train", seed=config.seed,
        )
        print(f"{split}: {stats}")
    return splits, source_tokenizer, target_tokenizer, batches


def train(config):
    import keras

    os.makedirs(config.output, exist_ok=True)
    common.save_config(config, os.path.join(config.output, CONFIG_FILE))
    keras.utils.set_random_seed(config.seed)
    splits, source_tokenizer, target_tokenizer, batches = load_run(config)
    with common.strategy_scope(config.distribute):
        model = build_model(config, source_tokenizer, target_tokenizer)
        compile_model(model, config)
    model.summary(print_fn=lambda line, **_: print(line))
    started = time.time()
    model.fit(
        batches["train"].repeat() if config.steps_per_epoch else batches["train"],
        validation_data=batches["validation"],
        epochs=config.epochs,
        steps_per_epoch=config.steps_per_epoch,
        callbacks=common.training_callbacks(config.output, config.patience),
        verbose=common.progress_verbosity(),
    )
    print(f"training took {time.time() - started:.0f} s")
    model.save(os.path.join(config.output, "model.keras"))
    tokenizers = (source_tokenizer, target_tokenizer)
    evaluate(config, model=model, splits=splits, tokenizers=tokenizers)
    export(config, model=model, tokenizers=tokenizers)
    return model


def load_tokenizers(config):
    from zoo.text import WordPieceTokenizer

    return tuple(
        WordPieceTokenizer.load(os.path.join(config.output, f"{side}_tokenizer")) for side in ("source", "target")
    )


def load_model(config):
    return common.load_trained_model(config.output, "translation")


def export(config, model=None, tokenizers=None):
    """Writes the next version of `<output>/export/translator/` and checks it answers."""
    from zoo.export import export_translator, translate_with_saved_model

    model = load_model(config) if model is None else model
    tokenizers = load_tokenizers(config) if tokenizers is None else tokenizers
    path = export_translator(
        model, *tokenizers, base=os.path.join(config.output, "export"), name="translator",
        beam_width=config.beam_width, max_length=config.max_length, alpha=config.length_penalty,
    )
    sample = "I buy three apples."
    print(f"exported {path}\n  {sample!r} -> {translate_with_saved_model(path, [sample])[0]!r}")
    return path


def translate_texts(model, source_tokenizer, target_tokenizer, texts, config, batch_size=64):
    """Beam-search translations of `texts` (in-process, through zoo.decoding)."""
    import tensorflow as tf

    from zoo.decoding import beam_search

    @tf.function(reduce_retracing=True, autograph=False)  # a while_loop already; nothing to convert
    def run(ids):
        return beam_search(model, ids, config.max_length, config.beam_width, config.length_penalty)

    outputs = []
    for i in range(0, len(texts), batch_size):
        ids = source_tokenizer.tokenize(tf.constant(texts[i : i + batch_size]))
        ids = ids[:, : config.max_length].to_tensor(default_value=source_tokenizer.pad_id)
        tokens, _ = run(ids)
        outputs.extend(t.decode("utf-8") for t in target_tokenizer.detokenize(tokens).numpy())
    return outputs


def evaluate(config, model=None, splits=None, tokenizers=None):
    """BLEU and chrF on the test split, a few samples, and the attention plot."""
    import sacrebleu

    from recipes.translation_plot import plot_cross_attention
    from zoo.data.translation_data import load_translation_data

    splits = load_translation_data(config.data) if splits is None else splits
    tokenizers = load_tokenizers(config) if tokenizers is None else tokenizers
    model = load_model(config) if model is None else model
    test = splits["test"][: config.eval_sentences or None]
    sources, references = [s for s, _ in test], [t for _, t in test]
    started = time.time()
    hypotheses = translate_texts(model, *tokenizers, sources, config)
    seconds = time.time() - started
    bleu_metric, chrf_metric = sacrebleu.metrics.BLEU(), sacrebleu.metrics.CHRF()
    bleu = bleu_metric.corpus_score(hypotheses, [references])
    chrf = chrf_metric.corpus_score(hypotheses, [references])
    for source, reference, hypothesis in list(zip(sources, references, hypotheses))[:5]:
        print(f"  source:     {source}\n  reference:  {reference}\n  hypothesis: {hypothesis}\n")
    metrics = {
        "bleu": round(bleu.score, 2),
        "chrf": round(chrf.score, 2),
        "sentences": len(test),
        "seconds": round(seconds, 1),
        "bleu_signature": str(bleu_metric.get_signature()),
    }
    print(json.dumps(metrics, indent=2))
    with open(os.path.join(config.output, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    plot_path = os.path.join(config.output, "cross_attention.png")
    # The longest of the first sentences: more words, more reordering to see.
    plot_cross_attention(model, *tokenizers, max(sources[:50], key=len), plot_path, config)
    print(f"cross-attention plot: {plot_path}")
    return metrics


def parse_args(argv):
    parser, sub = common.recipe_parser("python -m recipes.translation", __doc__, TranslationConfig)
    translate = sub.add_parser("translate", help="translate with an exported SavedModel, as TF Serving would")
    translate.add_argument("--model", required=True, help="SavedModel version directory")
    translate.add_argument("sentences", nargs="*", help="sentences; read from stdin when none")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.command == "translate":
        from zoo.export import translate_with_saved_model

        sentences = args.sentences or [line.rstrip("\n") for line in sys.stdin]
        for line in translate_with_saved_model(args.model, sentences):
            print(line)
        return None
    commands = {"train": train, "evaluate": evaluate, "export": export}
    return common.run_config_command(args, TranslationConfig, CONFIG_FILE, commands)


if __name__ == "__main__":
    main()
