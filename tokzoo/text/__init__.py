"""Text tokenizers: byte-level BPE, SuperBPE and SentencePiece unigram."""
from . import bpe, superbpe  # noqa: F401  (registers the families)
