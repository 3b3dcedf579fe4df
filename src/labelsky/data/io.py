"""labelsky's dataset format: one layout for simulated and real data.

A *dataset* is a folder::

    DATASET/
      labelsky.json               metadata: survey spec, bands, image shape, classes, seed, ...
      catalog/part-00000.parquet  catalog rows of shard 0 (one row per object)
      images/shard-00000.h5       float32 flux images [n, bands, H, W] of shard 0 (nanomaggies)
      ...

Why HDF5 shards: each shard is an ordinary HDF5 file (readable with h5py
alone, like Galaxy10) chunked one object per chunk, so a reader touches only
the objects it asks for and a data set larger than memory is never loaded
whole; shards are the unit of parallel writing (a simulator worker or an
importer writes one shard at a time), of atomic writes (each shard file
appears under its final name only when complete, so an interrupted job resumes
at the first missing shard) and of parallel reading (one shard per task in a
distributed engine). Zarr would serve too but adds a dependency whose on-disk
format is still changing; raw memory-mapped arrays carry no metadata.

The catalog's core columns (see :data:`CORE_COLUMNS`) are validated on
writing and on opening; errors name the file, row and field. Missing values
use sentinels: ``label = -1`` (no label), vote counts ``-1`` (no votes),
``richness = NaN``.
"""

from __future__ import annotations

import datetime as _dt
import errno
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from labelsky.data.surveys import Survey, SurveyError, get_survey
from labelsky.errors import InputDataError, OutputError
from labelsky.outputs import check_not_input, prepare_output
from labelsky.utils import atomic_path, atomic_write_json

__all__ = [
    "FORMAT_VERSION",
    "CORE_COLUMNS",
    "SPLITS",
    "VOTE_COLUMNS",
    "CatalogError",
    "DatasetError",
    "DatasetWriter",
    "LabelskyDataset",
    "open_dataset",
    "validate_catalog",
]

FORMAT_VERSION = 1
META_FILE = "labelsky.json"
SPLITS = ("train", "val", "test", "unlabelled")
#: Galaxy-Zoo-style vote counts for "smooth / featured / artifact".
VOTE_COLUMNS = ("votes_smooth", "votes_featured", "votes_artifact")

#: Core catalog columns: name -> (arrow type, description).
CORE_COLUMNS: dict[str, tuple[pa.DataType, str]] = {
    "id_str": (pa.string(), "unique object identifier, shared by every survey that observes the object"),
    "ra": (pa.float64(), "right ascension, degrees [0, 360)"),
    "dec": (pa.float64(), "declination, degrees [-90, 90]"),
    "survey": (pa.string(), "survey name"),
    "split": (pa.string(), "one of train / val / test / unlabelled"),
    "label": (pa.int16(), "class index into the dataset's class list, -1 if unknown"),
    "label_name": (pa.string(), "class name, empty if unknown"),
    "votes_smooth": (pa.int32(), "Galaxy Zoo votes for 'smooth', -1 if none"),
    "votes_featured": (pa.int32(), "Galaxy Zoo votes for 'featured or disk', -1 if none"),
    "votes_artifact": (pa.int32(), "Galaxy Zoo votes for 'star or artifact', -1 if none"),
    "richness": (pa.float32(), "cluster richness lambda, NaN if not a cluster"),
    "shard": (pa.int32(), "image shard index"),
    "row": (pa.int32(), "row inside the image shard"),
}


class DatasetError(InputDataError):
    """A dataset folder is missing, incomplete or inconsistent."""


class CatalogError(DatasetError):
    """A catalog table breaks the schema; the message names file, row and field."""


def _row_desc(table: pa.Table, i: int) -> str:
    if "id_str" in table.column_names:
        try:
            return f"row {i} (id_str={table.column('id_str')[i].as_py()!r})"
        except Exception:  # noqa: BLE001 - best effort only
            pass
    return f"row {i}"


def _first_bad(mask: np.ndarray) -> int | None:
    idx = np.flatnonzero(mask)
    return int(idx[0]) if idx.size else None


