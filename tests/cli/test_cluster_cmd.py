"""``labelsky cluster``: a run's embeddings of a dataset -> map, clusters named by class, purity where labels exist."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from tests.methods.test_recursive import cfg, write_ds

from conftest import one_line_error
from labelsky.cli import main


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from labelsky import train

    root = tmp_path_factory.mktemp("clu")
    lab = write_ds(root / "lab", 36, seed=1)
    n = 40
    none = write_ds(root / "none", n, labels=np.full(n, -1), split=["unlabelled"] * n, seed=3, start=500)
    true = write_ds(root / "true", n, split=[("test", "unlabelled")[i % 2] for i in range(n)], seed=3, start=500)
    train("transfer", root / "run", {"data": lab}, cfg(max_epochs=2), progress=False)
    return {"root": root, "run": root / "run", "none": none.path, "true": true.path}


def test_unlabelled_dataset(setup, tmp_path, capsys):
    out = tmp_path / "c"
    assert main(["cluster", "--run", str(setup["run"]), "--data", str(setup["none"]), "--out", str(out),
                 "--perplexity", "8"]) == 0
    assert {"clusters.parquet", "summary.json", "tsne.png", ".labelsky"} <= {p.name for p in out.iterdir()}
    t = pq.read_table(out / "clusters.parquet")
    assert t.num_rows == 40 and "label" not in t.column_names
    assert {"id_str", "row", "map_x", "map_y", "cluster", "cluster_class", "pred_class", "confidence"} <= \
        set(t.column_names)
    assert t.column("row").to_pylist() == list(range(40))
    s = json.loads((out / "summary.json").read_text())
    assert s["n"] == 40 and s["clusters"] == 2 and sum(s["sizes"].values()) == 40 and s["n_labelled"] == 0
    assert s["cluster_purity"] is None and s["cluster_label_accuracy"] is None and "no row has a label" in s["note"]
    assert sorted(s["cluster_classes"].values()) == ["elliptical", "spiral"]  # one-to-one: k == classes
    assert s["naming"] == "one-to-one"
    pred = t.column("pred_class").to_pylist()
    cid = t.column("cluster").to_pylist()
    assert s["cluster_predictions"] == {str(c): {n: sum(1 for p, i in zip(pred, cid) if p == n and i == c)
                                                 for n in ("elliptical", "spiral")} for c in range(2)}
    assert "no row has a label" in capsys.readouterr().out
    # a finished output is kept; --overwrite redoes it
    assert main(["cluster", "--run", str(setup["run"]), "--data", str(setup["none"]), "--out", str(out)]) == 2
    one_line_error(capsys, "already holds finished clusters", "--overwrite")
    assert main(["cluster", "--run", str(setup["run"]), "--data", str(setup["none"]), "--out", str(out),
                 "--overwrite", "--k", "3"]) == 0
    assert json.loads((out / "summary.json").read_text())["clusters"] == 3
    # never into a run folder
    assert main(["cluster", "--run", str(setup["run"]), "--data", str(setup["none"]), "--out",
                 str(setup["run"])]) == 2
    one_line_error(capsys)


def test_labelled_dataset_purity_and_split(setup, tmp_path):
    from sklearn.metrics.cluster import contingency_matrix

    out = tmp_path / "c"
    assert main(["cluster", "--run", str(setup["run"]), "--data", str(setup["true"]), "--out", str(out),
                 "--k", "3", "--perplexity", "8"]) == 0
    t = pq.read_table(out / "clusters.parquet").to_pandas()
    s = json.loads((out / "summary.json").read_text())
    cm = contingency_matrix(t["label"], t["cluster"])
    assert s["n_labelled"] == 40 and s["cluster_purity"] == pytest.approx(cm.max(axis=0).sum() / 40)
    names = ["elliptical", "spiral"]
    acc = np.mean([names.index(c) == lab for c, lab in zip(t["cluster_class"], t["label"])])
    assert s["cluster_label_accuracy"] == pytest.approx(acc)
    assert s["prediction_accuracy"] == pytest.approx(np.mean([names.index(c) == lab for c, lab in
                                                              zip(t["pred_class"], t["label"])]))
    only = tmp_path / "test_only"
    assert main(["cluster", "--run", str(setup["run"]), "--data", str(setup["true"]), "--out", str(only),
                 "--split", "test", "--perplexity", "5"]) == 0
    assert pq.read_table(only / "clusters.parquet").column("row").to_pylist() == list(range(0, 40, 2))


def test_hdbscan(setup, tmp_path, capsys):
    out = tmp_path / "h"
    # each option belongs to its algorithm: refused before anything is written
    for wrong, needle in ((["--algorithm", "hdbscan", "--k", "3"], "--k"), (["--min-cluster-size", "5"],
                                                                            "--min-cluster-size")):
        assert main(["cluster", "--run", str(setup["run"]), "--data", str(setup["true"]), "--out", str(out),
                     *wrong]) == 2
        one_line_error(capsys, needle)
        assert not out.exists()
    assert main(["cluster", "--run", str(setup["run"]), "--data", str(setup["true"]), "--out", str(out),
                 "--algorithm", "hdbscan", "--min-cluster-size", "5", "--perplexity", "8"]) == 0
    s = json.loads((out / "summary.json").read_text())
    t = pq.read_table(out / "clusters.parquet")
    cid = np.asarray(t.column("cluster"))
    assert s["algorithm"] == "hdbscan" and s["k"] is None and s["clusters"] >= 1
    assert s["n_noise"] == int((cid < 0).sum()) and s["clusters"] == len(set(cid[cid >= 0]))
    assert all(c == "" for c, i in zip(t.column("cluster_class").to_pylist(), cid) if i < 0)
    assert s["figure"] == "tsne.png" and (out / "tsne.png").is_file()


@pytest.mark.skipif(importlib.util.find_spec("umap") is not None, reason="umap-learn is installed")
def test_umap_missing_is_one_line(setup, tmp_path, capsys):
    out = tmp_path / "u"
    assert main(["cluster", "--run", str(setup["run"]), "--data", str(setup["none"]), "--out", str(out),
                 "--embed", "umap"]) == 2
    one_line_error(capsys, "umap-learn", "--embed tsne")
    assert not out.exists()


def test_cluster_filter_matches_the_evaluate_recipe():
    from labelsky.measures.embeddings import cluster, name_clusters, tsne
    from labelsky.methods.transfer import cluster_classes

    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, (25, 8)), rng.normal(6, 1, (25, 8))])
    p = np.tile([[0.8, 0.2]], (50, 1))
    p[25:] = p[25:, ::-1]
    xy = tsne(x, perplexity=10, seed=1, method="auto")
    cid = cluster(xy, 2, seed=1)
    expected = name_clusters(cid, p, 2, one_to_one=True)[cid]
    assert np.array_equal(cluster_classes(x, p, seed=1, perplexity=10), expected)
    assert np.array_equal(expected, np.repeat([0, 1], 25))
