"""The transfer-learning method as the registry drives it (``labelsky train``).

:func:`select_rows` takes the labelled rows of splits ``train`` / ``val`` of
the ``data`` datasets and every row of the ``unlabelled`` ones; :func:`fit`
trains one classifier into the run folder (:func:`.train.train_one`), or,
with unlabelled parts, recursive rounds with pseudo-labels (:mod:`.recursive`).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Callable

import numpy as np

from labelsky.data.io import DatasetError
from labelsky.errors import LabelskyWarning, SettingsError
from labelsky.methods.parts import Part, every_row, same_classes, same_units
from labelsky.methods.registry import Fitted
from labelsky.methods.transfer.config import TransferConfig
from labelsky.methods.transfer.recursive import recursive_training
from labelsky.methods.transfer.train import train_one

__all__ = ["select_rows", "fit", "summary"]

log = logging.getLogger(__name__)


def select_rows(datasets: dict, cfg: TransferConfig | None = None) -> dict:
    """``{"train", "val", "unlabelled"}`` parts of ``datasets`` (``{"data": [...], "unlabelled": [...]}``).

    ``train`` / ``val``: the labelled (``label >= 0``) rows of splits ``train`` / ``val`` of every ``data``
    dataset, labels from the catalog (every dataset must have the same classes), or with a vote head
    (``cfg.questions``) the rows with first-question votes, whose counts are the targets; ``unlabelled``: every
    row of every ``unlabelled`` dataset (their labels are never read).
    """
    cfg = cfg or TransferConfig()
    labelled = list(datasets["data"])
    votes = cfg.target_columns()
    if votes is None:
        same_classes(labelled)
    parts = {"train": [], "val": [], "unlabelled": [every_row(ds) for ds in datasets.get("unlabelled", [])]}
    for ds in labelled:
        split = ds.column("split")
        if votes is None:
            known = ds.column("label") >= 0
        else:  # a vote head: the rows with votes on the first question
            missing = [c for c in votes if c not in ds.catalog.column_names]
            if missing:
                raise DatasetError(f"{ds.path}: no vote column(s) {missing[:4]} ({len(missing)} missing) for "
                                   f"--questions {cfg.questions}; import them with labelsky import --votes TABLE "
                                   f"--schema SCHEMA")
            known = sum(ds.column(c) for c in votes[:3]) > 0
        for name in ("train", "val"):
            rows = np.flatnonzero((split == name) & known)
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
    same_units([p[0] for p in train + val + pool], cfg.render, "the labelled and unlabelled data", cfg.mixed_units)
    classes = list(train[0][0].classes)
    if cfg.questions != "classes":  # a vote head: one output per answer
        from labelsky.methods.semisup.config import answer_names

        classes = answer_names(cfg.questions)
        if pool:
            raise SettingsError("--questions (a vote head) trains on vote counts; recursive pseudo-labels "
                                "(--unlabelled) need class labels")
    if not pool:
        if cfg.rounds is not None or cfg.cluster_filter:
            raise SettingsError("--rounds and --cluster-filter need --unlabelled DATA (the datasets to pseudo-label)")
        model = train_one(run_dir, train, val, classes, cfg, progress=progress, overwrite=overwrite)
        return Fitted(model, {"backbone": cfg.backbone, "weights": model.weights_info.get("weights"),
                              "classes": classes})
    if cfg.devices not in (None, 1) or cfg.num_nodes != 1:
        raise SettingsError("recursive training (--unlabelled) runs on one device")
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


