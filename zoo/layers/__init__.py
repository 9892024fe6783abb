"""Reusable attention layers (keras.ops only; TensorFlow, JAX and PyTorch backends)."""

from zoo.layers.size_pair import size_pair
from zoo.layers.multi_head_attention import MultiHeadAttention
from zoo.layers.attention_kernels import attention_kernel, kernels_used
from zoo.layers.rotary_embedding import RotaryEmbedding
from zoo.layers.residual_sublayer import ResidualSublayer
from zoo.layers.attention_sublayer import AttentionSublayer
from zoo.layers.global_self_attention import GlobalSelfAttention
from zoo.layers.causal_self_attention import CausalSelfAttention
from zoo.layers.cross_attention import CrossAttention
from zoo.layers.feed_forward import FeedForward
from zoo.layers.encoder_block import EncoderBlock
from zoo.layers.decoder_block import DecoderBlock
from zoo.layers.patch_embedding import PatchEmbedding
from zoo.layers.class_token import ClassToken
from zoo.layers.patch_position_embedding import PatchPositionEmbedding
from zoo.layers.position_embedding import PositionEmbedding
from zoo.layers.sinusoidal_position_encoding import SinusoidalPositionEncoding
from zoo.layers.token_and_position_embedding import TokenAndPositionEmbedding

__all__ = [
    "MultiHeadAttention",
    "attention_kernel",
    "kernels_used",
    "RotaryEmbedding",
    "ResidualSublayer",
    "AttentionSublayer",
    "GlobalSelfAttention",
    "CausalSelfAttention",
    "CrossAttention",
    "FeedForward",
    "EncoderBlock",
    "DecoderBlock",
    "PatchEmbedding",
    "ClassToken",
    "PatchPositionEmbedding",
    "PositionEmbedding",
    "SinusoidalPositionEncoding",
    "TokenAndPositionEmbedding",
    "size_pair",
]
