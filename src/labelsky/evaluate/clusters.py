"""``labelsky cluster``: embed, map and cluster a run's embeddings of a dataset."""

from __future__ import annotations

import numpy as np

from labelsky.data.vote_trees import tree_of_columns
from labelsky.measures.embeddings import (
    ALGORITHMS,
    EMBEDDINGS,
    NAMING,
    _umap_module,
    cluster,
    cluster_purity,
    embed_points,
    name_clusters,
)

__all__ = ["cluster_run", "NAMING", "MIN_ROWS"]

#: the fewest galaxies a map and its clusters are made of
MIN_ROWS = 6


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
                title: str, label_names: list | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from labelsky.measures.figures import save_figure

    panels = [(f"{title}: cluster class", cluster_class, "noise", names)]
    if labels is not None:
        panels.append(("true label", labels, "no label", label_names or names))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.4 * len(panels), 4.2), squeeze=False)
    colours = plt.get_cmap("tab10")
    for ax, (name, lab, grey, names) in zip(axes[0], panels):
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


def cluster_run(run, ds, out, *, split=None, embed: str = "tsne", dim: int = 2, perplexity: float = 30.0,
                algorithm: str = "kmeans", k: int | None = None, min_cluster_size: int | None = None, seed: int = 0,
                device: str = "auto", overwrite: bool = False) -> dict:
    """Embed, map and cluster a run's penultimate features of a dataset's rows (``labelsky cluster``).

    Parameters
    ----------
    run
        A run folder of any method (:func:`labelsky.methods.run.load_run`): its embedding is mapped and
        clustered; a method whose output is class probabilities or vote fractions names the clusters by them.
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
    from labelsky.methods.predict import Predictor
    from labelsky.outputs import check_not_input, is_labelsky_output, marker_kind, prepare_output
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
    rows = np.arange(len(ds), dtype=np.int64)
    if split is not None:
        wanted = [split] if isinstance(split, str) else list(split)
        rows = rows[np.isin(ds.column("split").astype(str), wanted)]
    if not len(rows):
        raise DatasetError(f"{ds.path}: no rows in split(s) {split}")
    if len(rows) < MIN_ROWS:
        raise DatasetError(f"{ds.path}: {len(rows)} row(s){f' in split(s) {split}' if split else ''}; a map and its "
                           f"clusters need at least {MIN_ROWS} galaxies")
    check_not_input(out, [ds.path], what="clusters", inside=True)
    if out.is_dir() and is_labelsky_output(out) and marker_kind(out) != "clusters":
        raise OutputError(f"{out} holds a labelsky {marker_kind(out) or 'output of unknown kind'}, not clusters; "
                          f"choose another --out")
    if (out / "summary.json").is_file() and not overwrite:
        raise OutputError(f"{out} already holds finished clusters; pass --overwrite to redo them")
    predictor = Predictor(run, device=device)
    predictor.preprocess(ds)  # a method that cannot read this dataset says so here
    named = predictor.output in ("probs", "fractions")  # clusters named by classes (or vote answers)
    names = list(predictor.class_names) if named else []
    tree = tree_of_columns(names)
    if tree is not None:  # a whole vote tree: clusters named by the first question's answers
        names = names[:len(tree.questions[0].answers)]
    prepare_output(out, overwrite=overwrite, inputs=[ds.path, run], kind="clusters")

    pred = predictor.predict(ds, rows)
    xy = embed_points(pred["embedding"], method=embed, dim=dim, perplexity=perplexity, seed=seed)
    n_classes = len(names)
    if algorithm == "kmeans":
        k = int(k or n_classes or len(ds.classes) or 2)
        if k < 1:
            raise SettingsError(f"--k {k}: at least one cluster")
        cid = cluster(xy, min(k, len(rows)), seed=seed)
    else:
        cid = cluster(xy, algorithm="hdbscan", min_cluster_size=min_cluster_size)
    found = int(cid.max()) + 1 if (cid >= 0).any() else 0
    if named:
        probs = pred["output"][:, :n_classes]
        naming = name_clusters(cid, probs, n_classes, one_to_one=found == n_classes)
        pred_label, conf = probs.argmax(1), probs.max(1)
        labels = _labels_for(ds, rows, names)
    else:  # regression values or an embedding alone: clusters without names; purity against the dataset's labels
        naming = np.full(found, -1, np.int64)
        pred_label, conf = np.full(len(rows), -1, np.int64), np.full(len(rows), np.nan)
        labels = _labels_for(ds, rows, list(ds.classes))
    cclass = np.where(cid >= 0, naming[np.clip(cid, 0, None)] if found else -1, -1).astype(np.int64)

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
    if named:
        _map_figure(figure, xy, cclass, labels, names, embed)
    else:
        _map_figure(figure, xy, cid, labels, [f"cluster {c}" for c in range(found)], embed, list(ds.classes))

    sizes = {str(c): int((cid == c).sum()) for c in range(found)}
    summary = {"run": str(run), "dataset": str(ds.path), "split": split, "n": int(len(rows)), "embed": embed,
               "dim": dim, "perplexity": perplexity if embed == "tsne" else None, "algorithm": algorithm,
               "k": k if algorithm == "kmeans" else None, "seed": seed, "figure": figure.name, "clusters": found,
               "sizes": sizes,
               "n_noise": int((cid < 0).sum()),
               "cluster_classes": {str(c): names[int(naming[c])] if named else "" for c in range(found)},
               "naming": ("one-to-one" if found == n_classes else "majority") if named else "none",  # see NAMING
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
                       prediction_accuracy=float((pred_label[m] == labels[m]).mean()) if named else None)
        summary["note"] = ("purity and accuracies over the rows with a label" +
                           (", noise points left out" if (cid[m] < 0).any() else ""))
    atomic_write_json(out / "summary.json", summary)
    return summary
