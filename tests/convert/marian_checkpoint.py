"""Writes tiny random MarianMT checkpoint folders, as `transformers` saves them.

Nothing is downloaded: two SentencePiece models are trained in a second on
generated sentences, `vocab.json` is built from their pieces the way OPUS-MT
lays it out (`</s>` = 0, `<unk>` = 1, the pieces, `<pad>` last), and a
random-initialised `MarianMTModel` is built from a config and saved.
"""

import io
import json
import os
import random
import sys


def import_transformers():
    """Imports `transformers` in a process where TensorFlow is already loaded.

    Importing it pulls in `torch._dynamo`, which probes for Triton; loading
    Triton's native library after TensorFlow's crashes the process
    (segmentation fault, torch 2.14 / TF 2.21). These CPU tests need no
    Triton, so it is made unimportable first (torch then reports it absent).
    """
    if "triton" not in sys.modules:
        sys.modules["triton"] = None
    import transformers

    return transformers

SOURCE_WORDS = (
    "the a cat dog sees likes eats big small red house tree river green old new and with under near "
    "friend garden window yellow quickly slowly mountain village bread water table chair story"
).split()
TARGET_WORDS = (
    "der die das Katze Hund sieht mag isst groß klein rot Haus Baum Fluss grün alt neu und mit unter "
    "Freund Garten Fenster gelb schnell langsam Berg Dorf Brot Wasser Tisch Stuhl Geschichte über"
).split()


def sentences(words, count=300, seed=0):
    rng = random.Random(seed)
    return [" ".join(rng.choice(words) for _ in range(rng.randint(2, 9))) + rng.choice([".", "!", "?", ""]) for _ in range(count)]


def train_spm(texts, vocab_size):
    """A unigram SentencePiece model (bytes) with `<unk>`=0, `<s>`=1, `</s>`=2, as OPUS-MT's."""
    import sentencepiece

    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(texts), model_writer=model, vocab_size=vocab_size, model_type="unigram",
        character_coverage=1.0, minloglevel=2, num_threads=1, hard_vocab_limit=False,
    )
    return model.getvalue()


def spm_pieces(proto):
    import sentencepiece

    processor = sentencepiece.SentencePieceProcessor(model_proto=proto)
    return [processor.id_to_piece(i) for i in range(processor.get_piece_size()) if not processor.is_control(i) and not processor.is_unknown(i)]


def marian_vocab(*protos, extra_tokens=()):
    """`vocab.json` contents: `</s>`, `<unk>`, `extra_tokens`, the pieces of all models once, `<pad>`."""
    vocab = {"</s>": 0, "<unk>": 1}
    for token in extra_tokens:
        vocab[token] = len(vocab)
    for proto in protos:
        for piece in spm_pieces(proto):
            vocab.setdefault(piece, len(vocab))
    vocab["<pad>"] = len(vocab)
    return vocab


def write_tokenizer_files(directory, extra_tokens=()):
    """Writes `source.spm`, `target.spm` and `vocab.json`; returns the vocabulary.

    `extra_tokens` (e.g. language codes `>>de<<`) go in after `<unk>`.
    """
    os.makedirs(directory, exist_ok=True)
    source_proto = train_spm(sentences(SOURCE_WORDS), 80)
    target_proto = train_spm(sentences(TARGET_WORDS, seed=1), 80)
    vocab = marian_vocab(source_proto, target_proto, extra_tokens=extra_tokens)
    for name, proto in (("source.spm", source_proto), ("target.spm", target_proto)):
        with open(os.path.join(directory, name), "wb") as f:
            f.write(proto)
    with open(os.path.join(directory, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False, indent=1)
    return vocab


def write_marian_checkpoint(directory, seed=0, safe_serialization=True, end_bias=0.0, weight_std=0.1, end_position=6, end_scale=3.0, **config_overrides):
    """Saves a random tiny `MarianMTModel` and its tokenizer files; returns the HF model.

    `end_bias` is added to eos in `final_logits_bias` (and noise to the
    rest), so random models end sentences at varied lengths.
    """
    import torch

    transformers = import_transformers()
    MarianConfig, MarianMTModel = transformers.MarianConfig, transformers.MarianMTModel

    vocab = write_tokenizer_files(directory)
    pad = vocab["<pad>"]
    config = dict(
        vocab_size=len(vocab), decoder_vocab_size=len(vocab), d_model=32, encoder_layers=2, decoder_layers=2,
        encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64,
        max_position_embeddings=64, pad_token_id=pad, decoder_start_token_id=pad, eos_token_id=0,
        forced_eos_token_id=0, activation_function="swish", scale_embedding=True, dropout=0.1,
        bad_words_ids=[[pad]], num_beams=4, max_length=64,
    )
    config.update(config_overrides)
    torch.manual_seed(seed)
    model = MarianMTModel(MarianConfig(**config)).eval()
    with torch.no_grad():
        # Larger than the default init (std 0.02), so random models make peaked, varied choices.
        for name, parameter in model.named_parameters():
            if "embed_positions" in name:
                continue  # the fixed sinusoids (not saved)
            if parameter.dim() == 2:
                parameter.normal_(0.0, weight_std)
            elif not name.endswith("layer_norm.weight"):
                parameter.normal_(0.0, 0.05)
        bias = torch.randn(model.final_logits_bias.shape) * 0.5
        bias[0, 0] += end_bias
        model.final_logits_bias.copy_(bias)
        if end_position:
            # Random models repeat one token forever; an eos embedding along the
            # sinusoids of positions around `end_position` makes them stop
            # after a few tokens, at source-dependent lengths.
            table = model.model.decoder.embed_positions.weight
            direction = table[end_position - 2 : end_position + 3].mean(0)
            model.model.decoder.embed_tokens.weight[0] = end_scale * direction / direction.norm()
    model.generation_config.bad_words_ids = [[pad]]
    model.generation_config.num_beams = config["num_beams"]
    model.generation_config.max_length = config["max_length"]
    model.save_pretrained(directory)
    if not safe_serialization:
        # transformers 5 always writes safetensors; older OPUS-MT uploads hold
        # `pytorch_model.bin` with every tensor (tied copies, sinusoids too).
        os.remove(os.path.join(directory, "model.safetensors"))
        torch.save(model.state_dict(), os.path.join(directory, "pytorch_model.bin"))
    return model


def hf_tokenizer(directory):
    return import_transformers().MarianTokenizer(
        os.path.join(directory, "source.spm"), os.path.join(directory, "target.spm"), os.path.join(directory, "vocab.json")
    )
