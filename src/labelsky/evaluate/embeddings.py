"""Embeddings of images: t-SNE (openTSNE), Isomap, clustering, purity.

Khan et al. 2019 embed the 1024-D penultimate-layer activations with t-SNE
and find one cluster per class; labelsky clusters the 2-D (or 3-D) t-SNE map
with k-means, names each cluster by the majority of the classifier's
predictions inside it, and measures purity against the truth when known.
"""

from __future__ import annotations

import numpy as np

__all__ = ["tsne", "isomap", "isomap_tsne", "cluster", "name_clusters", "cluster_purity", "latent_figure"]


def tsne(x: np.ndarray, dim: int = 2, perplexity: float = 30.0, seed: int = 0, n_jobs: int = 1) -> np.ndarray:
    """t-SNE embedding with openTSNE (FFT-accelerated in 2-D, Barnes-Hut in 3-D)."""
    from openTSNE import TSNE

    x = np.asarray(x, dtype=np.float64)
    perplexity = float(min(perplexity, max(2.0, (len(x) - 1) / 3.0)))
    method = "fft" if dim <= 2 else "bh"
    return np.asarray(TSNE(n_components=dim, perplexity=perplexity, random_state=seed, n_jobs=n_jobs,
                           negative_gradient_method=method, verbose=False).fit(x))


def isomap(x: np.ndarray, dim: int = 10, n_neighbors: int = 10) -> np.ndarray:
    """Isomap embedding (scikit-learn)."""
    from sklearn.manifold import Isomap

    return Isomap(n_components=dim, n_neighbors=min(n_neighbors, len(x) - 1)).fit_transform(np.asarray(x))


def cluster(points: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """k-means cluster ids of ``points``."""
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(np.asarray(points))


def name_clusters(cluster_ids: np.ndarray, predicted: np.ndarray, n_classes: int,
                  one_to_one: bool = False) -> np.ndarray:
    """Class of each cluster, from the classifier's predictions inside it.

    ``predicted`` is either predicted classes [N] or class probabilities
    [N, K]. By default each cluster takes the majority class. With
    ``one_to_one`` (k clusters for k classes, Khan et al.'s "one cluster per
    class") clusters and classes are matched by the Hungarian algorithm on the
    summed probabilities, so that a classifier biased towards one class under
    domain shift still names every cluster differently.
    """
    from scipy.optimize import linear_sum_assignment

    cluster_ids = np.asarray(cluster_ids)
    predicted = np.asarray(predicted)
    probs = predicted if predicted.ndim == 2 else np.eye(n_classes)[predicted]
    n_clusters = cluster_ids.max() + 1 if len(cluster_ids) else 0
    score = np.zeros((n_clusters, n_classes))
    for c in range(n_clusters):
        score[c] = probs[cluster_ids == c].sum(axis=0)
    names = score.argmax(axis=1).astype(np.int64)
    if one_to_one and n_clusters <= n_classes:
        # normalise per class so that a rare predicted class still claims its best cluster
        norm = score / np.maximum(score.sum(axis=0, keepdims=True), 1e-12)
        rows, cols = linear_sum_assignment(-norm)
        names[rows] = cols
    return names


def cluster_purity(cluster_ids: np.ndarray, truth: np.ndarray) -> float:
    """Fraction of objects whose true class is their cluster's majority true class."""
    cluster_ids, truth = np.asarray(cluster_ids), np.asarray(truth)
    if not len(truth):
        return float("nan")
    hits = sum(np.bincount(truth[cluster_ids == c]).max() for c in np.unique(cluster_ids))
    return float(hits / len(truth))


def isomap_tsne(x: np.ndarray, isomap_dim: int = 10, n_neighbors: int = 10, seed: int = 0) -> np.ndarray:
    """DeepAstroUDA's latent map (section 2.6): an Isomap of the latent space fed to a 2-D t-SNE."""
    x = np.asarray(x, dtype=np.float64)
    dim = int(min(isomap_dim, x.shape[1], len(x) - 2))
    return tsne(isomap(x, dim=dim, n_neighbors=n_neighbors), dim=2, seed=seed)


def latent_figure(source: np.ndarray, target: np.ndarray, source_labels, target_labels, class_names, path,
                  unknown_label: int | None = None, seed: int = 0):
    """Source and target latent vectors on one Isomap -> t-SNE map; target unknowns marked with crosses.

    Returns the 2-D coordinates (source rows first).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from labelsky.evaluate.figures import save_figure

    xy = isomap_tsne(np.concatenate([source, target]), seed=seed)
    n_s = len(source)
    labels = np.concatenate([np.asarray(source_labels), np.asarray(target_labels)])
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2), sharex=True, sharey=True)
    colours = plt.get_cmap("tab10")
    for ax, (name, sl) in zip(axes, (("source", slice(0, n_s)), ("target", slice(n_s, None)))):
        pts, lab = xy[sl], labels[sl]
        for k, cname in enumerate(class_names):
            m = lab == k
            ax.scatter(pts[m, 0], pts[m, 1], s=5, alpha=0.6, color=colours(k % 10), label=cname)
        if unknown_label is not None:
            m = lab == unknown_label
            ax.scatter(pts[m, 0], pts[m, 1], s=14, marker="x", color="black", label="unknown")
        ax.set_title(name, fontsize=9)
        ax.set_xticks([]), ax.set_yticks([])
    axes[1].legend(fontsize=7, markerscale=2)
    save_figure(fig, path)
    return xy
