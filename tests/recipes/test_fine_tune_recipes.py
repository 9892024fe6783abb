"""`train --init-from` and `evaluate --init-from` in both recipes (`recipes.fine_tune`): random-initialised
reference checkpoints (transformers' ViT and MarianMT) fine-tuned a few steps through the recipe, saved,
reloaded in a fresh process and exported; imported checkpoints scored without training; bad input as one
line that leaves `--output` unwritten."""

import json
import sys

import numpy as np
import pytest

from recipes import image_classification, translation
from tests.export.conftest import tiny_translator  # noqa: F401  (the fixture)
from tests.helpers import write_class_folders
from tests.tasks.conftest import run_fresh

sys.modules.setdefault("triton", None)  # transformers after TensorFlow: see tests/convert/conftest.py

FRESH_CLASSIFIER = """
import json, sys, zoo
from zoo.tasks.image_classifier_graph import classify_with_saved_model
folder, export, paths = sys.argv[1], sys.argv[2], sys.argv[3:]
images = [open(p, "rb").read() for p in paths]
task = zoo.ImageClassifier.load(folder).predict(images)["probabilities"]
served = classify_with_saved_model(export, images)["probabilities"]
print(json.dumps(dict(task=task.tolist(), served=served.tolist())))
"""


@pytest.fixture(scope="module")
def hf_vit(tmp_path_factory):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from tests.convert.test_hf_vit import _save_reference

    folder = tmp_path_factory.mktemp("hf") / "vit"
    _save_reference(folder)  # 32 px, patch 8, classes cat, dog, tabby cat, bird
    return folder


def _main(module, argv, capsys):
    """Runs a recipe command in this process; returns (exit status, stdout, stderr)."""
    try:
        module.main(argv)
        status = 0
    except SystemExit as exit_:
        status = exit_.code
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.slow
def test_image_fine_tune_new_head_new_size_lora_then_reload_and_export(hf_vit, tmp_path, capsys):
    # Not the checkpoint's classes: a new head.
    paths = write_class_folders(tmp_path / "images", ["ant", "bee", "fly"], per_class=5)
    out = tmp_path / "run"
    argv = ["train", "--init-from", str(hf_vit), "--data", f"folder:{tmp_path / 'images'}", "--output", str(out),
            "--image-size", "16", "--lora-rank", "2", "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "4",
            "--top-k", "2", "--no-random-crop"]
    status, log, err = _main(image_classification, argv, capsys)
    assert status == 0, err
    assert "new head: replaced layer 'head'" in log and "for 3 classes" in log
    assert "position table resampled from a (4, 4) to a (2, 2) patch grid" in log
    assert "LoRA rank 2 on 12 projections" in log and "merged LoRA" in log
    settings = json.loads((out / "model" / "task.json").read_text())["settings"]["preprocessing"]
    assert settings["class_names"] == ["ant", "bee", "fly"] and settings["image_size"] == [16, 16]
    assert settings["mean"] == [0.485, 0.456, 0.406]  # the checkpoint's normalisation, not the recipe's
    assert json.loads((out / "config.json").read_text())["init_from"] == str(hf_vit)
    # The recipe's training batches (no augmentation) are what serving feeds the model: the checkpoint's
    # resize (bilinear, no crop) to the new size and its normalisation.
    import zoo
    from zoo.data.image_data import load_folder

    classifier = zoo.ImageClassifier.load(out / "model")
    config = image_classification.ImageClassificationConfig(data=f"folder:{tmp_path / 'images'}", batch_size=64,
                                                             random_crop=False)
    data = load_folder(str(tmp_path / "images"))
    _, batches = image_classification.load_run(config, classifier.preprocessor, data)
    images, one_hot = next(iter(batches["validation"]))
    np.testing.assert_allclose(images.numpy(), classifier.prepare(list(data.validation[0]))["inputs"], atol=1e-6)
    np.testing.assert_array_equal(one_hot.numpy().argmax(-1), data.validation[1])
    export = out / "export" / "image_classifier" / "1"
    answer = json.loads(run_fresh(FRESH_CLASSIFIER, out / "model", export, *paths))
    assert np.asarray(answer["task"]).shape == (15, 3)
    np.testing.assert_allclose(answer["served"], answer["task"], atol=1e-5)
    # The same command again: a finished run is left as it is.
    status, _, err = _main(image_classification, argv, capsys)
    assert status == 1 and "finished" in err


