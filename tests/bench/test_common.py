"""The shared timing helpers: alternating windows, statistics, ratios."""

from bench import common


def test_interleaved_alternates_and_reports_every_side():
    calls = []

    def step(name):
        def run():
            calls.append(name)
            return 2  # units per call

        return run

    results = common.interleaved({"a": step("a"), "b": step("b")}, windows=3, window_seconds=0.0, warmup_steps=0)
    timed = calls[2:]  # after one warm-up call each
    assert timed == ["a", "b", "b", "a", "a", "b"]  # order flips every round
    for side in results.values():
        assert side["per_s"]["windows"] == 3
        assert side["per_s"]["min"] <= side["per_s"]["median"] <= side["per_s"]["max"]
    assert common.ratio(results, "a", "b") > 0


def test_stats_quartiles():
    stats = common._stats([1.0, 2.0, 3.0, 4.0, 100.0])
    assert stats["median"] == 3.0 and stats["min"] == 1.0 and stats["max"] == 100.0
    assert stats["iqr"] > 0


def test_decoding_runs_at_toy_size(monkeypatch):
    from bench import decoding

    monkeypatch.setattr(decoding, "VOCAB", 64)
    monkeypatch.setattr(decoding, "NEW_TOKENS", 3)
    monkeypatch.setattr(decoding, "SOURCE_LENGTH", 3)  # within max_length = NEW_TOKENS + 1
    results = decoding.bench_batch(2, repeats=1, windows=1, window_seconds=0.0)
    for name in ("zoo_cached_greedy", "keras_hub_cached_greedy", "zoo_beam4", "zoo_full_recompute"):
        assert results[name]["ms_per_token"] > 0
    assert results["ratios"]["full_recompute / zoo_cached"] > 0
