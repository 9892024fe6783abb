"""zoo.Translator: translates as its export does, saves and loads as one folder."""

import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from tests.export.conftest import EN
from tests.tasks.conftest import run_fresh
from zoo.decoding import SearchSettings
from zoo.tasks import ImageClassifier, Translator

# Bad requests the export answers without failing: empty, whitespace, too long, invalid UTF-8.
ODD = ["", "   \t ", "word " * 200, b"\xff\xfe broken \xc3"]


@pytest.fixture(scope="module")
def saved(tiny_translator, tmp_path_factory):
    """A beam-2 translator saved as a folder, and its TF Serving export."""
    model, source, target = tiny_translator
    translator = Translator(model, source, target, SearchSettings(beam_width=2, max_length=10))
    base = tmp_path_factory.mktemp("translator")
    return translator.save(base / "translator"), translator.export(str(base / "serving"))


def _export_outputs(path, sentences):
    out = tf.saved_model.load(path).signatures["serving_default"](sentences=tf.constant(sentences, tf.string))
    return [t.decode() for t in out["translations"].numpy()], out["scores"].numpy()


@pytest.mark.parametrize("beam_width", [2, 1])  # beam search, and greedy (a beam of one)
def test_loaded_translator_translates_as_the_export(saved, tmp_path, beam_width):
    folder, path = saved
    translator = Translator.load(folder)
    if beam_width != translator.settings.beam_width:
        translator.settings = translator.settings.replace(beam_width=beam_width)
        path = translator.export(str(tmp_path))
    sentences = EN + ODD
    expected, expected_scores = _export_outputs(path, sentences)
    pairs = translator.translate(sentences, return_scores=True)
    assert [t for t, _ in pairs] == expected
    np.testing.assert_allclose([s for _, s in pairs], expected_scores, atol=1e-5)
    assert any(expected[: len(EN)]) and expected[len(EN) : len(EN) + 2] == ["", ""]
    assert translator.translate([]) == []
    assert translator.translate(sentences[:2]) == expected[:2]  # in smaller batches, the same


def test_overrides_and_n_best(saved, tiny_translator):
    translator = Translator.load(saved[0])
    greedy = Translator(*tiny_translator, SearchSettings(beam_width=1, max_length=10))
    assert translator.translate(EN, beam_width=1) == greedy.translate(EN)
    assert translator.settings.beam_width == 2  # overrides last one call
    best = translator.translate(EN + [""], return_scores=True)
    lists = translator.translate(EN + [""], n_best=2, return_scores=True)
    for (text, score), hypotheses in zip(best, lists):
        assert 1 <= len(hypotheses) <= 2 and hypotheses[0][0] == text
        assert hypotheses[0][1] == pytest.approx(score, abs=1e-5)
        assert [s for _, s in hypotheses] == sorted((s for _, s in hypotheses), reverse=True)
    assert lists[-1][0] == ("", 0.0)
    assert [h[:1] for h in translator.translate(EN, n_best=2)] == [[t] for t, _ in best[:-1]]


def test_n_best_leaves_out_slots_no_hypothesis_reached(tiny_translator):
    """With the zoo rules, a sentence that finished fewer hypotheses than beams keeps NEG_INF slots;
    they are not translations. An end-token bias makes some sentences finish one or two of three."""
    from zoo.decoding.beam_search import NEG_INF
    from zoo.models import TransformerTranslator

    _, source, target = tiny_translator
    model = TransformerTranslator(source.vocabulary_size, target.vocabulary_size, num_encoder_layers=1,
                                  num_decoder_layers=1, d_model=32, num_heads=4, d_ff=64, max_length=16,
                                  dropout=0.0, output_bias=True)
    translator = Translator(model, source, target, SearchSettings(beam_width=3, max_length=6))
    graph = translator.graph()
    for bias in (0.5, 1.0, 1.5, 2.0, 3.0):
        model.logits_bias.assign(np.eye(target.vocabulary_size, dtype="float32")[model.end_token_id] * bias)
        scores = graph.translate_nbest(tf.constant(EN), tf.constant(3))["scores"].numpy()
        reached = (scores > NEG_INF / 2).sum(axis=1)
        if 0 < reached.min() < 3:
            break
    assert 0 < reached.min() < 3, "no end-token bias left a sentence with fewer finished hypotheses than beams"
    lists = translator.translate(EN, n_best=3, return_scores=True)
    assert [len(hypotheses) for hypotheses in lists] == reached.tolist()
    assert all(score > NEG_INF / 2 for hypotheses in lists for _, score in hypotheses)


