"""Embeddings of images: t-SNE (openTSNE), UMAP, Isomap, clustering, purity; ``labelsky cluster``.

Khan et al. 2019 embed the 1024-D penultimate-layer activations with t-SNE
and find one cluster per class; labelsky clusters the 2-D (or 3-D) t-SNE map
with k-means (or HDBSCAN), names each cluster by the classifier's
predictions inside it, and measures purity against the truth when known.
:func:`cluster_run` does all of it for a run and a dataset.
"""

from __future__ import annotations

import numpy as np

__all__ = ["tsne", "umap", "embed_points", "isomap", "isomap_tsne", "cluster", "name_clusters", "cluster_purity",
           "latent_figure", "cluster_run", "EMBEDDINGS", "ALGORITHMS", "NAMING"]

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


def _labels_for(ds, rows: np.ndarray, names: list) -> np.ndarray | None:
    """The dataset's labels of ``rows`` as indices into the model's class ``names`` (matched by class name;
    ``-1`` unknown), or ``None`` when no row has one."""
    if "label" not in ds.catalog.column_names:
        return None
    lab = np.asarray(ds.column("label"), dtype=np.int64)[rows]
    to_model = np.array([names.index(c) if c in names else -1 for c in ds.classes] + [-1], dtype=np.int64)
    lab = np.where((lab >= 0) & (lab < len(ds.classes)), to_model[np.clip(lab, 0, len(ds.classes))], -1)
    return lab if (lab >= 0).any() else None


def _map_figure(path, xy: np.ndarray, cluster_class: np.ndarray, labels: np.ndarray | None, names: list,
                title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from labelsky.evaluate.figures import save_figure

    panels = [(f"{title}: cluster class", cluster_class, "noise")]
    if labels is not None:
        panels.append(("true label", labels, "no label"))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.4 * len(panels), 4.2), squeeze=False)
    colours = plt.get_cmap("tab10")
    for ax, (name, lab, grey) in zip(axes[0], panels):
        other = lab < 0
        if other.any():
            ax.scatter(xy[other, 0], xy[other, 1], s=4, alpha=0.4, color="0.7", label=grey)
        for k, cname in enumerate(names):
            m = lab == k
            if m.any():
                ax.scatter(xy[m, 0], xy[m, 1], s=5, alpha=0.7, color=colours(k % 10), label=cname)
        ax.set_title(name, fontsize=9)
        ax.set_xticks([]), ax.set_yticks([])
        ax.legend(fontsize=7, markerscale=2)
    save_figure(fig, path)


#: How :func:`cluster_run` names clusters (``summary.json["naming"]``).
NAMING = {"one-to-one": "clusters and classes matched by the Hungarian algorithm on the classifier's probabilities "
                        "summed per cluster, normalised per class (as many clusters as classes)",
          "majority": "each cluster takes the class of the largest summed probability"}


