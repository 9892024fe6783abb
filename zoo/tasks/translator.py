"""`Translator`: a trained translator as one object to load, call, save and export."""

import os

import keras
import numpy as np
import tensorflow as tf

from zoo.convert.marian import load_marian
from zoo.decoding.beam_search import NEG_INF, beam_search
from zoo.decoding.search_settings import SearchSettings
from zoo.export.translator import TranslatorModule, export_translator
from zoo.tasks.compiled_call import CompiledCall
from zoo.tasks.task import Task, check_files, load_keras_model, read_json_file
from zoo.text import load_tokenizer

SIDES = ("source_tokenizer", "target_tokenizer")
# What recipes/translation.py's TranslationConfig decoded with when a run's
# config.json lacks a field (folders written before `task.json`).
_RECIPE_DEFAULTS = dict(beam_width=4, length_penalty=0.6, max_length=40)


def _sentences(texts):
    """`texts` as a list of bytes (str encoded as UTF-8); TypeError for anything else."""
    if isinstance(texts, (str, bytes)):
        raise TypeError(
            f"translate takes a list of sentences. Received: a single {type(texts).__name__} "
            f"{texts[:40]!r}; pass [text]."
        )
    try:
        items = list(texts)
    except TypeError:
        raise TypeError(f"translate takes a list of sentences. Received: {type(texts).__name__}") from None
    for i, text in enumerate(items):
        if not isinstance(text, (str, bytes)):
            raise TypeError(f"Sentences must be str or bytes. Received: {type(text).__name__} at index {i}")
    return [t.encode("utf-8") if isinstance(t, str) else t for t in items]


def _bucketed(source_ids, model):
    """`(B, S)` ids right-padded to the next power of two (at least 8, at most `max_length`) columns.

    A jitted search compiles once per input shape; padding (masked, so the
    same translations) keeps the shapes of varied batches to a few.
    """
    width = source_ids.shape[1]
    bucket = min(max(8, 1 << (width - 1).bit_length()), max(model.max_length, width))
    return np.pad(source_ids, ((0, 0), (0, bucket - width)), constant_values=model.pad_token_id)


def _text(value):
    return value.decode("utf-8", errors="replace")


def _token_names(tokenizer, ids):
    """The vocabulary's piece for each id (a list, or a piece-to-id dict), else the id itself."""
    vocabulary = getattr(tokenizer, "vocabulary", None)
    if isinstance(vocabulary, dict):
        names = {i: piece for piece, i in vocabulary.items()}
        return [names.get(int(i), str(int(i))) for i in ids]
    if isinstance(vocabulary, (list, tuple)):
        return [vocabulary[int(i)] if 0 <= int(i) < len(vocabulary) else str(int(i)) for i in ids]
    return [str(int(i)) for i in ids]


