import keras
import pytest

from zoo.models import TransformerTranslator
from zoo.text import WordPieceTokenizer

EN = ["I buy three apples.", "She speaks French.", "We travel to Spain.", "He sells two old cars."]
DE = ["Ich kaufe drei Äpfel.", "Sie spricht Französisch.", "Wir reisen nach Spanien.", "Er verkauft zwei alte Autos."]


@pytest.fixture(scope="session")
def tiny_translator():
    """A small random translator with real tokenizers (weights random, outputs deterministic)."""
    keras.utils.set_random_seed(3)
    source = WordPieceTokenizer.from_corpus(EN * 10, 80, lowercase=False)
    target = WordPieceTokenizer.from_corpus(DE * 10, 80, lowercase=False)
    model = TransformerTranslator(
        source.vocabulary_size, target.vocabulary_size, num_encoder_layers=1, num_decoder_layers=1,
        d_model=32, num_heads=4, d_ff=64, max_length=16, dropout=0.0,
    )
    return model, source, target
