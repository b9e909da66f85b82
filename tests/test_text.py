"""Text families: lossless round trips, SuperBPE's curriculum, and interop with other engines."""
from __future__ import annotations

import json
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tokzoo
from tokzoo.text.pretokenize import unicode_to_bytes
from tokenizers import pre_tokenizers

from tokzoo.text.superbpe import _stage2_splitter

from .conftest import HARD_STRINGS

FAMILIES = ["bpe", "superbpe", "unigram"]


@pytest.mark.parametrize("family", FAMILIES)
def test_round_trip_hard_strings(trained, family):
    tok, _ = trained[family]
    for text in HARD_STRINGS:
        assert tok.decode(tok.encode(text)) == text, repr(text[:40])
    batch = tok.encode_batch(HARD_STRINGS)
    assert batch == [tok.encode(t) for t in HARD_STRINGS]


@pytest.mark.parametrize("family", FAMILIES)
def test_round_trip_any_string(trained, family):
    tok, _ = trained[family]

    @settings(max_examples=150, deadline=None)
    @given(st.text(alphabet=st.characters(codec="utf-8"), max_size=200))
    def check(text):
        assert tok.decode(tok.encode(text)) == text

    check()


@pytest.mark.parametrize("family", FAMILIES)
def test_decode_rejects_out_of_range_ids(trained, family):
    tok, _ = trained[family]
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.decode([0, tok.vocab_size])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.decode([-1])


@pytest.mark.parametrize("family", FAMILIES)
def test_vocab_size_is_reached(trained, family):
    tok, _ = trained[family]
    assert tok.vocab_size == 2000


def _token_texts(tok, ids):
    byte_of = unicode_to_bytes()
    vocab = {i: t for t, i in tok.backend.get_vocab().items()}
    return {i: bytes(byte_of[c] for c in vocab[i]).decode("utf-8", errors="replace") for i in ids}


def test_superbpe_learns_superwords_within_constraints(trained):
    tok, _ = trained["superbpe"]
    stage2 = _token_texts(tok, range(1500, tok.vocab_size))
    superwords = [t for t in stage2.values() if len(t.split()) >= 2]
    assert len(superwords) >= 100, "stage 2 should learn many multi-word tokens"
    for text in stage2.values():
        assert len(text.split()) <= tok.config.max_words, text
        assert ": " not in text, text
        assert "\n" not in text.rstrip("\r\n"), f"superword crosses a newline: {text!r}"
    assert tok.training["stage2_tokens"] == 500


def test_superbpe_stage1_is_exactly_bpe(trained, corpus_file):
    """Stage 2 resumes from stage 1: the first merges are those of plain BPE at vocab t."""
    sbpe, _ = trained["superbpe"]
    bpe = tokzoo.train("bpe", data=[corpus_file], vocab_size=1500, progress=False)
    merges = json.loads(sbpe.backend.to_str())["model"]["merges"]
    bpe_merges = json.loads(bpe.backend.to_str())["model"]["merges"]
    assert merges[: len(bpe_merges)] == bpe_merges
    bpe_vocab = bpe.backend.get_vocab()
    assert all(sbpe.backend.token_to_id(t) == i for t, i in bpe_vocab.items())


