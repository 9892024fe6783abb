"""Beam search with a length penalty, over the cached decoder step.

Written here because keras-hub's `BeamSampler` ranks hypotheses by raw
log-probability (no length penalty) and keeps no separate pool of finished
hypotheses. Each step extends the `W` alive beams, keeps the best `2W`
candidates, moves those that produced the end token into a pool of finished
hypotheses scored with the length penalty, and continues with the best `W`
that did not. It is one `keras.ops.while_loop`, so it runs on TensorFlow
(XLA included) and JAX.

Two length penalties (`length_penalty_form`), both with exponent `alpha`:

- `"gnmt"` (default): `((5 + n) / 6) ** alpha` (Wu et al., 2016), as in
  tensor2tensor and TF Model Garden.
- `"power"`: `n ** alpha`, as in transformers (its `length_penalty`,
  default 1.0: the average log-probability per token).

`n` counts the generated tokens, the end token included, the start token
not (the same count transformers uses).

Two sets of search rules (`search_rules`):

- `"zoo"` (default, the alive/finished formulation of tensor2tensor): every
  one of the `2W` candidates that ends may enter the finished pool; search
  stops at `max_length`, or once no alive beam, even at the most favourable
  length `max_length`, can beat the worst finished hypothesis of any
  sentence; hypotheses still alive at `max_length` are dropped unless a
  sentence finished none.
- `"transformers"` (transformers 5's beam search with its default
  `early_stopping=False`, so that converted models decode exactly as
  `generate(num_beams=W)`): only candidates among the best `W` (by raw
  log-probability) may finish; at `max_length` every one of those finishes,
  ended or not; a sentence stops taking finished hypotheses once all `W`
  slots are full and its best alive beam, scored at its *current* length,
  does not beat the worst of them (a heuristic: with `alpha > 0` a longer
  hypothesis could still have won); search stops when every sentence has
  stopped. `early_stopping` takes transformers' other values too: `True`
  (a sentence also stops as soon as its `W` slots are full; search stops
  when all sentences' are) and `"never"` (the heuristic scores the best
  alive beam at `max_length` when `alpha > 0`: exact, like zoo's rule). The
  arithmetic copies transformers' (-1e9 offsets, not replacement), so that
  ties resolve alike.
"""

import math

from keras import ops

from zoo.decoding.cached_step import growing_caches, prepare, process_scores, repeat_batch, step, while_loop

NEG_INF = -1e9
PENALTY_FORMS = ("gnmt", "power")
SEARCH_RULES = ("zoo", "transformers")
EARLY_STOPPING = (False, True, "never")


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}. Received: {value!r}")


def check_search_options(beam_width, length_penalty_form="gnmt", search_rules="zoo", early_stopping=False):
    """Raises a ValueError naming the first `beam_search` option out of range."""
    if beam_width < 1:
        raise ValueError(f"beam_width must be >= 1. Received: beam_width={beam_width}")
    _check_choice("search_rules", search_rules, SEARCH_RULES)
    _check_choice("length_penalty_form", length_penalty_form, PENALTY_FORMS)
    if early_stopping not in EARLY_STOPPING or (early_stopping is not False and search_rules != "transformers"):
        raise ValueError(
            'early_stopping must be False, True or "never", and other than False only with '
            f'search_rules="transformers". Received: early_stopping={early_stopping!r}, search_rules={search_rules!r}'
        )


def length_penalty(length, alpha, form="gnmt"):
    """`((5 + length) / 6) ** alpha` (`form="gnmt"`, Wu et al., 2016) or `length ** alpha` (`"power"`)."""
    _check_choice("length_penalty_form", form, PENALTY_FORMS)
    length = ops.cast(length, "float32")
    if form == "gnmt":
        return ops.power((5.0 + length) / 6.0, alpha)
    return ops.power(length, alpha)


