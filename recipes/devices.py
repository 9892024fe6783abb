"""Where a recipe trains: the Keras backend's devices and the `--distribute` engine.

Glue between the recipes' flags and `zoo.distribution`, which builds the
engines (`tf.distribute` on TensorFlow, `keras.distribution` on JAX):

- `DISTRIBUTE`, every backend's `--distribute` names (the flag's choices),
  and `start`, which says before a run writes anything when the active
  backend has no such engine or `--mesh` does not fit the devices.
- `join_cluster`: several JAX processes (hosts) join one run through
  `keras.distribution.initialize`, which reads Keras' own
  `KERAS_DISTRIBUTION_JOB_ADDRESSES`, `KERAS_DISTRIBUTION_NUM_PROCESSES`
  and `KERAS_DISTRIBUTION_PROCESS_ID` (TensorFlow's counterpart is
  `TF_CONFIG` with `--distribute multi-worker`).
- `training_scope`: the model is built, compiled and trained under the
  engine; one line says what runs where.
- `set_precision` and `has_gpu` (the `auto` settings of `--determinism`
  and `--mixed-precision` ask the training backend, not TensorFlow) and
  `keep_tensorflow_off_gpus`: on JAX and PyTorch, TensorFlow only feeds
  data, tokenizes and exports, and must leave the GPU memory to the
  backend that trains (TensorFlow would otherwise reserve most of it).

Nothing here imports Keras at import time: `--help` answers at once.
"""

import contextlib
import os

# Every backend's names; `zoo.distribution.CHOICES` says which backend has which.
DISTRIBUTE = ("none", "mirrored", "multi-worker", "data-parallel", "model-parallel")
DISTRIBUTE_HELP = (
    "none (one device); TensorFlow: mirrored (all local devices) or multi-worker (the TF_CONFIG cluster); "
    "JAX: data-parallel (the batch split over all devices) or model-parallel (weights split too, see --mesh)"
)
MESH_HELP = (
    "--distribute model-parallel's device mesh DATAxMODEL: 2x4 splits each batch 2 ways and the large "
    "weights 4 ways (8 devices); none: every device on the model axis"
)
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
PRECISION_HELP = "Keras dtype policy; auto: mixed_bfloat16 on a GPU (of the training backend), float32 on CPU"
CLUSTER_VARIABLES = ("KERAS_DISTRIBUTION_JOB_ADDRESSES", "KERAS_DISTRIBUTION_NUM_PROCESSES",
                     "KERAS_DISTRIBUTION_PROCESS_ID")


def backend():
    import keras

    return keras.backend.backend()


def start(config):
    """Checks `--distribute` / `--mesh` and joins the cluster if there is one, before a run writes anything.

    Raises:
        ValueError: the active backend has no such engine, `--mesh` does
            not parse or goes without model-parallel, or the mesh needs
            another number of devices than there are.
    """
    import keras

    from zoo import distribution

    distribution.check_options(config.distribute, config.mesh)
    join_cluster(config.distribute)
    if config.mesh is not None:
        distribution.device_mesh(distribution.parse_mesh(config.mesh), keras.distribution.list_devices())


def join_cluster(name):
    """Joins the cluster `KERAS_DISTRIBUTION_*` describe; returns `(process index, process count)`.

    Without those variables, `(0, 1)`. With them, on JAX with a
    `keras.distribution` engine, calls `keras.distribution.initialize()`
    (before anything else touches a device); anywhere else it is an error,
    since each process would train a model of its own.
    """
    present = [variable for variable in CLUSTER_VARIABLES if os.environ.get(variable)]
    if not present:
        return 0, 1
    if backend() != "jax" or name not in ("data-parallel", "model-parallel"):
        raise ValueError(
            f"{', '.join(present)} describe a cluster of processes, which keras.distribution joins on the "
            f"jax backend with --distribute data-parallel or model-parallel. Received: --distribute {name} "
            f"on the {backend()} backend (TensorFlow reads its cluster from TF_CONFIG with --distribute "
            f"multi-worker)."
        )
    import jax
    import keras

    keras.distribution.initialize()
    print(f"process {jax.process_index()} of {jax.process_count()}, {jax.device_count()} devices in all")
    return jax.process_index(), jax.process_count()


@contextlib.contextmanager
def training_scope(config, model_class, model_config):
    """Builds, compiles and trains under `config.distribute`'s engine; yields it (None for `none`).

    Args:
        config: a recipe config (`distribute`, `mesh`).
        model_class: the model's class (its `layout_map` for model-parallel).
        model_config: dict. The model's config, checked to split evenly
            over model-parallel's model axis.
    """
    from zoo import distribution

    with distribution.distribution_scope(config.distribute, model_class, config.mesh, model_config) as engine:
        print(f"--distribute {config.distribute} ({backend()}): {distribution.describe(engine)}")
        yield engine


def set_precision(policy):
    """Sets Keras' global dtype policy (`auto`: see `PRECISION_HELP`); returns the policy set."""
    import keras

    if policy == "auto":
        policy = "mixed_bfloat16" if has_gpu() else "float32"
    keras.config.set_dtype_policy(policy)
    return policy


def has_gpu():
    """Whether the training backend sees a GPU."""
    name = backend()
    if name == "jax":
        import jax

        return any(device.platform == "gpu" for device in jax.devices())
    if name == "torch":
        import torch

        return torch.cuda.is_available()
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def keep_tensorflow_off_gpus():
    """Hides the GPUs from TensorFlow when another backend trains (see the module docstring)."""
    if backend() == "tensorflow":
        return
    import tensorflow as tf

    if not tf.config.list_physical_devices("GPU"):
        return
    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError as error:  # TensorFlow already placed something on them
        print(f"warning: TensorFlow keeps its GPUs ({error}); it may take GPU memory from {backend()}")