def test_bad_arguments_name_what_was_received(saved):
    translator = Translator.load(saved[0])
    with pytest.raises(TypeError, match="a list of sentences. Received: a single str 'I buy'"):
        translator.translate("I buy")
    with pytest.raises(TypeError, match="str or bytes. Received: int at index 1"):
        translator.translate(["I buy", 3])
    with pytest.raises(ValueError, match="n_best must be an int from 1 to the beam width 2. Received: n_best=3"):
        translator.translate(EN, n_best=3)
    with pytest.raises(ValueError, match=r"Unknown decoding settings \['beam'\]"):
        translator.translate(EN, beam=3)


def test_round_trip_in_a_fresh_process(saved):
    folder, _ = saved
    translator = Translator.load(folder)
    code = (
        "import json, sys, zoo\n"
        "t = zoo.Translator.load(sys.argv[1])\n"
        "print(json.dumps([t.settings.get_config(), t.translate(json.loads(sys.argv[2]), return_scores=True)]))\n"
    )
    settings, pairs = json.loads(run_fresh(code, folder, json.dumps(EN)))
    assert settings == translator.settings.get_config() and settings["max_length"] == 10
    expected = translator.translate(EN, return_scores=True)
    assert [t for t, _ in pairs] == [t for t, _ in expected]
    np.testing.assert_allclose([s for _, s in pairs], [s for _, s in expected], atol=1e-5)


