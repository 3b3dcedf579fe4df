"""Import Galaxy10 DECaLS (astroNN; Leung & Bovy) from its HDF5 file, optionally with Galaxy Zoo votes.

Layout (https://astronn.readthedocs.io/en/latest/galaxy10.html), one HDF5 file
with N objects:

============  ======================  ====================================================================
dataset       type, shape             content
============  ======================  ====================================================================
``images``    uint8 (N, H, W, 3)      colour pictures (256 x 256), channels g, r, z
``ans``       uint8 (N,)              class 0..9, in the order of :data:`GALAXY10_CLASSES`
``ra``        float (N,)              right ascension, degrees
``dec``       float (N,)              declination, degrees
``redshift``  float (N,), optional    kept as a catalog column
``pxscale``   float (N,), optional    pixel scale, arcsec; kept as a catalog column
``id_str``    string (N,), optional   object identifiers (``id`` also accepted); else ``galaxy10-<index>``
============  ======================  ====================================================================

Images are stored as float32 [g, r, z, H, W] = value / 255 with
``flux_unit = "display"``: Galaxy10 images are 8-bit colour pictures (stretched
and clipped), not fluxes. The file is read one shard of images at a time (h5py
slicing), so memory stays flat, and an interrupted import resumes where it
stopped. The layout is checked first: a missing dataset, a wrong type or shape,
datasets of different lengths or a class outside 0..9 raise
:class:`~labelsky.data.io.DatasetError` naming the file and dataset; rows with
a bad position (NaN or out-of-range ra/dec) are left out and reported.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from labelsky.data.importers.base import ImportRowError, ImportSettings, catalog_records, run_import
from labelsky.data.importers.pictures import image_size, resize_bands
from labelsky.data.io import VOTE_COLUMNS, DatasetError, LabelskyDataset
from labelsky.data.simulate.galaxy10 import GALAXY10_CLASSES
from labelsky.utils import atomic_write_json

__all__ = ["GALAXY10_BANDS", "VOTE_MATCH_ARCSEC", "import_galaxy10"]

GALAXY10_BANDS = ("g", "r", "z")
#: Largest separation for joining a vote table by position.
VOTE_MATCH_ARCSEC = 1.0
_REQUIRED = ("images", "ans", "ra", "dec")
_EXTRA = ("redshift", "pxscale")
_ID_DATASETS = ("id_str", "id")


def _check_1d(f, path, name: str, n: int, kinds: str, what: str):
    d = f[name]
    if d.ndim != 1 or d.dtype.kind not in kinds:
        raise DatasetError(f"{path}: dataset '{name}' has dtype {d.dtype} and shape {d.shape}; expected {what} (N,)")
    if d.shape[0] != n:
        raise DatasetError(f"{path}: dataset '{name}' has {d.shape[0]} rows but 'images' has {n}; "
                           f"every dataset needs one row per image")
    return d[()]


def _read_layout(f, path) -> dict:
    """Validated non-image datasets of a Galaxy10 file as arrays (``n``: number of objects)."""
    import h5py

    names = list(f.keys())
    for name in _REQUIRED + tuple(e for e in _EXTRA + _ID_DATASETS if e in f):
        if name not in f:
            raise DatasetError(f"{path}: dataset '{name}' is missing; a Galaxy10 file holds {list(_REQUIRED)} "
                               f"(and {list(_EXTRA)}); it has {names}")
        if not isinstance(f[name], h5py.Dataset):
            raise DatasetError(f"{path}: '{name}' is a group, expected a dataset")
    img = f["images"]
    if img.dtype != np.uint8 or img.ndim != 4 or img.shape[3] != 3 or 0 in img.shape[1:3]:
        raise DatasetError(f"{path}: dataset 'images' has dtype {img.dtype} and shape {img.shape}; expected uint8 "
                           f"(N, H, W, 3) colour pictures with channels g, r, z")
    n = int(img.shape[0])
    out = {"n": n, "ans": _check_1d(f, path, "ans", n, "iu", "integer classes 0..9")}
    bad = np.flatnonzero((out["ans"] < 0) | (out["ans"] >= len(GALAXY10_CLASSES)))
    if len(bad):
        i = int(bad[0])
        raise DatasetError(f"{path}: dataset 'ans': row {i} = {out['ans'][i]}; expected a Galaxy10 class 0..9 "
                           f"({len(bad)} row(s) out of range)")
    for name in ("ra", "dec", *(e for e in _EXTRA if e in f)):
        out[name] = np.asarray(_check_1d(f, path, name, n, "fiu", "numbers"), dtype=np.float64)
    id_name = next((k for k in _ID_DATASETS if k in f), None)
    if id_name is None:
        out["id_str"] = np.array([f"galaxy10-{i}" for i in range(n)], dtype=object)
    else:
        raw = _check_1d(f, path, id_name, n, "OSUiu", "identifiers")
        out["id_str"] = np.array([v.decode() if isinstance(v, bytes) else str(v) for v in raw], dtype=object)
    return out


def _join_votes(votes, id_column: str, ids, ra, dec) -> tuple[dict, int]:
    """Vote counts of a vote table for each Galaxy10 object (NaN where none) and the number joined."""
    from labelsky.data.importers.votes import read_vote_table, rows_by_id

    table, v = read_vote_table(votes)
    source = str(votes)
    idx = np.full(len(ids), -1, dtype=np.int64)
    if id_column in table.colnames:
        idx = rows_by_id(table, id_column, ids, source)
    elif "ra" in table.colnames and "dec" in table.colnames:
        import astropy.units as u
        from astropy.coordinates import SkyCoord

        vra, vdec = (np.asarray(table[k], dtype=float) for k in ("ra", "dec"))
        sel = np.flatnonzero(_valid_position(ra, dec))
        vsel = np.flatnonzero(_valid_position(vra, vdec))
        if len(sel) and len(vsel):
            match, sep, _ = SkyCoord(ra[sel] * u.deg, dec[sel] * u.deg).match_to_catalog_sky(
                SkyCoord(vra[vsel] * u.deg, vdec[vsel] * u.deg))
            hit = sep.arcsec <= VOTE_MATCH_ARCSEC
            idx[sel[hit]] = vsel[np.asarray(match)[hit]]
    else:
        raise DatasetError(f"{source}: no column {id_column!r} to join votes on, and no 'ra' / 'dec' columns to "
                           f"match positions; columns are {table.colnames}")
    cols = {}
    for c in VOTE_COLUMNS:
        counts = np.where(idx >= 0, v[c][np.maximum(idx, 0)], -1).astype(float)
        cols[c] = np.where(counts < 0, np.nan, counts)
    return cols, int((idx >= 0).sum())


def _valid_position(ra, dec) -> np.ndarray:
    return np.isfinite(ra) & np.isfinite(dec) & (ra >= 0) & (ra < 360) & (dec >= -90) & (dec <= 90)


class _ShardReader:
    """``load`` for run_import: images read one shard (``shard_size`` rows) at a time from the HDF5 dataset."""

    def __init__(self, images, shard_size: int, size):
        self.images, self.shard_size, self.size = images, shard_size, size
        self.shard, self.block = -1, None

    def __call__(self, rec):
        i = int(rec["_row"])
        s = i // self.shard_size
        if s != self.shard:
            self.block, self.shard = None, s
            try:
                self.block = self.images[s * self.shard_size:(s + 1) * self.shard_size]
            except (OSError, ValueError, RuntimeError):
                pass  # a corrupt chunk in this block: its rows are read one by one, only the bad ones rejected
        if self.block is not None:
            x = self.block[i - s * self.shard_size]
        else:
            try:
                x = self.images[i]
            except (OSError, ValueError, RuntimeError) as err:
                raise ImportRowError(f"image {i} of the HDF5 file cannot be read (corrupt chunk): "
                                     f"{type(err).__name__}: {err}") from None
        x = x.transpose(2, 0, 1).astype(np.float32) / np.float32(255.0)
        return (resize_bands(x, self.size) if self.size else x), None


def import_galaxy10(h5_path: str | Path, out: str | Path, settings: ImportSettings | None = None, votes=None,
                    id_column: str = "id_str", overwrite: bool = False, progress: bool = True,
                    size=None) -> tuple[LabelskyDataset, dict]:
    """Import a Galaxy10 DECaLS HDF5 file into a dataset at ``out``; returns (dataset, report).

    Images become float32 (g, r, z, H, W) = value / 255, survey ``decals``,
    ``flux_unit = "display"`` (8-bit colour pictures, not fluxes); ``size``
    (int or (H, W)) resamples them (bilinear). Labels are ``ans`` with the
    class names :data:`GALAXY10_CLASSES`; ``redshift`` and ``pxscale`` are kept.
    ``settings`` gives shard size, splits and seed (survey, bands, classes and
    flux unit are set here). ``votes``: a Galaxy Zoo vote table (CSV, FITS,
    Parquet; any convention of :mod:`.votes`) joined on ``id_column``, or by
    position within :data:`VOTE_MATCH_ARCSEC` when it has no such column;
    objects without votes get -1. ``report`` lists the rows left out
    (``n_votes_matched``: objects that got votes).
    """
    import h5py
    from astropy.table import Table

    path = Path(h5_path)
    settings = dataclasses.replace(settings or ImportSettings(), survey="decals", bands=list(GALAXY10_BANDS),
                                   classes=list(GALAXY10_CLASSES), flux_unit="display")
    hw = image_size(size)
    if not path.is_file():
        raise DatasetError(f"{path}: Galaxy10 file not found")
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise DatasetError(f"{path}: cannot read as HDF5 ({err}); expected the Galaxy10 DECaLS .h5 file") from None
    with f:
        lay = _read_layout(f, path)
        cols = {"id_str": lay["id_str"].astype(str), "ra": lay["ra"], "dec": lay["dec"],
                "label": lay["ans"].astype(np.int64)}
        cols.update({e: lay[e] for e in _EXTRA if e in lay})
        n_votes = 0
        if votes is not None:
            vote_cols, n_votes = _join_votes(votes, id_column, lay["id_str"], lay["ra"], lay["dec"])
            cols.update(vote_cols)
        records, _ = catalog_records(Table(cols), str(path), settings)
        for rec in records:
            rec["_file"] = str(path)
        shape_hw = hw or tuple(int(s) for s in f["images"].shape[1:3])
        config = {"importer": "galaxy10", "source": str(path.resolve()), "n_rows": lay["n"], "size": list(shape_hw),
                  "votes": str(Path(votes).resolve()) if votes is not None else None,
                  "id_column": id_column if votes is not None else None, "settings": dataclasses.asdict(settings)}
        load = _ShardReader(f["images"], settings.shard_size, hw)
        ds, report = run_import(out, settings, records, load, (len(GALAXY10_BANDS), *shape_hw), config,
                                overwrite=overwrite, progress=progress, producer="labelsky import galaxy10",
                                source=str(path), inputs=[votes] if isinstance(votes, (str, Path)) else [])
    if votes is not None:
        report["n_votes_matched"] = n_votes
        atomic_write_json(Path(out) / "import_report.json", report)
    return ds, report