def validate_catalog(table: pa.Table, source: str = "<catalog>", n_classes: int | None = None,
                     check_unique: bool = True) -> pa.Table:
    """Check ``table`` against :data:`CORE_COLUMNS`; return it cast to the core types.

    Raises :class:`CatalogError` naming ``source``, the first bad row and field,
    and what was expected.
    """
    missing = [c for c in CORE_COLUMNS if c not in table.column_names]
    if missing:
        raise CatalogError(f"{source}: missing column(s) {missing}; a labelsky catalog needs {list(CORE_COLUMNS)}")
    cols = {}
    for name, (typ, desc) in CORE_COLUMNS.items():
        col = table.column(name)
        if col.null_count:
            i = _first_bad(np.asarray(col.is_null()))
            raise CatalogError(f"{source}: {_row_desc(table, i)}: field '{name}' is null; expected {desc}")
        try:
            cols[name] = col.cast(typ)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
            raise CatalogError(f"{source}: field '{name}' has type {col.type}, expected {typ} ({desc}): "
                               f"{err}") from None
    out = table
    for name, col in cols.items():
        out = out.set_column(out.column_names.index(name), name, col)

    ids = np.asarray(out.column("id_str").to_pylist(), dtype=object)
    bad = _first_bad(np.array([not s for s in ids], dtype=bool))
    if bad is not None:
        raise CatalogError(f"{source}: row {bad}: field 'id_str' is empty; expected a unique identifier")
    if check_unique:
        _, first, counts = np.unique(ids.astype(str), return_index=True, return_counts=True)
        if (counts > 1).any():
            dup = ids[first[np.argmax(counts > 1)]]
            rows = np.flatnonzero(ids == dup)[:5].tolist()
            raise CatalogError(f"{source}: field 'id_str' = {dup!r} appears more than once (rows {rows}); ids must "
                               f"be unique")
    for name, lo, hi, closed_hi in (("ra", 0.0, 360.0, False), ("dec", -90.0, 90.0, True)):
        v = out.column(name).to_numpy()
        okhi = v <= hi if closed_hi else v < hi
        i = _first_bad(~(np.isfinite(v) & (v >= lo) & okhi))
        if i is not None:
            rng = f"[{lo:g}, {hi:g}{']' if closed_hi else ')'}"
            raise CatalogError(f"{source}: {_row_desc(out, i)}: field '{name}' = {float(v[i])!r} is outside {rng} "
                               f"degrees")
    splits = np.asarray(out.column("split").to_pylist(), dtype=object)
    i = _first_bad(~np.isin(splits.astype(str), SPLITS))
    if i is not None:
        raise CatalogError(f"{source}: {_row_desc(out, i)}: field 'split' = {splits[i]!r}; expected one of {SPLITS}")
    label = out.column("label").to_numpy()
    hi = n_classes if n_classes is not None else np.iinfo(np.int16).max
    i = _first_bad((label < -1) | (label >= hi))
    if i is not None:
        raise CatalogError(f"{source}: {_row_desc(out, i)}: field 'label' = {label[i]}; expected -1 or a class index "
                           f"in [0, {hi})")
    for name in VOTE_COLUMNS:
        v = out.column(name).to_numpy()
        i = _first_bad(v < -1)
        if i is not None:
            raise CatalogError(f"{source}: {_row_desc(out, i)}: field '{name}' = {v[i]}; expected a count >= 0 or -1")
    for name in ("shard", "row"):
        v = out.column(name).to_numpy()
        i = _first_bad(v < 0)
        if i is not None:
            raise CatalogError(f"{source}: {_row_desc(out, i)}: field '{name}' = {v[i]}; expected >= 0")
    return out


def _shard_name(i: int) -> tuple[str, str]:
    return f"images/shard-{i:05d}.h5", f"catalog/part-{i:05d}.parquet"


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def _version() -> str:
    from labelsky._version import __version__

    return __version__


def ids_digest(ids) -> str:
    """The digest of a shard's object ids, in order (kept in its image file beside the images)."""
    import hashlib

    return hashlib.sha1("\n".join(map(str, ids)).encode()).hexdigest()


