"""Reusable attention layers (keras.ops only; TensorFlow, JAX and PyTorch backends)."""

from zoo.layers.multi_head_attention import MultiHeadAttention
from zoo.layers.rotary_embedding import RotaryEmbedding
