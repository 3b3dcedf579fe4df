"""Embeddings of images: t-SNE (openTSNE), UMAP, Isomap, clustering, purity.

Khan et al. 2019 embed the 1024-D penultimate-layer activations with t-SNE
and find one cluster per class; labelsky clusters the 2-D (or 3-D) t-SNE map
with k-means (or HDBSCAN), names each cluster by the classifier's
predictions inside it, and measures purity against the truth when known.
:func:`labelsky.evaluate.clusters.cluster_run` does all of it for a run and a dataset.
"""

from __future__ import annotations

import numpy as np

__all__ = ["tsne", "umap", "embed_points", "isomap", "isomap_tsne", "cluster", "name_clusters", "cluster_purity",
           "latent_figure", "EMBEDDINGS", "ALGORITHMS", "NAMING"]

#: 2-D / 3-D maps :func:`embed_points` makes
EMBEDDINGS = ("tsne", "umap")
#: clustering algorithms of :func:`cluster`
ALGORITHMS = ("kmeans", "hdbscan")


def tsne(x: np.ndarray, dim: int = 2, perplexity: float = 30.0, seed: int = 0, n_jobs: int = 1,
         method: str | None = None) -> np.ndarray:
    """t-SNE embedding with openTSNE.

    ``method``: ``fft`` (interpolation, for large sets; 2-D only), ``bh``
    (Barnes-Hut, faster below ~10,000 points), ``auto`` (``bh`` below 10,000
    points or in 3-D, else ``fft``); ``None`` keeps ``fft`` in 2-D and ``bh`` in 3-D.
    """
    from openTSNE import TSNE

    x = np.asarray(x, dtype=np.float64)
    perplexity = float(min(perplexity, max(2.0, (len(x) - 1) / 3.0)))
    if method == "auto":
        method = "bh" if dim > 2 or len(x) < 10_000 else "fft"
    method = method or ("fft" if dim <= 2 else "bh")
    return np.asarray(TSNE(n_components=dim, perplexity=perplexity, random_state=seed, n_jobs=n_jobs,
                           negative_gradient_method=method, verbose=False).fit(x))


def _umap_module():
    from labelsky.errors import SettingsError

    try:
        import umap as umap_lib
    except ImportError:
        raise SettingsError("UMAP needs the 'umap-learn' package, which is not installed: use t-SNE (--embed tsne) "
                            "or install umap-learn") from None
    return umap_lib


def umap(x: np.ndarray, dim: int = 2, n_neighbors: int = 15, seed: int = 0) -> np.ndarray:
    """UMAP embedding (``umap-learn``, optional; a :class:`~labelsky.errors.SettingsError` when missing)."""
    umap_lib = _umap_module()
    x = np.asarray(x, dtype=np.float64)
    return np.asarray(umap_lib.UMAP(n_components=dim, n_neighbors=int(max(2, min(n_neighbors, len(x) - 1))),
                                    random_state=seed).fit_transform(x))


def embed_points(x: np.ndarray, method: str = "tsne", dim: int = 2, perplexity: float = 30.0,
                 seed: int = 0) -> np.ndarray:
    """A ``dim``-D map of ``x`` by ``method`` (``tsne`` or ``umap``); fewer than 6 points are not mapped (zeros)."""
    from labelsky.errors import SettingsError

    if method not in EMBEDDINGS:
        raise SettingsError(f"embedding {method!r}: expected one of {', '.join(EMBEDDINGS)}")
    if method == "umap":
        _umap_module()
    if len(x) < 6:
        return np.zeros((len(x), dim))
    if method == "umap":
        return umap(x, dim=dim, seed=seed)
    return tsne(x, dim=dim, perplexity=perplexity, seed=seed, method="auto")


def isomap(x: np.ndarray, dim: int = 10, n_neighbors: int = 10) -> np.ndarray:
    """Isomap embedding (scikit-learn)."""
    from sklearn.manifold import Isomap

    return Isomap(n_components=dim, n_neighbors=min(n_neighbors, len(x) - 1)).fit_transform(np.asarray(x))


def cluster(points: np.ndarray, k: int | None = None, seed: int = 0, algorithm: str = "kmeans",
            min_cluster_size: int | None = None) -> np.ndarray:
    """Cluster ids of ``points``.

    Parameters
    ----------
    points
        ``[N, D]`` coordinates (e.g. a t-SNE map).
    k
        Number of k-means clusters (at most ``N``); unused by HDBSCAN.
    seed
        k-means seed.
    algorithm
        ``kmeans`` or ``hdbscan`` (scikit-learn's; noise points get ``-1``).
    min_cluster_size
        HDBSCAN's smallest cluster (default ``max(5, N // 100)``).
    """
    from labelsky.errors import SettingsError

    points = np.asarray(points)
    if algorithm == "kmeans":
        from sklearn.cluster import KMeans

        if not k or k < 1:
            raise SettingsError(f"k-means needs k >= 1 clusters, got {k}")
        k = int(min(k, len(points)))
        return KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(points).astype(np.int64)
    if algorithm == "hdbscan":
        from sklearn.cluster import HDBSCAN

        size = int(min_cluster_size or max(5, len(points) // 100))
        if len(points) < 2:
            return np.full(len(points), -1, np.int64)
        return HDBSCAN(min_cluster_size=max(2, min(size, len(points))), copy=True).fit_predict(points).astype(np.int64)
    raise SettingsError(f"clustering {algorithm!r}: expected one of {', '.join(ALGORITHMS)}")


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
    n_clusters = max(int(cluster_ids.max()) + 1, 0) if len(cluster_ids) else 0
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
    """Fraction of objects whose true class is their cluster's majority true class (noise, ``-1``, left out)."""
    cluster_ids, truth = np.asarray(cluster_ids), np.asarray(truth)
    keep = cluster_ids >= 0  # HDBSCAN's noise (-1) belongs to no cluster
    cluster_ids, truth = cluster_ids[keep], truth[keep]
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

    from labelsky.measures.figures import save_figure

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


#: How :func:`name_clusters` (and ``labelsky cluster``) names clusters (``summary.json["naming"]``).
NAMING = {"one-to-one": "clusters and classes matched by the Hungarian algorithm on the classifier's probabilities "
                        "summed per cluster, normalised per class (as many clusters as classes)",
          "majority": "each cluster takes the class of the largest summed probability",
          "none": "the run predicts no classes (regression values or an embedding alone): clusters are not named"}