def test_image_evaluate_scores_an_imported_checkpoint_without_training(hf_vit, tmp_path, capsys):
    import zoo
    from zoo.data.image_data import load_folder

    # Some of the checkpoint's classes, in another order.
    write_class_folders(tmp_path / "images", ["bird", "cat", "dog"], per_class=5)
    out = tmp_path / "scored"
    status, log, err = _main(image_classification, ["evaluate", "--init-from", str(hf_vit), "--data",
                                                    f"folder:{tmp_path / 'images'}", "--output", str(out)], capsys)
    assert status == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    classifier = zoo.ImageClassifier.from_hf(hf_vit)
    data = load_folder(str(tmp_path / "images"))
    predicted = classifier.predict(list(data.test[0]))["probabilities"].argmax(-1)
    expected = np.mean(predicted == [classifier.class_names.index(data.class_names[i]) for i in data.test[1]])
    assert metrics["top1"] == pytest.approx(expected, abs=1e-4) and metrics["test_images"] == len(data.test[1])
    assert not (out / "model").exists()  # nothing was trained


@pytest.mark.slow
def test_marian_fine_tune_keeps_its_tokenizers_then_evaluate_scores_it(tmp_path, capsys):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    pytest.importorskip("sentencepiece")
    import tensorflow as tf

    import zoo
    from tests.convert.marian_checkpoint import SOURCE_WORDS, TARGET_WORDS, sentences, write_marian_checkpoint
    from zoo.data.translation_data import load_translation_data

    checkpoint = tmp_path / "marian"
    write_marian_checkpoint(str(checkpoint))
    long = " ".join(["the green river"] * 10)
    pairs = list(zip(sentences(SOURCE_WORDS, 40, seed=3) + [long], sentences(TARGET_WORDS, 40, seed=4) + ["der Fluss"]))
    tsv = tmp_path / "pairs.tsv"
    tsv.write_text("".join(f"{s}\t{t}\n" for s, t in pairs), encoding="utf-8")
    out = tmp_path / "run"
    flags = ["--init-from", str(checkpoint), "--data", f"tsv:{tsv}", "--max-length", "12", "--beam-width", "1",
             "--eval-sentences", "3"]
    status, log, err = _main(translation, ["train", *flags, "--output", str(out), "--epochs", "1",
                                           "--steps-per-epoch", "2", "--batch-size", "8", "--lora-rank", "1"], capsys)
    assert status == 0, err
    assert "fine-tuning <Translator" in log and "MarianTokenizer" in log and "merged LoRA" in log
    assert not (out / "source_tokenizer").exists()  # no vocabulary learned
    reloaded = zoo.Translator.load(out / "model")
    original = zoo.Translator.from_marian(str(checkpoint))
    assert type(reloaded.source_tokenizer).__name__ == "MarianTokenizer"
    assert reloaded.source_tokenizer.vocabulary_size == original.source_tokenizer.vocabulary_size
    assert reloaded.preprocessor.max_length == 12

    # The recipe's batches: the checkpoint's pad id where there is no token, sources cut as serving cuts them.
    config = translation.TranslationConfig(data=f"tsv:{tsv}", max_length=12, batch_size=64)
    splits = load_translation_data(config.data)
    splits["train"] = [(long, "der Fluss")]
    _, _, _, batches = translation.load_run(config, splits=splits, preprocessor=reloaded.preprocessor)
    inputs, _, weights = next(iter(batches["train"]))
    source = inputs["source_ids"].numpy()[0]
    served, _, truncated = reloaded.preprocessor.serving_inputs(tf.constant([long]))
    np.testing.assert_array_equal(source, served.numpy()[0][: len(source)])
    assert truncated.numpy()[0] and source[-1] == original.model.end_token_id
    assert (inputs["target_ids"].numpy()[0][weights.numpy()[0] == 0] == original.model.pad_token_id).all()

    status, log, err = _main(translation, ["evaluate", *flags, "--output", str(tmp_path / "scored")], capsys)
    assert status == 0, err
    metrics = json.loads((tmp_path / "scored" / "metrics.json").read_text())
    assert {"bleu", "chrf"} <= set(metrics) and 1 <= metrics["sentences"] <= 3


# -- bad input: one line, nothing written in --output ---------------------------------------------------------


def _refused(module, argv, tmp_path, capsys, message):
    out = tmp_path / "out"
    status, _, err = _main(module, [*argv, "--output", str(out)], capsys)
    assert status == 1 and err.count("\n") == 1, err
    assert message in err, err
    assert not out.exists()
    return err


@pytest.mark.parametrize("module", [image_classification, translation])
def test_init_from_of_no_known_kind(module, tmp_path, capsys):
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "weights.npz").write_bytes(b"")
    _refused(module, ["train", "--init-from", str(tmp_path / "ckpt")], tmp_path, capsys,
             "holds weights.npz: none of the checkpoints zoo fine-tunes. Expected a zoo task folder")


