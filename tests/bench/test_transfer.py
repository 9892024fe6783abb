"""bench/transfer.py end to end at toy size (the measured runs are in BENCHMARKS.md)."""

import json
import os

import pytest

from bench import transfer


@pytest.mark.slow  # ~95 s on 2 busy cores: 8 small fits and 6 traced beam searches
def test_transfer_smoke_runs_both_experiments(tmp_path):
    reports = transfer.main(["all", "--smoke", "--output", str(tmp_path)])
    vit, translation = reports["vit"], reports["translation"]

    # ViT: one curve per seed and kind, from step 0 to the last step, accuracies in [0, 1]
    assert [run["seed"] for run in vit["runs"]] == [0]
    for run in vit["runs"]:
        assert run["train_images"] < run["test_images"]  # a tenth of 5-9's training images, all their test ones
        for kind in ("fine_tuned", "scratch"):
            assert run[kind]["steps"] == [0, 2, 4]
            assert all(0 <= a <= 1 for a in run[kind]["accuracy"])
    final = vit["final_test_accuracy"]["fine_tuned"]
    assert final["min"] == final["mean"] == final["max"] == vit["runs"][0]["fine_tuned"]["accuracy"][-1]
    assert os.path.getsize(vit["plot"]) > 0
    assert os.path.isfile(tmp_path / "vit_pretrained" / "task.json")

    # Translation: before, full fine-tuning and LoRA, each scored on both test sets
    results = translation["results"]
    assert list(results) == ["pretrained", "full_fine_tuning", "lora_rank_8"]
    for result in results.values():
        assert result["shifted_test"]["sentences"] == 8 and result["builtin_test"]["sentences"] == 8
        assert 0 <= result["shifted_test"]["chrf"] <= 100
    assert 0 < results["lora_rank_8"]["trainable_parameters"] < results["full_fine_tuning"]["trainable_parameters"]
    pieces = translation["shifted_domain"]["pieces"]
    assert pieces["target"]["Hund"] and "".join(p.lstrip("#") for p in pieces["target"]["Hund"]) in ("Hund", "[UNK]")

    # both reports are on disk, with the command that made them, and the tables name both experiments
    for name in ("vit_transfer.json", "translation_transfer.json"):
        report = json.loads((tmp_path / name).read_text())
        assert report["command"].startswith("python -m bench.transfer all --smoke")
        assert report["wall_seconds"] > 0
    assert "from scratch" in reports["markdown"] and "lora_rank_8" in reports["markdown"]
