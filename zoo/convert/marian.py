"""Import Hugging Face MarianMT (OPUS-MT) checkpoints into `TransformerTranslator`.

A MarianMT checkpoint folder holds `config.json`, the weights
(`model.safetensors` or `pytorch_model.bin`, possibly sharded), the two
SentencePiece models `source.spm` / `target.spm` and `vocab.json` (piece to
id, shared by source and target unless `target_vocab.json` exists). The
architecture maps onto zoo's options one to one: post-norm blocks without
final norms, token embeddings scaled by `sqrt(d_model)` (`scale_embedding`),
fixed `[sin | cos]` sinusoids from position 0, swish feed-forward, LayerNorm
epsilon 1e-5 (PyTorch's default), one token matrix shared by encoder, decoder
and output projection, plus the `final_logits_bias`. Decoding starts with
the pad id and ends with eos (id 0 in OPUS-MT).

Weights are read with NumPy (`zoo.convert.checkpoint`); neither PyTorch nor
`transformers` is imported here. Written by hand because no library maps
these checkpoints onto Keras layers.
"""

import os

import numpy as np

from zoo.convert.checkpoint import CheckpointError, read_json, read_state_dict
from zoo.convert.components import TranslatorComponents
from zoo.convert.torch_layout import Tensors, attention, dense, expect, layer_norm
from zoo.decoding.search_settings import SearchSettings
from zoo.models.transformer_translator import TransformerTranslator
from zoo.text.marian_tokenizer import MarianTokenizer

# transformers' activation names -> zoo FeedForward's.
_ACTIVATIONS = {
    "swish": "swish",
    "silu": "swish",
    "relu": "relu",
    "gelu": "gelu",
    "gelu_new": "gelu_approximate",
    "gelu_pytorch_tanh": "gelu_approximate",
}
_TOKENIZER_FILES = ("source.spm", "target.spm", "vocab.json")


def marian_config(config):
    """`TransformerTranslator` arguments for a MarianMT `config.json` dict."""
    if config.get("model_type") != "marian":
        raise CheckpointError(
            "Not a MarianMT checkpoint: config.json has model_type="
            f"{config.get('model_type')!r} (architectures={config.get('architectures')}), expected 'marian'."
        )
    if config.get("normalize_before", False) or config.get("normalize_embedding", False):
        raise CheckpointError(
            "Only post-norm Marian models without embedding LayerNorm are supported. Received: "
            f"normalize_before={config.get('normalize_before')}, "
            f"normalize_embedding={config.get('normalize_embedding')}"
        )
    activation = config.get("activation_function", "gelu")
    if activation not in _ACTIVATIONS:
        raise CheckpointError(
            f"Unsupported activation_function={activation!r}; expected one of {sorted(_ACTIVATIONS)}."
        )
    d_model = config.get("d_model", 1024)
    heads = (config.get("encoder_attention_heads", 16), config.get("decoder_attention_heads", 16))
    ffn = (config.get("encoder_ffn_dim", 4096), config.get("decoder_ffn_dim", 4096))
    if heads[0] != heads[1] or ffn[0] != ffn[1]:
        raise CheckpointError(
            "TransformerTranslator needs the same heads and feed-forward width in encoder and decoder. "
            f"Received: attention heads {heads}, ffn dims {ffn} (encoder, decoder)."
        )
    vocab_size = config.get("vocab_size", 58101)
    shared = config.get("share_encoder_decoder_embeddings", True)
    target_vocab_size = vocab_size if shared else (config.get("decoder_vocab_size") or vocab_size)
    pad = config.get("pad_token_id", 58100)
    eos = config.get("eos_token_id", 0)
    if isinstance(eos, (list, tuple)):
        if len(eos) != 1:
            raise CheckpointError(f"Expected one eos_token_id. Received: eos_token_id={eos}")
        eos = eos[0]
    start = config.get("decoder_start_token_id")
    return dict(
        source_vocab_size=vocab_size,
        target_vocab_size=target_vocab_size,
        num_encoder_layers=config.get("encoder_layers", 12),
        num_decoder_layers=config.get("decoder_layers", 12),
        d_model=d_model,
        num_heads=heads[0],
        d_ff=ffn[0],
        dropout=config.get("dropout", 0.1),
        attention_dropout=config.get("attention_dropout", 0.0),
        activation=_ACTIVATIONS[activation],
        norm_first=False,
        layer_norm_epsilon=1e-5,
        max_length=config.get("max_position_embeddings", 1024),
        position="sinusoidal",
        sinusoid_layout="concat",
        scale_embeddings=bool(config.get("scale_embedding", False)),
        share_embeddings=bool(shared),
        tie_output_embeddings=bool(config.get("tie_word_embeddings", True)),
        output_bias=True,
        pad_token_id=pad,
        start_token_id=pad if start is None else start,
        end_token_id=eos,
    )


