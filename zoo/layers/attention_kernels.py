"""Attention kernels: which code computes `softmax(q k^T / sqrt(K)) v`, and why.

`MultiHeadAttention` projects, masks and caches; this module decides which
kernel computes the attention product, and `attention_compute` runs it
(the one place in `zoo/layers` that calls a backend's own attention,
behind this module's backend check: DESIGN.md). Written here because
neither library does the whole job:
`keras.ops.dot_product_attention` takes no sequence lengths, turns every
mask into a bias that cuDNN refuses, and does not say which kernel it used;
`jax.nn.dot_product_attention` takes lengths and `is_causal` but is JAX
only and refuses odd lengths in training.

Kernels (`KERNELS`):

- `"cudnn"`: `jax.nn.dot_product_attention(implementation="cudnn")` (fused
  flash attention), JAX on an NVIDIA GPU, float16 / bfloat16. It is fed
  structure, never a mask tensor: right padding as `key_value_seq_lengths`,
  a causal mask as `is_causal`; lengths that are not a multiple of
  `PAD_MULTIPLE` (ViT's 197 tokens) are zero-padded, padded keys masked
  and padded query rows dropped (`attention_compute.sequence_length_attention`).
- `"xla"`: the same code with `implementation="xla"`: runs wherever JAX
  does, so the tests check the cuDNN feeding on a CPU.
- `"keras"`: `keras.ops.dot_product_attention`, the mask as a bias; the
  default on JAX and PyTorch when cuDNN cannot run.
- `"matmul"`: two batched matmuls, float32 softmax; the default on
  TensorFlow, and the only kernel that returns or drops out weights.

`select_kernel` chooses from a call's static facts (`AttentionCall`) and
says why each other kernel could not run it; `attention_kernel(name)`
forces a choice (one that cannot run a call is a ValueError, never a
silent fallback); `MultiHeadAttention.last_kernel` and
`kernels_used(model)` say what ran.

Example:
>>> call = AttentionCall(backend="jax", platform="gpu", dtype="bfloat16",
...     query_length=197, key_length=197, key_dim=64, value_dim=64,
...     gpu_capability=(9, 0), cudnn_version=91000)
>>> choice = select_kernel(call)
>>> choice.kernel, choice.query_length, choice.key_length
('cudnn', 208, 208)
>>> select_kernel(call.replace(platform="cpu")).rejected["cudnn"]
'JAX runs on cpu; cuDNN attention needs an NVIDIA GPU'
"""

import contextlib
import contextvars
import dataclasses
import functools
from typing import NamedTuple

import keras
from keras import ops

KERNELS = ("cudnn", "xla", "keras", "matmul")
# cuDNN refuses odd lengths in training (jax checks T % 2 and S % 2 whenever
# the backward pass is built). 208 = 13 x 16 is the padded ViT length that
# was measured on an H200 (BENCHMARKS.md); bench/attention_probe.py sweeps
# 197, 198, 200 and 208 so this can be relaxed once 198 is measured.
PAD_MULTIPLE = 16
MASK_KINDS = ("none", "causal", "lengths", "causal+lengths", "other")

_FORCED = contextvars.ContextVar("zoo_attention_kernel", default=None)


@contextlib.contextmanager
def attention_kernel(name):
    """Forces the attention kernel of every `MultiHeadAttention` call traced inside.

    `name` is one of `KERNELS`, or `"auto"` (the default choice). The
    choice is made when a call is traced: Keras compiles a model's train /
    predict function once, so enter this before the first `fit` /
    `predict` (or recompile). A forced kernel that cannot run a call raises
    a ValueError naming the reason.

    Example:
    >>> from zoo.layers import MultiHeadAttention
    >>> mha = MultiHeadAttention(num_heads=2, key_dim=4)
    >>> x = keras.ops.ones((1, 3, 8))
    >>> with attention_kernel("matmul"):
    ...     _ = mha(x, x)
    >>> mha.last_kernel.kernel
    'matmul'
    """
    if name != "auto" and name not in KERNELS:
        raise ValueError(f"attention_kernel must be 'auto' or one of {KERNELS}. Received: {name!r}")
    token = _FORCED.set(None if name == "auto" else name)
    try:
        yield
    finally:
        _FORCED.reset(token)


