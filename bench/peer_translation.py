"""Serving speed of a MarianMT translator: zoo against CTranslate2 and transformers.

Builds a MarianMT of opus-mt-en-de's size (6+6 layers, d_model 512, 8
heads, d_ff 2048, a 58101-entry vocabulary) with transformers and random
weights, and two SentencePiece models trained on the project's built-in
English-German corpus (`zoo.data.builtin_translation`); nothing is
downloaded. The checkpoint is converted with `zoo.Translator.from_marian`
and with CTranslate2's `TransformersConverter`. Every engine then
translates the same source ids (zoo's tokenization) into ids, after a check
that zoo's greedy and beam token ids equal transformers' and CTranslate2's
float32 on a few sentences. The end token is never likely (its logit bias
is -100), so every engine generates exactly `--tokens` tokens per sentence
and tokens/s compare like with like.

Timing: one thread per engine (TF intra/inter-op, torch, CTranslate2), the
engines interleaved request by request (A B C ... then reversed), the median
over `--repeats` of the CPU time of one request (CPU time, not wall time,
because the machine is shared). Cells: batch x beam, float and int8 (zoo:
`zoo.export.quantization.quantize_model`, int8 weights; transformers:
torch's dynamic int8 `quantize_dynamic`; CTranslate2: `compute_type="int8"`).

    python -m bench.peer_translation                 # the table (about 1 h on one core)
    python -m bench.peer_translation --smoke         # a tiny model, seconds (the suite runs it)

CTranslate2 is a bench / test extra (`pip install -e .[bench]`), never a
runtime dependency of zoo.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

OPUS_MT_EN_DE = dict(d_model=512, encoder_layers=6, decoder_layers=6, encoder_attention_heads=8,
                     decoder_attention_heads=8, encoder_ffn_dim=2048, decoder_ffn_dim=2048)
TINY = dict(d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=4,
            decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64)
OPUS_MT_EN_DE_VOCAB = 58101


def _parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="a tiny model, 6 tokens, beam 2, one repeat")
    parser.add_argument("--tokens", type=int, default=64, help="tokens generated per sentence")
    parser.add_argument("--batches", default="1,32")
    parser.add_argument("--beams", default="1,4")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--check-sentences", type=int, default=4, help="sentences whose ids must agree")
    parser.add_argument("--engines", default="zoo,transformers,ctranslate2")
    parser.add_argument("--int8", default="true", choices=("true", "false"))
    parser.add_argument("--json", default=None)
    return parser


def _one_thread():
    """One thread per engine: TF (before its runtime starts, else as it is), torch, oneDNN/OpenMP."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import tensorflow as tf
    import torch

    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TF already running (inside the test suite): timings are not the point there
        pass
    torch.set_num_threads(1)


# -- the checkpoint ------------------------------------------------------------
def _train_spm(texts, vocab_size):
    import io

    import sentencepiece

    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(texts), model_writer=model, vocab_size=vocab_size, model_type="unigram",
        character_coverage=1.0, minloglevel=2, num_threads=1,
    )
    return model.getvalue()


