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


def test_decoding_uses_the_shared_helpers():
    from bench import decoding

    assert decoding.timed is common.timed
