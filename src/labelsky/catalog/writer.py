"""Bulk inference to catalogs: a model over a dataset, shard by shard, into Parquet (or FITS).

The unit of work is one image shard of the dataset: it is read in one go,
preprocessed as a batch, predicted in mini-batches and written as one Parquet
*part* (``part-00042.parquet`` for shard 42). A part is written to a
temporary name and renamed into place, so it either exists complete or not at
all, and the set of parts present *is* the record of finished shards: a
rerun after an interruption (even ``kill -9``) checks each part's row count,
removes stray temporary files and redoes only the missing shards, so no
``id_str`` is lost or duplicated. ``_job.json`` identifies the model and
settings; parts of another job are never mixed in.

Engines (:func:`write_catalog` ``engine=``, strategy objects):

:class:`~labelsky.catalog.local.LocalEngine`  one process; reading + preprocessing of the next shards
           and writing of finished parts run in background threads while the
           model computes.
:class:`~labelsky.catalog.ray_engine.RayEngine`  Ray Data: shards are read and predicted by a pool of
           actors (CPU or GPU each) that write the parts; a local Ray
           instance by default, a cluster with ``address``.

Both produce the same rows (the same code, :mod:`labelsky.catalog.shards`, turns a
shard into a part).

Layouts: ``OUT.parquet`` (one file, one row group per shard; parts kept in
``OUT.parquet.parts/`` until the end), ``OUT.fits``, or a directory ``OUT/``
(``fmt="partitioned"``, or a path without suffix): the parts themselves, plus
``_metadata`` / ``_common_metadata`` written last, so that pyarrow, pandas,
Dask or Spark open the catalog as one dataset without listing files — the
layout for catalogs of 10^8 rows.

Columns: ``id_str``, ``ra``, ``dec``, ``survey``, ``p_<class>`` for every
class, ``pred_label`` (class index), ``pred_class`` (name), ``confidence``
(maximum probability), ``entropy`` (nats), the predictor's extra columns
(``unknown`` for domain-adaptation runs) and, on request, ``embedding``
(regression runs: one column per value, e.g. ``ln_richness``; embedding-only
runs: the ``embedding`` column).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from labelsky.catalog.shards import (  # noqa: F401  (re-exported: the shard functions used to live here)
    CatalogWriteError,
    catalog_table,
    load_shard,
    part_path,
    predict_batches,
    predict_shard,
    shard_table,
    write_part,
)
from labelsky.data.io import LabelskyDataset
from labelsky.outputs import OutputLock
from labelsky.utils import atomic_path, atomic_write_json

__all__ = ["write_catalog", "CatalogWriteError", "ENGINES", "FORMATS", "predict_shard", "is_labelsky_catalog"]

ENGINES = ("local", "ray")
FORMATS = ("parquet", "fits", "partitioned")


def _done(parts_dir: Path, ds: LabelskyDataset, shard: int) -> bool:
    """A part counts as done when it exists, is readable and has the shard's row count."""
    p = part_path(parts_dir, shard)
    if not p.exists():
        return False
    try:
        ok = pq.ParquetFile(p).metadata.num_rows == len(ds.shard_rows(shard))
    except Exception:  # noqa: BLE001  (unreadable: written by something else; redo it)
        ok = False
    if not ok:
        p.unlink()
    return ok


