"""References for beam search: an exhaustive oracle and a plain-Python beam search.

A test helper, independent of `zoo.decoding`'s code (it shares only the
documented rules), for any test that checks a search over a decoder:

- `TableModel`: a decoder whose next-token log-probabilities are read from
  a fixed table indexed by the generated prefix. It has the interface
  `zoo.decoding` drives (`source_padding_mask`, `encode`, `init_cache`,
  `decode_step`, `reorder_cache` and the token ids), written with
  `keras.ops` only, so it runs inside `tf.function` and exports too.
- `model_tables`: the same table read off a real `TransformerTranslator`
  by full (uncached) decoder passes, so the oracle covers real models.
- `exhaustive`: every hypothesis of the search space, scored
  `log P / length_penalty`, best first (the exact top-n).
- `reference_beam_search`: a beam search in plain Python following the
  rules `zoo.decoding.beam_search` documents (`search_rules="zoo"` and
  `"transformers"` with its `early_stopping` values).

Tables cover every prefix shorter than `max_length`: prefix
`(t1, ..., tk)` has row `sum_i (t_i + 1) * V ** (k - i)` (bijective base-V
numbering, so the empty prefix is row 0 and rows are dense).
"""

import collections

import keras
import numpy as np
from keras import ops

Hypothesis = collections.namedtuple("Hypothesis", "tokens log_prob score")


def num_prefixes(vocab, max_length):
    """Prefixes shorter than `max_length` over `vocab` tokens: the table's rows."""
    return sum(vocab**k for k in range(max_length))


def prefix_row(prefix, vocab):
    """The table row of a prefix (a sequence of token ids)."""
    row = 0
    for token in prefix:
        row = row * vocab + int(token) + 1
    return row


def all_prefixes(vocab, max_length):
    """Every prefix shorter than `max_length`, in row order."""
    prefixes, level = [()], [()]
    for _ in range(max_length - 1):
        level = [p + (t,) for p in level for t in range(vocab)]
        prefixes += level
    return prefixes


def random_tables(num_tables, vocab, max_length, end_id, seed=0, scale=1.5, end_bias=None):
    """`(num_tables, rows, vocab)` float32 log-probabilities, one table per sentence.

    Logits are normal with standard deviation `scale`; `end_bias[i]` is added
    to the end token's logit of table `i`, so that sentences end at
    different lengths.
    """
    rng = np.random.default_rng(seed)
    logits = scale * rng.normal(size=(num_tables, num_prefixes(vocab, max_length), vocab))
    if end_bias is not None:
        logits[:, :, end_id] += np.asarray(end_bias, "float64")[:, None]
    logits -= logits.max(-1, keepdims=True)
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    return log_probs.astype("float32")


class TableModel:
    """A decoder reading next-token log-probabilities from `tables[source][prefix_row]`.

    Source sentence `i` is the id row `[i + 1]` (`source_ids()`); the cache
    holds each row's table and current prefix row, so beam search reorders
    it like a real cache.

    Args:
        tables: `(num_tables, rows, V)` log-probabilities (see the module docstring).
        pad_token_id, start_token_id, end_token_id: ints in `[0, V)`.
    """

    def __init__(self, tables, pad_token_id=0, start_token_id=1, end_token_id=2):
        tables = np.asarray(tables, "float32")
        self.num_tables, self.rows, self.target_vocab_size = tables.shape
        self.tables = tables
        self._flat = ops.convert_to_tensor(tables.reshape(-1, self.target_vocab_size))
        self.pad_token_id, self.start_token_id, self.end_token_id = pad_token_id, start_token_id, end_token_id

    def source_ids(self, which=None):
        """`(B, 1)` source ids selecting tables `which` (default: all, in order)."""
        which = range(self.num_tables) if which is None else which
        return np.array([[i + 1] for i in which], "int32")

    def source_padding_mask(self, source_ids):
        return ops.ones(ops.shape(source_ids), "bool")

    def encode(self, source_ids, source_mask=None):
        return ops.cast(source_ids[:, 0] - 1, "int32")  # (B,) table of each sentence

    def init_cache(self, encoder_outputs, max_length, beam_width=1):
        table = ops.repeat(encoder_outputs, beam_width, axis=0)  # (B*W,)
        return {"table": table, "row": ops.zeros_like(table)}

    def reorder_cache(self, cache, indices):
        return keras.tree.map_structure(lambda x: ops.take(x, indices, axis=0), cache)

    def decode_step(self, target_ids, source_mask, cache, cache_index):
        if target_ids.shape[1] != 1:
            raise ValueError(f"TableModel decodes one token per step. Received: target_ids of shape {target_ids.shape}")
        token = ops.cast(target_ids[:, 0], "int32")  # (N,)
        # The token at index 0 is the start token: the prefix is still empty.
        row = ops.where(ops.equal(cache_index, 0), ops.zeros_like(token), cache["row"] * self.target_vocab_size + token + 1)
        log_probs = ops.take(self._flat, cache["table"] * self.rows + row, axis=0)  # (N, V)
        return log_probs[:, None, :], {"table": cache["table"], "row": row}

    def next_log_probs(self, table):
        """`prefix -> (V,)` float64 log-probabilities of table `table`, for the references."""
        return lambda prefix: self.tables[table, prefix_row(prefix, self.target_vocab_size)].astype("float64")


