"""Rows and training of the transfer-learning method (``labelsky train``).

:func:`select_rows` takes the labelled rows of splits ``train`` / ``val`` of
the ``data`` datasets and every row of the ``unlabelled`` ones; :func:`fit`
trains one classifier into the run folder, or, with unlabelled parts,
recursive rounds with pseudo-labels (:mod:`.recursive`).
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from labelsky.data.io import DatasetError
from labelsky.errors import LabelskyWarning, SettingsError
from labelsky.methods.parts import Part, describe_parts, every_row, same_classes
from labelsky.methods.registry import Fitted
from labelsky.methods.run import Run
from labelsky.methods.training import build_trainer, make_loader
from labelsky.methods.transfer.module import ProgressiveUnfreezing, TransferClassifier, TransferConfig

__all__ = ["select_rows", "fit", "train_one"]

log = logging.getLogger(__name__)


def select_rows(datasets: dict, cfg: TransferConfig | None = None) -> dict:
    """``{"train", "val", "unlabelled"}`` parts of ``datasets`` (``{"data": [...], "unlabelled": [...]}``).

    ``train`` / ``val``: the labelled (``label >= 0``) rows of splits ``train`` / ``val`` of every ``data``
    dataset, labels from the catalog (every dataset must have the same classes); ``unlabelled``: every row of
    every ``unlabelled`` dataset (their labels are never read).
    """
    labelled = list(datasets["data"])
    same_classes(labelled)
    parts = {"train": [], "val": [], "unlabelled": [every_row(ds) for ds in datasets.get("unlabelled", [])]}
    for ds in labelled:
        split, label = ds.column("split"), ds.column("label")
        for name in ("train", "val"):
            rows = np.flatnonzero((split == name) & (label >= 0))
            if len(rows):
                parts[name].append(Part(ds, rows, None))
    if not parts["train"]:
        raise DatasetError(f"no labelled rows of split 'train' in {[str(ds.path) for ds in labelled]}")
    if not parts["val"]:
        log.info("no 'val' split: checkpoints and early stopping follow the training loss")
    return parts


def fit(run_dir, parts: dict, cfg: TransferConfig, *, overwrite: bool = False, progress: bool = True,
        on_round: Callable | None = None) -> Fitted:
    """Train on ``parts["train"]``, select on ``parts["val"]``; with ``parts["unlabelled"]``, recursive rounds.

    The class names are those of the first training dataset; labels are the parts' (or their catalogs').
    ``on_round(round, model, report_entry, pool, output)`` is called after every recursive round
    (:func:`labelsky.methods.transfer.recursive.recursive_training`). Returns the best (final) model and the
    report: ``backbone``, ``weights``, and with rounds the contents of ``rounds.json``.
    """
    train, val, pool = list(parts["train"]), list(parts.get("val", [])), list(parts.get("unlabelled", []))
    if not train:
        raise DatasetError(f"{run_dir}: no training examples")
    classes = list(train[0][0].classes)
    if not pool:
        if cfg.rounds is not None or cfg.cluster_filter:
            raise SettingsError("--rounds and --cluster-filter need --unlabelled DATA (the datasets to pseudo-label)")
        model = train_one(run_dir, train, val, classes, cfg, progress=progress, overwrite=overwrite)
        return Fitted(model, {"backbone": cfg.backbone, "weights": model.weights_info.get("weights"),
                              "classes": classes})
    if cfg.devices not in (None, 1) or cfg.num_nodes != 1:
        raise SettingsError("recursive training (--unlabelled) runs on one device")
    from labelsky.methods.transfer.recursive import recursive_training

    model, report = recursive_training(run_dir, train, val, pool, classes, cfg, overwrite=overwrite,
                                       progress=progress, on_round=on_round)
    for e in report["rounds"]:
        if e["round"] > 0 and e["pseudo_labels"]["n"] == 0:
            warnings.warn(f"round {e['round']} had no pseudo-label (no unlabelled galaxy reached --min-confidence "
                          f"{cfg.min_confidence:g}; the most confident: "
                          f"{e['pseudo_labels'].get('max_confidence', float('nan')):.3f}), so it trained on the "
                          f"labelled data alone, as round 0 did; lower --min-confidence or train round 0 longer",
                          LabelskyWarning, stacklevel=2)
    return Fitted(model, {"backbone": cfg.backbone, "weights": model.weights_info.get("weights"), **report})


def summary(run_dir: Path, report: dict) -> list[str]:
    """What ``labelsky train`` prints after training."""
    run_dir = Path(run_dir)
    if "rounds" not in report:
        return [f"trained {report['backbone']} ({report['weights'] or 'random init'}) -> "
                f"{run_dir / 'checkpoints' / 'best.ckpt'}"]
    lines = []
    for e in report["rounds"]:
        added = ", ".join(f"{c} {n}" for c, n in e["pseudo_labels"]["per_class"].items())
        lines.append(f"round {e['round']}: pseudo-labels {e['pseudo_labels']['n']} ({added}); confident fraction "
                     f"{e['confident_fraction']:.3f} (>= {report['min_confidence']:g}), mean confidence "
                     f"{e['mean_confidence']:.3f}")
    lines.append(f"trained {len(report['rounds'])} round(s) of {report['backbone']} -> {run_dir} (final: "
                 f"{run_dir / 'checkpoints' / 'best.ckpt'}; {run_dir / 'rounds.json'})")
    return lines


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
              "n_train_per_class": np.bincount(labels[labels >= 0], minlength=len(class_names)).tolist()}
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
