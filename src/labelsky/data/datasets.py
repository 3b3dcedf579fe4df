"""PyTorch datasets over labelsky dataset folders.

Images are read one at a time from the HDF5 shards (never all at once), so an
:class:`ImageDataset` works for data sets larger than memory and inside
``DataLoader`` workers (``num_workers > 0``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from labelsky.data.io import LabelskyDataset, open_dataset

__all__ = ["ImageDataset"]


class ImageDataset(Dataset):
    """Images and labels of a :class:`~labelsky.data.io.LabelskyDataset`.

    Parameters
    ----------
    dataset
        An opened dataset or the path of a dataset folder.
    indices
        Global rows to use (default: all rows).
    split
        Keep only rows whose catalog ``split`` is this value (or one of these
        values); combined with ``indices`` when both are given.
    transform
        Callable applied to each float32 image (numpy [bands, H, W]); may
        return a numpy array or a tensor.
    label_column
        Catalog column holding the integer labels (``-1`` = unknown).
    return_meta
        Return a dict ``{"image", "label", "index", "id_str"}`` instead of
        an ``(image, label)`` tuple.
    labels
        Labels aligned with the selected rows, overriding ``label_column``
        (e.g. pseudo-labels); needs ``indices`` and no ``split``.
    label_columns
        Catalog columns whose values form each row's label vector (e.g. Galaxy Zoo vote counts), overriding both.
    """

    def __init__(self, dataset: LabelskyDataset | str | Path, indices: Sequence[int] | None = None,
                 split: str | Sequence[str] | None = None, transform: Callable | None = None,
                 label_column: str = "label", return_meta: bool = False, labels: Sequence[int] | None = None,
                 label_columns: Sequence[str] | None = None):
        self.dataset = dataset if isinstance(dataset, LabelskyDataset) else open_dataset(dataset)
        n = len(self.dataset)
        idx = np.arange(n, dtype=np.int64) if indices is None else np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise IndexError(f"{self.dataset.path}: indices must lie in [0, {n}), got {idx.min()}..{idx.max()}")
        if split is not None:
            wanted = [split] if isinstance(split, str) else list(split)
            idx = idx[np.isin(self.dataset.column("split")[idx].astype(str), wanted)]
        self.indices = idx
        self.labels = np.asarray(self.dataset.column(label_column), dtype=np.int64)
        if labels is not None:
            labels = np.asarray(labels, dtype=np.int64).reshape(-1)
            if indices is None or split is not None or len(labels) != len(idx):
                raise ValueError(f"labels ({len(labels)}) must align with explicit indices ({len(idx)}), no split")
            self.labels = self.labels.copy()
            self.labels[idx] = labels
        if label_columns:  # a vector per row (e.g. vote counts) instead of one class label
            self.labels = np.stack([np.asarray(self.dataset.column(c), dtype=np.int64) for c in label_columns], 1)
        self.id_str = self.dataset.column("id_str")
        self.transform = transform
        self.return_meta = return_meta

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Any:
        """``(image float32 [bands, H, W], label int64)``, or a dict with ``return_meta``."""
        index = int(self.indices[i])
        image = np.asarray(self.dataset.image(index), dtype=np.float32)
        if self.transform is not None:  # a transform with ``per_row`` also gets the row (per-row pixel scales)
            image = self.transform(image, index) if getattr(self.transform, "per_row", False) else \
                self.transform(image)
        image = torch.as_tensor(image, dtype=torch.float32)
        label = torch.as_tensor(self.labels[index], dtype=torch.int64)
        if self.return_meta:
            return {"image": image, "label": label, "index": index, "id_str": str(self.id_str[index])}
        return image, label