class _ZooRules:
    """The alive/finished rules of tensor2tensor (`search_rules="zoo"`).

    A rules object answers the four questions where search conventions
    differ; `beam_search` does the rest. State entries it adds live in the
    loop state beside the beams.
    """

    def __init__(self, beam_width, max_length, alpha, form, early_stopping):
        self.W, self.L, self.alpha, self.form = beam_width, max_length, alpha, form
        self.early_stopping = early_stopping
        # 2W candidates, so W can stay alive when some end. With one beam,
        # only the best token: beam search of width 1 is exactly greedy decoding.
        self.num_candidates = 2 * beam_width if beam_width > 1 else 1

    def penalty(self, length):
        return length_penalty(length, self.alpha, self.form)

    def initial_state(self, batch):
        return {}

    def go_on(self, s):
        """Whether to take another step (besides `index < max_length`)."""
        # Stop when the best alive beam, even at its most favourable length
        # penalty, cannot beat the worst finished hypothesis of any sentence.
        best_alive = s["alive_lp"][:, 0] / self.penalty(self.L) if self.alpha > 0 else s["alive_lp"][:, 0]
        worst_finished = ops.min(s["finished_score"], axis=1)
        return ops.any(best_alive > worst_finished)

    def stopped(self, cand_lp, cand_ended, length):
        """`(hits, alive_score)`: which of the `(B, K)` candidates stop, and
        the scores that rank the rest for the alive beams."""
        return cand_ended, ops.where(cand_ended, NEG_INF, cand_lp)

    def finished_score(self, s, cand_lp, hits, new_score):
        """`(score, eligible)`: the penalised scores of the candidates that
        may join the finished pool, `NEG_INF` (or below) for the others."""
        eligible = ops.logical_and(hits, cand_lp > NEG_INF / 2)
        return ops.where(eligible, new_score, NEG_INF), eligible

    def update(self, s, alive_lp, finished_score, finished_flag, hits, length):
        """This rules object's state entries after a step."""
        return {}


class _TransformersRules(_ZooRules):
    """transformers 5's beam search rules (`search_rules="transformers"`)."""

    def __init__(self, beam_width, max_length, alpha, form, early_stopping):
        super().__init__(beam_width, max_length, alpha, form, early_stopping)
        self.num_candidates = 2 * beam_width
        self.stop_when_full = early_stopping is True

    def initial_state(self, batch):
        return dict(
            open=ops.ones((batch,), "bool"),  # a sentence may still take finished hypotheses
            all_hit=ops.convert_to_tensor(False),  # every candidate of the last step stopped
        )

    def go_on(self, s):
        go_on = ops.logical_and(ops.any(s["open"]), ops.logical_not(s["all_hit"]))
        if self.stop_when_full:
            go_on = ops.logical_and(go_on, ops.logical_not(ops.all(s["finished_flag"])))
        return go_on

    def stopped(self, cand_lp, cand_ended, length):
        hits = ops.logical_or(cand_ended, length >= self.L)
        return hits, cand_lp + ops.cast(hits, "float32") * NEG_INF

    def finished_score(self, s, cand_lp, hits, new_score):
        # The arithmetic copies transformers' (offsets added in its order), so ties resolve alike.
        eligible = ops.logical_and(hits, ops.arange(self.num_candidates)[None, :] < self.W)
        if self.stop_when_full:
            full = ops.cast(ops.all(s["finished_flag"], axis=1, keepdims=True), "float32")
            new_score = new_score + full * NEG_INF
        closed = ops.cast(ops.logical_not(s["open"]), "float32")[:, None]
        new_score = new_score + closed * NEG_INF
        return new_score + ops.cast(ops.logical_not(eligible), "float32") * NEG_INF, eligible

    def update(self, s, alive_lp, finished_score, finished_flag, hits, length):
        # The early-stopping heuristic: the best alive beam scored at the
        # current length (at max_length with "never" and alpha > 0).
        best_length = self.L if (self.early_stopping == "never" and self.alpha > 0) else length
        best_alive = alive_lp[:, :1] / self.penalty(best_length)  # (B, 1)
        worst = ops.where(finished_flag, ops.min(finished_score, axis=1, keepdims=True), NEG_INF)
        return dict(
            open=ops.logical_and(s["open"], ops.any(best_alive > worst, axis=1)),
            all_hit=ops.all(hits),
        )


