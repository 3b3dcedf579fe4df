"""Train a transfer-learning classifier into a run folder (``labelsky train``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import numpy as np

from labelsky.data.io import DatasetError, LabelskyDataset
from labelsky.errors import SettingsError
from labelsky.methods.run import Run, describe_parts
from labelsky.methods.transfer.module import (ProgressiveUnfreezing, TransferClassifier, TransferConfig,
                                              load_classifier)
from labelsky.training import build_trainer, class_balance_weights, make_loader

__all__ = ["train_classifier", "select_rows", "fit_transfer"]


def select_rows(datasets: Sequence[LabelskyDataset], cfg=None, *, seed: int = 0) -> dict:
    """Training and validation parts of ``datasets``: labelled (``label >= 0``) rows of splits ``train`` / ``val``.

    Returns ``{"train": [parts], "val": [parts]}`` with parts ``(dataset, rows, None)`` (labels from the
    catalog). Every dataset must have the same classes.
    """
    datasets = list(datasets)
    classes = datasets[0].classes
    for ds in datasets[1:]:
        if ds.classes != classes:
            raise DatasetError(f"{ds.path}: classes {ds.classes} differ from {datasets[0].path}: {classes}")
    parts = {"train": [], "val": []}
    for ds in datasets:
        split, label = ds.column("split"), ds.column("label")
        for name in parts:
            rows = np.flatnonzero((split == name) & (label >= 0))
            if len(rows):
                parts[name].append((ds, rows, None))
    if not parts["train"]:
        raise DatasetError(f"no labelled rows of split 'train' in {[str(ds.path) for ds in datasets]}")
    return parts


def fit_transfer(run_dir, datasets: Sequence[LabelskyDataset], cfg: TransferConfig, *, overwrite: bool = False,
                 progress: bool = True) -> TransferClassifier:
    """:func:`select_rows` of ``datasets``, then :func:`train_classifier` (the registry's ``fit``)."""
    parts = select_rows(datasets, cfg, seed=cfg.seed)
    return train_classifier(run_dir, parts["train"], parts["val"], datasets[0].classes, cfg, progress=progress,
                            overwrite=overwrite)


def train_classifier(run_dir: str | Path, train_parts: Sequence[tuple], val_parts: Sequence[tuple],
                     class_names: Sequence[str], cfg: TransferConfig, progress: bool = True,
                     overwrite: bool = False, balance: bool = False) -> TransferClassifier:
    """Train on ``train_parts`` (``(dataset, rows, labels or None)``), monitor on ``val_parts``.

    The run folder gets ``config.json`` (settings, classes, data, weights
    used), checkpoints and logs; a rerun with the same folder, settings and
    data resumes (other settings or data are refused; see
    :class:`labelsky.methods.run.Run`). Returns the best model (lowest
    validation loss), in eval mode.
    """
    run_dir = Path(run_dir)
    if not train_parts:
        raise DatasetError(f"{run_dir}: no training examples")
    ds0: LabelskyDataset = train_parts[0][0]
    if not cfg.bands:  # record the bands by name, so that other surveys are matched by name, never by position
        cfg = dataclasses.replace(cfg, bands=list(ds0.bands))
    if not cfg.weights and (cfg.head_epochs or cfg.unfreeze_groups < 10_000):
        # random initialisation: there are no pretrained features to protect, so every block trains from the first
        # epoch (progressive unfreezing of random blocks also leaves their batch-norm statistics lagging)
        cfg = dataclasses.replace(cfg, head_epochs=0, unfreeze_groups=10_000)
    for ds, _, _ in list(train_parts) + list(val_parts):
        if cfg.render:  # rendered pictures: the renderer names the bands it needs (checked when preprocessing)
            cfg.preprocess(ds)
            continue
        missing = [b for b in cfg.bands if b not in ds.bands]
        if missing:
            raise SettingsError(f"{ds.path}: band(s) {missing} of the model are not in this dataset's {ds.bands}")
    labels = np.concatenate([np.asarray(lab) if lab is not None else ds.column("label")[np.asarray(rows)]
                             for ds, rows, lab in train_parts])
    if not len(labels):
        raise DatasetError(f"{run_dir}: no training examples")
    data = {"classes": list(class_names), "balance": bool(balance), "train": describe_parts(train_parts),
            "val": describe_parts(val_parts)}
    inputs = [ds.path for ds, _, _ in list(train_parts) + list(val_parts)]
    if cfg.weights and cfg.weights not in ("timm", "none"):
        inputs.append(cfg.weights)
    weights = class_balance_weights(labels, len(class_names)) if balance else None
    run = Run.start(run_dir, method="transfer", config=cfg.to_dict(), data=data, seed=cfg.seed, overwrite=overwrite,
                    inputs=inputs)
    model = TransferClassifier(cfg.to_dict(), len(class_names), cfg.in_chans(), list(class_names),
                               class_weights=weights)
    run.record(**{
        "classes": list(class_names), "weights_used": model.weights_info,
        "train": [{"dataset": str(ds.path), "survey": ds.survey.name, "n": int(len(rows)),
                   "labels": "catalog" if lab is None else "given"} for ds, rows, lab in train_parts],
        "val": [{"dataset": str(ds.path), "survey": ds.survey.name, "n": int(len(rows))}
                for ds, rows, _ in val_parts],
        "n_train_per_class": np.bincount(labels[labels >= 0], minlength=len(class_names)).tolist()})
    has_val = sum(len(rows) for _, rows, _ in val_parts) > 0
    unfreeze = ProgressiveUnfreezing(cfg.head_epochs, cfg.unfreeze_every, cfg.unfreeze_groups)
    # without validation data, checkpoints and early stopping follow the training loss
    trainer = build_trainer(run_dir, cfg, [unfreeze], monitor="val_loss" if has_val else "train_loss",
                            patience=cfg.patience, progress=progress)
    best = run.fit(trainer, model, make_loader(train_parts, cfg, shuffle=True, drop_last=True),
                   make_loader(val_parts, cfg, shuffle=False) if has_val else None)
    best_model = load_classifier(best)
    best_model.weights_info = model.weights_info
    return best_model
