"""Every benchmark runs end to end at a toy size, so none can rot."""

import pytest

from bench import (
    attention,
    image_export,
    matmul_ceiling,
    translation_training,
    vit_training,
)

TINY = ["--windows", "1", "--window-seconds", "0.01", "--warmup-steps", "0"]


def test_attention_runs():
    report = attention.main(
        TINY + ["--batch-size", "2", "--seq-lens", "8", "--widths", "vit_ti", "--masks", "none,padding",
                "--jit-compile", "false"]
    )
    assert len(report["cases"]) == 2
    assert all(case["zoo_over_keras_core"] > 0 for case in report["cases"])


@pytest.mark.slow
def test_vit_training_runs():
    report = vit_training.main(TINY + ["--batch-size", "2", "--layers", "1", "--jit-compile", "false"])
    # Same architecture on both sides: same parameter count.
    assert report["params"]["zoo"] == report["params"]["keras_hub"]
    assert report["zoo_over_keras_hub_each_at_best"] > 0
    assert 0 < report["zoo_executed_train_flops_per_step"] < report["train_flops_per_step"]


@pytest.mark.slow
def test_translation_training_runs():
    report = translation_training.main(
        TINY + ["--batch-size", "2", "--layers", "1", "--source-length", "6", "--target-length", "5",
                "--vocab-size", "50", "--jit-compile", "false"]
    )
    gap = report["params"]["keras_hub"] - report["params"]["zoo"]
    assert gap == report["param_gap_explained"]["keras_hub_position_tables"]


@pytest.mark.slow
def test_image_export_runs():
    report = image_export.main(TINY + ["--layers", "1", "--batch-sizes", "2", "--png-size", "40"])
    assert report["batch_2"]["images_per_s"]["png_bytes"]["median"] > 0


def test_translation_batches_runs():
    from bench import translation_batches

    report = translation_batches.main(["--pairs", "200", "--repeats", "1"])
    assert report["kept"] == 200 and report["median_s"]["zoo"] > 0


def test_matmul_ceiling_runs():
    report = matmul_ceiling.main(["--size", "64", "--repeats", "2"])
    assert report["tflops_per_s"] > 0


@pytest.mark.slow
def test_profile_components_runs():
    from bench import profile_components

    report = profile_components.main(TINY + ["--groups", "attention_variants"])
    results = report["jit_compile=False"]
    assert "zoo_current_over_keras_core" in results["attention_tiny_encoder_padding_mask"]
