"""What the converters return: the pieces of a task, for `zoo.Translator` and `zoo.ImageClassifier`.

The converters sit below the task objects: they read a checkpoint into a
model and the settings that go with it, and `zoo.Translator.from_marian`,
`zoo.ImageClassifier.from_hf` / `from_timm` assemble them.
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class TranslatorComponents:
    """A converted translator.

    Attributes:
        model: `zoo.models.TransformerTranslator` with the checkpoint's weights.
        source_tokenizer: tokenizes source sentences (`zoo.text.MarianTokenizer`).
        target_tokenizer: detokenizes target ids.
        settings: `zoo.decoding.SearchSettings`, the checkpoint's decoding.
    """

    model: object
    source_tokenizer: object
    target_tokenizer: object
    settings: object


@dataclasses.dataclass(frozen=True)
class ClassifierComponents:
    """A converted image classifier.

    Attributes:
        model: `zoo.models.VisionTransformer` with the checkpoint's weights.
        preprocessor: `zoo.preprocessing.ImagePreprocessor`: size, resize, crop,
            mean/std and class names the checkpoint was trained with.
    """

    model: object
    preprocessor: object
