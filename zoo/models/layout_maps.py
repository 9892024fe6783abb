"""Model-parallel layouts of the zoo models' variables (`keras.distribution.LayoutMap`).

Megatron-style tensor parallelism (Shoeybi et al., 2019), written as the
per-variable layouts `keras.distribution.ModelParallel` takes: in each
block the first matmul is split by its output columns and the second by
its input rows, so each device computes whole heads / whole slices of the
feed-forward width, and GSPMD inserts one reduction after each pair:

- attention: the query, key and value kernels `(D, H, K)` and biases
  `(H, K)` split their heads `H` over the `model` axis (column-parallel);
  the output kernel `(H, K, D)` splits its heads (row-parallel);
- feed-forward: `intermediate` `(D, F)` and its bias split `F`
  (column-parallel), `output` `(F, D)` splits `F` (row-parallel);
- embeddings: token and learned position tables `(V, D)` / `(L, D)`, the
  ViT patch projection `(P, P, C, D)` and its bias split the model width
  `D`; the translator's untied output projection `(D, V)` and the ViT head
  `(D, C)` split their input width `D` (row-parallel), its `pre_logits`
  `(D, R)` its output `R`. Tables are split along `D`, not their rows,
  because vocabulary and class counts rarely divide a device count, while
  `d_model` does whenever the heads do.

Everything else (layer norms, the class token, output biases) is
replicated. The batch goes over the `data` axis: `ModelParallel(layout_map,
batch_dim_name=data_dim)` (`zoo.distribution.model_parallel` builds it).
The mesh's `model` axis must divide `num_heads`, `d_model`, `d_ff` and
`representation_size` (`check_model_parallel`).

Written here because keras-hub has layout maps only for its own backbones,
whose variable paths differ from zoo's.

References:
    Shoeybi et al., "Megatron-LM: Training Multi-Billion Parameter Language
    Models Using Model Parallelism", 2019.
"""

import keras

# Variable paths end like these (`variable.path`, matched by `re.fullmatch`
# after the model's own name). `M` stands for the model axis.
_ATTENTION = r".*/(self_attention|causal_self_attention|cross_attention)/attention"
BLOCK_RULES = (
    (_ATTENTION + r"/(query|key|value)/kernel", (None, "M", None)),  # (D, H, K): heads
    (_ATTENTION + r"/(query|key|value)/bias", ("M", None)),  # (H, K)
    (_ATTENTION + r"/attention_output/kernel", ("M", None, None)),  # (H, K, D): heads
    (r".*/feed_forward/intermediate/kernel", (None, "M")),  # (D, F)
    (r".*/feed_forward/intermediate/bias", ("M",)),  # (F,)
    (r".*/feed_forward/output/kernel", ("M", None)),  # (F, D)
)
TRANSLATOR_RULES = BLOCK_RULES + (
    (r".*/(source|target)_embedding/token_embedding/embeddings", (None, "M")),  # (V, D)
    (r".*/(source|target)_embedding/position_embedding/embeddings", (None, "M")),  # (L, D), learned positions
    (r".*/output_projection/kernel", ("M", None)),  # (D, V)
)
VISION_TRANSFORMER_RULES = BLOCK_RULES + (
    (r".*/patch_embedding/projection/kernel", (None, None, None, "M")),  # (P, P, C, D)
    (r".*/patch_embedding/projection/bias", ("M",)),  # (D,)
    (r".*/position_embedding/embeddings", (None, "M")),  # (N, D)
    (r".*/pre_logits/kernel", (None, "M")),  # (D, R)
    (r".*/pre_logits/bias", ("M",)),  # (R,)
    (r".*/head/kernel", ("M", None)),  # (D or R, C)
)
# Config entries whose sizes the model axis splits.
SHARDED_SIZES = ("num_heads", "d_model", "d_ff", "representation_size")


def build_layout_map(rules, device_mesh, model_dim="model", data_dim="data"):
    """A `keras.distribution.LayoutMap` of `rules` on `device_mesh`, `"M"` read as `model_dim`.

    Args:
        rules: sequence of `(path regex, axes)` pairs.
        device_mesh: `keras.distribution.DeviceMesh` with both axes.
        model_dim: str. The mesh axis weights are split over. Defaults to `"model"`.
        data_dim: str. The mesh axis the batch is split over (checked here,
            used by `ModelParallel(batch_dim_name=...)`). Defaults to `"data"`.

    Raises:
        ValueError: an axis is not in the mesh, or both are the same.
    """
    if not isinstance(device_mesh, keras.distribution.DeviceMesh):
        raise TypeError(f"device_mesh must be a keras.distribution.DeviceMesh. Received: {type(device_mesh).__name__}")
    names = tuple(device_mesh.axis_names)
    for role, name in (("model_dim", model_dim), ("data_dim", data_dim)):
        if name not in names:
            raise ValueError(f"{role}={name!r} is not an axis of the device mesh; its axes are {names}.")
    if model_dim == data_dim:
        raise ValueError(f"model_dim and data_dim must be different mesh axes. Received: both {model_dim!r}")
    layout_map = keras.distribution.LayoutMap(device_mesh)
    for pattern, axes in rules:
        layout_map[pattern] = tuple(model_dim if axis == "M" else axis for axis in axes)
    return layout_map


def check_model_parallel(config, model_axis_size):
    """Raises a ValueError naming each `SHARDED_SIZES` entry of `config` that the model axis does not divide.

    Args:
        config: dict. A model's config (`get_config()` or preset overrides).
        model_axis_size: int. Devices along the mesh's model axis.
    """
    bad = {
        name: config[name]
        for name in SHARDED_SIZES
        if isinstance(config.get(name), int) and config[name] % model_axis_size
    }
    if bad:
        received = ", ".join(f"{name}={value}" for name, value in bad.items())
        raise ValueError(
            f"Model parallelism over {model_axis_size} devices splits num_heads, d_model, d_ff and "
            f"representation_size {model_axis_size} ways; each must be a multiple of {model_axis_size}. "
            f"Received: {received}"
        )
