"""The translation recipe: end to end (train, evaluate, plot, export, serve, resume) and its commands."""

import dataclasses
import io
import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from recipes import translation
from tests.recipes.parity import ROOT, assert_mirrored_matches_single_device
from tests.tasks.conftest import run_fresh

SMOKE = ["--epochs", "1", "--steps-per-epoch", "4", "--eval-sentences", "8", "--beam-width", "2"]


def _recipe(*args, **kwargs):
    return subprocess.run(
        [sys.executable, "-m", "recipes.translation", *args], cwd=ROOT, capture_output=True, text=True, **kwargs
    )


@pytest.mark.slow
def test_train_evaluate_export_and_translate(tmp_path, capsys):
    out = str(tmp_path / "run")
    translation.main(["train", "--output", out, "--num-layers", "1", "--max-length", "14", *SMOKE])
    metrics = json.load(open(os.path.join(out, "metrics.json")))
    assert metrics["sentences"] == 8 and 0.0 <= metrics["bleu"] <= 100.0 and "tok:13a" in metrics["bleu_signature"]
    log = capsys.readouterr().out
    assert "Training ran 1 of 1 epochs; kept the weights of epoch 1" in log
    # Test sentences longer than the model reads are counted, not cut silently.
    assert metrics["truncated_sources"] > 0
    assert f"warning: {metrics['truncated_sources']} of 8 test sentences are longer than --max-length 14" in log
    assert os.path.getsize(os.path.join(out, "cross_attention.png")) > 10_000
    assert os.listdir(os.path.join(out, "checkpoints")) == ["best.weights.h5"]  # nothing piles up per epoch
    assert os.listdir(os.path.join(out, "logs"))  # TensorBoard
    version = os.path.join(out, "export", "translator", "1")
    assert os.path.exists(os.path.join(version, "assets.extra", "tf_serving_warmup_requests"))
    # The trained translator is one task folder, <output>/model, and the log says so.
    folder = os.path.join(out, "model")
    assert f"saved Translator: {folder} (zoo.Translator.load({folder!r}))" in log
    assert not os.path.exists(os.path.join(out, "model.keras"))  # one saved format
    # The translate command runs the export as TF Serving would, args or stdin.
    by_args = _recipe("translate", "--model", version, "I buy three apples.", "", b"K\xe4se \xff", timeout=300)
    assert by_args.returncode == 0, by_args.stderr[-2000:]
    assert len(by_args.stdout.splitlines()) == 3  # invalid UTF-8 bytes in argv are translated too
    by_stdin = _recipe("translate", "--model", version, input="I buy three apples.\n", timeout=300)
    assert by_stdin.stdout.splitlines()[0] == by_args.stdout.splitlines()[0]
    # In a fresh process, the task folder loads and translates exactly as the export does.
    sentences = EN + ["", " ".join(["apples"] * 30)]
    loaded = json.loads(run_fresh(FRESH_TRANSLATOR, folder, json.dumps(sentences)))
    served = tf.saved_model.load(version).signatures["serving_default"](sentences=tf.constant(sentences))
    assert loaded["settings"]["beam_width"] == 2 and loaded["settings"]["max_length"] == 14
    assert loaded["translations"] == [t.decode() for t in served["translations"].numpy()]
    np.testing.assert_allclose(loaded["scores"], served["scores"].numpy(), atol=1e-5)
    assert loaded["truncated"] == served["truncated"].numpy().tolist() == [False] * 4 + [True]
    # translate --model takes the task folder too, and prints what it prints for the export.
    argv = ["--scores", *sentences]
    assert _translate(["--model", folder, *argv], capsys) == _translate(["--model", version, *argv], capsys)
    # evaluate and export read the task folder.
    translation.main(["evaluate", "--output", out, "--eval-sentences", "4"])
    assert json.load(open(os.path.join(out, "metrics.json")))["sentences"] == 4
    assert f"evaluate: {out} (config from {out}/config.json and flags)" in capsys.readouterr().out
    # `export` again writes the next version, never over the first.
    translation.main(["export", "--output", out])
    assert sorted(os.listdir(os.path.join(out, "export", "translator"))) == ["1", "2"]
    # --quantize int8: a sibling model, same signatures, answering every sentence.
    from zoo.export.quantization import read_quantization

    translation.main(["export", "--output", out, "--quantize", "int8"])
    int8 = os.path.join(out, "export", "translator_int8", "1")
    assert read_quantization(int8)["mode"] == "int8" and read_quantization(version) is None
    assert sorted(os.listdir(os.path.join(out, "export", "translator"))) == ["1", "2"]
    capsys.readouterr()
    lines, _ = _translate(["--model", int8, *sentences], capsys)
    assert len(lines) == len(sentences)


