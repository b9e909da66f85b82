"""SuperBPE (Liu et al. 2025, "SuperBPE: Space Travel for Language Models").

A two-stage curriculum. Stage 1 is ordinary byte-level BPE with whitespace-aware
pretokenization, run until the transition point ``t`` (the vocabulary size at which
stage 2 starts). Stage 2 resumes from those merges with a pretokenization that only
isolates digit groups, runs of 2+ punctuation and spaces before a space, so a pretoken is
a whole phrase and new merges can bridge whitespace into *superwords* ("by the way").
Stage-2 merges never cross a newline, never contain ": " and never hold more than
``max_words`` words.

How stage 2 resumes with the stock Rust trainer (which cannot start from given merges):

1. Each stage-1 token id ``i`` becomes one private-use character ``chr(0xF0000 + i)``.
2. The corpus is cut into stage-2 pretokens, line by line and after every ": ", and
   each distinct pretoken is encoded once with the stage-1 merges (exactly as the final
   tokenizer encodes it before any stage-2 merge applies) and written as its token
   characters, as many times as it occurs.
3. The stock BPE trainer learns merges over those characters; each learned merge maps
   back to a pair of byte strings, appended after the stage-1 merges.

Because the trainer only ever sees stage-2 pretokens that stop at newlines and after ": ",
no learned merge crosses those boundaries. Words are also cut where two stage-1 tokens
meet too rarely for any merge to ever cover them (see :func:`_learn_exact`): the merges
stay the same and the trainer no longer carries every long phrase that occurs once. The
word limit cannot be told to the trainer; instead merges whose token holds too many words
are dropped, which is consistent because any later merge built on a dropped token holds
at least as many words and is dropped too. The trainer is asked for a margin of extra
merges so the vocabulary still fills up.

Choosing ``t``: a smaller ``t`` leaves more of the vocabulary to superwords and compresses
more (the paper's best bytes/token at 200k came from t = 80k); a larger ``t`` keeps more
subwords and in the paper trained better language models (t = 180k of 200k). The default,
3/4 of the vocabulary, sits between the two.
"""
from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
from tokenizers import Regex
from tokenizers import Tokenizer as RustTokenizer
from tokenizers import decoders, models, pre_tokenizers, trainers

from ..config import check
from ..datasets import batched
from ..registry import register
from .base import TextTokenizer
from .bpe import BPEConfig, train_bpe
from .pretokenize import PRESETS, SUPERBPE_STAGE2, byte_level, unicode_to_bytes

#: Stage-1 token i is written as chr(PUA_BASE + i) for the stage-2 trainer (planes 15-16).
PUA_BASE = 0xF0000
MAX_TRANSITION = 0x110000 - PUA_BASE
DEFAULT_TRANSITION_SHARE = 0.75


@dataclass
class SuperBPEConfig(BPEConfig):
    """BPE's keys (``pretokenizer`` is the stage-1 preset) plus the stage-2 ones."""

    #: Transition point t: the vocabulary size at which stage 2 starts (None: 3/4 of vocab_size).
    transition: int | None = None
    #: Longest superword, in whitespace-separated words.
    max_words: int = 4

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.max_words >= 1, "max_words", "must be >= 1")
        t = self.transition_point
        check(256 + len(self.special_tokens) < t < self.vocab_size, "transition",
              f"must lie between the byte alphabet ({256 + len(self.special_tokens)}) and "
              f"vocab_size ({self.vocab_size}), got {t}")
        check(t <= MAX_TRANSITION, "transition", f"must be <= {MAX_TRANSITION}, got {t}")

    @property
    def transition_point(self) -> int:
        if self.transition is not None:
            return self.transition
        return round(DEFAULT_TRANSITION_SHARE * self.vocab_size)


def _stage2_splitter() -> pre_tokenizers.PreTokenizer:
    """Stage-2 pretokens as the trainer must see them: per line, and cut after ": "."""
    return pre_tokenizers.Sequence([
        pre_tokenizers.Split("\n", behavior="merged_with_previous"),
        pre_tokenizers.Split(Regex(":(?= )"), behavior="merged_with_previous"),
        pre_tokenizers.Split(Regex(SUPERBPE_STAGE2), behavior="isolated"),
    ])


