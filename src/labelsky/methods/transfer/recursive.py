"""Recursive training with confident pseudo-labels (Khan et al. 2019, section III).

Round 0 trains on the labelled data. Every round ``r >= 1`` classifies every
row of the unlabelled datasets with the model of round ``r - 1``, optionally
keeps only predictions that agree with the class of their t-SNE + k-means
cluster, takes the ``k_per_class`` most confident of each class (confidence
``>= min_confidence``) and adds them, with their predicted labels, to the
*original* labelled training set (ordered by class, then by decreasing
confidence); then trains again. The settings are the
:class:`~labelsky.methods.transfer.module.TransferConfig`'s ``rounds``,
``k_per_class``, ``min_confidence``, ``cluster_filter`` and ``perplexity``.

Following the paper ("we pick the top 1000 spiral and top 1000 elliptical
galaxies [...] add them to our original SDSS training dataset, and use deep
transfer learning again to re-train"):

* pseudo-labels are **re-selected** every round from the whole unlabelled pool
  by the latest model (not accumulated): the training set of round ``r`` is the
  labelled set plus the selection of model ``r - 1``, so an early model's
  mistakes are not kept for good;
* every round **re-trains by transfer learning from the same starting
  weights** (``cfg.weights``, with the head first and progressive unfreezing),
  not by fine-tuning the previous round's model.

The labels of the unlabelled datasets are never used: only images go in, and
the selection depends on the model's outputs alone.

Layout of ``run_dir``::

    run_dir/config.json, checkpoints/best.ckpt   the final round's model: run_dir is itself a run
    run_dir/rounds.json                          per round: pseudo-labels per class, confident fraction, ...
    run_dir/confident_fraction.png               the confident fraction per round
    run_dir/round_<r>/                           a normal run folder per round (resumable), with
    run_dir/round_<r>/unlabelled.parquet         its predictions of every unlabelled row
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from labelsky.data.io import DatasetError
from labelsky.measures.embeddings import cluster, name_clusters, tsne
from labelsky.methods.parts import Part, describe_parts, describe_unlabelled
from labelsky.methods.predict import Predictor
from labelsky.methods.run import Run
from labelsky.methods.transfer.module import TransferClassifier, TransferConfig
from labelsky.methods.transfer.pseudolabel import select_pseudo_labels
from labelsky.methods.transfer.train import train_one
from labelsky.utils import atomic_path, atomic_write_json

__all__ = ["recursive_training", "cluster_map", "cluster_classes", "ROUNDS_FILE", "PREDICTIONS_FILE"]

ROUNDS_FILE = "rounds.json"
PREDICTIONS_FILE = "unlabelled.parquet"


def cluster_map(embedding: np.ndarray, probs: np.ndarray, seed: int = 0, perplexity: float = 30.0,
                method: str | None = "auto") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The 2-D t-SNE map of ``embedding`` (:func:`labelsky.measures.embeddings.tsne` with ``method``), its
    k-means clusters (one per class) and the class of the cluster each row falls into: clusters matched
    one-to-one to classes on the class-normalised summed probabilities (Hungarian,
    :func:`~labelsky.measures.embeddings.name_clusters`).

    Below ``max(6, classes)`` rows there is no map: the clusters are the predicted classes.
    """
    probs = np.asarray(probs, dtype=np.float64)
    n, n_classes = probs.shape
    if n < max(6, n_classes):
        pred = probs.argmax(1).astype(np.int64) if n else np.zeros(0, np.int64)
        return np.zeros((n, 2)), pred, pred
    xy = tsne(embedding, dim=2, perplexity=perplexity, seed=seed, method=method)
    cid = cluster(xy, n_classes, seed=seed)
    return xy, cid, name_clusters(cid, probs, n_classes, one_to_one=True)[cid]


def cluster_classes(embedding: np.ndarray, probs: np.ndarray, seed: int = 0, perplexity: float = 30.0,
                    method: str | None = "auto") -> np.ndarray:
    """The class of the t-SNE + k-means cluster each row falls into (see :func:`cluster_map`)."""
    return cluster_map(embedding, probs, seed=seed, perplexity=perplexity, method=method)[2]


def _predict_pool(model: TransferClassifier, pool, cfg: TransferConfig) -> dict:
    """Class probabilities and embeddings of every pool row (one prediction path, :mod:`labelsky.methods.predict`)."""
    predictor = Predictor(model, device=cfg.device)
    probs, embs = [], []
    for ds, rows in pool:
        p = predictor.predict(ds, rows)
        probs.append(p["output"])
        embs.append(p["embedding"])
    return {"output": np.concatenate(probs), "embedding": np.concatenate(embs)}