class Translator(Task):
    """Tokenizers, a `TransformerTranslator` and its decoding settings, as one thing.

    `translate` runs the very graph the TF Serving export runs (the same
    `zoo.export.TranslatorModule`: in-graph tokenization, truncation to the
    model's `max_length`, `zoo.decoding.beam_search`, detokenization), so it
    answers exactly as the export does, bad input included: an empty list
    gives `[]`, empty or whitespace-only sentences give `""` (score 0),
    invalid UTF-8 bytes are repaired, over-long sentences are truncated.
    On the JAX and PyTorch backends tokenization and detokenization are the
    same TensorFlow functions and the beam search runs on the backend
    (`zoo.tasks.compiled_call`: jitted on JAX), so the answers are the
    export's within float rounding; `export` still writes the TensorFlow
    SavedModel (see `Task.export`).

    Args:
        model: `zoo.models.TransformerTranslator`.
        source_tokenizer: a `zoo.text` tokenizer for the source language.
        target_tokenizer: a `zoo.text` tokenizer for the target language.
        settings: `zoo.decoding.SearchSettings`. How to decode (beam width
            (1: greedy), length penalty and its form, max length, banned and
            forced tokens, search rules, early stopping). Defaults to
            `SearchSettings()` (beam 4, GNMT penalty 0.6).

    Example:
    >>> from zoo.models import TransformerTranslator
    >>> from zoo.text import WordPieceTokenizer
    >>> source = WordPieceTokenizer.from_corpus(["I buy three apples."] * 5, 60)
    >>> target = WordPieceTokenizer.from_corpus(["Ich kaufe drei Äpfel."] * 5, 60)
    >>> model = TransformerTranslator(source.vocabulary_size, target.vocabulary_size,
    ...     num_encoder_layers=1, num_decoder_layers=1, d_model=16, num_heads=2, d_ff=32, max_length=8)
    >>> translator = Translator(model, source, target, SearchSettings(beam_width=2))
    >>> outputs = translator.translate(["I buy three apples.", ""])
    >>> len(outputs), outputs[1]
    (2, '')
    """

    files = tuple(os.path.join(side, "tokenizer.json") for side in SIDES)

    def __init__(self, model, source_tokenizer, target_tokenizer, settings=None):
        super().__init__(model)
        settings = SearchSettings() if settings is None else settings
        if not isinstance(settings, SearchSettings):
            raise TypeError(f"settings must be a zoo.decoding.SearchSettings. Received: {type(settings).__name__}")
        self.source_tokenizer = source_tokenizer
        self.target_tokenizer = target_tokenizer
        self.settings = settings
        self._modules = {}  # (settings, model, tokenizers) -> TranslatorModule (its functions trace once)
        self._searches = {}  # (settings, model, all beams) -> CompiledCall, off TensorFlow

    def _module(self, settings):
        key = (settings, id(self.model), id(self.source_tokenizer), id(self.target_tokenizer))
        if key not in self._modules:
            self._modules[key] = TranslatorModule(
                self.model, self.source_tokenizer, self.target_tokenizer, beam_width=settings.beam_width,
                max_length=settings.max_length, alpha=settings.alpha, search_options=settings.search_options(),
            )
        return self._modules[key]

    def translate(self, texts, return_scores=False, n_best=None, batch_size=64, **overrides):
        """Translates a list of sentences.

        Args:
            texts: list of str or bytes.
            return_scores: bool. Pair each translation with its score (the
                length-normalised log-probability). Defaults to `False`.
            n_best: int or None. Return up to `n_best` (at most the beam
                width) hypotheses per sentence, best first, as the export's
                `translate_nbest` signature does; fewer when fewer finished
                (an empty sentence has one, `""`). Defaults to `None`: one.
            batch_size: int. Sentences per call of the graph (the export
                answers a request as one batch). Defaults to `64`.
            **overrides: `SearchSettings` fields for this call only, e.g.
                `beam_width=1` (greedy) or `alpha=1.0`.

        Returns:
            A list with one entry per sentence: a str, `(str, float)` with
            `return_scores`, or a list of those with `n_best`.
        """
        settings = self.settings.replace(**overrides) if overrides else self.settings
        sentences = _sentences(texts)
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int. Received: batch_size={batch_size!r}")
        if n_best is not None and not (isinstance(n_best, int) and 1 <= n_best <= settings.beam_width):
            raise ValueError(
                f"n_best must be an int from 1 to the beam width {settings.beam_width}. Received: n_best={n_best!r}"
            )
        results = []
        for start in range(0, len(sentences), batch_size):
            batch = tf.constant(sentences[start : start + batch_size], tf.string)
            out = self._run(settings, batch, n_best)
            if n_best is None:
                for text, score in zip(out["translations"].numpy(), out["scores"].numpy()):
                    results.append((_text(text), float(score)) if return_scores else _text(text))
                continue
            for texts_row, scores_row in zip(out["translations"].numpy(), out["scores"].numpy()):
                # Slots no hypothesis reached have the search's NEG_INF score.
                kept = [(_text(t), float(s)) for t, s in zip(texts_row, scores_row) if s > NEG_INF / 2][:n_best]
                results.append(kept if return_scores else [t for t, _ in kept])
        return results

    def _run(self, settings, batch, n_best=None):
        """The export's `serving_default` (or, with `n_best`, `translate_nbest`) outputs for `batch`.

        On TensorFlow, the export's functions themselves; elsewhere their
        TensorFlow halves around a beam search on the active backend.
        """
        module = self._module(settings)
        n = tf.constant(n_best or 1, tf.int32)
        if keras.backend.backend() == "tensorflow":
            return module.serving_default(batch) if n_best is None else module.translate_nbest(batch, n)
        source_ids, empty, truncated = module.prepare(batch)
        tokens, scores = (tf.constant(x) for x in self._search(settings, source_ids.numpy(), n_best is not None))
        if n_best is None:
            return module.finish(tokens, scores, empty, truncated)
        return module.finish_nbest(tokens, scores, empty, truncated, n)

    def _search(self, settings, source_ids, all_beams=False):
        """`zoo.decoding.beam_search` of `(B, S)` source ids on the active backend (jitted on JAX):
        NumPy `(tokens (B, [W,] L) int32, scores (B, [W]) float32)`."""
        module = self._module(settings)
        key = (settings, id(self.model), all_beams)
        if key not in self._searches:
            options = dict(
                max_length=module.max_length, beam_width=module.beam_width, alpha=module.alpha,
                return_all_beams=all_beams, **module.search_options,
            )
            self._searches[key] = CompiledCall(self.model, lambda ids: beam_search(self.model, ids, **options))
        tokens, scores = self._searches[key](_bucketed(source_ids, self.model))[-2:]
        return tokens.astype("int32"), scores.astype("float32")

    def is_truncated(self, texts, batch_size=64):
        """Whether each sentence has more tokens than the model reads.

        `translate` (and the export, in its `truncated` output) translates
        only the beginning of such a sentence.

        Args:
            texts: list of str or bytes.
            batch_size: int. Sentences tokenized at a time. Defaults to `64`.

        Returns:
            A list of bool, one per sentence.
        """
        sentences = _sentences(texts)
        module = self._module(self.settings)
        flags = []
        for start in range(0, len(sentences), batch_size):
            _, lengths = module.source_ids(tf.constant(sentences[start : start + batch_size], tf.string))
            flags.extend(bool(flag) for flag in module.too_long(lengths).numpy())
        return flags

    def cross_attention(self, sentence, layer=-1):
        """Which source tokens each token of `translate`'s translation of `sentence` attended to.

        Translates `sentence` with the translator's settings, then runs the
        decoder over that translation (teacher-forced) to read the
        cross-attention weights of one decoder layer.

        Args:
            sentence: str or bytes. One sentence with at least one token.
            layer: int. The decoder layer, Python-indexed. Defaults to `-1`
                (the last).

        Returns:
            `(source_tokens, target_tokens, weights)`: the `S` source tokens
            the model read (after truncation), the `T` tokens of the
            translation up to and including its end token, and the
            `(H, T, S)` attention weights (each row sums to 1).
        """
        (text,) = _sentences([sentence])
        module = self._module(self.settings)
        ids, lengths = module.source_ids(tf.constant([text], tf.string))
        if int(lengths[0]) == 0:
            raise ValueError(f"cross_attention needs a sentence with at least one token. Received: {sentence!r}")
        model = self.model
        source = ids.to_tensor(default_value=model.pad_token_id).numpy().astype("int32")  # (1, S)
        if keras.backend.backend() == "tensorflow":
            generated = module.translate_ids(source)["target_ids"].numpy()[0]  # (L,), padded after the end token
        else:
            generated = self._search(self.settings, source)[0][0]
        ended = np.flatnonzero(generated == model.end_token_id)
        length = int(ended[0]) + 1 if len(ended) else len(generated)
        target_in = np.concatenate([[model.start_token_id], generated[: length - 1]])[None].astype("int32")  # (1, T)
        mask = model.source_padding_mask(source)
        _, scores = model.decode(target_in, model.encode(source, mask), mask, return_attention_scores=True)
        weights = keras.ops.convert_to_numpy(scores[layer]["cross"]).astype("float32")[0]  # (H, T, S)
        source_tokens = _token_names(self.source_tokenizer, source[0])
        return source_tokens, _token_names(self.target_tokenizer, generated[:length]), weights

    def export(self, base, name=None, version=None, quantize=None):
        """Writes the TF Serving export `<base>/<name>/<version>/` (`zoo.export.export_translator`); on
        JAX or PyTorch through the TensorFlow backend in a subprocess (`Task.export`).

        `quantize="int8"` exports an int8 copy of the model (this
        translator is not changed) as `translator_int8` unless `name` is
        given; `name` defaults to `translator`.
        """
        if keras.backend.backend() != "tensorflow":
            return self._export_on_tensorflow(base, name, version, quantize)
        s = self.settings
        return export_translator(
            self.model, self.source_tokenizer, self.target_tokenizer, base, name=name, version=version,
            beam_width=s.beam_width, max_length=s.max_length, alpha=s.alpha, search_options=s.search_options(),
            quantize=quantize,
        )

    @classmethod
    def from_marian(cls, path, dtype=None, **overrides):
        """A HF MarianMT (OPUS-MT) checkpoint folder as a `Translator`, decoding as
        transformers' `generate` does with the checkpoint's settings
        (`zoo.convert.marian`); `overrides` change `SearchSettings` fields."""
        parts = load_marian(path, dtype=dtype)
        return cls(parts.model, parts.source_tokenizer, parts.target_tokenizer, parts.settings.replace(**overrides))

    # -- the saved folder ------------------------------------------------------
    def get_settings(self):
        return {"search": self.settings.get_config()}

    def _write_files(self, directory):
        self.source_tokenizer.save(os.path.join(directory, SIDES[0]))
        self.target_tokenizer.save(os.path.join(directory, SIDES[1]))

    @classmethod
    def _from_folder(cls, directory, model, settings):
        tokenizers = [load_tokenizer(os.path.join(directory, side)) for side in SIDES]
        return cls(model, *tokenizers, SearchSettings.from_config(settings.get("search", {})))

    @classmethod
    def _load_earlier(cls, directory):
        """A translation recipe's run folder (`config.json`: beam width, length
        penalty, max length) or `tools/convert_marian.py`'s output before
        `task.json` (`search_options.json`)."""
        search_options, config = (os.path.join(directory, name) for name in ("search_options.json", "config.json"))
        if os.path.exists(search_options):
            settings = SearchSettings.from_config(read_json_file(search_options))
        elif os.path.exists(config) and os.path.isdir(os.path.join(directory, SIDES[0])):
            config = {**_RECIPE_DEFAULTS, **read_json_file(config)}
            settings = SearchSettings(
                beam_width=config["beam_width"], alpha=config["length_penalty"], max_length=config["max_length"]
            )
        else:
            return None
        check_files(directory, ("model.keras", *cls.files), "translation run")
        tokenizers = [load_tokenizer(os.path.join(directory, side)) for side in SIDES]
        return cls(load_keras_model(directory), *tokenizers, settings)

    def __repr__(self):
        return (
            f"<Translator {type(self.model).__name__} ({self.model.count_params():,} parameters), "
            f"{type(self.source_tokenizer).__name__} -> {type(self.target_tokenizer).__name__}, {self.settings}>"
        )
