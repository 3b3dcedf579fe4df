"""Galaxy Zoo vote counts for "smooth / featured / artifact" in the column conventions of each data release.

labelsky stores the first question of the Galaxy Zoo decision tree as three
count columns, ``votes_smooth``, ``votes_featured`` and ``votes_artifact``
(-1 where a galaxy has no votes). Input tables may use:

=================  ========================================================================================
convention         columns (smooth, featured, artifact)
=================  ========================================================================================
labelsky           ``votes_smooth``, ``votes_featured``, ``votes_artifact``
GZ2 (Willett+13)   ``t01_smooth_or_features_a01_smooth_count``, ``..._a02_features_or_disk_count``,
                   ``..._a03_star_or_artifact_count``
GZ DECaLS          ``smooth-or-featured_smooth``, ``smooth-or-featured_featured-or-disk``,
(Walmsley+22)      ``smooth-or-featured_artifact``
=================  ========================================================================================

Tables that keep each Galaxy Zoo campaign apart (the "ortho" columns of
zoobot / galaxy-datasets catalogues, e.g. GZ DESI's volunteer labels) name the
question ``smooth-or-featured-<campaign>``: ``-dr12`` (GZ DECaLS DR1/2),
``-dr5`` (DR5), ``-dr8`` (DR8, the GZ DESI campaign), ``-gz2`` (GZ2) and
``-cd`` (GZ Cosmic Dawn, HSC, whose third answer is ``_problem``), each with
``_smooth``, ``_featured-or-disk`` and ``_artifact``. A galaxy's counts are
the sum over the campaigns that voted on it (all three answers of one
question share the same options, so the counts add up); a galaxy no campaign
voted on gets -1.

Missing, masked or -1 counts become -1; other negative or non-integer counts are errors
naming the table, row and column.

A vote table is joined to a catalog on an identifier (:func:`join_votes`).
The published tables name their galaxies with these columns
(:data:`ID_COLUMNS`, tried in this order, names matched case-insensitively):

============  ==========================================================================================
column        tables
============  ==========================================================================================
``id_str``    labelsky datasets; zoobot / galaxy-datasets catalogues (e.g. GZ DESI on Hugging Face)
``iauname``   GZ DECaLS volunteer votes and automated posteriors (Walmsley et al. 2022), NSA names;
              also carried by GZ DESI
``dr8_id``    GZ DESI (Walmsley et al. 2023): Legacy Survey DR8 ``brickid_objid``
``dr7objid``  GZ2 (Willett et al. 2013; Hart et al. 2016): SDSS DR7 ``objID``
``objid``     GZ1 (Lintott et al. 2011, ``OBJID``) and other SDSS-based tables: SDSS ``objID``
============  ==========================================================================================
"""

from __future__ import annotations

import numpy as np

from labelsky.data.importers.tables import ID_COLUMNS, _text, read_table
from labelsky.data.io import VOTE_COLUMNS, DatasetError

__all__ = ["VOTE_CONVENTIONS", "ID_COLUMNS", "read_votes", "read_tree_votes", "read_vote_table", "rows_by_id",
           "find_column", "table_column", "resolve_id_columns", "join_votes"]

VOTE_CONVENTIONS = {
    "labelsky": VOTE_COLUMNS,
    "gz2": ("t01_smooth_or_features_a01_smooth_count", "t01_smooth_or_features_a02_features_or_disk_count",
            "t01_smooth_or_features_a03_star_or_artifact_count"),
    "gz_decals": ("smooth-or-featured_smooth", "smooth-or-featured_featured-or-disk", "smooth-or-featured_artifact"),
}

#: Campaign suffixes of the per-campaign ("ortho") question names, with the name of their third answer.
CAMPAIGNS = {"dr12": "artifact", "dr5": "artifact", "dr8": "artifact", "gz2": "artifact", "cd": "problem"}
for _campaign, _third in CAMPAIGNS.items():
    VOTE_CONVENTIONS[f"ortho_{_campaign}"] = tuple(f"smooth-or-featured-{_campaign}_{a}"
                                                   for a in ("smooth", "featured-or-disk", _third))

#: Columns named in an error message before "..." (vote tables have ~150).
_SHOWN_COLUMNS = 8


def _is_count_text(x) -> bool:
    try:
        float(x.decode() if isinstance(x, (bytes, np.bytes_)) else x)
        return True
    except (TypeError, ValueError):
        return False


