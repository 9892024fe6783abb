"""Training on several devices: a `--distribute` name to the engine that runs it.

zoo does not distribute anything itself; it picks the engine of the active
Keras backend and builds it:

- TensorFlow: `tf.distribute` (`"mirrored"`: `MirroredStrategy` over the
  local GPUs or CPU; `"multi-worker"`: `MultiWorkerMirroredStrategy`, the
  cluster in `TF_CONFIG`).
- JAX: `keras.distribution` (`"data-parallel"`: `DataParallel`, the model
  replicated and the batch split over every device; `"model-parallel"`:
  `ModelParallel` on a `(data, model)` device mesh, the batch split over
  `data` and the weights over `model` with the model class's
  `layout_map`, see `zoo.models.layout_maps`).
- `"none"` everywhere: one device.

A name the active backend has no engine for is a ValueError naming the
backend and its choices. Several hosts (JAX): every process calls
`keras.distribution.initialize(coordinator, num_processes, process_id)`
(or sets `KERAS_DISTRIBUTION_JOB_ADDRESSES`, `_NUM_PROCESSES`,
`_PROCESS_ID` and calls it without arguments) before anything else runs;
the mesh then spans the devices of all hosts and Keras gives each process
its share of every batch.

Written here, not in the recipes, because it is more than glue: the mesh
flag's parsing and checks, the devices a mesh needs, and the model's layout
map belong together and are tested on 8 simulated CPU devices.
"""

import contextlib
import math
import re

import keras

from zoo.models.layout_maps import check_model_parallel

CHOICES = {
    "tensorflow": ("none", "mirrored", "multi-worker"),
    "jax": ("none", "data-parallel", "model-parallel"),
    "torch": ("none",),
    "numpy": ("none",),
}
MESH_AXES = ("data", "model")
KERAS_ENGINES = (keras.distribution.DataParallel, keras.distribution.ModelParallel)


def choices(backend=None):
    """The `--distribute` names of `backend` (the active one by default)."""
    backend = backend or keras.backend.backend()
    return CHOICES.get(backend, ("none",))


def check_choice(name, backend=None):
    """Raises a ValueError when `name` is not a `--distribute` choice on `backend`."""
    backend = backend or keras.backend.backend()
    allowed = choices(backend)
    if name in allowed:
        return
    elsewhere = [b for b, names in CHOICES.items() if name in names]
    hint = f" ({name} runs with KERAS_BACKEND={elsewhere[0]})" if elsewhere else ""
    raise ValueError(
        f"--distribute {name} does not exist on the {backend} backend; its choices are "
        f"{', '.join(allowed)}{hint}."
    )


def check_options(name, mesh=None, backend=None):
    """Raises a ValueError when `--distribute name` does not exist on `backend` (the active one by
    default), or `mesh` is given without `"model-parallel"` or does not parse (`parse_mesh`)."""
    check_choice(name, backend)
    if mesh is None:
        return
    if name != "model-parallel":
        raise ValueError(f"--mesh goes with --distribute model-parallel. Received: --distribute {name} --mesh {mesh}")
    if isinstance(mesh, str):
        parse_mesh(mesh)


def parse_mesh(text):
    """`"2x4"` to `(2, 4)`: devices along the `data` and the `model` axes.

    Raises:
        ValueError: not two positive integers joined by `x`.
    """
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", str(text))
    if not match or 0 in (shape := (int(match[1]), int(match[2]))):
        raise ValueError(
            f"--mesh takes DATAxMODEL, two positive device counts such as 2x4 (2-way data, 4-way model "
            f"parallel). Received: {text!r}"
        )
    return shape


def device_mesh(shape, devices=None):
    """A `keras.distribution.DeviceMesh` of `shape` over `devices` (all devices by default).

    Raises:
        ValueError: the mesh needs another number of devices than there are.
    """
    devices = list(devices) if devices is not None else keras.distribution.list_devices()
    if math.prod(shape) != len(devices):
        kinds = sorted({str(d).split(":")[0] for d in devices})
        raise ValueError(
            f"A {shape[0]}x{shape[1]} mesh needs {math.prod(shape)} devices; there are {len(devices)} "
            f"({', '.join(kinds)}). Choose DATAxMODEL with DATA * MODEL = {len(devices)}."
        )
    return keras.distribution.DeviceMesh(tuple(shape), MESH_AXES, devices)


def data_parallel(devices=None):
    """`keras.distribution.DataParallel` over `devices` (all by default)."""
    devices = list(devices) if devices is not None else keras.distribution.list_devices()
    return keras.distribution.DataParallel(devices=devices)


