"""Bad requests sent to exports as TF Serving runs them (`serving_probe`): the process must survive.

One child process per export (translator, image classifier) answers every
request; each answer must be the clear error (an `InvalidArgumentError`
naming the input) or per-item invalid flags, never a crash (issue 24: a
scalar `sentences` segfaulted the server, a 2-D one dropped columns, an
out-of-range id failed a `translate_ids` batch, small image files declaring
huge images took gigabytes, NaN pixels came back `valid`).
"""

import io

import numpy as np
import pytest
from PIL import Image

from tests.export.conftest import EN
from tests.export.serving_probe import send
from tests.preprocessing.hostile_images import issue_24_files
from zoo.decoding import SearchSettings
from zoo.models import VisionTransformer
from zoo.preprocessing import ImagePreprocessor
from zoo.tasks import ImageClassifier, Translator

SENTENCES = np.array([s.encode() for s in EN[:2]], dtype=object)
TRANSLATOR_REQUESTS = {
    "good": ("serving_default", {"sentences": SENTENCES}),
    "empty batch": ("serving_default", {"sentences": np.zeros((0,), dtype=object)}),
    "huge sentence": ("serving_default", {"sentences": np.array([b"apples " * 200_000], dtype=object)}),
    "n above the beam": ("translate_nbest", {"sentences": SENTENCES, "n": np.array(10**6, np.int32)}),
    "scalar": ("serving_default", {"sentences": np.array(EN[0].encode(), dtype=object)}),
    "2-D": ("serving_default", {"sentences": SENTENCES.reshape(1, 2)}),
    "scalar n-best": ("translate_nbest", {"sentences": np.array(EN[0].encode(), dtype=object),
                                          "n": np.array(2, np.int32)}),
    "n not a scalar": ("translate_nbest", {"sentences": SENTENCES, "n": np.array([2, 3], np.int32)}),
    "ids out of range": ("translate_ids", {"source_ids": np.array([[5, 6, 7], [5, 10**6, 6], [-1, 5, 6], [5, 6, 7]],
                                                                  np.int32)}),
    "ids of no columns": ("translate_ids", {"source_ids": np.zeros((2, 0), np.int32)}),
    "ids 1-D": ("translate_ids", {"source_ids": np.array([5, 6, 7], np.int32)}),
    "ids empty batch": ("translate_ids", {"source_ids": np.zeros((0, 3), np.int32)}),
}
WRONG_RANK = {"scalar": "sentences", "2-D": "sentences", "scalar n-best": "sentences", "n not a scalar": "n",
              "ids 1-D": "source_ids"}


@pytest.fixture(scope="module")
def translator_answers(tiny_translator, tmp_path_factory):
    translator = Translator(*tiny_translator, SearchSettings(beam_width=2, max_length=10))
    path = translator.export(str(tmp_path_factory.mktemp("serving")))
    return dict(zip(TRANSLATOR_REQUESTS, send(path, list(TRANSLATOR_REQUESTS.values())))), translator


def _survived(answer):
    assert "crashed" not in answer, f"the serving process died: exit status {answer['crashed']}"
    return answer


@pytest.mark.slow
def test_translator_export_answers_bad_requests_with_clear_errors_or_invalid_rows(translator_answers):
    answers, translator = translator_answers
    assert answers["good"]["outputs"]["translations"] == translator.translate(EN[:2])
    assert answers["empty batch"]["outputs"]["translations"] == []
    assert answers["huge sentence"]["outputs"]["truncated"] == [True]
    assert np.shape(answers["n above the beam"]["outputs"]["translations"]) == (2, 2)  # n clamped to the beam
    for name, what in WRONG_RANK.items():
        answer = _survived(answers[name])
        assert answer.get("error") == "InvalidArgumentError", (name, answer)
        assert f"{what} must have rank" in answer["message"] and "Received: a tensor of shape" in answer["message"]
    # Out-of-range ids mark their row invalid; the others are answered as if sent alone.
    out = _survived(answers["ids out of range"])["outputs"]
    assert out["valid"] == [True, False, False, True]
    assert out["target_ids"][0] == out["target_ids"][3] and out["scores"][0] == pytest.approx(out["scores"][3], abs=1e-5)
    assert out["target_ids"][1] == [translator.model.pad_token_id] * len(out["target_ids"][1]) and out["scores"][1] == 0
    assert _survived(answers["ids of no columns"])["outputs"]["valid"] == [True, True]
    assert _survived(answers["ids empty batch"])["outputs"]["valid"] == []


