"""arkbench.tokenization.train_wordpiece: a trained vocabulary is a DVC output (the AutoBERT-Zero proxy's
tokenizer, `tokenizer: train` pre-training), so the same texts must give the same vocabulary, ids included.

`tokenizers`' WordPiece trainer alone does not (huggingface/tokenizers#1794): the ids of the continuing-
subword tokens (##c) follow a hash map's iteration order and break ties between merges. Seen in this
project: two smoke runs of autobert_supernet wrote different tokenizer.json files, and with them a
different proxy model (final loss 5.467 vs 5.472), so every later AutoBERT-Zero stage reran.
"""
from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

from arkbench.tokenization import SPECIAL, train_wordpiece

SRC = Path(__file__).resolve().parents[1] / "src"
WORDS = "the a cat dog sees likes red big house river runs sleeps philosophy frisbee schmidt over under quickly".split()


def _texts() -> list[str]:
    rng = random.Random(0)
    return [" ".join(rng.choice(WORDS) for _ in range(12)) for _ in range(300)]


def _vocab(tok) -> list[tuple[str, int]]:
    return sorted(tok.get_vocab().items(), key=lambda kv: kv[1])


def test_the_same_texts_give_the_same_vocabulary_every_time():
    """20 trainings in one process (each trainer's hash maps are seeded anew): one vocabulary. Without
    the up-front ##c registration this corpus gave 20 different vocabularies in 20 runs."""
    texts = _texts()
    first = _vocab(train_wordpiece(texts, vocab_size=120))
    for _ in range(19):
        assert _vocab(train_wordpiece(texts, vocab_size=120)) == first


def test_the_same_vocabulary_in_another_process():
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); "
            "from arkbench.tokenization import train_wordpiece; import test_tokenization as t; "
            "print(json.dumps(t._vocab(train_wordpiece(t._texts(), vocab_size=120))))")
    outs = [subprocess.run([sys.executable, "-c", code, str(SRC)], capture_output=True, text=True, check=True,
                           cwd=Path(__file__).parent).stdout.strip().splitlines()[-1] for _ in range(2)]
    assert outs[0] == outs[1]
    assert [tuple(x) for x in json.loads(outs[0])] == _vocab(train_wordpiece(_texts(), vocab_size=120))


def test_vocabulary_layout_and_wordpiece_behaviour(tmp_path):
    """BERT's special tokens first ([PAD] = 0), then every ##c of the corpus in sorted order, then the
    alphabet and the merges; whole corpus words come out whole, [CLS]/[SEP] wrap an encoding, and a
    saved tokenizer loads back with the same ids."""
    tok = train_wordpiece(_texts(), vocab_size=120, out_dir=tmp_path)
    vocab = [t for t, _ in _vocab(tok)]
    assert vocab[:len(SPECIAL)] == SPECIAL
    cont = sorted({"##" + ch for w in WORDS for ch in w[1:]})
    assert vocab[len(SPECIAL):len(SPECIAL) + len(cont)] == cont
    assert len(vocab) <= 120
    assert tok.tokenize("The Philosophy of frisbee") == ["the", "philosophy", "[UNK]", "frisbee"]   # "of": this corpus has no ##f
    enc = tok("a cat")["input_ids"]
    assert enc[0] == tok.vocab["[CLS]"] and enc[-1] == tok.vocab["[SEP]"]
    from arkbench.tokenization import load_tokenizer

    assert load_tokenizer(tmp_path)("a cat")["input_ids"] == enc
