"""`TranslatorGraph`: a translator's inference graph, strings in, strings out; what its export serves.

`zoo.Translator.translate` runs it in process and `zoo.Translator.export`
hands its signatures to `zoo.export.writer.export_saved_model`, so both
answer alike. Preprocessing is the task's `TranslationPreprocessor`
(tokenize, truncate, pad; detokenize), the search is
`zoo.decoding.beam_search`, called in one place (`search`) with the task's
`SearchSettings`, and all of it runs inside the SavedModel (a
`tf.while_loop`), so the server needs nothing of ours.

Signatures:

- `serving_default`: `sentences: tf.string [batch]` to `translations:
  tf.string [batch]`, `scores: float32 [batch]` (the beam's
  length-normalised log-probability) and `truncated: bool [batch]` (the
  sentence had more tokens than the model reads; only its beginning was
  translated).
- `translate_ids`: `source_ids: int32 [batch, length]` to `target_ids`,
  `scores` and `valid: bool [batch]`: a row holding an id outside the
  source vocabulary is not searched (`valid` False, pad ids, score 0)
  while the other rows are answered as if sent alone.
- `translate_nbest`: `sentences` and `n: int32 []` to the `n` best
  hypotheses of the same search, best first: `translations: tf.string
  [batch, n]`, `scores: float32 [batch, n]` (column 0 is
  `serving_default`'s answer), `lengths: int32 [batch, n]` (generated
  tokens as the length penalty counts them: the end token included) and
  `truncated: bool [batch]`. `n` is clamped to `[1, beam_width]` (the
  output has that many columns), so no `n` fails a request. A slot no
  hypothesis reached (the sentence finished fewer than `n` within the
  search's `max_length`) is `""` with score `NEG_INF` (-1e9) and length 0.

A request of the wrong rank (a scalar or a 2-D `sentences`, a non-scalar
`n`, `source_ids` not 2-D) is refused before any op reads it, with an
`InvalidArgumentError` naming the input and the shape received
(`zoo.export.input_checks`): TF Serving does not check shapes, and the
tokenizer crashed the server on a scalar. Bad rows never fail the batch:
invalid UTF-8 is repaired by the tokenizer, empty or whitespace-only
sentences translate to `""` with score 0 (in `translate_nbest`: one such
hypothesis, then unreached slots), and sentences longer than the model
reads are truncated.

Not exported: `prepare`, `finish` and `finish_nbest`, the TensorFlow halves
around the search, for `zoo.Translator` on backends whose model cannot run
inside a TF graph (JAX, PyTorch); there `search` runs on the backend.
"""

import numpy as np
import tensorflow as tf
from keras import ops

from zoo.decoding import beam_search
from zoo.decoding.beam_search import NEG_INF
from zoo.export.input_checks import checked_rank, ids_in_range

WARMUP_SENTENCES = ("Hello.", "", "This sentence is a warm-up request for the server.")
WARMUP_N = 2


