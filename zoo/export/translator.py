"""The TF Serving export of a `TransformerTranslator`: strings in, strings out.

`serving_default` takes `sentences: tf.string [batch]` and returns
`translations: tf.string [batch]`, `scores: float32 [batch]` (the beam's
length-normalised log-probability) and `truncated: bool [batch]` (the
sentence had more tokens than the model reads; only its beginning was
translated). Tokenization (tensorflow-text ops), beam
search (`zoo.decoding.beam_search`, a `tf.while_loop` in the graph) and
detokenization all run inside the SavedModel, so the server needs nothing
of ours. `translate_ids` takes and returns token ids.

`translate_nbest` takes `sentences` and `n: int32 []` and returns the `n`
best hypotheses of the same search, best first: `translations: tf.string
[batch, n]`, `scores: float32 [batch, n]` (column 0 is `serving_default`'s
answer), `lengths: int32 [batch, n]` (generated tokens as the length
penalty counts them: the end token included) and `truncated: bool [batch]`
(as `serving_default`'s). `n` is clamped to
`[1, beam_width]` (the output has that many columns), so no `n` fails a
request. A slot no hypothesis reached (the sentence finished fewer than `n`
within `max_length`) is `""` with score `NEG_INF` (-1e9) and length 0.
`zoo.Translator.translate(n_best=...)` runs this same function.

Bad requests never fail the batch: invalid UTF-8 is repaired by the
tokenizer, empty or whitespace-only sentences translate to `""` with score
0 (in `translate_nbest`: one such hypothesis, then unreached slots), and
sentences longer than the model's maximum are truncated.

`quantize="int8"` exports an int8 copy of the model instead
(`zoo.export.quantization`), as the model `<name>_int8` by default, with
the same signatures and a record of what stayed float in
`assets.extra/zoo_quantization.json`.

Tokenizers plug in with `tokenize(strings) -> ragged ids` and
`detokenize(ids) -> strings`. The source tokenizer's `end_id`, when it has
one, does not count as content: a tokenizer that appends it to every
sentence (`zoo.text.MarianTokenizer`) still lets `""` translate to `""`.
`search_options` go to `beam_search` as they are
(`zoo.decoding.SearchSettings.search_options()`). `zoo.Translator.translate`
runs this module's functions in process, so it answers as the export does.
"""

import numpy as np
import tensorflow as tf

from zoo.decoding import beam_search
from zoo.decoding.beam_search import NEG_INF
from zoo.export.quantization import check_mode, quantize_model, quantized_name
from zoo.export.writer import export_saved_model

WARMUP_SENTENCES = ("Hello.", "", "This sentence is a warm-up request for the server.")
WARMUP_N = 2


