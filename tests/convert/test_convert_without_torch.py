"""Converting needs neither torch nor transformers nor timm (nor safetensors)."""

import os
import subprocess
import sys

import numpy as np
import pytest

from tests.convert.test_hf_vit import _hf_logits, _images, _save_reference
from tests.convert.test_timm_vit import _reference, _save_for_hf

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("timm")

_SCRIPT = """
import sys

class Refuse:  # importing any of these now fails
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "transformers", "timm", "safetensors", "triton"):
            raise ModuleNotFoundError(f"{name} is blocked")

sys.meta_path.insert(0, Refuse())
import numpy as np
import zoo
images = np.load(sys.argv[3])
np.save(sys.argv[4], np.asarray(zoo.ImageClassifier.from_hf(sys.argv[1]).model(images)))
np.save(sys.argv[5], np.asarray(zoo.ImageClassifier.from_timm(sys.argv[2]).model(images)))
assert not {"torch", "transformers", "timm", "safetensors"} & set(sys.modules)
"""


def test_hf_and_timm_convert_in_a_process_without_them(tmp_path):
    hf = _save_reference(tmp_path / "hf")
    timm_model = _reference()
    _save_for_hf(timm_model, tmp_path / "timm")
    images = _images()
    np.save(tmp_path / "images.npy", images)
    outputs = [str(tmp_path / "hf.npy"), str(tmp_path / "timm.npy")]
    result = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(tmp_path / "hf"), str(tmp_path / "timm"), str(tmp_path / "images.npy"), *outputs],
        cwd=os.path.join(os.path.dirname(__file__), "..", ".."),  # this checkout's zoo
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert np.abs(np.load(outputs[0]) - _hf_logits(hf, images)).max() < 1e-4
    import torch

    with torch.no_grad():
        expected = timm_model(torch.from_numpy(images.transpose(0, 3, 1, 2))).numpy()
    assert np.abs(np.load(outputs[1]) - expected).max() < 1e-4
