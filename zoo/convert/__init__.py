"""Import trained checkpoints from other libraries: the pieces of zoo's task objects.

Conversion reads weights with NumPy only (`zoo.convert.checkpoint`): neither
PyTorch nor `transformers` nor `timm` is needed to convert. The converters
return components (`zoo.convert.components`); `zoo.Translator.from_marian`
and `zoo.ImageClassifier.from_hf` / `from_timm` assemble them into task
objects, which the command lines in `tools/` save and export.

- `marian.load_marian`: HF MarianMT (OPUS-MT) translators, with their
  SentencePiece tokenizers (`zoo.text.MarianTokenizer`) and `transformers`'
  decoding settings (`zoo.decoding.SearchSettings`).
- `hf_vit.load_hf_vit`: HF `ViTForImageClassification`.
- `timm_vit.load_timm_vit`: timm `vit_*` / `deit_*`.
- Both ViT converters return the model with its `zoo.preprocessing.ImagePreprocessor`
  (size, resize, crop, mean/std, class names).
"""

from zoo.convert.checkpoint import CheckpointError, read_json, read_state_dict
from zoo.convert.components import ClassifierComponents, TranslatorComponents
from zoo.convert.hf_vit import load_hf_vit
from zoo.convert.marian import load_marian, load_marian_model, marian_search_settings
from zoo.convert.timm_vit import TIMM_ARCHITECTURES, load_timm_vit

__all__ = [
    "CheckpointError",
    "ClassifierComponents",
    "TIMM_ARCHITECTURES",
    "TranslatorComponents",
    "load_hf_vit",
    "load_marian",
    "load_marian_model",
    "load_timm_vit",
    "marian_search_settings",
    "read_json",
    "read_state_dict",
]
