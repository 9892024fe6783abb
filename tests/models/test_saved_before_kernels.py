"""Models saved before the attention-kernel change load and give the same outputs.

The `.keras` files and outputs in tests/fixtures were written by
tests/fixtures/make_saved_before_kernels.py with main's code before the
change (TensorFlow, float32). Re-run on JAX by tests/test_jax_backend.py,
where the sequence-length path that feeds cuDNN (`"xla"`) is checked too.
"""

from pathlib import Path

import keras
import numpy as np
import pytest

from tests.fixtures.make_saved_before_kernels import inputs
from zoo.layers import attention_kernel, kernels_used

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
KERNELS = ["auto", "matmul"] + (["xla"] if keras.backend.backend() == "jax" else [])


@pytest.fixture(scope="module")
def saved():
    import zoo.models  # noqa: F401  (registers the classes)

    expected = np.load(FIXTURES / "outputs_before_kernels.npz")
    vit = keras.saving.load_model(FIXTURES / "vit_before_kernels.keras")
    translator = keras.saving.load_model(FIXTURES / "translator_before_kernels.keras")
    return vit, translator, expected


def _run(model, x):
    """The model's output; compiled on JAX (op by op it takes a minute there)."""
    if keras.backend.backend() != "jax":
        return keras.ops.convert_to_numpy(model(x))
    import jax

    weights = [w.value for w in model.trainable_variables], [w.value for w in model.non_trainable_variables]
    out, _ = jax.jit(lambda w, x: model.stateless_call(*w, x))(weights, x)
    return np.asarray(out)


@pytest.mark.parametrize("kernel", KERNELS)
def test_saved_models_give_the_same_outputs(saved, kernel):
    vit, translator, expected = saved
    images, source, target = inputs()
    with attention_kernel(kernel):
        vit_out = _run(vit, images)
        translator_out = _run(translator, {"source_ids": source, "target_ids": target})
    np.testing.assert_allclose(vit_out, expected["vit"], atol=1e-5)
    np.testing.assert_allclose(translator_out, expected["translator"], atol=1e-5)
    used = {choice.kernel for choice in {**kernels_used(vit), **kernels_used(translator)}.values()}
    assert used == ({kernel} if kernel != "auto" else used)
    if kernel == "xla":  # 17 ViT tokens were padded to 32
        assert {c.key_length for c in kernels_used(vit).values()} == {32}
