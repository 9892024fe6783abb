"""Decoding over the cached decoder step: greedy, sampling, beam search."""

from zoo.decoding.beam_search import beam_search, length_penalty
from zoo.decoding.search_settings import SearchSettings
from zoo.decoding.sampling import generate, make_sampler, pad_after_end

__all__ = [
    "beam_search",
    "length_penalty",
    "generate",
    "make_sampler",
    "pad_after_end",
    "SearchSettings",
]
