"""Train a transfer-learning classifier into a run folder (``labelsky train``)."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Sequence

import lightning as L
import numpy as np

from labelsky.data.io import LabelskyDataset
from labelsky.methods.transfer import (ProgressiveUnfreezing, TransferClassifier, TransferConfig,
                                       class_balance_weights, load_classifier)
from labelsky.training import build_trainer, fit, make_loader
from labelsky.utils import atomic_write_json

__all__ = ["train_classifier"]


#: settings that may change when a run is resumed (everything else must match)
_RESUMABLE = {"max_epochs", "device", "num_workers", "patience", "devices", "num_nodes", "strategy"}


def _check_resume(run_dir: Path, cfg: TransferConfig, class_names) -> None:
    """Refuse to resume a run folder whose checkpoint was made with other settings."""
    if not (run_dir / "checkpoints" / "last.ckpt").exists() or not (run_dir / "config.json").exists():
        return
    old = json.loads((run_dir / "config.json").read_text())
    new = cfg.to_dict()
    diff = sorted(k for k in set(old.get("config", {})) | set(new)
                  if k not in _RESUMABLE and old.get("config", {}).get(k) != new.get(k))
    if diff or old.get("classes") != list(class_names):
        raise ValueError(f"{run_dir} holds a run made with other settings ({', '.join(diff) or 'classes'}); "
                         f"choose another run folder or pass overwrite to start again")


def train_classifier(run_dir: str | Path, train_parts: Sequence[tuple], val_parts: Sequence[tuple],
                     class_names: Sequence[str], cfg: TransferConfig, progress: bool = True,
                     overwrite: bool = False, balance: bool = False) -> TransferClassifier:
    """Train on ``train_parts`` (``(dataset, rows, labels or None)``), monitor on ``val_parts``.

    The run folder gets ``config.json`` (settings, classes, data, weights
    used), checkpoints and logs; a rerun with the same folder resumes. Returns
    the best model (lowest validation loss), in eval mode.
    """
    run_dir = Path(run_dir)
    if overwrite and run_dir.exists():
        shutil.rmtree(run_dir)
    ds0: LabelskyDataset = train_parts[0][0]
    if not cfg.bands:  # record the bands by name, so that other surveys are matched by name, never by position
        cfg = dataclasses.replace(cfg, bands=list(ds0.bands))
    if not cfg.weights and (cfg.head_epochs or cfg.unfreeze_groups < 10_000):
        # random initialisation: there are no pretrained features to protect, so every block trains from the first
        # epoch (progressive unfreezing of random blocks also leaves their batch-norm statistics lagging)
        cfg = dataclasses.replace(cfg, head_epochs=0, unfreeze_groups=10_000)
    for ds, _, _ in list(train_parts) + list(val_parts):
        missing = [b for b in cfg.bands if b not in ds.bands]
        if missing:
            raise ValueError(f"{ds.path}: band(s) {missing} of the model are not in this dataset's {ds.bands}")
    _check_resume(run_dir, cfg, class_names)
    run_dir.mkdir(parents=True, exist_ok=True)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    n_bands = cfg.in_chans()
    labels = np.concatenate([np.asarray(lab) if lab is not None else ds.column("label")[np.asarray(rows)]
                             for ds, rows, lab in train_parts])
    weights = class_balance_weights(labels, len(class_names)) if balance else None
    model = TransferClassifier(cfg.to_dict(), len(class_names), n_bands, list(class_names), class_weights=weights)
    atomic_write_json(run_dir / "config.json", {
        "method": "transfer", "config": cfg.to_dict(), "classes": list(class_names),
        "weights_used": model.weights_info,
        "train": [{"dataset": str(ds.path), "survey": ds.survey.name, "n": int(len(rows)),
                   "labels": "catalog" if lab is None else "given"} for ds, rows, lab in train_parts],
        "val": [{"dataset": str(ds.path), "survey": ds.survey.name, "n": int(len(rows))}
                for ds, rows, _ in val_parts],
        "n_train_per_class": np.bincount(labels[labels >= 0], minlength=len(class_names)).tolist(),
    })
    if not len(labels):
        raise ValueError(f"{run_dir}: no training examples")
    has_val = sum(len(rows) for _, rows, _ in val_parts) > 0
    unfreeze = ProgressiveUnfreezing(cfg.head_epochs, cfg.unfreeze_every, cfg.unfreeze_groups)
    # without validation data, checkpoints and early stopping follow the training loss
    trainer = build_trainer(run_dir, cfg, [unfreeze], monitor="val_loss" if has_val else "train_loss",
                            patience=cfg.patience, progress=progress)
    best = fit(model, trainer, make_loader(train_parts, cfg, shuffle=True, drop_last=True),
               make_loader(val_parts, cfg, shuffle=False) if has_val else None, run_dir)
    best_model = load_classifier(best)
    best_model.weights_info = model.weights_info
    return best_model
