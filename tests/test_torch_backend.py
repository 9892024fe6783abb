"""The layers, models and decoding also run on the PyTorch backend (CPU): the JAX subset, on torch.

A subprocess, because Keras fixes its backend at import time. The subset is
tests/test_jax_backend.py's. Left out: training and compiling with
`jit_compile=True`, which on PyTorch means `torch.compile` (not XLA). It
runs (`test_blocks_train_under_xla` passed on torch, in 235 s of the
subset's 7 minutes on a loaded 2-core machine), but too slowly for CI.
"""

import os

import pytest

from tests.helpers import run_tests_on_backend
from tests.test_jax_backend import SUBSET

# torch.compile's tests (see the module docstring).
LEFT_OUT = "not blocks_train_under_xla and not compiles_under_xla"


@pytest.mark.skipif(os.environ.get("KERAS_BACKEND") == "torch", reason="already on PyTorch")
def test_layers_on_torch_backend():
    pytest.importorskip("torch")
    run_tests_on_backend("torch", SUBSET, "-k", LEFT_OUT, CUDA_VISIBLE_DEVICES="")