_RULES = {"zoo": _ZooRules, "transformers": _TransformersRules}


def group_size(vocab, beam_width, k, spare=0):
    """The group size `grouped_top_k` uses for `(B, beam_width * vocab)` scores, or `None` where it does not pay.

    A divisor of `vocab` (so no group spans two beams), the one nearest
    `sqrt(beam_width * vocab / (k + spare))`, which balances the groups'
    maxima against the members searched; `None` when that searches more
    than a quarter of the scores again (small vocabularies) or `vocab` has
    no divisor near it.
    """
    total, wanted = beam_width * vocab, math.sqrt(beam_width * vocab / (k + spare))
    divisors = [d for d in range(2, int(math.isqrt(vocab)) + 1) if vocab % d == 0]
    divisors += [vocab // d for d in divisors]
    if not divisors:
        return None
    size = min(divisors, key=lambda d: (abs(math.log(d / wanted)), d))
    return size if total // size + (k + spare) * size <= total // 4 else None


def grouped_top_k(scores, k, size, spare=0, banned=()):
    """`ops.top_k(scores, k)` of `(B, M)` scores, searching a few groups of `size` instead of all `M`.

    Exact, ties included (the lower index first, as `top_k`): the scores
    are cut into groups of `size` (`M % size == 0`); the `k + spare` groups
    with the largest maxima (the lower group first on ties) hold the best
    `k`, and only their members are searched, in index order. `banned` is
    `()` or `(vocab, ids)`: scores whose index modulo `vocab` is in `ids`
    count as `-inf` (suppressed tokens of `vocab`-wide beam rows); a banned
    score may head a group, so `spare` must be at least the number of
    banned scores in a row (`len(ids)` per beam).
    """
    batch, groups = ops.shape(scores)[0], ops.shape(scores)[1] // size
    grouped = ops.reshape(scores, (batch * groups, size))  # (B*G, size)
    heads = ops.reshape(ops.max(grouped, axis=1), (batch, groups))  # (B, G)
    _, best = ops.top_k(heads, k=k + spare)  # (B, k + spare)
    best = ops.sort(best, axis=1)  # members in index order, so equal scores keep top_k's order
    rows = ops.reshape(best + ops.arange(batch)[:, None] * groups, (-1,))
    members = ops.reshape(ops.take(grouped, rows, axis=0), (batch, -1))  # (B, (k + spare) * size)
    index = ops.reshape(best[:, :, None] * size + ops.arange(size)[None, None, :], (batch, -1))
    if banned:
        vocab, ids = banned
        token = index % vocab
        hit = ops.any(ops.stack([ops.equal(token, int(t)) for t in ids]), axis=0)
        members = ops.where(hit, ops.cast(float("-inf"), members.dtype), members)
    values, position = ops.top_k(members, k=k)
    return values, ops.take_along_axis(index, position, axis=1)


def candidate_selector(batch, beam_width, vocab, k, max_length, end_id, suppress_token_ids=(),
                       force_end_at_max_length=False):
    """`select(log_probs (B*W, V), alive_lp (B, W), index) -> (cand_lp (B, k), flat index (B, k))`.

    The best `k` of the `W * V` continuations of each sentence (scores
    `alive_lp + log_probs` after `process_scores`), flat index
    `beam * V + token`; the same values and indices as one `top_k` over
    `W * V`. Large vocabularies take `grouped_top_k` (suppressed tokens
    masked among its members, not over the whole vocabulary); the step
    that forces the end token takes the plain path.
    """
    W, V = beam_width, vocab
    spare = W * len(suppress_token_ids)  # a suppressed token may head a group in every beam
    size = group_size(V, W, k, spare)

    def plain(log_probs, alive_lp, index):
        log_probs = process_scores(log_probs, index, max_length, end_id, suppress_token_ids, force_end_at_max_length)
        scores = alive_lp[:, :, None] + ops.reshape(log_probs, (batch, W, V))  # (B, W, V)
        values, index = ops.top_k(ops.reshape(scores, (batch, W * V)), k=k)
        return values, index  # a tuple, as `grouped` returns (TensorFlow's top_k gives a namedtuple)

    def grouped(log_probs, alive_lp, index):
        scores = alive_lp[:, :, None] + ops.reshape(log_probs, (batch, W, V))  # (B, W, V)
        banned = (V, suppress_token_ids) if suppress_token_ids else ()
        return grouped_top_k(ops.reshape(scores, (batch, W * V)), k, size, spare, banned)

    if size is None:
        return plain
    if not force_end_at_max_length:
        return grouped

    def select(log_probs, alive_lp, index):
        return ops.cond(
            index >= max_length - 1, lambda: plain(log_probs, alive_lp, index), lambda: grouped(log_probs, alive_lp, index)
        )

    return select


def beam_search(
    model,
    source_ids,
    max_length,
    beam_width=4,
    alpha=0.6,
    return_all_beams=False,
    length_penalty_form="gnmt",
    search_rules="zoo",
    suppress_token_ids=(),
    force_end_at_max_length=False,
    early_stopping=False,
):
    """Translates `(B, S)` source ids with beam search.

    Args:
        model: a `TransformerTranslator` (encode / init_cache with
            `beam_width` / decode_step / reorder_cache).
        source_ids: `(B, S)` int ids, padded with `model.pad_token_id`.
        max_length: int. Most target tokens per hypothesis (end token
            included; transformers' `max_new_tokens`, its `max_length - 1`).
        beam_width: int. Hypotheses kept per sentence `W`. Defaults to `4`.
        alpha: float. Length penalty exponent; `0` ranks by raw log-probability.
            Defaults to `0.6`.
        return_all_beams: bool. Also return all `W` hypotheses and scores.
        length_penalty_form: str. `"gnmt"` or `"power"` (see the module
            docstring). Defaults to `"gnmt"`.
        search_rules: str. `"zoo"` or `"transformers"` (see the module
            docstring). Defaults to `"zoo"`.
        suppress_token_ids: sequence of int. Target ids never generated
            (e.g. Marian's pad). Defaults to `()`.
        force_end_at_max_length: bool. The last allowed token is the end
            token (transformers' `forced_eos_token_id`). Defaults to `False`.
        early_stopping: `False`, `True` or `"never"`: transformers' setting
            of that name, for `search_rules="transformers"` only (see the
            module docstring). Defaults to `False`.

    Returns:
        `(tokens (B, max_length), scores (B,))`: the best hypothesis per
        sentence without the start token, padded after its end token, and its
        score `log P / length_penalty`. With `return_all_beams`, also
        `(B, W, max_length)` tokens and `(B, W)` scores, best first; a slot
        no hypothesis reached (fewer finished, or with none finished fewer
        alive, than `W`) has score `NEG_INF`.
    """
    check_search_options(beam_width, length_penalty_form, search_rules, early_stopping)
    rules = _RULES[search_rules](beam_width, max_length, alpha, length_penalty_form, early_stopping)
    W, L, K = beam_width, max_length, rules.num_candidates
    end_id, pad_id = model.end_token_id, model.pad_token_id
    source_ids = ops.convert_to_tensor(source_ids, "int32")
    # Cross-attention keys/values once per source; self-attention caches
    # for the B*W beams (growing ones on TensorFlow).
    source_mask, cache = prepare(model, source_ids, L, beam_width=W, growing=growing_caches())
    B = ops.shape(source_ids)[0]
    source_mask = repeat_batch(source_mask, W)  # (B*W, S)
    vocab = model.target_vocab_size

    alive_seq = ops.concatenate(
        [ops.full((B, W, 1), model.start_token_id, "int32"), ops.full((B, W, L), pad_id, "int32")], axis=2
    )  # (B, W, L + 1)
    # Only the first beam is live at the start, so the first step does not
    # pick W copies of the same token.
    alive_lp = ops.tile(ops.convert_to_tensor([[0.0] + [NEG_INF] * (W - 1)]), (B, 1))  # (B, W)
    state = dict(
        alive_seq=alive_seq,
        alive_lp=alive_lp,
        finished_seq=alive_seq,
        finished_score=ops.full((B, W), NEG_INF, "float32"),
        finished_flag=ops.zeros((B, W), "bool"),  # transformers' is_sent_finished
        cache=cache,
        **rules.initial_state(B),
    )

    select = candidate_selector(B, W, vocab, K, L, end_id, suppress_token_ids, force_end_at_max_length)

    def offsets(beam_idx):  # (B, K) beam indices -> flat (B*K,) rows of the (B*W) caches
        return ops.reshape(beam_idx + ops.arange(B)[:, None] * W, (-1,))

    def cond(index, s):
        return ops.logical_and(index < L, rules.go_on(s))

    def body(index, s):
        tokens = ops.reshape(ops.take(s["alive_seq"], index, axis=2), (-1,))  # (B*W,)
        log_probs, cache = step(model, source_mask, tokens, s["cache"], index)  # (B*W, V)
        cand_lp, flat_idx = select(log_probs, s["alive_lp"], index)  # (B, K)
        cand_beam = flat_idx // vocab
        cand_token = ops.cast(flat_idx % vocab, "int32")
        cand_seq = ops.take_along_axis(s["alive_seq"], cand_beam[:, :, None], axis=1)  # (B, K, L + 1)
        position = ops.arange(L + 1)[None, None, :] == index + 1
        cand_seq = ops.where(position, cand_token[:, :, None], cand_seq)
        cand_ended = ops.equal(cand_token, end_id)
        length = index + 1  # generated tokens, end token included

        # Alive: the best W candidates that did not just stop.
        hits, alive_score = rules.stopped(cand_lp, cand_ended, length)
        alive_lp, keep = ops.top_k(alive_score, k=W)  # (B, W)
        alive_seq = ops.take_along_axis(cand_seq, keep[:, :, None], axis=1)
        parent = ops.take_along_axis(cand_beam, keep, axis=1)
        cache = model.reorder_cache(cache, offsets(parent))

        # Finished: merge the candidates that stopped, scored with the penalty.
        new_score, eligible = rules.finished_score(s, cand_lp, hits, cand_lp / rules.penalty(length))
        pool_seq = ops.concatenate([s["finished_seq"], cand_seq], axis=1)  # (B, W + K, L + 1)
        pool_score = ops.concatenate([s["finished_score"], new_score], axis=1)
        pool_flag = ops.concatenate([s["finished_flag"], eligible], axis=1)
        finished_score, best = ops.top_k(pool_score, k=W)
        finished_seq = ops.take_along_axis(pool_seq, best[:, :, None], axis=1)
        finished_flag = ops.take_along_axis(pool_flag, best, axis=1)
        return index + 1, dict(
            alive_seq=alive_seq, alive_lp=alive_lp, finished_seq=finished_seq, finished_score=finished_score,
            finished_flag=finished_flag, cache=cache,
            **rules.update(s, alive_lp, finished_score, finished_flag, hits, length),
        )

    _, s = while_loop(cond, body, (ops.convert_to_tensor(0, "int32"), state), maximum_iterations=L)
    # Sentences that finished no hypothesis fall back to their alive beams.
    none_finished = ops.all(s["finished_score"] <= NEG_INF / 2, axis=1)  # (B,)
    # Beams no hypothesis reached (fewer continuations than beams) keep NEG_INF:
    # divided by the penalty they could look like scores.
    alive_final = ops.where(s["alive_lp"] > NEG_INF / 2, s["alive_lp"] / rules.penalty(L), NEG_INF)
    seqs = ops.where(none_finished[:, None, None], s["alive_seq"], s["finished_seq"])[:, :, 1:]  # (B, W, L)
    scores = ops.where(none_finished[:, None], alive_final, s["finished_score"])
    if return_all_beams:
        return seqs[:, 0], scores[:, 0], seqs, scores
    return seqs[:, 0], scores[:, 0]