FRESH_TRANSLATOR = """
import json, sys, zoo
translator = zoo.Translator.load(sys.argv[1])
sentences = json.loads(sys.argv[2])
pairs = translator.translate(sentences, return_scores=True)
print(json.dumps(dict(settings=translator.settings.get_config(), translations=[t for t, _ in pairs],
                      scores=[s for _, s in pairs], truncated=translator.is_truncated(sentences))))
"""


@pytest.mark.slow
def test_killed_training_resumes_where_it_stopped(tmp_path):
    """SIGKILL (nothing runs after it) once epoch 1's backup is complete; the same command resumes after it."""
    out = str(tmp_path / "run")
    command = ["train", "--output", out, "--num-layers", "1", "--epochs", "4", "--steps-per-epoch", "3",
               "--eval-sentences", "4", "--beam-width", "1"]
    first = subprocess.Popen([sys.executable, "-m", "recipes.translation", *command], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    # recipes.run_backup renames a generation into place once it is complete.
    backup = os.path.join(out, "backup")
    deadline = time.time() + 600
    while not os.path.isdir(os.path.join(backup, "epoch-0001")) and first.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)  # right after epoch 1, long before epoch 4
    first.wait()
    done = max(int(name.split("-")[1]) for name in os.listdir(backup) if name.startswith("epoch-"))
    assert not os.path.exists(os.path.join(out, "model"))  # really interrupted
    second = _recipe(*command, timeout=900)
    assert second.returncode == 0, second.stderr[-3000:]
    log = second.stdout + second.stderr
    assert f"(resuming an interrupted run; config from {out}/config.json and flags)" in log
    assert f"resuming at epoch {done + 1} of 4 from {backup}/epoch-{done:04d}" in log
    assert "Epoch 1/4" not in log and f"Epoch {done + 1}/4" in log  # continued, not restarted
    assert os.path.exists(os.path.join(out, "model", "task.json"))


@pytest.mark.slow
def test_mirrored_strategy_on_two_cpus_matches_single_device():
    assert_mirrored_matches_single_device(
        """
        from recipes.translation import TranslationConfig, compile_model
        from zoo.models import TransformerTranslator

        rng = np.random.default_rng(0)
        source = rng.integers(4, 30, (32, 7)).astype("int32")
        target = rng.integers(4, 30, (32, 6)).astype("int32")
        inputs = {"source_ids": source, "target_ids": target}
        data = tf.data.Dataset.from_tensor_slices((inputs, np.roll(target, -1, 1))).batch(8)

        def build():
            model = TransformerTranslator(30, 30, 1, 1, 16, 2, 32, dropout=0.0, max_length=8)
            compile_model(model, TranslationConfig(warmup_steps=2))
            return model
        """
    )


def test_bad_recipe_input_is_named(tmp_path, capsys):
    with pytest.raises(ValueError, match="Unknown TransformerTranslator preset 'transformer_small'"):
        translation.build_model(translation.TranslationConfig(preset="transformer_small"),
                                *[type("T", (), {"vocabulary_size": 10, "pad_id": 0, "start_id": 2, "end_id": 3})] * 2)
    with pytest.raises(SystemExit) as exit_info:
        translation.main(["train", "--output", str(tmp_path / "x"), "--data", f"tsv:{tmp_path}/missing.tsv"])
    assert exit_info.value.code == 1
    assert capsys.readouterr().err == (
        f"error: TSV file not found: '{tmp_path}/missing.tsv' (--verbose shows the traceback)\n"
    )
    assert not os.path.exists(tmp_path / "x" / "config.json")  # no config a later train would reuse


def _without_tf_log_level():
    return {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}


@pytest.mark.slow
def test_command_errors_are_one_line_without_tensorflow_noise(tmp_path):
    missing = str(tmp_path / "no_run")
    quiet = _recipe("evaluate", "--output", missing, env=_without_tf_log_level(), timeout=300)
    assert quiet.returncode == 1
    assert quiet.stderr == (  # TensorFlow was imported: its start-up notices are not shown
        f"error: No trained model at {missing}/model; run `python -m recipes.translation train --output "
        f"{missing}` first. (--verbose shows the traceback)\n"
    )
    verbose = _recipe("evaluate", "--output", missing, "--verbose", env=_without_tf_log_level(), timeout=300)
    assert verbose.returncode == 1 and "Traceback" in verbose.stderr and "FileNotFoundError" in verbose.stderr


