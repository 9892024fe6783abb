"""Fine-tuning converted ViTs end to end: a random-initialised timm ViT, converted with
`zoo.ImageClassifier.from_timm`, fine-tuned a few steps with `fit` on a class folder, saved, reloaded and
exported in a fresh process; the export answers as the fine-tuned task, and its training batches are what
serving feeds the model (the checkpoint's resize, crop and normalisation). The HF ViT goes the same way
through the recipe (`tests/recipes/test_fine_tune_recipes.py`: `train --init-from`, its batches, a fresh
process, the export)."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import write_class_folders
from tests.tasks.conftest import run_fresh
from zoo.tasks import ImageClassifier
from zoo.tasks.image_classifier_graph import classify_with_saved_model

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.slow

FRESH = """
import json, sys, zoo
folder, base, paths = sys.argv[1], sys.argv[2], sys.argv[3:]
classifier = zoo.ImageClassifier.load(folder)
out = classifier.predict(paths)
print(json.dumps(dict(export=classifier.export(base), probabilities=out["probabilities"].tolist())))
"""


def _converted(folder):
    pytest.importorskip("timm")
    from tests.convert.test_timm_vit import _reference, _save_for_hf

    _save_for_hf(_reference(), folder, label_names=["cat", "dog", "tabby cat", "bird", "fish"])
    return ImageClassifier.from_timm(folder)  # timm's eval transform: bicubic, crop_pct 0.875


def test_fine_tune_save_reload_export(tmp_path):
    classifier = _converted(tmp_path / "checkpoint")
    assert (classifier.preprocessor.crop_pct, classifier.preprocessor.interpolation) == (0.9, "bicubic")
    paths = write_class_folders(tmp_path / "images", ["cat", "tabby cat", "bird"])  # some of its classes
    encoded = [p.read_bytes() for p in paths]
    labels = [classifier.class_names.index(p.parent.name) for p in paths]

    # A training batch holds what serving feeds the model for the same images.
    batch, one_hot = next(iter(classifier.preprocessor.batches(tf.data.Dataset.from_tensor_slices((encoded, labels)),
                                                               len(paths))))
    served = classifier.prepare(encoded)
    assert served["valid"].all() and batch.shape == (len(paths), 32, 32, 3)
    np.testing.assert_allclose(batch.numpy(), served["inputs"], atol=1e-6)
    np.testing.assert_array_equal(one_hot.numpy().argmax(-1), labels)

    before = classifier.predict(encoded)["probabilities"]
    classifier.compile(optimizer=keras.optimizers.AdamW(1e-3))  # random weights: a rate that moves them in 6 steps
    history = classifier.fit(str(tmp_path / "images"), validation_data=str(tmp_path / "images"), epochs=2,
                             batch_size=4, verbose=0)
    assert len(history.history["val_loss"]) == 2
    assert history.history["loss"][-1] < history.history["loss"][0]
    after = classifier.predict(encoded)
    assert np.abs(after["probabilities"] - before).max() > 1e-3  # it learned something
    # A class the fine-tuning data lacked is still a class of the fine-tuned classifier.
    assert after["probabilities"].shape[1] == len(classifier.class_names)

    folder = classifier.save(tmp_path / "fine-tuned")
    answer = json.loads(run_fresh(FRESH, folder, tmp_path / "serving", *paths))
    np.testing.assert_allclose(answer["probabilities"], after["probabilities"], atol=1e-5)
    served = classify_with_saved_model(answer["export"], encoded + [b"not an image"])
    np.testing.assert_allclose(served["probabilities"][:-1], after["probabilities"], atol=1e-5)
    assert served["valid"].tolist() == [True] * len(paths) + [False]
    assert [[label.decode() for label in row] for row in served["top_k_labels"][:-1]] == after["top_k_labels"].tolist()
