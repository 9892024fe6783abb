"""In-graph tokenizers (tensorflow-text ops) and vocabulary building (keras-hub)."""

from zoo.text.marian_tokenizer import MarianTokenizer
from zoo.text.sentence_piece_tokenizer import SentencePieceTokenizer
from zoo.text.tokenizer import Tokenizer, load_tokenizer
from zoo.text.word_piece_tokenizer import RESERVED_TOKENS, WordPieceTokenizer

__all__ = [
    "RESERVED_TOKENS",
    "MarianTokenizer",
    "SentencePieceTokenizer",
    "Tokenizer",
    "WordPieceTokenizer",
    "load_tokenizer",
]
