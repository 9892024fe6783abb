"""MarianMT import (`zoo.Translator.from_marian`): zoo against `transformers` on tiny random checkpoints."""

import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from tests.convert.marian_checkpoint import hf_tokenizer, import_transformers, write_marian_checkpoint
from zoo.convert import CheckpointError
from zoo.tasks import Translator

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("sentencepiece")
import_transformers()

SOURCES = [
    "the cat sees a dog.",
    "big red house and tree near the river",
    "friend",
    "a green window with yellow bread and water under the old table!",
]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("marian"))
    hf = write_marian_checkpoint(directory)
    return directory, hf


@pytest.fixture(scope="module")
def converted(checkpoint):
    directory, _ = checkpoint
    return Translator.from_marian(directory)


def _hf_batch(directory, texts=SOURCES):
    return hf_tokenizer(directory)(texts, return_tensors="pt", padding=True)


def test_encoder_outputs_and_logits_match_transformers(checkpoint, converted):
    directory, hf = checkpoint
    model = converted.model
    assert (model.pad_token_id, model.start_token_id, model.end_token_id) == (hf.config.pad_token_id,) * 2 + (0,)
    batch = _hf_batch(directory)
    source = batch["input_ids"].numpy().astype("int32")
    real = batch["attention_mask"].numpy().astype(bool)
    rng = np.random.default_rng(0)
    target = rng.integers(0, model.target_vocab_size - 1, size=(len(SOURCES), 7)).astype("int32")
    target[:, 0] = model.start_token_id
    with torch.no_grad():
        hf_encoded = hf.get_encoder()(**batch).last_hidden_state.numpy()
        hf_logits = hf(**batch, decoder_input_ids=torch.from_numpy(target).long()).logits.numpy()
    encoded = np.asarray(model.encode(source))
    np.testing.assert_allclose(encoded[real], hf_encoded[real], atol=1e-4)
    logits = np.asarray(model({"source_ids": source, "target_ids": target}))
    np.testing.assert_allclose(logits, hf_logits, atol=1e-4)
    assert np.abs(logits).max() > 1.0  # not trivially small
    # The cached decoder step gives the same logits, one token at a time.
    from zoo.decoding.cached_step import prepare

    mask, cache = prepare(model, source, target.shape[1])
    for t in range(target.shape[1]):
        step_logits, cache = model.decode_step(target[:, t : t + 1], mask, cache, t)
        np.testing.assert_allclose(np.asarray(step_logits)[:, 0], hf_logits[:, t], atol=1e-4)


def test_pytorch_zip_weights_and_untied_embeddings(tmp_path):
    # Separate source/target embeddings, an untied output projection and a
    # `pytorch_model.bin`: converted without torch, checked against torch.
    directory = str(tmp_path)
    hf = write_marian_checkpoint(
        directory, seed=1, safe_serialization=False, share_encoder_decoder_embeddings=False,
        tie_word_embeddings=False, activation_function="gelu", scale_embedding=False,
    )
    assert os.path.exists(os.path.join(directory, "pytorch_model.bin"))
    model = Translator.from_marian(directory).model
    assert not model.share_embeddings and not model.tie_output_embeddings and model.activation == "gelu"
    batch = _hf_batch(directory, SOURCES[:2])
    target = np.array([[model.start_token_id, 4, 9, 0], [model.start_token_id, 11, 3, 8]], "int32")
    with torch.no_grad():
        expected = hf(**batch, decoder_input_ids=torch.from_numpy(target).long()).logits.numpy()
    logits = np.asarray(model({"source_ids": batch["input_ids"].numpy().astype("int32"), "target_ids": target}))
    np.testing.assert_allclose(logits, expected, atol=1e-4)


def _hf_generate(hf, batch, **settings):
    with torch.no_grad():
        out = hf.generate(**batch, do_sample=False, output_scores=True, return_dict_in_generate=True, **settings)
    tokens = out.sequences.numpy()[:, 1:]  # without the decoder start token
    return tokens, (out.sequences_scores.numpy() if settings.get("num_beams", 1) > 1 else None)


def _assert_same_tokens(zoo_tokens, hf_tokens, pad):
    # transformers crops to the longest output of the batch; zoo pads to max_length.
    zoo_tokens = np.asarray(zoo_tokens)
    np.testing.assert_array_equal(zoo_tokens[:, : hf_tokens.shape[1]], hf_tokens)
    assert np.all(zoo_tokens[:, hf_tokens.shape[1] :] == pad)


@pytest.mark.parametrize("max_new_tokens", [3, 12])
def test_greedy_matches_transformers_generate(checkpoint, converted, max_new_tokens):
    from zoo.decoding import generate

    directory, hf = checkpoint
    model, settings = converted.model, converted.settings
    batch = _hf_batch(directory)
    expected, _ = _hf_generate(hf, batch, num_beams=1, max_new_tokens=max_new_tokens)
    lengths = (expected != model.pad_token_id).sum(1)
    tokens = generate(
        model, batch["input_ids"].numpy().astype("int32"), max_new_tokens,
        suppress_token_ids=settings.suppress_token_ids, force_end_at_max_length=settings.force_end_at_max_length,
    )
    _assert_same_tokens(tokens, expected, model.pad_token_id)
    if max_new_tokens == 12:
        assert len(set(lengths)) > 1 and lengths.max() < 12  # sentences end on their own, at different steps


