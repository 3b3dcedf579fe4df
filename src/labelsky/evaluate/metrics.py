"""Classification metrics and the test sets of Khan et al. 2019.

* :func:`classification_report`: accuracy, F1, confusion matrix (scikit-learn).
* :func:`confident_accuracy_curve`: accuracy of the top-x % most confident predictions.
* :func:`vote_fractions` and :func:`hp_fo_sets`: the *high-probability* (HP) and
  *full-overlap* (FO) test sets, built from Galaxy Zoo vote fractions of the
  source survey and carried to the same galaxies in the target survey by ``id_str``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

from labelsky.errors import SettingsError

__all__ = ["classification_report", "confident_accuracy_curve", "vote_fractions", "hp_fo_sets", "match_ids",
           "entropy"]


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


def vote_fractions(ds) -> dict:
    """Per-row fractions of smooth / featured / artifact votes (NaN where no votes)."""
    votes = np.stack([ds.column(c).astype(float) for c in ("votes_smooth", "votes_featured", "votes_artifact")], 1)
    votes[votes < 0] = np.nan
    total = votes.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = votes / total
    return {"smooth": frac[:, 0], "featured": frac[:, 1], "artifact": frac[:, 2], "total": total[:, 0]}


def match_ids(source_ids, target_ids) -> tuple[np.ndarray, np.ndarray]:
    """Positions (i_source, i_target) of the ``id_str`` values present in both lists."""
    pos = {s: i for i, s in enumerate(target_ids)}
    src = [i for i, s in enumerate(source_ids) if s in pos]
    return np.asarray(src, dtype=np.int64), np.asarray([pos[source_ids[i]] for i in src], dtype=np.int64)


def hp_fo_sets(source, target, rows, class_answers: dict, thresholds: dict, balance: bool = False) -> dict:
    """HP and FO test sets in the source survey and for the same galaxies in the target survey.

    Parameters
    ----------
    source, target
        Datasets of the two surveys; galaxies are matched by ``id_str``.
    rows
        Source rows eligible for testing (e.g. its test split).
    class_answers
        Class name -> vote answer that stands for it, e.g.
        ``{"elliptical": "smooth", "spiral": "featured"}``.
    thresholds
        Class name -> minimum vote fraction of its answer for the HP set (Khan
        et al. used 0.926 for ellipticals and 0.985 for spirals on debiased
        Galaxy Zoo probabilities).
    balance
        Keep the same number of HP galaxies in every class: the ones with the
        highest vote fractions (the paper chose its two thresholds "to get
        similar numbers of spiral and elliptical galaxies").

    Returns ``{"hp_source", "hp_target", "fo_source", "fo_target"}`` index
    arrays (the ``*_target`` arrays are aligned galaxy by galaxy with the
    ``*_source`` ones) and the labels ``hp_labels`` / ``fo_labels``: the
    class whose answer has the larger vote fraction (FO) and that same class
    for HP galaxies.
    """
    rows = np.asarray(rows, dtype=np.int64)
    fr = vote_fractions(source)
    names = list(source.classes)
    src_ids = source.column("id_str")
    tgt_ids = target.column("id_str")
    i_src, i_tgt = match_ids(src_ids[rows], tgt_ids)
    fo_source, fo_target = rows[i_src], i_tgt
    classes = list(class_answers)
    answer_frac = np.stack([fr[class_answers[c]][fo_source] for c in classes], 1)
    has_votes = np.isfinite(answer_frac).all(axis=1)
    fo_source, fo_target, answer_frac = fo_source[has_votes], fo_target[has_votes], answer_frac[has_votes]
    winner = answer_frac.argmax(axis=1)
    fo_labels = np.array([names.index(classes[k]) for k in winner], dtype=np.int64)
    thr = np.array([thresholds[c] for c in classes])
    conf = answer_frac[np.arange(len(winner)), winner]
    hp = conf >= thr[winner]
    if balance and hp.any():
        counts = [int((hp & (winner == k)).sum()) for k in range(len(classes))]
        if min(counts) == 0:
            empty = [classes[k] for k in range(len(classes)) if counts[k] == 0]
            where = getattr(source, "path", "source")
            raise SettingsError(f"{where}: no high-probability galaxies of class(es) {empty} among {len(rows)} rows "
                                f"to balance with (HP counts {dict(zip(classes, counts))}); lower the thresholds or "
                                f"use more galaxies (--n)")
        n_min = min(counts)
        keep = np.zeros_like(hp)
        for k in range(len(classes)):
            cand = np.flatnonzero(hp & (winner == k))
            keep[cand[np.argsort(-conf[cand], kind="stable")[:n_min]]] = True
        hp = keep
    return {"fo_source": fo_source, "fo_target": fo_target, "fo_labels": fo_labels,
            "hp_source": fo_source[hp], "hp_target": fo_target[hp], "hp_labels": fo_labels[hp]}
