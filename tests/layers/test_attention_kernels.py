"""Attention kernels: the choice on shapes, forcing, and the sequence-length path's numbers.

The numeric tests of the `"xla"` path (the code that feeds cuDNN, with
`implementation="xla"`) need JAX: they run when tests/test_jax_backend.py
re-runs this file on the JAX backend, and are skipped on TensorFlow.
"""

import keras
import numpy as np
import pytest
from keras import ops

from zoo.layers import MultiHeadAttention, attention_kernel, kernels_used
from zoo.layers.attention_kernels import (
    AttentionCall,
    forced_kernel,
    padded_length,
    select_kernel,
)

ON_JAX = keras.backend.backend() == "jax"
needs_jax = pytest.mark.skipif(not ON_JAX, reason="the sequence-length path is jax.nn.dot_product_attention")

# A training call of ViT-B/16 under mixed_bfloat16 on an H100 / H200.
VIT_GPU = AttentionCall(
    backend="jax", platform="gpu", dtype="bfloat16", query_length=197, key_length=197,
    key_dim=64, value_dim=64, gpu_capability=(9, 0), cudnn_version=91000,
)


# -- which kernel, and why not, on shapes -------------------------------------------
def test_vit_lengths_are_padded_for_cudnn():
    choice = select_kernel(VIT_GPU)
    assert choice.kernel == "cudnn" and not choice.forced
    assert (choice.query_length, choice.key_length) == (208, 208)
    assert set(choice.rejected) == set()  # every other kernel could run it too
    # A multiple of 16 is not padded; the class-token-only last block pads its one query.
    assert select_kernel(VIT_GPU.replace(query_length=208, key_length=208)).query_length == 208
    last_block = select_kernel(VIT_GPU.replace(query_length=1))
    assert (last_block.kernel, last_block.query_length, last_block.key_length) == ("cudnn", 16, 208)


@pytest.mark.parametrize("length, padded", [(1, 16), (15, 16), (16, 16), (17, 32), (128, 128), (197, 208)])
def test_padded_length(length, padded):
    assert padded_length(length) == padded


@pytest.mark.parametrize("mask", ["none", "causal", "lengths", "causal+lengths"])
def test_translator_masks_reach_cudnn(mask):
    call = VIT_GPU.replace(query_length=128, key_length=128, mask=mask)
    choice = select_kernel(call)
    assert (choice.kernel, choice.query_length, choice.key_length) == ("cudnn", 128, 128)


@pytest.mark.parametrize(
    "change, kernel, why_not_cudnn",
    [
        (dict(platform="cpu"), "keras", "JAX runs on cpu"),
        (dict(dtype="float32"), "keras", "float16 or bfloat16"),
        (dict(mask="other"), "keras", "general boolean mask"),
        (dict(cache=True), "keras", "cache"),
        (dict(mask="causal", query_length=1), "keras", "as many queries as keys"),
        (dict(key_dim=68, value_dim=68), "keras", "multiple of 8"),
        (dict(key_dim=64, value_dim=32), "matmul", "value_dim == key_dim"),  # keras cannot either
        (dict(gpu_capability=(7, 5)), "keras", "8.0"),
        (dict(gpu_capability=(8, 0), key_dim=160, value_dim=160), "keras", "up to 128"),
        (dict(cudnn_version=None), "keras", "cuDNN was not found"),
        (dict(query_length=None), "keras", "unknown"),
        (dict(return_scores=True), "matmul", "weights"),
        (dict(dropout=True), "matmul", "dropout"),
        (dict(backend="tensorflow"), "matmul", "JAX backend"),
        (dict(backend="torch"), "keras", "JAX backend"),
    ],
)
def test_kernel_and_why_not_cudnn(change, kernel, why_not_cudnn):
    choice = select_kernel(VIT_GPU.replace(**change))
    assert choice.kernel == kernel
    assert why_not_cudnn in choice.rejected["cudnn"]
    if kernel == "keras":
        assert why_not_cudnn in choice.reason  # the reason says why not cuDNN
        assert (choice.query_length, choice.key_length) == (change.get("query_length", 197), 197)


def test_hopper_takes_wider_heads():
    assert select_kernel(VIT_GPU.replace(key_dim=160, value_dim=160)).kernel == "cudnn"


def test_xla_is_only_taken_when_forced():
    cpu = VIT_GPU.replace(platform="cpu", dtype="float32")
    assert select_kernel(cpu).kernel == "keras"
    assert "xla" not in select_kernel(cpu).rejected
    forced = select_kernel(cpu, forced="xla")
    assert (forced.kernel, forced.forced, forced.query_length) == ("xla", True, 208)