@pytest.mark.slow
def test_output_comes_as_it_is_printed_when_piped(tmp_path):
    """A piped stdout used to be block-buffered: nothing showed until the run ended."""
    import queue
    import threading

    corpus = tmp_path / "corpus.tsv"
    corpus.write_text("".join(f"sentence {i}\tSatz {i}\n" for i in range(200)) + "\n\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "recipes.translation", "train", "--output", str(tmp_path / "run"), "--data",
         f"tsv:{corpus}", "--num-layers", "1", "--epochs", "50", "--steps-per-epoch", "50"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_without_tf_log_level(),
    )
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
    seen = []
    try:
        deadline = time.time() + 300
        while not any("sentence pairs from" in line for line in seen) and time.time() < deadline:
            try:
                seen.append(lines.get(timeout=1))
            except queue.Empty:
                pass
        running = process.poll() is None
    finally:
        process.kill()
        process.wait()
    assert running, seen
    assert seen[0].startswith(f"train: {tmp_path / 'run'} (new run)")
    assert f"{corpus}: 200 sentence pairs from 202 lines; 2 blank lines skipped\n" in seen
    stderr = process.stderr.read()
    for noise in ("oneDNN", "cuInit", "cuda", "absl", "cpu_feature_guard"):
        assert noise not in stderr, stderr[:2000]


