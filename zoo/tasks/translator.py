"""`Translator`: a translator as one object to load, call, fine-tune, save and export.

It owns a `keras.Model` (`translator.model`, a `TransformerTranslator`)
rather than being one (keras-hub's tasks are `keras.Model`s, with the
preprocessor applied in `tf.data`). Three reasons: the task folder stays
what `zoo.tasks.task` saves (`model.keras` is the plain model that
converters, recipes, quantization and the distribution code already take);
the preprocessor is TensorFlow (tokenizers, ragged tensors) and could not
be a layer of a model that also runs on JAX and PyTorch; and the model's
compile state (optimizer, loss) stays where Keras keeps it, so `fit` is
`translator.model.fit` on the preprocessor's batches, callbacks and
progress bars included, and freezing or LoRA are the model's own
(`translator.model.trainable`, `enable_lora`).

Where each conversion lives: strings <-> ids in `self.preprocessor`
(`zoo.preprocessing.TranslationPreprocessor`, for training batches, in-process
inference and the export alike); the inference graph in
`zoo.tasks.translator_graph.TranslatorGraph`; the SavedModel writing in
`zoo.export.writer` (which knows no model).
"""

import os
import warnings

import keras
import numpy as np
import tensorflow as tf

from zoo.convert.marian import load_marian
from zoo.decoding.beam_search import NEG_INF
from zoo.decoding.search_settings import SearchSettings
from zoo.export.quantization import check_mode, quantize_model, quantized_name
from zoo.export.writer import export_saved_model
from zoo.files import read_json
from zoo.models.losses import SparseCrossentropyWithSmoothing
from zoo.preprocessing import TranslationPreprocessor
from zoo.tasks.compiled_call import CompiledCall
from zoo.tasks.fine_tuning import fine_tuning_optimizer, merge_lora
from zoo.tasks.task import Task, check_files, load_keras_model
from zoo.tasks.translator_graph import TranslatorGraph
from zoo.tasks.translator_inputs import bucketed, check_special_ids, sentence_bytes, text_of, token_names
from zoo.text import load_tokenizer

SIDES = ("source_tokenizer", "target_tokenizer")
# What recipes/translation.py's TranslationConfig decoded with when a run's
# config.json lacks a field (folders written before `task.json`).
_RECIPE_DEFAULTS = dict(beam_width=4, length_penalty=0.6, max_length=40)
# `compile()`'s default optimizer, for fine-tuning a trained model: the rate keras-hub's Seq2SeqLM
# and the Hugging Face translation fine-tuning examples use, their weight decay, and the gradient
# clipping of transformers' Trainer (global norm 1, zoo.tasks.fine_tuning.GLOBAL_CLIPNORM). Training from scratch wants more (the recipe's warm-up schedule).
FINE_TUNING_LEARNING_RATE = 2e-5
FINE_TUNING_WEIGHT_DECAY = 0.01
LABEL_SMOOTHING = 0.1


