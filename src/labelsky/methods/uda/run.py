"""One adaptation run from two datasets: split, relabel, train, evaluate (used by ``labelsky adapt``).

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

from pathlib import Path
from typing import Sequence

import numpy as np

from labelsky.data.io import DatasetError, LabelskyDataset
from labelsky.evaluate.openset import openset_report
from labelsky.methods.uda.module import UDAConfig, UDAModule, fit_uda
from labelsky.training import predict
from labelsky.utils import atomic_write_json

__all__ = ["adapt", "openset_labels", "adaptation_rows", "select_rows", "fit_adapt", "adaptation_gap",
           "starting_model"]


def openset_labels(names, known: Sequence[str]) -> np.ndarray:
    """Index among ``known`` of every class name, ``len(known)`` for any other (unknown) name."""
    known = list(known)
    lookup = {n: i for i, n in enumerate(known)}
    return np.array([lookup.get(str(n), len(known)) for n in names], dtype=np.int64)


def adaptation_rows(source: LabelskyDataset, target: LabelskyDataset, known: Sequence[str],
                    source_names=None, target_names=None) -> dict:
    """Rows and open-set labels of every part: ``{part: (dataset, rows, labels)}``."""
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
        out[name] = (ds, rows, openset_labels(names[rows], known))
    return out


def adapt(run_dir, source: LabelskyDataset, target: LabelskyDataset, known: Sequence[str], cfg: UDAConfig,
          source_names=None, target_names=None, overwrite: bool = False, progress: bool = True,
          embeddings: bool = False, gap: bool = True, gap_rows: int = 1000) -> tuple[UDAModule, dict]:
    """Train ``cfg.method`` from ``source`` to ``target`` into ``run_dir`` and evaluate both test sets.

    Writes ``run_dir/eval.json`` (open-set reports of the source and target
    test sets where they have class names, see
    :func:`labelsky.evaluate.openset.openset_report`); with ``embeddings``,
    also ``run_dir/embeddings.npz`` (latent vectors and labels of both test
    sets, for latent-space figures). With ``gap`` (default), also the
    domain-gap diagnostic, which needs no target label
    (:mod:`labelsky.evaluate.domain_gap`): the AUROC of a classifier telling
    target training galaxies from held-out source galaxies (``val`` and
    ``test``; at most ``gap_rows`` each) in the embedding of the starting network (``before``) and of the
    trained one (``after``), in ``eval.json["domain_gap"]``, with
    ``figures/domain_gap.png`` and ``figures/nearest_neighbours.png``.
    Returns the best model and the reports.
    """
    run_dir = Path(run_dir)
    known = list(known)
    cfg.classes_known = known
    parts = adaptation_rows(source, target, known, source_names, target_names)
    val_t = parts["target_val"] if len(parts["target_val"][1]) else None
    model = fit_uda(run_dir, parts["source_train"], parts["target_train"][:2] + (None,), parts["source_val"],
                    known, cfg, target_val_part=val_t, overwrite=overwrite, progress=progress)
    from labelsky.training import is_global_zero

    if not is_global_zero():  # a distributed run: rank 0 evaluates and writes
        return model, {}
    reports, arrays = {}, {}
    for name, dom in (("source_test", 0), ("target_test", 1)):
        ds, rows, labels = parts[name]
        if not len(rows):
            continue
        model.predict_domain = dom
        out = predict(model, ds, rows, cfg, embed=embeddings)
        reports[name] = openset_report(labels, out["probs"], model.rho, known)
        reports[name]["rows"] = int(len(rows))
        if embeddings:
            arrays[f"{name}_embedding"] = out["embedding"]
            arrays[f"{name}_labels"] = labels
            arrays[f"{name}_probs"] = out["probs"]
    reports["rho"], reports["margin"] = model.rho, float(model.tuner.m)
    reports["tuner_history"] = list(model.tuner.history)
    atomic_write_json(run_dir / "eval.json", reports)
    if gap:
        try:
            reports["domain_gap"] = adaptation_gap(run_dir, model, parts, cfg, known, max_rows=gap_rows)
        except ValueError as err:  # too few rows or distinct embeddings: said, never fatal to a trained run
            reports["domain_gap"] = {"error": str(err)}
        atomic_write_json(run_dir / "eval.json", reports)
    if embeddings:
        from labelsky.utils import atomic_path

        with atomic_path(run_dir / "embeddings.npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, **arrays)
    return model, reports


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
    no target label is read.

    Returns ``{"before": {...}, "after": {...}}`` with the AUROC, its folds and
    the numbers of rows (see :func:`labelsky.evaluate.domain_gap.domain_gap`).
    """
    from labelsky.evaluate.domain_gap import domain_gap, domain_gap_figure, nearest_neighbour_mosaic, subsample

    held_out = np.union1d(parts["source_val"][1], parts["source_test"][1])  # rows no gradient step saw
    ds_s, rows_s = parts["source_val"][0], subsample(held_out, max_rows, cfg.seed)
    ds_t, rows_t = parts["target_train"][0], subsample(parts["target_train"][1], max_rows, cfg.seed)
    start = starting_model(cfg, ds_s, known, len(parts["source_train"][1]), len(parts["target_train"][1]))
    gaps, emb = {}, {}
    for stage, net in (("before", start), ("after", model)):
        pair = []
        for ds, rows, dom in ((ds_s, rows_s, 0), (ds_t, rows_t, 1)):
            net.predict_domain = dom
            pair.append(predict(net, ds, rows, cfg, embed=True)["embedding"])
        emb[stage] = pair
        gaps[stage] = domain_gap(*pair, seed=cfg.seed)
    model.predict_domain = 1
    if figures:
        fig_dir = Path(run_dir) / "figures"
        domain_gap_figure(gaps, fig_dir / "domain_gap.png", title=f"{ds_s.survey.name} -> {ds_t.path.name}")
        nearest_neighbour_mosaic(ds_s, rows_s, emb["after"][0], ds_t, rows_t, emb["after"][1],
                                 fig_dir / "nearest_neighbours.png", seed=cfg.seed)
    return {stage: {k: v for k, v in g.items() if not k.startswith("scores")} for stage, g in gaps.items()}


def select_rows(datasets: Sequence[LabelskyDataset], cfg: UDAConfig | None = None, *, seed: int = 0) -> dict:
    """The parts of ``[source, target]`` (see :func:`adaptation_rows`; known classes from ``cfg.classes_known``,
    default every source class)."""
    source, target = datasets
    known = list(getattr(cfg, "classes_known", None) or source.classes)
    return adaptation_rows(source, target, known)


def fit_adapt(run_dir, datasets: Sequence[LabelskyDataset], cfg: UDAConfig, *, overwrite: bool = False,
              progress: bool = True) -> UDAModule:
    """:func:`adapt` from ``datasets = [source, target]`` (the registry's ``fit``); returns the best model."""
    source, target = datasets
    known = list(cfg.classes_known or source.classes)
    model, _ = adapt(run_dir, source, target, known, cfg, overwrite=overwrite, progress=progress)
    return model