def _write_predictions(path: Path, pool, probs: np.ndarray, cclass: np.ndarray | None) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    source = np.concatenate([np.full(len(rows), i, np.int32) for i, (_, rows) in enumerate(pool)])
    cols = {"dataset": pa.array(source), "row": pa.array(np.concatenate([rows for _, rows in pool])),
            "id_str": pa.array(np.concatenate([ds.column("id_str")[rows].astype(str) for ds, rows in pool])),
            "pred_label": pa.array(probs.argmax(1).astype(np.int64)),
            "confidence": pa.array(probs.max(1).astype(np.float32)),
            "cluster_class": pa.array((cclass if cclass is not None else np.full(len(probs), -1)).astype(np.int64))}
    for k in range(probs.shape[1]):
        cols[f"p_{k}"] = pa.array(probs[:, k].astype(np.float32))
    with atomic_path(path) as tmp:
        pq.write_table(pa.table(cols), tmp)


def _read_predictions(path: Path, n_classes: int) -> tuple[np.ndarray, np.ndarray | None]:
    import pyarrow.parquet as pq

    t = pq.read_table(path)
    probs = np.stack([t.column(f"p_{k}").to_numpy() for k in range(n_classes)], axis=1)
    cclass = t.column("cluster_class").to_numpy()
    return probs, (None if (cclass < 0).all() else cclass)


