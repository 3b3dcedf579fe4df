"""Bulk inference to catalogs: a model over a dataset, shard by shard, into Parquet (or FITS).

Memory stays flat whatever the dataset's size: one input shard is read,
predicted in batches and written as one Parquet part at a time. Parts are
written atomically next to the output (``OUT.parts/part-00000.parquet``);
rerunning after an interruption skips the parts already written, so no row
is lost or duplicated. When every part exists they are streamed into the
final file (one row group per part) and the parts are removed.

Columns: ``id_str``, ``ra``, ``dec``, ``survey``, ``p_<class>`` for every
class, ``pred_label`` (class index), ``pred_class`` (name), ``confidence``
(maximum probability), ``entropy`` (nats) and, on request, ``embedding``
(the penultimate-layer vector). Callers may add columns with ``extra``.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch.utils.data import DataLoader

from labelsky.data.datasets import ImageDataset
from labelsky.data.io import LabelskyDataset
from labelsky.evaluate.metrics import entropy
from labelsky.utils import atomic_path, atomic_write_json, default_device

__all__ = ["write_catalog", "CatalogWriteError"]


class CatalogWriteError(RuntimeError):
    """The output exists and belongs to another job, or cannot be written."""


def _shard_rows(ds: LabelskyDataset, shard: int) -> np.ndarray:
    return np.arange(ds._offsets[shard], ds._offsets[shard + 1], dtype=np.int64)


def write_catalog(ds: LabelskyDataset, out: str | Path, predict_fn: Callable, transform: Callable,
                  class_names, batch_size: int = 256, embedding: bool = False, fmt: str | None = None,
                  extra: Callable | None = None, job: dict | None = None, num_workers: int = 0,
                  progress: bool = True, overwrite: bool = False) -> Path:
    """Run ``predict_fn`` over every image of ``ds`` and write the catalog to ``out``.

    ``predict_fn(x)`` takes a preprocessed batch tensor and returns a dict
    with ``probs`` [N, K] (and ``embedding`` [N, D] when requested).
    ``transform`` preprocesses one image. ``extra(probs, embedding)`` may
    return a dict of additional per-row columns. ``job`` identifies the
    model and settings; a rerun with another ``job`` is refused (unless
    ``overwrite``) so parts of two models never mix.
    """
    from tqdm.auto import tqdm

    out = Path(out)
    fmt = fmt or ("fits" if out.suffix.lower() in (".fits", ".fit") else "parquet")
    if fmt not in ("parquet", "fits"):
        raise CatalogWriteError(f"unknown catalog format {fmt!r}; expected parquet or fits")
    parts_dir = out.with_name(out.name + ".parts")
    job = json.loads(json.dumps({"dataset": str(ds.path), "n": len(ds), "embedding": embedding, **(job or {})},
                                default=str))
    if overwrite:
        shutil.rmtree(parts_dir, ignore_errors=True)
        out.unlink(missing_ok=True)
    if out.exists():
        raise CatalogWriteError(f"{out} exists; pass overwrite to replace it")
    job_file = parts_dir / "job.json"
    if job_file.exists():
        if json.loads(job_file.read_text()) != job:
            raise CatalogWriteError(f"{parts_dir} holds an unfinished catalog of another model or dataset; "
                                    f"pass overwrite to start again")
    else:
        atomic_write_json(job_file, job)

    names = list(class_names)
    todo = [s for s in range(ds.n_shards) if not (parts_dir / f"part-{s:05d}.parquet").exists()]
    bar = tqdm(total=len(ds), initial=len(ds) - sum(len(_shard_rows(ds, s)) for s in todo), unit="obj",
               desc="catalog", disable=not progress, file=sys.stderr, dynamic_ncols=True)
    ids, ra, dec = ds.column("id_str"), ds.column("ra"), ds.column("dec")
    survey = ds.survey.name
    for s in todo:
        rows = _shard_rows(ds, s)
        loader = DataLoader(ImageDataset(ds, indices=rows, transform=transform), batch_size=batch_size,
                            shuffle=False, num_workers=num_workers)
        probs, embs = [], []
        with torch.inference_mode():
            for x, _ in loader:
                res = predict_fn(x)
                probs.append(np.asarray(res["probs"], dtype=np.float32))
                if embedding:
                    embs.append(np.asarray(res["embedding"], dtype=np.float32))
                bar.update(len(x))
        p = np.concatenate(probs) if probs else np.zeros((0, len(names)), np.float32)
        if not np.isfinite(p).all():
            bad = int(np.flatnonzero(~np.isfinite(p).all(axis=1))[0])
            raise CatalogWriteError(f"{ds.path}: non-finite probabilities for id_str={ids[rows[bad]]!r}")
        if not len(rows):  # an empty shard (a survey that saw none of its objects): an empty marker part
            with atomic_path(parts_dir / f"part-{s:05d}.parquet") as tmp:
                pq.write_table(pa.table({"id_str": pa.array([], pa.string())}), tmp)
            continue
        cols = {"id_str": pa.array(ids[rows].astype(str), pa.string()), "ra": pa.array(ra[rows], pa.float64()),
                "dec": pa.array(dec[rows], pa.float64()), "survey": pa.array([survey] * len(rows), pa.string())}
        for k, n in enumerate(names):
            cols[f"p_{n}"] = pa.array(p[:, k], pa.float32())
        pred = p.argmax(axis=1)
        cols["pred_label"] = pa.array(pred.astype(np.int16), pa.int16())
        cols["pred_class"] = pa.array([names[k] for k in pred], pa.string())
        cols["confidence"] = pa.array(p.max(axis=1), pa.float32())
        cols["entropy"] = pa.array(entropy(p).astype(np.float32), pa.float32())
        emb = np.concatenate(embs) if embs else None
        if extra is not None:
            for k, v in extra(p, emb).items():
                cols[k] = pa.array(np.asarray(v))
        if embedding:
            cols["embedding"] = pa.FixedSizeListArray.from_arrays(pa.array(emb.reshape(-1), pa.float32()),
                                                                  emb.shape[1])
        with atomic_path(parts_dir / f"part-{s:05d}.parquet") as tmp:
            pq.write_table(pa.table(cols), tmp)
    bar.close()
    _assemble(parts_dir, ds.n_shards, out, fmt)
    shutil.rmtree(parts_dir, ignore_errors=True)
    return out


def _assemble(parts_dir: Path, n_parts: int, out: Path, fmt: str) -> None:
    parts = [p for p in (parts_dir / f"part-{s:05d}.parquet" for s in range(n_parts))
             if pq.ParquetFile(p).metadata.num_rows > 0]  # empty shards leave empty marker parts
    if not parts:
        raise CatalogWriteError(f"{out}: the dataset has no objects")
    schema = pq.read_schema(parts[0])
    if fmt == "parquet":
        with atomic_path(out) as tmp:
            with pq.ParquetWriter(tmp, schema) as w:
                for p in parts:  # one part in memory at a time
                    w.write_table(pq.read_table(p))
        return
    from astropy.table import Table, vstack

    tables = []
    for p in parts:
        t = pq.read_table(p)
        d = {}
        for name in t.column_names:
            col = t.column(name)
            if pa.types.is_fixed_size_list(col.type):
                d[name] = np.asarray(col.combine_chunks().flatten()).reshape(len(col), col.type.list_size)
            elif pa.types.is_string(col.type):
                d[name] = np.asarray(col.to_pylist(), dtype=str)
            else:
                d[name] = col.to_numpy(zero_copy_only=False)
        tables.append(Table(d))
    table = vstack(tables) if tables else Table()
    for c in ("ra", "dec"):
        if c in table.colnames:
            table[c].unit = "deg"
    with atomic_path(out) as tmp:
        table.write(tmp, format="fits", overwrite=True)


def model_predict_fn(model, device: str | None = None) -> Callable:
    """A ``predict_fn`` for a LightningModule with ``predict_step`` returning probs/embedding."""
    dev = torch.device(default_device(device))
    model = model.to(dev).eval()

    def fn(x):
        out = model.predict_step(x.to(dev), 0)
        return {k: v.float().cpu().numpy() for k, v in out.items()}

    return fn
