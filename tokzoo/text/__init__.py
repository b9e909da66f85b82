"""Text tokenizers: byte-level BPE, SuperBPE and SentencePiece unigram."""
from . import bpe, superbpe, unigram  # noqa: F401  (registers the families)