def _figure(path: Path, rounds: list, min_confidence: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.8, 3.4))
    r = [e["round"] for e in rounds]
    ax.plot(r, [e["confident_fraction"] for e in rounds], marker="o", label=f"confidence >= {min_confidence:g}")
    ax.plot(r, [e["mean_confidence"] for e in rounds], marker="s", ls="--", label="mean confidence")
    ax.set_xlabel("round")
    ax.set_ylabel("unlabelled rows")
    ax.set_xticks(r)
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def _publish(best: Path, run_dir: Path) -> None:
    """Make ``run_dir/checkpoints/best.ckpt`` the final round's best checkpoint (a hard link, else a copy)."""
    dest = run_dir / "checkpoints" / "best.ckpt"
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name("best.ckpt.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(best, tmp)
    except OSError:
        shutil.copyfile(best, tmp)
    os.replace(tmp, dest)


def recursive_training(run_dir: str | Path, train_parts: Sequence[tuple], val_parts: Sequence[tuple],
                       unlabelled: Sequence[tuple], class_names: Sequence[str], cfg: TransferConfig, *,
                       overwrite: bool = False, progress: bool = True,
                       on_round: Callable | None = None) -> tuple[TransferClassifier, dict]:
    """Recursive pseudo-label training into ``run_dir`` (see the module docstring).

    Parameters
    ----------
    run_dir
        The run folder; ``run_dir/round_<r>/`` holds round ``r``. A rerun with the same settings and data keeps
        the finished rounds and resumes the unfinished one (more ``cfg.rounds`` add rounds); other settings or
        data are refused; ``overwrite`` starts again.
    train_parts, val_parts
        Labelled parts ``(dataset, rows, labels or None)``: training and model selection of every round.
    unlabelled
        Parts ``(dataset, rows[, labels])`` to pseudo-label; their labels are never used. A labelled row, and a
        test row of a labelled dataset, is never pseudo-labelled.
    class_names
        The classes of the labels.
    cfg
        The settings of every round (each round starts from ``cfg.weights``) and of the recursion.
    on_round
        ``on_round(r, model, entry, pool, output)`` after every round, finished now or kept from before:
        ``entry`` is the round's ``rounds.json`` entry, ``pool`` the ``(dataset, rows)`` pseudo-labelled,
        ``output`` the round's ``{"output": probabilities, "embedding"}`` of the pool rows.

    Returns
    -------
    (model, report)
        The final round's best model (eval mode) and the contents of ``rounds.json``.
    """
    run_dir = Path(run_dir)
    rounds = 1 if cfg.rounds is None else int(cfg.rounds)
    train_parts, val_parts = list(train_parts), list(val_parts)
    if not train_parts:
        raise DatasetError(f"{run_dir}: no labelled training rows")
    names = list(class_names)
    used = {}
    for ds, rows, _ in train_parts + val_parts:  # a labelled row is never pseudo-labelled as well
        key = str(Path(ds.path).resolve())
        test = np.flatnonzero(ds.column("split").astype(str) == "test")  # nor a test row of a labelled dataset
        used[key] = np.union1d(used.get(key, np.zeros(0, np.int64)), np.union1d(np.asarray(rows, np.int64), test))
    pool = [(part[0], np.setdiff1d(np.asarray(part[1], np.int64), used.get(str(Path(part[0].path).resolve()), []))
             .astype(np.int64)) for part in unlabelled]
    pool = [(ds, rows) for ds, rows in pool if len(rows)]
    if not pool:
        raise DatasetError("no unlabelled rows to pseudo-label")
    n_pool = sum(len(rows) for _, rows in pool)

    settings = {"rounds_selection": "reselect", "rounds_start": "weights", "k_per_class": int(cfg.k_per_class),
                "min_confidence": float(cfg.min_confidence), "cluster_filter": bool(cfg.cluster_filter),
                "perplexity": float(cfg.perplexity)}
    data = {"classes": names, "train": describe_parts(train_parts), "val": describe_parts(val_parts),
            "unlabelled": describe_unlabelled(pool)}
    inputs = [ds.path for ds, _, _ in train_parts + val_parts] + [ds.path for ds, _ in pool]
    if cfg.weights and cfg.weights not in ("timm", "none"):
        inputs.append(cfg.weights)
    run = Run.start(run_dir, method="transfer", config=cfg, data=data, seed=cfg.seed, overwrite=overwrite,
                    inputs=inputs, extra={"rounds": rounds})

    report_path = run_dir / ROUNDS_FILE
    old = {}
    if report_path.is_file():
        import json

        old = {e["round"]: e for e in json.loads(report_path.read_text()).get("rounds", [])}
    report = {"classes": names, "n_unlabelled": int(n_pool), **settings, "rounds": []}
    probs = cclass = None
    best = None
    kept = True  # rounds after one that trains again are never kept from before
    for r in range(rounds + 1):
        rdir = run_dir / f"round_{r}"
        pred_path = rdir / PREDICTIONS_FILE
        kept = kept and r in old and pred_path.is_file() and (rdir / "checkpoints" / "best.ckpt").is_file()
        if kept:
            probs, cclass = _read_predictions(pred_path, len(names))  # a finished round is kept as it is
            best = rdir / "checkpoints" / "best.ckpt"
            report["rounds"].append(old[r])
            if on_round is not None:
                model = TransferClassifier.load(best)
                on_round(r, model, old[r], pool, _predict_pool(model, pool, cfg))
            continue
        extra, per_class = [], np.zeros(len(names), np.int64)
        chosen_from = probs.max(1) if r > 0 else None  # the previous round's confidences
        if r > 0:
            sel, labels = select_pseudo_labels(probs, cclass if cfg.cluster_filter else None, cfg.k_per_class,
                                               cfg.min_confidence)
            per_class = np.bincount(labels, minlength=len(names))
            src = np.concatenate([np.full(len(rows), i) for i, (_, rows) in enumerate(pool)])
            flat = np.concatenate([rows for _, rows in pool])
            for i, (ds, _) in enumerate(pool):
                m = src[sel] == i
                if m.any():  # in the selection's order: by class, then by decreasing confidence
                    extra.append(Part(ds, flat[sel][m], labels[m]))
        model = train_one(rdir, train_parts + extra, val_parts, names, cfg, progress=progress)
        best = Run(rdir).best_checkpoint()
        pred = _predict_pool(model, pool, cfg)
        probs = pred["output"]
        cclass = cluster_classes(pred["embedding"], probs, seed=cfg.seed, perplexity=cfg.perplexity,
                                 method=cfg.tsne_method) if cfg.cluster_filter else None
        _write_predictions(pred_path, pool, probs, cclass)
        conf, pl = probs.max(1), probs.argmax(1)
        entry = {"round": r, "run": rdir.name,
                 "n_labelled_train": int(sum(len(rows) for _, rows, _ in train_parts)),
                 "pseudo_labels": {"n": int(per_class.sum()),
                                   "per_class": {c: int(per_class[i]) for i, c in enumerate(names)},
                                   "selected_by_round": r - 1 if r else None,
                                   # the largest confidence among the galaxies they were chosen from
                                   "max_confidence": float(chosen_from.max()) if r else None},
                 "confident_fraction": float((conf >= cfg.min_confidence).mean()),
                 "mean_confidence": float(conf.mean()),
                 "predicted_per_class": {c: int((pl == i).sum()) for i, c in enumerate(names)},
                 "cluster_agreement": float((cclass == pl).mean()) if cclass is not None else None}
        report["rounds"].append(entry)
        report["final_round"] = r
        atomic_write_json(report_path, report)
        _figure(run_dir / "confident_fraction.png", report["rounds"], cfg.min_confidence)
        if on_round is not None:
            on_round(r, model, entry, pool, pred)
    report["final_round"] = rounds
    atomic_write_json(report_path, report)
    _figure(run_dir / "confident_fraction.png", report["rounds"], cfg.min_confidence)
    _publish(best, run_dir)
    run.record(final_round=f"round_{rounds}", classes=names)
    return TransferClassifier.load(run_dir / "checkpoints" / "best.ckpt"), report
