import math
import random

import numpy as np
import pytest

from tokzoo.metrics.text import (compression, renyi_efficiency, token_counts, token_premium,
                                 vocab_utilization)

# id:          0     1     2     3      4          5          6        7        8
TOKEN_BYTES = [b"a", b"b", b" ", b"ab", b"hello", b" world", b"\xc3", b"\xa9", b" a"]


def test_compression_hand_example():
    texts = ["hello world", "ab ab"]
    ids = [[4, 5], [0, 1, 2, 3]]
    # words: hello [0,5) world [6,11) | ab [0,2) ab [3,5); boundaries of text 2: 1,2,3,5
    # -> only the first "ab" (boundary at 1) is continued: 1 of 4 words.
    m = compression(texts, ids, TOKEN_BYTES)
    assert m["tokens"] == 6
    assert m["bytes"] == 16
    assert m["bytes_per_token"] == pytest.approx(16 / 6)
    assert m["chars_per_token"] == pytest.approx(16 / 6)
    assert m["fertility"] == pytest.approx(6 / 4)
    assert m["continued_words"] == pytest.approx(0.25)


def test_compression_multibyte_counts_bytes_not_chars():
    # "é a": é is two bytes split over tokens 6 and 7, so a boundary lies inside word "é".
    m = compression(["é a"], [[6, 7, 8]], TOKEN_BYTES)
    assert (m["bytes"], m["tokens"]) == (4, 3)
    assert m["chars_per_token"] == pytest.approx(1.0)
    assert m["bytes_per_token"] == pytest.approx(4 / 3)
    assert m["continued_words"] == pytest.approx(0.5)


def test_compression_unicode_whitespace_splits_words_like_str_split():
    # U+3000 (3 bytes) separates words, as str.split() does; token edges fall on word edges.
    vocab = [b"a", "\u3000".encode(), b"bb", b"b"]
    m = compression(["a\u3000bb"], [[0, 1, 2]], vocab)
    assert m["fertility"] == pytest.approx(3 / 2) and m["continued_words"] == 0.0
    m = compression(["a\u3000bb"], [[0, 1, 3, 3]], vocab)
    assert m["continued_words"] == pytest.approx(0.5)


def test_compression_rejects_lossy_encoding():
    with pytest.raises(ValueError, match="text 1"):
        compression(["ab", "ab"], [[3], [0]], TOKEN_BYTES)


def _brute_continued(texts, ids, token_bytes):
    continued = words = 0
    for text, seq in zip(texts, ids):
        cuts, pos = set(), 0
        for i in seq:
            pos += len(token_bytes[i])
            cuts.add(pos)
        pos, start = 0, None
        for ch in text + " ":
            if ch.isspace():
                if start is not None:
                    words += 1
                    continued += any(start < c < pos for c in cuts)
                    start = None
            elif start is None:
                start = pos
            pos += len(ch.encode("utf-8"))
    return continued / words


def test_compression_matches_brute_force_on_random_text():
    rng = random.Random(0)
    alphabet = "abcé漢😀 \n\t\u00a0\u2003.,"
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80))) for _ in range(50)]
    vocab: dict[bytes, int] = {}
    ids = []
    for text in texts:
        raw, seq, pos = text.encode("utf-8"), [], 0
        while pos < len(raw):
            step = rng.randint(1, 4)
            seq.append(vocab.setdefault(raw[pos:pos + step], len(vocab)))
            pos += step
        ids.append(seq)
    token_bytes = sorted(vocab, key=vocab.get)
    m = compression(texts, ids, token_bytes)
    assert m["continued_words"] == pytest.approx(_brute_continued(texts, ids, token_bytes))
    assert m["fertility"] == pytest.approx(m["tokens"] / sum(len(t.split()) for t in texts))


def test_renyi_uniform_is_one_and_one_hot_is_zero():
    assert renyi_efficiency(np.full(8, 5), 8) == pytest.approx(1.0)
    assert renyi_efficiency(np.full(8, 5), 8, alpha=1) == pytest.approx(1.0)
    assert renyi_efficiency({3: 10}, 8) == pytest.approx(0.0)


def test_renyi_hand_value():
    # p = (1/2, 1/4, 1/4) over |V| = 4, alpha = 2: H = -log(1/4 + 1/16 + 1/16) = log(8/3).
    assert renyi_efficiency([2, 1, 1, 0], 4, alpha=2) == pytest.approx(math.log(8 / 3) / math.log(4))
    # Shannon: H = 1.5 bits = 1.5 log 2; log 4 = 2 log 2 -> 0.75.
    assert renyi_efficiency({0: 2, 1: 1, 2: 1}, 4, alpha=1) == pytest.approx(0.75)
    with pytest.raises(ValueError):
        renyi_efficiency([0, 0], 4)


def test_vocab_utilization_hand_value():
    counts = np.zeros(10, dtype=np.int64)
    counts[:3] = [90, 9, 1]  # top-2 cover exactly 99%
    assert vocab_utilization(counts, 10) == {"vocab_used": 0.3, "vocab_for_99pct": 0.2}
    counts[2] = 2  # now top-2 cover 99/101 < 99%: all three needed
    assert vocab_utilization(counts, 10)["vocab_for_99pct"] == pytest.approx(0.3)
    assert vocab_utilization({0: 1, 7: 1}, 20) == {"vocab_used": 0.1, "vocab_for_99pct": 0.1}


def test_token_counts():
    counts = token_counts([[0, 2, 2], [], [4]], 6)
    assert counts.tolist() == [1, 0, 2, 0, 1, 0]
    with pytest.raises(ValueError):
        token_counts([[6]], 6)


def test_token_premium():
    assert token_premium({"en": 100, "de": 130, "ja": 250}) == {"en": 1.0, "de": 1.3, "ja": 2.5}
    assert token_premium({"en": 100, "fr": 50}, reference="fr")["en"] == 2.0
    with pytest.raises(ValueError, match="'en' missing"):
        token_premium({"de": 3})
