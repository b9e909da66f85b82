"""Unigram language-model tokenizer (Kudo 2018), trained with SentencePiece.

Unigram starts from a large set of candidate pieces and prunes it with EM: each round
fits piece probabilities so that the corpus likelihood (every pretoken segmented by its
best Viterbi path) is maximal, then drops the pieces whose removal costs least, until
``vocab_size`` remain. Encoding is the Viterbi segmentation under the final scores.
``model_type: bpe`` trains SentencePiece's BPE instead.

Lossless by construction: SentencePiece sees the pretokens of a regex preset after the
same byte-level map as BPE (identity normalization, whitespace kept as a visible
character, all 256 byte characters required in the vocabulary), so every string has a
segmentation and decodes back exactly. SentencePiece's own whitespace escape cannot do
that: it writes spaces as U+2581, so a literal U+2581 in the input would come back as a
space. Training reads (pretoken, count) pairs, so its memory grows with the number of
distinct pretokens, not with the corpus. At run time the pieces and scores live in a
``tokenizers`` Unigram (or BPE) model like every other text family.
"""
from __future__ import annotations

import io
import os
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Literal

from tokenizers import Tokenizer as RustTokenizer
from tokenizers import decoders, models

from ..config import check
from ..registry import register
from .base import TextConfig, TextTokenizer, check_pretokenizer
from .pretokenize import PRESETS, byte_alphabet, byte_level


@dataclass
class UnigramConfig(TextConfig):
    #: SentencePiece algorithm: unigram (default) or bpe.
    model_type: Literal["unigram", "bpe"] = "unigram"
    #: Regex preset that cuts pretokens (pieces never cross them).
    pretokenizer: str = "o200k-nocontractions"
    #: Longest piece, in byte characters.
    max_piece_length: int = 16

    def __post_init__(self) -> None:
        super().__post_init__()
        check_pretokenizer(self.pretokenizer)
        check(1 <= self.max_piece_length <= 64, "max_piece_length", "must be in 1..64")


def _count_pretokens(documents: Iterator[str], pattern: str) -> Counter:
    pre = byte_level(pattern)
    counts: Counter = Counter()
    for doc in documents:
        counts.update(piece for piece, _ in pre.pre_tokenize_str(doc))
    return counts


def _unseen_bytes(counts: Counter) -> list[str]:
    """Byte characters the corpus never shows; SentencePiece keeps only characters it saw."""
    seen = set().union(*map(set, counts))
    return [ch for ch in byte_alphabet() if ch not in seen]


def _spm_train(counts: Counter, c: UnigramConfig, progress: bool) -> bytes:
    import sentencepiece as spm

    with tempfile.TemporaryDirectory() as tmp:
        tsv = Path(tmp) / "pretokens.tsv"
        with open(tsv, "w", encoding="utf-8") as f:
            for piece, n in counts.items():
                f.write(f"{piece}\t{n}\n")
        model = io.BytesIO()
        spm.SentencePieceTrainer.train(
            input=str(tsv), input_format="tsv", model_writer=model, model_type=c.model_type,
            # room for the special tokens and unseen bytes; +1 for SentencePiece's <unk>, dropped later
            vocab_size=c.vocab_size - len(c.special_tokens) - len(_unseen_bytes(counts)) + 1,
            normalization_rule_name="identity", remove_extra_whitespaces=False, add_dummy_prefix=False,
            character_coverage=1.0, byte_fallback=False,
            split_by_unicode_script=False, split_by_number=False, split_by_whitespace=False,
            max_sentencepiece_length=c.max_piece_length, hard_vocab_limit=False,
            unk_id=0, bos_id=-1, eos_id=-1, pad_id=-1, num_threads=os.cpu_count() or 1,
            minloglevel=0 if progress else 2,
        )
        return model.getvalue()


def _to_rust(proto: bytes, unseen: list[str], c: UnigramConfig) -> RustTokenizer:
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_proto=proto)
    pieces = [(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size()) if not sp.is_unknown(i)]
    floor = min((score for _, score in pieces), default=0.0) - 10.0
    pieces += [(ch, floor) for ch in unseen]  # every byte stays encodable
    specials = list(c.special_tokens)
    if c.model_type == "unigram":
        vocab = [(s, 0.0) for s in specials] + pieces
        model = models.Unigram(vocab, unk_id=None, byte_fallback=False)
    else:
        # SentencePiece BPE merges the adjacent pair whose concatenation scores best; as pair
        # merges, every split of a piece into two pieces gets the piece's rank.
        ids = {s: i for i, s in enumerate(specials + [p for p, _ in pieces])}
        merges = []
        for piece, _ in pieces:
            splits = [(piece[:k], piece[k:]) for k in range(1, len(piece))
                      if piece[:k] in ids and piece[k:] in ids]
            merges += sorted(splits, key=lambda lr: (ids[lr[0]], ids[lr[1]]))
        model = models.BPE(vocab=ids, merges=merges)
    tk = RustTokenizer(model)
    tk.pre_tokenizer = byte_level(PRESETS[c.pretokenizer])
    tk.decoder = decoders.ByteLevel()
    tk.add_special_tokens(specials)
    return tk


@register("unigram")
class Unigram(TextTokenizer):
    """SentencePiece unigram (or SentencePiece BPE) over byte-level pretokens; lossless."""

    Config = UnigramConfig

    def _train(self, documents: Callable[[], Iterator[str]], progress: bool):
        c = self.config
        counts = _count_pretokens(documents(), PRESETS[c.pretokenizer])
        if not counts:
            raise ValueError("no text to train on")
        tk = _to_rust(_spm_train(counts, c, progress), _unseen_bytes(counts), c)
        return tk, {"distinct_pretokens": len(counts)}
