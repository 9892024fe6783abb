"""Sampling draws from the distribution the options define, over a table decoder.

Thousands of rows of one sentence sample at once; frequencies are compared
with NumPy's `softmax(log P / temperature)`, and top-p with the nucleus
computed by hand (the fewest most likely tokens whose probabilities reach p).
Seeds are fixed, so the draws are the same on every run; tolerances are 5
binomial standard deviations.
"""

import numpy as np
import pytest
from keras import ops

from tests.decoding.beam_oracle import TableModel, prefix_row
from zoo.decoding import generate, make_sampler

V, PAD, START, END = 5, 0, 1, 2
N = 4000  # rows sampled at once
# First-step log-probabilities far from uniform, so temperature moves them a lot.
FIRST = np.log(np.array([0.03, 0.07, 0.1, 0.2, 0.6]))


def _model():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(1, 1 + V, V)) * 1.5
    logits[0, 0] = FIRST
    tables = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    return TableModel(tables.astype("float32"), PAD, START, END)


def _softmax(log_probs, temperature=1.0):
    z = np.exp((log_probs - log_probs.max()) / temperature)
    return z / z.sum()


def _nucleus(probabilities, p):
    order = np.argsort(-probabilities)
    before = np.cumsum(probabilities[order]) - probabilities[order]  # mass of the more likely tokens
    kept = np.zeros(len(probabilities), bool)
    kept[order[before < p]] = True
    return kept


def _assert_frequencies(tokens, expected):
    frequencies = np.bincount(tokens, minlength=V) / len(tokens)
    tolerance = 5 * np.sqrt(expected * (1 - expected) / len(tokens)) + 1e-9
    assert np.all(np.abs(frequencies - expected) <= tolerance), (frequencies.round(3), expected.round(3))


def _sample(sampler, max_length=2):
    model = _model()
    out = np.asarray(ops.convert_to_numpy(generate(model, model.source_ids([0] * N), max_length, sampler=sampler)))
    return model, out


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
def test_temperature_scales_the_log_probabilities(temperature):
    model, out = _sample(make_sampler("top_k", k=V, temperature=temperature, seed=1))
    _assert_frequencies(out[:, 0], _softmax(FIRST, temperature))
    # The second token follows the row of the first one drawn (the cache is carried along).
    first = 4
    second = out[out[:, 0] == first, 1]
    row = model.tables[0, prefix_row((first,), V)]
    _assert_frequencies(second, _softmax(row.astype("float64"), temperature))


@pytest.mark.parametrize("p, temperature", [(0.5, 1.0), (0.75, 1.0), (0.75, 2.0)])
def test_top_p_samples_the_nucleus_only_and_all_of_it(p, temperature):
    _, out = _sample(make_sampler("top_p", p=p, temperature=temperature, seed=2), max_length=1)
    probabilities = _softmax(FIRST, temperature)
    kept = _nucleus(probabilities, p)
    assert 1 <= kept.sum() < V  # the nucleus drops something
    sampled = np.unique(out[:, 0])
    assert set(sampled) == set(np.flatnonzero(kept)), (sampled, kept)
    _assert_frequencies(out[:, 0], np.where(kept, probabilities, 0.0) / probabilities[kept].sum())
