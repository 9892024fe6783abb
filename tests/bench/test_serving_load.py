"""bench/serving_load.py: the checks can fail, and the whole load test runs at a toy size."""

import threading
import time

import numpy as np
import pytest

from bench import serving_load


def _echo(items):
    return {"translations": [item.upper() for item in items], "scores": np.zeros(len(items), np.float32)}


def _echo_one(item):
    return _echo([item])


def test_answers_that_change_under_concurrency_and_failures_are_reported():
    pool = [[b"a", b"b"], [b"c"], [b""], [b"d", b"e", b"f"]]
    expected = serving_load.expected_answers(_echo_one, pool)
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
    report["exports"]["racy"]["wrong_answers"] = []
    assert report["exports"]["racy"]["answers_differing_under_load"] > 0
    assert report["exports"]["racy"]["failures"] > 0
    found = serving_load.violations(report, max_rss_growth_mb=100)
    assert any("answers under load differ from the task object's" in v for v in found)
    assert any("failed, e.g. request 2: ValueError: empty input" in v for v in found)
    report["memory"]["growth_mb"] = 500.0
    assert any("RSS grew by 500 MiB" in v for v in serving_load.violations(report, max_rss_growth_mb=100))


def test_a_correct_server_passes_and_numbers_add_up():
    pool = [[b"a", b"b"], [b"c"]]
    report = serving_load.load_test({"echo": _echo}, {"echo": pool}, {"echo": _echo_one}, threads=3, seconds=0.3,
                                    rounds=2)
    result = report["exports"]["echo"]
    assert result["requests"] > 0 and result["failures"] == 0 and result["answers_differing_under_load"] == 0
    assert result["wrong_answers"] == []
    assert result["requests"] <= result["items"] <= 2 * result["requests"]
    assert result["latency_ms"]["p50"] <= result["latency_ms"]["p99"] <= result["latency_ms"]["max"]
    assert serving_load.violations(report, max_rss_growth_mb=1e6) == []


def test_an_export_answering_every_item_with_the_first_items_answer_fails():
    """Consistent, so the same under load as alone: only a reference computed apart from the export catches it."""
    pool = [[b"a", b"b"], [b"c"], [b"d", b"e", b"f"]]

    def first_only(items):
        return _echo([items[0]] * len(items))

    report = serving_load.load_test({"fake": first_only}, {"fake": pool}, {"fake": _echo_one}, threads=2, seconds=0.2,
                                    rounds=1)
    assert report["exports"]["fake"]["wrong_answers"] == [0, 2]
    (found,) = serving_load.violations(report, max_rss_growth_mb=1e6)[:1]
    assert found == "fake: 2 requests sent alone are answered unlike the task object in process (requests [0, 2])"


def test_a_run_folder_stands_for_its_task_folder(tmp_path):
    (tmp_path / "run" / "model").mkdir(parents=True)
    (tmp_path / "run" / "model" / "task.json").write_text("{}")
    assert serving_load.task_folder(str(tmp_path / "run")) == str(tmp_path / "run" / "model")
    assert serving_load.task_folder(str(tmp_path / "run" / "model")) == str(tmp_path / "run" / "model")
    assert serving_load.task_folder(None) is None


def test_scores_are_compared_with_a_tolerance_and_strings_exactly():
    want = {"translations": [b"x"], "scores": np.array([1.0], np.float32)}
    assert serving_load.same_answer({"translations": [b"x"], "scores": np.array([1.0 + 1e-7])}, want)
    assert not serving_load.same_answer({"translations": [b"x"], "scores": np.array([1.001])}, want)
    assert not serving_load.same_answer({"translations": [b"y"], "scores": np.array([1.0])}, want)
    # A sentence's score, from a batch and alone: float32 sums of dozens of terms, relatively within 1e-5.
    long = {"translations": [b"x"], "scores": np.array([-41.20996], np.float32)}
    assert serving_load.same_answer({"translations": [b"x"], "scores": np.array([-41.2099724], np.float32)}, long)
    assert not serving_load.same_answer({"translations": [b"x"], "scores": np.array([-41.3], np.float32)}, long)


@pytest.mark.slow
def test_serving_load_runs_on_toy_exports_of_run_folders(tmp_path):
    """As BENCHMARKS.md runs it, on run folders (`<run>/model` holds the task), at a toy size."""
    from bench import quantization

    quantization.random_translator(layers=1).save(tmp_path / "translation" / "model")
    quantization.random_classifier(layers=1).save(tmp_path / "vit" / "model")
    report = serving_load.main(
        ["--translator", str(tmp_path / "translation"), "--classifier", str(tmp_path / "vit"), "--threads", "3",
         "--seconds", "1", "--rounds", "1", "--pool", "6", "--sides", "int8"]
    )
    assert set(report["exports"]) == {"translator/int8", "classifier/int8"}
    assert all(result["requests"] > 0 and result["wrong_answers"] == [] for result in report["exports"].values())
    assert report["violations"] == []