def _png(shade):
    buffer = io.BytesIO()
    Image.fromarray(np.full((12, 16, 3), shade, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


HOSTILE = issue_24_files()
PIXELS = np.random.default_rng(0).random((3, 10, 10, 3)).astype(np.float32)
PIXELS[1, 2, 3, 0], PIXELS[2, 0, 0, 2] = np.nan, np.inf
CLASSIFIER_REQUESTS = {
    "good": ("serving_default", {"image_bytes": np.array([_png(40), b"not an image"], dtype=object)}),
    **{name: ("serving_default", {"image_bytes": np.array([data, _png(200)], dtype=object)})
       for name, data in HOSTILE.items()},
    "empty batch": ("serving_default", {"image_bytes": np.zeros((0,), dtype=object)}),
    "scalar": ("serving_default", {"image_bytes": np.array(_png(40), dtype=object)}),
    "2-D": ("serving_default", {"image_bytes": np.array([[_png(40), _png(90)]], dtype=object)}),
    "non-finite pixels": ("classify_pixels", {"pixels": PIXELS}),
    "pixels of rank 3": ("classify_pixels", {"pixels": PIXELS[0]}),
    "pixels of 4 channels": ("classify_pixels", {"pixels": np.zeros((1, 4, 4, 4), np.float32)}),
    "pixels empty batch": ("classify_pixels", {"pixels": np.zeros((0, 4, 4, 3), np.float32)}),
    "pixels of no rows": ("classify_pixels", {"pixels": np.zeros((2, 0, 4, 3), np.float32)}),
}


@pytest.fixture(scope="module")
def classifier_answers(tmp_path_factory):
    model = VisionTransformer(image_size=8, patch_size=4, num_classes=3, d_model=16, num_encoder_layers=1,
                              num_heads=2, d_ff=32)
    classifier = ImageClassifier(model, ImagePreprocessor(8, (0.5,) * 3, (0.5,) * 3, ("a", "b", "c")), top_k=2)
    path = classifier.export(str(tmp_path_factory.mktemp("serving")))
    return dict(zip(CLASSIFIER_REQUESTS, send(path, list(CLASSIFIER_REQUESTS.values())))), classifier


@pytest.mark.slow
def test_classifier_export_answers_bad_requests_with_clear_errors_or_invalid_rows(classifier_answers):
    answers, classifier = classifier_answers
    good = _survived(answers["good"])["outputs"]
    assert good["valid"] == [True, False] and good["reason"][0] == ""
    assert good["reason"][1].startswith("not a decodable image")
    alone = classifier.predict([_png(200)])
    # Files whose headers declare huge images: refused (or, an animation, its first frame decoded)
    # from the header, without the gigabytes the issue saw, and the good image beside them answered.
    over = "more than max_pixels="
    expected = {"animated GIF 2.9 MB": "", "GIF with a 1x1 screen": "", "PNG over the pixel limit": over,
                "WebP 10 KB of a huge canvas": over}
    for name, reason in expected.items():
        answer = _survived(answers[name])
        out = answer["outputs"]
        assert out["valid"] == [reason == "", True] and out["reason"][0].startswith(reason), (name, out["reason"])
        np.testing.assert_allclose(out["probabilities"][1], alone["probabilities"][0], atol=1e-5)
        assert answer["peak_growth_mib"] < 100, (name, answer["peak_growth_mib"])
        # "Within a second" is the target (BENCHMARKS.md); this bound catches the 44 s the issue saw,
        # not a busy machine.
        assert answer["seconds"] < 10, (name, answer["seconds"])
    assert _survived(answers["empty batch"])["outputs"]["valid"] == []
    assert _survived(answers["pixels empty batch"])["outputs"]["valid"] == []
    no_rows = _survived(answers["pixels of no rows"])  # every image of the batch is empty: the request fails
    assert no_rows.get("error") == "InvalidArgumentError" and "non-zero size" in no_rows["message"], no_rows
    for name, what in (("scalar", "image_bytes"), ("2-D", "image_bytes"), ("pixels of rank 3", "pixels"),
                       ("pixels of 4 channels", "pixels")):
        answer = _survived(answers[name])
        assert answer.get("error") == "InvalidArgumentError" and what in answer["message"], (name, answer)
    pixels = _survived(answers["non-finite pixels"])["outputs"]
    assert pixels["valid"] == [True, False, False] and np.isfinite(pixels["probabilities"]).all()
    assert pixels["reason"] == ["", "pixels hold a NaN or an infinity", "pixels hold a NaN or an infinity"]
    assert not np.any(pixels["probabilities"][1:])
