"""Embeddings of images: t-SNE (openTSNE), Isomap, clustering, purity.

Khan et al. 2019 embed the 1024-D penultimate-layer activations with t-SNE
and find one cluster per class; labelsky clusters the 2-D (or 3-D) t-SNE map
with k-means, names each cluster by the majority of the classifier's
predictions inside it, and measures purity against the truth when known.
"""

from __future__ import annotations

import numpy as np

__all__ = ["tsne", "isomap", "cluster", "name_clusters", "cluster_purity"]


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


def name_clusters(cluster_ids: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """Class of each cluster: the majority of the classifier's predictions inside it."""
    cluster_ids, predicted = np.asarray(cluster_ids), np.asarray(predicted)
    names = np.full(cluster_ids.max() + 1 if len(cluster_ids) else 0, -1, dtype=np.int64)
    for c in np.unique(cluster_ids):
        names[c] = np.bincount(predicted[cluster_ids == c], minlength=n_classes).argmax()
    return names


def cluster_purity(cluster_ids: np.ndarray, truth: np.ndarray) -> float:
    """Fraction of objects whose true class is their cluster's majority true class."""
    cluster_ids, truth = np.asarray(cluster_ids), np.asarray(truth)
    if not len(truth):
        return float("nan")
    hits = sum(np.bincount(truth[cluster_ids == c]).max() for c in np.unique(cluster_ids))
    return float(hits / len(truth))