def test_fine_tuning_flags_need_init_from(tmp_path, capsys):
    _refused(image_classification, ["train", "--lora-rank", "2"], tmp_path, capsys,
             "--lora-rank fine-tune a checkpoint: give --init-from PATH too")


def test_unreadable_checkpoint_vocabulary_and_architecture(tmp_path, capsys):
    marian = tmp_path / "marian"
    marian.mkdir()
    (marian / "config.json").write_text(json.dumps({"model_type": "marian"}))
    _refused(translation, ["train", "--init-from", str(marian)], tmp_path, capsys, "marian")
    timm = tmp_path / "timm"
    timm.mkdir()
    (timm / "config.json").write_text(json.dumps({"architecture": "resnet50"}))
    _refused(image_classification, ["train", "--init-from", str(timm)], tmp_path, capsys,
             "timm architecture 'resnet50' is not one zoo imports exactly")


def test_vit_with_fewer_channels_than_the_data(tmp_path, capsys):
    from zoo.models import VisionTransformer
    from zoo.preprocessing import ImagePreprocessor
    from zoo.tasks import ImageClassifier

    model = VisionTransformer(image_size=8, patch_size=4, num_classes=2, d_model=8, num_encoder_layers=1,
                              num_heads=2, d_ff=16, num_channels=1)
    ImageClassifier(model, ImagePreprocessor(8, (0.5,), (0.5,), ("a", "b"))).save(tmp_path / "gray")
    write_class_folders(tmp_path / "images", ["a", "b"], per_class=3)
    _refused(image_classification, ["train", "--init-from", str(tmp_path / "gray"), "--data",
                                    f"folder:{tmp_path / 'images'}"], tmp_path, capsys,
             "its ViT reads 1 channel(s) per pixel, fewer than the 3 (RGB)")


def test_empty_and_all_bad_tsv(tiny_translator, tmp_path, capsys):
    from zoo.tasks import Translator

    Translator(*tiny_translator).save(tmp_path / "zoo")
    for name, text in (("empty.tsv", ""), ("bad.tsv", "no tab here\nnor here\n")):
        (tmp_path / name).write_text(text)
        _refused(translation, ["train", "--init-from", str(tmp_path / "zoo"), "--data", f"tsv:{tmp_path / name}"],
                 tmp_path, capsys, name)


def test_folder_labels_that_are_not_the_classifier_classes(hf_vit, tmp_path, capsys):
    write_class_folders(tmp_path / "images", ["cat", "zebra"], per_class=3)
    _refused(image_classification, ["evaluate", "--init-from", str(hf_vit), "--data",
                                    f"folder:{tmp_path / 'images'}"], tmp_path, capsys,
             "The data's classes 'zebra' are not classes of the classifier")


def test_learning_rates_and_what_trains(tmp_path, capsys):
    from recipes import fine_tune
    from tests.tasks.test_fine_tuning import _classifier

    config = image_classification.ImageClassificationConfig
    rates = [fine_tune.learning_rate(config(**flags), 1e-3, 5e-5) for flags in (
        {}, {"init_from": "x"}, {"init_from": "x", "lora_rank": 4}, {"init_from": "x", "learning_rate": 0.1})]
    assert rates == pytest.approx([1e-3, 5e-5, 5e-4, 0.1])
    with pytest.raises(ValueError, match="--freeze-backbone and --lora-rank each choose what trains"):
        fine_tune.check_flags(config(init_from="x", freeze_backbone=True, lora_rank=2))
    classifier = _classifier()
    fine_tune.adapt(classifier, config(init_from="x", freeze_backbone=True))
    assert "'head' trains (51 of" in capsys.readouterr().out  # 16 x 3 + 3
    assert [v.path.split("/", 1)[1] for v in classifier.model.trainable_weights] == ["head/kernel", "head/bias"]


def _arrays(path):
    """Every array of an HDF5 weights file or an .npz, by name."""
    if str(path).endswith(".npz"):
        with np.load(path) as arrays:
            return dict(arrays)
    import h5py

    found = {}
    with h5py.File(path) as f:
        f.visititems(lambda name, item: found.__setitem__(name, item[()]) if isinstance(item, h5py.Dataset) else None)
    return found


