"""How far apart two domains look to a model: the domain-gap diagnostic.

A user whose target survey has no labels cannot measure accuracy there, but
can always ask: *can a simple classifier tell my target galaxies from the
source galaxies, given the model's embeddings?* :func:`domain_gap` answers
with the cross-validated AUROC of a logistic regression trained to separate
the two sets of embedding vectors (the "proxy A-distance" idea of Ben-David
et al. 2007, read as an AUROC):

* 0.5: the model sees the two domains alike (what adaptation aims for);
* 1.0: every target galaxy is recognisably different from every source galaxy.

Out-of-fold scores only: every galaxy is scored by a classifier that did not
see it, so two samples of one distribution give 0.5 up to noise. Identical
vectors (the same galaxy in both sets, e.g. one dataset given twice) always
fall in the same fold: a classifier never learns one copy's domain and is
scored on the other. The domains
are subsampled to equal sizes (at most ``max_per_domain`` each).

:func:`nearest_neighbour_mosaic` draws each of a few target galaxies beside
its closest source galaxies in the same embedding: the picture behind the
number. :func:`domain_gap_figure` draws the out-of-fold domain scores.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["domain_gap", "domain_gap_figure", "nearest_neighbour_mosaic", "subsample", "split_rows", "gap_line",
           "FEW_ROWS"]


def subsample(rows, n: int, seed: int = 0) -> np.ndarray:
    """At most ``n`` of ``rows``, drawn without replacement (sorted), reproducibly."""
    rows = np.asarray(rows)
    if len(rows) <= n:
        return rows
    return np.sort(np.random.default_rng(seed).choice(rows, size=n, replace=False))


def domain_gap(source: np.ndarray, target: np.ndarray, *, folds: int = 5, seed: int = 0,
               max_per_domain: int = 2000, C: float = 1.0) -> dict:
    """Cross-validated AUROC of a logistic regression telling ``target`` from ``source`` embeddings.

    Parameters
    ----------
    source, target
        Embedding vectors [N, D] of the two domains.
    folds
        Stratified folds (fewer when a domain has fewer rows).
    max_per_domain
        Each domain is subsampled to ``min(len(source), len(target), max_per_domain)`` rows.
    C
        Inverse L2 strength of the logistic regression (on standardised features).

    Returns
    -------
    dict
        ``auroc`` (pooled out-of-fold), ``auroc_folds`` (per fold), ``n_source``, ``n_target``, and the
        out-of-fold ``scores_source`` / ``scores_target`` (probability of "target") for figures.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedGroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    source, target = np.asarray(source, np.float64), np.asarray(target, np.float64)
    if source.ndim != 2 or target.ndim != 2 or source.shape[1] != target.shape[1]:
        raise ValueError(f"embeddings must be [N, D] with one D; got {source.shape} and {target.shape}")
    n = int(min(len(source), len(target), max_per_domain))
    if n < 4:
        raise ValueError(f"the domain gap needs at least 4 rows per domain; got {len(source)} and {len(target)}")
    rng = np.random.default_rng(seed)
    xs = source[np.sort(rng.choice(len(source), n, replace=False))]
    xt = target[np.sort(rng.choice(len(target), n, replace=False))]
    x = np.concatenate([xs, xt])
    y = np.r_[np.zeros(n), np.ones(n)]
    scores = np.zeros(2 * n)
    per_fold = []
    k = int(min(folds, n))
    groups = np.unique(x, axis=0, return_inverse=True)[1].reshape(-1)  # copies of one vector: one group
    if len(np.unique(groups)) < k:
        raise ValueError(f"the domain gap needs at least {k} distinct embedding vectors; got "
                         f"{len(np.unique(groups))}")
    for train, test in StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed).split(x, y, groups):
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000))
        if len(np.unique(y[train])) < 2 or len(np.unique(y[test])) < 2:  # a fold of copies only: no contrast
            scores[test] = 0.5
            per_fold.append(0.5)
            continue
        clf.fit(x[train], y[train])
        scores[test] = clf.predict_proba(x[test])[:, 1]
        per_fold.append(float(roc_auc_score(y[test], scores[test])))
    return {"auroc": float(roc_auc_score(y, scores)), "auroc_folds": per_fold, "n_source": n, "n_target": n,
            "scores_source": scores[:n].tolist(), "scores_target": scores[n:].tolist()}