@pytest.mark.parametrize(
    "change, forced, message",
    [
        (dict(platform="cpu"), "cudnn", "JAX runs on cpu"),
        (dict(backend="tensorflow"), "xla", "needs the JAX backend"),
        (dict(return_scores=True), "keras", "returns no attention weights"),
        (dict(dropout=True), "cudnn", "no attention dropout"),
        (dict(mask="other"), "xla", "general boolean mask"),
    ],
)
def test_unsupported_forced_kernel_is_an_error(change, forced, message):
    with pytest.raises(ValueError, match=message) as error:
        select_kernel(VIT_GPU.replace(**change), forced=forced)
    assert "Kernels that can" in str(error.value) and "matmul" in str(error.value)


def test_matmul_can_always_be_forced():
    call = VIT_GPU.replace(return_scores=True, dropout=True, mask="other", backend="tensorflow")
    assert select_kernel(call, forced="matmul").kernel == "matmul"


def test_attention_kernel_context_sets_and_restores():
    assert forced_kernel() is None
    with attention_kernel("matmul"):
        assert forced_kernel() == "matmul"
        with attention_kernel("auto"):
            assert forced_kernel() is None
        assert forced_kernel() == "matmul"
    assert forced_kernel() is None
    with pytest.raises(ValueError, match="Received: 'flash'"):
        with attention_kernel("flash"):
            pass
    with pytest.raises(ValueError, match="Unknown attention kernel"):
        select_kernel(VIT_GPU, forced="flash")


# -- the layer reports and obeys the choice (this machine: the CPU fallback) ---------
def _x(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


def test_layer_reports_the_cpu_fallback_and_forcing():
    mha = MultiHeadAttention(num_heads=2, key_dim=4)
    x = _x((2, 5, 8))
    assert mha.last_kernel is None
    mha(x, x)
    expected = "matmul" if keras.backend.backend() == "tensorflow" else "keras"
    assert mha.last_kernel.kernel == expected
    assert "cudnn" in mha.last_kernel.rejected  # on a CPU, never cuDNN
    mha(x, x, return_attention_scores=True)
    assert mha.last_kernel.kernel == "matmul"
    with attention_kernel("matmul"):
        mha(x, x)
    assert mha.last_kernel.kernel == "matmul" and mha.last_kernel.forced
    with pytest.raises(ValueError, match="cannot run this call"):
        with attention_kernel("cudnn"):
            mha(x, x)
    with pytest.raises(ValueError, match="returns no attention weights"):
        with attention_kernel("keras"):
            mha(x, x, return_attention_scores=True)


def test_kernels_used_lists_every_attention_layer():
    from zoo.models import TransformerTranslator

    model = TransformerTranslator(
        source_vocab_size=20, target_vocab_size=20, num_encoder_layers=1, num_decoder_layers=1,
        d_model=8, num_heads=2, d_ff=16, max_length=8,
    )
    ids = np.array([[5, 6, 7, 0], [8, 9, 0, 0]], "int32")
    model({"source_ids": ids, "target_ids": ids})
    used = kernels_used(model)
    assert len(used) == 3  # encoder self, decoder causal self, cross
    kinds = {path.split("/")[-2]: choice for path, choice in used.items()}
    assert set(kinds) == {"self_attention", "causal_self_attention", "cross_attention"}
    expected = "matmul" if keras.backend.backend() == "tensorflow" else "keras"
    assert {choice.kernel for choice in used.values()} == {expected}


@pytest.mark.parametrize("bad", [np.array([[3, 2]]), np.array([3.0, 2.0]), np.array([3, 2, 1])])
def test_key_lengths_must_be_batch_integers(bad):
    mha = MultiHeadAttention(num_heads=2, key_dim=4)
    x = _x((2, 5, 8))
    with pytest.raises(ValueError, match="key_lengths must be an integer tensor of shape"):
        mha(x, x, key_lengths=bad)


def test_key_lengths_equal_the_padding_mask():
    mha = MultiHeadAttention(num_heads=2, key_dim=4)
    q, kv = _x((3, 4, 8)), _x((3, 6, 8), 1)
    lengths = np.array([6, 2, 0], "int32")
    mask = np.arange(6)[None, :] < lengths[:, None]
    by_lengths = ops.convert_to_numpy(mha(q, kv, key_lengths=lengths))
    np.testing.assert_allclose(by_lengths, ops.convert_to_numpy(mha(q, kv, attention_mask=mask)), atol=1e-6)
    np.testing.assert_array_equal(by_lengths[2], 0.0)  # nothing to attend: zeros
    # ANDed with an attention mask.
    extra = np.ones((3, 4, 6), bool)
    extra[0, :, 0] = False
    both = mha(q, kv, key_lengths=lengths, attention_mask=extra)
    np.testing.assert_allclose(
        ops.convert_to_numpy(both), ops.convert_to_numpy(mha(q, kv, attention_mask=extra & mask[:, None])), atol=1e-6
    )


# -- the sequence-length path equals the masked path (JAX) -----------------------------
# (query length, key length, causal, key lengths): padding, causal, cross and ViT
# shapes; a key length of 0 is a query row with nothing to attend.
CASES = {
    "padding": (7, 7, False, [7, 3, 0]),
    "causal": (7, 7, True, None),
    "causal_padding": (7, 7, True, [7, 4, 0]),
    "cross": (5, 9, False, [9, 2, 0]),
    "vit": (17, 17, False, None),
    "vit_last_block": (1, 17, False, None),
    "aligned": (16, 32, False, [32, 31, 1]),
}


def _grads(mha, kernel, q, kv, causal, lengths):
    """Output and gradients (weights, query, key/value input) of sum(out * c)."""
    import jax

    lengths = None if lengths is None else np.asarray(lengths, "int32")
    c = _x((q.shape[0], q.shape[1], q.shape[2]), 5)
    weights = [w.value for w in mha.trainable_weights]

    def loss(weights, q, kv):
        out, _ = mha.stateless_call(weights, [], q, kv, use_causal_mask=causal, key_lengths=lengths)
        return (out * c).sum(), out

    with attention_kernel(kernel):
        (_, out), grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True))(weights, q, kv)
        choice = mha.last_kernel
    assert choice.kernel == kernel
    return np.asarray(out), [np.asarray(g) for g in jax.tree_util.tree_leaves(grads)]


