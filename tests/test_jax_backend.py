"""The layers and decoding are backend agnostic: run a representative subset on JAX.

A subprocess, because Keras fixes its backend at import time.
"""

import os

import pytest

from tests.helpers import run_tests_on_backend

SUBSET = [
    "tests/layers/test_multi_head_attention.py",
    "tests/layers/test_attention_kernels.py",
    "tests/models/test_saved_before_kernels.py",
    # Values wider than keys: JAX's fused attention cannot take them.
    "tests/layers/test_multi_head_attention_options.py::test_value_dim_and_a_separate_key",
    "tests/layers/test_attention_sublayers.py",
    "tests/layers/test_blocks.py",
    "tests/layers/test_rotary_embedding.py",
    "tests/layers/test_sinusoidal_position_encoding.py",
    "tests/layers/test_token_and_position_embedding.py",
    "tests/layers/test_patch_position_embedding.py",
    "tests/decoding/test_decoding.py",
]


@pytest.mark.skipif(os.environ.get("KERAS_BACKEND") == "jax", reason="already on JAX")
def test_layers_on_jax_backend():
    pytest.importorskip("jax")
    run_tests_on_backend("jax", SUBSET, JAX_PLATFORMS="cpu")