def forced_kernel():
    """The kernel forced by the innermost `attention_kernel(...)`, or None."""
    return _FORCED.get()


@dataclasses.dataclass(frozen=True)
class AttentionCall:
    """The static facts of one attention call that decide its kernel.

    `mask` is one of `MASK_KINDS`: `"lengths"` means right padding given as
    key lengths; `"other"` is any boolean mask (user masks, Keras implicit
    masks, a decoding cache's positions). `platform` is JAX's
    (`"cpu"`, `"gpu"`, ...); `gpu_capability` and `cudnn_version` are None
    when unknown; `cudnn_error` is set when cuDNN passed the checks above
    but refused the shape when it was compiled (`choose_kernel`).
    """

    backend: str
    platform: str
    dtype: str
    query_length: int | None
    key_length: int | None
    key_dim: int
    value_dim: int
    mask: str = "none"
    cache: bool = False
    return_scores: bool = False
    dropout: bool = False
    gpu_capability: tuple | None = None
    cudnn_version: int | None = None
    cudnn_error: str | None = None  # cuDNN refused this shape when compiling it

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True)
class KernelChoice:
    """The kernel of a call, why, and why each kernel not taken could not run.

    `query_length` / `key_length` are the lengths the kernel computes on
    (padded for `"cudnn"` / `"xla"`, else the call's). `rejected` maps a
    kernel that cannot run this call to the reason; `forced` says whether
    the kernel was forced by `attention_kernel`.
    """

    kernel: str
    reason: str
    rejected: dict
    query_length: int | None
    key_length: int | None
    forced: bool = False

    def __str__(self):
        padded = ""
        if self.kernel in ("cudnn", "xla"):
            padded = f", computed on {self.query_length} queries x {self.key_length} keys"
        return f"{self.kernel} ({self.reason}{padded})"


