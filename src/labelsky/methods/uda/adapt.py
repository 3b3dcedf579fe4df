"""Rows, training and evaluation of an adaptation run from a labelled source to a target (``labelsky adapt``).

Class names per row come from the datasets' ``label_name`` column unless
given (e.g. Galaxy10 names derived from the simulation truth). Rows whose name
is empty are left out (a class dropped from the experiment). Known classes
are the source classes the model learns; every other named target class is
"unknown" (index K).

Splits: source ``train`` (training, known classes only), ``val`` (model
selection), ``test``; target ``train`` / ``unlabelled``: every row trains,
labelled or not (the normal target is a real survey without any label; its
labels are never read), ``val`` (labels only logged: per-class accuracy over
epochs), ``test`` (evaluation). Target ``val`` / ``test`` rows without a class
name are left out of the logs and the evaluation.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from labelsky.data.io import DatasetError, LabelskyDataset
from labelsky.measures.openset import openset_report
from labelsky.methods.parts import Part, describe_parts, describe_unlabelled, one, same_units
from labelsky.methods.predict import Predictor, predict
from labelsky.methods.registry import Fitted
from labelsky.methods.run import Run
from labelsky.methods.training import build_trainer, is_global_zero
from labelsky.methods.uda.module import IndexedDataset, TunerCallback, UDAConfig, UDAModule, uda_loaders
from labelsky.utils import atomic_path, atomic_write_json

__all__ = ["openset_labels", "adaptation_rows", "select_rows", "fit", "summary", "adaptation_gap", "starting_model",
           "train_uda"]


def openset_labels(names, known: Sequence[str]) -> np.ndarray:
    """Index among ``known`` of every class name, ``len(known)`` for any other (unknown) name."""
    known = list(known)
    lookup = {n: i for i, n in enumerate(known)}
    return np.array([lookup.get(str(n), len(known)) for n in names], dtype=np.int64)


def adaptation_rows(source: LabelskyDataset, target: LabelskyDataset, known: Sequence[str],
                    source_names=None, target_names=None) -> dict:
    """Rows and open-set labels of every part: ``{part: [Part(dataset, rows, labels)]}`` (one part each).

    ``source_names`` / ``target_names``: the class name of every row (default: the ``label_name`` columns;
    an empty name leaves the row out, e.g. a class dropped from an experiment)."""
    s_names = np.asarray(source.column("label_name") if source_names is None else source_names).astype(str)
    t_names = np.asarray(target.column("label_name") if target_names is None else target_names).astype(str)
    for ds, names in ((source, s_names), (target, t_names)):
        if len(names) != len(ds):
            raise DatasetError(f"{ds.path}: {len(names)} class names given for {len(ds)} rows")
    missing = sorted(set(known) - set(s_names))
    if missing:
        raise DatasetError(f"{source.path}: known class(es) {missing} have no rows in the source")
    s_split, t_split = source.column("split").astype(str), target.column("split").astype(str)
    s_known = np.isin(s_names, list(known))
    t_named = t_names != ""
    parts = {
        "source_train": (source, np.flatnonzero((s_split == "train") & s_known)),
        "source_val": (source, np.flatnonzero((s_split == "val") & s_known)),
        "source_test": (source, np.flatnonzero((s_split == "test") & s_known)),
        # every target training row, labelled or not: target names never choose what trains
        "target_train": (target, np.flatnonzero(np.isin(t_split, ["train", "unlabelled"]))),
        "target_val": (target, np.flatnonzero((t_split == "val") & t_named)),
        "target_test": (target, np.flatnonzero((t_split == "test") & t_named)),
    }
    for name in ("source_train", "source_val", "target_train"):
        if not len(parts[name][1]):
            raise DatasetError(f"no rows for {name.replace('_', ' ')} "
                               f"({parts[name][0].path}: split column"
                               + (f" and known classes {list(known)})" if name.startswith("source") else
                                  ": target training rows are those of split 'train' or 'unlabelled')"))
    out = {}
    for name, (ds, rows) in parts.items():
        names = s_names if ds is source else t_names
        labels = openset_labels(names[rows], known)
        out[name] = [Part(ds, rows, np.where(names[rows] == "", -1, labels))]  # -1: a row without a class name
    return out


def select_rows(datasets: dict, cfg: UDAConfig | None = None) -> dict:
    """The parts of ``{"source": [dataset], "target": [dataset]}`` (see :func:`adaptation_rows`; known classes
    ``cfg.classes_known``, default every source class)."""
    (source,), (target,) = datasets["source"], datasets["target"]
    known = list(getattr(cfg, "classes_known", None) or source.classes)
    return adaptation_rows(source, target, known)


def fit(run_dir, parts: dict, cfg: UDAConfig, *, overwrite: bool = False, progress: bool = True,
        gap: bool = True, gap_rows: int = 1000) -> Fitted:
    """Train ``cfg.method`` on ``parts`` (:func:`adaptation_rows`) into ``run_dir`` and evaluate both test sets.

    Writes ``run_dir/eval.json`` (open-set reports of the source and target
    test sets where they have class names, see
    :func:`labelsky.measures.openset.openset_report`); with
    ``cfg.save_embeddings``, also ``run_dir/embeddings.npz`` (latent vectors,
    labels and probabilities of both test sets, for latent-space figures).
    With ``gap`` (default), also the domain-gap diagnostic, which needs no
    target label (:mod:`labelsky.measures.domain_gap`): the AUROC of a
    classifier telling target training galaxies from held-out source galaxies
    (``val`` and ``test``; at most ``gap_rows`` each) in the embedding of the
    starting network (``before``) and of the trained one (``after``), in
    ``eval.json["domain_gap"]``, with ``figures/domain_gap.png`` and
    ``figures/nearest_neighbours.png``. Returns the best model and the reports.
    """
    run_dir = Path(run_dir)
    part = {name: one(parts, name) for name in parts}
    same_units([part["source_train"].dataset, part["target_train"].dataset], cfg.render, "the source and target",
               cfg.mixed_units)
    known = list(cfg.classes_known or part["source_train"].dataset.classes)
    cfg = dataclasses.replace(cfg, classes_known=known)
    target_val = part["target_val"] if len(part["target_val"].rows) else None
    truth = part["target_train"].labels if cfg.pair_diagnostics else None  # counted, never a loss's input
    model = train_uda(run_dir, part["source_train"], Part(*part["target_train"][:2]), part["source_val"], known,
                      cfg, target_val_part=target_val, overwrite=overwrite, progress=progress, target_truth=truth)
    if not is_global_zero():  # a distributed run: rank 0 evaluates and writes
        return Fitted(model, {})
    reports, arrays = {}, {}
    predictor = Predictor(model, device=cfg.device)
    for name, dom in (("source_test", "source"), ("target_test", "target")):
        ds, rows, labels = part[name]
        if not len(rows):
            continue
        predictor.set_domain(dom)
        out = predictor.predict(ds, rows, embed=cfg.save_embeddings)
        reports[name] = openset_report(labels, out["output"], model.rho, known)
        reports[name]["rows"] = int(len(rows))
        if cfg.save_embeddings:
            arrays[f"{name}_embedding"] = out["embedding"]
            arrays[f"{name}_labels"] = labels
            arrays[f"{name}_probs"] = out["output"]
    model.prepare("target")
    reports["rho"], reports["margin"] = model.rho, float(model.tuner.m)
    reports["tuner_history"] = list(model.tuner.history)
    atomic_write_json(run_dir / "eval.json", reports)
    if gap:
        try:
            reports["domain_gap"] = adaptation_gap(run_dir, model, part, cfg, known, max_rows=gap_rows)
        except ValueError as err:  # too few rows or distinct embeddings: said, never fatal to a trained run
            reports["domain_gap"] = {"error": str(err)}
        atomic_write_json(run_dir / "eval.json", reports)
    if cfg.save_embeddings:
        with atomic_path(run_dir / "embeddings.npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, **arrays)
    return Fitted(model, reports)


def summary(run_dir: Path, reports: dict) -> list[str]:
    """What ``labelsky adapt`` prints after training."""
    from labelsky.measures.domain_gap import gap_line

    run_dir, lines = Path(run_dir), []
    for name in ("source_test", "target_test"):
        if name in reports:
            r = reports[name]
            known = f" closed-set accuracy={r['closed_set_accuracy']:.4f}" if "closed_set_accuracy" in r else ""
            lines.append(f"{name}: n={r['n']} accuracy={r['accuracy']:.4f}{known} F1={r['f1']:.4f} "
                         f"unknown accuracy={_metric(r['unknown_accuracy'])} AUROC={_metric(r['auroc'])}")
    if "target_test" not in reports:
        lines.append("target: no labelled test rows; the domain gap below is the measure without target labels")
    gap = reports.get("domain_gap")
    if gap and "error" in gap:
        lines.append(f"domain gap: not measured ({gap['error']})")
    elif gap:
        lines += ["domain gap (a classifier telling target from source embeddings):",
                  f"  before training: {gap_line(gap['before'])}",
                  f"  after training:  {gap_line(gap['after'])}; figures: {run_dir / 'figures'}"]
    lines.append(f"run: {run_dir}; metrics: {run_dir / 'eval.json'}")
    return lines


def _metric(value) -> str:
    """A metric for printing; ``n/a`` where it is undefined (e.g. the unknown-class metrics of rows without
    an unknown class)."""
    return "n/a" if value is None or value != value else f"{value:.4f}"


def train_uda(run_dir, source_part, target_part, source_val_part, class_names: Sequence[str], cfg: UDAConfig,
            target_val_part=None, progress: bool = True, overwrite: bool = False, target_truth=None) -> UDAModule:
    """Train a UDA model into ``run_dir`` (resumable); returns the best model by source validation accuracy.

    Parts are ``(dataset, rows, labels or None)``; ``target_part`` labels are
    never used for training. ``target_val_part`` (known-class index, K or -1 for
    unknown) is only logged, never used to select the model. ``target_truth``
    (the same for every target training row, with ``cfg.pair_diagnostics``)
    only counts the pair labels' precision and recall.
    """
    from labelsky.data.datasets import ImageDataset
    from labelsky.methods.uda.losses import class_weights

    run_dir = Path(run_dir)
    ds_s, rows_s, lab_s = source_part
    if not cfg.bands:  # recorded by name: a dataset without them is refused by name, never matched by position
        cfg = dataclasses.replace(cfg, bands=list(ds_s.bands))
    labels = np.asarray(lab_s) if lab_s is not None else ds_s.column("label")[np.asarray(rows_s)]
    n_bands = cfg.in_chans(ds_s)
    data = {"classes": list(class_names), "source": describe_parts([source_part]),
            "target": describe_unlabelled([target_part]), "source_val": describe_parts([source_val_part])}
    run = Run.start(run_dir, method="uda", config=cfg, data=data, seed=cfg.seed, overwrite=overwrite,
                    inputs=[ds_s.path, target_part[0].path] + ([cfg.weights] if cfg.weights else []))
    model = UDAModule(cfg.to_dict(), len(class_names), n_bands, len(rows_s), len(target_part[1]), list(class_names),
                      class_weights=class_weights(labels, len(class_names)).tolist())
    if cfg.pair_diagnostics:
        if target_truth is None or not (np.asarray(target_truth) >= 0).any():
            raise DatasetError(f"{target_part[0].path}: pair diagnostics need class names (label_name) on target "
                               "training rows; this target has none")
        model.set_pair_truth(target_truth)
    run.record(classes=list(class_names), weights_used=model.weights_info,
               source={"dataset": str(ds_s.path), "n": int(len(rows_s))},
               target={"dataset": str(target_part[0].path), "n": int(len(target_part[1]))})

    def val_loader(part):
        ds, rows, lab = part
        pre = cfg.preprocess(ds)
        return torch.utils.data.DataLoader(IndexedDataset(ImageDataset(ds, indices=rows, transform=pre, labels=lab)),
                                           batch_size=max(cfg.batch_size, 64), num_workers=cfg.num_workers)

    vals = [val_loader(source_val_part)] + ([val_loader(target_val_part)] if target_val_part is not None else [])
    trainer = build_trainer(run_dir, cfg, [TunerCallback()], monitor="val_source_acc", mode="max",
                            patience=cfg.patience, progress=progress)
    best = run.fit(trainer, model, uda_loaders(source_part, target_part, cfg), vals)
    return UDAModule.load(best)


def starting_model(cfg: UDAConfig, source: LabelskyDataset, known: Sequence[str], n_source: int,
                   n_target: int) -> UDAModule:
    """The network an adaptation run starts from (same backbone, weights and seed, before any training)."""
    import dataclasses

    import lightning as L

    cfg = dataclasses.replace(cfg, bands=cfg.bands or list(source.bands))
    L.seed_everything(cfg.seed, verbose=False)
    return UDAModule(cfg.to_dict(), len(known), cfg.in_chans(source), n_source, n_target, list(known),
                     class_weights=[1.0] * len(known)).eval()


def adaptation_gap(run_dir, model: UDAModule, parts: dict, cfg: UDAConfig, known: Sequence[str], *,
                   max_rows: int = 1000, figures: bool = True) -> dict:
    """Domain gap (held-out source rows, ``val`` and ``test``, vs target training rows) before and after training;
    no target label is read. ``parts``: one :class:`~labelsky.methods.parts.Part` per name.

    Returns ``{"before": {...}, "after": {...}}`` with the AUROC, its folds and
    the numbers of rows (see :func:`labelsky.measures.domain_gap.domain_gap`).
    """
    from labelsky.measures.domain_gap import domain_gap, domain_gap_figure, nearest_neighbour_mosaic, subsample

    held_out = np.union1d(parts["source_val"][1], parts["source_test"][1])  # rows no gradient step saw
    ds_s, rows_s = parts["source_val"][0], subsample(held_out, max_rows, cfg.seed)
    ds_t, rows_t = parts["target_train"][0], subsample(parts["target_train"][1], max_rows, cfg.seed)
    start = starting_model(cfg, ds_s, known, len(parts["source_train"][1]), len(parts["target_train"][1]))
    gaps, emb = {}, {}
    for stage, net in (("before", start), ("after", model)):
        pair = []
        for ds, rows, dom in ((ds_s, rows_s, "source"), (ds_t, rows_t, "target")):
            pair.append(predict(net, ds, rows, domain=dom, device=cfg.device)["embedding"])
        emb[stage] = pair
        gaps[stage] = domain_gap(*pair, seed=cfg.seed)
    model.prepare("target")
    if figures:
        fig_dir = Path(run_dir) / "figures"
        domain_gap_figure(gaps, fig_dir / "domain_gap.png", title=f"{ds_s.survey.name} -> {ds_t.path.name}")
        nearest_neighbour_mosaic(ds_s, rows_s, emb["after"][0], ds_t, rows_t, emb["after"][1],
                                 fig_dir / "nearest_neighbours.png", seed=cfg.seed)
    return {stage: {k: v for k, v in g.items() if not k.startswith("scores")} for stage, g in gaps.items()}