@pytest.mark.parametrize(
    "num_beams, length_penalty, max_new_tokens, early_stopping",
    [  # length_penalty None: the checkpoint's (transformers' default 1.0)
        (4, None, 12, False), (4, None, 4, False), (3, 0.6, 12, False), (2, 2.0, 12, False),
        (4, None, 12, True), (3, 2.0, 12, "never"), (4, 0.0, 12, "never"),
        (1, None, 12, False),  # one beam: transformers decodes greedily, so must the search
    ],
)
def test_beam_search_matches_transformers_generate(
    checkpoint, converted, num_beams, length_penalty, max_new_tokens, early_stopping
):
    from zoo.decoding import beam_search

    directory, hf = checkpoint
    model, checkpoint_settings = converted.model, converted.settings
    assert (checkpoint_settings.beam_width, checkpoint_settings.alpha) == (4, 1.0)
    assert checkpoint_settings.search_rules == "transformers" and checkpoint_settings.max_length == 63  # its max_length 64, less the start token
    assert checkpoint_settings.suppress_token_ids == (model.pad_token_id,)
    options = dict(checkpoint_settings.search_options(), alpha=checkpoint_settings.alpha, early_stopping=early_stopping)
    settings = dict(num_beams=num_beams, max_new_tokens=max_new_tokens, early_stopping=early_stopping)
    if length_penalty is not None:
        settings["length_penalty"] = options["alpha"] = length_penalty
    batch = _hf_batch(directory)
    expected, expected_scores = _hf_generate(hf, batch, **settings)
    tokens, scores = beam_search(model, batch["input_ids"].numpy().astype("int32"), max_new_tokens, num_beams, **options)
    _assert_same_tokens(tokens, expected, model.pad_token_id)
    if expected_scores is not None:  # transformers' greedy search reports no sequence scores
        np.testing.assert_allclose(np.asarray(scores), expected_scores, atol=1e-4)



def test_n_best_matches_transformers_num_return_sequences(checkpoint, converted):
    # Translator.translate(n_best=...) runs the export's translate_nbest signature; with the
    # checkpoint's settings its lists are transformers' num_return_sequences, scores included.
    directory, hf = checkpoint
    with torch.no_grad():
        out = hf.generate(**_hf_batch(directory), num_beams=4, num_return_sequences=4, max_new_tokens=12,
                          do_sample=False, output_scores=True, return_dict_in_generate=True)
    texts = hf_tokenizer(directory).batch_decode(out.sequences, skip_special_tokens=True)
    scores = out.sequences_scores.numpy().reshape(len(SOURCES), 4)
    lists = converted.translate(SOURCES, n_best=4, return_scores=True, max_length=12)
    for i, hypotheses in enumerate(lists):
        assert [t for t, _ in hypotheses] == texts[4 * i : 4 * i + 4]
        np.testing.assert_allclose([s for _, s in hypotheses], scores[i], atol=1e-4)
    assert len({t for t, _ in lists[0]}) > 1


