"""Adaptation toward a target without labels: target labels never reach the weights."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from labelsky.data.io import open_dataset


def relabel(src, dst, how: str, seed: int = 0):
    """Copy dataset ``src`` to ``dst`` with its labels shuffled across rows or removed (the real-survey case)."""
    shutil.copytree(src, dst)
    parts = sorted((dst / "catalog").glob("part-*.parquet"))
    tables = [pq.read_table(p) for p in parts]
    label = np.concatenate([t.column("label").to_numpy() for t in tables])
    name = np.concatenate([t.column("label_name").to_numpy(zero_copy_only=False) for t in tables]).astype(object)
    split = np.concatenate([t.column("split").to_numpy(zero_copy_only=False) for t in tables]).astype(object)
    if how == "shuffle":
        perm = np.random.default_rng(seed).permutation(len(label))
        label, name = label[perm], name[perm]
    else:
        label, name = np.full_like(label, -1), np.full(len(label), "", dtype=object)
        split = np.full(len(label), "unlabelled", dtype=object)
    start = 0
    for p, t in zip(parts, tables):
        n = t.num_rows
        for col, values in (("label", label[start:start + n]), ("label_name", name[start:start + n]),
                            ("split", split[start:start + n])):
            i = t.schema.get_field_index(col)
            t = t.set_column(i, t.schema.field(i), pa.array(values, type=t.schema.field(i).type))
        pq.write_table(t, p)
        start += n
    return open_dataset(dst)


@pytest.fixture(scope="module")
def sims(tmp_path_factory):
    from labelsky.data.simulate import simulate_galaxies

    root = tmp_path_factory.mktemp("unlab")
    return simulate_galaxies(root / "sim", n_objects=64, surveys=["lsst_y1", "lsst_y10"], stamp_size=24,
                             classes={"elliptical": 1, "spiral": 1, "merger": 1}, workers=2, progress=False)


def _adapt(run, source, target):
    from labelsky import train
    from labelsky.methods.uda import UDAConfig

    cfg = UDAConfig(method="deepastrouda", backbone="resnet10t", max_epochs=2, batch_size=16, seed=3,
                    grad_log_every=0, classes_known=["elliptical", "spiral"])
    return train("uda", run, {"source": source, "target": target}, cfg, progress=False)


def test_shuffled_target_labels_change_no_weight(sims, tmp_path):
    source = open_dataset(sims["lsst_y10"].path)
    target = open_dataset(sims["lsst_y1"].path)
    shuffled = relabel(target.path, tmp_path / "shuffled", "shuffle")
    assert not np.array_equal(shuffled.column("label"), target.column("label"))
    m1, _ = _adapt(tmp_path / "a", source, target)
    m2, _ = _adapt(tmp_path / "b", source, shuffled)
    s1, s2 = m1.state_dict(), m2.state_dict()
    assert s1.keys() == s2.keys()
    for k in s1:
        assert torch.equal(s1[k], s2[k]), k


def test_adapt_runs_on_a_target_without_any_label_and_reports_the_domain_gap(sims, tmp_path, capsys):
    from labelsky.cli import main

    source = sims["lsst_y10"].path
    bare = relabel(sims["lsst_y1"].path, tmp_path / "bare", "remove")
    assert (bare.column("label") == -1).all() and set(bare.column("split")) == {"unlabelled"}
    run = tmp_path / "run"
    assert main(["adapt", "--source", str(source), "--target", str(bare.path), "--out", str(run),
                 "--known", "elliptical", "spiral", "--backbone", "resnet10t", "--epochs", "1",
                 "--batch-size", "16"]) == 0
    rep = json.loads((run / "eval.json").read_text())
    assert "target_test" not in rep and "source_test" in rep  # nothing to evaluate on the target, nothing invented
    for stage in ("before", "after"):
        g = rep["domain_gap"][stage]
        src = open_dataset(source)  # the source's held-out (val and test) galaxies of the known classes
        n_held_out = int((np.isin(src.column("split").astype(str), ["val", "test"])
                          & np.isin(src.column("label_name").astype(str), ["elliptical", "spiral"])).sum())
        assert g["n_target"] == min(n_held_out, len(bare)) and len(g["auroc_folds"]) == 5
    assert (run / "figures" / "domain_gap.png").is_file() and (run / "figures" / "nearest_neighbours.png").is_file()
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["data"]["target"][0]["n"] == len(bare)  # every target row trained
    capsys.readouterr()
    assert main(["evaluate", "--run", str(run), "--data", str(bare.path), "--split", "all", "--reference",
                 str(source)]) == 0
    out = capsys.readouterr().out
    assert "no labelled rows" in out and "domain gap" in out and "AUROC" in out
    assert (run / "figures" / "domain_gap_bare.png").is_file()
    saved = json.loads((run / "domain_gap_bare.json").read_text())
    assert saved["reference_split"] == "val+test" and saved["split"] == "all" and 0 <= saved["auroc"] <= 1
    n_reference = int(np.isin(src.column("split").astype(str), ["val", "test"]).sum())  # every class
    assert saved["n_target"] == min(n_reference, len(bare)) and f"{saved['auroc']:.3f}" in out
    # without --reference an unlabelled dataset has nothing to measure: one line naming the ways on
    assert main(["evaluate", "--run", str(run), "--data", str(bare.path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no labelled rows in split 'test'" in err[0] and "unlabelled: 64" in err[0]
    assert "--reference" in err[0] and "labelsky catalog" in err[0]
    # eval.json is strict JSON: undefined metrics (unknown-class metrics of the source) are null, not NaN
    json.loads((run / "eval.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in eval.json"))
    assert rep["source_test"]["unknown_accuracy"] is None