def model_parallel(model_class, shape=None, config=None, devices=None):
    """`keras.distribution.ModelParallel` with `model_class.layout_map` on a `(data, model)` mesh.

    Args:
        model_class: a class with a `layout_map(device_mesh, model_dim,
            data_dim)` classmethod (`TransformerTranslator`, `VisionTransformer`).
        shape: `(data, model)` device counts, or a `"2x4"` string. Defaults to
            all devices on the model axis.
        config: dict or None. The model's config: checked to split evenly
            over the model axis (`check_model_parallel`).
        devices: list of device names. Defaults to all devices.
    """
    devices = list(devices) if devices is not None else keras.distribution.list_devices()
    if isinstance(shape, str):
        shape = parse_mesh(shape)
    shape = tuple(shape) if shape is not None else (1, len(devices))
    mesh = device_mesh(shape, devices)
    if config is not None:
        check_model_parallel(config, shape[1])
    layout_map = model_class.layout_map(mesh, model_dim=MESH_AXES[1], data_dim=MESH_AXES[0])
    return keras.distribution.ModelParallel(layout_map=layout_map, batch_dim_name=MESH_AXES[0])


def make_distribution(name, model_class=None, mesh=None, config=None):
    """The engine for `--distribute name` on the active backend, or None for `"none"`.

    Args:
        name: str. One of `choices()`.
        model_class: the model's class (for `"model-parallel"`'s layout map).
        mesh: str, `(data, model)` or None: the `"model-parallel"` mesh.
        config: dict or None. The model's config, for `"model-parallel"`.

    Returns:
        None, a `tf.distribute.Strategy` (TensorFlow) or a
        `keras.distribution.Distribution` (JAX).
    """
    check_options(name, mesh)
    if name == "none":
        return None
    if name in ("mirrored", "multi-worker"):
        import tensorflow as tf

        return tf.distribute.MirroredStrategy() if name == "mirrored" else tf.distribute.MultiWorkerMirroredStrategy()
    if name == "data-parallel":
        return data_parallel()
    if model_class is None:
        raise ValueError("--distribute model-parallel needs the model's class for its layout map.")
    return model_parallel(model_class, mesh, config)


def describe(engine):
    """One line saying what runs where."""
    if engine is None:
        return "one device"
    if isinstance(engine, KERAS_ENGINES):
        mesh = engine.device_mesh
        axes = " x ".join(f"{n} {name}" for n, name in zip(mesh.shape, mesh.axis_names))
        return f"{type(engine).__name__} over {mesh.devices.size} devices ({axes})"
    return f"{type(engine).__name__}, {engine.num_replicas_in_sync} replicas"


def batch_shards(engine):
    """How many equal pieces `engine` splits every batch into: its batch axis's devices, a strategy's
    replicas, else 1.

    A `keras.distribution` engine (JAX) places each batch as one array split
    over the mesh's batch axis, which must divide it. A `tf.distribute`
    strategy trains on a batch of any size, but Keras (3.15) builds the model
    from the first batch of each `fit` and `evaluate` by averaging the
    replicas' pieces, which fails when they differ in size (a validation
    split of 3 images on 2 replicas): its batches are cut too.
    """
    if engine is None:
        return 1
    if not isinstance(engine, KERAS_ENGINES):
        return int(engine.num_replicas_in_sync)
    mesh = engine.device_mesh
    return int(mesh.shape[list(mesh.axis_names).index(engine.batch_dim_name)])


def even_batches(dataset, shards):
    """`dataset`'s batches cut to the largest multiple of `shards` examples (batches of fewer left out).

    What makes batched `tf.data` input fit a `keras.distribution` engine
    or a `tf.distribute` strategy (`batch_shards`): a bucket's last batch, or a split's, is rarely a
    multiple of the devices. At most `shards - 1` examples of each batch are
    left out; with `shards=1` the dataset is returned as it is.

    Args:
        dataset: `tf.data.Dataset` of batches (tensors, or tuples / dicts of
            tensors with the batch first).
        shards: int. What each batch's size must be a multiple of.
    """
    if shards == 1:
        return dataset
    import tensorflow as tf

    def size(*batch):
        return tf.shape(tf.nest.flatten(batch)[0])[0]

    def cut(*batch):
        keep = size(*batch) // shards * shards
        cut_batch = tf.nest.map_structure(lambda t: t[:keep], batch)
        return cut_batch if len(batch) > 1 else cut_batch[0]

    return dataset.map(cut).filter(lambda *batch: size(*batch) > 0)


@contextlib.contextmanager
def distribution_scope(name, model_class=None, mesh=None, config=None):
    """Builds, trains and saves under `make_distribution(...)`; yields the engine (None for `"none"`)."""
    engine = make_distribution(name, model_class, mesh, config)
    if engine is None:
        yield None
        return
    with engine.scope():
        yield engine
