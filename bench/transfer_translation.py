"""Transfer, measured, part 2: a translator trained on the built-in corpus, fine-tuned on a shifted domain.

Run through `python -m bench.transfer translation` (see `bench/transfer.py`
for the flags and what both experiments measure). The pretrained
`transformer_tiny` (the recipe's model, tokenizers and schedule) is saved
as a task folder and loaded afresh (`load_pretrained`) for each
fine-tuning: all weights, then LoRA (`enable_lora`, merged with
`merge_lora` before it is scored). BLEU and chrF by sacrebleu.
"""

import json
import os
import time

import numpy as np

from bench import common

# Toy sizes for --smoke.
SMOKE_TRANSLATOR = dict(d_model=16, num_layers=1, vocabulary_size=200)


def load_average():
    """The 1, 5 and 15 minute load averages, or None where the OS has none."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None

def _translation_config(args):
    from recipes.translation import TranslationConfig

    overrides = SMOKE_TRANSLATOR if args.smoke else {}
    return TranslationConfig(epochs=args.pretrain_epochs, beam_width=args.beam_width, **overrides)


def pretrain_translator(args, builtin):
    """The recipe's model, tokenizers and schedule, trained on the built-in corpus' train split."""
    import zoo
    from recipes.training import seed_everything
    from recipes.translation import build_model, compile_model, search_settings
    from zoo.text import WordPieceTokenizer

    seed_everything(0)
    config = _translation_config(args)
    tokenizers = [WordPieceTokenizer.from_corpus([pair[i] for pair in builtin["train"]], config.vocabulary_size,
                                                 lowercase=config.lowercase) for i in (0, 1)]
    model = build_model(config, *tokenizers)
    compile_model(model, config)
    translator = zoo.Translator(model, *tokenizers, search_settings(config))
    translator.fit(builtin["train"], epochs=args.pretrain_epochs, batch_size=config.batch_size, seed=0, verbose=2,
                   steps_per_epoch=args.steps_per_epoch)
    return translator


def score(translator, pairs):
    """BLEU and chrF (sacrebleu, corpus level) of the translator's outputs for `pairs`."""
    import sacrebleu

    hypotheses = translator.translate([source for source, _ in pairs])
    references = [[target for _, target in pairs]]
    return {"bleu": sacrebleu.metrics.BLEU().corpus_score(hypotheses, references).score,
            "chrf": sacrebleu.metrics.CHRF().corpus_score(hypotheses, references).score,
            "sentences": len(pairs)}


def sub_words(translator):
    """How the built-in vocabularies split the shifted domain's nouns, and its `[UNK]` count per side."""
    from zoo.data.shifted_translation import SHIFTED_NOUNS, shifted_pairs

    pieces = {}
    for side, tokenizer, words in (("source", translator.source_tokenizer, [n.en for n in SHIFTED_NOUNS]),
                                   ("target", translator.target_tokenizer, [n.de for n in SHIFTED_NOUNS])):
        vocabulary = tokenizer.vocabulary
        ids = tokenizer.tokenize(words).to_list()
        pieces[side] = {word: [vocabulary[i] for i in row] for word, row in zip(words, ids)}
    pairs = shifted_pairs()
    unknown = {}
    for index, (side, tokenizer) in enumerate((("source", translator.source_tokenizer),
                                               ("target", translator.target_tokenizer))):
        ids = tokenizer.tokenize([pair[index] for pair in pairs]).flat_values.numpy()
        unknown[side] = {"unk_tokens": int(np.sum(ids == tokenizer.unk_id)), "tokens": int(ids.size)}
    return {"pieces": pieces, "unknown": unknown}


def fine_tune_translator(args, folder, shifted, lora_rank):
    """The pretrained translator (loaded afresh) fine-tuned on the shifted train part; LoRA merged after."""
    import keras

    from recipes.training import seed_everything
    from zoo.tasks.fine_tuning import enable_lora, load_pretrained, merge_lora

    seed_everything(0)
    translator = load_pretrained(folder)
    if lora_rank:
        enable_lora(translator, lora_rank)
    learning_rate = args.lora_learning_rate if lora_rank else args.learning_rate
    translator.compile(optimizer=keras.optimizers.AdamW(learning_rate, weight_decay=0.01, global_clipnorm=1.0))
    trainable = sum(int(np.prod(v.shape)) for v in translator.model.trainable_weights)
    started = time.time()
    translator.fit(shifted["train"], epochs=args.fine_tune_epochs, batch_size=args.fine_tune_batch_size, seed=0,
                   verbose=2, steps_per_epoch=args.steps_per_epoch)
    seconds = time.time() - started
    if lora_rank:
        merge_lora(translator)
    return translator, {"trainable_parameters": trainable, "learning_rate": learning_rate, "seconds": seconds}


def run_translation(args):
    from zoo.data.builtin_translation import load_splits
    from zoo.data.shifted_translation import shifted_splits

    started, load_before = time.time(), load_average()
    builtin = load_splits(num_pairs=400 if args.smoke else 30000)
    shifted = shifted_splits(num_pairs=args.shifted_pairs, test_pairs=args.shifted_test_pairs)
    builtin_test = builtin["test"][: args.eval_sentences]
    if args.pretrained:
        folder = args.pretrained
        from zoo.tasks.fine_tuning import load_pretrained

        pretrained = load_pretrained(folder)
        pretrain_seconds = None
    else:
        pretrain_started = time.time()
        pretrained = pretrain_translator(args, builtin)
        pretrain_seconds = time.time() - pretrain_started
        folder = os.path.join(args.output, "translator_pretrained")
        pretrained.save(folder, overwrite=True)
    before = {"shifted_test": score(pretrained, shifted["test"]), "builtin_test": score(pretrained, builtin_test)}
    vocabulary = sub_words(pretrained)
    results = {"pretrained": before}
    for name, rank in (("full_fine_tuning", 0), (f"lora_rank_{args.lora_rank}", args.lora_rank)):
        translator, info = fine_tune_translator(args, folder, shifted, rank)
        results[name] = {"shifted_test": score(translator, shifted["test"]),
                         "builtin_test": score(translator, builtin_test), **info}
        print(f"{name}: {json.dumps(common.rounded(results[name]))}")
    report = {
        "benchmark": "transfer_translation",
        "command": "python -m bench.transfer " + " ".join(args.argv),
        "system": common.system_info(),
        "pretrain": {"from": args.pretrained, "epochs": None if args.pretrained else args.pretrain_epochs,
                     "seconds": pretrain_seconds, "model_parameters": pretrained.model.count_params()},
        "shifted_domain": {"train_pairs": len(shifted["train"]), "test_pairs": len(shifted["test"]),
                           "examples": shifted["test"][:3], **vocabulary},
        "fine_tuning": {"epochs": args.fine_tune_epochs, "batch_size": args.fine_tune_batch_size,
                        "beam_width": args.beam_width},
        "results": results,
        "wall_seconds": time.time() - started,
        "load_average_before": load_before,
        "load_average_after": load_average(),
    }
    return common.emit(report, os.path.join(args.output, "translation_transfer.json"))