@pytest.mark.slow
def test_a_lora_fine_tune_interrupted_in_epoch_2_resumes_to_the_same_weights_bit_for_bit(tmp_path, capsys,
                                                                                          monkeypatch):
    # Dropout (seeds from the checkpoint's load), a new head and LoRA (Keras' weights files hold LoRA layers
    # merged, and load their LoRA weights as zeros): what a resumed fine-tune must restore beyond a run's.
    import keras

    from recipes.run_backup import RunBackup
    from zoo.models import VisionTransformer
    from zoo.preprocessing import ImagePreprocessor
    from zoo.tasks import ImageClassifier

    model = VisionTransformer(image_size=16, patch_size=4, num_classes=2, d_model=16, num_encoder_layers=1,
                              num_heads=2, d_ff=32, dropout=0.1)
    ImageClassifier(model, ImagePreprocessor(16, (0.5,) * 3, (0.25,) * 3, ("x", "y"))).save(tmp_path / "ckpt")
    write_class_folders(tmp_path / "images", ["ant", "bee", "fly"], per_class=6)
    flags = ["--init-from", str(tmp_path / "ckpt"), "--data", f"folder:{tmp_path / 'images'}", "--lora-rank", "2",
             "--epochs", "3", "--steps-per-epoch", "2", "--batch-size", "4", "--determinism", "on", "--top-k", "2"]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"

    def train(*argv):  # as a fresh process would: the auto-named seed generators' paths are the backup's
        keras.backend.clear_session()
        return _main(image_classification, ["train", *argv], capsys)

    status, _, err = train("--output", str(straight), *flags)
    assert status == 0, err

    save = RunBackup._save

    def interrupted_in_epoch_2(backup, epoch, logs):
        if epoch == 1:
            raise KeyboardInterrupt
        save(backup, epoch, logs)

    monkeypatch.setattr(RunBackup, "_save", interrupted_in_epoch_2)
    status, _, err = train("--output", str(resumed), *flags)
    assert status == 130 and "interrupted after the backup of epoch 1" in err, err
    monkeypatch.setattr(RunBackup, "_save", save)
    status, log, err = train("--output", str(resumed))
    assert status == 0, err
    assert f"resuming at epoch 2 of 3 from {resumed}/backup/epoch-0001" in log and "Epoch 1/3" not in log
    for name in ("backup/epoch-0003/model.weights.h5", "backup/epoch-0003/lora.npz", "checkpoints/best.weights.h5"):
        expected, got = _arrays(straight / name), _arrays(resumed / name)
        assert expected.keys() == got.keys() and len(expected) >= 12, name
        for key in expected:
            np.testing.assert_array_equal(got[key], expected[key], err_msg=f"{name}: {key}")
    query = [next(v.numpy() for v in m.weights if "attention/query/kernel" in v.path) for m in (
        model, ImageClassifier.load(resumed / "model").model)]
    assert not np.array_equal(*query)  # LoRA trained, merged into the saved model


MIRRORED_FINE_TUNE = """
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from recipes import image_classification
image_classification.main(sys.argv[1:])
"""


@pytest.mark.slow
def test_a_lora_fine_tune_under_mirrored_on_two_cpus(tmp_path):
    # 3 validation images: a batch the 2 replicas cannot share evenly (Keras' build of the model from it fails).
    import subprocess

    from tests.recipes.parity import ROOT
    from zoo.models import VisionTransformer
    from zoo.preprocessing import ImagePreprocessor
    from zoo.tasks import ImageClassifier

    names = ["ant", "bee", "fly"]
    model = VisionTransformer(image_size=16, patch_size=4, num_classes=3, d_model=16, num_encoder_layers=1,
                              num_heads=2, d_ff=32)
    ImageClassifier(model, ImagePreprocessor(16, (0.5,) * 3, (0.25,) * 3, names)).save(tmp_path / "ckpt")
    write_class_folders(tmp_path / "images", names, per_class=8)
    out = tmp_path / "run"
    argv = ["train", "--init-from", str(tmp_path / "ckpt"), "--data", f"folder:{tmp_path / 'images'}", "--output",
            str(out), "--distribute", "mirrored", "--lora-rank", "2", "--epochs", "1", "--steps-per-epoch", "2",
            "--batch-size", "4", "--top-k", "2"]
    result = subprocess.run([sys.executable, "-c", MIRRORED_FINE_TUNE, *argv], cwd=ROOT, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "validation: 3 images" in result.stdout and "MirroredStrategy, 2 replicas" in result.stdout
    assert "batches are cut to a multiple of 2 examples" in result.stdout and "merged LoRA" in result.stdout
    trained = ImageClassifier.load(out / "model").model
    assert [v.path for v in trained.weights] == [v.path for v in model.weights]  # LoRA merged away
    assert any(not np.array_equal(a, b) for a, b in zip(trained.get_weights(), model.get_weights()))
    assert (out / "export" / "image_classifier" / "1").is_dir()