@needs_jax
@pytest.mark.parametrize("case", sorted(CASES))
def test_sequence_length_path_equals_masked_path(case):
    t, s, causal, lengths = CASES[case]
    q, kv = _x((3, t, 16)), _x((3, s, 16), 1)
    if t == s:
        kv = q  # self-attention
    mha = MultiHeadAttention(num_heads=2, key_dim=8)
    mha.build(q.shape, kv.shape)
    out, grads = _grads(mha, "xla", q, kv, causal, lengths)
    assert (mha.last_kernel.query_length, mha.last_kernel.key_length) == (padded_length(t), padded_length(s))
    ref_out, ref_grads = _grads(mha, "matmul", q, kv, causal, lengths)  # the masked path
    np.testing.assert_allclose(out, ref_out, atol=1e-5, rtol=1e-5)
    for g, ref in zip(grads, ref_grads):
        assert np.all(np.isfinite(g))
        np.testing.assert_allclose(g, ref, atol=1e-5, rtol=1e-5)
    if lengths is not None and 0 in lengths:
        np.testing.assert_array_equal(out[list(lengths).index(0)], 0.0)


@needs_jax
def test_sequence_length_path_in_bfloat16():
    """What cuDNN computes on: bfloat16 inputs, float32 softmax inside."""
    q = _x((2, 9, 16))
    lengths = np.array([9, 4], "int32")
    mha = MultiHeadAttention(num_heads=2, key_dim=8, dtype="mixed_bfloat16")
    outs = {}
    for kernel in ("xla", "matmul"):
        with attention_kernel(kernel):
            outs[kernel] = np.asarray(ops.cast(mha(q, q, use_causal_mask=True, key_lengths=lengths), "float32"))
    np.testing.assert_allclose(outs["xla"], outs["matmul"], atol=3e-2)


def test_blocks_take_lengths_as_padding():
    from zoo.layers import DecoderBlock, EncoderBlock

    x, context = _x((3, 5, 8)), _x((3, 6, 8), 1)
    lengths = np.array([5, 2, 0], "int32")
    mask = np.arange(5)[None, :] < lengths[:, None]
    encoder = EncoderBlock(d_model=8, num_heads=2, d_ff=16)
    for num_queries in (None, 1):
        np.testing.assert_allclose(
            ops.convert_to_numpy(encoder(x, lengths=lengths, num_queries=num_queries)),
            ops.convert_to_numpy(encoder(x, attention_mask=mask, num_queries=num_queries)), atol=1e-6,
        )
    decoder = DecoderBlock(d_model=8, num_heads=2, d_ff=16)
    context_lengths = np.array([6, 1, 3], "int32")
    context_mask = np.arange(6)[None, :] < context_lengths[:, None]
    np.testing.assert_allclose(
        ops.convert_to_numpy(decoder(x, context, context_lengths=context_lengths)),
        ops.convert_to_numpy(decoder(x, context, context_mask=context_mask)), atol=1e-6,
    )


def test_a_compile_time_refusal_falls_back_or_is_an_error():
    refused = VIT_GPU.replace(cudnn_error="RuntimeError: no engine")
    choice = select_kernel(refused)
    assert choice.kernel == "keras" and "when compiling it: RuntimeError: no engine" in choice.rejected["cudnn"]
    with pytest.raises(ValueError, match="no engine"):
        select_kernel(refused, forced="cudnn")


@needs_jax
def test_cudnn_compile_check_reports_a_refusal():
    """The check itself: on this CPU cuDNN cannot compile, and the error comes back as text."""
    from zoo.layers.attention_kernels import _cudnn_compile_error

    error = _cudnn_compile_error(16, 16, 2, 8, "bfloat16", False, True)
    assert error and "cuDNN" in error
