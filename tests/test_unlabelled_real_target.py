"""The whole unlabelled-real-target path on real galaxies: the Hubble Deep Field picture scikit-image ships.

Detect and cut out its sources, import them without labels, then, from a labelled simulation rendered as the
Legacy Survey viewer does: adapt toward them, measure the domain gap, cluster them, pseudo-label them, and write
their catalog with classes, confidences and unknown flags. No label of a real galaxy exists anywhere here.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

pytest.importorskip("skimage")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from labelsky.cli import main
    from labelsky.data.io import open_dataset
    from labelsky.data.simulate import simulate_galaxies

    root = tmp_path_factory.mktemp("real")
    assert main(["import", "detect", "--example", "hubble-deep-field", "--out", str(root / "hdf"), "--size", "24",
                 "--cutout", "scaled", "--max-sources", "64", "--edge", "drop"]) == 0
    sims = simulate_galaxies(root / "sim", n_objects=64, surveys=["decals"], stamp_size=24, cutout="scaled",
                             classes={"elliptical": 1, "spiral": 1}, workers=1, progress=False)
    return root, open_dataset(root / "hdf"), sims["decals"]


def test_real_sources_import_without_labels(data):
    _, hdf, _ = data
    assert 30 <= len(hdf) <= 64 and hdf.meta["flux_unit"] == "display"
    assert (hdf.column("label") == -1).all() and set(hdf.column("split")) == {"unlabelled"}
    imgs = hdf.images(range(len(hdf)))
    assert np.isfinite(imgs).all() and imgs.min() >= 0 and imgs.max() <= 1
    centre = imgs[:, :, 9:15, 9:15].mean()
    assert centre > imgs.mean()  # every cutout is centred on its source


def test_adapt_catalog_cluster_and_pseudo_label_real_galaxies(data, capsys):
    from labelsky.cli import main

    root, hdf, sim = data
    run = root / "adapt"
    assert main(["adapt", "--source", str(sim.path), "--target", str(hdf.path), "--out", str(run), "--backbone",
                 "resnet10t", "--epochs", "1", "--batch-size", "16", "--render", "legacysurvey", "--randomise",
                 ""]) == 0
    out = capsys.readouterr().out
    assert "domain gap" in out and "no labelled test rows" in out
    gap = json.loads((run / "eval.json").read_text())["domain_gap"]
    n_held_out = int(np.isin(sim.column("split").astype(str), ["val", "test"]).sum())
    for g in (gap["before"], gap["after"]):  # real galaxies against held-out simulated ones (val, test), 5 folds
        assert g["n_target"] == g["n_source"] == min(n_held_out, len(hdf)) and len(g["auroc_folds"]) == 5
    cat = root / "hdf.parquet"
    assert main(["catalog", "--run", str(run), "--data", str(hdf.path), "--out", str(cat)]) == 0
    t = pq.read_table(cat)
    assert t.num_rows == len(hdf) and {"pred_class", "confidence", "unknown"} <= set(t.column_names)
    clusters = root / "clusters"
    assert main(["cluster", "--run", str(run), "--data", str(hdf.path), "--out", str(clusters), "--k", "2"]) == 0
    summary = json.loads((clusters / "summary.json").read_text())
    assert summary["n"] == len(hdf) and summary["cluster_purity"] is None  # no label: no purity invented
    rec = root / "recursive"
    assert main(["train", "--data", str(sim.path), "--unlabelled", str(hdf.path), "--out", str(rec), "--rounds",
                 "1", "--k-per-class", "8", "--min-confidence", "0.01", "--backbone", "resnet10t", "--epochs", "1",
                 "--head-epochs", "0", "--batch-size", "16", "--render", "legacysurvey"]) == 0
    rounds = json.loads((rec / "rounds.json").read_text())
    assert len(rounds["rounds"]) == 2 and rounds["rounds"][1]["pseudo_labels"]["n"] > 0
