"""Classification and regression metrics.

* :func:`classification_report`: accuracy, F1, confusion matrix (scikit-learn).
* :func:`confident_accuracy_curve`: accuracy of the top-x % most confident predictions.
* :func:`entropy`: Shannon entropy of class probabilities (the open-set score).
* :func:`vote_rmse`: RMSE of predicted Galaxy Zoo vote fractions.
* :func:`regression_metrics`: MAE, Sigma, scatter and bias of regression residuals.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

__all__ = ["classification_report", "confident_accuracy_curve", "entropy", "vote_rmse", "question_rmse",
           "regression_metrics"]


def entropy(probs: np.ndarray) -> np.ndarray:
    """Shannon entropy (nats) of each row of class probabilities."""
    p = np.clip(np.asarray(probs, dtype=np.float64), 1e-12, 1.0)
    return -(p * np.log(p)).sum(axis=1)


def classification_report(y_true, y_pred, n_classes: int, class_names: Sequence[str] = ()) -> dict:
    """Accuracy, F1 (binary for 2 classes, else macro), per-class recall and the confusion matrix."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    labels = list(range(n_classes))
    cm = confusion_matrix(y_true, y_pred, labels=labels) if len(y_true) else np.zeros((n_classes, n_classes), int)
    avg = "binary" if n_classes == 2 else "macro"
    f1 = f1_score(y_true, y_pred, average=avg, labels=labels if avg == "macro" else None, zero_division=0) \
        if len(y_true) else float("nan")
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.diag(cm) / cm.sum(axis=1)
    names = list(class_names) or [str(k) for k in labels]
    return {
        "n": int(len(y_true)),
        "accuracy": float(accuracy_score(y_true, y_pred)) if len(y_true) else float("nan"),
        "f1": float(f1),
        "recall": {names[k]: float(recall[k]) for k in labels},
        "confusion_matrix": cm.tolist(),
    }


def confident_accuracy_curve(probs: np.ndarray, y_true, fractions=None) -> dict:
    """Accuracy of the most confident ``f`` of the predictions, for each ``f`` in ``fractions``."""
    probs = np.asarray(probs)
    y_true = np.asarray(y_true)
    fractions = np.linspace(0.05, 1.0, 20) if fractions is None else np.asarray(fractions, dtype=float)
    order = np.argsort(-probs.max(axis=1), kind="stable")
    correct = (probs.argmax(axis=1) == y_true)[order]
    out = []
    for f in fractions:
        k = max(1, int(round(f * len(order))))
        out.append(float(correct[:k].mean()) if len(order) else float("nan"))
    return {"fraction": [float(f) for f in fractions], "accuracy": out}


def question_rmse(fractions, counts, tree) -> dict:
    """``{question: RMSE of its answer fractions}`` over the galaxies asked it (:func:`vote_rmse` per question of a
    :class:`labelsky.data.vote_trees.VoteTree`; ``fractions`` and ``counts`` [N, A] in the tree's column order)."""
    fractions, counts = np.asarray(fractions), np.asarray(counts)
    return {q.name: vote_rmse(fractions[:, s], counts[:, s]) for q, s in zip(tree.questions, tree.slices())}


def vote_rmse(fractions, counts) -> float:
    """RMSE between predicted and observed vote fractions over all answers of galaxies with votes.

    ``fractions`` [N, K] and ``counts`` [N, K] (numpy arrays or tensors); a
    galaxy without votes (a negative count, or none at all) is left out;
    ``nan`` when none has votes.
    """
    import torch

    f = torch.as_tensor(np.asarray(fractions) if not torch.is_tensor(fractions) else fractions, dtype=torch.float64)
    c = torch.as_tensor(np.asarray(counts) if not torch.is_tensor(counts) else counts, dtype=torch.float64)
    ok = (c >= 0).all(1) & (c.sum(1) > 0)
    if not ok.any():
        return float("nan")
    obs = c[ok] / c[ok].sum(1, keepdim=True)
    return float(torch.sqrt(((f.to(obs)[ok] - obs) ** 2).mean()))


def regression_metrics(pred, target) -> dict:
    """Metrics of the residuals ``e = target - pred``, population standard deviations.

    ``mae`` mean(|e|); ``sigma`` std(|e|) (the "intrinsic scatter" of Liang et
    al.'s eq. 1 and Table 1); ``scatter`` std(e), the usual scatter of a
    regression; ``bias`` mean(e); ``n``.
    """
    e = np.asarray(target, dtype=float) - np.asarray(pred, dtype=float)
    return {"mae": float(np.abs(e).mean()), "sigma": float(np.abs(e).std()), "scatter": float(e.std()),
            "bias": float(e.mean()), "n": int(len(e))}
