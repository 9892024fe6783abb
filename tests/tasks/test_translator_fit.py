"""Translator.fit: trains on sentence pairs through the task's preprocessor; the fitted task saves,
loads and exports as any translator, on TensorFlow and JAX, a converted MarianMT included."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.export.conftest import DE, EN
from tests.tasks.conftest import ROOT, run_fresh
from zoo.data.translation_data import DataError
from zoo.decoding import SearchSettings
from zoo.models import TransformerTranslator
from zoo.tasks import Translator

PAIRS = list(zip(EN, DE))


def _copy(model):
    """A model of the same config and weights (the shared fixture's model stays untrained)."""
    copy = TransformerTranslator.from_config(model.get_config())
    ids = np.ones((1, 2), "int32")
    copy({"source_ids": ids, "target_ids": ids})
    copy.set_weights(model.get_weights())
    return copy


@pytest.fixture
def translator(tiny_translator):
    model, source, target = tiny_translator
    return Translator(_copy(model), source, target, SearchSettings(beam_width=2, max_length=10))


def test_fit_compiles_for_fine_tuning_and_the_result_reloads(translator, tmp_path):
    before = [w.copy() for w in translator.model.get_weights()]
    history = translator.fit(PAIRS * 2, validation_data=PAIRS, epochs=2, batch_size=4, verbose=0)
    assert set(history.history) >= {"loss", "val_loss", "accuracy", "val_accuracy"} and len(history.epoch) == 2
    optimizer = translator.model.optimizer
    assert isinstance(optimizer, keras.optimizers.AdamW) and float(optimizer.learning_rate) == pytest.approx(2e-5)
    weights = translator.model.get_weights()
    assert any(not np.array_equal(a, b) for a, b in zip(before, weights))
    loaded = Translator.load(translator.save(tmp_path / "fitted"))
    assert all(np.array_equal(a, b) for a, b in zip(loaded.model.get_weights(), weights))
    assert not loaded.model.compiled and loaded.settings == translator.settings


def test_fit_takes_a_dataset_with_callbacks_and_a_file(translator, tmp_path, capsys):
    path = tmp_path / "pairs.tsv"
    path.write_text("".join(f"{s}\t{t}\n" for s, t in PAIRS * 6) + "no tab\n")

    class Batches(keras.callbacks.Callback):
        count = 0

        def on_train_batch_end(self, batch, logs=None):
            Batches.count += 1

    dataset = tf.data.Dataset.from_tensor_slices(([s for s, _ in PAIRS * 2], [t for _, t in PAIRS * 2]))
    translator.fit(dataset, validation_data=str(path), batch_size=3, callbacks=[Batches()], verbose=2)
    assert Batches.count == 3  # 8 pairs in batches of 3
    printed = capsys.readouterr().out
    assert "24 sentence pairs from 25 lines; 1 bad line skipped (1 no tab)" in printed and "24 pairs kept" in printed


def test_fit_names_bad_data(translator, tmp_path):
    with pytest.raises(TypeError, match=r"pairs of str. Received: tuple \('I buy', 3\) at index 1"):
        translator.fit([PAIRS[0], ("I buy", 3)], verbose=0)
    with pytest.raises(TypeError, match="a list of .* a TSV file path or a tf.data.Dataset. Received: bytes"):
        translator.fit(PAIRS, validation_data=b"pairs.tsv", verbose=0)
    empty = tmp_path / "empty.tsv"
    empty.write_text("\n\n")
    with pytest.raises(DataError, match="empty.tsv: no sentence pairs found"):
        translator.fit(str(empty), verbose=0)
    assert not translator.model.compiled  # refused before anything started


def test_special_ids_must_agree_and_max_length_is_saved(tiny_translator, tmp_path):
    model, source, target = tiny_translator
    config = dict(model.get_config(), end_token_id=5)
    with pytest.raises(ValueError, match="model end_token_id=5 but target_tokenizer.end_id=3"):
        Translator(TransformerTranslator.from_config(config), source, target)
    with pytest.raises(ValueError, match="from 2 to the model's max_length 16. Received: max_length=17"):
        Translator(model, source, target, max_length=17)
    short = Translator(model, source, target, SearchSettings(beam_width=2), max_length=5)
    folder = short.save(tmp_path / "short")
    loaded = Translator.load(folder)
    assert loaded.preprocessor.max_length == 5
    assert loaded.is_truncated(["I buy three apples . I buy", "I buy"]) == [True, False]
    meta = json.loads((tmp_path / "short" / "task.json").read_text())
    meta["settings"]["preprocessor"] = {"max_len": 5}
    (tmp_path / "short" / "task.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"settings.preprocessor must be \{'max_length': int\}. Received: \{'max_len'"):
        Translator.load(folder)
    del meta["settings"]["preprocessor"]  # a folder written before the preprocessor: the model's max_length
    (tmp_path / "short" / "task.json").write_text(json.dumps(meta))
    assert Translator.load(folder).preprocessor.max_length == model.max_length


JAX_FIT = """
import json, sys
import keras, numpy as np
from tests.export.conftest import DE, EN
from zoo.decoding import SearchSettings
from zoo.models import TransformerTranslator
from zoo.tasks import Translator
from zoo.text import WordPieceTokenizer
keras.utils.set_random_seed(0)
source = WordPieceTokenizer.from_corpus(EN * 10, 80, lowercase=False)
target = WordPieceTokenizer.from_corpus(DE * 10, 80, lowercase=False)
model = TransformerTranslator(source.vocabulary_size, target.vocabulary_size, num_encoder_layers=1,
                              num_decoder_layers=1, d_model=16, num_heads=2, d_ff=32, max_length=12)
translator = Translator(model, source, target, SearchSettings(beam_width=2, max_length=8))
# Pairs of 1 to 5 words a side: unpadded, batches of many lengths.
pairs = [(" ".join(e.split()[:k]), " ".join(d.split()[:k])) for e, d in zip(EN, DE) for k in range(1, 6)]
translator.compile(optimizer=keras.optimizers.Adam(1e-2))
traced, train_step = [], model.train_step
def counted(state, data):  # runs once per trace (jax.jit compiles once per input shape)
    traced.append([list(data[0]["source_ids"].shape), list(data[0]["target_ids"].shape)])
    return train_step(state, data)
model.train_step = counted
history = translator.fit(pairs, validation_data=pairs[:4], epochs=3, batch_size=4, verbose=0).history
loaded = Translator.load(translator.save(sys.argv[1]))
same = all(np.array_equal(a, b) for a, b in zip(loaded.model.get_weights(), model.get_weights()))
print(json.dumps(dict(backend=keras.backend.backend(), loss=history["loss"], val_loss=history["val_loss"], same=same,
                      traced=traced)))
"""


@pytest.mark.slow
def test_fit_on_jax(tmp_path):
    pytest.importorskip("jax")
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, "-c", JAX_FIT, str(tmp_path / "fitted")], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["backend"] == "jax" and out["same"]
    assert out["loss"][-1] < out["loss"][0] and np.isfinite(out["val_loss"]).all()
    # Batches padded to bucket widths (7 or 12 ids at max_length 12): a train step compiled per bucket and
    # batch size, in the first epoch only, not once per batch length.
    assert {n for shapes in out["traced"] for _, n in shapes} <= {7, 12}, out["traced"]
    assert len(out["traced"]) == len({str(shapes) for shapes in out["traced"]}) <= 4, out["traced"]


FRESH_EXPORT = """
import json, sys, zoo
translator = zoo.Translator.load(sys.argv[1])
print(json.dumps([translator.translate(json.loads(sys.argv[3])), translator.export(sys.argv[2])]))
"""


@pytest.mark.slow
def test_a_converted_marian_fine_tunes_saves_reloads_and_exports(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    pytest.importorskip("sentencepiece")
    from tests.convert.marian_checkpoint import (
        SOURCE_WORDS, TARGET_WORDS, hf_tokenizer, sentences, write_marian_checkpoint,
    )

    directory = str(tmp_path / "marian")
    write_marian_checkpoint(directory)
    translator = Translator.from_marian(directory, max_length=12)
    model, preprocessor = translator.model, translator.preprocessor
    long = " ".join(["the green river"] * 40)  # more than the model's 64 positions
    sources = sentences(SOURCE_WORDS, 30, seed=3) + [long]
    targets = sentences(TARGET_WORDS, 30, seed=4) + [" ".join(["der grün Fluss"] * 40)]
    pairs = list(zip(sources, targets))
    # The batches hold what transformers' tokenizer gives for fine-tuning (sources truncated keeping
    # </s>, labels = target + </s>), decoder inputs shifted right from the pad id, padding the pad id.
    batches, stats = preprocessor.batches(pairs, 8, shuffle=False)
    hf = hf_tokenizer(directory)(sources, text_target=targets, truncation=True, max_length=model.max_length)
    rows = {"source": [], "labels": [], "inputs": []}
    pad = model.pad_token_id
    assert pad == preprocessor.pad_id == preprocessor.source_pad_id != 0 == model.end_token_id
    for inputs, labels, weights in batches:
        real = weights.numpy() > 0
        for source, label, decoder_input, mask in zip(inputs["source_ids"].numpy(), labels.numpy(),
                                                      inputs["target_ids"].numpy(), real):
            assert (label[~mask] == pad).all() and (decoder_input[~mask] == pad).all()
            rows["source"].append([int(t) for t in source if t != pad])
            rows["labels"].append(label[mask].tolist())
            rows["inputs"].append(decoder_input[mask].tolist())
    assert stats.truncated == 1 and sorted(rows["source"]) == sorted(hf["input_ids"])
    assert sorted(rows["labels"]) == sorted(hf["labels"])
    assert sorted(rows["inputs"]) == sorted([pad] + label[:-1] for label in hf["labels"])
    assert max(map(len, rows["source"])) == model.max_length and [0] not in rows["labels"]

    before = [w.copy() for w in model.get_weights()]
    history = translator.fit(pairs, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    weights = model.get_weights()
    assert any(not np.array_equal(a, b) for a, b in zip(before, weights))
    folder = translator.save(tmp_path / "fine-tuned")
    # A fresh process loads the folder, translates and exports; the export answers as that translator.
    sentences = sources[:6] + [long, ""]
    translations, path = json.loads(run_fresh(FRESH_EXPORT, folder, tmp_path / "serving", json.dumps(sentences)))
    served = tf.saved_model.load(path).signatures["serving_default"](sentences=tf.constant(sentences))
    assert [t.decode() for t in served["translations"].numpy()] == translations and any(translations)
    assert served["truncated"].numpy().tolist() == [False] * 6 + [True, False]
    reloaded = Translator.load(folder)
    assert all(np.array_equal(a, b) for a, b in zip(reloaded.model.get_weights(), weights))