def write_catalog(ds: LabelskyDataset, out: str | Path, predictor, *, transform=None, batch_size: int = 256,
                  embedding: bool = False, fmt: str | None = None, job: dict | None = None, engine=None,
                  progress: bool = True, overwrite: bool = False) -> Path:
    """Run a model over every image of ``ds`` and write the catalog to ``out``.

    Parameters
    ----------
    predictor
        A :class:`~labelsky.methods.predict.Predictor` (of a run folder for the Ray engine, whose actors each
        load it).
    transform
        Preprocesses a batch of images (default: the predictor's, i.e. the run's own).
    batch_size, embedding
        Images per forward pass; add the embedding column (always there for an embedding-only method).
    fmt
        ``parquet``, ``fits`` or ``partitioned`` (default: from ``out``'s suffix).
    job
        What identifies the model and settings; a rerun with another ``job`` is refused (unless ``overwrite``)
        so parts of two models never mix.
    engine
        :class:`~labelsky.catalog.local.LocalEngine` (default) or :class:`~labelsky.catalog.ray_engine.RayEngine`
        (or their names, ``"local"`` / ``"ray"``).

    While it runs, ``OUT.lock`` keeps a second writer of the same output out.
    """
    engine = _engine(engine)
    out = Path(out)
    suffix = out.suffix.lower()
    if fmt is None and suffix and suffix not in (".fits", ".fit", ".parquet"):
        raise CatalogWriteError(f"--out {out}: a catalog is FILE.parquet, FILE.fits or a folder (no suffix); "
                                f"{suffix} is not written (use --format to force one)")
    fmt = fmt or ("fits" if suffix in (".fits", ".fit") else "parquet" if suffix == ".parquet" else "partitioned")
    if fmt not in FORMATS:
        raise CatalogWriteError(f"unknown catalog format {fmt!r}; expected one of {FORMATS}")
    transform = transform if transform is not None else predictor.preprocess(ds)
    parts_dir = out if fmt == "partitioned" else out.with_name(out.name + ".parts")
    done_marker = out / "_metadata" if fmt == "partitioned" else out
    job = json.loads(json.dumps({"dataset": str(ds.path), "n": len(ds), "n_shards": ds.n_shards,
                                 "embedding": embedding, "classes": list(predictor.class_names),
                                 "transform": transform.describe(), **(job or {})}, default=str))
    from labelsky.outputs import check_not_input

    check_not_input(out, [ds.path], what="catalog", inside=True)  # nothing inside the dataset is ever replaced
    check_not_input(out, [getattr(predictor, "run", None)], what="catalog")  # beside the checkpoints is fine
    if fmt == "partitioned" and out.is_dir() and not (out / "_job.json").exists() and any(out.iterdir()):
        raise CatalogWriteError(f"{out} is a non-empty folder that is not a labelsky catalog; choose another")
    if fmt == "partitioned" and out.is_file():
        raise CatalogWriteError(f"{out} is a file; a partitioned catalog is a folder")
    try:
        with OutputLock(out, doing="written", error=CatalogWriteError):
            return _write_locked(ds, out, predictor, transform, batch_size, embedding, fmt, parts_dir, done_marker,
                                 job, engine, progress, overwrite)
    except OSError as err:
        from labelsky.errors import disk_full

        if disk_full(err):
            raise CatalogWriteError(f"no space left on the disk of {out} while writing the catalog; the parts "
                                    f"written before are kept (in {parts_dir}): free space and rerun the same "
                                    f"command to resume") from None
        raise


def _engine(engine):
    """An engine object from ``None`` / a name / an engine."""
    from labelsky.catalog.local import LocalEngine
    from labelsky.catalog.ray_engine import RayEngine

    if engine is None or engine == "local":
        return LocalEngine()
    if engine == "ray":
        return RayEngine()
    if isinstance(engine, (LocalEngine, RayEngine)):
        return engine
    raise CatalogWriteError(f"unknown engine {engine!r}; expected one of {ENGINES} (or LocalEngine / RayEngine)")


