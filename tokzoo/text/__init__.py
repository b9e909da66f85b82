"""Text tokenizers: byte-level BPE, SuperBPE and SentencePiece unigram."""
