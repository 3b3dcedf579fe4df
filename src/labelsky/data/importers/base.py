"""What every importer shares: catalog reading, bad-pixel handling, streaming resumable shard writing.

An importer turns a catalog (one row per object) and a way to load each
object's image into a labelsky dataset (:mod:`labelsky.data.io`). It streams:
objects are read shard by shard (``shard_size`` at a time), so memory stays
flat whatever the number of objects; each shard is written atomically, so an
interrupted import resumes at the first missing shard when run again with the
same settings.

Bad data never stops an import half-way and never reaches a model as NaN:

* a row whose image cannot be used (unreadable or truncated file, wrong band
  count or shape, all pixels bad, too many bad pixels with ``reject``) is left
  out and recorded with the file, row, ``id_str`` and reason;
* NaN / inf / masked pixels are stored as NaN (the dataset's mask) and the
  fraction of bad pixels per band is a catalog column ``masked_frac_<band>``;
  ``flag_masked`` marks cutouts above ``max_masked``. Preprocessing fills them
  after normalisation (:class:`labelsky.data.transforms.Preprocess`).
* catalog problems (missing columns, duplicate ids, ra/dec out of range, an
  unknown class) are found before any image is read.

Every problem goes to ``DATASET/import_report.json`` (and per shard to
``DATASET/import/problems-NNNNN.json`` while the import runs).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from labelsky.data.importers.tables import ID_COLUMNS, _column, _text, fill_masked, read_table
from labelsky.data.io import SPLITS, VOTE_COLUMNS, DatasetError, DatasetWriter, LabelskyDataset
from labelsky.data.surveys import Survey, get_survey
from labelsky.errors import InputDataError, SettingsError
from labelsky.utils import atomic_write_json, stable_hash

__all__ = ["ID_COLUMNS", "ImportSettings", "ImportRowError", "read_table", "fill_masked", "catalog_records",
           "check_catalog",
           "clean_image", "survey_with_bands", "run_import", "assign_splits"]


class ImportRowError(InputDataError):
    """One object cannot be imported (the import goes on without it)."""


@dataclass
class ImportSettings:
    """Settings shared by the importers.

    ``survey`` names the survey (or a YAML file) the images come from;
    ``bands`` the band of every image channel, in order (default: the
    survey's). ``max_masked``: cutouts with a larger fraction of bad pixels in
    any band are flagged (``flag_masked``), or left out with ``reject_masked``.
    ``splits``: fractions used when the catalog has no ``split`` column
    (objects without labels are then ``unlabelled``); the split of an object
    depends only on ``seed`` and its ``id_str``.
    """

    survey: str = "sdss"
    bands: list | None = None
    classes: list | None = None  # class names in label order (default: sorted names found in the catalog)
    shard_size: int = 256
    max_masked: float = 0.2
    reject_masked: bool = False
    splits: dict = field(default_factory=lambda: {"train": 0.7, "val": 0.15, "test": 0.15})
    seed: int = 0
    flux_unit: str = "nanomaggy"  # "display" for 8-bit colour pictures (not flux)
    # a pixel brighter than this (in the dataset's unit) is not physical and is masked like a NaN: the default
    # 1e9 nanomaggies is magnitude 0 in one pixel, far above any survey's saturation (magnitude ~14 for SDSS,
    # ~16 for DECam / LSST); float32 images can hold up to 3e38, which overflows any stretch
    max_abs_flux: float = 1e9
    # largest input file read (bytes) and largest picture decoded (pixels): a catalog may point at anything
    max_file_bytes: int = 2 * 1024 ** 3
    max_pixels: int = 25_000_000
    # 'file' paths outside --base-dir (absolute, or with ..) are refused unless allowed
    allow_outside_base: bool = False
    # keep every answer of this Galaxy Zoo decision tree (gz2, decals-dr5, desi; labelsky.data.vote_trees)
    vote_schema: str | None = None

    def __post_init__(self):
        self.check()

    def check(self) -> None:
        """Raise :class:`~labelsky.errors.SettingsError` naming the first setting that makes no sense."""
        if isinstance(self.shard_size, bool) or not isinstance(self.shard_size, (int, np.integer)) \
                or self.shard_size < 1:
            raise SettingsError(f"shard_size (--shard-size) = {self.shard_size!r}; expected a number of objects "
                                f"per shard >= 1")
        if isinstance(self.max_masked, bool) or not isinstance(self.max_masked, (int, float, np.number)) \
                or not 0.0 <= float(self.max_masked) <= 1.0:
            raise SettingsError(f"max_masked (--max-masked) = {self.max_masked!r}; expected a fraction of bad "
                                f"pixels in [0, 1]")
        for name in ("max_abs_flux", "max_file_bytes", "max_pixels"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.number)) or not v > 0:
                raise SettingsError(f"{name} (--{name.replace('_', '-')}) = {v!r}; expected a number > 0")
        for name in ("bands", "classes"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, str) or not all(isinstance(x, str) and x for x in v)):
                raise SettingsError(f"{name} (--{name}) = {v!r}; expected a list of names")
        if self.bands is not None and len(set(self.bands)) != len(self.bands):
            raise SettingsError(f"bands (--bands) = {list(self.bands)} has duplicates")
        if self.classes is not None and len(set(self.classes)) != len(self.classes):
            raise SettingsError(f"classes (--classes) = {list(self.classes)} has duplicates")
        if not isinstance(self.splits, dict) or set(self.splits) - {"train", "val", "test"} \
                or not all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) and v >= 0
                           for v in self.splits.values()) \
                or not sum(self.splits.values()) > 0:
            raise SettingsError(f"splits = {self.splits!r}; expected fractions >= 0 for train / val / test, "
                                f"not all zero")


def check_catalog(table, source: str, required: Sequence[str] = ("id_str", "ra", "dec")):
    """Fatal catalog problems: missing columns and duplicate ids (errors naming the file, rows and field).

    Returns ``(ids, bad_rows)``: ``id_str`` as strings and ``{row: reason}`` for
    rows to leave out (ra/dec missing or outside their ranges).
    """
    missing = [c for c in required if c not in table.colnames]
    if missing:
        raise DatasetError(f"{source}: missing column(s) {missing}; columns are {table.colnames}")
    ids = np.array([_text(v) for v in _column(table, "id_str")], dtype=object)
    empty = np.flatnonzero(ids == "")
    if len(empty):
        raise DatasetError(f"{source}: row {int(empty[0])}: field 'id_str' is empty; expected a unique identifier")
    uniq, first, counts = np.unique(ids.astype(str), return_index=True, return_counts=True)
    if (counts > 1).any():
        dups = uniq[counts > 1]
        rows = {str(d): np.flatnonzero(ids == d)[:5].tolist() for d in dups[:5]}
        raise DatasetError(f"{source}: {int((counts > 1).sum())} duplicated id_str value(s), e.g. "
                           + "; ".join(f"{d!r} in rows {r}" for d, r in rows.items()) + "; ids must be unique")
    bad = {}
    for name, lo, hi in (("ra", 0.0, 360.0), ("dec", -90.0, 90.0)):
        try:
            v = np.asarray(_column(table, name), dtype=float)
        except (TypeError, ValueError):
            raise DatasetError(f"{source}: field '{name}' is not numeric (degrees expected)") from None
        out = ~np.isfinite(v) | (v < lo) | (v > hi) | ((v == hi) & (name == "ra"))
        interval = "[0, 360)" if name == "ra" else "[-90, 90]"
        for i in np.flatnonzero(out):
            bad.setdefault(int(i), f"field '{name}' = {float(v[i])!r} outside {interval} degrees")
    return ids, bad


def clean_image(image: np.ndarray, bands: Sequence[str], mask: np.ndarray | None = None,
                max_abs: float | None = None):
    """Bad pixels (NaN, inf, ``|x| > max_abs``, ``mask`` true) set to NaN; returns (image float32, masked fraction
    per band).

    Raises :class:`ImportRowError` when a band has no valid pixel.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        x = np.array(image, dtype=np.float32, copy=True)  # float64 beyond 3.4e38 becomes inf here: masked below
        bad = ~np.isfinite(x)
        if max_abs is not None:
            bad |= np.abs(np.where(bad, 0.0, x)) > max_abs
    if mask is not None:
        bad |= np.broadcast_to(np.asarray(mask, dtype=bool), x.shape)
    x[bad] = np.nan
    frac = bad.reshape(len(x), -1).mean(axis=1)
    empty = [b for b, f in zip(bands, frac) if f >= 1.0]
    if empty:
        raise ImportRowError(f"band(s) {empty} have no valid pixel (all NaN, inf, beyond the flux limit or masked)")
    return x, frac


def survey_with_bands(survey: str | Survey, bands: Sequence[str] | None) -> Survey:
    """The survey spec restricted to (and ordered as) ``bands``."""
    sv = get_survey(survey)
    if bands is None or list(bands) == list(sv.bands):
        return sv
    missing = [b for b in bands if b not in sv.bands]
    if missing:
        raise DatasetError(f"survey {sv.name!r} has no band(s) {missing}; its bands are {list(sv.bands)}")
    idx = [sv.bands.index(b) for b in bands]
    per_band = {f: tuple(getattr(sv, f)[i] for i in idx) for f in ("bands", "filters", "psf_fwhm", "depth", "sky_mag")}
    return dataclasses.replace(sv, **per_band)


def assign_splits(ids: Sequence[str], labelled: np.ndarray, fractions: dict, seed: int = 0) -> np.ndarray:
    """Deterministic split per object from its id: labelled objects by ``fractions``, others ``unlabelled``."""
    names = [k for k in ("train", "val", "test") if fractions.get(k, 0) > 0]
    if not names:
        raise DatasetError(f"splits {fractions} give no train/val/test fraction")
    cum = np.cumsum([fractions[k] for k in names]) / sum(fractions[k] for k in names)
    u = np.array([(stable_hash(seed, "split", s) % 2**53) / 2**53 for s in ids])
    out = np.array([names[min(int(np.searchsorted(cum, x, side="right")), len(names) - 1)] for x in u], dtype=object)
    out[~np.asarray(labelled, dtype=bool)] = "unlabelled"
    return out


def _is_within(path: Path, folder: Path) -> bool:
    """Whether ``path`` stays inside ``folder`` by its spelling (``..`` and absolute paths leave it; a symbolic
    link the user put inside the folder is theirs to follow)."""
    import os

    p, f = Path(os.path.normpath(os.path.abspath(path))), Path(os.path.normpath(os.path.abspath(folder)))
    return p == f or f in p.parents


def check_input_file(path: str | Path, max_bytes: int) -> None:
    """Refuse what an import must not read: a missing path, anything but a regular file (a device such as
    /dev/zero, a FIFO, a folder), or a file larger than ``max_bytes``. Raises :class:`ImportRowError`."""
    import os
    import stat

    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ImportRowError(f"file not found: {path}") from None
    except OSError as err:
        raise ImportRowError(f"cannot read {path}: {err.strerror or err}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ImportRowError(f"{path} is not a regular file (a folder, device or pipe); only files are read")
    if st.st_size > max_bytes:
        raise ImportRowError(f"{path} has {st.st_size} bytes, beyond the limit of {max_bytes} "
                             f"(--max-file-mb raises it)")


def _records_digest(records: list[dict]) -> str:
    """A content hash of the import records: every catalog field, the file each object is read from and that
    file's size and modification time (a cutout replaced under an interrupted import is other data: the resume
    is refused rather than mixing old and new images)."""
    import hashlib
    import json
    import os

    h = hashlib.sha256()
    for rec in records:
        h.update(json.dumps({k: v for k, v in rec.items() if k != "_row"}, sort_keys=True, default=str).encode())
        if rec.get("_file"):
            try:
                st = os.stat(rec["_file"])
                h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
            except OSError:
                h.update(b"missing")
        h.update(b"\n")
    return h.hexdigest()


def run_import(out: str | Path, settings: ImportSettings, records: list[dict], load: Callable[[dict], tuple],
               image_shape: Sequence[int], config: dict, overwrite: bool = False, progress: bool = True,
               producer: str = "labelsky import", source: str = "",
               inputs: Sequence[str | Path] = ()) -> tuple[LabelskyDataset, dict]:
    """Stream ``records`` into a dataset at ``out``; returns (dataset, report).

    ``records`` are catalog rows (dicts) that already carry the core fields
    ``id_str, ra, dec, split, label, label_name`` and the vote columns, plus
    ``_row`` (the input catalog row, for messages) and ``_file`` (what was
    read). ``load(record)`` returns ``(image [bands, H, W], mask or None)`` or
    raises :class:`ImportRowError` (or ``OSError`` / ``ValueError``) for a
    bad object. ``config`` defines the content: resuming is refused when it
    differs. ``inputs`` (the catalog, image files and folders read) are never
    replaced or written into; ``source`` defaults to one.
    """
    from tqdm.auto import tqdm

    out = Path(out)
    settings.check()
    survey = survey_with_bands(settings.survey, settings.bands)
    bands = list(survey.bands)
    shape = tuple(int(s) for s in image_shape)
    if shape[0] != len(bands):
        raise DatasetError(f"image shape {shape} does not match the {len(bands)} bands {bands}")
    n_shards = max(1, -(-len(records) // settings.shard_size))
    classes = list(settings.classes or [])
    # what the shards are made from: a resumed import with an edited catalog (or other settings) is refused,
    # never a mix of old and new rows
    config = {**config, "records_sha256": _records_digest(records)}
    writer = DatasetWriter(out, survey, shape, classes=classes, n_shards=n_shards, config=config,
                           overwrite=overwrite, producer=producer, inputs=[*inputs, *([source] if source else [])],
                           extra_meta={"flux_unit": settings.flux_unit, "import_source": source})
    prob_dir = out / "import"
    prob_dir.mkdir(exist_ok=True)
    bar = tqdm(total=len(records), desc=f"import {out.name}", unit="obj", disable=not progress)
    try:
        for s in range(n_shards):
            chunk = records[s * settings.shard_size:(s + 1) * settings.shard_size]
            if writer.has_shard(s) and (prob_dir / f"problems-{s:05d}.json").exists():
                bar.update(len(chunk))
                continue
            images, rows, problems = [], [], []
            for rec in chunk:
                where = {"row": rec.get("_row"), "id_str": rec["id_str"], "file": str(rec.get("_file", ""))}
                if rec.get("_error"):
                    problems.append({**where, "action": "rejected", "reason": rec["_error"]})
                    continue
                try:
                    if isinstance(rec.get("_file"), Path):  # a file named by the catalog: checked before it is opened
                        check_input_file(rec["_file"], settings.max_file_bytes)
                    img, mask = load(rec)
                    img = np.asarray(img)
                    if img.ndim != 3 or img.shape[0] != len(bands):
                        raise ImportRowError(f"image has shape {img.shape}, expected ({len(bands)} bands {bands}, "
                                             f"H, W)")
                    if img.shape != shape:
                        raise ImportRowError(f"image has shape {img.shape}, expected {shape} (resample it or pass "
                                             f"the size to the importer)")
                    img, frac = clean_image(img, bands, mask, settings.max_abs_flux)
                except (ImportRowError, OSError, ValueError, KeyError, IndexError, TypeError) as err:
                    problems.append({**where, "action": "rejected", "reason": f"{type(err).__name__}: {err}"})
                    continue
                flagged = bool((frac > settings.max_masked).any())
                if flagged:
                    worst = bands[int(np.argmax(frac))]
                    reason = (f"{100 * frac.max():.1f} % bad pixels in band {worst} "
                              f"(limit {100 * settings.max_masked:g} %)")
                    problems.append({**where, "action": "rejected" if settings.reject_masked else "flagged",
                                     "reason": reason})
                    if settings.reject_masked:
                        continue
                row = {k: v for k, v in rec.items() if not k.startswith("_")}
                row.update({f"masked_frac_{b}": float(f) for b, f in zip(bands, frac)})
                row["flag_masked"] = flagged
                row["survey"] = survey.name
                images.append(img)
                rows.append(row)
            cols = _columns(rows, bands)
            arr = np.stack(images) if images else np.zeros((0, *shape), np.float32)
            writer.write_shard(s, arr, cols)
            atomic_write_json(prob_dir / f"problems-{s:05d}.json", problems)
            bar.update(len(chunk))
    finally:
        bar.close()  # an error message then starts on a line of its own
    problems = []
    for s in range(n_shards):
        problems += json.loads((prob_dir / f"problems-{s:05d}.json").read_text())
    report = {"n_input": len(records), "n_written": None,
              "n_rejected": sum(p["action"] == "rejected" for p in problems),
              "n_flagged": sum(p["action"] == "flagged" for p in problems), "problems": problems}
    ds = writer.finalize(extra_meta={"import_report": "import_report.json"})
    report["n_written"] = len(ds)
    atomic_write_json(out / "import_report.json", report)
    return ds, report


def _columns(rows: list[dict], bands: Sequence[str]) -> dict:
    """Catalog columns of one shard, with fixed types for the core and quality columns."""
    import pyarrow as pa

    names = list(dict.fromkeys(k for r in rows for k in r))
    for k in ["id_str", "ra", "dec", "survey", "split", "label", "label_name", *VOTE_COLUMNS, "richness",
              *(f"masked_frac_{b}" for b in bands), "flag_masked"]:
        if k not in names:
            names.append(k)
    defaults = {"label": -1, "label_name": "", "richness": float("nan"), "split": "unlabelled",
                **{v: -1 for v in VOTE_COLUMNS}}
    types = {"ra": pa.float64(), "dec": pa.float64(), "label": pa.int16(), "richness": pa.float32(),
             "flag_masked": pa.bool_(), **{v: pa.int32() for v in VOTE_COLUMNS},
             **{f"masked_frac_{b}": pa.float32() for b in bands}}
    cols = {}
    for k in names:
        values = [r.get(k, defaults.get(k)) for r in rows]
        typ = types.get(k)
        if typ is None and k in ("id_str", "survey", "split", "label_name"):
            typ = pa.string()
        cols[k] = pa.array(values, type=typ) if typ is not None else pa.array(values)
    return cols


def catalog_records(table, source: str, settings: ImportSettings, file_column: str | None = None,
                    base_dir: Path | None = None) -> tuple[list[dict], list[str]]:
    """Catalog rows as import records; returns (records, classes).

    Reads ``id_str``, ``ra``, ``dec``, optional ``split``, a class from
    ``label`` (name or index into ``settings.classes``) or ``label_name``,
    Galaxy Zoo vote counts in any known convention (:mod:`.votes`) and keeps
    every other scalar column as it is. With ``file_column``, ``_file`` is
    that column resolved against ``base_dir``. Rows with bad ra/dec carry an
    ``_error`` (they are reported and left out, not fatal).
    """
    from labelsky.data.importers.votes import read_votes

    table = fill_masked(table)
    ids, bad = check_catalog(table, source, ("id_str", "ra", "dec") + ((file_column,) if file_column else ()))
    n = len(ids)
    names = None
    for col in ("label_name", "label"):
        if col in table.colnames:
            raw = _column(table, col)
            if raw.dtype.kind in "iu" and settings.classes:
                cl = list(settings.classes)
                if ((raw < -1) | (raw >= len(cl))).any():
                    i = int(np.flatnonzero((raw < -1) | (raw >= len(cl)))[0])
                    raise DatasetError(f"{source}: row {i} (id_str={ids[i]!r}): field '{col}' = {raw[i]}; expected -1 "
                                       f"or a class index < {len(cl)} ({cl})")
                names = np.array([cl[v] if v >= 0 else "" for v in raw], dtype=object)
            elif raw.dtype.kind in "iu":
                raise DatasetError(f"{source}: field '{col}' holds integers; give the class names (--classes) "
                                   f"they index, or names in the column")
            else:
                names = np.array(["" if _text(v) in ("", "--", "nan") else _text(v) for v in raw], dtype=object)
            break
    if names is None:
        names = np.full(n, "", dtype=object)
    classes = list(settings.classes) if settings.classes else sorted(set(names) - {""})
    unknown = sorted(set(names) - {""} - set(classes))
    if unknown:
        i = int(np.flatnonzero(np.isin(names, unknown))[0])
        raise DatasetError(f"{source}: row {i} (id_str={ids[i]!r}): class {names[i]!r} is not among {classes}")
    labelled = names != ""
    if "split" in table.colnames:
        split = np.array([_text(v) for v in _column(table, "split")], dtype=object)
        wrong = np.flatnonzero(~np.isin(split.astype(str), SPLITS))
        if len(wrong):
            i = int(wrong[0])
            raise DatasetError(f"{source}: row {i} (id_str={ids[i]!r}): field 'split' = {split[i]!r}; "
                               f"expected one of {SPLITS}")
    else:
        split = assign_splits(ids, labelled, settings.splits, settings.seed)
    votes = read_votes(table, source)
    tree_votes = {}
    if settings.vote_schema:
        from labelsky.data.importers.votes import read_tree_votes
        from labelsky.data.vote_trees import get_tree

        if not set(get_tree(settings.vote_schema).columns()) <= set(table.colnames):  # not joined already
            tree_votes = read_tree_votes(table, settings.vote_schema, source)
    skip = {"id_str", "ra", "dec", "split", "label", "label_name", "shard", "row", "survey", *VOTE_COLUMNS}
    dropped = set(votes.get("_source_columns", ())) | set(tree_votes.get("_source_columns", ()))
    extra = {c: v.tolist() for c, v in tree_votes.items() if not c.startswith("_")}
    for c in table.colnames:
        if c in skip or c.startswith("_") or c in dropped:
            continue
        col = table[c]
        if getattr(col, "ndim", 1) != 1 or np.asarray(col).dtype.kind not in "biufUSO":
            continue
        vals = _column(table, c)
        if vals.dtype.kind in "SUO":
            extra[c] = [_text(v) for v in vals]
        else:
            extra[c] = [v.item() if hasattr(v, "item") else v for v in vals]
    ra, dec = (np.asarray(_column(table, k), dtype=float) for k in ("ra", "dec"))
    records = []
    for i in range(n):
        rec = {"id_str": ids[i], "ra": float(ra[i]) if i not in bad else 0.0,
               "dec": float(dec[i]) if i not in bad else 0.0, "split": split[i],
               "label": classes.index(names[i]) if labelled[i] else -1, "label_name": names[i], "_row": i}
        for v in VOTE_COLUMNS:
            rec[v] = int(votes[v][i])
        for c, vals in extra.items():
            rec[c] = vals[i]
        if file_column:
            text = _text(_column(table, file_column)[i])
            f = Path(text)
            rec["_file"] = f if f.is_absolute() or base_dir is None else Path(base_dir) / f
            if not text:
                rec.setdefault("_error", f"field '{file_column}' is empty; expected a file path")
            elif base_dir is not None and not settings.allow_outside_base \
                    and not _is_within(Path(base_dir) / f, Path(base_dir)):
                rec.setdefault("_error", f"field '{file_column}' = {text!r} points outside the base folder "
                                         f"{base_dir} (absolute or '..' path); pass --allow-outside-base to read it")
        if i in bad:
            rec["_error"] = bad[i]
        records.append(rec)
    return records, classes
