"""Read checkpoint tensors into NumPy, without PyTorch.

Hugging Face and timm checkpoints come as `model.safetensors` (possibly
sharded, with `model.safetensors.index.json`) or as PyTorch's zip format
(`pytorch_model.bin`, `*.pth`). Both are read here into
`{name: numpy.ndarray}`, so converting a checkpoint needs NumPy, not PyTorch.

Why by hand:
- safetensors: its own NumPy loader (`safetensors.numpy`) cannot return
  bfloat16 tensors (NumPy has no such dtype), and many checkpoints are saved
  in bfloat16. The format is an 8-byte header length, a JSON table and raw
  little-endian data, so reading it takes a few lines; bfloat16 becomes
  float32 exactly.
- PyTorch zip: reading it otherwise needs `torch.load`. Its pickle is read
  here with an unpickler that only knows the handful of globals a state dict
  uses (tensor rebuild functions, storage types, `OrderedDict`) and refuses
  anything else, so a checkpoint cannot run code while it loads.
"""

import collections
import json
import os
import pickle
import zipfile

import numpy as np

from zoo import files


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, or not what the converter expects."""


_SAFETENSORS_DTYPES = {
    "F64": np.float64,
    "F32": np.float32,
    "F16": np.float16,
    "I64": np.int64,
    "I32": np.int32,
    "I16": np.int16,
    "I8": np.int8,
    "U8": np.uint8,
    "BOOL": np.bool_,
}

# PyTorch's legacy typed storage classes (what `torch.save` pickles) by name.
_TORCH_STORAGE_DTYPES = {
    "DoubleStorage": np.float64,
    "FloatStorage": np.float32,
    "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16",
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}

_WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


def _bfloat16_to_float32(raw):
    """bfloat16 is the top half of a float32: shift the bits back in place."""
    bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
    return bits.view(np.float32)


def read_safetensors(path):
    """Reads every tensor of a `.safetensors` file into NumPy arrays."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as error:
        raise CheckpointError(f"Cannot read safetensors file {path}: {error}") from None
    if len(data) < 8:
        raise CheckpointError(
            f"{path} is not a safetensors file: {len(data)} bytes, "
            "expected an 8-byte header length first."
        )
    header_size = int.from_bytes(data[:8], "little")
    try:
        header = json.loads(data[8 : 8 + header_size])
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path} has no valid safetensors header: {error}") from None
    start = 8 + header_size
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        raw = data[start + begin : start + end]
        dtype = info["dtype"]
        if dtype == "BF16":
            array = _bfloat16_to_float32(raw)
        elif dtype in _SAFETENSORS_DTYPES:
            array = np.frombuffer(raw, dtype=np.dtype(_SAFETENSORS_DTYPES[dtype]).newbyteorder("<"))
        else:
            raise CheckpointError(
                f"{path}: tensor {name!r} has dtype {dtype}, which zoo cannot read. "
                f"Expected one of {sorted(_SAFETENSORS_DTYPES) + ['BF16']}."
            )
        tensors[name] = array.reshape(info["shape"]).copy()
    return tensors


class _StateDictUnpickler(pickle.Unpickler):
    """Unpickles a PyTorch state dict into NumPy arrays, refusing any other global."""

    def __init__(self, file, archive, prefix):
        super().__init__(file)
        self._archive = archive
        self._prefix = prefix
        self._storages = {}

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if (module, name) == ("torch._utils", "_rebuild_parameter"):
            return lambda data, requires_grad, hooks, *rest: data
        if module == "torch" and name in _TORCH_STORAGE_DTYPES:
            return _TORCH_STORAGE_DTYPES[name]
        raise CheckpointError(
            f"The checkpoint's pickle refers to {module}.{name}; a PyTorch state dict "
            "holds only tensors. Expected a plain state dict saved with torch.save."
        )

    def persistent_load(self, pid):
        # ("storage", storage dtype, key, location, number of elements)
        _, dtype, key, _, numel = pid
        if key not in self._storages:
            raw = self._archive.read(f"{self._prefix}data/{key}")
            if dtype == "bfloat16":
                array = _bfloat16_to_float32(raw)
            else:
                array = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<"))
            self._storages[key] = array[:numel]
        return self._storages[key]


def _rebuild_tensor(storage, offset, size, stride, *unused):
    """A strided view into a storage, copied into its own contiguous array."""
    if not size:
        return storage[offset].copy()
    itemsize = storage.itemsize
    view = np.lib.stride_tricks.as_strided(
        storage[offset:], shape=tuple(size), strides=tuple(s * itemsize for s in stride)
    )
    return np.ascontiguousarray(view)


def read_torch_state_dict(path):
    """Reads a PyTorch zip checkpoint (`torch.save` of a state dict) into NumPy."""
    if not zipfile.is_zipfile(path):
        raise CheckpointError(
            f"{path} is not a PyTorch zip checkpoint (the format of torch.save since "
            "PyTorch 1.6). Re-save it with a current PyTorch or as safetensors."
        )
    with zipfile.ZipFile(path) as archive:
        pickles = [name for name in archive.namelist() if name.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise CheckpointError(f"{path}: expected one data.pkl in the archive, found {pickles}.")
        prefix = pickles[0][: -len("data.pkl")]
        with archive.open(pickles[0]) as f:
            state = _StateDictUnpickler(f, archive, prefix).load()
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]  # training checkpoints wrap it
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds a {type(state).__name__}, expected a state dict.")
    return dict(state)


def _read_sharded(index_path, reader):
    weight_map = read_json(*os.path.split(index_path)).get("weight_map", {})
    tensors = {}
    for shard in sorted(set(weight_map.values())):
        tensors.update(reader(os.path.join(os.path.dirname(index_path), shard)))
    return tensors


def read_state_dict(path):
    """Reads a checkpoint's tensors: a weights file or a folder holding one.

    Args:
        path: str. A `.safetensors` file, a PyTorch zip file (`.bin`, `.pth`,
            `.pt`), or a folder with `model.safetensors`,
            `pytorch_model.bin` or their sharded `*.index.json`.

    Returns:
        dict of str to `numpy.ndarray`; bfloat16 tensors come as float32.

    Raises:
        CheckpointError: the path does not exist, holds none of these, or
            cannot be read.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        for name in _WEIGHT_FILES:
            if os.path.exists(os.path.join(path, name)):
                return read_state_dict(os.path.join(path, name))
        raise CheckpointError(
            f"No weights in {path}: found {sorted(os.listdir(path))}, expected one of {list(_WEIGHT_FILES)}."
        )
    if not os.path.exists(path):
        raise CheckpointError(f"Checkpoint not found: {path}")
    if path.endswith(".safetensors.index.json"):
        return _read_sharded(path, read_safetensors)
    if path.endswith(".bin.index.json"):
        return _read_sharded(path, read_torch_state_dict)
    if path.endswith(".safetensors"):
        return read_safetensors(path)
    return read_torch_state_dict(path)


def read_json(directory, name):
    """The JSON object in `directory/name` (`zoo.files.read_json`); a CheckpointError names the file."""
    try:
        return files.read_json(os.path.join(os.fspath(directory), name))
    except (OSError, ValueError) as error:
        raise CheckpointError(str(error)) from None
