"""Model FLOPs by formula, so utilisation figures can be checked by hand.

Conventions (also in BENCHMARKS.md):
- Only matrix multiplications count; a multiply-add is 2 FLOPs. Embedding
  lookups, layer norms, softmax, activations, biases and the optimizer are
  not counted.
- A dense layer with an `n_in x n_out` kernel applied to `N` positions costs
  `2 * n_in * n_out * N` (so: 2 x kernel parameters x positions).
- Attention with `T` queries, `S` keys and total width `D` (all heads) costs
  `2*T*S*D` for `Q K^T` plus `2*T*S*D` for `weights @ V`: `4*T*S*D` per
  sequence per layer. Causal self-attention is counted FULLY (as computed
  by a dense kernel; a kernel that skips the masked half does half of it).
- Padding positions count: they are computed.
- Training step = 3 x forward (backward = 2 x forward: gradients with
  respect to activations and to weights).
"""


def dense_flops(n_in, n_out, positions):
    return 2 * n_in * n_out * positions


def attention_core_flops(batch, queries, keys, d_model):
    """`Q K^T` and `weights V`: `4 * T * S * D` per sequence."""
    return 4 * batch * queries * keys * d_model


def attention_layer_flops(batch, queries, keys, d_model, attention_width=None):
    """Forward FLOPs of one multi-head attention layer (self-attention when `queries == keys`).

    Projections: Q and the output on the `T` query positions, K and V on
    the `S` key positions, each a `D x D` kernel (all heads together).
    """
    width = attention_width or d_model
    projections = 2 * dense_flops(d_model, width, batch * queries) + 2 * dense_flops(d_model, width, batch * keys)
    return projections + attention_core_flops(batch, queries, keys, width)


def ffn_flops(batch, positions, d_model, d_ff):
    return dense_flops(d_model, d_ff, batch * positions) + dense_flops(d_ff, d_model, batch * positions)


def translator_forward_flops(batch, source_length, target_length, d_model, d_ff, encoder_layers,
                             decoder_layers, target_vocab):
    """Forward FLOPs of the encoder-decoder Transformer on one batch.

    Encoder layer: self-attention over S + FFN on S positions.
    Decoder layer: causal self-attention over T (counted fully), cross-
    attention (Q, O on T; K, V on S; core 4*T*S*D) + FFN on T positions.
    Output projection: `D x V` on the T target positions (tied or not).
    """
    b, s, t = batch, source_length, target_length
    encoder = encoder_layers * (attention_layer_flops(b, s, s, d_model) + ffn_flops(b, s, d_model, d_ff))
    decoder = decoder_layers * (
        attention_layer_flops(b, t, t, d_model) + attention_layer_flops(b, t, s, d_model) + ffn_flops(b, t, d_model, d_ff)
    )
    return encoder + decoder + dense_flops(d_model, target_vocab, b * t)


def vit_forward_flops(batch, image_size, patch_size, channels, d_model, num_layers, d_ff, num_classes, class_token=True,
                      last_block_queries=None):
    """Forward FLOPs of a ViT on one batch: patch projection (`p*p*C x D` on
    every patch), `num_layers` encoder layers on `N = P (+1)` tokens, the head on
    one vector per image (`D x classes`).

    `last_block_queries=1` counts what zoo's classifier executes: its last
    block computes the class token's output only (keys and values on all
    `N` tokens; queries, output projection and MLP on one). Model FLOPs (for
    MFU, and to compare models) use the conventional full count (None).
    """
    patches = (image_size // patch_size) ** 2
    tokens = patches + (1 if class_token else 0)
    embed = dense_flops(patch_size * patch_size * channels, d_model, batch * patches)

    def layer(queries):
        return attention_layer_flops(batch, queries, tokens, d_model) + ffn_flops(batch, queries, d_model, d_ff)

    layers = (num_layers - 1) * layer(tokens) + layer(tokens if last_block_queries is None else last_block_queries)
    return embed + layers + dense_flops(d_model, num_classes, batch)


def training_flops(forward):
    return 3 * forward


def translator_config_flops(config, batch, source_length, target_length):
    """Training FLOPs per step for a `TransformerTranslator` config dict."""
    return training_flops(
        translator_forward_flops(
            batch, source_length, target_length, config["d_model"], config["d_ff"],
            config["num_encoder_layers"], config["num_decoder_layers"], config["target_vocab_size"],
        )
    )


def vit_config_flops(config, batch, executed=False):
    """Training FLOPs per step for a `VisionTransformer` config dict: model
    FLOPs, or with `executed=True` what zoo computes (the last block for the
    class token alone under `"token"` pooling)."""
    class_token = config.get("pooling", "token") == "token"
    return training_flops(
        vit_forward_flops(
            batch, config["image_size"], config["patch_size"], config.get("num_channels", 3), config["d_model"],
            config["num_encoder_layers"], config["d_ff"], config["num_classes"],
            class_token=class_token, last_block_queries=1 if executed and class_token else None,
        )
    )