def write_checkpoint(directory, architecture, vocab_size, tokens, seed=0, corpus_pairs=2000):
    """A random MarianMT folder (weights, `source.spm`, `target.spm`, `vocab.json`); returns the HF model.

    The vocabulary is OPUS-MT's layout (`</s>` 0, `<unk>` 1, the pieces,
    `<pad>` last), filled up to `vocab_size` with unused entries so the
    output projection has the real model's size.
    """
    import sentencepiece
    import torch

    sys.modules.setdefault("triton", None)  # transformers after TF: no Triton probe (it crashes the process)
    import transformers

    from zoo.data.builtin_translation import generate_pairs

    pairs = generate_pairs(corpus_pairs, seed=seed)
    protos = [_train_spm([pair[side] for pair in pairs], 400 if corpus_pairs >= 1000 else 150) for side in (0, 1)]
    vocab = {"</s>": 0, "<unk>": 1}
    for proto in protos:
        processor = sentencepiece.SentencePieceProcessor(model_proto=proto)
        for i in range(processor.get_piece_size()):
            if not (processor.is_control(i) or processor.is_unknown(i)):
                vocab.setdefault(processor.id_to_piece(i), len(vocab))
    for i in range(len(vocab), vocab_size - 1):
        vocab[f"<unused_{i}>"] = i
    vocab["<pad>"] = len(vocab)
    os.makedirs(directory, exist_ok=True)
    for name, proto in zip(("source.spm", "target.spm"), protos):
        with open(os.path.join(directory, name), "wb") as f:
            f.write(proto)
    with open(os.path.join(directory, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    pad = vocab["<pad>"]
    config = transformers.MarianConfig(
        vocab_size=len(vocab), decoder_vocab_size=len(vocab), max_position_embeddings=512, pad_token_id=pad,
        decoder_start_token_id=pad, eos_token_id=0, forced_eos_token_id=None, activation_function="swish",
        scale_embedding=True, bad_words_ids=[[pad]], num_beams=4, max_length=tokens + 1, **architecture,
    )
    torch.manual_seed(seed)
    model = transformers.MarianMTModel(config).eval()
    with torch.no_grad():
        # Larger than the default init (std 0.02), so that random models make peaked choices
        # (no near-ties that rounding differences between engines could flip).
        for name, parameter in model.named_parameters():
            if "embed_positions" in name:
                continue
            if parameter.dim() == 2:
                parameter.normal_(0.0, 0.1 if architecture["d_model"] <= 64 else 0.05)
        # The decoder starts from `<pad>`, whose embedding is zero in OPUS-MT checkpoints
        # (CTranslate2 relies on it: `start_from_zero_embedding`).
        model.get_input_embeddings().weight[pad] = 0.0
        bias = torch.randn(model.final_logits_bias.shape) * 0.5
        bias[0, 0] = -100.0  # no engine ends early: every sentence gets `tokens` tokens
        model.final_logits_bias.copy_(bias)
    model.generation_config.bad_words_ids = [[pad]]
    model.generation_config.max_length = tokens + 1
    model.generation_config.forced_eos_token_id = None
    model.save_pretrained(directory)
    return model


# -- the engines -----------------------------------------------------------------
class Engines:
    """`run(engine, ids, beam)` -> generated ids per sentence (lists, without end/pad), for each engine."""

    def __init__(self, directory, hf_model, tokens, names, int8):
        import tensorflow as tf

        from zoo import Translator
        from zoo.files import read_json
        from zoo.tasks.translator_graph import TranslatorGraph

        self.tokens = tokens
        self.translator = Translator.from_marian(directory, max_length=tokens)
        self.pad = self.translator.model.pad_token_id
        self.end = self.translator.model.end_token_id
        self.runners = {}
        if "zoo" in names:
            self.runners["zoo float"] = self._zoo(self.translator.model, TranslatorGraph, tf)
            if int8:
                from zoo.export.quantization import quantize_model

                self.runners["zoo int8"] = self._zoo(quantize_model(self.translator.model)[0], TranslatorGraph, tf)
        if "transformers" in names:
            self.runners["transformers float"] = self._transformers(hf_model)
            if int8:
                import torch

                quantized = torch.ao.quantization.quantize_dynamic(hf_model, {torch.nn.Linear}, dtype=torch.qint8)
                self.runners["transformers int8"] = self._transformers(quantized)
        if "ctranslate2" in names:
            import ctranslate2

            out = os.path.join(directory, "ctranslate2")
            ctranslate2.converters.TransformersConverter(directory).convert(out, force=True)
            vocab = read_json(os.path.join(directory, "vocab.json"))
            self.pieces = {i: piece for piece, i in vocab.items()}
            self.ids = vocab
            for compute in ("float32", "int8") if int8 else ("float32",):
                engine = ctranslate2.Translator(out, device="cpu", compute_type=compute, intra_threads=1, inter_threads=1)
                self.runners[f"ctranslate2 {compute}"] = self._ctranslate2(engine)

    def _zoo(self, model, graph_class, tf):
        graphs = {}

        def run(ids, beam):
            if beam not in graphs:
                graphs[beam] = graph_class(model, self.translator.preprocessor, self.translator.settings.replace(
                    beam_width=beam, max_length=self.tokens))
            return graphs[beam].translate_ids(tf.constant(ids))["target_ids"].numpy()

        return run

    def _transformers(self, model):
        import torch

        def run(ids, beam):
            with torch.no_grad():
                ids = torch.from_numpy(ids).long()
                out = model.generate(
                    input_ids=ids, attention_mask=ids != self.pad, num_beams=beam, do_sample=False,
                    max_length=self.tokens + 1, early_stopping=False,  # the decoder start token counts
                )
            return out[:, 1:].numpy()  # without the decoder start token

        return run

    def _ctranslate2(self, engine):
        def run(ids, beam):
            batch = [[self.pieces[int(i)] for i in row if i != self.pad] for row in ids]
            results = engine.translate_batch(batch, beam_size=beam, max_decoding_length=self.tokens)
            return [[self.ids[piece] for piece in result.hypotheses[0]] for result in results]

        return run

    def run(self, name, ids, beam):
        return [[int(i) for i in row if i not in (self.end, self.pad)] for row in self.runners[name](ids, beam)]

    def source_ids(self, sentences):
        import tensorflow as tf

        ids, _, _ = self.translator.preprocessor.serving_inputs(tf.constant(sentences))
        return ids.numpy()


# -- the measurement ---------------------------------------------------------------
def check_ids(engines, ids, beams):
    """`{beam: {engine: sentences equal to zoo float's}}` on `ids`."""
    agree = {}
    for beam in beams:
        reference = engines.run("zoo float", ids, beam)
        agree[beam] = {}
        for name in engines.runners:
            if name.endswith(("float", "float32")) and name != "zoo float":
                out = engines.run(name, ids, beam)
                agree[beam][name] = sum(a == b for a, b in zip(reference, out))
    return agree


def time_cell(engines, ids, beam, repeats):
    """Median CPU seconds per request of each engine, interleaved request by request."""
    names = list(engines.runners)
    for name in names:
        engines.run(name, ids, beam)  # tracing, warm-up
    seconds = {name: [] for name in names}
    for repeat in range(repeats):
        for name in names if repeat % 2 == 0 else names[::-1]:
            start = time.process_time()
            engines.run(name, ids, beam)
            seconds[name].append(time.process_time() - start)
    return {name: statistics.median(values) for name, values in seconds.items()}


def table(report):
    """The Markdown table: tokens/s per engine and zoo's ratios."""
    names = report["engines"]
    lines = ["| batch, beam | " + " | ".join(names) + " | zoo float / transformers float | zoo float / "
             "ctranslate2 float32 | zoo int8 / zoo float |", "|" + "---|" * (len(names) + 4)]
    for cell in report["cells"]:
        rate = cell["tokens_per_s"]

        def r(a, b):
            return f"{rate[a] / rate[b]:.2f}" if a in rate and b in rate else "-"

        lines.append(f"| {cell['batch']}, {cell['beam']} | " + " | ".join(f"{rate[n]:.0f}" for n in names)
                     + f" | {r('zoo float', 'transformers float')} | {r('zoo float', 'ctranslate2 float32')}"
                     f" | {r('zoo int8', 'zoo float')} |")
    return "\n".join(lines)


def main(argv=None):
    args = _parser().parse_args(argv)
    if args.smoke:
        # One beam width: each width is one more trace of every zoo graph (most of the smoke's time).
        args.tokens, args.batches, args.beams, args.repeats = 6, "1,2", "2", 1
    _one_thread()
    from bench.common import system_info

    batches = [int(b) for b in args.batches.split(",")]
    beams = [int(b) for b in args.beams.split(",")]
    from zoo.data.builtin_translation import generate_pairs

    sentences = [en for en, _ in generate_pairs(max(batches + [args.check_sentences]), seed=7)]
    with tempfile.TemporaryDirectory() as directory:
        architecture, vocab = (TINY, 0) if args.smoke else (OPUS_MT_EN_DE, OPUS_MT_EN_DE_VOCAB)
        hf_model = write_checkpoint(directory, architecture, vocab, args.tokens, corpus_pairs=300 if args.smoke else 2000)
        engines = Engines(directory, hf_model, args.tokens, args.engines.split(","), args.int8 == "true")
        report = {"system": system_info(), "architecture": architecture, "tokens": args.tokens,
                  "engines": list(engines.runners), "cells": []}
        report["ids_equal_to_zoo_float"] = check_ids(engines, engines.source_ids(sentences[: args.check_sentences]), beams)
        report["check_sentences"] = args.check_sentences
        for batch in batches:
            ids = engines.source_ids(sentences[:batch])
            for beam in beams:
                seconds = time_cell(engines, ids, beam, args.repeats)
                report["cells"].append(dict(
                    batch=batch, beam=beam, cpu_seconds=seconds,
                    tokens_per_s={n: batch * args.tokens / max(s, 1e-9) for n, s in seconds.items()},
                ))
    report["load_average_after"] = list(os.getloadavg())
    report["table"] = table(report)
    print(json.dumps(report, indent=1, default=str))
    print(report["table"])
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=1, default=str)
    return report


if __name__ == "__main__":
    main()