class DatasetWriter:
    """Write a dataset shard by shard; every producer (simulator, importers) uses it.

    Shards are written atomically and may be written in any order, by several
    processes at once (each writes its own shard). A writer opened on a folder
    that holds an unfinished dataset with the same ``config`` resumes: shards
    already on disk are kept and :meth:`has_shard` reports them.

    Parameters
    ----------
    path
        Dataset folder.
    survey
        Survey spec (or name) of the images.
    image_shape
        (bands, H, W) of every image.
    classes
        Class names; catalog ``label`` values index this list.
    n_shards
        Expected number of shards (needed for :meth:`finalize`).
    config
        Anything that defines the content (e.g. the simulation settings).
        Resuming is refused when it differs from the one on disk.
    overwrite
        Replace an existing dataset at ``path`` (only one labelsky made; see
        :func:`labelsky.outputs.prepare_output`).
    inputs
        Paths the dataset is made from: never replaced, never written into.
    """

    def __init__(self, path: str | Path, survey: Survey | str, image_shape: Sequence[int],
                 classes: Sequence[str] = (), n_shards: int | None = None, config: dict | None = None,
                 overwrite: bool = False, producer: str = "labelsky", extra_meta: dict | None = None,
                 inputs: Sequence[str | Path] = ()):
        self.path = Path(path)
        self.survey = get_survey(survey)
        self.image_shape = tuple(int(s) for s in image_shape)
        if len(self.image_shape) != 3 or self.image_shape[0] != self.survey.n_bands:
            raise DatasetError(f"{self.path}: image_shape {self.image_shape} must be (bands={self.survey.n_bands}, "
                               f"H, W)")
        self.classes = list(classes)
        self.n_shards = n_shards
        self.config = json.loads(json.dumps(config or {}, default=str))
        meta_path = self.path / META_FILE
        if overwrite or not meta_path.exists():
            prepare_output(self.path, overwrite=overwrite, inputs=inputs, kind="dataset")
        else:
            check_not_input(self.path, inputs)
            for stray in list(self.path.glob("images/.*.tmp")) + list(self.path.glob("catalog/.*.tmp")):
                stray.unlink(missing_ok=True)  # half-written by an interrupted run: never a finished shard
            old = _read_meta(self.path)
            if old.get("complete"):
                raise DatasetError(f"{self.path} already holds a complete dataset; pass --overwrite to replace it")
            if old.get("config") != self.config:
                prev = old.get("config") or {}
                keys = sorted(k for k in set(prev) | set(self.config) if prev.get(k) != self.config.get(k))
                what = ", ".join("the input catalog's content or its image files" if k == "records_sha256" else k
                                 for k in keys)
                raise DatasetError(f"{self.path} holds an unfinished dataset made from other inputs or settings "
                                   f"({what}); its shards would mix with new ones: rerun with the original "
                                   f"inputs, or pass --overwrite to start again")
        (self.path / "images").mkdir(parents=True, exist_ok=True)
        (self.path / "catalog").mkdir(parents=True, exist_ok=True)
        self.meta = {
            "format": "labelsky-dataset",
            "format_version": FORMAT_VERSION,
            "survey": self.survey.to_dict(),
            "bands": list(self.survey.bands),
            "image_shape": list(self.image_shape),
            "flux_unit": "nanomaggy",
            "classes": self.classes,
            "n_shards": n_shards,
            "producer": producer,
            "labelsky_version": _version(),
            "config": self.config,
            "complete": False,
        }
        if extra_meta:
            self.meta.update(extra_meta)
        if not meta_path.exists():
            self.meta["created"] = _now()
            atomic_write_json(meta_path, self.meta)
        else:
            self.meta["created"] = _read_meta(self.path).get("created", _now())

    def has_shard(self, index: int) -> bool:
        """True when shard ``index`` is complete on disk (its catalog part is written last)."""
        img, cat = _shard_name(index)
        return (self.path / img).exists() and (self.path / cat).exists()

    def write_shard(self, index: int, images: np.ndarray, columns: dict[str, Any] | pa.Table,
                    masks: np.ndarray | None = None) -> None:
        """Write shard ``index``: ``images`` [n, bands, H, W] and the n catalog rows.

        ``shard`` and ``row`` columns are filled in here. The catalog is
        validated before anything is written.
        """
        import h5py

        images = np.asarray(images, dtype=np.float32)
        if images.ndim != 4 or images.shape[1:] != self.image_shape:
            raise DatasetError(f"{self.path}: shard {index}: images have shape {images.shape}, "
                               f"expected (n, {', '.join(map(str, self.image_shape))})")
        n = images.shape[0]
        table = columns if isinstance(columns, pa.Table) else pa.table(columns)
        if table.num_rows != n:
            raise DatasetError(f"{self.path}: shard {index}: {table.num_rows} catalog rows for {n} images")
        for name, values in (("shard", np.full(n, index, np.int32)), ("row", np.arange(n, dtype=np.int32))):
            arr = pa.array(values, pa.int32())
            if name in table.column_names:
                table = table.set_column(table.column_names.index(name), name, arr)
            else:
                table = table.append_column(name, arr)
        img_rel, cat_rel = _shard_name(index)
        table = validate_catalog(table, source=f"{self.path / cat_rel}", n_classes=len(self.classes) or None)
        # the HDF5 file is built in memory and written as plain bytes: a full disk is then an ordinary OSError
        # (HDF5 itself crashes the process when a write fails), and the same bytes as writing it directly
        buf = io.BytesIO()
        with h5py.File(buf, "w", track_order=False) as f:
            f.attrs["ids_sha1"] = ids_digest(table.column("id_str").to_pylist())  # which objects: swaps show
            f.create_dataset("images", data=images, chunks=(1, *self.image_shape) if n else None,
                             track_times=False)
            if masks is not None:
                f.create_dataset("masks", data=np.asarray(masks, dtype=np.uint8),
                                 chunks=(1, *self.image_shape) if n else None, compression="lzf",
                                 track_times=False)
        try:
            with atomic_path(self.path / img_rel) as tmp:
                tmp.write_bytes(buf.getbuffer())
            with atomic_path(self.path / cat_rel) as tmp:
                pq.write_table(table, tmp)
        except OSError as err:
            if err.errno == errno.ENOSPC or "No space left" in str(err):
                raise OutputError(f"no space left on the disk of {self.path} while writing shard {index}; the "
                                  f"shards written before are kept: free space and rerun the same command to "
                                  f"resume") from None
            raise

    def completed_shards(self) -> list[int]:
        return sorted(int(p.stem.split("-")[1]) for p in (self.path / "catalog").glob("part-*.parquet")
                      if self.has_shard(int(p.stem.split("-")[1])))

    def finalize(self, extra_meta: dict | None = None) -> "LabelskyDataset":
        """Check every shard is present and consistent, mark the dataset complete."""
        n_shards = self.n_shards if self.n_shards is not None else len(self.completed_shards())
        missing = [i for i in range(n_shards) if not self.has_shard(i)]
        if missing:
            raise DatasetError(f"{self.path}: cannot finalize, shard(s) {missing[:10]} missing")
        meta = dict(self.meta)
        meta["n_shards"] = n_shards
        if extra_meta:
            meta.update(extra_meta)
        parts = [self.path / _shard_name(i)[1] for i in range(n_shards)]
        sizes = [pq.ParquetFile(p).metadata.num_rows for p in parts]
        meta["shard_sizes"] = sizes
        meta["n_objects"] = int(sum(sizes))
        meta["complete"] = True
        atomic_write_json(self.path / META_FILE, meta)
        return open_dataset(self.path)


