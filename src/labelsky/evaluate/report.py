"""Metrics of a trained run on a dataset split (``labelsky evaluate``), for every kind of output.

A run's output kind (:data:`labelsky.methods.registry.OUTPUTS`) says what it is scored against:

``probs``      the catalog's labels: accuracy, F1, confusion matrix, confidence curve (and two figures);
``fractions``  the Galaxy Zoo vote counts: RMSE of the vote fractions, per answer and overall;
``values``     the model's truth column (``model.truth(ds)``, e.g. ln richness): MAE, Sigma, scatter, bias;
``embedding``  nothing: a self-supervised extractor has no output to score (its embedding is measured by the
               domain gap, ``--reference``, or clustered, ``labelsky cluster``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from labelsky.data.io import VOTE_COLUMNS, DatasetError, LabelskyDataset
from labelsky.data.vote_trees import tree_of_columns
from labelsky.errors import SettingsError
from labelsky.measures.figures import confusion_figure, curve_figure
from labelsky.measures.metrics import (
    classification_report,
    confident_accuracy_curve,
    question_rmse,
    regression_metrics,
    vote_rmse,
)
from labelsky.methods.predict import Predictor
from labelsky.methods.run import load_run
from labelsky.utils import atomic_write_json

__all__ = ["evaluate_run", "scored_rows", "scored_what", "headline"]


def _split(ds, split: str) -> np.ndarray:
    return np.ones(len(ds), bool) if split == "all" else ds.column("split").astype(str) == split


def scored_rows(model, ds: LabelskyDataset, split: str = "test") -> np.ndarray:
    """Rows of ``split`` (or ``all``) of ``ds`` that have what ``model``'s output is scored against."""
    in_split = _split(ds, split)
    if model.output == "probs":
        return np.flatnonzero(in_split & (ds.column("label") >= 0))
    if model.output == "fractions":
        tree = tree_of_columns(model.output_names())
        if any(c not in ds.catalog.column_names for c in (tree.columns() if tree else VOTE_COLUMNS)):
            return np.zeros(0, np.int64)
        return np.flatnonzero(in_split & (sum(ds.column(c) for c in VOTE_COLUMNS) > 0))
    if model.output == "values":
        truth = model.truth(ds)
        return np.zeros(0, np.int64) if truth is None else np.flatnonzero(in_split & np.isfinite(truth).all(1))
    return np.zeros(0, np.int64)


def scored_what(model) -> str:
    """What rows of a dataset need for ``model``'s output to be scored: ``labelled rows``, ..."""
    return {"probs": "labelled rows", "fractions": "rows with Galaxy Zoo votes",
            "values": f"rows with a true {', '.join(model.output_names())}"}.get(model.output, "rows to score")


def _missing(ds, split: str, model) -> DatasetError:
    splits, counts = np.unique(ds.column("split").astype(str), return_counts=True)
    have = ", ".join(f"{s}: {c}" for s, c in zip(splits, counts))
    n_any = len(scored_rows(model, ds, "all"))
    return DatasetError(f"{ds.path}: no {scored_what(model)} in split {split!r} (rows per split: {have}; {n_any} "
                        f"in all); a dataset without them has no score: --reference SOURCE --split all measures its "
                        f"domain gap, labelsky catalog predicts it")


def evaluate_run(run: str | Path, ds: LabelskyDataset, *, split: str = "test", device: str = "auto",
                 model=None) -> dict:
    """The metrics of ``run``'s best model on ``split`` of ``ds`` (a split name or ``all``).

    Writes ``RUN/eval_<survey>_<split>.json`` (and, for classifiers, two
    figures under ``RUN/figures``); returns the report (``path``: the file,
    ``None`` when the run folder is read-only). ``model``: the run's model when
    it is loaded already.
    """
    run = Path(run)
    model = model if model is not None else load_run(run)
    if model.output == "embedding":
        raise SettingsError(f"{run} is a {type(model).__name__} run: its output is an embedding, with nothing to "
                            f"score; measure the domain gap (--reference SOURCE) or cluster it (labelsky cluster)")
    predictor = Predictor(model, device=device)
    predictor.preprocess(ds)  # a method that cannot read this dataset says so here
    names = list(model.output_names())
    rows = scored_rows(model, ds, split)
    if not len(rows):
        raise _missing(ds, split, model)
    if model.output == "probs" and ds.classes != names:
        raise DatasetError(f"{ds.path}: classes {ds.classes} differ from the model's {names}")
    out = predictor.predict(ds, rows, embed=False)["output"]
    if model.output == "probs":
        label = ds.column("label")[rows]
        rep = classification_report(label, out.argmax(1), len(ds.classes), ds.classes)
        rep["confidence_curve"] = confident_accuracy_curve(out, label)
    elif model.output == "fractions":
        tree = tree_of_columns(names)
        counts = np.stack([ds.column(c)[rows] for c in (tree.columns() if tree else VOTE_COLUMNS)], 1)
        # the first question's RMSE (the first three answers of every tree), then each answer's and question's
        rep = {"n": int(len(rows)), "rmse": vote_rmse(out[:, :3], counts[:, :3]),
               "rmse_per_answer": {n: _answer_rmse(out, counts, k) for k, n in enumerate(names)}}
        if tree is not None:
            rep["rmse_per_question"] = question_rmse(out, counts, tree)
    else:
        truth = model.truth(ds)[rows]
        rep = {n: regression_metrics(out[:, k], truth[:, k]) for k, n in enumerate(names)}
        rep["n"] = int(len(rows))
    rep.update(dataset=str(ds.path), survey=ds.survey.name, split=split, output=model.output)
    name = f"eval_{ds.survey.name}_{split}"
    try:
        atomic_write_json(run / f"{name}.json", rep)
        if model.output == "probs":
            confusion_figure(rep["confusion_matrix"], ds.classes, run / "figures" / f"{name}_confusion.png")
            curve_figure(rep["confidence_curve"], run / "figures" / f"{name}_confidence.png")
        rep["path"] = str(run / f"{name}.json")
    except OSError as err:  # a read-only run folder: the metrics are still returned (and printed)
        rep["path"] = None
        rep["write_error"] = f"cannot write {run / (name + '.json')} and its figures: {err.strerror or err}"
    return rep


def _answer_rmse(fractions: np.ndarray, counts: np.ndarray, k: int) -> float:
    """RMSE of the predicted fraction of answer ``k`` over the galaxies with votes."""
    total = counts.sum(1)
    ok = (counts >= 0).all(1) & (total > 0)
    if not ok.any():
        return float("nan")
    return float(np.sqrt(np.mean((fractions[ok, k] - counts[ok, k] / total[ok]) ** 2)))


def headline(rep: dict) -> str:
    """The one line ``labelsky evaluate`` prints of a report."""
    if rep["output"] == "probs":
        return f"n={rep['n']} accuracy={rep['accuracy']:.4f} F1={rep['f1']:.4f}"
    if rep["output"] == "fractions":
        return f"n={rep['n']} RMSE of vote fractions={rep['rmse']:.4f}"
    cols = [k for k, v in rep.items() if isinstance(v, dict) and "mae" in v]
    return f"n={rep['n']} " + " ".join(f"{c}: MAE={rep[c]['mae']:.4f} Sigma={rep[c]['sigma']:.4f}" for c in cols)
