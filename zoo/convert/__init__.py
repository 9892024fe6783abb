"""Import trained checkpoints from other libraries into zoo models.

Conversion reads weights with NumPy only (`zoo.convert.checkpoint`): neither
PyTorch nor `transformers` nor `timm` is needed to convert.

- `marian.load_marian` (`TransformerTranslator.from_marian`): HF MarianMT
  (OPUS-MT) translators, with their SentencePiece tokenizers
  (`zoo.text.MarianTokenizer`) and `transformers`' decoding settings.
  `tools/convert_marian.py` is the command line.
- `hf_vit.load_hf_vit` (`VisionTransformer.from_hf`): HF `ViTForImageClassification`.
- `timm_vit.load_timm_vit` (`VisionTransformer.from_timm`): timm `vit_*` / `deit_*`.
- Both return the model with `model.preprocessing` (`ImagePreprocessing`),
  whose `export_kwargs()` feed `zoo.export.image_classifier.export_image_classifier`.
  `tools/convert_vit.py` is the command line.
"""

from zoo.convert.checkpoint import CheckpointError, read_json, read_state_dict
from zoo.convert.hf_vit import load_hf_vit
from zoo.convert.image_preprocessing import ImagePreprocessing
from zoo.convert.marian import load_marian, load_marian_model, marian_search_options
from zoo.convert.timm_vit import TIMM_ARCHITECTURES, load_timm_vit

__all__ = [
    "CheckpointError",
    "ImagePreprocessing",
    "TIMM_ARCHITECTURES",
    "load_hf_vit",
    "load_marian",
    "load_marian_model",
    "load_timm_vit",
    "marian_search_options",
    "read_json",
    "read_state_dict",
]
