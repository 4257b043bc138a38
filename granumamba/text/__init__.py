"""Words: Praat TextGrids, the vocabulary, offline text-to-speech with word timings."""

from .textgrid import TextGridError, Word, read_words, write_words
from .vocab import NO_WORD, UNKNOWN, Vocabulary, normalize_word

__all__ = ["NO_WORD", "UNKNOWN", "TextGridError", "Vocabulary", "Word", "normalize_word", "read_words", "write_words"]