class _Stage2Corpus:
    """Distinct stage-2 pretokens, encoded once each with the stage-1 merges.

    ``ids`` holds every distinct pretoken's stage-1 ids back to back; ``first`` marks where
    a word for the stage-2 trainer starts; ``weight`` is how often each token's pretoken
    occurs. Special tokens found in the text stand alone: nothing merges with them.
    """

    def __init__(self, stage1: RustTokenizer, documents: Iterator[str]):
        # a word-level tokenizer that knows no words: just the splitter, on Rust threads
        splitter = RustTokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
        splitter.pre_tokenizer = _stage2_splitter()
        counts: Counter = Counter()
        for docs in batched(documents, 256):
            for doc, enc in zip(docs, splitter.encode_batch(docs, add_special_tokens=False)):
                counts.update(doc[a:b] for a, b in enc.offsets)
        encoder = RustTokenizer.from_str(stage1.to_str())
        encoder.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
        ids, lengths = [], []  # numpy per batch: millions of Python ints would double the peak memory
        for batch in batched(counts, 8192):
            encoded = [e.ids for e in encoder.encode_batch_fast(batch, add_special_tokens=False)]
            lengths.append(np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded)))
            ids.append(np.fromiter((i for x in encoded for i in x), dtype=np.int32, count=int(lengths[-1].sum())))
        self.ids = np.concatenate(ids).astype(np.int64)
        lengths = np.concatenate(lengths)
        self.weight = np.repeat(np.fromiter(counts.values(), dtype=np.int64, count=len(counts)), lengths)
        del counts
        self.first = np.zeros(self.ids.size, dtype=bool)
        self.first[np.cumsum(lengths) - lengths] = True
        special = np.isin(self.ids, list(stage1.get_added_tokens_decoder()))
        self.first |= special
        self.first[1:] |= special[:-1]
        self.vocab_size = stage1.get_vocab_size()

    def pair_totals(self) -> tuple[np.ndarray, np.ndarray]:
        """How often each adjacent pair occurs: per token (with the previous one; 0 at word
        starts), and per distinct pair."""
        at_token = np.zeros(self.ids.size)
        inner = np.flatnonzero(~self.first)
        keys = self.ids[inner - 1] * self.vocab_size + self.ids[inner]
        _, where = np.unique(keys, return_inverse=True)
        per_pair = np.bincount(where, weights=self.weight[inner])
        at_token[inner] = per_pair[where]
        return at_token, per_pair

    def trainer_input(self, first: np.ndarray) -> tuple[list[str], int]:
        """Words as private-use strings, each written as often as it occurs, and the alphabet size."""
        word = np.cumsum(first) - 1
        keep = (np.bincount(word) >= 2)[word]  # one token has no pair to merge: leave it out
        order = np.argsort(self.weight[keep], kind="stable")  # group by weight, words stay whole
        ids, starts, weight = self.ids[keep][order], first[keep][order], self.weight[keep][order]
        points = np.insert(PUA_BASE + ids, np.flatnonzero(starts[1:]) + 1, ord(" "))
        bounds = np.flatnonzero(np.diff(weight)) + 1  # token positions where the weight changes
        shifted = bounds + np.cumsum(starts)[bounds - 1]  # ... as positions in `points`
        corpus = [chunk for part, w in zip(np.split(points, shifted), weight[np.r_[0, bounds]] if ids.size else [])
                  for chunk in _repeat_in_chunks(part.astype("<u4").tobytes().decode("utf-32-le") + " ", int(w))]
        return corpus, int(np.unique(ids).size)


def _repeat_in_chunks(words: str, times: int, size: int = 1 << 16) -> Iterator[str]:
    """``words * times`` as strings of about ``size`` characters, cut after a space.

    The trainer keeps per-byte bookkeeping for each string it is fed, so a few huge
    strings would cost far more memory than many small ones.
    """
    if len(words) < size:
        per = size // len(words)
        full, rest = divmod(times, per)
        yield from [words * per] * full
        if rest:
            yield words * rest
        return
    start = 0
    while start < len(words):
        end = words.find(" ", start + size) + 1 or len(words)
        yield from [words[start:end]] * times
        start = end