def _read_meta(path: Path) -> dict:
    meta_path = path / META_FILE
    if not meta_path.exists():
        raise DatasetError(f"{path} is not a labelsky dataset: {META_FILE} is missing")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as err:  # ValueError: not JSON, or not text at all
        raise DatasetError(f"{meta_path}: unreadable metadata: {err}") from None
    if not isinstance(meta, dict):
        raise DatasetError(f"{meta_path}: metadata is a JSON {type(meta).__name__}, expected an object of fields")
    if meta.get("format") != "labelsky-dataset":
        raise DatasetError(f"{meta_path}: field 'format' = {meta.get('format')!r}, expected 'labelsky-dataset'")
    version = meta.get("format_version", -1)
    if not isinstance(version, int) or isinstance(version, bool):
        raise DatasetError(f"{meta_path}: field 'format_version' = {version!r}, expected a whole number")
    if version > FORMAT_VERSION:
        raise DatasetError(f"{meta_path}: format_version {meta.get('format_version')} is newer than this labelsky "
                           f"reads ({FORMAT_VERSION}); upgrade labelsky")
    return meta


@dataclass
class _Handles:
    pid: int
    files: dict


class LabelskyDataset:
    """A dataset opened for reading. Images are read lazily, shard by shard.

    Attributes
    ----------
    path, meta, survey, classes, bands, image_shape
    catalog
        The whole catalog as a :class:`pyarrow.Table`, in image order.
    """

    def __init__(self, path: str | Path, validate: bool = True):
        self.path = Path(path)
        self.meta = _read_meta(self.path)
        if not self.meta.get("complete"):
            raise DatasetError(f"{self.path}: dataset is incomplete (an interrupted job?); rerun the command "
                               f"that made it to resume")
        self._check_meta()
        self.survey = self._meta_survey()
        self.classes = list(self.meta.get("classes", []))
        self.bands = list(self.meta["bands"])
        self.image_shape = tuple(self.meta["image_shape"])
        self.n_shards = int(self.meta["n_shards"])
        tables = []
        for i in range(self.n_shards):
            p = self.path / _shard_name(i)[1]
            try:
                t = pq.read_table(p)
            except FileNotFoundError:
                raise DatasetError(f"{p}: catalog part missing") from None
            except (pa.ArrowInvalid, OSError) as err:
                raise CatalogError(f"{p}: unreadable catalog (corrupt or not Parquet): {err}") from None
            if validate:
                t = validate_catalog(t, source=str(p), n_classes=len(self.classes) or None, check_unique=False)
                shard = t.column("shard").to_numpy()
                row = t.column("row").to_numpy()
                bad = np.flatnonzero((shard != i) | (row != np.arange(len(row))))
                if bad.size:
                    raise CatalogError(f"{p}: {_row_desc(t, int(bad[0]))}: fields 'shard'/'row' = "
                                       f"{shard[bad[0]]}/{row[bad[0]]}, expected {i}/{bad[0]}")
            tables.append(t)
        self.catalog = pa.concat_tables(tables, promote_options="default") if tables else pa.table({})
        if validate and self.catalog.num_rows:
            validate_catalog(self.catalog, source=str(self.path / "catalog"), n_classes=len(self.classes) or None)
        self._offsets = np.concatenate([[0], np.cumsum([t.num_rows for t in tables])]).astype(np.int64)
        self._handles = _Handles(os.getpid(), {})

    def _check_meta(self) -> None:
        """The fields of labelsky.json that reading needs, with their types (DatasetError names the field)."""
        where = self.path / META_FILE

        def names(v):
            return isinstance(v, list) and all(isinstance(x, str) for x in v)

        def count(v):
            return isinstance(v, int) and not isinstance(v, bool) and v >= 0

        checks = {
            "survey": (lambda v: isinstance(v, (dict, str)), "a survey specification (fields) or name"),
            "bands": (lambda v: names(v) and len(v) > 0, "a list of band names"),
            "image_shape": (lambda v: isinstance(v, list) and len(v) == 3 and all(count(x) and x > 0 for x in v),
                            "[bands, H, W] (three positive whole numbers)"),
            "n_shards": (count, "a whole number >= 0"),
            "classes": (names, "a list of class names"),
        }
        for name, (ok, expected) in checks.items():
            if name not in self.meta:
                if name == "classes":
                    continue
                raise DatasetError(f"{where}: field {name!r} is missing; expected {expected}")
            if not ok(self.meta[name]):
                raise DatasetError(f"{where}: field {name!r} = {self.meta[name]!r}; expected {expected}")
        if self.meta["image_shape"][0] != len(self.meta["bands"]):
            raise DatasetError(f"{where}: field 'image_shape' = {self.meta['image_shape']} does not match the "
                               f"{len(self.meta['bands'])} bands {self.meta['bands']}")

    def _meta_survey(self) -> Survey:
        where = f"{self.path / META_FILE}: field 'survey'"
        spec = self.meta["survey"]
        try:
            return Survey.from_dict(spec, source=where) if isinstance(spec, dict) else get_survey(spec)
        except SurveyError as err:
            raise DatasetError(str(err) if isinstance(spec, dict) else f"{where}: {err}") from None

    # -------------------------------------------------------------- access
    def __len__(self) -> int:
        return int(self._offsets[-1])

    def __repr__(self) -> str:
        return (f"LabelskyDataset({str(self.path)!r}, survey={self.survey.name!r}, n={len(self)}, "
                f"bands={self.bands}, shape={self.image_shape})")

    def column(self, name: str) -> np.ndarray:
        """A catalog column as a numpy array (strings as object arrays)."""
        if name not in self.catalog.column_names:
            raise KeyError(f"{self.path}: catalog has no column {name!r}; columns are {self.catalog.column_names}")
        col = self.catalog.column(name)
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            return np.asarray(col.to_pylist(), dtype=object)
        return col.to_numpy()

    def locate(self, index: int) -> tuple[int, int]:
        """(shard, row) of global index ``index``."""
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for dataset of {len(self)} objects")
        shard = int(np.searchsorted(self._offsets, index, side="right") - 1)
        return shard, int(index - self._offsets[shard])

    def _file(self, shard: int):
        import h5py

        if self._handles.pid != os.getpid():  # re-open after fork (DataLoader workers)
            self._handles = _Handles(os.getpid(), {})
        f = self._handles.files.get(shard)
        if f is None:
            p = self.path / _shard_name(shard)[0]
            try:
                f = h5py.File(p, "r")
            except (OSError, FileNotFoundError) as err:
                raise DatasetError(f"{p}: cannot read image shard: {err}") from None
            n = int(self._offsets[shard + 1] - self._offsets[shard])
            images = f.get("images")
            problem = None
            if not isinstance(images, h5py.Dataset):
                problem = "no 'images' array"
            elif tuple(images.shape) != (n, *self.image_shape):
                problem = (f"'images' has shape {tuple(images.shape)}, expected {(n, *self.image_shape)} "
                           f"({n} catalog rows, image_shape {list(self.image_shape)} in {META_FILE})")
            if problem:
                f.close()
                raise DatasetError(f"{p}: image shard does not match the dataset: {problem}")
            self._handles.files[shard] = f
        return f

    def _read(self, shard: int, selection) -> np.ndarray:
        """``images[selection]`` of image shard ``shard``; DatasetError naming the file when it cannot be read."""
        ds = self._file(shard)["images"]
        try:
            return ds[selection]
        except (OSError, RuntimeError) as err:  # h5py: truncated or corrupt chunks
            raise DatasetError(f"{self.path / _shard_name(shard)[0]}: cannot read images (corrupt or truncated "
                               f"shard): {err}") from None

    def image(self, index: int) -> np.ndarray:
        """Image ``index`` as float32 [bands, H, W] in nanomaggies."""
        shard, row = self.locate(index)
        return self._read(shard, row)

    def images(self, indices: Iterable[int] | None = None) -> np.ndarray:
        """Several images as [n, bands, H, W]; reads shard by shard in sorted order."""
        idx = np.arange(len(self)) if indices is None else np.asarray(list(indices), dtype=np.int64)
        out = np.empty((len(idx), *self.image_shape), dtype=np.float32)
        if len(idx) == 0:
            return out
        order = np.argsort(idx, kind="stable")
        sorted_idx = idx[order]
        shards = np.searchsorted(self._offsets, sorted_idx, side="right") - 1
        for s in np.unique(shards):
            sel = np.flatnonzero(shards == s)
            rows = sorted_idx[sel] - self._offsets[s]
            ds = self._file(int(s))["images"]
            uniq, inv = np.unique(rows, return_inverse=True)
            block = self._read(int(s), uniq.tolist() if len(uniq) < ds.shape[0] else slice(None))
            if len(uniq) == ds.shape[0]:
                block = block[uniq]
            out[order[sel]] = block[inv]
        return out

    def shard_rows(self, shard: int) -> np.ndarray:
        """Global indices of the rows of image shard ``shard``."""
        if not 0 <= shard < self.n_shards:
            raise IndexError(f"shard {shard} out of range for dataset of {self.n_shards} shards")
        return np.arange(self._offsets[shard], self._offsets[shard + 1], dtype=np.int64)

    def shard_images(self, shard: int) -> np.ndarray:
        """Every image of shard ``shard`` as [n, bands, H, W], in one read."""
        rows = self.shard_rows(shard)
        if not len(rows):
            return np.empty((0, *self.image_shape), dtype=np.float32)
        return np.asarray(self._read(shard, slice(None)), dtype=np.float32)

    def close(self) -> None:
        for f in self._handles.files.values():
            try:
                f.close()
            except Exception:  # noqa: BLE001
                pass
        self._handles.files.clear()

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_handles"] = _Handles(-1, {})
        return state

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass


def open_dataset(path: str | Path, validate: bool = True) -> LabelskyDataset:
    """Open a labelsky dataset folder for reading."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: no such dataset folder")
    return LabelskyDataset(path, validate=validate)
