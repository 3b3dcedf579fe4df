"""Metrics of a trained run on a labelled dataset split (``labelsky evaluate``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from labelsky.data.io import DatasetError, LabelskyDataset
from labelsky.errors import SettingsError

__all__ = ["evaluate_run"]


def evaluate_run(run: str | Path, ds: LabelskyDataset, *, split: str = "test", device: str = "auto") -> dict:
    """Accuracy, F1, confusion matrix and confidence curve of ``run``'s best model on ``split`` of ``ds``.

    ``split`` is a split name or ``all``. Writes ``RUN/eval_<survey>_<split>.json``
    and two figures under ``RUN/figures``; returns the report. Only methods
    that predict class probabilities are evaluated this way.
    """
    from labelsky.evaluate.figures import confusion_figure, curve_figure
    from labelsky.evaluate.metrics import classification_report, confident_accuracy_curve
    from labelsky.runs import load_run, run_spec
    from labelsky.training import predict
    from labelsky.utils import atomic_write_json

    run = Path(run)
    spec = run_spec(run)
    if spec.output != "probs":
        raise SettingsError(f"{run} is a {spec.name!r} run ({spec.output}); labelsky evaluate measures classifiers "
                            f"(methods whose output is class probabilities); the {spec.name} command reports its "
                            f"own metrics")
    model = load_run(run)
    spec.preprocess(model, ds)  # a method that cannot read this dataset says so here
    names = list(spec.output_names(model))
    label = ds.column("label")
    rows = np.flatnonzero(label >= 0) if split == "all" else np.flatnonzero((ds.column("split") == split)
                                                                             & (label >= 0))
    if not len(rows):
        splits, counts = np.unique(ds.column("split").astype(str), return_counts=True)
        have = ", ".join(f"{s}: {c}" for s, c in zip(splits, counts))
        raise DatasetError(f"{ds.path}: no labelled rows in split {split!r} (rows per split: {have}; "
                           f"{int((label >= 0).sum())} labelled); an unlabelled dataset has no accuracy: "
                           f"--reference SOURCE --split all measures its domain gap, labelsky catalog predicts it")
    if ds.classes != names:
        raise DatasetError(f"{ds.path}: classes {ds.classes} differ from the model's {names}")
    p = predict(model, ds, rows, model.cfg, device=device, embed=False)["probs"]
    rep = classification_report(label[rows], p.argmax(1), len(ds.classes), ds.classes)
    rep["confidence_curve"] = confident_accuracy_curve(p, label[rows])
    rep.update(dataset=str(ds.path), survey=ds.survey.name, split=split)
    name = f"eval_{ds.survey.name}_{split}"
    try:
        atomic_write_json(run / f"{name}.json", rep)
        confusion_figure(rep["confusion_matrix"], ds.classes, run / "figures" / f"{name}_confusion.png")
        curve_figure(rep["confidence_curve"], run / "figures" / f"{name}_confidence.png")
        rep["path"] = str(run / f"{name}.json")
    except OSError as err:  # a read-only run folder: the metrics are still returned (and printed)
        rep["path"] = None
        rep["write_error"] = f"cannot write {run / (name + '.json')} and its figures: {err.strerror or err}"
    return rep
