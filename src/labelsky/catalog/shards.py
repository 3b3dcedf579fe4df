"""Shard-level catalog code shared by :mod:`~labelsky.catalog.writer` and both engines.

A *predictor* is what turns a batch of preprocessed images into columns:
:class:`labelsky.methods.predict.Predictor` (``output``: its kind;
``class_names``; ``predictor(x) -> {"output", "embedding"}``;
``extra(output, embedding) -> columns``; ``preprocess(dataset)``).

One image shard of a dataset is loaded and preprocessed (:func:`load_shard`),
predicted in mini-batches (:func:`predict_batches`), turned into catalog rows
(:func:`shard_table`, :func:`catalog_table`; :func:`predict_shard` does both)
and written atomically as one Parquet part (:func:`write_part`, at
:func:`part_path`). The local and Ray engines run this same code, so they
give the same rows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from labelsky.data.io import LabelskyDataset
from labelsky.data.vote_trees import tree_of_columns
from labelsky.errors import OutputError
from labelsky.measures.metrics import entropy
from labelsky.utils import atomic_path

__all__ = ["CatalogWriteError", "part_path", "catalog_table", "predict_batches", "shard_table", "predict_shard",
           "load_shard", "write_part"]


class CatalogWriteError(OutputError):
    """The output exists and belongs to another job, or cannot be written."""


def part_path(parts_dir: Path, shard: int) -> Path:
    return Path(parts_dir) / f"part-{shard:05d}.parquet"


def catalog_table(ds: LabelskyDataset, rows: np.ndarray, output: np.ndarray | None, class_names, embedding=None,
                  extra: dict | None = None, kind: str = "probs") -> pa.Table:
    """The catalog rows of dataset rows ``rows`` from their predictions (and embeddings).

    ``kind`` is what ``output`` holds: class probabilities or vote fractions
    (columns ``p_<name>``, then ``pred_label``, ``pred_class``, ``confidence``,
    ``entropy``; for the answers of a whole Galaxy Zoo decision tree, ``p_<question>_<answer>``
    is the fraction among the volunteers asked that question, ``p_<question>_<answer>_unconditional`` the
    product along the tree, and the class columns follow the first question), regression ``values`` (one column
    per name, as named), or nothing (``embedding``: a self-supervised extractor, whose catalog is its
    embedding column).
    """
    ids = ds.column("id_str")[rows]
    checked = embedding if kind == "embedding" else output
    if checked is not None and not np.isfinite(checked).all():
        bad = int(np.flatnonzero(~np.isfinite(checked).reshape(len(checked), -1).all(axis=1))[0])
        raise CatalogWriteError(f"{ds.path}: non-finite predictions for id_str={ids[bad]!r}")
    cols = {"id_str": pa.array(ids.astype(str), pa.string()),
            "ra": pa.array(ds.column("ra")[rows], pa.float64()),
            "dec": pa.array(ds.column("dec")[rows], pa.float64()),
            "survey": pa.array([ds.survey.name] * len(rows), pa.string())}
    names = list(class_names)
    if kind == "embedding":
        return _finish(cols, extra, embedding)
    if kind == "values":
        for k, n in enumerate(names):
            cols[n] = pa.array(output[:, k], pa.float32())
        return _finish(cols, extra, embedding)
    for k, n in enumerate(names):
        cols[f"p_{n}"] = pa.array(output[:, k], pa.float32())
    tree = tree_of_columns(names) if kind == "fractions" else None
    if tree is not None:  # every answer of a decision tree: unconditional probabilities; classes from the first
        unconditional = tree.unconditional(output)
        for k, n in enumerate(names):
            cols[f"p_{n}_unconditional"] = pa.array(unconditional[:, k], pa.float32())
        first = len(tree.questions[0].answers)
        output, names = output[:, :first], names[:first]
    pred = output.argmax(axis=1)
    cols["pred_label"] = pa.array(pred.astype(np.int16), pa.int16())
    cols["pred_class"] = pa.array([names[k] for k in pred], pa.string())
    cols["confidence"] = pa.array(output.max(axis=1), pa.float32())
    cols["entropy"] = pa.array(entropy(output).astype(np.float32), pa.float32())
    return _finish(cols, extra, embedding)


def _finish(cols: dict, extra: dict | None, embedding) -> pa.Table:
    for k, v in (extra or {}).items():
        cols[k] = pa.array(np.asarray(v))
    if embedding is not None:
        cols["embedding"] = pa.FixedSizeListArray.from_arrays(pa.array(embedding.reshape(-1), pa.float32()),
                                                              embedding.shape[1])
    return pa.table(cols)


def predict_batches(x: torch.Tensor, predictor, batch_size: int, embedding: bool):
    """Outputs [n, K] (``None`` for an embedding-only method) and embeddings [n, D] of preprocessed images
    ``x``, ``batch_size`` at a time; the embedding is always kept for an embedding-only method."""
    embedding = embedding or predictor.output == "embedding"
    outs, embs = [], []
    for i in range(0, len(x), batch_size):
        res = predictor(x[i:i + batch_size])
        if res.get("output") is not None:
            outs.append(np.asarray(res["output"], dtype=np.float32))
        if embedding:
            embs.append(np.asarray(res["embedding"], dtype=np.float32))
    return (np.concatenate(outs) if outs else None), (np.concatenate(embs) if embedding else None)


def shard_table(ds: LabelskyDataset, shard: int, output, emb, predictor) -> pa.Table:
    return catalog_table(ds, ds.shard_rows(shard), output, predictor.class_names, emb, predictor.extra(output, emb),
                         kind=predictor.output)


def predict_shard(ds: LabelskyDataset, shard: int, x: torch.Tensor, predictor, batch_size: int,
                  embedding: bool) -> pa.Table:
    """The catalog part of one shard from its preprocessed images ``x`` [n, C, H, W]."""
    return shard_table(ds, shard, *predict_batches(x, predictor, batch_size, embedding), predictor)


def load_shard(ds: LabelskyDataset, shard: int, transform) -> torch.Tensor:
    """Read and preprocess every image of a shard in one go."""
    if getattr(transform, "per_row", False):  # e.g. per-row pixel scales of rendered cutouts
        return transform.batch(ds.shard_images(shard), rows=ds.shard_rows(shard))
    return transform.batch(ds.shard_images(shard))


def write_part(parts_dir: Path, shard: int, table: pa.Table) -> None:
    with atomic_path(part_path(parts_dir, shard)) as tmp:
        pq.write_table(table, tmp)
