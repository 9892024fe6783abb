"""zoo.plots.plot_cross_attention draws what Translator.cross_attention gives."""

import numpy as np

from tests.export.conftest import EN, tiny_translator  # noqa: F401  (the fixture)
from zoo.decoding import SearchSettings
from zoo.plots import plot_cross_attention
from zoo.tasks import Translator


def test_plot_cross_attention_draws_the_translators_weights(tiny_translator, tmp_path):  # noqa: F811
    translator = Translator(*tiny_translator, SearchSettings(beam_width=2, max_length=8))
    path = str(tmp_path / "attention.png")
    source_tokens, target_tokens, weights = plot_cross_attention(translator, EN[0], path)
    expected = translator.cross_attention(EN[0])
    assert (source_tokens, target_tokens) == expected[:2]
    np.testing.assert_array_equal(weights, expected[2])
    assert weights.shape[0] == 4  # one panel per head
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "attention.png").stat().st_size > 10_000
