"""Import trained checkpoints from other libraries into zoo models.

Conversion reads weights with NumPy only (`zoo.convert.checkpoint`): neither
PyTorch nor `transformers` nor `timm` is needed to convert.
"""

from zoo.convert.checkpoint import CheckpointError, read_json, read_state_dict
from zoo.convert.marian import load_marian, load_marian_model, marian_search_options

__all__ = [
    "CheckpointError",
    "load_marian",
    "load_marian_model",
    "marian_search_options",
    "read_json",
    "read_state_dict",
]
