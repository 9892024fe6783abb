"""MarianMT import: zoo's model against `transformers` on tiny random checkpoints."""

import os
import shutil

import numpy as np
import pytest

from tests.convert.marian_checkpoint import hf_tokenizer, import_transformers, write_marian_checkpoint
from zoo.convert import CheckpointError
from zoo.convert.marian import load_marian
from zoo.models import TransformerTranslator

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
    return load_marian(directory)


def _hf_batch(directory, texts=SOURCES):
    return hf_tokenizer(directory)(texts, return_tensors="pt", padding=True)


def test_encoder_outputs_and_logits_match_transformers(checkpoint, converted):
    directory, hf = checkpoint
    model = converted[0]
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
    model = TransformerTranslator.from_marian(directory)
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
    model, options = converted[0], converted[3]
    batch = _hf_batch(directory)
    expected, _ = _hf_generate(hf, batch, num_beams=1, max_new_tokens=max_new_tokens)
    lengths = (expected != model.pad_token_id).sum(1)
    tokens = generate(
        model, batch["input_ids"].numpy().astype("int32"), max_new_tokens,
        suppress_token_ids=options["suppress_token_ids"], force_end_at_max_length=options["force_end_at_max_length"],
    )
    _assert_same_tokens(tokens, expected, model.pad_token_id)
    if max_new_tokens == 12:
        assert len(set(lengths)) > 1 and lengths.max() < 12  # sentences end on their own, at different steps


@pytest.mark.parametrize(
    "num_beams, length_penalty, max_new_tokens",
    [(4, None, 12), (4, None, 4), (3, 0.6, 12), (2, 2.0, 12)],  # None: the checkpoint's (transformers' default 1.0)
)
def test_beam_search_matches_transformers_generate(checkpoint, converted, num_beams, length_penalty, max_new_tokens):
    from zoo.decoding import beam_search

    directory, hf = checkpoint
    model, options = converted[0], dict(converted[3])
    assert options.pop("beam_width") == 4 and options["alpha"] == 1.0
    assert options["suppress_token_ids"] == (model.pad_token_id,)
    settings = dict(num_beams=num_beams, max_new_tokens=max_new_tokens)
    if length_penalty is not None:
        settings["length_penalty"] = options["alpha"] = length_penalty
    batch = _hf_batch(directory)
    expected, expected_scores = _hf_generate(hf, batch, **settings)
    tokens, scores = beam_search(model, batch["input_ids"].numpy().astype("int32"), max_new_tokens, num_beams, **options)
    _assert_same_tokens(tokens, expected, model.pad_token_id)
    np.testing.assert_allclose(np.asarray(scores), expected_scores, atol=1e-4)