class TranslatorModule(tf.Module):
    """A `tf.Module` holding the model, both tokenizers and the three signatures."""

    def __init__(
        self, model, source_tokenizer, target_tokenizer, beam_width=4, max_length=None, alpha=0.6, search_options=None
    ):
        super().__init__(name="translator")
        self.model = model
        self.source_tokenizer = source_tokenizer
        self.target_tokenizer = target_tokenizer
        self.beam_width = beam_width
        self.max_length = min(max_length or model.max_length, model.max_length)
        self.alpha = alpha
        self.search_options = dict(search_options or {})
        self.serving_default = tf.function(
            self._translate, input_signature=[tf.TensorSpec([None], tf.string, name="sentences")]
        )
        self.translate_ids = tf.function(
            self._translate_ids, input_signature=[tf.TensorSpec([None, None], tf.int32, name="source_ids")]
        )
        self.translate_nbest = tf.function(
            self.translate_nbest_strings,
            input_signature=[tf.TensorSpec([None], tf.string, name="sentences"), tf.TensorSpec([], tf.int32, name="n")],
        )
        # Not exported: the TensorFlow halves around the search, for
        # `zoo.Translator` on backends whose model cannot run in a TF graph.
        searched = [
            tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None], tf.float32),
            tf.TensorSpec([None], tf.bool), tf.TensorSpec([None], tf.bool),
        ]
        all_beams = [
            tf.TensorSpec([None, None, None], tf.int32), tf.TensorSpec([None, None], tf.float32), *searched[2:],
            tf.TensorSpec([], tf.int32),
        ]
        self.prepare = tf.function(self.prepare_strings, input_signature=[tf.TensorSpec([None], tf.string)])
        self.finish = tf.function(self.finish_strings, input_signature=searched)
        self.finish_nbest = tf.function(self.finish_nbest_strings, input_signature=all_beams)

    def _search(self, source_ids, all_beams=False):
        outputs = beam_search(
            self.model, source_ids, self.max_length, self.beam_width, self.alpha,
            return_all_beams=all_beams, **self.search_options
        )
        tokens, scores = outputs[2:] if all_beams else outputs
        return tf.cast(tokens, tf.int32), tf.cast(scores, tf.float32)

    def _translate_ids(self, source_ids):
        source_ids = source_ids[:, : self.model.max_length]
        tokens, scores = self._search(source_ids)
        return {"target_ids": tokens, "scores": scores}

    def source_ids(self, sentences):
        """Tokenized and truncated sources: `(ragged ids (B, (S)), content lengths (B,))`.

        A length counts the ids other than the source tokenizer's end id.
        """
        ids = self.source_tokenizer.tokenize(sentences)
        end_id = getattr(self.source_tokenizer, "end_id", None)
        content = ids if end_id is None else tf.ragged.boolean_mask(ids, tf.not_equal(ids, end_id))
        lengths = content.row_lengths()
        if getattr(self.source_tokenizer, "appends_end_id", False):
            # Truncate before the end id, then put it back (as transformers does).
            content = content[:, : self.model.max_length - 1]
            rows = content.nrows()
            end = tf.RaggedTensor.from_row_lengths(
                tf.fill([rows], tf.cast(end_id, content.dtype)), tf.ones([rows], rows.dtype)
            )
            ids = tf.concat([content, end], axis=1)
        return ids[:, : self.model.max_length], lengths

    def prepare_strings(self, sentences):
        """Tokenizes and truncates: `(source ids (B, S) int32, empty (B,), truncated (B,))`.

        The ids are right-padded with the model's pad id to the longest
        sentence (at most the model's `max_length`).
        """
        ids, lengths = self.source_ids(sentences)
        dense = ids.to_tensor(default_value=self.model.pad_token_id)
        # At least one column, so a batch of empty sentences still has a
        # shape; never more than max_length (learned positions end there).
        missing = tf.maximum(1 - tf.shape(dense)[1], 0)
        dense = tf.pad(dense, [[0, 0], [0, missing]], constant_values=self.model.pad_token_id)
        return tf.cast(dense, tf.int32), tf.equal(lengths, 0), self.too_long(lengths)

    def _search_sentences(self, sentences, all_beams=False):
        """Tokenizes, truncates and searches: `(tokens (B, [W,] L), scores (B, [W]), empty (B,),
        truncated (B,))`."""
        source_ids, empty, truncated = self.prepare_strings(sentences)
        tokens, scores = self._search(source_ids, all_beams)  # (B, [W,] L), (B, [W])
        return tokens, scores, empty, truncated

    def translate_strings(self, sentences):
        """`{"translations", "scores", "truncated"}` of `(B,)` sentences, `(B,)` each. What
        `serving_default` runs."""
        return self.finish_strings(*self._search_sentences(sentences))

    def finish_strings(self, tokens, scores, empty, truncated):
        """`translate_strings`' outputs from the best hypotheses `(B, L)` and scores `(B,)` of
        `prepare_strings`' sources."""
        translations = self.target_tokenizer.detokenize(tokens)
        return {
            "translations": tf.where(empty, tf.constant(""), translations),
            "scores": tf.where(empty, tf.zeros_like(scores), scores),
            "truncated": truncated,
        }

    def translate_nbest_strings(self, sentences, n):
        """`{"translations", "scores", "lengths"}`, each `(B, n)`: the `n` best hypotheses
        (`n` clamped to `[1, beam_width]`), best first, and `truncated` `(B,)`. What
        `translate_nbest` runs; see the module docstring."""
        return self.finish_nbest_strings(*self._search_sentences(sentences, all_beams=True), n)

    def finish_nbest_strings(self, tokens, scores, empty, truncated, n):
        """`translate_nbest_strings`' outputs from all beams' hypotheses `(B, W, L)` and
        scores `(B, W)` of `prepare_strings`' sources."""
        n = tf.clip_by_value(tf.cast(n, tf.int32), 1, self.beam_width)
        tokens, scores = tokens[:, :n], scores[:, :n]  # (B, n, L), (B, n)
        reached = tf.logical_and(scores > NEG_INF / 2, tf.logical_not(empty)[:, None])  # (B, n)
        is_end = tf.equal(tokens, self.model.end_token_id)
        ended_at = tf.argmax(tf.cast(is_end, tf.int32), axis=-1, output_type=tf.int32) + 1  # (B, n)
        lengths = tf.where(tf.reduce_any(is_end, axis=-1), ended_at, tf.shape(tokens)[-1])
        flat = self.target_tokenizer.detokenize(tf.reshape(tokens, [-1, tf.shape(tokens)[-1]]))  # (B * n,)
        translations = tf.reshape(flat, tf.shape(scores))
        # An empty sentence has one hypothesis, the empty translation (score 0, as serving_default).
        empty_first = tf.logical_and(empty[:, None], tf.equal(tf.range(n), 0)[None, :])  # (B, n)
        floor = tf.where(empty_first, 0.0, NEG_INF)
        return {
            "translations": tf.where(reached, translations, ""),
            "scores": tf.where(reached, scores, floor),
            "lengths": tf.where(reached, lengths, 0),
            "truncated": truncated,
        }

    def too_long(self, lengths):
        """`(B,)` bool: content lengths (from `source_ids`) over what the model reads, so cut."""
        # Content tokens the model reads: all of max_length, less the end id when one is appended.
        room = self.model.max_length - int(bool(getattr(self.source_tokenizer, "appends_end_id", False)))
        return lengths > room

    def _translate(self, sentences):
        return self.translate_strings(sentences)