class Translator(Task):
    """A preprocessor, a `TransformerTranslator` and its decoding settings, as one thing.

    `translate` runs the very graph the TF Serving export runs
    (`TranslatorGraph`: the preprocessor's tokenization and truncation,
    beam search, detokenization), so it answers as the export does, bad
    input included: an empty list gives `[]`, empty or whitespace-only
    sentences `""` (score 0), invalid UTF-8 is repaired, over-long sentences
    are truncated. `fit` trains through the same preprocessor, so training
    sees the ids serving sends. On JAX and PyTorch the beam search runs on
    the backend (`zoo.tasks.compiled_call`) between the same TensorFlow
    halves, within float rounding of the export; `export` still writes the
    TensorFlow SavedModel (see `Task.export`).

    Args:
        model: `zoo.models.TransformerTranslator`. Its pad, start and end
            ids must be the tokenizers' (a ValueError names any that differ).
        source_tokenizer: a `zoo.text` tokenizer for the source language.
        target_tokenizer: a `zoo.text` tokenizer for the target language.
        settings: `zoo.decoding.SearchSettings`. How to decode (beam width
            (1: greedy), length penalty and its form, max length, banned and
            forced tokens, search rules, early stopping). Defaults to
            `SearchSettings()` (beam 4, GNMT penalty 0.6).
        max_length: int. Tokens per source and per target that the
            preprocessor keeps, in training and serving alike; at most the
            model's `max_length`. Defaults to `None`: the model's.

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

    def __init__(self, model, source_tokenizer, target_tokenizer, settings=None, max_length=None):
        super().__init__(model)
        settings = SearchSettings() if settings is None else settings
        if not isinstance(settings, SearchSettings):
            raise TypeError(f"settings must be a zoo.decoding.SearchSettings. Received: {type(settings).__name__}")
        max_length = model.max_length if max_length is None else max_length
        if not isinstance(max_length, int) or not 2 <= max_length <= model.max_length:
            raise ValueError(
                f"max_length must be an int from 2 to the model's max_length {model.max_length}. "
                f"Received: max_length={max_length!r}"
            )
        self.preprocessor = TranslationPreprocessor(source_tokenizer, target_tokenizer, max_length)
        check_special_ids(model, self.preprocessor)
        settings.check_model(model)
        self.settings = settings
        self._graphs = {}  # (settings, model) -> TranslatorGraph (its functions trace once)
        self._searches = {}  # (settings, model, all beams) -> CompiledCall, off TensorFlow

    @property
    def source_tokenizer(self):
        return self.preprocessor.source_tokenizer

    @property
    def target_tokenizer(self):
        return self.preprocessor.target_tokenizer

    def graph(self, settings=None):
        """The `TranslatorGraph` that `translate` runs (and `export` writes), for `settings` (default: the
        translator's); one per settings and model, so its functions trace once."""
        settings = self.settings if settings is None else settings
        key = (settings, id(self.model))
        if key not in self._graphs:
            settings.check_model(self.model)
            self._graphs[key] = TranslatorGraph(self.model, self.preprocessor, settings)
        return self._graphs[key]

    # -- training ----------------------------------------------------------------
    def compile(self, optimizer="auto", loss="auto", weighted_metrics="auto", **kwargs):
        """Compiles the model for `fit` (`keras.Model.compile`); `"auto"` picks the defaults below.

        Args:
            optimizer: `"auto"`: AdamW at 2e-5, weight decay 0.01, gradients
                clipped to global norm 1 (`zoo.tasks.fine_tuning.GLOBAL_CLIPNORM`,
                the classifier's rule too): for fine-tuning a trained model. From
                scratch, pass a higher rate or a schedule (the recipe's
                `zoo.schedules.InverseSqrtSchedule`).
            loss: `"auto"`: `SparseCrossentropyWithSmoothing(0.1)` over real tokens.
            weighted_metrics: `"auto"`: token accuracy (`"accuracy"`).
            **kwargs: more `keras.Model.compile` arguments.
        """
        if optimizer == "auto":
            optimizer = fine_tuning_optimizer(FINE_TUNING_LEARNING_RATE, FINE_TUNING_WEIGHT_DECAY)
        if loss == "auto":
            loss = SparseCrossentropyWithSmoothing(LABEL_SMOOTHING)
        if weighted_metrics == "auto":
            weighted_metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
        self.model.compile(optimizer=optimizer, loss=loss, weighted_metrics=weighted_metrics, **kwargs)

    def fit(self, x, validation_data=None, epochs=1, batch_size=32, callbacks=None, verbose="auto",
            overlong="truncate", shuffle=True, seed=0, **kwargs):
        """Trains the model on sentence pairs (fine-tunes it, when it was trained or converted).

        Batches come from the preprocessor (`TranslationPreprocessor.batches`):
        sources truncated as serving truncates them, padding the tokenizers'
        pad ids with weight 0, pairs empty once tokenized left out. A model
        not compiled yet is compiled with `compile()`'s defaults first. Runs
        on any Keras backend (the batches are `tf.data`, which Keras' JAX
        and PyTorch trainers read).

        Args:
            x: a list of `(source, target)` str pairs, the path of a
                `source<TAB>target` file, or a `tf.data.Dataset` of
                `(source, target)` tf.string pairs (one or a batch per element).
            validation_data: the same kinds, or None. Defaults to `None`.
            epochs: int. Defaults to `1`.
            batch_size: int. Pairs per batch (a dataset of batches keeps its
                own). Defaults to `32`.
            callbacks: list of `keras.callbacks.Callback`. Defaults to `None`.
            verbose: Keras' `verbose` (`"auto"`, 0, 1, 2); also prints what
                was read and kept unless 0. Defaults to `"auto"`.
            overlong: `"truncate"` or `"drop"` pairs longer than the
                preprocessor's `max_length`. Defaults to `"truncate"`.
            shuffle: bool. Shuffle pairs (a list or a file; anew each epoch, with
                `seed`); a dataset is read in its own order. Defaults to `True`.
            seed: int. Defaults to `0`.
            **kwargs: more `keras.Model.fit` arguments (`initial_epoch`,
                `steps_per_epoch`, ...).

        Returns:
            Keras' `History`.

        Raises:
            TypeError: `x` or `validation_data` is not string pairs (named).
            zoo.data.translation_data.DataError: no usable pairs (named why).
        """
        log = None if verbose == 0 else print
        train, _ = self.preprocessor.batches(x, batch_size, shuffle=shuffle, seed=seed, overlong=overlong, log=log)
        validation = None
        if validation_data is not None:
            validation, _ = self.preprocessor.batches(validation_data, batch_size, False, overlong=overlong, log=log)
        if not self.model.compiled:
            self.compile()
        with warnings.catch_warnings():
            if "steps_per_epoch" not in kwargs:  # a dataset of unknown length ending is an epoch ending
                warnings.filterwarnings("ignore", message="Your input ran out of data", category=UserWarning)
            return self.model.fit(
                train, validation_data=validation, epochs=epochs, callbacks=callbacks, verbose=verbose,
                shuffle=False, **kwargs,  # the batches are shuffled already
            )

    # -- inference ---------------------------------------------------------------
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
        sentences = sentence_bytes(texts)
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
                    results.append((text_of(text), float(score)) if return_scores else text_of(text))
                continue
            for texts_row, scores_row in zip(out["translations"].numpy(), out["scores"].numpy()):
                # Slots no hypothesis reached have the search's NEG_INF score.
                kept = [(text_of(t), float(s)) for t, s in zip(texts_row, scores_row) if s > NEG_INF / 2][:n_best]
                results.append(kept if return_scores else [t for t, _ in kept])
        return results

    def _run(self, settings, batch, n_best=None):
        """The export's `serving_default` (or, with `n_best`, `translate_nbest`) outputs for `batch`.

        On TensorFlow, the export's functions themselves; elsewhere their
        TensorFlow halves around a beam search on the active backend.
        """
        graph = self.graph(settings)
        n = tf.constant(n_best or 1, tf.int32)
        if keras.backend.backend() == "tensorflow":
            return graph.serving_default(batch) if n_best is None else graph.translate_nbest(batch, n)
        source_ids, empty, truncated = graph.prepare(batch)
        tokens, scores = (tf.constant(x) for x in self._search(settings, source_ids.numpy(), n_best is not None))
        if n_best is None:
            return graph.finish(tokens, scores, empty, truncated)
        return graph.finish_nbest(tokens, scores, empty, truncated, n)

    def _search(self, settings, source_ids, all_beams=False):
        """`TranslatorGraph.search` of `(B, S)` source ids on the active backend (jitted on JAX):
        NumPy `(tokens (B, [W,] L) int32, scores (B, [W]) float32)`."""
        graph = self.graph(settings)
        key = (settings, id(self.model), all_beams)
        if key not in self._searches:
            self._searches[key] = CompiledCall(self.model, lambda ids: graph.search(ids, all_beams))
        return self._searches[key](bucketed(source_ids, self.model))

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
        sentences = sentence_bytes(texts)
        flags = []
        for start in range(0, len(sentences), batch_size):
            _, lengths = self.preprocessor.source_ids(tf.constant(sentences[start : start + batch_size], tf.string))
            flags.extend(bool(flag) for flag in self.preprocessor.too_long(lengths).numpy())
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
        (text,) = sentence_bytes([sentence])
        source, empty, _ = (x.numpy() for x in self.preprocessor.serving_inputs(tf.constant([text], tf.string)))
        if empty[0]:
            raise ValueError(f"cross_attention needs a sentence with at least one token. Received: {sentence!r}")
        model = self.model
        if keras.backend.backend() == "tensorflow":
            generated = self.graph().translate_ids(source)["target_ids"].numpy()[0]  # (L,), padded after the end
        else:
            generated = self._search(self.settings, source)[0][0]
        ended = np.flatnonzero(generated == model.end_token_id)
        length = int(ended[0]) + 1 if len(ended) else len(generated)
        target_in = np.concatenate([[model.start_token_id], generated[: length - 1]])[None].astype("int32")  # (1, T)
        mask = model.source_padding_mask(source)
        _, scores = model.decode(target_in, model.encode(source, mask), mask, return_attention_scores=True)
        weights = keras.ops.convert_to_numpy(scores[layer]["cross"]).astype("float32")[0]  # (H, T, S)
        source_tokens = token_names(self.source_tokenizer, source[0])
        return source_tokens, token_names(self.target_tokenizer, generated[:length]), weights

    def export(self, base, name=None, version=None, quantize=None):
        """Writes the TF Serving export `<base>/<name>/<version>/` (the next free version unless given)
        and returns its path; on JAX or PyTorch through the TensorFlow backend in a subprocess
        (`Task.export`).

        The SavedModel holds `TranslatorGraph`'s signatures and warm-up
        requests and passes the TF Serving op audit
        (`zoo.export.writer.export_saved_model`); a failed audit leaves no
        version behind. `quantize="int8"` exports an int8 copy of the model
        (`zoo.export.quantization.quantize_model`; this translator is not
        changed) as `translator_int8` unless `name` is given; `name`
        defaults to `translator`. LoRA is merged into the kernels first
        (`zoo.tasks.fine_tuning.merge_lora`): the export holds no LoRA.
        """
        name = quantized_name("translator", check_mode(quantize)) if name is None else name
        merge_lora(self)
        if keras.backend.backend() != "tensorflow":
            return self._export_on_tensorflow(base, name, version, quantize)
        model, summary = quantize_model(self.model, quantize) if quantize else (self.model, None)
        graph = self.graph() if model is self.model else TranslatorGraph(model, self.preprocessor, self.settings)
        return export_saved_model(
            base, name, graph.endpoints(), resources=(self.preprocessor,), warmup_requests=graph.warmup_requests(),
            version=version, quantization=summary,
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
        return {"search": self.settings.get_config(), "preprocessor": self.preprocessor.get_config()}

    def _write_files(self, directory):
        self.source_tokenizer.save(os.path.join(directory, SIDES[0]))
        self.target_tokenizer.save(os.path.join(directory, SIDES[1]))

    @classmethod
    def _from_folder(cls, directory, model, settings):
        tokenizers = [load_tokenizer(os.path.join(directory, side)) for side in SIDES]
        preprocessor = settings.get("preprocessor", {})  # folders before it: the model's max_length
        if not isinstance(preprocessor, dict) or set(preprocessor) - {"max_length"}:
            raise ValueError(
                f"{directory}/task.json: settings.preprocessor must be {{'max_length': int}}. "
                f"Received: {preprocessor!r}"
            )
        search = SearchSettings.from_config(settings.get("search", {}))
        return cls(model, *tokenizers, search, max_length=preprocessor.get("max_length"))

    @classmethod
    def _load_earlier(cls, directory):
        """A translation recipe's run folder (`config.json`: beam width, length
        penalty, max length) or `tools/convert_marian.py`'s output before
        `task.json` (`search_options.json`)."""
        search_options, config = (os.path.join(directory, name) for name in ("search_options.json", "config.json"))
        if os.path.exists(search_options):
            settings = SearchSettings.from_config(read_json(search_options))
        elif os.path.exists(config) and os.path.isdir(os.path.join(directory, SIDES[0])):
            config = {**_RECIPE_DEFAULTS, **read_json(config)}
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
