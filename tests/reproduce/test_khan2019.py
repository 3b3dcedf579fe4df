"""The Khan et al. 2019 reproduction: leak-free pretraining, the paper's selections, one source of truth."""

import json
import types

import numpy as np
import pytest

from labelsky.errors import SettingsError
from labelsky.reproduce.khan2019 import KhanConfig, check_weights, training_selection


def test_labelled_pretraining_is_an_ablation_that_must_be_asked_for():
    assert KhanConfig().pretrain == "selfsup"
    with pytest.raises(SettingsError, match="leaks the task"):
        KhanConfig(pretrain="labelled")
    assert KhanConfig(pretrain="labelled", allow_labelled_pretraining=True).pretrain == "labelled"
    with pytest.raises(SettingsError, match="pretrain must be"):
        KhanConfig(pretrain="imagenet")


def test_a_backbone_trained_with_the_task_labels_is_refused(tmp_path):
    labelled = tmp_path / "labelled"
    labelled.mkdir()
    (labelled / "backbone.safetensors").write_bytes(b"x")
    (labelled / "backbone.json").write_text(json.dumps({"kind": "labelled", "classes": ["elliptical", "smooth_disk",
                                                                                        "spiral", "merger"]}))
    with pytest.raises(SettingsError, match=r"\['elliptical', 'spiral'\]"):
        check_weights(labelled / "backbone.safetensors")
    assert check_weights(labelled / "backbone.safetensors", allow_labelled=True)["labels_of_the_task"] == [
        "elliptical", "spiral"]
    # a labelsky transfer run trained on the task's classes: refused too
    run = tmp_path / "run"
    run.mkdir()
    (run / "backbone.safetensors").write_bytes(b"x")
    (run / "config.json").write_text(json.dumps({"method": "transfer", "classes": ["elliptical", "spiral"]}))
    with pytest.raises(SettingsError):
        check_weights(run / "backbone.safetensors")
    # a pretext run (its classes are permutations) and a file of unknown origin are accepted, and recorded
    (run / "config.json").write_text(json.dumps({"method": "pretext", "classes": ["012", "021"]}))
    assert check_weights(run / "backbone.safetensors")["labels_of_the_task"] == []
    other = tmp_path / "other.safetensors"
    other.write_bytes(b"x")
    assert check_weights(other)["kind"] == "unknown"
    # a Lightning checkpoint of a classifier tells its classes itself, wherever it lies
    import torch

    ckpt = tmp_path / "loose" / "best.ckpt"
    ckpt.parent.mkdir()
    torch.save({"state_dict": {}, "hyper_parameters": {"class_names": ["elliptical", "spiral"],
                                                        "config": {"backbone": "resnet18"}}}, ckpt)
    with pytest.raises(SettingsError, match="elliptical"):
        check_weights(ckpt)
    torch.save({"state_dict": {}, "hyper_parameters": {"class_names": ["012", "021"],
                                                        "config": {"task": "channel_order"}}}, ckpt)
    assert check_weights(ckpt)["labels_of_the_task"] == []
    # a checkpoint inside a run folder: the run's config.json two levels up
    nested = run / "checkpoints"
    nested.mkdir()
    (nested / "w.safetensors").write_bytes(b"x")
    (run / "config.json").write_text(json.dumps({"method": "transfer", "classes": ["elliptical", "spiral"]}))
    with pytest.raises(SettingsError):
        check_weights(nested / "w.safetensors")


def test_defaults_follow_the_paper():
    kc = KhanConfig()
    assert kc.hp_thresholds == {"elliptical": 0.926, "spiral": 0.985}
    assert kc.balance_tests is False and kc.stretch == "khan" and kc.cluster_filter is False
    assert kc.pseudo_fraction == 0.05 and kc.top_k is None


def _fake_votes(featured, smooth):
    n = len(featured)
    cols = {"votes_smooth": np.asarray(smooth), "votes_featured": np.asarray(featured), "votes_artifact": np.zeros(n),
            "id_str": np.array([f"g{i}" for i in range(n)]), "label": np.zeros(n, int)}
    return types.SimpleNamespace(column=lambda c: cols[c], classes=["elliptical", "spiral"], path="fake")


