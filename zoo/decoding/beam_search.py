"""Beam search with the GNMT length penalty, over the cached decoder step.

Written here because keras-hub's `BeamSampler` ranks hypotheses by raw
log-probability (no length penalty) and keeps no separate pool of finished
hypotheses. This is the standard alive/finished formulation (as in
tensor2tensor and TF Model Garden): each step extends the `W` alive beams,
keeps the best `2W` candidates, moves those that produced the end token into
the finished pool scored with the length penalty, and continues with the
best `W` that did not. Search stops at `max_length` or once no alive beam
can still beat the worst finished one. It is one `keras.ops.while_loop`,
so it runs on TensorFlow (XLA included) and JAX.
"""

from keras import ops

from zoo.decoding.cached_step import gather_batch, prepare, repeat_batch, step

NEG_INF = -1e9


def length_penalty(length, alpha):
    """GNMT length penalty `((5 + length) / 6) ** alpha` (Wu et al., 2016)."""
    return ops.power((5.0 + ops.cast(length, "float32")) / 6.0, alpha)


def beam_search(model, source_ids, max_length, beam_width=4, alpha=0.6, return_all_beams=False):
    """Translates `(B, S)` source ids with beam search.

    Args:
        model: a `TransformerTranslator` (encode / init_cache / decode_step).
        source_ids: `(B, S)` int ids, padded with `model.pad_token_id`.
        max_length: int. Most target tokens per hypothesis (end token included).
        beam_width: int. Hypotheses kept per sentence `W`. Defaults to `4`.
        alpha: float. Length penalty exponent; `0` ranks by raw log-probability.
            Defaults to `0.6`.
        return_all_beams: bool. Also return all `W` hypotheses and scores.

    Returns:
        `(tokens (B, max_length), scores (B,))`: the best hypothesis per
        sentence without the start token, padded after its end token, and its
        score `log P / length_penalty`. With `return_all_beams`, also
        `(B, W, max_length)` tokens and `(B, W)` scores, best first.
    """
    if beam_width < 1:
        raise ValueError(f"beam_width must be >= 1. Received: beam_width={beam_width}")
    W, L = beam_width, max_length
    end_id, pad_id = model.end_token_id, model.pad_token_id
    source_ids = ops.convert_to_tensor(source_ids, "int32")
    source_mask, cache = prepare(model, source_ids, L)
    B = ops.shape(source_ids)[0]
    source_mask = repeat_batch(source_mask, W)  # (B*W, S)
    cache = repeat_batch(cache, W)  # cross keys/values once per source, then copied to beams
    vocab = model.target_vocab_size
    # 2W candidates, so W can stay alive when some end. With one beam, only
    # the best token: beam search of width 1 is exactly greedy decoding.
    K = 2 * W if W > 1 else 1

    alive_seq = ops.concatenate(
        [ops.full((B, W, 1), model.start_token_id, "int32"), ops.full((B, W, L), pad_id, "int32")], axis=2
    )  # (B, W, L + 1)
    # Only the first beam is live at the start, so the first step does not
    # pick W copies of the same token.
    alive_lp = ops.tile(ops.convert_to_tensor([[0.0] + [NEG_INF] * (W - 1)]), (B, 1))  # (B, W)
    finished_seq = alive_seq
    finished_score = ops.full((B, W), NEG_INF, "float32")

    def offsets(beam_idx):  # (B, K) beam indices -> flat (B*K,) rows of the (B*W) caches
        return ops.reshape(beam_idx + ops.arange(B)[:, None] * W, (-1,))

    def cond(index, alive_seq, alive_lp, finished_seq, finished_score, cache):
        # Stop when the best alive beam, even at its most favourable length
        # penalty, cannot beat the worst finished hypothesis of any sentence.
        best_alive = alive_lp[:, 0] / length_penalty(L, alpha) if alpha > 0 else alive_lp[:, 0]
        worst_finished = ops.min(finished_score, axis=1)
        can_improve = ops.any(best_alive > worst_finished)
        return ops.logical_and(index < L, can_improve)

    def body(index, alive_seq, alive_lp, finished_seq, finished_score, cache):
        tokens = ops.reshape(ops.take(alive_seq, index, axis=2), (-1,))  # (B*W,)
        log_probs, cache = step(model, source_mask, tokens, cache, index)  # (B*W, V)
        log_probs = alive_lp[:, :, None] + ops.reshape(log_probs, (B, W, vocab))  # (B, W, V)
        cand_lp, flat_idx = ops.top_k(ops.reshape(log_probs, (B, W * vocab)), k=K)  # (B, K)
        cand_beam = flat_idx // vocab
        cand_token = ops.cast(flat_idx % vocab, "int32")
        cand_seq = ops.take_along_axis(alive_seq, cand_beam[:, :, None], axis=1)  # (B, K, L + 1)
        position = ops.arange(L + 1)[None, None, :] == index + 1
        cand_seq = ops.where(position, cand_token[:, :, None], cand_seq)
        cand_ended = ops.equal(cand_token, end_id)

        # Alive: the best W candidates that did not just end.
        alive_score = ops.where(cand_ended, NEG_INF, cand_lp)
        alive_lp, keep = ops.top_k(alive_score, k=W)  # (B, W)
        alive_seq = ops.take_along_axis(cand_seq, keep[:, :, None], axis=1)
        parent = ops.take_along_axis(cand_beam, keep, axis=1)
        cache = gather_batch(cache, offsets(parent))

        # Finished: merge the candidates that ended, scored with the penalty.
        new_score = cand_lp / length_penalty(index + 1, alpha)
        new_score = ops.where(ops.logical_and(cand_ended, cand_lp > NEG_INF / 2), new_score, NEG_INF)
        pool_seq = ops.concatenate([finished_seq, cand_seq], axis=1)  # (B, W + K, L + 1)
        pool_score = ops.concatenate([finished_score, new_score], axis=1)
        finished_score, best = ops.top_k(pool_score, k=W)
        finished_seq = ops.take_along_axis(pool_seq, best[:, :, None], axis=1)
        return index + 1, alive_seq, alive_lp, finished_seq, finished_score, cache

    _, alive_seq, alive_lp, finished_seq, finished_score, _ = ops.while_loop(
        cond,
        body,
        (ops.convert_to_tensor(0, "int32"), alive_seq, alive_lp, finished_seq, finished_score, cache),
        maximum_iterations=L,
    )
    # Sentences that finished no hypothesis fall back to their alive beams.
    none_finished = ops.all(finished_score <= NEG_INF / 2, axis=1)  # (B,)
    alive_final = alive_lp / length_penalty(L, alpha)
    seqs = ops.where(none_finished[:, None, None], alive_seq, finished_seq)[:, :, 1:]  # (B, W, L)
    scores = ops.where(none_finished[:, None], alive_final, finished_score)
    if return_all_beams:
        return seqs[:, 0], scores[:, 0], seqs, scores
    return seqs[:, 0], scores[:, 0]