def generation_settings(directory):
    """`(file name, dict)` of a checkpoint's decoding settings:
    `generation_config.json` if there is one, else `config.json`."""
    directory = os.fspath(directory)
    name = "generation_config.json" if os.path.exists(os.path.join(directory, "generation_config.json")) else "config.json"
    return name, read_json(directory, name)


def marian_search_settings(directory, model_max_length):
    """Decoding settings of a checkpoint, as a `zoo.decoding.SearchSettings`.

    Reads `generation_config.json` if there is one, else `config.json`:
    `length_penalty` (default 1.0) with transformers' `length ** alpha`
    form and search rules, `bad_words_ids` of single tokens as
    `suppress_token_ids`, `forced_eos_token_id` as `force_end_at_max_length`,
    `early_stopping` as it is, `num_beams` as `beam_width` (default 1,
    greedy), and `max_length - 1` (transformers counts the decoder start
    token, zoo does not; default 20) as `max_length`, at most
    `model_max_length`. Greedy decoding (`zoo.decoding.generate`) takes only
    `suppress_token_ids` and `force_end_at_max_length`.
    """
    name, config = generation_settings(directory)
    suppress = []
    for word in config.get("bad_words_ids") or []:
        if len(word) != 1:
            raise CheckpointError(
                f"{name}: only single-token bad_words_ids can be suppressed. Received: {word}"
            )
        suppress.append(int(word[0]))
    early_stopping = config.get("early_stopping", False)
    if early_stopping not in (False, True, "never"):
        raise CheckpointError(f"{name}: unknown early_stopping={early_stopping!r}; expected false, true or \"never\".")
    max_length = config.get("max_length") or 20  # transformers' default
    return SearchSettings(
        beam_width=int(config.get("num_beams") or 1),
        alpha=float(config.get("length_penalty", 1.0)),
        length_penalty_form="power",
        search_rules="transformers",
        max_length=max(1, min(int(max_length) - 1, model_max_length)),
        suppress_token_ids=tuple(suppress),
        force_end_at_max_length=config.get("forced_eos_token_id") is not None,
        early_stopping=early_stopping,
    )


def _strip_prefix(state):
    # MarianMTModel saves `model.encoder...`; a bare MarianModel saves `encoder...`.
    if any(name.startswith("model.") for name in state):
        return state
    return {("model." + k if not k.startswith(("lm_head", "final_logits_bias")) else k): v for k, v in state.items()}


def _first(tensors, names):
    for name in names:
        if name in tensors:
            return name
    raise CheckpointError(f"{tensors.where} has none of the tensors {list(names)}.")


