import doctest

import keras
import numpy as np
import pytest
from keras import ops

import zoo.layers.class_token
from tests.helpers import run_layer_test
from zoo.layers import ClassToken

B, P, D = 3, 5, 8


def _np(x):
    return np.asarray(ops.convert_to_numpy(x))


def _inputs():
    return np.random.default_rng(0).normal(size=(B, P, D)).astype("float32")


def test_generic_layer_checks(tmp_path):
    run_layer_test(
        ClassToken,
        dict(initializer="random_normal"),
        dict(inputs=_inputs()),
        expected_output_shape=(B, P + 1, D),
        tmp_path=tmp_path,
    )


def test_default_zeros_initializer_trains():
    run_layer_test(ClassToken, {}, dict(inputs=_inputs()), expected_output_shape=(B, P + 1, D))


def test_token_first_inputs_unchanged():
    inputs = _inputs()
    layer = ClassToken()
    layer.build(inputs.shape)
    assert tuple(layer.class_token.shape) == (1, 1, D)
    token = np.random.default_rng(1).normal(size=(1, 1, D)).astype("float32")
    layer.class_token.assign(token)
    out = _np(layer(inputs))
    assert out.shape == (B, P + 1, D)
    for b in range(B):
        np.testing.assert_array_equal(out[b, 0], token[0, 0])
    np.testing.assert_array_equal(out[:, 1:], inputs)


def test_mixed_precision_output_in_compute_dtype():
    layer = ClassToken(dtype="mixed_bfloat16")
    out = layer(_inputs())
    assert keras.backend.standardize_dtype(out.dtype) == "bfloat16"
    assert keras.backend.standardize_dtype(layer.class_token.dtype) == "float32"


def test_keras_mask_gets_true_for_token():
    ids = np.array([[3, 4, 0], [5, 0, 0]])
    x = keras.layers.Embedding(10, D, mask_zero=True)(ids)
    mask = ClassToken().compute_mask(x, ops.not_equal(ids, 0))
    np.testing.assert_array_equal(_np(mask), [[1, 1, 1, 0], [1, 1, 0, 0]])
    assert ClassToken().compute_mask(x, None) is None


def test_bad_input_rank_is_named():
    with pytest.raises(ValueError, match=r"\(B, P, D\).*\(2, 8\)"):
        ClassToken()(np.zeros((2, 8), "float32"))


def test_docstring_example_runs():
    results = doctest.testmod(zoo.layers.class_token)
    assert results.attempted > 0 and results.failed == 0
