"""Text tokenizer metrics: pure functions over texts, their encodings and token counts.

Conventions shared by every function here:

- ``texts``: ``list[str]``; ``ids``: ``list[list[int]]``, the encoding of each text;
- ``token_bytes``: the UTF-8 bytes each token id stands for, indexed by id. For a lossless
  byte-level tokenizer the bytes of a text's tokens add up to the text's UTF-8 bytes, which
  is what lets :func:`compression` place token boundaries as byte offsets;
- ``counts``: a token-frequency vector (numpy array indexed by id, or a dict id -> count).

References: Rényi efficiency (Zouhar et al. 2023, "Tokenization and the Noiseless
Channel"), token premium (Petrov et al. 2023, "Language Model Tokenizers Introduce
Unfairness Between Languages"), vocabulary share covering 99% of occurrences (SuperBPE,
Liu et al. 2025).
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

#: Every code point ``str.split()`` splits on is below U+3001 (U+3000 is the last one).
_WS_TABLE = np.array([chr(c).isspace() for c in range(0x3001)], dtype=bool)


def _word_byte_spans(text: str) -> tuple[np.ndarray, np.ndarray]:
    """Byte ``[start, end)`` of each ``text.split()`` word, vectorized over code points."""
    cp = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    space = _WS_TABLE[np.minimum(cp, 0x3000)] & (cp <= 0x3000)
    edges = np.diff(np.concatenate(([0], (~space).astype(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    utf8_len = 1 + (cp >= 0x80).astype(np.int64) + (cp >= 0x800) + (cp >= 0x10000)
    byte_at = np.concatenate(([0], np.cumsum(utf8_len)))
    return byte_at[starts], byte_at[ends]


def compression(texts: Sequence[str], ids: Sequence[Sequence[int]],
                token_bytes: Sequence[bytes]) -> dict:
    """How much text each token carries, and how often tokens split words.

    Returns ``bytes_per_token``, ``chars_per_token``, ``fertility`` (tokens per
    whitespace word), ``continued_words`` (share of whitespace words with a token
    boundary strictly inside them), ``tokens`` and ``bytes``. Raises ``ValueError`` when
    a text's tokens do not add up to its bytes (boundaries would be meaningless).
    """
    if len(texts) != len(ids):
        raise ValueError(f"{len(texts)} texts but {len(ids)} encodings")
    # Texts are joined with one separator byte ("\n"), so words never cross texts and
    # token boundaries of text t are shifted by t bytes from the plain concatenation.
    joined = "\n".join(texts)
    n_tok = np.array([len(x) for x in ids], dtype=np.int64)
    flat = np.fromiter((i for x in ids for i in x), dtype=np.int64, count=int(n_tok.sum()))
    tok_len = np.fromiter((len(b) for b in token_bytes), dtype=np.int64, count=len(token_bytes))
    if flat.size and (flat.min() < 0 or flat.max() >= len(tok_len)):
        raise ValueError(f"token id out of range for {len(tok_len)} token_bytes")
    lens = tok_len[flat]
    text_idx = np.repeat(np.arange(len(texts)), n_tok)
    text_bytes = np.array([len(t.encode("utf-8")) for t in texts], dtype=np.int64)
    got = np.bincount(text_idx, weights=lens, minlength=len(texts)).astype(np.int64)
    bad = np.flatnonzero(got != text_bytes)
    if bad.size:
        t = int(bad[0])
        raise ValueError(f"text {t}: its tokens hold {got[t]} bytes but the text has "
                         f"{text_bytes[t]}; compression needs a lossless byte-level encoding")
    ends = np.cumsum(lens) + text_idx  # byte offset in `joined` after each token
    starts, stops = _word_byte_spans(joined)
    inside = np.searchsorted(ends, stops, "left") - np.searchsorted(ends, starts, "right")
    tokens, words, n_bytes = int(flat.size), int(starts.size), int(text_bytes.sum())
    chars = sum(len(t) for t in texts)
    nan = float("nan")
    return {
        "bytes_per_token": n_bytes / tokens if tokens else nan,
        "chars_per_token": chars / tokens if tokens else nan,
        "fertility": tokens / words if words else nan,
        "continued_words": float((inside > 0).sum()) / words if words else nan,
        "tokens": tokens,
        "bytes": n_bytes,
    }


def _as_counts(counts: np.ndarray | Mapping[int, float]) -> np.ndarray:
    if isinstance(counts, Mapping):
        counts = list(counts.values())
    arr = np.asarray(counts, dtype=np.float64).ravel()
    if (arr < 0).any():
        raise ValueError("token counts must be non-negative")
    if arr.sum() <= 0:
        raise ValueError("token counts are all zero")
    return arr


def renyi_efficiency(counts: np.ndarray | Mapping[int, float], vocab_size: int,
                     alpha: float = 2.5) -> float:
    """Rényi entropy of the token distribution over log|V| (Zouhar et al. 2023).

    1.0 when every vocabulary id is used equally often, 0.0 when one token is all there
    is. The paper finds alpha = 2.5 correlates best with downstream BLEU; alpha = 1 is the
    Shannon efficiency.
    """
    if vocab_size < 2:
        raise ValueError("vocab_size must be at least 2")
    arr = _as_counts(counts)
    p = arr[arr > 0] / arr.sum()
    if alpha == 1:
        h = float(-(p * np.log(p)).sum())
    else:
        h = math.log(float((p ** alpha).sum())) / (1 - alpha)
    return h / math.log(vocab_size)


def vocab_utilization(counts: np.ndarray | Mapping[int, float], vocab_size: int) -> dict:
    """``vocab_used``: share of ids seen at least once; ``vocab_for_99pct``: smallest share
    of the vocabulary (most frequent ids first) that covers 99% of occurrences.

    SuperBPE reports the second one (BPE 57%, SuperBPE 90% at 200k): a vocabulary whose
    tail is never used wastes embedding rows.
    """
    arr = _as_counts(counts)
    if arr.size > vocab_size:
        raise ValueError(f"{arr.size} counts for a vocabulary of {vocab_size}")
    cum = np.cumsum(np.sort(arr)[::-1])
    # cum * 100 >= total * 99, exact for integer counts (no 0.99 rounding).
    k = int(np.argmax(cum * 100 >= cum[-1] * 99)) + 1
    return {"vocab_used": int((arr > 0).sum()) / vocab_size, "vocab_for_99pct": k / vocab_size}


def token_counts(ids: Sequence[Sequence[int]], vocab_size: int) -> np.ndarray:
    """How often each id occurs over all encodings: an int64 array of length vocab_size."""
    flat = np.fromiter((i for x in ids for i in x), dtype=np.int64)
    if flat.size and (flat.min() < 0 or flat.max() >= vocab_size):
        raise ValueError(f"token id out of range for vocab_size {vocab_size}")
    return np.bincount(flat, minlength=vocab_size)


def token_premium(tokens_per_language: Mapping[str, int], reference: str = "en") -> dict[str, float]:
    """tokens(text in L) / tokens(same text in the reference language) (Petrov et al. 2023).

    A premium of 2.0 means speakers of L pay twice as many tokens (cost, context length)
    for the same content.
    """
    if reference not in tokens_per_language:
        raise ValueError(f"reference language {reference!r} missing "
                         f"(have: {', '.join(sorted(tokens_per_language))})")
    ref = tokens_per_language[reference]
    if ref <= 0:
        raise ValueError(f"reference language {reference!r} has no tokens")
    return {lang: n / ref for lang, n in tokens_per_language.items()}