def model_tables(model, source_ids, max_length):
    """`(B, rows, V)` log-probabilities of a real translator, by full decoder passes.

    Every prefix shorter than `max_length` is fed behind the start token
    (padded on the right; causal attention ignores the padding) and the
    logits at its last position are read.
    """
    vocab = model.target_vocab_size
    prefixes = all_prefixes(vocab, max_length)
    target = np.full((len(prefixes), max_length), model.pad_token_id, "int32")
    target[:, 0] = model.start_token_id
    for i, prefix in enumerate(prefixes):
        target[i, 1 : 1 + len(prefix)] = prefix
    last = np.array([len(p) for p in prefixes])
    tables = []
    for source in np.asarray(source_ids):
        sources = np.repeat(source[None], len(prefixes), axis=0)
        logits = np.asarray(ops.convert_to_numpy(model({"source_ids": sources, "target_ids": target})), "float64")
        logits = logits[np.arange(len(prefixes)), last]  # (rows, V)
        logits -= logits.max(-1, keepdims=True)
        tables.append(logits - np.log(np.exp(logits).sum(-1, keepdims=True)))
    return np.stack(tables)


def length_penalty(length, alpha, form="gnmt"):
    """`((5 + n) / 6) ** alpha` (GNMT) or `n ** alpha` (power), in plain Python."""
    return ((5.0 + length) / 6.0) ** alpha if form == "gnmt" else float(length) ** alpha


def exhaustive(next_log_probs, vocab, max_length, end_id, alpha, form="gnmt", include_unended=False):
    """Every ended hypothesis (and, with `include_unended`, every one cut at
    `max_length`), scored `log P / length_penalty(n)`, best first."""
    found = []

    def walk(prefix, log_prob):
        if len(prefix) == max_length:
            if include_unended:
                found.append(Hypothesis(prefix, log_prob, log_prob / length_penalty(max_length, alpha, form)))
            return
        step = next_log_probs(prefix)
        for token in range(vocab):
            tokens, lp = prefix + (token,), log_prob + step[token]
            if token == end_id:
                found.append(Hypothesis(tokens, lp, lp / length_penalty(len(tokens), alpha, form)))
            else:
                walk(tokens, lp)

    walk((), 0.0)
    return sorted(found, key=lambda h: -h.score)


def reference_beam_search(
    next_log_probs, vocab, max_length, end_id, beam_width, alpha=0.6, form="gnmt", rules="zoo", early_stopping=False
):
    """Beam search over one sentence, as `zoo.decoding.beam_search` documents it.

    Returns the finished hypotheses best first (at most `beam_width`), or,
    under the zoo rules when none finished, the alive ones scored at
    `max_length`.
    """
    W, L = beam_width, max_length
    # Candidates kept per step: 2W, so W can stay alive when some end; the zoo
    # rules keep just the best token with one beam (exactly greedy decoding).
    K = 2 * W if (W > 1 or rules == "transformers") else 1

    def pen(n):
        return length_penalty(n, alpha, form)

    def best(hypotheses):
        return sorted(hypotheses, key=lambda h: -h.score)[:W]

    alive, finished, taking = [Hypothesis((), 0.0, 0.0)], [], True
    for n in range(1, L + 1):
        candidates = []
        for h in alive:
            step = next_log_probs(h.tokens)
            candidates += [(h.log_prob + step[t], h.tokens + (t,)) for t in range(vocab)]
        candidates = sorted(candidates, key=lambda c: -c[0])[:K]
        if rules == "zoo":
            # Every ended candidate may finish; search stops when no alive beam,
            # even at the most favourable length L, can beat the worst finished.
            finished = best(finished + [Hypothesis(s, lp, lp / pen(n)) for lp, s in candidates if s[-1] == end_id])
            alive = [Hypothesis(s, lp, None) for lp, s in candidates if s[-1] != end_id][:W]
            if not alive:
                break
            bound = alive[0].log_prob / pen(L) if alpha > 0 else alive[0].log_prob
            if len(finished) == W and bound <= finished[-1].score:
                break
            continue
        # transformers' rules: candidates among the best W (by log P) that end,
        # or reach max_length, finish; a full pool closes when the best alive
        # beam, scored at the current length (or L with "never" and alpha > 0),
        # does not beat its worst.
        hits = [s[-1] == end_id or n >= L for _, s in candidates]
        full = len(finished) == W
        if taking and not (early_stopping is True and full):
            new = [Hypothesis(s, lp, lp / pen(n)) for (lp, s), hit in zip(candidates[:W], hits[:W]) if hit]
            finished = best(finished + new)
        alive = [Hypothesis(s, lp, None) for (lp, s), hit in zip(candidates, hits) if not hit][:W]
        if all(hits):
            break
        if len(finished) == W:
            length = L if (early_stopping == "never" and alpha > 0) else n
            taking = taking and alive[0].log_prob / pen(length) > finished[-1].score
            if not taking or early_stopping is True:
                break
    if finished:
        return finished
    return [Hypothesis(h.tokens, h.log_prob, h.log_prob / pen(L)) for h in alive]


def padded(tokens, max_length, pad_id):
    """A hypothesis' tokens as beam search returns them: padded to `max_length`."""
    return list(tokens) + [pad_id] * (max_length - len(tokens))