def test_superbpe_first_stage2_merge_is_most_frequent_pair(trained, corpus_file, tmp_path):
    """Brute force: count adjacent stage-1 token pairs inside stage-2 pretokens."""
    sbpe, _ = trained["superbpe"]
    stage1 = tokzoo.train("bpe", data=[corpus_file], vocab_size=1500, progress=False).backend
    stage1.pre_tokenizer = pre_tokenizers.Sequence([
        _stage2_splitter(), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    pairs: Counter = Counter()
    for enc in stage1.encode_batch(corpus_file.read_text(encoding="utf-8").split("\n\n")):
        for k in range(1, len(enc.ids)):
            if enc.word_ids[k] == enc.word_ids[k - 1] and enc.word_ids[k] is not None:
                pairs[enc.tokens[k - 1], enc.tokens[k]] += 1
    merges = json.loads(sbpe.backend.to_str())["model"]["merges"]
    n_stage1 = len(json.loads(stage1.to_str())["model"]["merges"])
    first = tuple(merges[n_stage1])
    assert pairs[first] == max(pairs.values())


def test_superbpe_transition_default_and_validation():
    tok = tokzoo.create("superbpe", vocab_size=32000)
    assert tok.config.transition_point == 24000
    with pytest.raises(ValueError, match="transition"):
        tokzoo.create("superbpe", vocab_size=1000, transition=1000)
    with pytest.raises(ValueError, match="transition"):
        tokzoo.create("superbpe", vocab_size=1000, transition=100)


@pytest.mark.parametrize("family", FAMILIES)
def test_saved_tokenizer_json_matches_in_tokenizers_and_transformers(trained, family, heldout_texts):
    transformers = pytest.importorskip("transformers")
    from tokenizers import Tokenizer

    tok, path = trained[family]
    texts = heldout_texts[:40] + HARD_STRINGS
    expected = tok.encode_batch(texts)
    raw = Tokenizer.from_file(str(path / "tokenizer.json"))
    assert [raw.encode(t, add_special_tokens=False).ids for t in texts] == expected
    fast = transformers.PreTrainedTokenizerFast(tokenizer_file=str(path / "tokenizer.json"))
    assert [fast.encode(t, add_special_tokens=False) for t in texts] == expected
    auto = transformers.AutoTokenizer.from_pretrained(str(path))
    assert isinstance(auto, transformers.PreTrainedTokenizerFast) and "GPT2" not in type(auto).__name__
    assert [auto.encode(t, add_special_tokens=False) for t in texts] == expected
    assert [auto.decode(ids) for ids in expected] == texts


@pytest.mark.parametrize("family", ["bpe", "superbpe"])
def test_tiktoken_export_gives_identical_ids(trained, family, heldout_texts):
    pytest.importorskip("tiktoken")
    tok, _ = trained[family]
    enc = tok.to_tiktoken()
    texts = heldout_texts[:60] + [t for t in HARD_STRINGS if "<|endoftext|>" not in t]
    assert [enc.encode_ordinary(t) for t in texts] == tok.encode_batch(texts)
    assert enc.encode("<|endoftext|>", allowed_special="all") == tok.encode("<|endoftext|>")


def test_unigram_has_no_tiktoken_export(trained):
    tok, _ = trained["unigram"]
    with pytest.raises(ValueError, match="not a byte-level BPE"):
        tok.tiktoken_ranks()


def test_superbpe_compresses_more_than_bpe(trained, heldout_texts):
    bpe = trained["bpe"][0].measure(heldout_texts)["bytes_per_token"]
    sbpe = trained["superbpe"][0].measure(heldout_texts)["bytes_per_token"]
    assert sbpe > bpe  # at a 2k vocab the gain is small; eval/results/text.md measures 32k


def test_gpt2_and_llama3_presets_train(corpus_file):
    for preset in ("gpt2", "llama3", "o200k"):
        tok = tokzoo.train("bpe", data=[corpus_file], vocab_size=400, pretokenizer=preset, progress=False)
        text = "It's 12345 apples, isn't it?\n  Yes."
        assert tok.decode(tok.encode(text)) == text
        assert tok.to_tiktoken().encode_ordinary(text) == tok.encode(text)


def test_sentencepiece_bpe_option(corpus_file):
    tok = tokzoo.train("unigram", data=[corpus_file], vocab_size=600, model_type="bpe", progress=False)
    assert tok.vocab_size == 600
    for text in HARD_STRINGS:
        assert tok.decode(tok.encode(text)) == text


def test_training_on_empty_data_is_a_clear_error(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(ValueError, match="no text"):
        tokzoo.train("bpe", data=[tmp_path / "empty.txt"], vocab_size=300, progress=False)


def test_model_card_reports_data_and_metrics(trained):
    _, path = trained["superbpe"]
    card = (path / "README.md").read_text()
    assert "## Training data" in card and "docs.txt" in card
    assert "bytes_per_token" in card and "transition: 1500" in card
    config = json.loads((path / "config.json").read_text())
    assert config["tokenizer"] == "superbpe" and config["training"]["metrics"]["bytes_per_token"] > 3


def test_superbpe_cutting_rare_pairs_learns_the_same_merges(corpus_file):
    """Stage 2 cuts words where a pair is too rare to ever merge; the merges must not change."""
    from tokzoo.text.superbpe import _learn_exact, _learn_stage2, _Stage2Corpus

    stage1 = tokzoo.train("bpe", data=[corpus_file], vocab_size=1500, progress=False).backend
    corpus = _Stage2Corpus(stage1, iter(corpus_file.read_text(encoding="utf-8").split("\n\n")))
    words, alphabet = corpus.trainer_input(corpus.first)
    uncut = _learn_stage2(words, alphabet, 600, 2, False)
    assert len(uncut) == 600
    assert _learn_exact(corpus, 600, 2, False) == uncut
