"""Attention kernels: which code computes `softmax(q k^T / sqrt(K)) v`, and why.

`MultiHeadAttention` projects, masks and caches; this module decides which
kernel computes the attention product and runs it. It is the one place in
`zoo/layers` that calls a backend's own attention (DESIGN.md), behind a
backend check. Written here because neither library does the whole job:
`keras.ops.dot_product_attention` takes no sequence lengths, turns every
mask into a bias that cuDNN refuses, and does not say which kernel it used;
`jax.nn.dot_product_attention` takes lengths and `is_causal` but is JAX
only and refuses odd lengths in training.

Kernels (`KERNELS`):

- `"cudnn"`: `jax.nn.dot_product_attention(implementation="cudnn")`, the
  fused flash-attention kernel, on the JAX backend with an NVIDIA GPU and
  float16 / bfloat16 inputs. It is fed structure, never a mask tensor:
  right padding as `key_value_seq_lengths`, a causal mask as `is_causal`.
  Lengths that are not a multiple of `PAD_MULTIPLE` (ViT's 197 tokens)
  are padded with zeros; padded keys are masked by the lengths (or, under
  a causal mask, are later than every real query) and padded query rows
  are dropped.
- `"xla"`: the same code with `implementation="xla"`. It runs wherever JAX
  does, so the tests check the cuDNN feeding (padding, lengths, empty rows)
  on a CPU against the masked path.
- `"keras"`: `keras.ops.dot_product_attention` with the mask as an additive
  bias; the default on JAX and PyTorch whenever cuDNN cannot run.
- `"matmul"`: two batched matmuls with the queries scaled first and a
  float32 softmax; the default on TensorFlow, and the only kernel that
  returns attention weights or applies attention dropout.

`select_kernel` chooses from the static facts of a call (`AttentionCall`)
and says why each other kernel was not taken; `attention_kernel(name)`
forces a choice for the calls traced inside it (a forced kernel that
cannot run the call is a ValueError, never a silent fallback). Each
`MultiHeadAttention` keeps its latest choice in `last_kernel`;
`kernels_used(model)` collects them.

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
    when unknown.
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
    else:
        kernel, reason = "keras", f"keras.ops.dot_product_attention; not cudnn: {rejected['cudnn']}"
    q_len, k_len = call.query_length, call.key_length
    if kernel in ("cudnn", "xla"):
        q_len, k_len = padded_length(q_len), padded_length(k_len)
    rejected.pop(kernel, None)
    return KernelChoice(kernel, reason, rejected, q_len, k_len, forced=forced is not None)


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


# -- the kernels -------------------------------------------------------------
def sequence_length_attention(q, k, v, scale, choice, causal=False, key_lengths=None):
    """`jax.nn.dot_product_attention` fed lengths and `is_causal`, on padded lengths.

    `q (B, T, H, K)`, `k (B, S, H, K)`, `v (B, S, H, K)`; `key_lengths (B,)`:
    key positions from `key_lengths[b]` on are not attended. A row with no
    key (length 0) returns zeros: the kernel sees length 1 and the row is
    zeroed after, so no empty softmax ever runs and no NaN can reach the
    gradients. Returns `(B, T, H, K)`.
    """
    import jax.numpy as jnp
    from jax.nn import dot_product_attention

    batch, q_len, k_len = q.shape[0], q.shape[1], k.shape[1]
    k, v = k.astype(q.dtype), v.astype(q.dtype)
    if choice.query_length != q_len:
        q = jnp.pad(q, ((0, 0), (0, choice.query_length - q_len), (0, 0), (0, 0)))  # (B, Tp, H, K)
    if choice.key_length != k_len:
        pad = ((0, 0), (0, choice.key_length - k_len), (0, 0), (0, 0))
        k, v = jnp.pad(k, pad), jnp.pad(v, pad)  # (B, Sp, H, K)
    lengths = row_ok = None
    if key_lengths is not None:
        lengths = jnp.clip(jnp.asarray(key_lengths).astype("int32"), 0, k_len)  # (B,)
        row_ok = lengths > 0
        lengths = jnp.maximum(lengths, 1)
    elif choice.key_length != k_len and not causal:  # causal: padded keys follow every real query
        lengths = jnp.full((batch,), k_len, "int32")
    out = dot_product_attention(
        q, k, v, scale=scale, is_causal=causal, key_value_seq_lengths=lengths,
        implementation=choice.kernel,
    )  # (B, Tp, H, K)
    out = out[:, :q_len]
    if row_ok is not None:
        out = jnp.where(row_ok[:, None, None, None], out, jnp.zeros((), out.dtype))
    return out


def _large_negative(dtype):
    """A finite stand-in for -inf in `dtype`: float16's max is 65504, not 1e9."""
    return -45000.0 if keras.backend.standardize_dtype(dtype) == "float16" else -1e9


def keras_attention(q, k, v, mask, scale):
    """`keras.ops.dot_product_attention` with `mask (B|1, H|1, T, S)` as a bias.

    The bias keeps the mask's own (smaller) shape; a fully masked row,
    which the kernel would average over all values, is zeroed.
    """
    bias = None
    if mask is not None:
        row_ok = ops.any(mask, axis=-1)[..., None]  # (B|1, H|1, T, 1): False = nothing to attend
        bias = ops.cast(ops.where(mask, 0.0, _large_negative(q.dtype)), q.dtype)  # (B|1, H|1, T, S)
    out = ops.dot_product_attention(q, k, v, bias=bias, scale=scale)  # (B, T, H, V)
    if mask is not None:
        out = out * ops.cast(ops.transpose(row_ok, (0, 2, 1, 3)), out.dtype)
    return out


def matmul_attention(q, k, v, mask, scale, return_scores=False, dropout=None):
    """Two batched matmuls in `(B, H, T, .)` layout; returns `(out (B, T, H, V), scores or None)`.

    TensorFlow has no fused kernel: its `dot_product_attention` is einsums
    plus a pass over the `(B, H, T, S)` logits for the scale and three for a
    boolean mask; this form scales the queries instead and adds the mask as
    a bias (1.2x faster forward + backward for the whole layer on CPU,
    BENCHMARKS.md). Scaling first also keeps float16 logits from
    overflowing. Softmax is float32; `dropout` (a callable) drops weights.
    """
    if mask is not None:
        row_ok = ops.any(mask, axis=-1)[..., None]  # (B|1, H|1, T, 1)
    q = ops.transpose(q * ops.cast(scale, q.dtype), (0, 2, 1, 3))  # (B, H, T, K)
    k = ops.transpose(k, (0, 2, 3, 1))  # (B, H, K, S)
    v = ops.transpose(v, (0, 2, 1, 3))  # (B, H, S, V)
    logits = ops.cast(ops.matmul(q, k), "float32")  # (B, H, T, S)
    if mask is not None:
        logits = logits + ops.where(mask, 0.0, -1e9)
    scores = ops.softmax(logits, axis=-1)  # float32 under any policy
    if mask is not None and return_scores:  # rows with nothing to attend: zeros
        scores = scores * ops.cast(row_ok, scores.dtype)
    dropped = dropout(scores) if dropout is not None else scores
    out = ops.matmul(ops.cast(dropped, v.dtype), v)  # (B, H, T, V)
    if mask is not None and not return_scores:
        out = out * ops.cast(row_ok, out.dtype)
    return ops.transpose(out, (0, 2, 1, 3)), (scores if return_scores else None)  # (B, T, H, V)
