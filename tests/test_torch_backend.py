"""The layers, models and decoding also run on the PyTorch backend (CPU): the JAX subset, on torch.

A subprocess, because Keras fixes its backend at import time. The subset is
tests/test_jax_backend.py's. Left out: training and compiling with
`jit_compile=True`, which on PyTorch means `torch.compile` (not XLA). It
runs (`test_blocks_train_under_xla` passed on torch, in 235 s of the
subset's 7 minutes on a loaded 2-core machine), but too slowly for CI.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_jax_backend import SUBSET

ROOT = Path(__file__).resolve().parents[1]
# torch.compile's tests (see the module docstring).
LEFT_OUT = "not blocks_train_under_xla and not compiles_under_xla"


@pytest.mark.skipif(os.environ.get("KERAS_BACKEND") == "torch", reason="already on PyTorch")
def test_layers_on_torch_backend():
    pytest.importorskip("torch")
    env = dict(os.environ, KERAS_BACKEND="torch", CUDA_VISIBLE_DEVICES="")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-k", LEFT_OUT, *SUBSET],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200,
    )
    tail = (result.stdout + result.stderr)[-4000:]
    assert result.returncode == 0, f"layers failed on the PyTorch backend:\n{tail}"
    assert " passed" in result.stdout and "torch" in subprocess.run(
        [sys.executable, "-c", "import keras; print(keras.backend.backend())"],
        env=env, capture_output=True, text=True,
    ).stdout
