import numpy as np
import pytest
from keras import ops
from scipy.special import erf

from tests.helpers import run_layer_test
from zoo.layers import FeedForward

B, T, D, F = 2, 5, 8, 32


def _np(x):
    return np.asarray(ops.convert_to_numpy(x))


def _x():
    return np.random.default_rng(0).normal(size=(B, T, D)).astype("float32")


@pytest.mark.parametrize("norm_first", [False, True])
def test_generic(tmp_path, norm_first):
    run_layer_test(
        FeedForward, dict(d_model=D, d_ff=F, activation="gelu", dropout=0.1, norm_first=norm_first),
        dict(x=_x()), expected_output_shape=(B, T, D), tmp_path=tmp_path,
    )


ACTIVATIONS = {
    "relu": lambda h: np.maximum(h, 0),
    "gelu": lambda h: 0.5 * h * (1 + erf(h / np.sqrt(2))),
    "gelu_approximate": lambda h: 0.5 * h * (1 + np.tanh(np.sqrt(2 / np.pi) * (h + 0.044715 * h**3))),
    "swish": lambda h: h / (1 + np.exp(-h)),
}


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("norm_first", [False, True])
def test_matches_numpy(activation, norm_first):
    x = _x()
    ffn = FeedForward(D, F, activation=activation, norm_first=norm_first, layer_norm_epsilon=1e-6)
    out = _np(ffn(x))
    w1, b1 = _np(ffn.intermediate_dense.kernel), _np(ffn.intermediate_dense.bias)
    w2, b2 = _np(ffn.output_dense.kernel), _np(ffn.output_dense.bias)

    def norm(v):
        return (v - v.mean(-1, keepdims=True)) / np.sqrt(v.var(-1, keepdims=True) + 1e-6)

    branch = lambda v: ACTIVATIONS[activation](v @ w1 + b1) @ w2 + b2  # noqa: E731
    expected = x + branch(norm(x)) if norm_first else norm(x + branch(x))
    np.testing.assert_allclose(out, expected, atol=2e-5)


def test_bad_arguments():
    with pytest.raises(ValueError, match="activation must be one of .* Received: activation='tanh'"):
        FeedForward(D, F, activation="tanh")
    with pytest.raises(ValueError, match="d_ff must be a positive int. Received: d_ff=0"):
        FeedForward(D, 0)
    with pytest.raises(ValueError, match=r"d_model=8.*Received: input shape \(2, 5, 6\)"):
        FeedForward(D, F)(np.ones((2, 5, 6), "float32"))
