"""A probe per layer (the paper's Fig. 1b): error of a classifier on each layer's output.

Reading used (the paper's protocol is [?]; spec §1.3 says "they fine-tune a classifier
on top of layer i"): the encoder is frozen and a linear probe (standardised features,
L2-regularised logistic regression, its strength picked per layer by 3-fold CV on the
training rows; ridge regression for regression tasks) is trained
on each layer's sentence representation -- the mean over the non-special tokens
(``pool="mean"``) or the [CLS] vector (``pool="cls"``). Error = 1 - accuracy for
classification, 1 - Pearson r for regression. A frozen probe isolates what each layer's
representation holds, which is the question Fig. 1b asks; it is not a full fine-tune.
"""
from __future__ import annotations

import warnings
from typing import Any, Sequence

import numpy as np
import torch

from .measures import content_mask

__all__ = ["layer_features", "probe_errors"]


@torch.no_grad()
def layer_features(encoder, batches, special_ids: Sequence[int], pool: str = "mean") -> np.ndarray:
    """[L+1, N, D] sentence features per layer (index 0 = embeddings)."""
    if pool not in ("mean", "cls"):
        raise ValueError(f"pool={pool!r}: allowed 'mean', 'cls'")
    was = encoder.training
    encoder.eval()
    out = []
    try:
        for b in batches:
            enc = encoder(b["input_ids"], b["attention_mask"], b.get("token_type_ids"))
            hs = torch.stack([h.float() for h in enc.hidden_states])            # [L+1,B,T,D]
            if pool == "cls":
                out.append(hs[:, :, 0])
            else:
                m = content_mask(b["input_ids"], b["attention_mask"], special_ids).float()
                m = torch.where(m.sum(1, keepdim=True) > 0, m, b["attention_mask"].float())
                out.append((hs * m[None, ..., None]).sum(2) / m.sum(1)[None, :, None])
    finally:
        encoder.train(was)
    return torch.cat(out, dim=1).numpy()


CS = (1e-3, 1e-2, 1e-1, 1.0)   # regularisation grid when C is None (3-fold CV on the training rows)


def probe_errors(train: np.ndarray, y_train: Sequence, test: np.ndarray, y_test: Sequence,
                 regression: bool = False, C: float | None = None, seed: int = 0) -> list[float]:
    """Error per layer of a linear probe trained on `train[l]` and scored on `test[l]`.

    C: inverse L2 strength; None picks it per layer by 3-fold cross-validation on the
    training rows only (a fixed C over- or under-fits differently at different layers).
    """
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV, Ridge, RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    errs = []
    for l in range(train.shape[0]):
        if regression:
            reg = RidgeCV(alphas=[1.0 / c for c in CS]) if C is None else Ridge(alpha=1.0 / C)
            clf = make_pipeline(StandardScaler(), reg)
            clf.fit(train[l], y_train.astype(float))
            pred = clf.predict(test[l])
            r = np.corrcoef(pred, y_test.astype(float))[0, 1] if np.std(pred) > 0 else 0.0
            errs.append(float(1 - r))
        else:
            lr = (LogisticRegressionCV(Cs=list(CS), cv=3, max_iter=2000, random_state=seed, scoring="accuracy") if C is None
                  else LogisticRegression(C=C, max_iter=2000, random_state=seed))
            clf = make_pipeline(StandardScaler(), lr)
            with warnings.catch_warnings():   # sklearn's FutureWarnings about changing CV defaults
                warnings.simplefilter("ignore", FutureWarning)
                clf.fit(train[l], y_train.astype(int))
            errs.append(float(1 - (clf.predict(test[l]) == y_test.astype(int)).mean()))
    return errs


def summarise_probe(errors: list[float], y_train: Sequence | None = None, y_test: Sequence | None = None,
                    regression: bool = False) -> dict[str, Any]:
    """Layers 1..L: best (lowest-error) layer and how much worse the last layer is.

    With labels, also the error of always predicting the training majority class.
    """
    layers = errors[1:]
    best = int(np.argmin(layers)) + 1
    extra: dict[str, Any] = {}
    if y_train is not None and y_test is not None and not regression:
        vals, counts = np.unique(np.asarray(y_train).astype(int), return_counts=True)
        extra["majority_error"] = float((np.asarray(y_test).astype(int) != vals[np.argmax(counts)]).mean())
    return {**extra, "errors": layers, "embedding_error": errors[0], "best_layer": best,
            "best_error": layers[best - 1], "last_error": layers[-1],
            "last_minus_best": layers[-1] - layers[best - 1], "num_layers": len(layers)}
