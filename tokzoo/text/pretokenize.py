"""Pretokenization: regex presets that cut text into pretokens before BPE or unigram.

Every preset is applied as ``Split(regex, "isolated")`` followed by a byte-level map with
no regex of its own, so the pattern string is all a tokenizer needs to be rebuilt in
another engine (tiktoken uses the same pattern with the same ranks).
"""
from __future__ import annotations

from tokenizers import Regex, pre_tokenizers

_CONTRACTIONS = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)"
_UPPER = r"[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]"
_LOWER = r"[\p{Ll}\p{Lm}\p{Lo}\p{M}]"

#: GPT-2: contractions, optional space + letters / digits / punctuation, whitespace runs.
GPT2 = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
#: Llama 3 (cl100k-like): case-insensitive contractions, digit groups of 1-3, newline runs.
LLAMA3 = (_CONTRACTIONS + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
          r"|\s*[\r\n]+|\s+(?!\S)|\s+")
#: o200k (GPT-4o): case-aware words with an optional leading non-letter, digit groups of 1-3.
O200K = (rf"[^\r\n\p{{L}}\p{{N}}]?{_UPPER}*{_LOWER}+{_CONTRACTIONS}?"
         rf"|[^\r\n\p{{L}}\p{{N}}]?{_UPPER}+{_LOWER}*{_CONTRACTIONS}?"
         r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")
#: o200k without the contraction suffixes: SuperBPE's stage-1 pattern (Liu et al. 2025).
O200K_NOCONTRACTIONS = (rf"[^\r\n\p{{L}}\p{{N}}]?{_UPPER}*{_LOWER}+"
                        rf"|[^\r\n\p{{L}}\p{{N}}]?{_UPPER}+{_LOWER}*"
                        r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")
#: SuperBPE stage 2: only digit groups, runs of 2+ punctuation and spaces before a space are
#: isolated; letters, single spaces and single punctuation stay together, so merges can
#: bridge whitespace into superwords.
SUPERBPE_STAGE2 = r"\p{N}{1,3}| ?[^\s\p{L}\p{N}]{2,}[\r\n/]*| +(?!\S)"

PRESETS: dict[str, str] = {
    "gpt2": GPT2,
    "llama3": LLAMA3,
    "o200k": O200K,
    "o200k-nocontractions": O200K_NOCONTRACTIONS,
}


def byte_level(pattern: str) -> pre_tokenizers.PreTokenizer:
    """``Split(pattern, isolated)`` then the GPT-2 byte-to-unicode map (no second regex)."""
    return pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(pattern), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])


def byte_alphabet() -> list[str]:
    """The 256 characters that stand for the 256 byte values after the byte-level map."""
    return pre_tokenizers.ByteLevel.alphabet()


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from byte values to printable characters."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) \
        + list(range(ord("®"), ord("ÿ") + 1))
    mapping, extra = {}, 0
    for b in range(256):
        if b in printable:
            mapping[b] = chr(b)
        else:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


def unicode_to_bytes() -> dict[str, int]:
    return {c: b for b, c in bytes_to_unicode().items()}
