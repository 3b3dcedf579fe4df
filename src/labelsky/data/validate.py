"""``labelsky validate DATASET``: every problem of a dataset at once, not only the first.

Checks, shard by shard (memory stays flat): metadata readable and complete;
each catalog part readable with the core columns and types; every field of
every row in range (ids non-empty and unique across the dataset, ra/dec,
split, label, vote counts, shard/row); each image shard readable, with the
shape the metadata gives and one image per catalog row; pixels: inf values,
bands without any valid pixel, and the fraction of bad (NaN) pixels above a
threshold. Problems are ``error`` (the dataset cannot be used as it is) or
``warning`` (usable, but look).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from labelsky.data.io import CORE_COLUMNS, META_FILE, SPLITS, VOTE_COLUMNS, _shard_name, ids_digest

__all__ = ["validate_dataset"]


def _problem(level, file, field, message, row=None, id_str=None) -> dict:
    return {"level": level, "file": str(file), "row": row, "id_str": id_str, "field": field, "message": message}


def validate_dataset(path: str | Path, max_masked: float = 0.2, max_per_kind: int = 20,
                     check_pixels: bool = True, max_abs_flux: float = 1e9) -> list[dict]:
    """All problems of the dataset at ``path`` as dicts (level, file, row, id_str, field, message).

    At most ``max_per_kind`` rows are listed per (file, field) problem; one
    more entry then gives the number left out. Pixels beyond ``max_abs_flux``
    (default 1e9 nanomaggies, magnitude 0 in one pixel: see
    :class:`~labelsky.data.importers.base.ImportSettings`) are errors: no stretch
    survives them. Stray temporary files of an interrupted writer are warnings.
    """
    import h5py
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    meta_path = path / META_FILE
    if not meta_path.exists():
        return [_problem("error", meta_path, None, "not a labelsky dataset: metadata file missing")]
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as err:  # ValueError: not JSON, or not text at all
        return [_problem("error", meta_path, None, f"unreadable metadata: {err}")]
    if not isinstance(meta, dict):
        return [_problem("error", meta_path, None, f"metadata is a JSON {type(meta).__name__}, expected an object "
                                                   f"of fields")]
    out: list[dict] = []
    for key in ("format", "bands", "image_shape", "n_shards", "survey"):
        if key not in meta:
            out.append(_problem("error", meta_path, key, f"metadata field {key!r} missing"))
    if out:
        return out
    n_shards, image_shape = meta["n_shards"], meta["image_shape"]
    if not isinstance(n_shards, int) or isinstance(n_shards, bool) or n_shards < 0:
        out.append(_problem("error", meta_path, "n_shards", f"metadata field 'n_shards' = {n_shards!r}; expected a "
                                                            f"whole number >= 0"))
    if not (isinstance(image_shape, list) and len(image_shape) == 3
            and all(isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in image_shape)):
        out.append(_problem("error", meta_path, "image_shape", f"metadata field 'image_shape' = {image_shape!r}; "
                                                               f"expected [bands, H, W]"))
    if not isinstance(meta["bands"], list):
        out.append(_problem("error", meta_path, "bands", f"metadata field 'bands' = {meta['bands']!r}; expected a "
                                                         f"list of band names"))
    if not isinstance(meta.get("classes") or [], list):
        out.append(_problem("error", meta_path, "classes", f"metadata field 'classes' = {meta['classes']!r}; "
                                                           f"expected a list of class names"))
    if out:
        return out
    if not meta.get("complete"):
        out.append(_problem("error", meta_path, "complete", "the dataset is incomplete (an interrupted job?); "
                                                             "rerun the command that made it"))
    if int(meta["n_shards"] or 0) == 0 or meta.get("n_objects") == 0:
        out.append(_problem("warning", meta_path, "n_objects", "the dataset holds no object: nothing can be "
                                                               "trained or catalogued from it"))
    for stray in sorted(list(path.glob("*/.*.tmp")) + list(path.glob("*/*.tmp")) + list(path.glob(".*.tmp"))):
        out.append(_problem("warning", stray, None, "stray temporary file of an interrupted writer (safe to delete; "
                                                     "rerunning the command that made the dataset removes it)"))
    shape = tuple(meta["image_shape"])
    n_classes = len(meta.get("classes") or []) or None
    bands = list(meta["bands"])
    seen: dict[str, tuple] = {}
    counts: dict[tuple, int] = {}

    def add(level, file, field, message, row=None, id_str=None):
        key = (str(file), field, message.split(" = ")[0] if row is not None else message)
        counts[key] = counts.get(key, 0) + 1
        if counts[key] <= max_per_kind:
            out.append(_problem(level, file, field, message, row, id_str))

    for s in range(int(meta["n_shards"] or 0)):
        img_rel, cat_rel = _shard_name(s)
        cat_path, img_path = path / cat_rel, path / img_rel
        try:
            table = pq.read_table(cat_path)
        except FileNotFoundError:
            add("error", cat_path, None, "catalog part missing")
            continue
        except (pa.ArrowInvalid, OSError) as err:
            add("error", cat_path, None, f"unreadable catalog part (corrupt or not Parquet): {err}")
            continue
        missing = [c for c in CORE_COLUMNS if c not in table.column_names]
        if missing:
            add("error", cat_path, ",".join(missing), f"missing column(s) {missing}")
        cols = {}
        for name, (typ, desc) in CORE_COLUMNS.items():
            if name not in table.column_names:
                continue
            col = table.column(name)
            try:
                col = col.cast(typ)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                add("error", cat_path, name, f"type {col.type}, expected {typ} ({desc})")
                continue
            cols[name] = col.to_pylist()
        n = table.num_rows
        ids = cols.get("id_str", [None] * n)
        for i in range(n):
            rid = ids[i]

            def bad(field, msg, level="error", row=i, rid=rid, cat_path=cat_path):
                add(level, cat_path, field, msg, row=row, id_str=rid)

            for name in cols:
                if cols[name][i] is None:
                    bad(name, f"field '{name}' is null; expected {CORE_COLUMNS[name][1]}")
            if rid is not None:
                if not rid:
                    bad("id_str", "field 'id_str' is empty")
                elif rid in seen:
                    bad("id_str", f"field 'id_str' = {rid!r} duplicates {seen[rid][0]} row {seen[rid][1]}")
                else:
                    seen[rid] = (cat_rel, i)
            ra, dec = cols.get("ra", [None] * n)[i], cols.get("dec", [None] * n)[i]
            if ra is not None and not (np.isfinite(ra) and 0 <= ra < 360):
                bad("ra", f"field 'ra' = {ra!r} outside [0, 360) degrees")
            if dec is not None and not (np.isfinite(dec) and -90 <= dec <= 90):
                bad("dec", f"field 'dec' = {dec!r} outside [-90, 90] degrees")
            sp = cols.get("split", [None] * n)[i]
            if sp is not None and sp not in SPLITS:
                bad("split", f"field 'split' = {sp!r}; expected one of {SPLITS}")
            lab = cols.get("label", [None] * n)[i]
            if lab is not None and (lab < -1 or (n_classes is not None and lab >= n_classes)):
                bad("label", f"field 'label' = {lab}; expected -1 or a class index < {n_classes}")
            for v in VOTE_COLUMNS:
                c = cols.get(v, [None] * n)[i]
                if c is not None and c < -1:
                    bad(v, f"field '{v}' = {c}; expected a count >= 0 or -1")
            for name, want in (("shard", s), ("row", i)):
                c = cols.get(name, [None] * n)[i]
                if c is not None and c != want:
                    bad(name, f"field '{name}' = {c}, expected {want}")
        try:
            with h5py.File(img_path, "r") as f:
                if "images" not in f:
                    add("error", img_path, "images", "no 'images' dataset")
                    continue
                d = f["images"]
                if tuple(d.shape[1:]) != shape:
                    add("error", img_path, "images", f"images have shape {d.shape[1:]}, metadata says {shape}")
                    continue
                if d.shape[0] != n:
                    add("error", img_path, "images", f"{d.shape[0]} images for {n} catalog rows")
                held = f.attrs.get("ids_sha1")
                if held is not None and "id_str" in cols and str(held) != ids_digest(cols["id_str"]):
                    add("error", img_path, "images", f"the images are of other objects than {cat_rel} lists (their "
                                                     f"ids digest differs): shards swapped or replaced")
                if not check_pixels:
                    continue
                for start in range(0, d.shape[0], 64):
                    block = np.asarray(d[start:start + 64], dtype=np.float32)
                    for j, img in enumerate(block):
                        i = start + j
                        rid = ids[i] if i < len(ids) else None
                        if np.isinf(img).any():
                            add("error", img_path, "pixels", "inf pixel values (bad pixels must be NaN)", i, rid)
                        with np.errstate(invalid="ignore"):
                            huge = np.nanmax(np.abs(np.where(np.isinf(img), 0, img))) if np.isfinite(img).any() \
                                else 0.0
                        if huge > max_abs_flux:
                            add("error", img_path, "pixels", f"pixel value {float(huge):.3g} beyond the physical "
                                f"limit {max_abs_flux:g} (mask it as NaN: no stretch survives it)", i, rid)
                        frac = (~np.isfinite(img)).reshape(len(img), -1).mean(axis=1)
                        empty = [bands[b] for b in np.flatnonzero(frac >= 1.0)]
                        if empty:
                            add("error", img_path, "pixels", f"band(s) {empty} have no valid pixel", i, rid)
                        elif (frac > max_masked).any():
                            b = int(np.argmax(frac))
                            add("warning", img_path, "pixels", f"{100 * frac[b]:.1f} % bad pixels in band "
                                f"{bands[b]} (threshold {100 * max_masked:g} %)", i, rid)
        except FileNotFoundError:
            add("error", img_path, None, "image shard missing")
        except OSError as err:
            add("error", img_path, None, f"unreadable image shard (corrupt or truncated): {err}")
    for (file, field, kind), c in counts.items():
        if c > max_per_kind:
            out.append(_problem("error" if any(p["level"] == "error" and p["file"] == file and p["field"] == field
                                               for p in out) else "warning", file, field,
                                f"... and {c - max_per_kind} more like: {kind}"))
    return out
