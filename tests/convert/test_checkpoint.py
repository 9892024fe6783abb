"""The NumPy checkpoint reader against what PyTorch and safetensors write."""

import json
import os
import zipfile

import numpy as np
import pytest

from zoo.convert import CheckpointError, read_json, read_state_dict

torch = pytest.importorskip("torch")
safetensors_torch = pytest.importorskip("safetensors.torch")


def _reference_tensors():
    generator = torch.Generator().manual_seed(0)
    base = torch.randn(4, 6, generator=generator)
    return {
        "float32": base,
        "transposed": base.t(),  # non-contiguous: strides differ from the shape
        "sliced": base[1:3, 2:],  # a view with a storage offset
        "float16": torch.randn(3, 5, generator=generator).half(),
        "bfloat16": torch.randn(7, generator=generator).to(torch.bfloat16),
        "int64": torch.arange(10).reshape(2, 5),
        "bool": torch.tensor([True, False, True]),
        "scalar": torch.tensor(3.5),
    }


def _expected(tensor):
    if tensor.dtype == torch.bfloat16:
        tensor = tensor.float()  # exact: bfloat16 is a truncated float32
    return tensor.contiguous().numpy()


def test_torch_zip_matches_torch_load(tmp_path):
    tensors = _reference_tensors()
    path = tmp_path / "pytorch_model.bin"
    torch.save(tensors, path)
    loaded = read_state_dict(tmp_path)
    assert sorted(loaded) == sorted(tensors)
    for name, tensor in tensors.items():
        np.testing.assert_array_equal(loaded[name], _expected(tensor), err_msg=name)
        assert loaded[name].shape == tuple(tensor.shape)


def test_torch_zip_of_a_module_state_dict_shares_storages(tmp_path):
    module = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    module[1].weight = torch.nn.Parameter(module[0].weight[:2].clone())
    path = tmp_path / "model.pth"
    torch.save(module.state_dict(), path)
    loaded = read_state_dict(path)
    for name, tensor in module.state_dict().items():
        np.testing.assert_array_equal(loaded[name], tensor.numpy(), err_msg=name)


def test_safetensors_matches_including_bfloat16(tmp_path):
    tensors = {name: t.contiguous() for name, t in _reference_tensors().items() if name != "scalar"}
    safetensors_torch.save_file(tensors, str(tmp_path / "model.safetensors"))
    loaded = read_state_dict(tmp_path)
    for name, tensor in tensors.items():
        np.testing.assert_array_equal(loaded[name], _expected(tensor), err_msg=name)


def test_sharded_safetensors(tmp_path):
    tensors = _reference_tensors()
    safetensors_torch.save_file({"a": tensors["float32"]}, str(tmp_path / "shard-1.safetensors"))
    safetensors_torch.save_file({"b": tensors["int64"]}, str(tmp_path / "shard-2.safetensors"))
    index = {"weight_map": {"a": "shard-1.safetensors", "b": "shard-2.safetensors"}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    loaded = read_state_dict(tmp_path)
    np.testing.assert_array_equal(loaded["a"], tensors["float32"].numpy())
    np.testing.assert_array_equal(loaded["b"], tensors["int64"].numpy())


def test_pickle_with_other_globals_is_refused(tmp_path):
    path = tmp_path / "evil.bin"
    torch.save({"weight": torch.zeros(2), "extra": torch.nn.Linear(1, 1)}, path)
    with pytest.raises(CheckpointError, match="holds only tensors"):
        read_state_dict(path)


def test_clear_errors_for_missing_or_wrong_files(tmp_path):
    with pytest.raises(CheckpointError, match="No weights in"):
        read_state_dict(tmp_path)
    with pytest.raises(CheckpointError, match="not found"):
        read_state_dict(tmp_path / "nothing.safetensors")
    (tmp_path / "legacy.bin").write_bytes(b"\x80\x02not a zip")
    with pytest.raises(CheckpointError, match="not a PyTorch zip checkpoint"):
        read_state_dict(tmp_path / "legacy.bin")
    (tmp_path / "tiny.safetensors").write_bytes(b"abc")
    with pytest.raises(CheckpointError, match="8-byte header"):
        read_state_dict(tmp_path / "tiny.safetensors")
    with zipfile.ZipFile(tmp_path / "empty.bin", "w") as archive:
        archive.writestr("archive/version", "3")
    with pytest.raises(CheckpointError, match="one data.pkl"):
        read_state_dict(tmp_path / "empty.bin")
    with pytest.raises(CheckpointError, match="Missing config.json"):
        read_json(tmp_path, "config.json")
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        read_json(tmp_path, "config.json")
    assert os.path.exists(tmp_path / "config.json")
