"""zoo.tasks.fine_tuning: a new head keeps the backbone, another image size resamples positions, only the
head trains when frozen, LoRA trains its low-rank weights only and merges into plain kernels (a saved folder
and an export hold none), and load_pretrained names what it was given when it is no checkpoint."""

import gc
import json
import os
import zipfile

import keras
import numpy as np
import pytest

from zoo.models import VisionTransformer
from zoo.preprocessing import ImagePreprocessor
from zoo.tasks import (
    ImageClassifier,
    Translator,
    enable_lora,
    freeze_backbone,
    load_pretrained,
    merge_lora,
    with_image_size,
    with_new_head,
)
from zoo.tasks.fine_tuning import GLOBAL_CLIPNORM, lora_layers

CLASSES = ("cat", "dog", "emu")


def _classifier(seed=0):
    keras.utils.set_random_seed(seed)
    model = VisionTransformer(image_size=8, patch_size=4, num_classes=3, d_model=16, num_encoder_layers=1,
                              num_heads=2, d_ff=32)
    return ImageClassifier(model, ImagePreprocessor(8, (0.5,) * 3, (0.25,) * 3, CLASSES), top_k=2)


def _pixels(n=4, size=8, seed=0):
    return np.random.default_rng(seed).uniform(size=(n, size, size, 3)).astype("float32")


def _weights(model, skip=()):
    return {v.path.split("/", 1)[1]: keras.ops.convert_to_numpy(v) for v in model.weights
            if not any(s in v.path for s in skip)}


def test_new_head_keeps_the_backbone():
    classifier = _classifier()
    lines = []
    tuned = with_new_head(classifier, ["a", "b", "c", "d", "e"], log=lines.append)
    assert tuned.model.num_classes == 5 and tuned.class_names == ("a", "b", "c", "d", "e")
    assert classifier.model.num_classes == 3  # the given classifier is unchanged
    assert "'head'" in lines[0] and "5 classes" in lines[0]
    old, new = _weights(classifier.model, ["head"]), _weights(tuned.model, ["head"])
    assert old.keys() == new.keys() and len(old) > 10
    for name in old:
        np.testing.assert_array_equal(old[name], new[name], err_msg=name)
    # Same features, new logits.
    x = _pixels()
    np.testing.assert_allclose(keras.ops.convert_to_numpy(tuned.model.features(x)),
                               keras.ops.convert_to_numpy(classifier.model.features(x)), atol=1e-6)
    assert tuned.predict(x)["probabilities"].shape == (4, 5)
    with pytest.raises(ValueError, match="class_names"):
        with_new_head(classifier, ["a", ""])


def test_image_size_resamples_the_position_table():
    classifier = _classifier()
    bigger = with_image_size(classifier, 16, log=None)
    assert bigger.preprocessor.image_size == (16, 16) and bigger.model.grid_size == (4, 4)
    table = keras.ops.convert_to_numpy(bigger.model.position_embedding.embeddings)
    old = classifier.model.position_embedding
    assert table.shape == (1 + 16, 16)
    np.testing.assert_array_equal(table[0], keras.ops.convert_to_numpy(old.embeddings)[0])  # class token kept
    np.testing.assert_allclose(table, keras.ops.convert_to_numpy(old.resample((4, 4))), atol=1e-6)
    # The resampled model answers as the old one does when it resamples on the fly.
    x = _pixels(size=16)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(bigger.model(x)),
                               keras.ops.convert_to_numpy(classifier.model(x)), atol=1e-5)
    with pytest.raises(ValueError, match=r"multiple of the model's patch size \(4, 4\).*\(10, 10\)"):
        with_image_size(classifier, 10)


def test_freeze_backbone_trains_the_head_only(tiny_translator):
    classifier = _classifier()
    freeze_backbone(classifier)
    assert {v.path.split("/", 1)[1] for v in classifier.model.trainable_weights} == {"head/kernel", "head/bias"}
    with pytest.raises(TypeError, match="no separate head.*enable_lora"):
        freeze_backbone(_translator(tiny_translator))


def test_lora_trains_low_rank_weights_then_merges_into_plain_kernels(tmp_path):
    classifier = _classifier()
    lines = []
    enable_lora(classifier, rank=2, log=lines.append)
    trainable = [v.path.split("/", 1)[1] for v in classifier.model.trainable_weights]
    lora = [path for path in trainable if "lora_kernel" in path]
    assert len(lora) == 2 * len(lora_layers(classifier.model)) == 12
    assert sorted(set(trainable) - set(lora)) == ["head/bias", "head/kernel"]  # as PEFT keeps a classifier
    assert "LoRA rank 2 on 6 projections (and the head)" in lines[0]
    with pytest.raises(ValueError, match="already enabled"):
        enable_lora(classifier, rank=2)
    with pytest.raises(ValueError, match="with_new_head: the classifier has LoRA enabled"):
        with_new_head(classifier, ["a", "b"])
    frozen = _weights(classifier.model, ["lora", "head"])
    head = [keras.ops.convert_to_numpy(v) for v in classifier.model.head.weights]
    x, y = _pixels(8), keras.utils.to_categorical(np.arange(8) % 3, 3)
    classifier.compile(optimizer=keras.optimizers.Adam(1e-2))
    classifier.model.fit(x, y, epochs=2, batch_size=4, verbose=0)
    assert not np.array_equal(keras.ops.convert_to_numpy(classifier.model.head.kernel), head[0])  # it trained
    for name, value in _weights(classifier.model, ["lora", "head"]).items():  # only A, B and the head moved
        np.testing.assert_array_equal(value, frozen[name], err_msg=name)
    tuned = keras.ops.convert_to_numpy(classifier.model(x))

    folder = classifier.save(tmp_path / "task")  # merges
    assert lora_layers(classifier.model, enabled=True) == []
    assert not any("lora" in v.path for v in classifier.model.weights)
    assert len(classifier.model.trainable_weights) == len(classifier.model.weights)  # unfrozen again
    np.testing.assert_allclose(keras.ops.convert_to_numpy(classifier.model(x)), tuned, atol=1e-5)
    with zipfile.ZipFile(os.path.join(folder, "model.keras")) as archive:
        config = archive.read("config.json").decode()
        names = archive.namelist()
    assert "lora" not in config and not any("lora" in n for n in names)
    reloaded = ImageClassifier.load(folder)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(reloaded.model(x)), tuned, atol=1e-5)
    assert merge_lora(reloaded) == 0