def test_training_selection_paper_thresholds_and_similar_numbers():
    # ellipticals: smooth fractions 0.99, 0.95, 0.93, 0.90; spirals: featured 0.99, 0.96, 0.90, 0.80, 0.70, 0.60
    smooth = [99, 95, 93, 90, 1, 4, 10, 20, 30, 40]
    featured = [1, 5, 7, 10, 99, 96, 90, 80, 70, 60]
    ds = _fake_votes(featured, smooth)
    rows = np.arange(10)
    paper = KhanConfig(train_selection="paper")
    r, lab, thr = training_selection(ds, rows, paper)
    assert thr == {"elliptical": 0.926, "spiral": 0.985}
    assert r.tolist() == [0, 1, 2, 4] and lab.tolist() == [0, 0, 0, 1]  # 3 ellipticals, 1 spiral
    r, lab, thr = training_selection(ds, rows, KhanConfig())
    assert sorted(r.tolist()) == [0, 1, 2, 4, 5, 6] and np.bincount(lab).tolist() == [3, 3]
    assert thr["spiral"] == pytest.approx(0.90) and thr["elliptical"] == 0.926


def test_pseudo_label_budget_is_five_percent_of_the_training_set(tmp_path):
    from labelsky.reproduce.khan2019 import run_khan2019

    # galaxies to r = 19, fainter than the paper's sample, so that some votes disagree with the truth (below)
    kc = KhanConfig.quick(n_objects=120, top_k=None, pretrain="none", epochs=1, workers=2, mag_range=(15.0, 19.0))
    res = run_khan2019(tmp_path, kc, progress=False)
    r0 = res["rounds"][0]
    k = r0["pseudo_labels"]["per_class_k"]
    assert k == max(1, round(0.05 * res["sizes"]["train"] / 2))
    assert r0["pseudo_labels"]["selection"] == "top_confident"
    assert {"pseudo_labels_top_confident", "pseudo_labels_cluster_filtered"} <= set(r0)
    assert res["pretraining"] == {"kind": "none"} and res["weights"] is None
    # every Table II row, the training set included, is scored against the simulation's truth (the selection
    # itself uses the votes): the training row's confusion matrix counts the true classes
    assert set(r0["table"]) >= {"Training set", "HP SDSS", "FO SDSS", "FO DES"}
    cm = np.array(r0["table"]["Training set"]["confusion_matrix"])
    assert cm.sum(axis=1).tolist() == res["sizes"]["train_per_true_class"]
    # (the check bites: some vote labels of the training galaxies differ from the truth)
    assert res["sizes"]["train_per_true_class"] != res["sizes"]["train_per_class"]
    # Table II gives each class's accuracy: the diagonal of the confusion matrix over its row
    for row in r0["table"].values():
        cm = np.array(row["confusion_matrix"], dtype=float)
        for k, c in enumerate(["elliptical", "spiral"]):
            assert row["n_per_class"][c] == cm[k].sum()
            if cm[k].sum():
                assert row["per_class_accuracy"][c] == pytest.approx(cm[k, k] / cm[k].sum())


def test_selfsup_pretraining_records_a_pretext_that_statistics_cannot_solve(tmp_path):
    """The channel-order pretext runs on histogram-equalised bands: a classifier on per-channel summary statistics
    is at chance exactly, while on the fluxes it is not; both are recorded beside the weights."""
    from labelsky.reproduce.khan2019 import pretrain_backbone

    kc = KhanConfig.quick(pretrain_objects=60, workers=1, backbone="resnet10t", pretext_stretch="equalize")
    pretrain_backbone(tmp_path, kc, progress=False)
    record = json.loads((tmp_path / "backbone.json").read_text())
    assert record["kind"] == "selfsup" and record["pretext_stretch"] == "equalize" and record["classes"] == []
    pt = record["pretext"]
    assert pt["stats_accuracy"] == pytest.approx(1 / 6) and pt["stats_raw_accuracy"] > 1 / 6 + 0.2
    assert pt["n_test"] >= 10 and 0 <= pt["test_accuracy"] <= 1