def domain_gap_figure(gaps: dict, path, title: str = "domain gap") -> Path:
    """Histograms of the out-of-fold "target" scores, one panel per entry of ``gaps`` (e.g. before / after)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from labelsky.measures.figures import save_figure

    fig, axes = plt.subplots(1, len(gaps), figsize=(3.4 * len(gaps), 2.8), squeeze=False, sharey=True)
    bins = np.linspace(0, 1, 26)
    for ax, (name, g) in zip(axes[0], gaps.items()):
        ax.hist(g["scores_source"], bins=bins, alpha=0.6, label="source", color="tab:blue")
        ax.hist(g["scores_target"], bins=bins, alpha=0.6, label="target", color="tab:orange")
        ax.set_title(f"{name}: AUROC {g['auroc']:.3f}", fontsize=9)
        ax.set_xlabel("P(target) from the embedding", fontsize=8)
    axes[0][0].set_ylabel("galaxies", fontsize=8)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"{title} (0.5 = indistinguishable, 1 = fully separable)", fontsize=9)
    return save_figure(fig, path)


def nearest_neighbour_mosaic(source_ds, source_rows, source_emb, target_ds, target_rows, target_emb, path, *,
                             n_targets: int = 8, k: int = 5, seed: int = 0, title: str | None = None) -> Path:
    """Each of ``n_targets`` random target galaxies (left column) beside its ``k`` nearest source galaxies.

    Distances are cosine distances between embedding vectors; the rows of
    ``*_emb`` align with ``*_rows``. Returns the PNG's path.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.neighbors import NearestNeighbors

    from labelsky.data.display import picture_of
    from labelsky.measures.figures import save_figure

    source_rows, target_rows = np.asarray(source_rows), np.asarray(target_rows)
    k = int(min(k, len(source_rows)))
    nn = NearestNeighbors(n_neighbors=k, metric="cosine").fit(np.asarray(source_emb))
    pick = np.sort(np.random.default_rng(seed).choice(len(target_rows), size=min(n_targets, len(target_rows)),
                                                      replace=False))
    dist, idx = nn.kneighbors(np.asarray(target_emb)[pick])
    fig, axes = plt.subplots(len(pick), k + 1, figsize=(1.1 * (k + 1), 1.15 * len(pick) + 0.4), squeeze=False)
    for r, t in enumerate(pick):
        panels = [(target_ds, target_rows[t], "target")] + [(source_ds, source_rows[j], f"{d:.2f}")
                                                             for j, d in zip(idx[r], dist[r])]
        for c, (ds, row, label) in enumerate(panels):
            ax = axes[r, c]
            rgb, origin = picture_of(ds, row)
            ax.imshow(rgb, origin=origin, interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if r == 0 or c == 0:
                ax.set_title(label if c == 0 else f"source {c}", fontsize=6)
            ax.text(0.02, 0.02, label if c else "", color="white", fontsize=5, transform=ax.transAxes)
    fig.suptitle(title or "target galaxies (left) and their nearest source galaxies (cosine distance)", fontsize=7)
    fig.tight_layout(pad=0.2)
    return save_figure(fig, path)


#: Fewer rows per domain than this and the printed domain gap carries a warning: its AUROC is uncertain.
FEW_ROWS = 100


def split_rows(ds, split: str) -> np.ndarray:
    """Rows of ``ds`` in ``split``: a split name, several joined by ``+`` (``val+test``), or ``all``; labelled
    or not."""
    if split == "all":
        return np.arange(len(ds))
    return np.flatnonzero(np.isin(ds.column("split").astype(str), split.split("+")))


def gap_line(gap: dict) -> str:
    """How a domain gap is printed: the AUROC, rows per domain, the folds' range, and a warning when few."""
    folds = gap.get("auroc_folds") or [gap["auroc"]]
    text = (f"AUROC {gap['auroc']:.3f} (0.5 = indistinguishable, 1 = fully separable; {gap['n_target']} galaxies "
            f"per domain, folds {min(folds):.2f}-{max(folds):.2f})")
    if gap["n_target"] < FEW_ROWS:
        text += ("; few galaxies: the AUROC is uncertain, measure it on more rows (evaluate --reference-split "
                 "all)")
    return text
