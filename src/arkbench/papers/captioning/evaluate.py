"""Caption metrics (pycocoevalcap) and domain-gap measures.

Chinese hypotheses and references are segmented with jieba and joined by spaces (so
pycocoevalcap's scorers see words, as COCO-CN's kit does after its own segmentation);
the Java PTB tokenizer is not applied to already segmented Chinese. Scores:
BLEU-1..4 (`Bleu(4)`, corpus level), METEOR 1.5 (Java, `-l en -norm`: for Chinese only its
exact-match stage can fire), ROUGE-L, CIDEr (CIDEr-D's idf from the test references).
SPICE is not computed: it needs Stanford CoreNLP models downloaded at run time and an
English parser, neither of which fits offline Chinese captions.

Domain gap: accuracy of a 5-fold cross-validated logistic regression telling image
features from sentence features (0.5 = indistinguishable) and the RBF-kernel MMD^2
with the median-distance bandwidth.
"""
from __future__ import annotations

import shutil
from typing import Sequence

import numpy as np

METRICS = ("bleu1", "bleu2", "bleu3", "bleu4", "meteor", "rouge_l", "cider")


def caption_scores(hyps: Sequence[str], refs: Sequence[Sequence[str]], meteor: bool | object = True) -> dict[str, float]:
    """Space-tokenised hypotheses and reference lists -> {metric: score in [0, 1] (CIDEr: [0, 10])}.

    `meteor`: True starts METEOR's JVM for this call (about 13 CPU-seconds: it loads its
    paraphrase tables), a `pycocoevalcap.meteor.meteor.Meteor` instance is reused, False skips it (nan).
    """
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses for {len(refs)} reference lists")
    if not hyps:
        raise ValueError("no captions to score")
    res = {i: [h if h.strip() else "<empty>"] for i, h in enumerate(hyps)}
    gts = {i: [r for r in rs if r.strip()] or ["<empty>"] for i, rs in enumerate(refs)}
    out: dict[str, float] = {}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    for n in range(4):
        out[f"bleu{n + 1}"] = float(bleu[n])
    if meteor is not False and meteor is not None and shutil.which("java"):
        if meteor is True:
            from pycocoevalcap.meteor.meteor import Meteor

            m = Meteor()
            try:
                out["meteor"] = float(m.compute_score(gts, res)[0])
            finally:
                del m
        else:
            out["meteor"] = float(meteor.compute_score(gts, res)[0])
    else:
        out["meteor"] = float("nan")
    out["rouge_l"] = float(Rouge().compute_score(gts, res)[0])
    out["cider"] = float(Cider().compute_score(gts, res)[0])
    return out


def domain_accuracy(x_img: np.ndarray, x_txt: np.ndarray, seed: int = 0, max_rows: int = 2000) -> float:
    """5-fold CV accuracy of a logistic regression separating the two feature sets (balanced)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.preprocessing import StandardScaler
    from sklearn.pipeline import make_pipeline

    rng = np.random.default_rng(seed)
    n = min(len(x_img), len(x_txt), max_rows)
    a = x_img[rng.choice(len(x_img), n, replace=False)]
    b = x_txt[rng.choice(len(x_txt), n, replace=False)]
    X = np.concatenate([a, b]).reshape(2 * n, -1)
    y = np.r_[np.zeros(n), np.ones(n)]
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=500))
    return float(cross_val_score(clf, X, y, cv=5).mean())


def sq_distances(z: np.ndarray, block: int = 64) -> np.ndarray:
    """[N, N] squared Euclidean distances, ((z_i - z_j) ** 2).sum() for every pair, `block` rows at a
    time: the same numbers, bit for bit, as the one-shot ((z[:, None] - z[None]) ** 2).sum(-1), whose
    [N, N, D] temporary is 3 GB at smoke's N = 1400, D = 192 (and took ~4x longer)."""
    d2 = np.empty((len(z), len(z)), dtype=np.result_type(z.dtype, np.float32))
    for s in range(0, len(z), block):
        d2[s:s + block] = ((z[s:s + block, None] - z[None]) ** 2).sum(-1)
    return d2


def mmd2(x: np.ndarray, y: np.ndarray, seed: int = 0, max_rows: int = 1000) -> float:
    """Biased RBF-kernel MMD^2 with the median pairwise distance as bandwidth."""
    rng = np.random.default_rng(seed)
    x = x.reshape(len(x), -1)[rng.choice(len(x), min(len(x), max_rows), replace=False)]
    y = y.reshape(len(y), -1)[rng.choice(len(y), min(len(y), max_rows), replace=False)]
    z = np.concatenate([x, y]).astype(np.float64)
    d2 = sq_distances(z)
    sigma2 = np.median(d2[d2 > 0]) if (d2 > 0).any() else 1.0
    k = np.exp(-d2 / sigma2)
    n = len(x)
    return float(k[:n, :n].mean() + k[n:, n:].mean() - 2 * k[:n, n:].mean())
