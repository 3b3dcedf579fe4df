"""Catalog tables as importers read them: any astropy / Parquet format, identifier columns kept as text.

The lowest module of :mod:`labelsky.data.importers`: :mod:`.base` (the import
lifecycle) and :mod:`.votes` (Galaxy Zoo vote tables) both read tables
through it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from labelsky.data.io import DatasetError

__all__ = ["ID_COLUMNS", "TEXT_COLUMNS", "read_table", "fill_masked"]


#: Identifier columns of labelsky catalogs and of the published Galaxy Zoo tables, in the order vote tables are
#: joined on them (:func:`labelsky.data.importers.votes.join_votes`), with the tables using them.
ID_COLUMNS = {
    "id_str": "labelsky; zoobot / galaxy-datasets catalogues (GZ DESI on Hugging Face)",
    "iauname": "GZ DECaLS volunteers and auto-posteriors (Walmsley et al. 2022); NSA; GZ DESI",
    "dr8_id": "GZ DESI (Walmsley et al. 2023): Legacy Survey DR8 brickid_objid",
    "dr7objid": "GZ2 (Willett et al. 2013; Hart et al. 2016): SDSS DR7 objID",
    "objid": "GZ1 (Lintott et al. 2011, OBJID): SDSS objID",
}

#: Columns a CSV catalog keeps as text: identifiers and file names (``007``, ``100011_1131`` or ``1237648720``
#: would otherwise become numbers and lose their leading zeros, underscores or exact digits).
TEXT_COLUMNS = (*ID_COLUMNS, "file")



def fill_masked(table):
    """``table`` without masked cells: "" in text, -1 in an integer ``label``, NaN elsewhere (vote counts -> -1)."""
    from astropy.table import MaskedColumn

    names = [c for c in table.colnames if isinstance(table[c], MaskedColumn) and table[c].mask.any()]
    if not names:
        return table
    table = table.copy(copy_data=False)
    for c in names:
        col = table[c]
        if col.dtype.kind in "USO":
            table[c] = col.filled("")
        elif c == "label" and col.dtype.kind in "iu":
            table[c] = col.filled(-1)
        elif col.dtype.kind in "biuf":
            table[c] = col.astype(float).filled(np.nan)
    return table


def read_table(path: str | Path):
    """A catalog file (CSV, FITS, Parquet, ECSV, VOTable) as an astropy Table, with a clear error when unreadable.

    Masked (empty) cells are filled by :func:`fill_masked`.
    """
    from astropy.table import Table

    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: catalog file not found")
    suffix = "".join(path.suffixes[-2:]).lower()
    if not path.is_file():
        raise DatasetError(f"{path}: the catalog is not a regular file")
    try:
        if path.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            table = Table(pq.read_table(path).to_pydict())
        elif path.suffix.lower() in (".csv", ".txt") or suffix.endswith(".csv.gz"):
            table = _read_csv(path)
        else:
            table = Table.read(path)
    except Exception as err:  # noqa: BLE001 - any reader failure becomes one clear message
        raise DatasetError(f"{path}: cannot read catalog ({type(err).__name__}: {err}); expected CSV, FITS, "
                           f"ECSV, VOTable or Parquet") from None
    for name in list(table.colnames):
        if name.startswith("\ufeff"):
            table.rename_column(name, name.lstrip("\ufeff"))
    if len(table) == 0:
        raise DatasetError(f"{path}: the catalog has columns {table.colnames} but no rows")
    return fill_masked(table)


def _read_csv(path: Path):
    """A CSV catalog whose :data:`TEXT_COLUMNS` (names matched case-insensitively) stay text."""
    import csv
    import gzip

    from astropy.io import ascii
    from astropy.table import Table

    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rt", newline="", encoding="utf-8-sig") as fh:
            header = next(csv.reader(fh), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        header = []
    text = [c for c in header if c.strip().lower() in TEXT_COLUMNS]
    converters = {c: [ascii.convert_numpy(str)] for c in text}
    # encoding: a spreadsheet's byte-order mark is no part of the first column's name
    return Table.read(path, format="ascii.csv", encoding="utf-8-sig", converters=converters)


def _text(v) -> str:
    """A catalog cell as text (FITS tables give bytes)."""
    if isinstance(v, (bytes, np.bytes_)):
        v = v.decode("utf-8", "replace")
    return "" if v is None else str(v).strip()


def _column(table, name):
    col = table[name]
    return np.asarray(col.filled() if hasattr(col, "filled") else col)