def load_marian_weights(model, state, where="the MarianMT checkpoint"):
    """Copies a MarianMT state dict (name -> NumPy array) into a `TransformerTranslator`.

    Every tensor must find its place, except the sinusoid tables
    (`embed_positions`, fixed) and the copies of the tied token matrix.
    """
    tensors = Tensors(_strip_prefix(state), where=where, target="zoo's TransformerTranslator")
    d = model.d_model
    shared = model.share_embeddings
    source_names = ("model.shared.weight", "model.encoder.embed_tokens.weight")
    source_name = _first(tensors, source_names if shared else source_names[::-1])
    source = expect(tensors, source_name, (model.source_vocab_size, d))
    model.source_embedding.token_embedding.embeddings.assign(source)
    target_name = source_name if shared else "model.decoder.embed_tokens.weight"
    target = source if shared else expect(tensors, target_name, (model.target_vocab_size, d))
    if not shared:
        model.target_embedding.token_embedding.embeddings.assign(target)
    copies = {name: (source_name, source) for name in source_names + ("model.decoder.embed_tokens.weight",) if shared}
    if not shared and source_name != "model.shared.weight":
        tensors.ignore("model.shared.weight")  # transformers 4 kept it unused when untied
    if "final_logits_bias" in tensors:
        bias = expect(tensors, "final_logits_bias", (1, model.target_vocab_size))[0]
    else:
        bias = np.zeros((model.target_vocab_size,), np.float32)
    if model.tie_output_embeddings:
        model.logits_bias.assign(bias)
        copies["lm_head.weight"] = (target_name, target)
    else:
        lm_head = expect(tensors, "lm_head.weight", (model.target_vocab_size, d))  # (V, D), no bias of its own
        model.output_projection.kernel.assign(lm_head.T)
        model.output_projection.bias.assign(bias)
    for name, (original, value) in copies.items():
        # Tied weights saved more than once must be copies of the one loaded.
        if name != original and name in tensors and not np.array_equal(tensors.take(name), value):
            raise CheckpointError(
                f"{tensors.where}: {name!r} should be tied to {original!r} (config.json ties them), "
                "but the two differ."
            )
    tensors.ignore("model.encoder.embed_positions.")
    tensors.ignore("model.decoder.embed_positions.")

    def attention_sublayer(sublayer, prefix, norm):
        names = {role: f"{prefix}.{proj}" for role, proj in (("q", "q_proj"), ("k", "k_proj"), ("v", "v_proj"), ("o", "out_proj"))}
        attention(sublayer.attention, tensors, names)
        layer_norm(sublayer.layer_norm, tensors, norm)

    def feed_forward(block, prefix):
        ffn = block.feed_forward
        dense(ffn.intermediate_dense, tensors, f"{prefix}.fc1")
        dense(ffn.output_dense, tensors, f"{prefix}.fc2")
        layer_norm(ffn.layer_norm, tensors, f"{prefix}.final_layer_norm")

    for stack, count in (("encoder", model.num_encoder_layers), ("decoder", model.num_decoder_layers)):
        if f"model.{stack}.layers.{count}.fc1.weight" in tensors:
            raise CheckpointError(
                f"The checkpoint has more {stack} layers than config.json's {stack}_layers={count}."
            )
    for i, block in enumerate(model.encoder_blocks):
        prefix = f"model.encoder.layers.{i}"
        attention_sublayer(block.self_attention, f"{prefix}.self_attn", f"{prefix}.self_attn_layer_norm")
        feed_forward(block, prefix)
    for i, block in enumerate(model.decoder_blocks):
        prefix = f"model.decoder.layers.{i}"
        attention_sublayer(block.causal_self_attention, f"{prefix}.self_attn", f"{prefix}.self_attn_layer_norm")
        attention_sublayer(block.cross_attention, f"{prefix}.encoder_attn", f"{prefix}.encoder_attn_layer_norm")
        feed_forward(block, prefix)
    tensors.check_all_used(
        hints=(
            ("layernorm_embedding", "a LayerNorm on the embeddings"),
            ("encoder.layer_norm.", "a final encoder norm (pre-norm Marian)"),
            ("decoder.layer_norm.", "a final decoder norm (pre-norm Marian)"),
        )
    )
    return model


def check_marian_files(directory):
    """Raises `CheckpointError` naming what a MarianMT checkpoint folder lacks."""
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise CheckpointError(f"MarianMT checkpoint folder not found: {directory}")
    missing = [name for name in ("config.json",) + _TOKENIZER_FILES if not os.path.exists(os.path.join(directory, name))]
    if missing:
        raise CheckpointError(
            f"{directory} is not a complete MarianMT checkpoint: missing {missing} "
            f"(found {sorted(os.listdir(directory))})."
        )


def load_marian_model(directory, dtype=None):
    """Builds a `TransformerTranslator` from a MarianMT checkpoint folder.

    Args:
        directory: str. A folder with `config.json` and the weights.
        dtype: Keras dtype policy for the model. Defaults to `None`: float32.

    Raises:
        CheckpointError: a file is missing, the config is not Marian's, or a
            tensor is missing or has the wrong shape (each named).
    """
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise CheckpointError(f"MarianMT checkpoint folder not found: {directory}")
    config = marian_config(read_json(directory, "config.json"))
    state = read_state_dict(directory)
    try:
        model = TransformerTranslator(**config, dtype=dtype)
    except ValueError as error:
        raise CheckpointError(f"{directory}/config.json describes a model zoo cannot build: {error}") from None
    return load_marian_weights(model, state, where=f"MarianMT checkpoint {directory}")


def load_marian(directory, dtype=None):
    """Model, tokenizers and decoding settings of a MarianMT checkpoint folder
    (`zoo.Translator.from_marian` assembles them).

    Returns:
        `TranslatorComponents`: the `TransformerTranslator`, two
        `zoo.text.MarianTokenizer`s (source and target side) and the
        `SearchSettings` of its generation config (see `marian_search_settings`).
    """
    check_marian_files(directory)
    model = load_marian_model(directory, dtype=dtype)
    try:
        source, target = MarianTokenizer.from_marian_dir(directory)
    except (OSError, ValueError) as error:
        raise CheckpointError(str(error)) from None
    for side, tokenizer, size in (("source", source, model.source_vocab_size), ("target", target, model.target_vocab_size)):
        if tokenizer.vocabulary_size > size:
            raise CheckpointError(
                f"The {side} vocabulary has {tokenizer.vocabulary_size} ids, more than the model's {size}."
            )
    return TranslatorComponents(model, source, target, marian_search_settings(directory, model.max_length))