def _convert_without_torch(args):
    """Runs tools/convert_marian.py in a fresh process; checks it imported neither torch nor transformers."""
    import json
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    code = (
        "import json, sys\n"
        f"sys.path.insert(0, {root!r})\n"
        "from tools.convert_marian import main\n"
        "outputs = main(sys.argv[1:])\n"
        "print(json.dumps(dict(outputs, imported=[m for m in ('torch', 'transformers') if m in sys.modules])))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=root, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outputs = json.loads(result.stdout.strip().splitlines()[-1])
    assert outputs.pop("imported") == []
    return outputs


@pytest.mark.slow
def test_cli_export_translates_like_transformers_in_a_fresh_process(checkpoint, tmp_path):
    # tools/convert_marian.py: checkpoint in, .keras model + tokenizers + a TF
    # Serving export out; the export, loaded without zoo, translates as
    # transformers' generate with the checkpoint's settings (beam 4, pad banned).
    from tests.helpers import translate_without_zoo
    from zoo.export import audit_saved_model
    from zoo.text import MarianTokenizer

    directory, hf = checkpoint
    outputs = _convert_without_torch(
        [directory, "--output", str(tmp_path / "zoo"), "--export-base", str(tmp_path / "serving"),
         "--name", "marian", "--max-length", "12"]
    )
    long = " ".join(["the green river"] * 40)  # over the model's 64 positions: truncated, keeping </s>
    sentences = SOURCES + [long, "", "   "]
    fresh = translate_without_zoo(outputs["export"], sentences)["translations"]
    batch = hf_tokenizer(directory)(SOURCES + [long], return_tensors="pt", padding=True, truncation=True, max_length=64)
    with torch.no_grad():
        generated = hf.generate(**batch, num_beams=4, max_new_tokens=12)
    expected = hf_tokenizer(directory).batch_decode(generated, skip_special_tokens=True)
    assert fresh == expected + ["", ""]
    assert any(fresh)
    ops = audit_saved_model(outputs["export"])
    assert "SentencepieceTokenizeOp" in ops and "LookupTableFindV2" in ops
    # The Translator folder reloads and translates in process as the export does.
    translator = Translator.load(outputs["output"])
    assert translator.settings.max_length == 12 and translator.settings.suppress_token_ids == (hf.config.pad_token_id,)
    assert translator.translate(sentences) == fresh
    # The .keras model and the saved tokenizers reload as they were.
    reloaded = __import__("keras").saving.load_model(str(tmp_path / "zoo" / "model.keras"))
    source = MarianTokenizer.load(tmp_path / "zoo" / "source_tokenizer")
    ids = source.tokenize(SOURCES[:1]).to_tensor().numpy()
    target = np.array([[reloaded.start_token_id, 5, 6]], "int32")
    with torch.no_grad():
        hf_logits = hf(input_ids=torch.from_numpy(ids).long(), decoder_input_ids=torch.from_numpy(target).long()).logits
    np.testing.assert_allclose(
        np.asarray(reloaded({"source_ids": ids, "target_ids": target})), hf_logits.numpy(), atol=1e-4
    )


def test_export_truncates_long_sources_keeping_the_end_token(checkpoint, converted):
    from zoo.preprocessing import TranslationPreprocessor

    directory, _ = checkpoint
    model = converted.model
    preprocessor = TranslationPreprocessor(converted.source_tokenizer, converted.target_tokenizer, model.max_length)
    long = " ".join(["the green river"] * 40)  # more source tokens than the model's 64 positions
    ids, lengths = preprocessor.source_ids(tf.constant([long, SOURCES[0], ""]))
    expected = hf_tokenizer(directory)([long, SOURCES[0], ""], truncation=True, max_length=model.max_length)["input_ids"]
    assert ids.to_list() == expected and len(expected[0]) == model.max_length and expected[0][-1] == model.end_token_id
    assert lengths.numpy().tolist()[1:] == [len(expected[1]) - 1, 0]


def _broken_copy(checkpoint, tmp_path, edit):
    directory = str(tmp_path / "broken")
    shutil.copytree(checkpoint[0], directory)
    edit(directory)
    return directory


def _edit_config(**changes):
    import json

    def edit(directory):
        path = os.path.join(directory, "config.json")
        with open(path) as f:
            config = json.load(f)
        config.update(changes)
        with open(path, "w") as f:
            json.dump(config, f)

    return edit


def _add_tensor(name, like=None):
    """Adds tensor `name`: ones of shape (32,), or `like` plus one."""
    from safetensors.numpy import load_file, save_file

    def edit(directory):
        path = os.path.join(directory, "model.safetensors")
        tensors = load_file(path)
        tensors[name] = tensors[like] + 1.0 if like else np.ones((32,), np.float32)
        save_file(tensors, path, metadata={"format": "pt"})

    return edit


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: os.remove(os.path.join(d, "source.spm")), r"missing \['source.spm'\]"),
        (_add_tensor("model.encoder.layers.0.adapter.weight"),
         r"holds tensors zoo's TransformerTranslator has no place for: model.encoder.layers.0.adapter.weight\."),
        (_add_tensor("model.decoder.layer_norm.weight"), r"no place for \(a final decoder norm \(pre-norm Marian\)\)"),
        (_add_tensor("lm_head.weight", like="model.shared.weight"),
         r"'lm_head.weight' should be tied to 'model.shared.weight' \(config.json ties them\), but the two differ"),
        (lambda d: os.remove(os.path.join(d, "config.json")), r"missing \['config.json'\]"),
        (lambda d: os.remove(os.path.join(d, "model.safetensors")), "No weights in"),
        (_edit_config(model_type="bert", architectures=["BertModel"]), "model_type='bert'.*expected 'marian'"),
        (_edit_config(encoder_ffn_dim=128, decoder_ffn_dim=128), r"fc1.weight' of .* has shape \(64, 32\); the configuration expects \(128, 32\)"),
        (_edit_config(encoder_layers=1), "more encoder layers than config.json's encoder_layers=1"),
        (_edit_config(encoder_layers=3), "has no tensor 'model.encoder.layers.2"),
        (_edit_config(vocab_size=50, decoder_vocab_size=50, pad_token_id=49, decoder_start_token_id=49),
         r"shared.weight' of .* has shape \(\d+, 32\); the configuration expects \(50, 32\)"),
        (_edit_config(activation_function="mish"), "Unsupported activation_function='mish'"),
        (_edit_config(pad_token_id=5000, decoder_start_token_id=5000), r"cannot build: pad_token_id must be .*5000"),
        (_edit_config(decoder_attention_heads=2), r"same heads .* Received: attention heads \(4, 2\)"),
    ],
)
def test_broken_checkpoints_fail_with_a_clear_error(checkpoint, tmp_path, edit, message):
    directory = _broken_copy(checkpoint, tmp_path, edit)
    with pytest.raises(CheckpointError, match=message):
        Translator.from_marian(directory)