def _counts(table, src: str, source: str) -> np.ndarray:
    """One vote-count column as floats, NaN where missing (masked, empty, NaN or labelsky's -1)."""
    n = len(table)
    col = table[src]
    mask = np.asarray(getattr(col, "mask", np.zeros(n, bool)), dtype=bool)
    try:
        v = np.asarray(col.astype(float).filled(np.nan) if hasattr(col, "filled") else col, dtype=float)
    except (TypeError, ValueError):  # text that is not a number
        raw = np.asarray(col)
        i = next((k for k, x in enumerate(raw) if not _is_count_text(x)), 0)
        raise DatasetError(f"{source}: row {i}: field '{src}' = {str(raw[i])!r}; expected a vote count "
                           f">= 0 (a number)") from None
    missing = mask | ~np.isfinite(v) | (v == -1)  # -1: labelsky's "no votes"
    bad = ~missing & ((v < 0) | (np.abs(v - np.round(v)) > 1e-6))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DatasetError(f"{source}: row {i}: field '{src}' = {float(v[i])!r}; expected a vote count >= 0")
    return np.where(missing, np.nan, np.round(v))


def read_votes(table, source: str = "<table>") -> dict:
    """``{votes_smooth, votes_featured, votes_artifact: int arrays}`` from the vote columns of ``table``.

    The first single-campaign convention present wins (``labelsky``, ``gz2``,
    ``gz_decals``); otherwise the per-campaign ("ortho") columns present are
    summed per galaxy over the campaigns that voted on it. Also returns
    ``_convention`` (its name, campaigns joined by ``+``, or None) and
    ``_source_columns``. All -1 when the table has no vote columns.
    """
    n = len(table)
    present = [name for name, cols in VOTE_CONVENTIONS.items() if all(c in table.colnames for c in cols)]
    single = [name for name in present if not name.startswith("ortho_")]
    if single:
        name = single[0]
        counts = np.stack([_counts(table, src, source) for src in VOTE_CONVENTIONS[name]], 1)
        out = {"_convention": name, "_source_columns": VOTE_CONVENTIONS[name]}
        for k, dst in enumerate(VOTE_COLUMNS):
            out[dst] = np.where(np.isfinite(counts[:, k]), counts[:, k], -1).astype(np.int64)
        return out
    if present:  # per-campaign columns: the sum over the campaigns that voted on each galaxy
        total, voted = np.zeros((n, 3)), np.zeros(n, bool)
        for name in present:
            counts = np.stack([_counts(table, src, source) for src in VOTE_CONVENTIONS[name]], 1)
            has = np.isfinite(counts).all(1) & (counts.sum(1) > 0)  # this campaign showed the galaxy
            total[has] += counts[has]
            voted |= has
        out = {"_convention": "+".join(present),
               "_source_columns": tuple(c for name in present for c in VOTE_CONVENTIONS[name])}
        for k, dst in enumerate(VOTE_COLUMNS):
            out[dst] = np.where(voted, total[:, k], -1).astype(np.int64)
        return out
    partial = [c for cols in VOTE_CONVENTIONS.values() for c in cols if c in table.colnames]
    if partial:
        raise DatasetError(f"{source}: vote column(s) {partial} found but not the whole smooth / featured / "
                           f"artifact set of any convention {list(VOTE_CONVENTIONS)}")
    return {"_convention": None, "_source_columns": (), **{v: np.full(n, -1, np.int64) for v in VOTE_COLUMNS}}


def read_tree_votes(table, schema: str, source: str = "<table>") -> dict:
    """``{votes_<question>_<answer>: int array}`` for every answer of ``schema``'s decision tree
    (:mod:`labelsky.data.vote_trees`), -1 where a count is missing; an error naming the table and the first
    missing columns when the table lacks some of the schema's columns."""
    from labelsky.data.vote_trees import SCHEMAS, get_tree, schema_columns

    if schema not in SCHEMAS:
        raise DatasetError(f"unknown vote schema {schema!r} (--schema); expected one of {sorted(SCHEMAS)}")
    tree = get_tree(schema)
    src_cols = schema_columns(schema)
    missing = [c for c in src_cols if find_column(table, c) is None]
    if missing:
        hint = ("; the table holds vote fractions, not counts (the Kaggle Galaxy Zoo challenge's Class1.1 ... are "
                "fractions): labelsky needs counts" if any(c.startswith("Class1.") for c in table.colnames) else "")
        raise DatasetError(f"{source}: --schema {schema}: {len(missing)} of the {len(src_cols)} count columns of "
                           f"the {tree.name} tree are missing, e.g. {missing[:4]}; columns are "
                           f"{_columns_hint(table.colnames)}{hint}")
    out = {}
    for src, dst in zip(src_cols, tree.columns()):
        v = _counts(table, find_column(table, src), source)
        out[dst] = np.where(np.isfinite(v), v, -1).astype(np.int64)
    out["_source_columns"] = tuple(find_column(table, c) for c in src_cols)
    return out


