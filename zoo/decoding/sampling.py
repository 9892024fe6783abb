"""Greedy decoding and top-k / top-p sampling, through keras-hub's samplers.

keras-hub's `GreedySampler`, `TopKSampler` and `TopPSampler` (with
`temperature`) already run a cached `keras.ops.while_loop` that stops once
every sequence has produced an end token; we only adapt the translator's
cached decoder step to their `next(prompt, cache, index)` interface. Beam
search is ours (`zoo.decoding.beam_search`): keras-hub's has no length penalty.
"""

import keras_hub
from keras import ops

from zoo.decoding.cached_step import prepare, process_scores

SAMPLERS = {
    "greedy": lambda **kw: keras_hub.samplers.GreedySampler(**kw),
    "top_k": lambda **kw: keras_hub.samplers.TopKSampler(**kw),
    "top_p": lambda **kw: keras_hub.samplers.TopPSampler(**kw),
}


def make_sampler(name="greedy", **kwargs):
    """A keras-hub sampler by name: `greedy`, `top_k` (`k=`), `top_p` (`p=`); `temperature=`, `seed=`."""
    if name not in SAMPLERS:
        raise ValueError(f"Unknown sampler {name!r}. Expected one of {sorted(SAMPLERS)} or a keras_hub Sampler.")
    return SAMPLERS[name](**kwargs)


def generate(model, source_ids, max_length, sampler="greedy", suppress_token_ids=(), force_end_at_max_length=False):
    """Translates `(B, S)` source ids into `(B, max_length)` target ids.

    The output holds the generated tokens without the start token; after a
    row's end token, the rest is `model.pad_token_id`.

    Args:
        model: a `TransformerTranslator`.
        source_ids: `(B, S)` int ids, padded with `model.pad_token_id`.
        max_length: int. Most target tokens to generate (end token included).
        sampler: a name for `make_sampler` or a `keras_hub.samplers.Sampler`.
        suppress_token_ids: sequence of int. Target ids never generated
            (transformers' single-token `bad_words_ids`). Defaults to `()`.
        force_end_at_max_length: bool. The last allowed token is the end
            token (transformers' `forced_eos_token_id`). Defaults to `False`.
    """
    if isinstance(sampler, str):
        sampler = make_sampler(sampler)
    source_mask, cache = prepare(model, source_ids, max_length)
    batch = ops.shape(source_mask)[0]
    # keras-hub fills a prompt buffer in place: position 0 holds the start
    # token (masked: never overwritten), positions 1.. receive the output.
    prompt = ops.concatenate(
        [
            ops.full((batch, 1), model.start_token_id, "int32"),
            ops.full((batch, max_length), model.pad_token_id, "int32"),
        ],
        axis=1,
    )
    prompt_mask = ops.concatenate(
        [ops.ones((batch, 1), "bool"), ops.zeros((batch, max_length), "bool")], axis=1
    )

    def next_fn(prompt, cache, index):
        # The token at index - 1 goes in; logits for position index come out.
        token = ops.take(prompt, index - 1, axis=1)[:, None]  # (B, 1)
        logits, cache = model.decode_step(token, source_mask, cache, index - 1)
        logits = process_scores(
            logits[:, 0], index - 1, max_length, model.end_token_id, suppress_token_ids, force_end_at_max_length
        )
        return logits, None, cache

    out = sampler(next_fn, prompt, cache=cache, index=1, mask=prompt_mask, stop_token_ids=(model.end_token_id,))
    return pad_after_end(out[:, 1:], model.end_token_id, model.pad_token_id)


def pad_after_end(tokens, end_id, pad_id):
    """Replaces everything after each row's first end token with padding."""
    is_end = ops.cast(ops.equal(tokens, end_id), "int32")
    ended_before = ops.cumsum(is_end, axis=1) - is_end  # ends strictly before each position
    return ops.where(ended_before > 0, pad_id, tokens)
