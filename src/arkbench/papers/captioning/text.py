"""Tokenisation and vocabularies (spec §B.4: jieba, count threshold, max length 16).

    zh_tokens("一只狗在草地上奔跑。") -> ["一只", "狗", "在", "草地", "上", "奔跑"]   (jieba, punctuation dropped)
    en_tokens("A dog runs.")          -> ["a", "dog", "runs"]

A :class:`Vocab` maps tokens to ids with four specials (<pad>=0, <bos>=1, <eos>=2,
<unk>=3); words seen fewer than `min_count` times are <unk>.
"""
from __future__ import annotations

import json
import logging
import re
from collections import Counter
from pathlib import Path
from typing import Iterable

from arkbench.utils import atomic_write_text

SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")
PAD, BOS, EOS, UNK = range(4)
_ZH_PUNCT = re.compile(r"[\s，。、！？；：“”‘’（）《》【】…—,.!?;:\"'()\[\]<>\-~·]+")
_EN_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_jieba = None


def _jieba_mod():
    global _jieba
    if _jieba is None:
        import jieba

        jieba.setLogLevel(logging.WARNING)
        jieba.initialize()
        _jieba = jieba
    return _jieba


def zh_tokens(text: str) -> list[str]:
    """jieba segmentation of a Chinese sentence, punctuation and spaces dropped."""
    jb = _jieba_mod()
    return [t for piece in _ZH_PUNCT.split(text) if piece for t in jb.lcut(piece) if t.strip()]


def en_tokens(text: str) -> list[str]:
    return _EN_WORD.findall(text.lower())


class Vocab:
    def __init__(self, itos: list[str]):
        if tuple(itos[:4]) != SPECIALS:
            raise ValueError(f"vocabulary must start with {SPECIALS}, got {itos[:4]}")
        self.itos = list(itos)
        self.stoi = {w: i for i, w in enumerate(self.itos)}

    @classmethod
    def build(cls, token_lists: Iterable[Iterable[str]], min_count: int = 1,
              extra: Iterable[str] = ()) -> "Vocab":
        c = Counter(t for toks in token_lists for t in toks)
        words = sorted((w for w, n in c.items() if n >= min_count), key=lambda w: (-c[w], w))
        words += [w for w in extra if w not in c or c[w] < min_count]
        return cls(list(SPECIALS) + [w for w in dict.fromkeys(words) if w not in SPECIALS])

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, w: str) -> bool:
        return w in self.stoi

    def id(self, w: str) -> int:
        return self.stoi.get(w, UNK)

    def encode(self, tokens: list[str], max_len: int) -> list[int]:
        """BOS + at most max_len token ids + EOS."""
        return [BOS] + [self.id(t) for t in tokens[:max_len]] + [EOS]

    def decode(self, ids: Iterable[int]) -> list[str]:
        out = []
        for i in ids:
            i = int(i)
            if i == EOS:
                break
            if i in (PAD, BOS):
                continue
            out.append(self.itos[i])
        return out

    def save(self, path: str | Path) -> None:
        atomic_write_text(path, json.dumps(self.itos, ensure_ascii=False))

    @classmethod
    def load(cls, path: str | Path) -> "Vocab":
        return cls(json.loads(Path(path).read_text(encoding="utf-8")))