def read_vote_table(path) -> tuple:
    """``(table, votes)``: a vote table file and its counts (:func:`read_votes`); an error if it has none."""
    table = read_table(path)
    votes = read_votes(table, str(path))
    if votes["_convention"] is None:
        raise DatasetError(f"{path}: no Galaxy Zoo vote columns; expected the smooth / featured / artifact "
                           f"columns of one of {list(VOTE_CONVENTIONS)}")
    return table, votes


def _columns_hint(names) -> str:
    """The first few column names of a table, for a one-line message."""
    names = list(names)
    shown = ", ".join(repr(n) for n in names[:_SHOWN_COLUMNS])
    return f"[{shown}{', ...' if len(names) > _SHOWN_COLUMNS else ''}] ({len(names)} in all)"


def _id_text(v) -> str:
    """An identifier cell as text: bytes decoded, integral floats without '.0', empty for missing."""
    if isinstance(v, (float, np.floating)):
        if not np.isfinite(v):
            return ""
        if float(v).is_integer():
            return str(int(v))
    s = _text(v)
    return "" if s in ("--", "nan", "None") else s


def find_column(table, name: str) -> str | None:
    """The column of ``table`` called ``name``, matched exactly first, then case-insensitively; None if absent."""
    if name in table.colnames:
        return name
    low = name.lower()
    return next((c for c in table.colnames if c.lower() == low), None)


def _index(table, column: str) -> tuple[dict, tuple | None]:
    """``{id: row}`` of a column (empty ids left out) and the first duplicate ``(id, row, row)`` or None."""
    pos, dup = {}, None
    for j, v in enumerate(np.asarray(table[column])):
        s = _id_text(v)
        if not s:
            continue
        if s in pos:
            dup = dup or (s, pos[s], j)
            continue
        pos[s] = j
    return pos, dup


def rows_by_id(table, id_column: str, ids, source: str = "<table>") -> np.ndarray:
    """Row of ``table`` whose ``id_column`` equals each of ``ids`` (-1 where none); duplicate ids are an error."""
    if id_column not in table.colnames:
        raise DatasetError(f"{source}: no column {id_column!r} to join votes on; columns are "
                           f"{_columns_hint(table.colnames)}")
    pos, dup = _index(table, id_column)
    if dup is not None:
        raise DatasetError(f"{source}: field '{id_column}' = {dup[0]!r} appears in rows {dup[1]} and {dup[2]}; "
                           f"ids must be unique to join votes")
    return np.array([pos.get(_id_text(s), -1) for s in ids], dtype=np.int64)


def table_column(path, name: str, option: str = "--votes-id") -> str:
    """The column ``name`` of the table file at ``path`` (case-insensitive), read from its header only where the
    format allows (CSV, Parquet, FITS); a one-line :class:`DatasetError` naming the first columns when absent."""
    from pathlib import Path

    path = Path(path)
    names = None
    try:
        low = path.name.lower()
        if low.endswith((".csv", ".txt")):
            import csv

            with open(path, newline="", encoding="utf-8-sig") as fh:
                names = next(csv.reader(fh), [])
        elif low.endswith(".parquet"):
            import pyarrow.parquet as pq

            names = list(pq.read_schema(path).names)
        elif low.endswith((".fits", ".fit", ".fits.gz")):
            from astropy.io import fits

            with fits.open(path) as hdul:
                names = next((list(h.columns.names) for h in hdul if hasattr(h, "columns")), None)
    except (OSError, ValueError, UnicodeDecodeError):
        names = None
    if names is None:
        names = read_table(path).colnames
    found = name if name in names else next((c for c in names if c.lower() == name.lower()), None)
    if found is None:
        raise DatasetError(f"{path}: no column {name!r} ({option}); columns are {_columns_hint(names)}")
    return found


