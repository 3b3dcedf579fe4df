"""The test sets of Khan et al. 2019: *high-probability* (HP) and *full-overlap* (FO).

Built from Galaxy Zoo vote fractions of the source survey and carried to the
same galaxies in the target survey by ``id_str``.
"""

from __future__ import annotations

import numpy as np

from labelsky.errors import SettingsError

__all__ = ["vote_fractions", "hp_fo_sets", "match_ids"]


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