def test_save_is_atomic_and_never_overwrites_by_accident(saved, tmp_path, monkeypatch):
    translator = Translator.load(saved[0])
    target = tmp_path / "t"
    translator.save(target)
    with pytest.raises(FileExistsError, match="exists; pass overwrite=True"):
        translator.save(target)
    translator.settings = translator.settings.replace(alpha=1.0)
    translator.save(target, overwrite=True)
    assert Translator.load(target).settings.alpha == 1.0

    def crash(directory):
        raise RuntimeError("disk full")

    monkeypatch.setattr(translator, "_write_files", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        translator.save(tmp_path / "new")
    with pytest.raises(RuntimeError, match="disk full"):
        translator.save(target, overwrite=True)
    assert sorted(os.listdir(tmp_path)) == ["t"]  # no half folder, no staging left behind
    assert Translator.load(target).settings.alpha == 1.0  # the old folder survived the failed overwrite


def _broken(saved, tmp_path, edit):
    folder = tmp_path / "broken"
    shutil.copytree(saved[0], folder)
    edit(folder)
    return folder


@pytest.mark.parametrize(
    "edit, error, message",
    [
        (lambda f: (f / "model.keras").unlink(), FileNotFoundError, "not a complete Translator folder: missing model.keras"),
        (lambda f: (f / "target_tokenizer" / "tokenizer.json").unlink(), FileNotFoundError,
         "missing target_tokenizer/tokenizer.json"),
        (lambda f: (f / "source_tokenizer" / "vocabulary.txt").unlink(), FileNotFoundError, "vocabulary.txt"),
        (lambda f: (f / "task.json").unlink(), FileNotFoundError, r"missing task.json \(found \['model.keras'"),
        (lambda f: (f / "task.json").write_text("{"), ValueError, "task.json is not valid JSON"),
        (lambda f: (f / "task.json").write_text("[]"), ValueError, "task.json must hold a JSON object. Received: list"),
        (lambda f: (f / "model.keras").write_bytes((f / "model.keras").read_bytes()[:500]), ValueError,
         r"model.keras is damaged: 500 bytes where save\(\) wrote .* \(truncated\?\)"),
        (lambda f: (f / "task.json").write_text(json.dumps({"task": "ImageClassifier", "format_version": 1})),
         ValueError, "holds a 'ImageClassifier' task; Translator.load reads .*Load it with zoo.ImageClassifier.load"),
        (lambda f: (f / "task.json").write_text(json.dumps({"task": "Translator", "format_version": 7})),
         ValueError, "format_version=7"),
    ],
)
def test_corrupt_or_incomplete_folders_name_the_file(saved, tmp_path, edit, error, message):
    with pytest.raises(error, match=message):
        Translator.load(_broken(saved, tmp_path, edit))


def test_not_a_folder():
    with pytest.raises(FileNotFoundError, match="takes a folder that save\\(\\) wrote. Received: /nowhere/x \\(not found\\)"):
        Translator.load("/nowhere/x")
    with pytest.raises(FileNotFoundError, match="not found"):
        ImageClassifier.load("/nowhere/x")


def test_translation_recipe_run_folder_loads_with_its_settings(saved, tmp_path):
    """What recipes/translation.py wrote before task folders: model.keras, the tokenizer folders, config.json."""
    folder = _broken(saved, tmp_path, lambda f: (f / "task.json").unlink())
    config = dict(preset="transformer_tiny", max_length=9, beam_width=3, length_penalty=0.8, vocabulary_size=80)
    (folder / "config.json").write_text(json.dumps(config))
    translator = Translator.load(folder)
    assert translator.settings == SearchSettings(beam_width=3, alpha=0.8, max_length=9)
    path = translator.export(str(tmp_path / "serving"))
    assert translator.translate(EN) == _export_outputs(path, EN)[0]
    (folder / "source_tokenizer" / "tokenizer.json").unlink()
    with pytest.raises(FileNotFoundError, match="translation run folder: missing source_tokenizer/tokenizer.json"):
        Translator.load(folder)


def test_compiled_recipe_model_loads_in_a_process_that_never_imported_the_recipe(saved, tmp_path):
    """The recipe saves its model compiled with zoo's schedule and loss; `load` reads it uncompiled, so a
    process that never imported them still loads and translates."""
    import keras

    from zoo.models.losses import SparseCrossentropyWithSmoothing
    from zoo.schedules import InverseSqrtSchedule

    folder = _broken(saved, tmp_path, lambda f: (f / "task.json").unlink())
    (folder / "config.json").write_text(json.dumps(dict(beam_width=2, max_length=10)))
    model = Translator.load(folder).model
    model.compile(optimizer=keras.optimizers.Adam(InverseSqrtSchedule(model.d_model, 100)),
                  loss=SparseCrossentropyWithSmoothing(0.1))
    model.save(folder / "model.keras")
    code = (
        "import json, sys, zoo\n"
        "t = zoo.Translator.load(sys.argv[1])\n"
        "assert 'zoo.schedules' not in sys.modules and getattr(t.model, 'optimizer', None) is None\n"
        "print(json.dumps(t.translate(json.loads(sys.argv[2]))))\n"
    )
    translations = json.loads(run_fresh(code, folder, json.dumps(EN)))
    assert translations == Translator.load(saved[0]).translate(EN)


def test_convert_marian_output_folder_loads_with_its_search_options(saved, tmp_path):
    """What tools/convert_marian.py wrote before task.json: search_options.json beside the model."""
    folder = _broken(saved, tmp_path, lambda f: (f / "task.json").unlink())
    options = dict(beam_width=3, alpha=1.0, length_penalty_form="power", search_rules="transformers",
                   suppress_token_ids=[0], force_end_at_max_length=True, early_stopping=False, max_length=7)
    (folder / "search_options.json").write_text(json.dumps(options))
    assert Translator.load(folder).settings == SearchSettings(**options)


def test_translator_checks_its_settings(tiny_translator):
    with pytest.raises(TypeError, match="settings must be a zoo.decoding.SearchSettings. Received: dict"):
        Translator(*tiny_translator, {"beam_width": 2})


def test_is_truncated_is_the_exports_truncated_output(saved):
    folder, path = saved
    translator = Translator.load(folder)
    sentences = EN + ODD + ["I " * 15, "I " * 16, "I " * 17]  # "I" is one token; the model reads 16
    out = tf.saved_model.load(path).signatures["serving_default"](sentences=tf.constant(
        [s.encode() if isinstance(s, str) else s for s in sentences]))
    expected = out["truncated"].numpy().tolist()
    assert translator.is_truncated(sentences) == expected == [False] * 6 + [True, False, False, False, True]
    assert translator.is_truncated(sentences, batch_size=2) == expected and translator.is_truncated([]) == []


def test_cross_attention_is_that_of_the_translation_translate_gives(saved):
    translator = Translator.load(saved[0])
    vocabulary = translator.target_tokenizer.vocabulary
    for sentence in EN:
        source_tokens, target_tokens, weights = translator.cross_attention(sentence)
        ids = translator.source_tokenizer.tokenize(tf.constant([sentence]))[0].numpy()
        assert source_tokens == [translator.source_tokenizer.vocabulary[i] for i in ids]
        target_ids = [vocabulary.index(token) for token in target_tokens]
        assert translator.target_tokenizer.detokenize(tf.constant([target_ids]))[0].numpy().decode() == (
            translator.translate([sentence])[0]
        )
        assert weights.shape == (translator.model.num_heads, len(target_tokens), len(source_tokens))  # (H, T, S)
        np.testing.assert_allclose(weights.sum(axis=-1), 1.0, atol=1e-5)
    first = translator.cross_attention(EN[0], layer=0)[2]
    np.testing.assert_array_equal(first, translator.cross_attention(EN[0], layer=-1)[2])  # one decoder layer
    with pytest.raises(ValueError, match="at least one token. Received: '  '"):
        translator.cross_attention("  ")


def test_a_compiled_model_saved_by_a_recipe_loads_in_a_fresh_process(tiny_translator, tmp_path):
    """A recipe saves the model it trained, compiled with zoo's schedule and loss; a fresh process
    that imports neither still loads the folder (the model is loaded without its compile state)."""
    import keras

    from zoo.models import TransformerTranslator
    from zoo.models.losses import SparseCrossentropyWithSmoothing
    from zoo.schedules import InverseSqrtSchedule

    model, source, target = tiny_translator
    compiled = TransformerTranslator.from_config(model.get_config())
    compiled.compile(optimizer=keras.optimizers.Adam(InverseSqrtSchedule(32, 10)),
                     loss=SparseCrossentropyWithSmoothing(0.1))
    ids = np.ones((2, 5), "int32")
    compiled.fit({"source_ids": ids, "target_ids": ids}, ids, verbose=0)  # optimizer state too
    folder = Translator(compiled, source, target, SearchSettings(beam_width=2)).save(tmp_path / "trained")
    code = "import json, sys, zoo\nprint(json.dumps(zoo.Translator.load(sys.argv[1]).translate(json.loads(sys.argv[2]))))\n"
    assert json.loads(run_fresh(code, folder, json.dumps(EN))) == Translator.load(folder).translate(EN)


def test_bucketed_sources_translate_as_unpadded_ones(tiny_translator):
    """Off TensorFlow the search runs on sources right-padded to a few widths (one compilation each).
    The padding must be the pad id, which the model masks: searched with or without it, the same
    hypotheses and scores; any other id would be read as tokens."""
    from zoo.decoding.beam_search import beam_search
    from zoo.tasks.translator_inputs import bucketed

    model, source, _ = tiny_translator
    ids = source.tokenize(tf.constant(EN)).to_tensor(model.pad_token_id).numpy().astype("int32")  # (B, S)
    padded = bucketed(ids, model)  # (B, 8 or 16)
    assert padded.shape[1] in (8, 16) and padded.shape[1] > ids.shape[1]
    np.testing.assert_array_equal(padded[:, : ids.shape[1]], ids)
    assert (padded[:, ids.shape[1] :] == model.pad_token_id).all()
    assert bucketed(padded, model).shape == padded.shape  # a bucket's width is its own bucket
    tokens, scores = (np.asarray(x) for x in beam_search(model, ids, max_length=8, beam_width=2)[-2:])
    tokens_padded, scores_padded = (np.asarray(x) for x in beam_search(model, padded, max_length=8, beam_width=2)[-2:])
    np.testing.assert_array_equal(tokens_padded, tokens)
    np.testing.assert_allclose(scores_padded, scores, atol=1e-5)
