"""Positional cross-matching of two catalogs and of two labelsky datasets.

:func:`crossmatch` pairs the objects of two catalogs by sky position: each
object of catalog 1 is paired with its nearest neighbour in catalog 2 (great
circle distance, astropy's :meth:`~astropy.coordinates.SkyCoord.match_to_catalog_sky`)
when that neighbour lies within ``radius_arcsec``. An object of catalog 2 is
used at most once: when several objects of catalog 1 claim it, the nearest
keeps it and the others are counted as *duplicates* (and left unmatched).

:func:`crossmatch_datasets` applies this to two labelsky datasets (say the
same sky seen by SDSS and DES) and writes two new datasets holding only the
matched objects, row k of one being the same object as row k of the other::

    OUT/
      <survey_a>/        matched objects as seen by dataset A
      <survey_b>/        the same objects, same order, as seen by dataset B
      crossmatch.json    the match report and the inputs

Images are copied shard by shard, so neither dataset is ever loaded whole.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from labelsky.data.io import DatasetError, DatasetWriter, LabelskyDataset
from labelsky.utils import atomic_write_json

__all__ = [
    "DEFAULT_SHARD_SIZE",
    "crossmatch",
    "crossmatch_datasets",
]

#: Largest number of objects per shard of the matched datasets.
DEFAULT_SHARD_SIZE = 256
REPORT_FILE = "crossmatch.json"


def _check_coords(ra, dec, which: int) -> tuple[np.ndarray, np.ndarray]:
    """``ra``, ``dec`` as float64 1-D arrays; ValueError naming catalog, row and field otherwise."""
    try:
        ra = np.asarray(ra, dtype=np.float64)
        dec = np.asarray(dec, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"catalog {which}: ra / dec must be numbers in degrees: {err}") from None
    if ra.ndim != 1 or dec.ndim != 1 or ra.shape != dec.shape:
        raise ValueError(f"catalog {which}: ra and dec must be 1-D arrays of the same length, "
                         f"got shapes {ra.shape} and {dec.shape}")
    for name, v, ok, rng in (("ra", ra, (ra >= 0.0) & (ra < 360.0), "[0, 360)"),
                             ("dec", dec, (dec >= -90.0) & (dec <= 90.0), "[-90, 90]")):
        bad = np.flatnonzero(~(np.isfinite(v) & ok))
        if bad.size:
            i = int(bad[0])
            what = "is not finite" if not np.isfinite(v[i]) else f"is outside {rng} degrees"
            raise ValueError(f"catalog {which}: row {i}: field '{name}' = {float(v[i])!r} {what}")
    return ra, dec


def _check_radius(radius_arcsec) -> float:
    try:
        radius = float(radius_arcsec)
    except (TypeError, ValueError):
        raise ValueError(f"radius_arcsec = {radius_arcsec!r} must be a number of arcseconds > 0") from None
    if not (math.isfinite(radius) and radius > 0):
        raise ValueError(f"radius_arcsec = {radius!r} must be a finite number of arcseconds > 0")
    return radius


def _report(n1: int, n2: int, sep: np.ndarray, n_duplicates: int, radius: float) -> dict:
    n = len(sep)
    return {
        "n1": int(n1),
        "n2": int(n2),
        "n_matched": n,
        "fraction_1_matched": n / n1 if n1 else 0.0,
        "fraction_2_matched": n / n2 if n2 else 0.0,
        "sep_median_arcsec": float(np.median(sep)) if n else None,
        "sep_p90_arcsec": float(np.percentile(sep, 90)) if n else None,
        "n_duplicates": int(n_duplicates),
        "radius_arcsec": float(radius),
    }


def crossmatch(ra1, dec1, ra2, dec2, radius_arcsec: float = 1.0) -> dict[str, Any]:
    """Match catalog 1 to catalog 2 by sky position (all coordinates in degrees).

    Each object of catalog 1 is paired with its nearest neighbour in catalog
    2 if their separation is at most ``radius_arcsec``. Each object of
    catalog 2 is matched at most once: when several objects of catalog 1 have
    the same nearest neighbour, the nearest of them keeps it (ties go to the
    lower row) and the others count as duplicates and stay unmatched.

    Parameters
    ----------
    ra1, dec1, ra2, dec2
        1-D arrays; ``ra`` in [0, 360), ``dec`` in [-90, 90] degrees.
    radius_arcsec
        Largest separation of a match, arcseconds (> 0).

    Returns
    -------
    dict
        ``i1``, ``i2``: int64 row indices of the matched pairs in catalogs 1
        and 2, sorted by ``i1``; ``sep_arcsec``: their separations;
        ``report``: ``n1``, ``n2``, ``n_matched``, ``fraction_1_matched``,
        ``fraction_2_matched``, ``sep_median_arcsec`` and ``sep_p90_arcsec``
        (None without matches), ``n_duplicates`` and ``radius_arcsec``.

    Raises
    ------
    ValueError
        A coordinate is non-finite or out of range (the message names the
        catalog, 1 or 2, the row and the field), or the radius is not > 0.
    """
    ra1, dec1 = _check_coords(ra1, dec1, 1)
    ra2, dec2 = _check_coords(ra2, dec2, 2)
    radius = _check_radius(radius_arcsec)
    n1, n2 = len(ra1), len(ra2)
    empty = np.zeros(0, np.int64)
    if n1 == 0 or n2 == 0:
        return {"i1": empty, "i2": empty.copy(), "sep_arcsec": np.zeros(0),
                "report": _report(n1, n2, np.zeros(0), 0, radius)}

    import astropy.units as u
    from astropy.coordinates import SkyCoord

    c1 = SkyCoord(ra=ra1 * u.deg, dec=dec1 * u.deg)
    c2 = SkyCoord(ra=ra2 * u.deg, dec=dec2 * u.deg)
    nearest, sep2d, _ = c1.match_to_catalog_sky(c2)
    nearest = np.asarray(nearest, dtype=np.int64)
    sep = np.asarray(sep2d.to_value(u.arcsec), dtype=np.float64)

    cand = np.flatnonzero(sep <= radius)
    order = np.lexsort((cand, sep[cand], nearest[cand]))  # by catalog-2 row, then separation, then row
    cand = cand[order]
    j = nearest[cand]
    first = np.ones(len(cand), dtype=bool)
    first[1:] = j[1:] != j[:-1]
    i1 = np.sort(cand[first])
    return {"i1": i1, "i2": nearest[i1], "sep_arcsec": sep[i1],
            "report": _report(n1, n2, sep[i1], int((~first).sum()), radius)}


def _set_column(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    if name in table.column_names:
        return table.set_column(table.column_names.index(name), name, values)
    return table.append_column(name, values)


def _mask_reader(ds: LabelskyDataset):
    """A function ``rows -> masks`` when every image shard of ``ds`` holds masks, else None."""
    if not all("masks" in ds._file(s) for s in range(ds.n_shards)):
        return None

    def read(rows: np.ndarray) -> np.ndarray:
        out = np.empty((len(rows), *ds.image_shape), dtype=np.uint8)
        for k, i in enumerate(rows):
            shard, row = ds.locate(int(i))
            out[k] = ds._file(shard)["masks"][row]
        return out

    return read


def _describe(ds: LabelskyDataset) -> dict:
    """An input's identity: path, survey, size and a hash of its catalog files (an edited input is another)."""
    import hashlib

    h = hashlib.sha256()
    for part in sorted((Path(ds.path) / "catalog").glob("*.parquet")):
        h.update(part.read_bytes())
    return {"path": str(Path(ds.path).resolve()), "survey": ds.survey.name, "n": len(ds),
            "catalog_sha256": h.hexdigest(), "created": ds.meta.get("created")}


