"""Presets for `TransformerTranslator`: architecture only; vocabulary sizes
come from the tokenizers (pass `source_vocab_size`/`target_vocab_size`)."""

_PAPER = dict(
    norm_first=False,
    activation="relu",
    scale_embeddings=True,
    position="sinusoidal",
    sinusoid_layout="concat",
    layer_norm_epsilon=1e-6,
)

TRANSFORMER_TRANSLATOR_PRESETS = {
    "transformer_tiny": {
        "config": dict(
            _PAPER,
            num_encoder_layers=4,
            num_decoder_layers=4,
            d_model=128,
            num_heads=8,
            d_ff=512,
            dropout=0.1,
        ),
        "description": "4+4 layers, d_model 128, 8 heads, d_ff 512: the size of the "
        "TensorFlow 'Neural machine translation with a Transformer' tutorial. Trains on a CPU.",
    },
    "transformer_base": {
        "config": dict(
            _PAPER,
            num_encoder_layers=6,
            num_decoder_layers=6,
            d_model=512,
            num_heads=8,
            d_ff=2048,
            dropout=0.1,
        ),
        "description": "6+6 layers, d_model 512, 8 heads, d_ff 2048: the base model of "
        "Vaswani et al. (2017), 65M parameters with a 37k shared vocabulary.",
    },
    "transformer_big": {
        "config": dict(
            _PAPER,
            num_encoder_layers=6,
            num_decoder_layers=6,
            d_model=1024,
            num_heads=16,
            d_ff=4096,
            dropout=0.3,
        ),
        "description": "6+6 layers, d_model 1024, 16 heads, d_ff 4096: the big model of "
        "Vaswani et al. (2017) (dropout 0.3 as for EN-DE).",
    },
}
