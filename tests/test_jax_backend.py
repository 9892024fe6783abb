"""The layers and decoding are backend agnostic: run a representative subset on JAX.

A subprocess, because Keras fixes its backend at import time.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
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
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *SUBSET],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200,
    )
    tail = (result.stdout + result.stderr)[-4000:]
    assert result.returncode == 0, f"layers failed on the JAX backend:\n{tail}"
    assert "passed" in result.stdout and "jax" in subprocess.run(
        [sys.executable, "-c", "import keras; print(keras.backend.backend())"],
        env=env, capture_output=True, text=True,
    ).stdout
