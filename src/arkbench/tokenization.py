"""Tokenizers: the real uncased WordPiece vocab by default, or one trained on a corpus.

`load_tokenizer("bert-base-uncased")` uses the vocab.txt that the offline MiniLM
package carries (it is bert-base-uncased's 30,522-entry vocabulary), so no hub
access is needed. `train_wordpiece(texts, vocab_size)` trains a fresh uncased
WordPiece tokenizer (BERT's normaliser and pre-tokeniser) with `tokenizers`, deterministically.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from transformers import BertTokenizerFast, PreTrainedTokenizerFast

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def load_tokenizer(name_or_path: str | os.PathLike = "bert-base-uncased") -> PreTrainedTokenizerFast:
    """'bert-base-uncased' | 'minilm' (same vocab, offline) | a folder with vocab.txt/tokenizer.json."""
    if str(name_or_path) in ("bert-base-uncased", "minilm"):
        from .models.loading import resolve_checkpoint

        folder = resolve_checkpoint("minilm")
        return BertTokenizerFast(vocab=str(folder / "vocab.txt"), do_lower_case=True)
    folder = Path(name_or_path)
    if (folder / "tokenizer.json").exists():
        return BertTokenizerFast.from_pretrained(str(folder))
    if (folder / "vocab.txt").exists():
        return BertTokenizerFast(vocab=str(folder / "vocab.txt"), do_lower_case=True)
    from .models.loading import resolve_checkpoint

    return load_tokenizer(resolve_checkpoint(name_or_path))


def train_wordpiece(texts: Iterable[str], vocab_size: int = 8000, min_frequency: int = 2,
                    out_dir: str | os.PathLike | None = None) -> PreTrainedTokenizerFast:
    """Train an uncased WordPiece tokenizer on `texts`; save it to `out_dir` if given.

    Deterministic: the same texts give the same vocabulary, ids included. `tokenizers`' trainer alone
    does not (huggingface/tokenizers#1794: it gives each continuing-subword token ``##c`` its id in a
    hash map's iteration order, and merges with equal counts are ordered by those ids, so two runs
    can even pick different merges; 20 runs on one small corpus gave 20 different vocabularies). So
    every ``##c`` of the corpus is registered up front, in sorted order, right after BERT's special
    tokens: the trainer then finds each one instead of creating it, and its ids, and with them every
    tie-break, are fixed. tests/test_tokenization.py trains repeatedly, in one process and in two.
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    texts = list(texts)
    normalizer = normalizers.BertNormalizer(lowercase=True)
    pre = pre_tokenizers.BertPreTokenizer()
    continuing = sorted({"##" + ch for text in texts
                         for word, _ in pre.pre_tokenize_str(normalizer.normalize_str(text)) for ch in word[1:]})
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                        special_tokens=SPECIAL + continuing, show_progress=False)
    tok.train_from_iterator(texts, trainer)
    # BERT's own pipeline (normaliser, pre-tokeniser, [CLS]/[SEP] template) over the new vocab; only
    # SPECIAL are special tokens there (the ##c entries are ordinary vocabulary)
    fast = BertTokenizerFast(vocab=tok.get_vocab(), do_lower_case=True)
    if out_dir is not None:
        fast.save_pretrained(str(out_dir))
    return fast