def cluster_run(run, ds, out, *, split=None, embed: str = "tsne", dim: int = 2, perplexity: float = 30.0,
                algorithm: str = "kmeans", k: int | None = None, min_cluster_size: int | None = None, seed: int = 0,
                device: str = "auto", overwrite: bool = False) -> dict:
    """Embed, map and cluster a run's penultimate features of a dataset's rows (``labelsky cluster``).

    Parameters
    ----------
    run
        A run folder whose method predicts class probabilities (:func:`labelsky.runs.load_run`).
    ds
        The dataset (a :class:`~labelsky.data.io.LabelskyDataset`), labelled or not.
    out
        Output folder (the rules of :func:`labelsky.outputs.prepare_output`; kind ``clusters``).
    split
        A split name or a list of them; ``None`` (default) takes every row.
    embed, dim, perplexity
        The map: ``tsne`` (openTSNE) or ``umap`` (needs ``umap-learn``), 2-D or 3-D.
    algorithm, k, min_cluster_size
        ``kmeans`` with ``k`` clusters (default: the model's number of classes) or ``hdbscan`` with clusters of
        at least ``min_cluster_size`` rows; each option belongs to its algorithm only.
    seed, device, overwrite
        Seed of the map and of k-means; prediction device; replace a finished output.

    Returns
    -------
    dict
        The summary, also written to ``out/summary.json``, beside ``out/clusters.parquet`` (``id_str, row, map_x, map_y
        [, map_z], cluster, cluster_class, pred_class, confidence [, label]``; ``map_x, map_y [, map_z]`` the map's
        coordinates) and the map ``out/<embed>.png``
        (``tsne.png`` or ``umap.png``). Each cluster is
        named from the classifier's probabilities (:func:`name_clusters`, one-to-one when there are as many
        clusters as classes). Purity and cluster-label accuracy are computed on the rows with a label, and are
        ``None`` when no row has one.
    """
    from pathlib import Path

    import pyarrow as pa
    import pyarrow.parquet as pq

    from labelsky.data.io import DatasetError
    from labelsky.errors import OutputError, SettingsError
    from labelsky.outputs import is_labelsky_output, marker_kind, prepare_output
    from labelsky.runs import load_run, run_spec
    from labelsky.training import predict
    from labelsky.utils import atomic_path, atomic_write_json

    run, out = Path(run), Path(out)
    if embed not in EMBEDDINGS:
        raise SettingsError(f"--embed {embed!r}: expected one of {', '.join(EMBEDDINGS)}")
    if algorithm not in ALGORITHMS:
        raise SettingsError(f"--algorithm {algorithm!r}: expected one of {', '.join(ALGORITHMS)}")
    if dim not in (2, 3):
        raise SettingsError(f"--dim {dim}: the map is 2-D or 3-D")
    if algorithm == "hdbscan" and k is not None:
        raise SettingsError("--k is the number of k-means clusters; hdbscan finds the number itself "
                            "(--min-cluster-size sets the smallest)")
    if algorithm == "kmeans" and min_cluster_size is not None:
        raise SettingsError("--min-cluster-size belongs to --algorithm hdbscan; k-means takes --k")
    if embed == "umap":
        _umap_module()
    spec = run_spec(run)
    if spec.output != "probs":
        raise SettingsError(f"{run} is a {spec.name!r} run ({spec.output}); labelsky cluster names clusters from "
                            f"class probabilities")
    rows = np.arange(len(ds), dtype=np.int64)
    if split is not None:
        wanted = [split] if isinstance(split, str) else list(split)
        rows = rows[np.isin(ds.column("split").astype(str), wanted)]
    if not len(rows):
        raise DatasetError(f"{ds.path}: no rows in split(s) {split}")
    if out.is_dir() and is_labelsky_output(out) and marker_kind(out) != "clusters":
        raise OutputError(f"{out} holds a labelsky {marker_kind(out)}, not clusters; choose another --out")
    if (out / "summary.json").is_file() and not overwrite:
        raise OutputError(f"{out} already holds finished clusters; pass --overwrite to redo them")
    model = load_run(run)
    spec.preprocess(model, ds)  # a method that cannot read this dataset says so here
    names = list(spec.output_names(model))
    prepare_output(out, overwrite=overwrite, inputs=[ds.path, run], kind="clusters")

    pred = predict(model, ds, rows, model.cfg, device=device, embed=True)
    probs = pred["probs"]
    xy = embed_points(pred["embedding"], method=embed, dim=dim, perplexity=perplexity, seed=seed)
    n_classes = len(names)
    if algorithm == "kmeans":
        k = int(k or n_classes)
        if k < 1:
            raise SettingsError(f"--k {k}: at least one cluster")
        cid = cluster(xy, min(k, len(rows)), seed=seed)
    else:
        cid = cluster(xy, algorithm="hdbscan", min_cluster_size=min_cluster_size)
    found = int(cid.max()) + 1 if (cid >= 0).any() else 0
    naming = name_clusters(cid, probs, n_classes, one_to_one=found == n_classes)
    cclass = np.where(cid >= 0, naming[np.clip(cid, 0, None)] if found else -1, -1).astype(np.int64)
    pred_label, conf = probs.argmax(1), probs.max(1)
    labels = _labels_for(ds, rows, names)

    cols = {"id_str": pa.array(ds.column("id_str")[rows].astype(str)), "row": pa.array(rows),
            "map_x": pa.array(xy[:, 0]), "map_y": pa.array(xy[:, 1])}
    if dim == 3:
        cols["map_z"] = pa.array(xy[:, 2])
    name_of = np.array(list(names) + [""], dtype=object)
    cols.update({"cluster": pa.array(cid), "cluster_class": pa.array(name_of[cclass].astype(str)),
                 "pred_class": pa.array(name_of[pred_label].astype(str)),
                 "confidence": pa.array(conf.astype(np.float32))})
    if labels is not None:
        cols["label"] = pa.array(labels)
    with atomic_path(out / "clusters.parquet") as tmp:
        pq.write_table(pa.table(cols), tmp)
    figure = out / f"{embed}.png"
    _map_figure(figure, xy, cclass, labels, names, embed)

    sizes = {str(c): int((cid == c).sum()) for c in range(found)}
    summary = {"run": str(run), "dataset": str(ds.path), "split": split, "n": int(len(rows)), "embed": embed,
               "dim": dim, "perplexity": perplexity if embed == "tsne" else None, "algorithm": algorithm,
               "k": k if algorithm == "kmeans" else None, "seed": seed, "figure": figure.name, "clusters": found, "sizes": sizes,
               "n_noise": int((cid < 0).sum()),
               "cluster_classes": {str(c): names[int(naming[c])] for c in range(found)},
               "naming": "one-to-one" if found == n_classes else "majority",  # see NAMING
               "cluster_predictions": {str(c): {n: int(((cid == c) & (pred_label == i)).sum())
                                                for i, n in enumerate(names)} for c in range(found)},
               "predicted_per_class": {n: int((pred_label == i).sum()) for i, n in enumerate(names)},
               "n_labelled": 0, "cluster_purity": None, "cluster_label_accuracy": None, "prediction_accuracy": None}
    if labels is None:
        summary["note"] = "no row has a label: cluster purity and accuracies are null"
    else:
        m = labels >= 0
        clustered = m & (cid >= 0)
        purity = cluster_purity(cid[m], labels[m])
        summary.update(n_labelled=int(m.sum()), cluster_purity=None if np.isnan(purity) else purity,
                       cluster_label_accuracy=float((cclass[clustered] == labels[clustered]).mean())
                       if clustered.any() else None,
                       prediction_accuracy=float((pred_label[m] == labels[m]).mean()))
        summary["note"] = ("purity and accuracies over the rows with a label" +
                           (", noise points left out" if (cid[m] < 0).any() else ""))
    atomic_write_json(out / "summary.json", summary)
    return summary