def resolve_id_columns(catalog, table, votes_id: str | None = None, catalog_id: str | None = None,
                       source: str = "<votes>", catalog_source: str = "the catalog") -> tuple[str, str]:
    """``(vote table column, catalog column)`` to join a vote table on.

    ``votes_id`` / ``catalog_id`` name them explicitly. Otherwise every
    column of :data:`ID_COLUMNS` in the vote table is a candidate, paired
    with the catalog's column of the same name, else its ``id_str``; with
    several candidates the one matching most catalog ids wins (ties: the
    order of :data:`ID_COLUMNS`). Raises :class:`DatasetError` (one line,
    naming the columns looked for) when there is none.
    """
    vcol = ccol = None
    if votes_id is not None:
        vcol = find_column(table, votes_id)
        if vcol is None:
            raise DatasetError(f"{source}: no column {votes_id!r} (--votes-id); columns are "
                               f"{_columns_hint(table.colnames)}")
    if catalog_id is not None:
        ccol = find_column(catalog, catalog_id)
        if ccol is None:
            raise DatasetError(f"{catalog_source}: no column {catalog_id!r} (--catalog-id); columns are "
                               f"{_columns_hint(catalog.colnames)}")
    if vcol is not None and ccol is not None:
        return vcol, ccol
    cat_default = "id_str" if "id_str" in catalog.colnames else None
    if vcol is not None:
        pair = (vcol, ccol or find_column(catalog, vcol) or cat_default)
        if pair[1] is None:
            raise DatasetError(f"{catalog_source}: no column {vcol!r} or 'id_str' to join the votes on "
                               f"(--catalog-id names it)")
        return pair
    if ccol is not None:
        same = find_column(table, ccol)
        names = [same] if same else [v for v in (find_column(table, n) for n in ID_COLUMNS) if v]
        pairs = [(v, ccol) for v in names]
    else:
        pairs = []
        for n in ID_COLUMNS:
            v = find_column(table, n)
            c = find_column(catalog, n) or cat_default
            if v is not None and c is not None:
                pairs.append((v, c))
    if not pairs:
        raise DatasetError(f"{source}: no id column to join votes on: looked for {list(ID_COLUMNS)} (or "
                           f"--votes-id COLUMN); columns are {_columns_hint(table.colnames)}")
    if len(pairs) == 1:
        return pairs[0]
    best, best_n = pairs[0], -1
    for v, c in pairs:
        pos, _ = _index(table, v)
        n = sum(_id_text(s) in pos for s in np.asarray(catalog[c]))
        if n > best_n:
            best, best_n = (v, c), n
    return best


def join_votes(catalog, votes_path, votes_id: str | None = None, catalog_id: str | None = None,
               schema: str | None = None):
    """``catalog`` (astropy Table) with labelsky vote columns joined from a vote table.

    The vote table may use any convention of :data:`VOTE_CONVENTIONS`. The
    join columns are ``votes_id`` (vote table) and ``catalog_id`` (catalog),
    or found by :func:`resolve_id_columns` (e.g. GZ DECaLS ``iauname`` or GZ2
    ``dr7objid`` against the catalog's column of that name or its
    ``id_str``). Objects without a row in the table get -1; a join that
    matches no object, or duplicate ids in the vote table, is an error.
    ``meta["votes_join"]`` of the result records the columns and the number
    matched. With ``schema`` (``gz2``, ``decals-dr5``, ``desi``) every answer
    of that decision tree is joined too (:func:`read_tree_votes`).
    """
    table, v = read_vote_table(votes_path)
    source = str(votes_path)
    tree = read_tree_votes(table, schema, source) if schema else {}
    vcol, ccol = resolve_id_columns(catalog, table, votes_id, catalog_id, source)
    cat_ids = np.asarray(catalog[ccol])
    idx = rows_by_id(table, vcol, cat_ids, source)
    n_matched = int((idx >= 0).sum())
    if n_matched == 0:
        ex_cat = [_id_text(x) for x in cat_ids[:2]]
        ex_vot = [_id_text(x) for x in np.asarray(table[vcol])[:2]]
        raise DatasetError(f"{source}: no catalog object has votes: none of the {len(cat_ids)} values of the "
                           f"catalog's '{ccol}' (e.g. {ex_cat}) is in the vote table's '{vcol}' (e.g. {ex_vot}); "
                           f"--votes-id / --catalog-id name the columns to join on")
    out = catalog.copy(copy_data=False)
    for c in VOTE_COLUMNS:
        out[c] = np.where(idx >= 0, v[c][np.maximum(idx, 0)], -1)
    for c, counts in tree.items():
        if not c.startswith("_"):
            out[c] = np.where(idx >= 0, counts[np.maximum(idx, 0)], -1)
    for conv in VOTE_CONVENTIONS.values():  # the joined counts replace any in the catalog
        for c in conv:
            if c in out.colnames and c not in VOTE_COLUMNS:
                out.remove_column(c)
    out.meta["votes_join"] = {"votes": source, "votes_id": vcol, "catalog_id": ccol, "n_matched": n_matched,
                              "n_catalog": len(cat_ids), "schema": schema}
    return out
