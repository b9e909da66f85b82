"""What every text tokenizer shares: a Hugging Face ``tokenizers.Tokenizer`` at run time.

Families differ only in how they train. Once trained, encoding and decoding go through
one Rust tokenizer built from ``tokenizer.json``, so tokzoo, ``tokenizers`` and
``transformers`` give the same ids by construction.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from tokenizers import Tokenizer as RustTokenizer

from ..base import Tokenizer
from ..config import check
from ..datasets import ReadStats, read_texts, take_bytes
from .pretokenize import PRESETS, unicode_to_bytes

TOKENIZER_FILE = "tokenizer.json"
#: transformers reads this to pick PreTrainedTokenizerFast, which keeps our pre-tokenizer
#: (GPT2TokenizerFast would swap in its own regex and silently break superwords).
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
#: How much of the training data the model card's metrics are measured on.
CARD_METRIC_BYTES = 2_000_000


@dataclass
class TextConfig:
    """Keys shared by the text families."""

    vocab_size: int = 32000
    special_tokens: list[str] = field(default_factory=lambda: ["<|endoftext|>"])
    #: Stop reading training data after about this many bytes (None: read everything).
    max_bytes: int | None = None

    def __post_init__(self) -> None:
        check(self.vocab_size >= 256 + len(self.special_tokens) + 1, "vocab_size",
              f"must exceed the 256 byte tokens plus the special tokens, got {self.vocab_size}")
        check(len(set(self.special_tokens)) == len(self.special_tokens), "special_tokens",
              "must not repeat")
        check(all(self.special_tokens), "special_tokens", "must not contain empty strings")
        check(self.max_bytes is None or self.max_bytes > 0, "max_bytes", "must be positive")


def check_pretokenizer(value: str, key: str = "pretokenizer") -> None:
    check(value in PRESETS, key, f"must be one of {', '.join(PRESETS)}, got {value!r}")


class TextTokenizer(Tokenizer):
    modality = "text"
    #: The pretokenization regex of the trained tokenizer (None when not a regex + byte map).
    pattern: str | None = None

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self._tk: RustTokenizer | None = None
        self._token_bytes: list[bytes] | None = None

    # -- the trained tokenizer ---------------------------------------------------------
    @property
    def is_trained(self) -> bool:
        return self._tk is not None

    @property
    def backend(self) -> RustTokenizer:
        """The ``tokenizers.Tokenizer`` that does the work."""
        if self._tk is None:
            raise RuntimeError(f"{self.name} is not trained: call fit() or tokzoo.train() first")
        return self._tk

    def _set_backend(self, tk: RustTokenizer) -> None:
        self._tk = tk
        self._token_bytes = None

    @property
    def vocab_size(self) -> int:
        return self.backend.get_vocab_size(with_added_tokens=True)

    # -- encode / decode -------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        if not isinstance(text, str):
            raise TypeError(f"encode takes a str, got {type(text).__name__}")
        return self.backend.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Encode many texts in parallel (Rust threads; TOKENIZERS_PARALLELISM controls them)."""
        texts = list(texts)
        if not all(isinstance(t, str) for t in texts):
            raise TypeError("encode_batch takes a sequence of str")
        return [e.ids for e in self.backend.encode_batch_fast(texts, add_special_tokens=False)]

    def decode(self, ids: Iterable[int]) -> str:
        ids = [int(i) for i in ids]
        n = self.vocab_size
        bad = next((i for i in ids if not 0 <= i < n), None)
        if bad is not None:
            raise ValueError(f"token id {bad} is outside the vocabulary [0, {n})")
        return self.backend.decode(ids, skip_special_tokens=False)

    def token_bytes(self) -> list[bytes]:
        """The UTF-8 bytes each id stands for (byte-level tokens may be partial characters)."""
        if self._token_bytes is None:
            byte_of = unicode_to_bytes()
            specials = {t.content for t in self.backend.get_added_tokens_decoder().values()}
            table = [b""] * self.vocab_size
            for token, i in self.backend.get_vocab(with_added_tokens=True).items():
                if token in specials:
                    table[i] = token.encode("utf-8")
                else:
                    table[i] = bytes(byte_of[c] for c in token)
            self._token_bytes = table
        return self._token_bytes

    # -- training ------------------------------------------------------------------------
    def _documents(self, data: Sequence[str], stats: ReadStats) -> Iterator[str]:
        return take_bytes(read_texts(data, stats=stats), self.config.max_bytes)

    def _train(self, documents, progress: bool) -> tuple[RustTokenizer, dict[str, Any]]:
        """Family-specific training: the tokenizer and notes for the card.

        ``documents()`` returns a fresh iterator over the training documents each call.
        """
        raise NotImplementedError

    def fit(self, data: Sequence[str], *, progress: bool = True, run_dir: str | Path | None = None) -> None:
        passes: list[ReadStats] = []

        def documents() -> Iterator[str]:
            # a family may read the data more than once (SuperBPE's stage 2); the first read counts
            passes.append(ReadStats())
            return self._documents(data, passes[-1])

        start = time.perf_counter()
        tk, notes = self._train(documents, progress)
        wall = time.perf_counter() - start
        stats = passes[0] if passes else ReadStats()
        if stats.documents == 0:
            raise ValueError(f"no text found in {', '.join(map(str, data))}")
        self._set_backend(tk)
        sample = list(take_bytes(read_texts(data), CARD_METRIC_BYTES))
        self.training = {
            "data": list(map(str, data)),
            "data_bytes": stats.bytes,
            "documents": stats.documents,
            "skipped_files": len(stats.skipped),
            "wall_time_s": round(wall, 2),
            **notes,
            "metrics": self.measure(sample),
            "metrics_data": f"the first {sum(len(d.encode()) for d in sample):,} bytes of the training data",
        }

    def measure(self, texts: Sequence[str]) -> dict[str, float]:
        """Compression and vocabulary metrics on ``texts``, and the encode speed in MB/s."""
        from ..metrics.text import compression, renyi_efficiency, token_counts, vocab_utilization

        texts = list(texts)
        start = time.perf_counter()
        ids = self.encode_batch(texts)
        seconds = time.perf_counter() - start
        out = compression(texts, ids, self.token_bytes())
        out["encode_mb_s"] = out["bytes"] / 1e6 / seconds if seconds > 0 else float("nan")
        counts = token_counts(ids, self.vocab_size)
        out["renyi_efficiency"] = renyi_efficiency(counts, self.vocab_size)
        out.update(vocab_utilization(counts, self.vocab_size))
        out["vocab_size"] = self.vocab_size
        return out

    def premium(self, parallel: dict[str, Sequence[str]], reference: str = "en") -> dict[str, float]:
        """Token premium per language: tokens for the same sentences over the reference's."""
        from ..metrics.text import token_premium

        counts = {lang: sum(map(len, self.encode_batch(lines))) for lang, lines in parallel.items()}
        return token_premium(counts, reference=reference)

    # -- persistence ---------------------------------------------------------------------
    def _save_artifacts(self, directory: Path) -> None:
        self.backend.save(str(directory / TOKENIZER_FILE))
        specials = list(self.config.special_tokens)
        tk_config = {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "clean_up_tokenization_spaces": False,
            "model_max_length": 1_000_000_000_000_000_019_884_624_838_656,
            "added_tokens_decoder": {},
        }
        if specials:
            tk_config["eos_token"] = specials[0]
        (directory / TOKENIZER_CONFIG_FILE).write_text(json.dumps(tk_config, indent=2) + "\n")

    @classmethod
    def _load_artifacts(cls, config: Any, directory: Path) -> "TextTokenizer":
        path = directory / TOKENIZER_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{directory} has no {TOKENIZER_FILE}")
        try:
            tk = RustTokenizer.from_file(str(path))
        except Exception as err:  # the Rust loader raises a plain Exception on malformed JSON
            raise ValueError(f"{path} is not a valid tokenizer.json: {err}") from None
        tok = cls(config)
        tok._set_backend(tk)
        return tok

    # -- export --------------------------------------------------------------------------
    def tiktoken_ranks(self) -> tuple[dict[bytes, int], dict[str, int], str]:
        """``(mergeable_ranks, special_tokens, pattern)`` for ``tiktoken.Encoding``.

        Ranks are the token ids: merged tokens get ids in merge order, so id order is
        merge priority, which is what tiktoken's byte-pair loop needs. tiktoken keeps only
        the regex matches while ``Split(isolated)`` also keeps the text between them, so
        the pattern gains a last alternative that matches such gaps.
        """
        if self.pattern is None:
            raise ValueError(f"{self.name} is not a byte-level BPE tokenizer; tiktoken cannot load it")
        specials = {t.content: i for i, t in self.backend.get_added_tokens_decoder().items()}
        special_ids = set(specials.values())
        table = self.token_bytes()
        ranks = {table[i]: i for i in range(len(table)) if i not in special_ids}
        gaps = rf"(?:(?!{self.pattern})[\s\S])+"
        return ranks, specials, f"{self.pattern}|{gaps}"

    def to_tiktoken(self, name: str | None = None):
        """A ``tiktoken.Encoding`` with the same ids (needs the tiktoken package)."""
        import tiktoken

        ranks, specials, pattern = self.tiktoken_ranks()
        return tiktoken.Encoding(name=name or f"tokzoo-{self.name}", pat_str=pattern,
                                 mergeable_ranks=ranks, special_tokens=specials)