EN = ["I buy three apples.", "She speaks French.", "We travel to Spain."]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A small random translator (max_length 12): its export, its task folder, and the pieces."""
    import zoo
    from zoo.decoding import SearchSettings
    from zoo.models import TransformerTranslator
    from zoo.text import WordPieceTokenizer

    keras.utils.set_random_seed(3)
    source = WordPieceTokenizer.from_corpus(EN * 10, 60, lowercase=False)
    target = WordPieceTokenizer.from_corpus(["Ich kaufe drei Äpfel.", "Sie spricht Französisch."] * 10, 60,
                                            lowercase=False)
    model = TransformerTranslator(source.vocabulary_size, target.vocabulary_size, 1, 1, 16, 2, 32, dropout=0.0,
                                  max_length=12)
    translator = zoo.Translator(model, source, target, SearchSettings(beam_width=2, max_length=12))
    base = tmp_path_factory.mktemp("tiny")
    return dict(export=translator.export(str(base / "export")), task=translator.save(base / "model"),
                parts=(model, source, target))


@pytest.fixture(scope="module")
def tiny_export(tiny_run):
    return tiny_run["export"]


def _translate(argv, capsys, stdin=None, monkeypatch=None):
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    translation.main(["translate", *argv])
    captured = capsys.readouterr()
    return captured.out.splitlines(), captured.err


@pytest.mark.slow
def test_translate_keeps_every_line_of_invalid_utf8_arguments_and_stdin(tiny_export, capsys, monkeypatch):
    # Python hands undecodable argument bytes over as surrogate escapes: this is what main() receives.
    broken = b"K\xe4se \xff and apples".decode("utf-8", "surrogateescape")
    by_args, _ = _translate(["--model", tiny_export, EN[0], broken, EN[1]], capsys)
    assert len(by_args) == 3
    alone, _ = _translate(["--model", tiny_export, EN[0], EN[1]], capsys)
    assert [by_args[0], by_args[2]] == alone  # the valid lines are translated as if sent alone
    stdin = b"\n".join([EN[0].encode(), b"\xff\xfe broken", b"", EN[1].encode()]) + b"\n"
    by_stdin, _ = _translate(["--model", tiny_export], capsys, stdin=stdin, monkeypatch=monkeypatch)
    assert len(by_stdin) == 4 and by_stdin[2] == "" and [by_stdin[0], by_stdin[3]] == alone


@pytest.mark.slow
def test_translate_names_truncated_sentences_and_shows_scores(tiny_export, capsys):
    long = " ".join(["apples"] * 30)  # 30 tokens; the model reads 12
    lines, err = _translate(["--model", tiny_export, "--scores", EN[0], long, ""], capsys)
    assert err.splitlines() == [
        "warning: sentence 2 is longer than the model reads; only its beginning was translated: "
        f"{long[:40] + '...'!r}"
    ]
    scores = [float(line.split("\t")[0]) for line in lines]
    assert len(lines) == 3 and all(line.count("\t") == 1 for line in lines)
    assert scores[0] < 0 and scores[2] == 0.0  # a log-probability; the empty sentence is certain
    plain, _ = _translate(["--model", tiny_export, EN[0]], capsys)
    assert plain == [lines[0].split("\t")[1]]
    # The directory holding the versions serves its highest version, as TF Serving does.
    by_base, _ = _translate(["--model", os.path.dirname(tiny_export), EN[0]], capsys)
    assert by_base == plain


@pytest.mark.slow
def test_translate_reads_a_task_folder_as_it_reads_the_export(tiny_run, capsys, monkeypatch):
    long = " ".join(["apples"] * 30)
    broken = b"K\xe4se \xff and apples".decode("utf-8", "surrogateescape")
    for argv in (["--scores", EN[0], long, "", broken, EN[1]], [EN[2]]):
        by_task = _translate(["--model", tiny_run["task"], *argv], capsys)
        assert by_task == _translate(["--model", tiny_run["export"], *argv], capsys)
    lines, err = by_task
    assert len(lines) == 1 and lines[0] and err == ""
    stdin = b"\n".join([EN[0].encode(), b"\xff\xfe broken", long.encode()]) + b"\n"
    by_stdin = _translate(["--model", tiny_run["task"]], capsys, stdin=stdin, monkeypatch=monkeypatch)
    assert len(by_stdin[0]) == 3 and by_stdin[1].startswith("warning: sentence 3 is longer than the model reads")


def test_translate_without_a_model_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        translation.main(["translate", "--model", str(tmp_path / "none"), "Hello."])
    assert exit_info.value.code == 1
    assert capsys.readouterr().err == (
        f"error: No task folder or SavedModel at {str(tmp_path / 'none')!r}. Expected a task folder such as "
        "runs/translation/model or an export directory such as runs/translation/export/translator/1. "
        "(--verbose shows the traceback)\n"
    )
    run = tmp_path / "run"  # a recipe's run folder: the task folder is inside it
    (run / "model").mkdir(parents=True)
    (run / "model" / "task.json").write_text("{}")
    with pytest.raises(SystemExit):
        translation.main(["translate", "--model", str(run), "Hello."])
    assert capsys.readouterr().err == (
        f"error: {run} is a recipe's run folder. Pass its task folder {run}/model or an export directory under "
        f"{run}/export. (--verbose shows the traceback)\n"
    )


@pytest.mark.slow
def test_a_run_folder_from_before_task_folders_still_evaluates_exports_and_translates(tiny_run, tmp_path, capsys):
    """What recipes/translation.py wrote before task folders: model.keras, the tokenizers and config.json."""
    import zoo
    from zoo.decoding import SearchSettings

    model, source, target = tiny_run["parts"]
    run = tmp_path / "old_run"
    run.mkdir()
    model.save(run / "model.keras")
    source.save(run / "source_tokenizer")
    target.save(run / "target_tokenizer")
    corpus = tmp_path / "corpus.tsv"
    corpus.write_text("".join(f"{s}\t{t}\n" for s, t in zip(EN, ["Ich kaufe drei Äpfel.", "Sie spricht Französisch.",
                                                                  "Wir reisen nach Spanien."]) for _ in range(10)))
    config = dataclasses.asdict(translation.TranslationConfig(
        output="elsewhere", data=f"tsv:{corpus}", max_length=12, beam_width=2, eval_sentences=3))
    (run / "config.json").write_text(json.dumps(config))
    translation.main(["evaluate", "--output", str(run)])
    metrics = json.load(open(run / "metrics.json"))
    assert metrics["sentences"] == 3 and os.path.getsize(run / "cross_attention.png") > 5_000
    saved = zoo.Translator(model, source, target, SearchSettings(beam_width=2, max_length=12))
    assert translation.load_translator(translation.TranslationConfig(**{**config, "output": str(run)})).settings == (
        saved.settings
    )
    capsys.readouterr()
    assert _translate(["--model", str(run), *EN], capsys)[0] == saved.translate(EN)  # the old folder, directly
    # Decoding flags override the saved settings, in the export too.
    translation.main(["export", "--output", str(run), "--beam-width", "1", "--length-penalty", "1.0"])
    flags = translation.load_translator(translation.TranslationConfig(
        **{**config, "output": str(run), "beam_width": 1, "length_penalty": 1.0}))
    assert (flags.settings.beam_width, flags.settings.alpha, flags.settings.max_length) == (1, 1.0, 12)
    greedy = saved.translate(EN, beam_width=1, alpha=1.0)
    assert greedy != saved.translate(EN)  # this model translates differently with them
    version = str(run / "export" / "translator" / "1")
    capsys.readouterr()
    assert _translate(["--model", version, *EN], capsys)[0] == greedy