class TranslatorGraph(tf.Module):
    """The serving signatures of a translator: preprocess, beam search, postprocess.

    Args:
        model: `zoo.models.TransformerTranslator`.
        preprocessor: `zoo.preprocessing.TranslationPreprocessor`.
        settings: `zoo.decoding.SearchSettings`. How to decode.

    Example:
    >>> from zoo.decoding import SearchSettings
    >>> from zoo.models import TransformerTranslator
    >>> from zoo.preprocessing import TranslationPreprocessor
    >>> from zoo.text import WordPieceTokenizer
    >>> source = WordPieceTokenizer.from_corpus(["I buy three apples."] * 5, 60)
    >>> target = WordPieceTokenizer.from_corpus(["Ich kaufe drei Äpfel."] * 5, 60)
    >>> model = TransformerTranslator(source.vocabulary_size, target.vocabulary_size,
    ...     num_encoder_layers=1, num_decoder_layers=1, d_model=16, num_heads=2, d_ff=32, max_length=8)
    >>> graph = TranslatorGraph(model, TranslationPreprocessor(source, target, 8), SearchSettings(beam_width=2))
    >>> out = graph.serving_default(tf.constant(["I buy three apples.", ""]))
    >>> sorted(out), out["translations"].shape
    (['scores', 'translations', 'truncated'], TensorShape([2]))
    """

    def __init__(self, model, preprocessor, settings):
        super().__init__(name="translator")
        self.model = model
        self.preprocessor = preprocessor
        self.settings = settings
        self.max_length = min(settings.max_length or model.max_length, model.max_length)  # target tokens searched
        sentences = tf.TensorSpec([None], tf.string, name="sentences")
        self.serving_default = tf.function(self.translate_strings, input_signature=[sentences])
        self.translate_ids = tf.function(
            self._translate_ids, input_signature=[tf.TensorSpec([None, None], tf.int32, name="source_ids")]
        )
        self.translate_nbest = tf.function(
            self.translate_nbest_strings, input_signature=[sentences, tf.TensorSpec([], tf.int32, name="n")]
        )
        searched = [
            tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None], tf.float32),
            tf.TensorSpec([None], tf.bool), tf.TensorSpec([None], tf.bool),
        ]
        all_beams = [
            tf.TensorSpec([None, None, None], tf.int32), tf.TensorSpec([None, None], tf.float32), *searched[2:],
            tf.TensorSpec([], tf.int32),
        ]
        self.prepare = tf.function(preprocessor.serving_inputs, input_signature=[tf.TensorSpec([None], tf.string)])
        self.finish = tf.function(self.finish_strings, input_signature=searched)
        self.finish_nbest = tf.function(self.finish_nbest_strings, input_signature=all_beams)

    def endpoints(self):
        """The exported signatures: `{name: tf.function}`, for `zoo.export.writer.export_saved_model`."""
        return {
            "serving_default": self.serving_default,
            "translate_ids": self.translate_ids,
            "translate_nbest": self.translate_nbest,
        }

    @staticmethod
    def warmup_requests():
        """Requests TF Serving replays before serving: `serving_default` and `translate_nbest`."""
        sentences = [s.encode("utf-8") for s in WARMUP_SENTENCES]
        return [{"sentences": sentences}, ("translate_nbest", {"sentences": sentences, "n": np.int32(WARMUP_N)})]

    def search(self, source_ids, all_beams=False):
        """Beam search of `(B, S)` source ids with the settings, on any Keras backend.

        Returns `(tokens (B, L) int32, scores (B,) float32)`, or with
        `all_beams` every beam's, best first: `(B, W, L)` and `(B, W)`.
        """
        s = self.settings
        outputs = beam_search(
            self.model, source_ids, self.max_length, s.beam_width, s.alpha, return_all_beams=all_beams,
            **s.search_options(),
        )
        tokens, scores = outputs[2:] if all_beams else outputs
        return ops.cast(tokens, "int32"), ops.cast(scores, "float32")

    def _translate_ids(self, source_ids):
        source_ids = checked_rank(source_ids, 2, "source_ids")[:, : self.preprocessor.max_length]
        valid = ids_in_range(source_ids, self.model.source_vocab_size)  # (B,)
        # An invalid row is searched as a row of padding and answered as such;
        # a batch of no columns gets one (the search needs a source position).
        source_ids = tf.where(valid[:, None], source_ids, self.model.pad_token_id)
        source_ids = tf.pad(source_ids, [[0, 0], [0, tf.maximum(1 - tf.shape(source_ids)[1], 0)]],
                            constant_values=self.model.pad_token_id)
        tokens, scores = self.search(source_ids)
        return {
            "target_ids": tf.where(valid[:, None], tokens, self.model.pad_token_id),
            "scores": tf.where(valid, scores, 0.0),
            "valid": valid,
        }

    def _search_sentences(self, sentences, all_beams=False):
        """`(tokens (B, [W,] L), scores (B, [W]), empty (B,), truncated (B,))` of `(B,)` sentences."""
        source_ids, empty, truncated = self.preprocessor.serving_inputs(checked_rank(sentences, 1, "sentences"))
        tokens, scores = self.search(source_ids, all_beams)
        return tokens, scores, empty, truncated

    def translate_strings(self, sentences):
        """`{"translations", "scores", "truncated"}` of `(B,)` sentences, `(B,)` each. What
        `serving_default` runs."""
        return self.finish_strings(*self._search_sentences(sentences))

    def finish_strings(self, tokens, scores, empty, truncated):
        """`translate_strings`' outputs from the best hypotheses `(B, L)` and scores `(B,)` of
        `prepare`'s sources."""
        translations = self.preprocessor.detokenize(tokens)
        return {
            "translations": tf.where(empty, tf.constant(""), translations),
            "scores": tf.where(empty, tf.zeros_like(scores), scores),
            "truncated": truncated,
        }

    def translate_nbest_strings(self, sentences, n):
        """`{"translations", "scores", "lengths"}`, each `(B, n)`, and `truncated` `(B,)`. What
        `translate_nbest` runs; see the module docstring."""
        n = checked_rank(n, 0, "n")
        return self.finish_nbest_strings(*self._search_sentences(sentences, all_beams=True), n)

    def finish_nbest_strings(self, tokens, scores, empty, truncated, n):
        """`translate_nbest_strings`' outputs from all beams' hypotheses `(B, W, L)` and
        scores `(B, W)` of `prepare`'s sources."""
        n = tf.clip_by_value(tf.cast(n, tf.int32), 1, self.settings.beam_width)
        tokens, scores = tokens[:, :n], scores[:, :n]  # (B, n, L), (B, n)
        reached = tf.logical_and(scores > NEG_INF / 2, tf.logical_not(empty)[:, None])  # (B, n)
        is_end = tf.equal(tokens, self.model.end_token_id)
        ended_at = tf.argmax(tf.cast(is_end, tf.int32), axis=-1, output_type=tf.int32) + 1  # (B, n)
        lengths = tf.where(tf.reduce_any(is_end, axis=-1), ended_at, tf.shape(tokens)[-1])
        flat = self.preprocessor.detokenize(tf.reshape(tokens, [-1, tf.shape(tokens)[-1]]))  # (B * n,)
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
