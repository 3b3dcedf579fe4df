"""Pseudo-labels for recursive training (Khan et al. 2019, section III).

Unlabelled target galaxies are classified; their embeddings are clustered;
the K most confident galaxies of each class whose prediction agrees with the
class of their cluster become new labelled examples for the next round.
"""

from __future__ import annotations

import numpy as np

__all__ = ["select_pseudo_labels"]


def select_pseudo_labels(probs: np.ndarray, cluster_class: np.ndarray | None, k_per_class: int,
                         min_confidence: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Rows and labels of the top ``k_per_class`` confident predictions per class.

    ``cluster_class[i]`` is the class of the cluster that row ``i`` fell into
    (``None`` skips the agreement check). Rows come back ordered by class,
    then by decreasing confidence.
    """
    probs = np.asarray(probs)
    pred, conf = probs.argmax(axis=1), probs.max(axis=1)
    ok = conf >= min_confidence
    if cluster_class is not None:
        ok &= pred == np.asarray(cluster_class)
    rows, labels = [], []
    for c in range(probs.shape[1]):
        cand = np.flatnonzero(ok & (pred == c))
        top = cand[np.argsort(-conf[cand], kind="stable")[:k_per_class]]
        rows.append(top)
        labels.append(np.full(len(top), c, dtype=np.int64))
    return np.concatenate(rows).astype(np.int64), np.concatenate(labels)
