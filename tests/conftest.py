"""Shared fixtures: a small real corpus and tokenizers trained on it once per session."""
from __future__ import annotations

import pytest

import tokzoo
from tokzoo.datasets import read_texts, take_bytes

#: Strings every text tokenizer must round-trip exactly.
HARD_STRINGS = [
    "", " ", "   ", "\n", "\r\n", "\t\t", "Hello world", "Hello  world", "line one\r\nline two\r\n",
    "tabs\tand\ttabs", "\x00", "nul\x00in\x00the\x00middle", "\x01\x02\x1b[31mred\x1b[0m\x7f",
    "中文字符和日本語のテキスト", "e\u0301 a\u0300 \u0915\u094d\u0937", "👨\u200d👩\u200d👧\u200d👦 family",
    "🏳️\u200d🌈", "\ufeffBOM", "\u2581 lower one eighth block \u2581\u2581", "<|endoftext|> inside text",
    "a" * 5000, " " * 3000, "\n" * 1000, "ab" * 2000, "1234567890" * 50, "!@#$%^&*()" * 30,
    "\ud7ff\ue000\uffff\U0010ffff", "mixed: English, Ελληνικά, русский, עברית, العربية.",
]


@pytest.fixture(scope="session")
def corpus_file(tmp_path_factory):
    """About 300 kB of real English prose (the stdlib's docstrings) in one text file."""
    path = tmp_path_factory.mktemp("corpus") / "docs.txt"
    path.write_text("".join(take_bytes(read_texts(["sample:python-docs"]), 300_000)), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def heldout_texts():
    return list(take_bytes(read_texts(["sample:python-docs:heldout"]), 150_000))


@pytest.fixture(scope="session")
def trained(corpus_file, tmp_path_factory):
    """One small trained tokenizer per text family, and its checkpoint dir."""
    out = tmp_path_factory.mktemp("trained")
    toks = {
        "bpe": tokzoo.train("bpe", data=[corpus_file], out=out / "bpe", vocab_size=2000, progress=False),
        "superbpe": tokzoo.train("superbpe", data=[corpus_file], out=out / "superbpe", vocab_size=2000,
                                 transition=1500, progress=False),
        "unigram": tokzoo.train("unigram", data=[corpus_file], out=out / "unigram", vocab_size=2000,
                                progress=False),
    }
    return {name: (tok, out / name) for name, tok in toks.items()}
