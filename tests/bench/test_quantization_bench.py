"""bench/quantization.py at a toy size, and its quality and drift measures on known answers."""

import numpy as np
import pytest

from bench import quantization

TINY = ["--windows", "1", "--window-seconds", "0.01", "--warmup-steps", "0", "--layers", "1"]


class _Fake:
    """A stand-in `serving_default`: answers from a table."""

    def __init__(self, answers, key):
        self.answers, self.key = answers, key

    def __call__(self, **inputs):
        import tensorflow as tf

        (batch,) = inputs.values()
        return {self.key: tf.constant([self.answers[x] for x in batch.numpy().tolist()])}


def test_translation_quality_scores_each_side_against_the_references():
    pairs = [("a b c", "x y z w"), ("d e", "u v w t")]
    perfect = _Fake({s.encode(): t for s, t in pairs}, "translations")
    wrong = _Fake({s.encode(): "nothing alike" for s, _ in pairs}, "translations")
    report = quantization.translation_quality({"float": perfect, "int8": wrong}, pairs)
    assert report["float"]["bleu"] == pytest.approx(100.0)
    assert report["int8"]["bleu"] < 1 and report["int8"]["same_translation_as_float"] == 0.0
    assert report["int8"]["bleu_minus_float"] == pytest.approx(report["int8"]["bleu"] - 100.0)


def test_image_quality_reads_the_top_label():
    import tensorflow as tf

    pngs = [b"p0", b"p1", b"p2", b"p3"]
    labels, names = np.array([0, 1, 1, 0]), ["zero", "one"]

    class Classifier:
        def __init__(self, tops):
            self.tops = tops

        def __call__(self, image_bytes):
            rows = [[self.tops[b], "?"] for b in image_bytes.numpy().tolist()]
            return {"top_k_labels": tf.constant(rows)}

    right = Classifier({b"p0": "zero", b"p1": "one", b"p2": "one", b"p3": "zero"})
    three = Classifier({b"p0": "zero", b"p1": "one", b"p2": "zero", b"p3": "zero"})
    report = quantization.image_quality({"float": right, "int8": three}, pngs, labels, names, batch_size=3)
    assert report["float"]["top1"] == 1.0 and report["int8"]["top1"] == 0.75
    assert report["int8"]["same_top1_as_float"] == 0.75


@pytest.mark.slow
def test_quantization_bench_runs_on_a_toy_translator():
    report = quantization.main(
        TINY + ["--models", "translator", "--sides", "float,int8", "--parts", "size,speed,profile",
                "--batch-sizes", "2", "--profile-batch", "4", "--profile-runs", "1"]
    )
    translator = report["translator"]
    assert translator["size"]["int8_over_float"]["variables_bytes"] < 0.4
    assert translator["sentences_per_s"]["batch_2"]["over_float"]["int8"] > 0
    profile = translator["profile"]
    assert 0 < profile["float"]["share"]["weight_matmuls"] < 1
    # The int8 -> float casts and scalings show up where they run (float has a few no-op casts there).
    assert profile["float"]["share"]["dequantize"] < 0.01 < profile["int8"]["share"]["dequantize"]
    assert profile["float"]["max_speedup_from_weight_matmuls"] > 1


@pytest.mark.slow
def test_marian_logit_drift_on_the_tests_reference_checkpoint():
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from bench.quantization_profile import marian_drift

    drift = marian_drift(sentences=8)
    assert 0 < drift["max_abs_logit_difference"] < 0.1 * drift["float_logit_std"]
    assert drift["same_argmax"] > 0.9 and drift["positions"] > 8
