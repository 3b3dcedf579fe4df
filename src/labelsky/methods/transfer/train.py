"""One transfer-learning classifier trained into a run folder (every round of the recursion is one)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import numpy as np

from labelsky.data.io import DatasetError
from labelsky.errors import SettingsError
from labelsky.methods.parts import Part, describe_parts
from labelsky.methods.run import Run
from labelsky.methods.training import build_trainer, make_loader
from labelsky.methods.transfer.config import TransferConfig
from labelsky.methods.transfer.module import ProgressiveUnfreezing, TransferClassifier

__all__ = ["train_one"]


def train_one(run_dir: str | Path, train_parts: Sequence[tuple], val_parts: Sequence[tuple],
              class_names: Sequence[str], cfg: TransferConfig, *, progress: bool = True,
              overwrite: bool = False) -> TransferClassifier:
    """Train one classifier on ``train_parts`` (``(dataset, rows, labels or None)``), monitor on ``val_parts``.

    The run folder gets ``config.json`` (settings, classes, data, weights
    used), checkpoints and logs; a rerun with the same folder, settings and
    data resumes (other settings or data are refused; see
    :class:`labelsky.methods.run.Run`). Returns the best model (lowest
    validation loss), in eval mode. Random initial weights train every block
    from the first epoch (there are no pretrained features to protect).
    """
    run_dir = Path(run_dir)
    if not train_parts:
        raise DatasetError(f"{run_dir}: no training examples")
    ds0 = train_parts[0][0]
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
    labels = np.concatenate([Part(*p).catalog_labels() for p in train_parts])
    if not len(labels):
        raise DatasetError(f"{run_dir}: no training examples")
    data = {"classes": list(class_names), "train": describe_parts(train_parts), "val": describe_parts(val_parts)}
    inputs = [ds.path for ds, _, _ in list(train_parts) + list(val_parts)]
    if cfg.weights and cfg.weights not in ("timm", "none"):
        inputs.append(cfg.weights)
    run = Run.start(run_dir, method="transfer", config=cfg, data=data, seed=cfg.seed, overwrite=overwrite,
                    inputs=inputs)
    model = TransferClassifier(cfg.to_dict(), len(class_names), cfg.in_chans(), list(class_names))
    record = {"classes": list(class_names), "weights_used": model.weights_info,
              "train": [{"dataset": str(ds.path), "survey": ds.survey.name, "n": int(len(rows)),
                         "labels": "catalog" if lab is None else "given"} for ds, rows, lab in train_parts],
              "val": [{"dataset": str(ds.path), "survey": ds.survey.name, "n": int(len(rows))}
                      for ds, rows, _ in val_parts],
              "n_train_per_class": None if cfg.questions != "classes" else  # a vote head has no classes
              np.bincount(labels[labels >= 0], minlength=len(class_names)).tolist()}
    if cfg.weights and cfg.weights not in ("timm", "none"):
        from labelsky.models.provenance import weights_provenance

        record["weights_provenance"] = weights_provenance(cfg.weights)
    run.record(**record)
    has_val = sum(len(rows) for _, rows, _ in val_parts) > 0
    unfreeze = ProgressiveUnfreezing(cfg.head_epochs, cfg.unfreeze_every, cfg.unfreeze_groups)
    # without validation data, checkpoints and early stopping follow the training loss
    trainer = build_trainer(run_dir, cfg, [unfreeze], monitor="val_loss" if has_val else "train_loss",
                            patience=cfg.patience, progress=progress)
    best = run.fit(trainer, model, make_loader(train_parts, cfg, shuffle=True, drop_last=True),
                   make_loader(val_parts, cfg, shuffle=False) if has_val else None)
    best_model = TransferClassifier.load(best)
    best_model.weights_info = model.weights_info
    return best_model