def _write_locked(ds, out, predictor, transform, batch_size, embedding, fmt, parts_dir, done_marker, job, engine,
                  progress, overwrite) -> Path:
    from tqdm.auto import tqdm

    if overwrite:
        if fmt == "partitioned":
            from labelsky.outputs import check_not_current

            check_not_current(out)
        if out.is_file() and not is_labelsky_catalog(out):
            raise CatalogWriteError(f"{out} exists and was not written by labelsky catalog; it is never replaced: "
                                    f"choose another --out")
        _remove_parts(parts_dir)
        if out.is_file():
            out.unlink()
    if done_marker.exists():
        raise CatalogWriteError(f"{out} exists; pass --overwrite to replace it")
    job_file = parts_dir / "_job.json"
    if job_file.exists():
        if json.loads(job_file.read_text()) != job:
            raise CatalogWriteError(f"{parts_dir} holds an unfinished catalog of another model or dataset; "
                                    f"pass --overwrite to start again")
    else:
        atomic_write_json(job_file, job)
    for stray in parts_dir.glob(".part-*.tmp"):  # a part being written when the last run was killed
        stray.unlink(missing_ok=True)

    todo = [s for s in range(ds.n_shards) if len(ds.shard_rows(s)) and not _done(parts_dir, ds, s)]
    n_todo = sum(len(ds.shard_rows(s)) for s in todo)
    bar = tqdm(total=len(ds), initial=len(ds) - n_todo, unit="obj", desc=f"catalog ({engine.name})",
               disable=not progress, file=sys.stderr, dynamic_ncols=True)
    try:
        engine.run(ds, parts_dir, todo, predictor, transform, batch_size, embedding, bar.update)
    finally:
        bar.close()  # an error message then starts on a line of its own
    missing = [s for s in range(ds.n_shards) if len(ds.shard_rows(s)) and not part_path(parts_dir, s).exists()]
    if missing:
        raise CatalogWriteError(f"{parts_dir}: shards {missing[:10]} were not written; rerun to finish")
    _assemble(ds, parts_dir, out, fmt)
    if fmt != "partitioned":
        _remove_parts(parts_dir)
    return out


#: the files a catalog's parts folder holds, all labelsky's: the only ones ever deleted there
_PART_FILES = ("part-*.parquet", ".part-*.tmp", "_job.json", "_metadata", "_common_metadata")


def _remove_parts(parts_dir: Path) -> None:
    """Delete the files labelsky wrote in a parts folder (and the folder when nothing else is left); anything
    else (a file copied in) stays, and is named."""
    if not parts_dir.is_dir():
        return
    for pattern in _PART_FILES:
        for p in parts_dir.glob(pattern):
            if p.is_file() and not p.is_symlink():
                p.unlink()
    others = sorted(p.name for p in parts_dir.iterdir())
    if others:
        import warnings

        from labelsky.errors import LabelskyWarning

        warnings.warn(f"{parts_dir}: left in place what labelsky did not write there: {', '.join(others[:10])}"
                      + (f" and {len(others) - 10} more" if len(others) > 10 else ""), LabelskyWarning, stacklevel=3)
    else:
        parts_dir.rmdir()


#: what marks a catalog file as labelsky's: Parquet schema metadata key, FITS header keyword CREATOR
CATALOG_MARK = b"labelsky_catalog"


def is_labelsky_catalog(path: str | Path) -> bool:
    """True when ``path`` is a catalog file ``labelsky catalog`` wrote (its mark is in the file)."""
    path = Path(path)
    try:
        if path.suffix.lower() in (".fits", ".fit"):
            from astropy.io import fits

            return fits.getheader(path, 1).get("CREATOR", "") == "labelsky catalog"
        return CATALOG_MARK in (pq.read_schema(path).metadata or {})
    except Exception:  # noqa: BLE001 - anything unreadable is not labelsky's
        return False


def _assemble(ds: LabelskyDataset, parts_dir: Path, out: Path, fmt: str) -> None:
    from labelsky._version import __version__

    parts = [part_path(parts_dir, s) for s in range(ds.n_shards) if len(ds.shard_rows(s))]
    if not parts:
        raise CatalogWriteError(f"{out}: the dataset has no objects")
    schema = pq.read_schema(parts[0])
    schema = schema.with_metadata({**(schema.metadata or {}), CATALOG_MARK: __version__.encode()})
    if fmt == "partitioned":
        collected = []
        for p in parts:
            md = pq.ParquetFile(p).metadata
            md.set_file_path(p.name)
            collected.append(md)
        with atomic_path(out / "_common_metadata") as tmp:
            pq.write_metadata(schema, tmp)
        with atomic_path(out / "_metadata") as tmp:  # written last: its presence marks a finished catalog
            pq.write_metadata(schema, tmp, metadata_collector=collected)
        return
    if fmt == "parquet":
        with atomic_path(out) as tmp:
            with pq.ParquetWriter(tmp, schema) as w:
                for p in parts:  # one part in memory at a time
                    w.write_table(pq.read_table(p).replace_schema_metadata(schema.metadata))
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
    table.meta["CREATOR"] = "labelsky catalog"
    with atomic_path(out) as tmp:
        table.write(tmp, format="fits", overwrite=True)