def _learn_exact(corpus: _Stage2Corpus, merges: int, min_frequency: int, progress: bool):
    """The first ``merges`` stage-2 merges, on words cut where no merge can ever reach.

    A token spanning the boundary between stage-1 tokens a|b can only appear where a and b
    stood next to each other, so its pair count never exceeds the count of (a, b). The
    largest pair count never grows during BPE, so if every learned merge had count >= T,
    no boundary whose (a, b) occurs fewer than T times was ever crossed: cutting words there
    changes nothing, and it removes most of the long phrases seen once. T is guessed from
    the pair counts and halved (down to min_frequency) until the trainer finds all merges.
    """
    totals, per_pair = corpus.pair_totals()
    if not per_pair.size:
        return []
    # the merges-th most frequent pair bounds the last merge's count from above, loosely
    guess = np.partition(per_pair, max(0, per_pair.size - merges))[max(0, per_pair.size - merges)]
    threshold = max(min_frequency, int(guess) // 2)
    while True:
        words, alphabet = corpus.trainer_input(corpus.first | ((totals < threshold) & ~corpus.first))
        learned = _learn_stage2(words, alphabet, merges, threshold, progress)
        if len(learned) >= merges or threshold <= min_frequency:
            return learned
        threshold = max(min_frequency, threshold // 2)


def _learn_stage2(corpus: list[str], alphabet: int, merges: int, min_frequency: int,
                  progress: bool) -> list[tuple[str, str]]:
    """Up to ``merges`` merges over private-use characters, from the stock BPE trainer."""
    tk = RustTokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    trainer = trainers.BpeTrainer(vocab_size=alphabet + merges, min_frequency=min_frequency,
                                  show_progress=progress, special_tokens=[])
    tk.train_from_iterator(corpus, trainer)
    return _merges(tk)


def _merges(tk: RustTokenizer) -> list[tuple[str, str]]:
    """A BPE tokenizer's merges in rank order (tokenizer.json has used "a b" and [a, b])."""
    merges = json.loads(tk.to_str())["model"]["merges"]
    return [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in merges]


def _word_count(token: str, byte_of: dict[str, int]) -> int:
    return len(bytes(byte_of[c] for c in token).decode("utf-8", errors="replace").split())


@register("superbpe")
class SuperBPE(TextTokenizer):
    """SuperBPE: byte-level BPE whose last merges learn superwords across whitespace."""

    Config = SuperBPEConfig
    pattern = SUPERBPE_STAGE2

    def _train(self, documents: Callable[[], Iterator[str]], progress: bool):
        c = self.config
        t = c.transition_point
        clock = time.perf_counter()
        stage1 = train_bpe(documents(), vocab_size=t, pattern=PRESETS[c.pretokenizer],
                           special_tokens=c.special_tokens, min_frequency=c.min_frequency,
                           progress=progress)
        vocab: dict[str, int] = stage1.get_vocab()
        stage1_merges = _merges(stage1)
        token_of = {i: s for s, i in vocab.items()}

        stage1_s = time.perf_counter() - clock
        corpus = _Stage2Corpus(stage1, documents())
        prepare_s = time.perf_counter() - clock - stage1_s
        wanted = c.vocab_size - len(vocab)
        byte_of = unicode_to_bytes()
        request = wanted + max(64, wanted // 10)
        while True:
            learned = _learn_exact(corpus, request, c.min_frequency, progress)
            final_vocab = dict(vocab)
            merges = list(stage1_merges)
            seen = set(merges)
            too_long = collisions = 0
            for a, b in learned:
                left = "".join(token_of[ord(ch) - PUA_BASE] for ch in a)
                right = "".join(token_of[ord(ch) - PUA_BASE] for ch in b)
                token = left + right
                if _word_count(token, byte_of) > c.max_words:
                    too_long += 1
                    continue
                if (left, right) in seen or left not in final_vocab or right not in final_vocab:
                    continue
                seen.add((left, right))
                merges.append((left, right))
                if token in final_vocab:
                    collisions += 1  # the same bytes reached by another split: no new id
                    continue
                final_vocab[token] = len(final_vocab)
                if len(final_vocab) == c.vocab_size:
                    break
            exhausted = len(learned) < request  # the trainer ran out of pairs to merge
            if len(final_vocab) == c.vocab_size or exhausted:
                break
            request = request * 3 // 2 + (c.vocab_size - len(final_vocab))

        tk = RustTokenizer(models.BPE(vocab=final_vocab, merges=merges))
        tk.pre_tokenizer = byte_level(SUPERBPE_STAGE2)
        tk.decoder = decoders.ByteLevel()
        tk.add_special_tokens(list(c.special_tokens))
        notes = {"transition": t, "stage1_vocab": len(vocab), "stage2_tokens": len(final_vocab) - len(vocab),
                 "stage2_dropped_too_many_words": too_long, "stage2_merges_onto_existing_tokens": collisions,
                 "stage1_s": round(stage1_s, 2), "stage2_prepare_s": round(prepare_s, 2),
                 "stage2_learn_s": round(time.perf_counter() - clock - stage1_s - prepare_s, 2)}
        return tk, notes