def _translator(tiny_translator):
    """A translator of its own (the fixture's model is shared): the fixture's tokenizers, a fresh model."""
    model, source, target = tiny_translator
    return Translator(type(model).from_config(model.get_config()), source, target)


def test_export_merges_lora(tmp_path):
    import tensorflow as tf

    classifier = _classifier()
    before = classifier.predict(_pixels())["probabilities"]
    enable_lora(classifier, rank=1, log=None)
    path = classifier.export(tmp_path / "serving")
    assert lora_layers(classifier.model, enabled=True) == []
    names = [name for name, _ in tf.train.list_variables(os.path.join(path, "variables", "variables"))]
    assert names and not any("lora" in name for name in names)
    with open(os.path.join(path, "saved_model.pb"), "rb") as f:
        assert b"lora" not in f.read()
    # B starts at zero: merged without training, the classifier answers as before.
    np.testing.assert_allclose(classifier.predict(_pixels())["probabilities"], before, atol=1e-6)


def test_translator_lora_covers_every_projection(tiny_translator):
    translator = _translator(tiny_translator)
    ids = np.array([[5, 6, 7, 2, 0]], "int32")
    before = keras.ops.convert_to_numpy(translator.model({"source_ids": ids, "target_ids": ids}))
    enable_lora(translator, rank=1, log=None)
    assert len(lora_layers(translator.model, enabled=True)) == 4 * 3 + 2 * 2  # 1 encoder, 1 decoder layer
    assert merge_lora(translator, log=None) == 16
    np.testing.assert_allclose(keras.ops.convert_to_numpy(translator.model({"source_ids": ids, "target_ids": ids})), before, atol=1e-5)
    assert gc.get_freeze_count() == 0  # merge_lora froze the objects for its deletions only
    assert not any("lora" in v.path for v in translator.model.weights)


def test_merge_lora_leaves_what_the_process_froze_frozen(tiny_translator, monkeypatch):
    translator = _translator(tiny_translator)
    enable_lora(translator, rank=1, log=None)
    unfreeze, calls = gc.unfreeze, []
    monkeypatch.setattr(gc, "unfreeze", lambda: calls.append("unfreeze"))
    gc.freeze()  # as a pre-fork server does
    try:
        assert merge_lora(translator, log=None) == 16
    finally:
        unfreeze()
    assert calls == [] and lora_layers(translator.model, enabled=True) == []


def test_compile_defaults_share_one_clipping_rule(tiny_translator):
    classifier, translator = _classifier(), _translator(tiny_translator)
    classifier.compile()
    translator.compile()
    for task in (classifier, translator):
        optimizer = task.model.optimizer
        assert optimizer.global_clipnorm == GLOBAL_CLIPNORM and optimizer.clipnorm is None
    assert float(translator.model.optimizer.learning_rate) < 1e-4  # fine-tuning rates, below the recipes'
    assert float(classifier.model.optimizer.learning_rate) < 1e-3


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "missing", "No checkpoint at"),
    (lambda p: (p / "empty").mkdir() or p / "empty", "holds an empty folder: none of the checkpoints"),
    (lambda p: (p / "notes.txt").write_text("hi") and p / "notes.txt", "notes.txt is a file of none of the kinds"),
    (lambda p: (p / "w.safetensors").write_bytes(b"x") and p / "w.safetensors", "weights file: pass its timm"),
    (lambda p: _config(p, {"model_type": "bert"}), "model_type='bert' and names no timm architecture"),
    (lambda p: _config(p, "[1, 2"), "config.json is not valid JSON"),
    (lambda p: _config(p, {"model_type": "marian"}), "MarianMT"),  # no tokenizer or weights: named
])
def test_load_pretrained_names_what_it_received(tmp_path, make, message):
    with pytest.raises((ValueError, FileNotFoundError), match=message) as info:
        load_pretrained(make(tmp_path))
    if "none of" in message:
        assert "a zoo task folder" in str(info.value) and "timm weights file" in str(info.value)


def _config(folder, config):
    (folder / "ckpt").mkdir()
    (folder / "ckpt" / "config.json").write_text(config if isinstance(config, str) else json.dumps(config))
    return folder / "ckpt"


def test_load_pretrained_reads_task_and_run_folders(tmp_path):
    classifier = _classifier()
    classifier.save(tmp_path / "run" / "model")
    for path in (tmp_path / "run" / "model", tmp_path / "run"):
        loaded = load_pretrained(path)
        assert isinstance(loaded, ImageClassifier) and loaded.class_names == CLASSES
    with pytest.raises(ValueError, match="architecture= \\(--architecture\\) is for timm checkpoints only"):
        load_pretrained(tmp_path / "run", architecture="vit_tiny_patch16_224")
