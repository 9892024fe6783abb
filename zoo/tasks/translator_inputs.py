"""What `zoo.Translator` checks and shapes on the way in and out.

Sentence lists (str or bytes, named when wrong), source widths bucketed for
a compiled search, the model's special ids against the tokenizers', and
token names for attention plots.
"""

import numpy as np


def sentence_bytes(texts):
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


def bucketed(source_ids, model):
    """`(B, S)` ids right-padded to the next power of two (at least 8, at most `max_length`) columns.

    A jitted search compiles once per input shape; padding (masked, so the
    same translations) keeps the shapes of varied batches to a few.
    """
    width = source_ids.shape[1]
    bucket = min(max(8, 1 << (width - 1).bit_length()), max(model.max_length, width))
    return np.pad(source_ids, ((0, 0), (0, bucket - width)), constant_values=model.pad_token_id)


def check_special_ids(model, preprocessor):
    """Raises a ValueError naming the model's and the tokenizers' ids where they disagree."""
    pairs = [
        ("pad_token_id", model.pad_token_id, "source_tokenizer.pad_id", preprocessor.source_pad_id),
        ("pad_token_id", model.pad_token_id, "target_tokenizer.pad_id", preprocessor.pad_id),
        ("start_token_id", model.start_token_id, "target_tokenizer.start_id", preprocessor.start_id),
        ("end_token_id", model.end_token_id, "target_tokenizer.end_id", preprocessor.end_id),
    ]
    wrong = [f"model {a}={x} but {b}={y}" for a, x, b, y in pairs if int(x) != int(y)]
    if wrong:
        raise ValueError(
            f"The model and the tokenizers disagree on special ids: {'; '.join(wrong)}. Build the model with "
            "the tokenizers' ids (pad_token_id, start_token_id, end_token_id of the target tokenizer)."
        )


def token_names(tokenizer, ids):
    """The vocabulary's piece for each id (a list, or a piece-to-id dict), else the id itself."""
    vocabulary = getattr(tokenizer, "vocabulary", None)
    if isinstance(vocabulary, dict):
        names = {i: piece for piece, i in vocabulary.items()}
        return [names.get(int(i), str(int(i))) for i in ids]
    if isinstance(vocabulary, (list, tuple)):
        return [vocabulary[int(i)] if 0 <= int(i) < len(vocabulary) else str(int(i)) for i in ids]
    return [str(int(i)) for i in ids]


def text_of(value):
    """Bytes from a TF string tensor as str (invalid UTF-8 replaced)."""
    return value.decode("utf-8", errors="replace")