def export_translator(
    model,
    source_tokenizer,
    target_tokenizer,
    base,
    name=None,
    version=None,
    beam_width=4,
    max_length=None,
    alpha=0.6,
    search_options=None,
    quantize=None,
):
    """Writes `<base>/<name>/<version>/` (next free version) and returns its path.

    The SavedModel carries warm-up requests and passes the TF Serving op
    audit; a failed audit leaves no version behind.

    Args:
        name: str. Model name. Defaults to `"translator"`, or
            `"translator_int8"` with `quantize="int8"`.
        quantize: None or `"int8"`. Export an int8 copy of the model
            (`zoo.export.quantization.quantize_model`); `model` itself is
            not changed. Defaults to `None` (float).
    """
    name = quantized_name("translator", check_mode(quantize)) if name is None else name
    summary = None
    if quantize is not None:
        model, summary = quantize_model(model, quantize)
    module = TranslatorModule(model, source_tokenizer, target_tokenizer, beam_width, max_length, alpha, search_options)

    sentences = [s.encode("utf-8") for s in WARMUP_SENTENCES]
    return export_saved_model(
        base,
        name,
        {
            "serving_default": module.serving_default,
            "translate_ids": module.translate_ids,
            "translate_nbest": module.translate_nbest,
        },
        resources=(source_tokenizer, target_tokenizer),
        warmup_requests=[{"sentences": sentences}, ("translate_nbest", {"sentences": sentences, "n": np.int32(WARMUP_N)})],
        version=version,
        quantization=summary,
    )


def translate_with_saved_model(saved_model_dir, sentences):
    """Runs `serving_default` of an export exactly as TF Serving would; returns strings."""
    import tensorflow_text  # noqa: F401  registers the tokenizer ops

    loaded = tf.saved_model.load(saved_model_dir)
    outputs = loaded.signatures["serving_default"](sentences=tf.constant(sentences, tf.string))
    return [t.decode("utf-8") for t in outputs["translations"].numpy()]
