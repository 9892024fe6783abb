"""bench/serving_load.py: the checks can fail, and the whole load test runs at a toy size."""

import threading
import time

import numpy as np
import pytest

from bench import serving_load


def _echo(items):
    return {"translations": [item.upper() for item in items], "scores": np.zeros(len(items), np.float32)}


def test_answers_that_change_under_concurrency_and_failures_are_reported():
    pool = [[b"a", b"b"], [b"c"], [b""], [b"d", b"e", b"f"]]
    expected = serving_load.references(_echo, pool)
    shared = {}
    lock = threading.Lock()

    def racy(items):  # a server bug: answers from a buffer other requests overwrite
        with lock:
            shared["items"] = items
        time.sleep(0.002)
        if items == [b""]:
            raise ValueError("empty input")
        return _echo(shared["items"])

    run = serving_load.run_load(racy, pool, expected, threads=4, seconds=0.5)
    report = {"exports": {"racy": serving_load.summarize([run])}, "memory": {"growth_mb": 0.0}}
    assert report["exports"]["racy"]["answers_differing_from_alone"] > 0
    assert report["exports"]["racy"]["failures"] > 0
    found = serving_load.violations(report, max_rss_growth_mb=100)
    assert any("differ from the request sent alone" in v for v in found)
    assert any("failed, e.g. request 2: ValueError: empty input" in v for v in found)
    report["memory"]["growth_mb"] = 500.0
    assert any("RSS grew by 500 MiB" in v for v in serving_load.violations(report, max_rss_growth_mb=100))


def test_a_correct_server_passes_and_numbers_add_up():
    pool = [[b"a", b"b"], [b"c"]]
    report = serving_load.load_test({"echo": _echo}, {"echo": pool}, threads=3, seconds=0.3, rounds=2)
    result = report["exports"]["echo"]
    assert result["requests"] > 0 and result["failures"] == 0 and result["answers_differing_from_alone"] == 0
    assert result["requests"] <= result["items"] <= 2 * result["requests"]
    assert result["latency_ms"]["p50"] <= result["latency_ms"]["p99"] <= result["latency_ms"]["max"]
    assert serving_load.violations(report, max_rss_growth_mb=1e6) == []


def test_scores_are_compared_with_a_tolerance_and_strings_exactly():
    want = {"translations": [b"x"], "scores": np.array([1.0], np.float32)}
    assert serving_load.same_answer({"translations": [b"x"], "scores": np.array([1.0 + 1e-7])}, want)
    assert not serving_load.same_answer({"translations": [b"x"], "scores": np.array([1.001])}, want)
    assert not serving_load.same_answer({"translations": [b"y"], "scores": np.array([1.0])}, want)


@pytest.mark.slow
def test_serving_load_runs_on_toy_exports():
    report = serving_load.main(
        ["--layers", "1", "--threads", "3", "--seconds", "1", "--rounds", "1", "--pool", "6", "--sides", "int8"]
    )
    assert set(report["exports"]) == {"translator/int8", "classifier/int8"}
    assert all(result["requests"] > 0 for result in report["exports"].values())
    assert report["violations"] == []
