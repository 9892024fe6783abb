"""Both recipes on the JAX and PyTorch backends: train a few steps, evaluate, export the TF SavedModel
(through the TensorFlow backend in a subprocess), and the export answers as the trained model does in
process.

On JAX the translation run is data-parallel on 8 simulated CPU devices and the image run is on one
device and also checks the flags JAX cannot run; on PyTorch both run on one device. Each runs in a
subprocess: Keras and JAX fix the backend and the device count at import.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests.recipes.parity import ROOT

pytestmark = pytest.mark.slow


def _on(backend, code, *args, devices=1):
    pytest.importorskip(backend)
    env = dict(os.environ, KERAS_BACKEND=backend, JAX_PLATFORMS="cpu", CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="3")
    if devices > 1:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    result = subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=1200)
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])
    return result.stdout, json.loads(result.stdout.strip().splitlines()[-1])


TRANSLATION = """
import json, sys
import keras
from recipes import translation
out, corpus, sentences = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
translation.main(["train", "--output", out, "--data", "tsv:" + corpus, "--num-layers", "1", "--d-model", "32",
                  "--max-length", "12", "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "12",
                  "--beam-width", "2", "--eval-sentences", "4", "--distribute", "data-parallel"])
answers = {}
for kind, path in (("jax", out + "/model"), ("export", out + "/export/translator")):
    texts, scores, cut = translation.translator_function(path)([s.encode() for s in sentences])
    answers[kind] = dict(texts=list(texts), scores=[float(s) for s in scores], truncated=[bool(c) for c in cut])
# Model-parallel: the recipe's scope splits the model built in it; a mesh the model does not divide
# is named (after the data is read, before training).
import contextlib, io
import numpy as np
import zoo
from recipes import devices
from zoo.models import TransformerTranslator
trained = zoo.Translator.load(out + "/model")
config = translation.TranslationConfig(distribute="model-parallel", mesh="2x4", num_layers=1, d_model=32, max_length=12)
architecture = translation.model_config(config, trained.source_tokenizer, trained.target_tokenizer)
with devices.training_scope(config, TransformerTranslator, architecture):
    model = TransformerTranslator(**architecture)
    ids = np.full((2, 5), 5, "int32")
    model({"source_ids": ids, "target_ids": ids})
split = sorted(v.path for v in model.weights if "model" in [str(a) for a in (v.value.sharding.spec or [])])
stderr = io.StringIO()
with contextlib.redirect_stderr(stderr):
    try:
        translation.main(["train", "--output", out + "-mp", "--data", "tsv:" + corpus, "--d-model", "20",
                          "--distribute", "model-parallel", "--mesh", "1x8"])
    except SystemExit:
        pass
print(json.dumps(dict(answers, backend=keras.backend.backend(), split=split, mesh_error=stderr.getvalue())))
"""


def _corpus(tmp_path):
    """400 pairs of the built-in corpus as a TSV file: a vocabulary learnt in seconds, a few batches."""
    from zoo.data import builtin_translation

    pairs = builtin_translation.load_splits()["train"][:400]
    corpus = tmp_path / "corpus.tsv"
    corpus.write_text("".join(f"{source}\t{target}\n" for source, target in pairs), encoding="utf-8")
    return corpus, pairs


def test_translation_trains_data_parallel_on_8_devices_and_its_export_answers_as_jax(tmp_path):
    corpus, pairs = _corpus(tmp_path)
    out = tmp_path / "run"
    sentences = [source for source, _ in pairs[:5]] + ["", "apples " * 30]
    log, answers = _on("jax", TRANSLATION, out, corpus, json.dumps(sentences), devices=8)
    assert answers["backend"] == "jax"
    assert "--distribute data-parallel (jax): DataParallel over 8 devices (8 batch)" in log
    assert "each batch is split 8 ways: batches are cut to a multiple of 8 examples" in log  # --batch-size 12
    assert "Training ran 1 of 1 epochs" in log and "2/2" in log
    # The same outputs as on TensorFlow: metrics, the plot, the task folder, the export with its warm-up.
    assert json.loads((out / "metrics.json").read_text())["sentences"] == 4
    assert (out / "cross_attention.png").stat().st_size > 10_000
    assert json.loads((out / "model" / "task.json").read_text())["task"] == "Translator"
    version = out / "export" / "translator" / "1"
    assert (version / "assets.extra" / "tf_serving_warmup_requests").exists()
    assert json.loads((out / "config.json").read_text())["distribute"] == "data-parallel"
    # The export, run as TF Serving would, answers as the JAX model did in process.
    jax_answers, exported = answers["jax"], answers["export"]
    assert jax_answers["texts"] == exported["texts"] and any(jax_answers["texts"][:5])
    np.testing.assert_allclose(jax_answers["scores"], exported["scores"], atol=1e-4)
    assert jax_answers["truncated"] == exported["truncated"] and exported["truncated"][5:] == [False, True]
    # Model-parallel from the recipe's flags: the attention, feed-forward and embedding kernels split.
    split = answers["split"]
    assert any(p.endswith("self_attention/attention/query/kernel") for p in split), split
    assert any(p.endswith("feed_forward/intermediate/kernel") for p in split)
    assert any(p.endswith("token_embedding/embeddings") for p in split)
    assert "Model parallelism over 8 devices splits num_heads, d_model" in answers["mesh_error"]
    assert "Received: d_model=20" in answers["mesh_error"]
    # ... and here, in a TensorFlow process that never ran the model on JAX.
    import tensorflow_text  # noqa: F401  (the export's tokenizer ops)

    served = tf.saved_model.load(str(version)).signatures["serving_default"](sentences=tf.constant(sentences))
    assert [t.decode() for t in served["translations"].numpy()] == jax_answers["texts"]


IMAGES = """
import contextlib, io, json, sys
import keras
import numpy as np
from recipes import image_classification
out, images = sys.argv[1], sys.argv[2:]
errors = []
for flags in (["--distribute", "mirrored"], ["--distribute", "model-parallel", "--mesh", "2x4"]):
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        try:
            image_classification.main(["train", "--output", out + "-bad", *flags])
        except SystemExit as exit:
            errors.append([exit.code, stderr.getvalue()])
