"""Open-set (universal domain adaptation) evaluation, as in DeepAstroUDA's Tables 1-3.

Known classes are ``0 .. K-1``; every sample of a class unknown to the
source is labelled ``K`` ("unknown"). A prediction is "unknown" when the
entropy of the class probabilities exceeds the boundary ``rho``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support, roc_auc_score, roc_curve

from labelsky.measures.metrics import entropy

__all__ = ["openset_predictions", "openset_report"]


def openset_predictions(probs: np.ndarray, rho: float) -> np.ndarray:
    """argmax class, or K (unknown) where the entropy exceeds ``rho``."""
    probs = np.asarray(probs)
    pred = probs.argmax(axis=1)
    pred[entropy(probs) > rho] = probs.shape[1]
    return pred


def openset_report(y_true, probs, rho: float, class_names: Sequence[str] = ()) -> dict:
    """Metrics of open-set predictions.

    ``accuracy`` (per sample); ``class_mean_accuracy`` (per-class accuracy
    averaged over the classes present, unknown included: the paper's
    averaging); ``precision``, ``recall``, ``f1`` averaged over the classes
    present in ``y_true`` (unknown included as a class); ``known_mean_accuracy``
    (mean per-class recall of the known classes present); ``unknown_accuracy``
    (recall of the unknown class); ``h_score`` (their harmonic mean);
    ``closed_set_accuracy`` (argmax accuracy on the known-class samples,
    ignoring ``rho``: whether the classifier ranks the classes right even
    where it is too uncertain to commit);
    ``auroc`` of unknown-versus-known detection with the entropy as score,
    its ROC curve, and the (K+1)x(K+1) confusion matrix.
    """
    y_true = np.asarray(y_true)
    probs = np.asarray(probs)
    k = probs.shape[1]
    pred = openset_predictions(probs, rho)
    present = np.unique(y_true)
    p, r, f, _ = precision_recall_fscore_support(y_true, pred, labels=present, average="macro", zero_division=0)
    per_class = {}
    names = list(class_names) or [str(i) for i in range(k)]
    for c in range(k + 1):
        m = y_true == c
        if m.any():
            per_class[names[c] if c < k else "unknown"] = float((pred[m] == c).mean())
    known = [per_class[n] for n in per_class if n != "unknown"]
    known_mean = float(np.mean(known)) if known else float("nan")
    unknown = per_class.get("unknown", float("nan"))
    h = 2 * known_mean * unknown / (known_mean + unknown) if known and "unknown" in per_class and \
        (known_mean + unknown) > 0 else float("nan")
    is_known = y_true < k
    closed = float((probs[is_known].argmax(axis=1) == y_true[is_known]).mean()) if is_known.any() else float("nan")
    is_unknown = (y_true == k).astype(int)
    score = entropy(probs)
    auroc, roc = float("nan"), None
    if 0 < is_unknown.sum() < len(is_unknown):
        auroc = float(roc_auc_score(is_unknown, score))
        fpr, tpr, _ = roc_curve(is_unknown, score)
        roc = {"fpr": fpr.tolist(), "tpr": tpr.tolist()}
    return {
        "n": int(len(y_true)), "accuracy": float((pred == y_true).mean()) if len(y_true) else float("nan"),
        "class_mean_accuracy": float(np.mean(list(per_class.values()))) if per_class else float("nan"),
        "precision": float(p), "recall": float(r), "f1": float(f),
        "per_class_accuracy": per_class, "known_mean_accuracy": known_mean, "unknown_accuracy": unknown,
        "h_score": float(h), "closed_set_accuracy": closed, "auroc": auroc, "roc": roc, "rho": float(rho),
        "confusion_matrix": confusion_matrix(y_true, pred, labels=list(range(k + 1))).tolist(),
    }
