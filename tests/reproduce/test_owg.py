"""The optical-wavelength-guided reproduction: protocol of Base and Ours, pretext test split, claims."""

import json

import numpy as np
import pytest


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    from labelsky.reproduce.owg import OWGConfig, run_owg

    out = tmp_path_factory.mktemp("owg")
    return out, run_owg(out, OWGConfig.quick(n_clusters=16, workers=1), progress=False)


def test_default_protocol_trains_base_and_fine_tunes_ours_with_frozen_rows_as_extra():
    from labelsky.reproduce.owg import OWGConfig

    rc = OWGConfig()
    assert rc.protocols[0] == "finetune" and "frozen" in rc.protocols
    assert len(rc.fractions) >= 5 and rc.folds >= 2


def test_quick_reproduction_base_trained_ours_fine_tuned_frozen_unchanged(quick):
    out, res = quick
    s = res["richness"]["summary"]
    assert set(s) == {"base", "ours", "base_frozen", "ours_frozen"}
    for q in res["richness"]["fractions"]:
        assert s["base"][str(q)]["extractor_change"]["mean"] > 0  # Base's extractor learns from the labels
        assert s["ours"][str(q)]["extractor_change"]["mean"] > 0  # Ours' is fine-tuned
        assert s["base_frozen"][str(q)]["extractor_change"]["mean"] == 0
        assert s["ours_frozen"][str(q)]["extractor_change"]["mean"] == 0
        for model in s:
            assert {"mae", "sigma", "scatter"} <= set(s[model][str(q)])
    assert set(res["claims"]) == {"finetune", "frozen", "base_learns"}
    assert {"sigma", "scatter"} <= set(res["reference"]["constant"])
    # both references at every fraction, on the networks' clusters
    for ref in ("constant", "statistics"):
        assert set(res["reference"]["by_fraction"][ref]) == {str(q) for q in res["richness"]["fractions"]}
    assert set(res["claims"]["base_learns"]["mean_minus_base_mae"]) == {str(q) for q in res["richness"]["fractions"]}
    for fig in ("richness_vs_fraction.png", "occlusion.png"):
        assert (out / "figures" / fig).stat().st_size > 1000
    text = (out / "table.md").read_text()
    assert "| MAE | training mean (no learning) |" in text and "Does Base learn?" in text
    assert "| MAE | Ours |" in text and "| Sigma | Base (frozen extractor) |" in text and "| scatter | Base |" in text


def test_pretext_accuracy_is_on_test_clusters_that_neither_trained_nor_chose_the_checkpoint(quick):
    from labelsky.data.io import open_dataset
    from labelsky.methods.selfsup import PretextConfig
    from labelsky.methods.selfsup.pretext import select_rows

    out, res = quick
    cfg = json.loads((out / "pretext" / "config.json").read_text())
    ds = open_dataset(cfg["dataset"])
    parts = {k: v[0] for k, v in select_rows({"data": [ds]}, PretextConfig(seed=0)).items()}
    groups = ds.column("cluster_id")
    train, val, test = (set(groups[parts[k][1]]) for k in ("train", "val", "test"))
    assert test and not test & train and not test & val and not train & val
    # the run trained on train, chose its checkpoint on val, and was scored on test
    assert cfg["n_train"] == len(parts["train"][1]) and cfg["n_val"] == len(parts["val"][1])
    assert cfg["n_test"] == len(parts["test"][1]) and res["pretext"]["n_test_clusters"] == len(test)
    assert res["pretext"]["n_test_images"] == len(ds.bands) * len(parts["test"][1])
    assert json.loads((out / "pretext" / "test.json").read_text())["accuracy"] == res["pretext"]["cnn_test_accuracy"]


def _cv(base_mae, ours_mae, base_sigma, ours_sigma, fractions=(0.1, 0.5, 1.0)):
    def cells(values):
        return {str(q): {"mean": v, "std": 0.0} for q, v in zip(fractions, values)}

    summary = {}
    for model, mae, sigma in (("base", base_mae, base_sigma), ("ours", ours_mae, ours_sigma)):
        m, s = cells(mae), cells(sigma)
        summary[model] = {q: {"mae": m[q], "sigma": s[q]} for q in m}
    return {"fractions": list(fractions), "summary": summary, "protocols": ["finetune"]}


def test_claims_by_hand():
    from labelsky.reproduce.owg import claims

    # Ours below Base everywhere in MAE; Ours reaches Base@100 % MAE (0.30) at 50 %; Sigma: worse at 10 %, never
    # reaches Base@100 % (0.20)
    c = claims(_cv([0.50, 0.35, 0.30], [0.40, 0.30, 0.25], [0.40, 0.30, 0.20], [0.45, 0.25, 0.21]))["finetune"]
    assert c["mae_ours_better_everywhere"] and not c["sigma_ours_better_everywhere"]
    assert c["mae_smallest_fraction_ours_matches_base_at_100"] == 0.5
    assert c["sigma_smallest_fraction_ours_matches_base_at_100"] is None
    assert c["mae_ours_minus_base"]["0.1"] == pytest.approx(-0.10)
    assert np.isclose(c["sigma_ours_minus_base"]["0.1"], 0.05)


def test_base_learns_by_hand():
    from labelsky.reproduce.owg import claims

    cv = _cv([0.50, 0.35, 0.30], [0.40, 0.30, 0.25], [0.40, 0.30, 0.20], [0.45, 0.25, 0.21])
    const = {str(q): {"mae": {"mean": m, "std": 0.0}} for q, m in zip(cv["fractions"], (0.45, 0.45, 0.45))}
    c = claims(cv, {"by_fraction": {"constant": const}})["base_learns"]
    # Base is worse than the mean predictor at 10 % (0.50 > 0.45): it does not learn at every fraction
    assert c["mean_minus_base_mae"]["0.1"] == pytest.approx(-0.05)
    assert c["mean_minus_base_mae"]["1.0"] == pytest.approx(0.15)
    assert not c["base_below_mean_everywhere"]
    const["0.1"]["mae"]["mean"] = 0.55
    assert claims(cv, {"by_fraction": {"constant": const}})["base_learns"]["base_below_mean_everywhere"]
    assert "base_learns" not in claims(cv)
