"""The glue between a `TransformerTranslator` and token-by-token decoding.

Everything in `zoo.decoding` runs over the cached decoder step: the encoder
runs once, cross-attention keys/values are computed once (`init_cache`), and
each step feeds one new token through the self-attention caches (growing
ones on TensorFlow: `growing_caches`).
"""

import keras
from keras import ops


def growing_caches():
    """Whether decoding loops here carry growing caches (`init_cache(..., max_length=None)`).

    On TensorFlow a `tf.while_loop` takes a loop variable whose shape
    changes (`while_loop` sets the shape invariant), so a step costs what it
    has decoded; XLA (`jit_compile=True`), JAX and PyTorch loops need fixed
    shapes, hence caches of `max_length` positions.
    """
    if keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf
    from tensorflow.python.ops import control_flow_util  # no public test for "inside jit_compile"

    return not control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())


def prepare(model, source_ids, max_length, beam_width=1, growing=False):
    """Encodes the sources once; returns `(source_mask, cache)` for `max_length` target tokens.

    The cache has `beam_width` rows per source; with `growing`, it is the
    model's growing cache (`init_cache(..., max_length=None)`).
    """
    source_ids = ops.convert_to_tensor(source_ids, "int32")
    source_mask = model.source_padding_mask(source_ids)
    encoder_outputs = model.encode(source_ids, source_mask)
    cache = model.init_cache(encoder_outputs, None if growing else max_length, beam_width=beam_width)
    return source_mask, cache


def while_loop(cond, body, loop_vars, maximum_iterations):
    """`keras.ops.while_loop`, where on TensorFlow tensor axes of size 0 may grow.

    The growing caches start empty along their length axis; that axis gets
    a `None` shape invariant, every other axis keeps its static size.
    """
    if keras.backend.backend() != "tensorflow":
        return ops.while_loop(cond, body, loop_vars, maximum_iterations=maximum_iterations)
    import tensorflow as tf

    invariants = keras.tree.map_structure(
        lambda x: tf.TensorShape([None if d == 0 else d for d in x.shape]), loop_vars
    )
    return tf.while_loop(
        cond, lambda *args: tuple(body(*args)), loop_vars,
        shape_invariants=invariants, maximum_iterations=maximum_iterations,
    )


def step(model, source_mask, tokens, cache, index):
    """One decoder step: `tokens (N,)` at position `index` -> `(log_probs (N, V), cache)`."""
    logits, cache = model.decode_step(tokens[:, None], source_mask, cache, index)
    return ops.log_softmax(logits[:, 0], axis=-1), cache


def repeat_batch(tree, times):
    """Repeats every tensor of a nested structure along the batch axis (beams)."""
    return keras.tree.map_structure(lambda x: ops.repeat(x, times, axis=0), tree)


def process_scores(scores, index, max_length, end_id, suppress_token_ids=(), force_end_at_max_length=False):
    """Applies the token constraints of one step to `(N, V)` scores (logits or log-probabilities).

    `suppress_token_ids` are never chosen (transformers' single-token
    `bad_words_ids`, e.g. Marian's pad); with `force_end_at_max_length`, the
    step at `index == max_length - 1` (the last token allowed) can only pick
    `end_id` (transformers' `forced_eos_token_id`), whose score becomes 0.
    Masked scores become `-inf`, as in transformers, so that log-probabilities
    of the other tokens are not renormalised.
    """
    if not suppress_token_ids and not force_end_at_max_length:
        return scores
    token = ops.arange(ops.shape(scores)[-1])[None, :]  # (1, V)
    minus_inf = ops.cast(float("-inf"), scores.dtype)
    if suppress_token_ids:
        banned = ops.any(ops.stack([ops.equal(token, int(t)) for t in suppress_token_ids]), axis=0)  # (1, V)
        scores = ops.where(banned, minus_inf, scores)
    if force_end_at_max_length:
        forced = ops.where(ops.equal(token, end_id), ops.cast(0.0, scores.dtype), minus_inf)  # (1, V)
        scores = ops.where(ops.greater_equal(index, max_length - 1), forced, scores)
    return scores
