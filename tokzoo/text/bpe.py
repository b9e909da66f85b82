"""Byte-level BPE (Sennrich et al. 2016; GPT-2's byte-level variant).

Text is cut into pretokens by a regex preset (see :mod:`.pretokenize`), each pretoken's
UTF-8 bytes become 256 base symbols, and training repeatedly merges the most frequent
adjacent pair into a new symbol until the vocabulary is full. Encoding replays the
merges in the order they were learned. Because every byte is a base symbol, any string
encodes and decodes back exactly. The merge loop runs in the Rust ``tokenizers`` trainer.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

from tokenizers import Tokenizer as RustTokenizer
from tokenizers import decoders, models, trainers

from ..config import check
from ..registry import register
from .base import TextConfig, TextTokenizer, check_pretokenizer
from .pretokenize import PRESETS, byte_alphabet, byte_level


@dataclass
class BPEConfig(TextConfig):
    #: Regex preset: gpt2, llama3, o200k, o200k-nocontractions.
    pretokenizer: str = "o200k-nocontractions"
    #: Pairs seen fewer times than this are never merged.
    min_frequency: int = 2

    def __post_init__(self) -> None:
        super().__post_init__()
        check_pretokenizer(self.pretokenizer)
        check(self.min_frequency >= 0, "min_frequency", "must be >= 0")


def train_bpe(documents: Iterator[str], *, vocab_size: int, pattern: str, special_tokens: list[str],
              min_frequency: int, progress: bool) -> RustTokenizer:
    """Train a byte-level BPE tokenizer with ``pattern`` as its pretokenizer."""
    tk = RustTokenizer(models.BPE())
    tk.pre_tokenizer = byte_level(pattern)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                  special_tokens=list(special_tokens), initial_alphabet=byte_alphabet(),
                                  show_progress=progress)
    tk.train_from_iterator(documents, trainer)
    return tk


@register("bpe")
class BPE(TextTokenizer):
    """Byte-level BPE trained with the Rust `tokenizers` library; lossless on any string."""

    Config = BPEConfig

    @property
    def pattern(self) -> str:  # type: ignore[override]
        return PRESETS[self.config.pretokenizer]

    def _train(self, documents: Callable[[], Iterator[str]], progress: bool):
        c = self.config
        tk = train_bpe(documents(), vocab_size=c.vocab_size, pattern=self.pattern,
                       special_tokens=c.special_tokens, min_frequency=c.min_frequency, progress=progress)
        return tk, {}
