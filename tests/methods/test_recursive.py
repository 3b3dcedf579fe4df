"""Recursive training with confident pseudo-labels on the user's own datasets (Khan et al. 2019, section III)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from labelsky import train
from labelsky.data.io import DatasetWriter, open_dataset
from labelsky.methods.transfer import TransferConfig

CLASSES = ["elliptical", "spiral"]
SHAPE = (3, 16, 16)


def write_ds(path, n, *, labels=None, split=None, seed=0, start=0):
    """A one-shard decals dataset of ``n`` images whose class shows as a bright centre (0) or a ring (1)."""
    rng = np.random.default_rng(seed)
    truth = np.arange(n) % 2
    yy, xx = np.mgrid[:16, :16] - 7.5
    r = np.hypot(yy, xx)
    shape = np.stack([np.exp(-r ** 2 / 6.0), np.exp(-(r - 5) ** 2 / 2.0)])
    imgs = (rng.normal(scale=0.3, size=(n, *SHAPE)) + 3 * shape[truth][:, None]).astype(np.float32)
    labels = truth if labels is None else np.asarray(labels)
    split = [("train", "train", "val")[i % 3] for i in range(n)] if split is None else split
    ids = np.arange(start, start + n)
    cols = {"id_str": [f"g-{i:05d}" for i in ids], "ra": (ids * 1.7) % 360.0, "dec": ((ids * 0.9) % 170) - 85.0,
            "survey": ["decals"] * n, "split": split, "label": np.asarray(labels, np.int16),
            "label_name": [CLASSES[x] if x >= 0 else "" for x in labels],
            "votes_smooth": np.full(n, -1, np.int32), "votes_featured": np.full(n, -1, np.int32),
            "votes_artifact": np.full(n, -1, np.int32), "richness": np.full(n, np.nan, np.float32)}
    w = DatasetWriter(path, "decals", SHAPE, classes=CLASSES, n_shards=1, config={"seed": seed})
    w.write_shard(0, imgs, cols)
    w.finalize()
    return open_dataset(path)


def cfg(**kw):
    base = dict(backbone="resnet10t", hidden=[16], dropout=0.0, batch_size=16, max_epochs=1, head_epochs=0,
                patience=0, lr=3e-3, augment=False, device="cpu", seed=0)
    base.update(kw)
    return TransferConfig(**base)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("rec")
    lab = write_ds(root / "lab", 36, seed=1)
    n = 30
    # the same images three times: labels absent (-1, split 'unlabelled'), true, and shuffled
    none = write_ds(root / "u_none", n, labels=np.full(n, -1), split=["unlabelled"] * n, seed=2, start=1000)
    true = write_ds(root / "u_true", n, seed=2, start=1000)
    shuffled = write_ds(root / "u_shuf", n, labels=np.random.default_rng(5).permutation(np.arange(n) % 2),
                        split=["test"] * n, seed=2, start=1000)
    return {"root": root, "lab": lab, "none": none, "true": true, "shuffled": shuffled}


def recursive(run, lab, unl, progress=False, **kw):
    """Recursive training through the method's own entry: ``labelsky.train("transfer", ...)`` with unlabelled
    data; ``kw`` are recursion (or other) settings."""
    model, report = train("transfer", run, {"data": lab, "unlabelled": unl}, cfg(**kw), progress=progress)
    return model, {k: v for k, v in report.items() if k not in ("backbone", "weights")}


def _state(path):
    ck = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    return ck


def test_rounds_on_an_unlabelled_dataset_schema_and_loadable(data, tmp_path):
    from labelsky.methods.run import load_run

    run = tmp_path / "run"
    model, rep = recursive(run, data["lab"], data["none"], rounds=2, k_per_class=4,
                                    min_confidence=0.5, progress=False)
    on_disk = json.loads((run / "rounds.json").read_text())
    assert on_disk == json.loads(json.dumps(rep))
    assert on_disk["rounds_selection"] == "reselect" and on_disk["rounds_start"] == "weights"
    assert on_disk["final_round"] == 2 and on_disk["n_unlabelled"] == 30
    assert [e["round"] for e in on_disk["rounds"]] == [0, 1, 2]
    for e in on_disk["rounds"]:
        assert set(e) >= {"round", "run", "pseudo_labels", "confident_fraction", "mean_confidence",
                          "predicted_per_class", "cluster_agreement"}
        assert set(e["pseudo_labels"]["per_class"]) == set(CLASSES)
        assert 0 <= e["confident_fraction"] <= 1 and 0.5 <= e["mean_confidence"] <= 1
        assert (run / e["run"] / "checkpoints" / "best.ckpt").is_file()
        assert (run / e["run"] / "unlabelled.parquet").is_file()
    assert on_disk["rounds"][0]["pseudo_labels"]["n"] == 0
    assert all(0 < e["pseudo_labels"]["n"] <= 8 for e in on_disk["rounds"][1:])
    assert (run / "confident_fraction.png").stat().st_size > 0
    # the top-level folder is a run: the final round's model
    final = load_run(run)
    s_top, s_last = final.state_dict(), _state(run / "round_2" / "checkpoints" / "best.ckpt")
    assert all(torch.equal(s_top[k], s_last[k]) for k in s_top)
    config = json.loads((run / "config.json").read_text())
    assert config["method"] == "transfer" and config["final_round"] == "round_2"
    # round r trained on the labelled rows plus the pseudo-labels chosen by round r - 1
    c1 = json.loads((run / "round_1" / "config.json").read_text())
    assert [t["labels"] for t in c1["train"]] == ["catalog", "given"]
    assert sum(t["n"] for t in c1["train"]) == 24 + on_disk["rounds"][1]["pseudo_labels"]["n"]


def test_labels_of_the_unlabelled_data_are_never_used(data, tmp_path):
    kw = dict(rounds=1, k_per_class=5, min_confidence=0.0, cluster_filter=True, perplexity=5.0, progress=False)
    a, ra = recursive(tmp_path / "a", data["lab"], data["true"], **kw)
    b, rb = recursive(tmp_path / "b", data["lab"], data["shuffled"], **kw)
    assert ra["rounds"][1]["pseudo_labels"]["n"] > 0
    assert ra["rounds"][1]["cluster_agreement"] is not None
    sa, sb = a.state_dict(), b.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert ra["rounds"] == rb["rounds"]


def test_rerun_resumes_finished_rounds_and_refuses_other_settings(data, tmp_path):
    run = tmp_path / "run"
    kw = dict(k_per_class=3, min_confidence=0.5, progress=False)
    recursive(run, data["lab"], data["none"], rounds=1, **kw)
    r0 = run / "round_0" / "checkpoints" / "best.ckpt"
    r1 = run / "round_1" / "checkpoints" / "best.ckpt"
    stamps = (r0.stat().st_mtime_ns, r1.stat().st_mtime_ns)
    # the same command: nothing trains again; one more round adds round_2 only
    _, rep = recursive(run, data["lab"], data["none"], rounds=1, **kw)
    assert (r0.stat().st_mtime_ns, r1.stat().st_mtime_ns) == stamps and len(rep["rounds"]) == 2
    _, rep = recursive(run, data["lab"], data["none"], rounds=2, **kw)
    assert (r0.stat().st_mtime_ns, r1.stat().st_mtime_ns) == stamps
    assert [e["round"] for e in rep["rounds"]] == [0, 1, 2] and (run / "round_2" / "unlabelled.parquet").is_file()
    assert json.loads((run / "rounds.json").read_text())["final_round"] == 2
    with pytest.raises(ValueError, match="other settings"):
        recursive(run, data["lab"], data["none"], rounds=2, k_per_class=7,
                           min_confidence=0.5, progress=False)
    with pytest.raises(ValueError, match="data: unlabelled"):
        recursive(run, data["lab"], data["true"], rounds=2, **kw)


def test_cli_train_unlabelled_rounds(data, tmp_path, capsys):
    from labelsky.cli import main

    run = tmp_path / "cli"
    args = ["train", "--data", str(data["lab"].path), "--unlabelled", str(data["none"].path), "--out", str(run),
            "--backbone", "resnet10t", "--epochs", "1", "--head-epochs", "0", "--batch-size", "16",
            "--rounds", "1", "--k-per-class", "3", "--min-confidence", "0.5", "--device", "cpu"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "round 0:" in out and "round 1:" in out
    assert json.loads((run / "rounds.json").read_text())["k_per_class"] == 3
    # the run folder is the final model for evaluate and catalog
    assert main(["evaluate", "--run", str(run), "--data", str(data["lab"].path), "--split", "val"]) == 0
    assert (run / "eval_decals_val.json").is_file()
    cat = tmp_path / "c.parquet"
    assert main(["catalog", "--run", str(run), "--data", str(data["none"].path), "--out", str(cat)]) == 0
    assert main(["train", "--data", str(data["lab"].path), "--out", str(tmp_path / "x"), "--rounds", "2"]) == 2
    assert "need --unlabelled" in capsys.readouterr().err


def test_cli_says_when_a_round_had_no_pseudo_label(data, tmp_path, capsys):
    """--min-confidence 1 admits no pseudo-label: round 1 repeats round 0 and the command says so."""
    from labelsky.cli import main

    run = tmp_path / "none"
    assert main(["train", "--data", str(data["lab"].path), "--unlabelled", str(data["none"].path), "--out", str(run),
                 "--backbone", "resnet10t", "--epochs", "1", "--head-epochs", "1", "--batch-size", "16",
                 "--rounds", "1", "--min-confidence", "1", "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "round 1 had no pseudo-label" in err and "lower --min-confidence" in err
    # random initial weights: every block trained from the first epoch, whatever --head-epochs said
    assert json.loads((run / "round_0" / "config.json").read_text())["config"]["head_epochs"] == 0
    rounds = json.loads((run / "rounds.json").read_text())["rounds"]
    assert rounds[1]["pseudo_labels"]["n"] == 0 and 0.5 <= rounds[1]["pseudo_labels"]["max_confidence"] < 1
    assert rounds[0]["pseudo_labels"]["max_confidence"] is None
