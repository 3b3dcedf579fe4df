"""Parts: rows of a dataset a method trains, validates or tests on.

A :class:`Part` is ``(dataset, rows, labels)``: rows of a labelsky dataset
with their labels (``None``: the catalog's ``label``, or none needed). Every
method's ``select_rows`` turns its datasets into named lists of parts
(``{"train": [Part, ...], "val": [...], ...}``) and its ``fit`` trains on
them, so a reproduction that picks its own rows and labels calls the same
``fit``. Several parts, from several surveys, make one training set; each
keeps its own preprocessing.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Iterable, NamedTuple

import numpy as np

from labelsky.data.io import DatasetError, LabelskyDataset

__all__ = ["Part", "describe_parts", "describe_unlabelled", "every_row", "one", "same_classes", "same_units"]


class Part(NamedTuple):
    """Rows of a dataset (and their labels; ``None``: the catalog's ``label``, or none needed)."""

    dataset: LabelskyDataset
    rows: Any
    labels: Any = None

    def catalog_labels(self) -> np.ndarray:
        """The labels of the rows: the given ones, else the catalog's ``label``."""
        if self.labels is not None:
            return np.asarray(self.labels)
        return self.dataset.column("label")[np.asarray(self.rows)]


def every_row(ds: LabelskyDataset) -> Part:
    """Every row of ``ds``, without labels."""
    return Part(ds, np.arange(len(ds), dtype=np.int64), None)


def one(parts: dict, name: str, what: str = "") -> Part:
    """The single part ``parts[name]`` (a method whose part is one dataset's rows)."""
    found = parts.get(name) or []
    if len(found) != 1:
        raise DatasetError(f"expected one {what or name} part, got {len(found)}")
    return found[0]


def same_classes(datasets) -> list:
    """The class names every dataset shares (a :class:`DatasetError` naming the first that differs)."""
    datasets = list(datasets)
    classes = list(datasets[0].classes)
    for ds in datasets[1:]:
        if list(ds.classes) != classes:
            raise DatasetError(f"{ds.path}: classes {ds.classes} differ from {datasets[0].path}: {classes}")
    return classes


def same_units(datasets, render: str | None = None, what: str = "the training data", allow: bool = False) -> None:
    """Refuse flux images and 8-bit pictures (``flux_unit``) in one model's data unless ``render`` makes them
    alike (flux rendered as a viewer's pictures, pictures taken as they are) or ``allow`` (an ablation): a
    network sees them differently."""
    units: dict[str, list] = {}
    for ds in datasets:
        paths = units.setdefault(ds.meta.get("flux_unit", "nanomaggy"), [])
        if str(ds.path) not in paths:
            paths.append(str(ds.path))
    if len(units) > 1 and not render and not allow:
        from labelsky.errors import SettingsError

        mix = " and ".join(f"{'8-bit pictures' if u == 'display' else f'{u} images'} ({', '.join(p)})"
                           for u, p in sorted(units.items()))
        raise SettingsError(f"{what} mixes {mix}: a network sees flux images and pictures differently; pass "
                            f"--render VIEWER (flux rendered as that viewer's pictures, pictures taken as they are), "
                            f"import them alike, or --mixed-units to train on both as they are")


def _digest(values) -> str:
    return hashlib.sha1(np.ascontiguousarray(np.asarray(values, dtype=np.int64)).tobytes()).hexdigest()[:16]


def describe_parts(parts: Iterable[tuple]) -> list[dict]:
    """What a list of ``(dataset, rows, labels or None)`` parts is: dataset, survey, count and digests of the
    rows and labels (two runs on other rows or labels of the same dataset differ here)."""
    out = []
    for ds, rows, labels in parts:
        rows = np.asarray(rows)
        if labels is None:  # the catalog's own labels: a relabelled dataset is other data
            labels = ds.column("label")[rows] if "label" in ds.catalog.column_names else np.zeros(0)
        out.append({"dataset": str(Path(ds.path).resolve()), "survey": ds.survey.name, "n": int(len(rows)),
                    "rows_sha1": _digest(rows), "labels_sha1": _digest(labels),
                    "flux_unit": ds.meta.get("flux_unit", "nanomaggy"), "image_shape": list(ds.image_shape)})
    return out


def describe_unlabelled(parts: Iterable[tuple]) -> list[dict]:
    """What ``(dataset, rows[, ...])`` parts used without labels are: dataset, survey, count, digests of the rows
    and their ids — never of their labels, which such a run does not read (relabelling them is not other data)."""
    out = []
    for part in parts:
        ds, rows = part[0], np.asarray(part[1], dtype=np.int64)
        ids = "\n".join(map(str, ds.column("id_str")[rows])).encode()
        out.append({"dataset": str(Path(ds.path).resolve()), "survey": ds.survey.name, "n": int(len(rows)),
                    "rows_sha1": _digest(rows), "ids_sha1": hashlib.sha1(ids).hexdigest()[:16],
                    "flux_unit": ds.meta.get("flux_unit", "nanomaggy"), "image_shape": list(ds.image_shape)})
    return out