image_classification.main(["train", "--output", out, "--epochs", "1", "--steps-per-epoch", "2",
                           "--batch-size", "16", "--top-k", "3"])
image_classification.main(["export", "--output", out, "--quantize", "int8"])  # int8 through the TF subprocess
answers = {}
for kind, path in (("jax", out + "/model"), ("export", out + "/export/image_classifier")):
    outputs = image_classification.classifier_function(path)([open(p, "rb").read() for p in images])
    answers[kind] = dict(probabilities=np.asarray(outputs["probabilities"]).tolist(),
                         labels=[[l.decode() if isinstance(l, bytes) else str(l) for l in row]
                                 for row in outputs["top_k_labels"]], valid=np.asarray(outputs["valid"]).tolist())
print(json.dumps(dict(answers, errors=errors, backend=keras.backend.backend())))
"""


def test_image_classification_on_jax_and_its_export_answers_as_jax(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for i, size in enumerate([(32, 32), (40, 28), (8, 8)]):
        path = tmp_path / f"image_{i}.png"
        path.write_bytes(tf.io.encode_png(rng.integers(0, 256, (*size, 3)).astype("uint8")).numpy())
        paths.append(path)
    (tmp_path / "notes.png").write_text("not an image")
    out = tmp_path / "run"
    log, answers = _on("jax", IMAGES, out, *paths, tmp_path / "notes.png")
    assert answers["backend"] == "jax"
    (mirrored, mesh) = answers["errors"]
    assert mirrored == [1, "error: --distribute mirrored does not exist on the jax backend; its choices are none, "
                           "data-parallel, model-parallel (mirrored runs with KERAS_BACKEND=tensorflow). "
                           "(--verbose shows the traceback)\n"]
    assert mesh[0] == 1 and "A 2x4 mesh needs 8 devices; there are 1 (cpu)" in mesh[1]
    assert not (tmp_path / "run-bad").exists()  # refused before writing anything
    assert "--distribute none (jax): one device" in log and "precision: float32" in log
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_images"] > 100 and 0.0 <= metrics["top1"] <= 1.0
    for picture in ("confusion_matrix.png", "attention_maps.png", "attention_rollout.png"):
        assert (out / picture).stat().st_size > 5_000
    version = out / "export" / "image_classifier" / "1"
    assert (version / "assets.extra" / "tf_serving_warmup_requests").exists()
    from zoo.export.quantization import read_quantization

    assert read_quantization(str(out / "export" / "image_classifier_int8" / "1"))["mode"] == "int8"
    jax_answers, exported = answers["jax"], answers["export"]
    assert jax_answers["valid"] == exported["valid"] == [True, True, True, False]
    np.testing.assert_allclose(jax_answers["probabilities"], exported["probabilities"], atol=1e-5)
    assert jax_answers["labels"] == exported["labels"] and len(exported["labels"][0]) == 3


TORCH = """
import json, sys
import keras, numpy as np
from recipes import image_classification, translation
out, corpus, sentences, image = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
translation.main(["train", "--output", out + "/translation", "--data", "tsv:" + corpus, "--num-layers", "1",
                  "--d-model", "32", "--max-length", "12", "--epochs", "1", "--steps-per-epoch", "2",
                  "--beam-width", "2", "--eval-sentences", "4"])
image_classification.main(["train", "--output", out + "/images", "--epochs", "1", "--steps-per-epoch", "1",
                           "--batch-size", "16"])
answers = {}
for kind, translator, classifier in (("torch", "model", "model"), ("export", "export/translator", "export/image_classifier")):
    texts, scores, _ = translation.translator_function(f"{out}/translation/{translator}")([s.encode() for s in sentences])
    outputs = image_classification.classifier_function(f"{out}/images/{classifier}")([open(image, "rb").read()])
    answers[kind] = dict(texts=list(texts), scores=[float(s) for s in scores],
                         probabilities=np.asarray(outputs["probabilities"]).tolist())
print(json.dumps(dict(answers, backend=keras.backend.backend())))
"""


def test_both_recipes_on_torch_and_their_exports_answer_as_torch(tmp_path):
    corpus, pairs = _corpus(tmp_path)
    image = tmp_path / "image.png"
    image.write_bytes(tf.io.encode_png(np.random.default_rng(0).integers(0, 256, (30, 34, 3)).astype("uint8")).numpy())
    sentences = [source for source, _ in pairs[:3]] + [""]
    log, answers = _on("torch", TORCH, tmp_path, corpus, json.dumps(sentences), image)
    assert answers["backend"] == "torch" and log.count("--distribute none (torch): one device") == 2
    for recipe, picture in (("translation", "cross_attention.png"), ("images", "attention_rollout.png")):
        assert (tmp_path / recipe / picture).stat().st_size > 5_000
    assert (tmp_path / "translation" / "export" / "translator" / "1" / "saved_model.pb").exists()
    torch_answers, exported = answers["torch"], answers["export"]
    assert torch_answers["texts"] == exported["texts"] and exported["texts"][-1] == ""
    np.testing.assert_allclose(torch_answers["scores"], exported["scores"], atol=1e-4)
    np.testing.assert_allclose(torch_answers["probabilities"], exported["probabilities"], atol=1e-5)