def crossmatch_datasets(ds_a: LabelskyDataset, ds_b: LabelskyDataset, out_dir: str | Path,
                        radius_arcsec: float = 1.0, overwrite: bool = False,
                        shard_size: int = DEFAULT_SHARD_SIZE) -> dict[str, Any]:
    """Match two datasets by ra / dec; write the matched objects of each as a new dataset.

    Writes ``out_dir/<survey of ds_a>`` and ``out_dir/<survey of ds_b>``,
    each holding only the matched objects, in the same order (row k of both
    is the same object, in the order of ``ds_a``), with every catalog column
    of its input plus ``match_sep_arcsec``. In the B catalog ``id_str`` is
    replaced by the A identifier and the original is kept as ``id_str_orig``.
    Images (and masks, where every input shard has them) are copied shard by
    shard, at most ``shard_size`` objects at a time. ``out_dir/crossmatch.json``
    holds the report of :func:`crossmatch` plus the inputs and outputs.

    An unfinished output made with the same inputs and settings is resumed;
    a complete one is refused unless ``overwrite``.

    Returns
    -------
    dict
        The report written to ``crossmatch.json``.

    Raises
    ------
    DatasetError
        Both datasets have the same survey name (their output folders would
        collide), or an output exists and ``overwrite`` is false.
    """
    out_dir = Path(out_dir)
    name_a, name_b = ds_a.survey.name, ds_b.survey.name
    if name_a == name_b:
        raise DatasetError(f"{ds_a.path} and {ds_b.path} are both survey {name_a!r}: their matched copies would "
                           f"share the folder {out_dir / name_a}")
    shard_size = int(shard_size)
    if shard_size < 1:
        raise ValueError(f"shard_size = {shard_size} must be >= 1")
    m = crossmatch(ds_a.column("ra"), ds_a.column("dec"), ds_b.column("ra"), ds_b.column("dec"),
                   radius_arcsec=radius_arcsec)
    i1, i2, sep = m["i1"], m["i2"], m["sep_arcsec"]
    n = len(i1)
    n_shards = max(1, math.ceil(n / shard_size))
    inputs = {"a": _describe(ds_a), "b": _describe(ds_b)}
    config = {"crossmatch": {**inputs, "radius_arcsec": m["report"]["radius_arcsec"], "n_matched": n,
                             "shard_size": shard_size}}
    from labelsky.outputs import prepare_output

    prepare_output(out_dir, overwrite=overwrite, inputs=[ds_a.path, ds_b.path], kind="crossmatch")
    overwrite = False  # replaced above as a whole when asked; the two datasets inside start new or resume
    writers = {}
    for side, ds in (("a", ds_a), ("b", ds_b)):
        writers[side] = DatasetWriter(out_dir / ds.survey.name, ds.survey, ds.image_shape, classes=ds.classes,
                                      n_shards=n_shards, config={**config, "side": side}, overwrite=overwrite,
                                      producer="labelsky.crossmatch")
    masks = {"a": _mask_reader(ds_a), "b": _mask_reader(ds_b)}
    ids_a = ds_a.catalog.column("id_str")
    for s in range(n_shards):
        if writers["a"].has_shard(s) and writers["b"].has_shard(s):
            continue
        sl = slice(s * shard_size, min((s + 1) * shard_size, n))
        rows = {"a": i1[sl], "b": i2[sl]}
        sep_col = pa.array(sep[sl], pa.float64())
        for side, ds in (("a", ds_a), ("b", ds_b)):
            table = ds.catalog.take(pa.array(rows[side], pa.int64()))
            if side == "b":
                a_ids = ids_a.take(pa.array(rows["a"], pa.int64())).combine_chunks().cast(pa.string())
                table = _set_column(table, "id_str_orig", table.column("id_str"))
                table = _set_column(table, "id_str", a_ids)
            table = _set_column(table, "match_sep_arcsec", sep_col)
            mask = masks[side](rows[side]) if masks[side] is not None else None
            writers[side].write_shard(s, ds.images(rows[side]), table, masks=mask)
    out_a = writers["a"].finalize()
    out_b = writers["b"].finalize()
    report = {**m["report"], **inputs,
              "outputs": {"a": str(out_a.path.resolve()), "b": str(out_b.path.resolve())},
              "n_shards": n_shards}
    atomic_write_json(out_dir / REPORT_FILE, report)
    return report
