"""bench/peer_translation.py end to end on a tiny MarianMT (the table's code path, seconds)."""

import pytest

pytest.importorskip("ctranslate2")  # the [test] / [bench] extra


def test_peer_translation_smoke_agrees_and_times_every_engine():
    from bench import peer_translation

    report = peer_translation.main(["--smoke"])
    engines = {"zoo float", "zoo int8", "transformers float", "transformers int8", "ctranslate2 float32",
               "ctranslate2 int8"}
    assert set(report["engines"]) == engines
    # Same ids from every float engine on every checked sentence (beam search of width 2).
    assert report["ids_equal_to_zoo_float"] == {2: {"transformers float": 4, "ctranslate2 float32": 4}}
    assert [(c["batch"], c["beam"]) for c in report["cells"]] == [(1, 2), (2, 2)]
    assert all(rate > 0 for cell in report["cells"] for rate in cell["tokens_per_s"].values())
    assert report["table"].count("\n") == 3
