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
GZ DECaLS DR5      ``smooth-or-featured-dr5_smooth``, ``smooth-or-featured-dr5_featured-or-disk``,
                   ``smooth-or-featured-dr5_artifact``
=================  ========================================================================================

Missing, masked or -1 counts become -1; other negative or non-integer counts are errors
naming the table, row and column.
"""

from __future__ import annotations

import numpy as np

from labelsky.data.io import VOTE_COLUMNS, DatasetError

__all__ = ["VOTE_CONVENTIONS", "read_votes", "read_vote_table", "rows_by_id", "join_votes"]

VOTE_CONVENTIONS = {
    "labelsky": VOTE_COLUMNS,
    "gz2": ("t01_smooth_or_features_a01_smooth_count", "t01_smooth_or_features_a02_features_or_disk_count",
            "t01_smooth_or_features_a03_star_or_artifact_count"),
    "gz_decals": ("smooth-or-featured_smooth", "smooth-or-featured_featured-or-disk", "smooth-or-featured_artifact"),
    "gz_decals_dr5": ("smooth-or-featured-dr5_smooth", "smooth-or-featured-dr5_featured-or-disk",
                      "smooth-or-featured-dr5_artifact"),
}


def _is_count_text(x) -> bool:
    try:
        float(x.decode() if isinstance(x, (bytes, np.bytes_)) else x)
        return True
    except (TypeError, ValueError):
        return False


def read_votes(table, source: str = "<table>") -> dict:
    """``{votes_smooth, votes_featured, votes_artifact: int arrays}`` from the first convention present.

    Also returns ``_convention`` (its name or None) and ``_source_columns``.
    All -1 when the table has no vote columns.
    """
    n = len(table)
    for name, cols in VOTE_CONVENTIONS.items():
        if all(c in table.colnames for c in cols):
            out = {"_convention": name, "_source_columns": cols}
            for dst, src in zip(VOTE_COLUMNS, cols):
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
                    raise DatasetError(f"{source}: row {i}: field '{src}' = {v[i]!r}; expected a vote count >= 0")
                out[dst] = np.where(missing, -1, np.round(np.nan_to_num(v))).astype(np.int64)
            return out
    partial = [c for cols in VOTE_CONVENTIONS.values() for c in cols if c in table.colnames]
    if partial:
        raise DatasetError(f"{source}: vote column(s) {partial} found but not the whole smooth / featured / "
                           f"artifact set of any convention {list(VOTE_CONVENTIONS)}")
    return {"_convention": None, "_source_columns": (), **{v: np.full(n, -1, np.int64) for v in VOTE_COLUMNS}}


def read_vote_table(path) -> tuple:
    """``(table, votes)``: a vote table file and its counts (:func:`read_votes`); an error if it has none."""
    from labelsky.data.importers.base import read_table

    table = read_table(path)
    votes = read_votes(table, str(path))
    if votes["_convention"] is None:
        raise DatasetError(f"{path}: no Galaxy Zoo vote columns; expected the smooth / featured / artifact "
                           f"columns of one of {list(VOTE_CONVENTIONS)}")
    return table, votes


def rows_by_id(table, id_column: str, ids, source: str = "<table>") -> np.ndarray:
    """Row of ``table`` whose ``id_column`` equals each of ``ids`` (-1 where none); duplicate ids are an error."""
    from labelsky.data.importers.base import _text

    if id_column not in table.colnames:
        raise DatasetError(f"{source}: no column {id_column!r} to join votes on; columns are {table.colnames}")
    pos = {}
    for j, s in enumerate(_text(x) for x in np.asarray(table[id_column])):
        if s in pos:
            raise DatasetError(f"{source}: field '{id_column}' = {s!r} appears in rows {pos[s]} and {j}; "
                               f"ids must be unique to join votes")
        pos[s] = j
    return np.array([pos.get(_text(s), -1) for s in ids], dtype=np.int64)


def join_votes(catalog, votes_path, id_column: str = "id_str"):
    """``catalog`` (astropy Table) with labelsky vote columns joined from a vote table on ``id_column``.

    The vote table may use any convention of :data:`VOTE_CONVENTIONS`;
    objects without a row in it get -1. Duplicate ids in the vote table are
    an error naming the file and rows.
    """
    table, v = read_vote_table(votes_path)
    idx = rows_by_id(table, id_column, np.asarray(catalog["id_str"]), str(votes_path))
    out = catalog.copy(copy_data=False)
    for c in VOTE_COLUMNS:
        out[c] = np.where(idx >= 0, v[c][np.maximum(idx, 0)], -1)
    for conv in VOTE_CONVENTIONS.values():  # the joined counts replace any in the catalog
        for c in conv:
            if c in out.colnames and c not in VOTE_COLUMNS:
                out.remove_column(c)
    return out