def padded_length(length):
    """The smallest multiple of `PAD_MULTIPLE` that holds `length`."""
    return -(-length // PAD_MULTIPLE) * PAD_MULTIPLE


def _why_not_sequence_lengths(call):
    """Why the JAX sequence-length path cannot run `call`, or None."""
    if call.backend != "jax":
        return f"needs the JAX backend (jax.nn.dot_product_attention); the backend is {call.backend}"
    if call.return_scores:
        return "returns no attention weights"
    if call.dropout:
        return "has no attention dropout"
    if call.cache:
        return "a key/value cache (decoding) keeps the masked path"
    if call.mask == "other":
        return "the mask is a general boolean mask, not key lengths or causal"
    if call.query_length is None or call.key_length is None:
        return "sequence lengths are unknown when the call is traced"
    if "causal" in call.mask and call.query_length != call.key_length:
        return f"a causal mask needs as many queries as keys; got {call.query_length} and {call.key_length}"
    if call.key_dim != call.value_dim:
        return f"needs value_dim == key_dim; got {call.value_dim} and {call.key_dim}"
    return None


def _why_not(kernel, call):
    if kernel == "matmul":
        return None
    if kernel == "keras":
        if call.return_scores:
            return "returns no attention weights"
        if call.dropout:
            return "has no attention dropout"
        if call.key_dim != call.value_dim:
            return f"needs values as wide as the keys; got value_dim {call.value_dim} and key_dim {call.key_dim}"
        return None
    reason = _why_not_sequence_lengths(call)
    if reason or kernel == "xla":
        return reason
    if call.platform != "gpu":
        return f"JAX runs on {call.platform}; cuDNN attention needs an NVIDIA GPU"
    if call.cudnn_version is None:
        return "cuDNN was not found by JAX"
    if call.gpu_capability is not None and call.gpu_capability < (8, 0):
        return f"needs compute capability 8.0 (Ampere) or newer; got {call.gpu_capability}"
    if call.dtype not in ("float16", "bfloat16"):
        return f"inputs are {call.dtype}; cuDNN attention needs float16 or bfloat16 (policy mixed_bfloat16)"
    widest = 256 if call.gpu_capability is None or call.gpu_capability >= (9, 0) else 128
    if call.key_dim % 8 or call.key_dim > widest:
        return f"head width must be a multiple of 8 up to {widest}; got {call.key_dim}"
    if call.cudnn_error:
        return f"cuDNN refused this shape when compiling it: {call.cudnn_error}"
    return None


def select_kernel(call, forced=None):
    """The `KernelChoice` for `call`; `forced` names a kernel that must run it.

    Without `forced`: `"matmul"` on TensorFlow or when weights or attention
    dropout are asked for; `"cudnn"` where it can run; else `"keras"`.
    """
    rejected = {k: r for k in KERNELS if (r := _why_not(k, call)) is not None}
    if forced is not None:
        if forced not in KERNELS:
            raise ValueError(f"Unknown attention kernel {forced!r}; expected one of {KERNELS}.")
        if forced in rejected:
            runnable = [k for k in KERNELS if k not in rejected]
            raise ValueError(
                f"attention_kernel({forced!r}) cannot run this call: {rejected[forced]}. "
                f"Kernels that can: {runnable}. Call: {call}"
            )
        kernel, reason = forced, "forced with attention_kernel()"
    elif call.backend == "tensorflow":
        kernel, reason = "matmul", "TensorFlow has no fused attention kernel"
    elif call.return_scores or call.dropout:
        kernel, reason = "matmul", "attention weights are returned or dropped out"
    elif "cudnn" not in rejected:
        kernel, reason = "cudnn", "cuDNN fused attention"
    elif "keras" not in rejected:
        kernel, reason = "keras", f"keras.ops.dot_product_attention; not cudnn: {rejected['cudnn']}"
    else:
        kernel, reason = "matmul", f"not cudnn: {rejected['cudnn']}; not keras: {rejected['keras']}"
    q_len, k_len = call.query_length, call.key_length
    if kernel in ("cudnn", "xla"):
        q_len, k_len = padded_length(q_len), padded_length(k_len)
    rejected.pop(kernel, None)
    return KernelChoice(kernel, reason, rejected, q_len, k_len, forced=forced is not None)


def choose_kernel(call, heads):
    """`select_kernel` with the kernel forced by `attention_kernel`, after making
    sure cuDNN compiles (forward and backward) a call it would get.

    jax checks only part of what cuDNN accepts before compiling, and a
    refusal at compile time would fail the whole training step. So the
    first call of each shape compiles a one-example cuDNN attention of that
    shape (about a second on a GPU, cached); on a refusal `"auto"` falls
    back with the reason, and a forced `"cudnn"` is a ValueError.
    """
    forced = forced_kernel()
    choice = select_kernel(call, forced)
    if choice.kernel != "cudnn":
        return choice
    lengths = "lengths" in call.mask or (choice.key_length != call.key_length and "causal" not in call.mask)
    error = _cudnn_compile_error(
        choice.query_length, choice.key_length, heads, call.key_dim, call.dtype, "causal" in call.mask, lengths
    )
    return choice if error is None else select_kernel(call.replace(cudnn_error=error), forced)


@functools.lru_cache(maxsize=None)
def _cudnn_compile_error(q_len, k_len, heads, key_dim, dtype, causal, lengths):
    """None when cuDNN compiles forward + backward attention of this shape, else the error."""
    import jax
    import jax.numpy as jnp

    q = jax.ShapeDtypeStruct((1, q_len, heads, key_dim), dtype)
    kv = jax.ShapeDtypeStruct((1, k_len, heads, key_dim), dtype)
    seq = jax.ShapeDtypeStruct((1,), jnp.int32) if lengths else None

    def loss(q, k, v, seq):
        out = jax.nn.dot_product_attention(
            q, k, v, is_causal=causal, key_value_seq_lengths=seq, implementation="cudnn"
        )
        return out.astype(jnp.float32).sum()

    try:
        jax.jit(jax.grad(loss, argnums=(0, 1, 2))).lower(q, kv, kv, seq).compile()
    except Exception as error:  # any refusal: the caller falls back or reports it
        return f"{type(error).__name__}: {' '.join(str(error).split())[:300]}"
    return None


class MaskParts(NamedTuple):
    """The masking of one `MultiHeadAttention` call, kept apart so fused kernels get
    structure (lengths, a causal flag) instead of a mask tensor."""

    attention_mask: object  # user mask of rank 2, 3 or 4, or None
    implicit: tuple  # Keras' (query_mask, value_mask, key_mask)
    use_causal_mask: bool
    cache_index: object  # None, or the position of the first query (growing cache)
    key_lengths: object  # (B,) right padding of the keys, or None

    def kind(self):
        """One of `attention_kernels.MASK_KINDS`."""
        query_mask, value_mask, key_mask = self.implicit
        # Implicit key/value masks do not apply to a cache (see _combined_mask).
        key_masks = self.cache_index is None and (value_mask is not None or key_mask is not None)
        if self.attention_mask is not None or query_mask is not None or key_masks or self.cache_index is not None:
            return "other"
        kinds = [name for name, on in (("causal", self.use_causal_mask), ("lengths", self.key_lengths is not None))
                 if on]
        return "+".join(kinds) or "none"


def check_key_lengths(key_lengths, batch):
    """`key_lengths` as a tensor; a ValueError unless it is `(B,)` integers."""
    key_lengths = ops.convert_to_tensor(key_lengths)
    dtype = keras.backend.standardize_dtype(key_lengths.dtype)
    shape = tuple(key_lengths.shape)
    if len(shape) != 1 or "int" not in dtype or (None not in (shape[0], batch) and shape[0] != batch):
        raise ValueError(
            f"key_lengths must be an integer tensor of shape (batch,) = ({batch},). "
            f"Received: shape {shape}, dtype {dtype}"
        )
    return key_lengths


@functools.lru_cache(maxsize=None)
def _jax_device_facts():
    """(platform, compute capability, cuDNN version) of JAX's default device."""
    import jax

    platform = jax.default_backend()
    capability = cudnn = None
    if platform == "gpu":
        try:
            capability = tuple(int(x) for x in jax.devices()[0].compute_capability.split("."))
        except (AttributeError, ValueError):
            pass
        try:  # what jax itself checks before it builds a cuDNN call (Keras does the same)
            from jax._src.cudnn.fused_attention_stablehlo import check_cudnn_version

            cudnn = check_cudnn_version()
        except Exception:  # no cuDNN, or a jax without this check
            pass
    return platform, capability, cudnn


def describe_call(q, k, v, mask, cache=False, return_scores=False, dropout=False):
    """The `AttentionCall` of `q (B, T, H, K)`, `k (B, S, H, K)`, `v (B, S, H, V)`."""
    backend = keras.backend.backend()
    platform, capability, cudnn = _jax_device_facts() if backend == "jax" else (None, None, None)
    return AttentionCall(
        backend=backend, platform=platform, dtype=keras.backend.standardize_dtype(q.dtype),
        query_length=q.shape[1], key_length=k.shape[1], key_dim=q.shape[-1], value_dim=v.shape[-1],
        mask=mask, cache=cache, return_scores=return_scores, dropout=dropout,
        gpu_capability=capability, cudnn_version=cudnn,
    )


def kernels_used(layer):
    """`{path: KernelChoice}` of every attention layer in `layer` that has run."""
    return {
        sub.path: sub.last_kernel
        for sub in layer._flatten_layers(include_self=True)
        if getattr(sub, "last_kernel", None) is not None
    }
