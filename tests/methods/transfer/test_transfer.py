"""Transfer learning, evaluation sets, clustering, pseudo-labels and catalogs (Khan et al. 2019)."""

import types

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from sklearn.metrics import accuracy_score, f1_score

from labelsky.data.io import DatasetWriter
from labelsky.data.transforms import BatchAugment, Preprocess
from labelsky.measures.embeddings import cluster, cluster_purity, name_clusters, tsne
from labelsky.measures.metrics import classification_report, confident_accuracy_curve
from labelsky.methods.parts import Part
from labelsky.methods.training import class_balance_weights
from labelsky.methods.transfer import ProgressiveUnfreezing, TransferClassifier, TransferConfig, fit, unfrozen_groups
from labelsky.methods.transfer.pseudolabel import select_pseudo_labels
from labelsky.models.backbones import BackboneWeightsError, create_backbone, load_backbone_weights
from labelsky.reproduce.khan_sets import hp_fo_sets


def _cfg(**kw):
    base = dict(backbone="resnet10t", hidden=[32], dropout=0.0, batch_size=16)
    base.update(kw)
    return TransferConfig(**base)


# ----------------------------------------------------------------------------- unfreezing
def test_unfreezing_schedule_values():
    sched = [unfrozen_groups(e, n_groups=5, head_epochs=2, every=2, per_step=1) for e in range(12)]
    assert sched == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert unfrozen_groups(3, n_groups=5, head_epochs=0, every=1, per_step=2) == 5


def test_progressive_unfreezing_freezes_named_blocks():
    model = TransferClassifier(_cfg().to_dict(), n_classes=2, in_chans=3)
    groups = model.groups
    assert len(groups) >= 4
    cb = ProgressiveUnfreezing(head_epochs=1, every=1, per_step=1)
    head = list(model.model.head.parameters())
    for epoch in range(len(groups) + 2):
        model.train()
        cb.on_train_epoch_start(types.SimpleNamespace(current_epoch=epoch), model)
        k = unfrozen_groups(epoch, len(groups), 1, 1, 1)
        for i, params in enumerate(groups):
            assert all(p.requires_grad == (i >= len(groups) - k) for p in params), (epoch, i)
        assert all(p.requires_grad for p in head)
        # batch norms of frozen blocks do not update their running statistics
        frozen_bn = [m for m in model.model.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)
                     and not any(p.requires_grad for p in m.parameters())]
        assert all(not m.training for m in frozen_bn)
        trainable_bn = [m for m in model.model.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)
                        and any(p.requires_grad for p in m.parameters())]
        assert all(m.training for m in trainable_bn)  # unfrozen blocks update their statistics again
    assert cb.history[0] == (0, 0) and cb.history[-1][1] == len(groups)


def test_frozen_backbone_gets_no_gradient():
    model = TransferClassifier(_cfg().to_dict(), n_classes=2, in_chans=3)
    model.set_unfrozen(1)
    loss = model(torch.randn(4, 3, 32, 32)).sum()
    loss.backward()
    first, last = model.groups[0], model.groups[-1]
    assert all(p.grad is None for p in first)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in last)


# ----------------------------------------------------------------------------- models and weights
@pytest.mark.parametrize("bands", [1, 3, 5])
def test_classifier_any_number_of_bands(bands):
    model = TransferClassifier(_cfg().to_dict(), n_classes=3, in_chans=bands).eval()
    out = model.predict_step(torch.randn(2, bands, 32, 32), 0)
    assert out["probs"].shape == (2, 3) and out["embedding"].shape == (2, 32)
    assert torch.allclose(out["probs"].sum(1), torch.ones(2))


def test_local_weight_file_loads_and_adapts_channels(tmp_path):
    src, _ = create_backbone("resnet10t", 3)
    torch.save({"state_dict": {f"backbone.{k}": v for k, v in src.state_dict().items()}}, tmp_path / "w.pt")
    dst, info = create_backbone("resnet10t", 5, tmp_path / "w.pt")
    assert info["pretrained"] and info["adapted_input_conv"]
    a, b = src.state_dict(), dst.state_dict()
    deep = [k for k in a if a[k].ndim == 4 and a[k].shape == b[k].shape and k not in info["adapted_input_conv"]]
    assert deep and all(torch.equal(a[k], b[k]) for k in deep)
    first = info["adapted_input_conv"][0]
    assert b[first].shape[1] == 5 and a[first].shape[1] == 3
    # timm's adapt_input_conv: RGB filters repeated over the 5 bands (R, G, B, R, G), scaled by 3/5
    expected = torch.stack([a[first][:, i % 3] for i in range(5)], 1) * 3 / 5
    assert torch.allclose(b[first], expected, atol=1e-6)


def test_weight_file_errors(tmp_path):
    with pytest.raises(BackboneWeightsError, match="does not exist"):
        create_backbone("resnet10t", 3, tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(BackboneWeightsError, match="cannot read weight file"):
        create_backbone("resnet10t", 3, tmp_path / "junk.pt")
    other, _ = create_backbone("vit_tiny_patch16_224", 3)
    torch.save(other.state_dict(), tmp_path / "vit.pt")
    model, _ = create_backbone("resnet10t", 3)
    with pytest.raises(BackboneWeightsError, match="another backbone"):
        load_backbone_weights(model, tmp_path / "vit.pt")
    with pytest.raises(BackboneWeightsError, match="unknown backbone"):
        create_backbone("no_such_net", 3)


# ----------------------------------------------------------------------------- augmentation
def test_augmentation_keeps_band_order_and_finite_flux():
    x = torch.ones(8, 5, 32, 32) * torch.arange(1, 6).view(1, 5, 1, 1).float()
    y = BatchAugment()(x, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(y).all()
    for b in range(5):  # a flat band stays flat at its own value: no mixing of bands
        assert torch.allclose(y[:, b], torch.full_like(y[:, b], b + 1.0), atol=1e-5)
    yy, xx = torch.meshgrid(torch.arange(31.0), torch.arange(31.0), indexing="ij")
    blob = torch.exp(-((xx - 15) ** 2 + (yy - 15) ** 2) / (2 * 2.0**2))  # a PSF-sized source
    z = (blob / blob.sum()).expand(4, 3, 31, 31).clone()
    out = BatchAugment(max_rotation=45, max_shift=0.0, max_zoom=1.0)(z)
    assert torch.allclose(out.sum((2, 3)), torch.ones(4, 3), atol=0.02)  # rotations and flips keep its flux


def test_preprocess_asinh_and_khan():
    img = np.zeros((3, 8, 8), np.float32)
    img[1] = 2.0
    p = Preprocess([2, 1], noise=[1.0, 1.0, 0.5], stretch="asinh", softening=2.0)
    out = p(img)
    assert out.shape == (2, 8, 8)
    assert torch.allclose(out[1], torch.full((8, 8), float(np.arcsinh(1.0))))
    k = Preprocess([0, 1, 2], stretch="khan")(np.random.default_rng(0).normal(size=(3, 8, 8)))
    assert abs(float(k.mean())) < 1e-5 and float(k.abs().max()) == pytest.approx(1.0)
    nan = Preprocess([0], noise=[1.0], stretch="asinh")(np.full((1, 4, 4), np.nan, np.float32))
    assert torch.isfinite(nan).all()


# ----------------------------------------------------------------------------- metrics
def test_metrics_match_sklearn():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 200)
    p = np.where(rng.random(200) < 0.7, y, rng.integers(0, 3, 200))
    rep = classification_report(y, p, 3)
    assert rep["accuracy"] == pytest.approx(accuracy_score(y, p))
    assert rep["f1"] == pytest.approx(f1_score(y, p, average="macro"))
    y2, p2 = y % 2, p % 2
    assert classification_report(y2, p2, 2)["f1"] == pytest.approx(f1_score(y2, p2))


def test_confident_accuracy_curve_hand_case():
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.4, 0.6], [0.55, 0.45]])
    y = np.array([0, 1, 1, 1])  # correct, wrong, correct, wrong in order of confidence 0.9, 0.8, 0.6, 0.55
    c = confident_accuracy_curve(probs, y, [0.25, 0.5, 0.75, 1.0])
    assert c["accuracy"] == [1.0, 0.5, pytest.approx(2 / 3), 0.5]


def _vote_dataset(path, survey, ids, labels, votes):
    n = len(ids)
    nb = {"sdss": 5, "decals": 3}[survey]
    w = DatasetWriter(path, survey, (nb, 4, 4), classes=["elliptical", "spiral"], n_shards=1)
    w.write_shard(0, np.zeros((n, nb, 4, 4)), {
        "id_str": ids, "ra": np.full(n, 10.0), "dec": np.zeros(n), "survey": [survey] * n, "split": ["test"] * n,
        "label": labels, "label_name": [["elliptical", "spiral"][k] for k in labels],
        "votes_smooth": [v[0] for v in votes], "votes_featured": [v[1] for v in votes],
        "votes_artifact": [v[2] for v in votes], "richness": np.full(n, np.nan)})
    return w.finalize()


def test_hp_fo_sets(tmp_path):
    votes = [(39, 1, 0), (20, 20, 0), (1, 39, 0), (10, 30, 0), (-1, -1, -1), (38, 2, 0)]
    src = _vote_dataset(tmp_path / "s", "sdss", [f"g{i}" for i in range(6)], [0, 0, 1, 1, 1, 0], votes)
    # the target sees a subset, in another order
    tgt = _vote_dataset(tmp_path / "t", "decals", ["g5", "g3", "g0", "g2", "g4"], [0, 1, 0, 1, 1],
                        [(0, 0, 0)] * 5)
    sets = hp_fo_sets(src, tgt, np.arange(6), {"elliptical": "smooth", "spiral": "featured"},
                      {"elliptical": 0.9, "spiral": 0.9})
    # FO: in both surveys and with votes -> g0, g2, g3, g5 (g1 not in target, g4 has no votes)
    assert src.column("id_str")[sets["fo_source"]].tolist() == ["g0", "g2", "g3", "g5"]
    assert tgt.column("id_str")[sets["fo_target"]].tolist() == ["g0", "g2", "g3", "g5"]
    assert sets["fo_labels"].tolist() == [0, 1, 1, 0]
    # HP: winning fraction >= 0.9 -> g0 (0.975), g2 (0.975), g5 (0.95); g3 has 0.75
    assert src.column("id_str")[sets["hp_source"]].tolist() == ["g0", "g2", "g5"]
    bal = hp_fo_sets(src, tgt, np.arange(6), {"elliptical": "smooth", "spiral": "featured"},
                     {"elliptical": 0.9, "spiral": 0.9}, balance=True)
    assert sorted(src.column("id_str")[bal["hp_source"]].tolist()) == ["g0", "g2"]  # one per class, best votes
    with pytest.raises(ValueError, match=r"no high-probability galaxies of class\(es\) \['spiral'\]"):
        hp_fo_sets(src, tgt, np.arange(6), {"elliptical": "smooth", "spiral": "featured"},
                   {"elliptical": 0.9, "spiral": 0.99}, balance=True)


# ----------------------------------------------------------------------------- clustering and pseudo-labels
def test_top_k_per_class_agreeing_with_cluster():
    probs = np.array([[0.9, 0.1], [0.95, 0.05], [0.6, 0.4], [0.2, 0.8], [0.1, 0.9], [0.3, 0.7], [0.99, 0.01]])
    cluster_class = np.array([0, 0, 0, 1, 1, 1, 1])  # row 6 is confident class 0 but sits in a class-1 cluster
    rows, labels = select_pseudo_labels(probs, cluster_class, k_per_class=2)
    assert rows.tolist() == [1, 0, 4, 3] and labels.tolist() == [0, 0, 1, 1]
    rows, _ = select_pseudo_labels(probs, None, k_per_class=1)
    assert rows.tolist() == [6, 4]
    rows, _ = select_pseudo_labels(probs, cluster_class, k_per_class=5, min_confidence=0.85)
    assert rows.tolist() == [1, 0, 4]


def test_tsne_clusters_separate_blobs():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, (60, 16)), rng.normal(6, 1, (60, 16))])
    truth = np.repeat([0, 1], 60)
    xy = tsne(x, dim=2, seed=0)
    assert xy.shape == (120, 2)
    cid = cluster(xy, 2)
    assert cluster_purity(cid, truth) > 0.95
    names = name_clusters(cid, truth, 2)
    assert (names[cid] == truth).mean() > 0.95
    assert cluster_purity(np.zeros(4, int), np.array([0, 0, 1, 1])) == 0.5
    # a classifier biased towards class 1 names both clusters 1 by majority, but one-to-one matching
    # gives the cluster where class 0 is relatively most probable to class 0
    cid = np.array([0, 0, 0, 1, 1, 1])
    probs = np.array([[0.4, 0.6]] * 3 + [[0.05, 0.95]] * 3)
    assert name_clusters(cid, probs, 2).tolist() == [1, 1]
    assert name_clusters(cid, probs, 2, one_to_one=True).tolist() == [0, 1]


def test_class_balance_weights():
    assert class_balance_weights(np.array([0, 0, 0, 1]), 2) == [pytest.approx(4 / 6), 2.0]
    # one definition for every method: unlabelled (-1) rows are not counted, an absent class gets 0
    assert class_balance_weights(np.array([0, 0, 2, -1]), 3) == [pytest.approx(3 / 6), 0.0, pytest.approx(1.0)]
    from labelsky.methods.uda.losses import class_weights

    assert class_weights(np.array([0, 0, 2, -1]), 3).tolist() == pytest.approx([0.5, 0.0, 1.0])


# ----------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def easy_sim(tmp_path_factory):
    from labelsky.data.simulate import simulate_galaxies

    out = tmp_path_factory.mktemp("sim")
    return simulate_galaxies(out / "s", n_objects=240, surveys=["decals"], classes={"elliptical": 1, "edge_on": 1},
                             stamp_size=32, workers=2, progress=False, shard_size=60, mag_range=(15, 17.5))["decals"]


def test_training_learns_and_cli_evaluates_and_catalogs(easy_sim, tmp_path):
    from labelsky.cli import main

    ds = easy_sim
    run = tmp_path / "run"
    args = ["train", "--data", str(ds.path), "--out", str(run), "--backbone", "resnet10t", "--epochs", "8",
            "--head-epochs", "0", "--unfreeze-every", "1", "--batch-size", "32", "--lr", "3e-3", "--patience", "0"]
    assert main(args) == 0
    assert (run / "checkpoints" / "best.ckpt").exists() and (run / "config.json").exists()
    assert main(["evaluate", "--run", str(run), "--data", str(ds.path), "--split", "test"]) == 0
    import json

    rep = json.loads((run / "eval_decals_test.json").read_text())
    assert rep["accuracy"] > 0.7, rep  # two balanced classes: chance is 0.5
    assert (run / "figures" / "eval_decals_test_confusion.png").exists()
    cat = tmp_path / "cat.parquet"
    assert main(["catalog", "--run", str(run), "--data", str(ds.path), "--out", str(cat), "--embedding"]) == 0
    t = pq.read_table(cat)
    assert t.num_rows == len(ds) and set(t.column("pred_class").to_pylist()) <= {"elliptical", "edge_on"}
    # the catalog agrees with evaluate on the test rows
    test = ds.column("split") == "test"
    acc = (t.column("pred_label").to_numpy()[test] == ds.column("label")[test]).mean()
    assert acc == pytest.approx(rep["accuracy"])


def test_same_seed_same_model(easy_sim, tmp_path):
    ds = easy_sim
    sp = ds.column("split")
    tr, va = np.flatnonzero(sp == "train")[:64], np.flatnonzero(sp == "val")[:16]
    cfg = _cfg(max_epochs=1, head_epochs=0, patience=0, seed=3)
    parts = {"train": [Part(ds, tr)], "val": [Part(ds, va)]}
    a, b = (fit(tmp_path / n, parts, cfg, progress=False).model for n in "ab")
    sa, sb = a.state_dict(), b.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_training_resumes_from_last_checkpoint(easy_sim, tmp_path):
    ds = easy_sim
    sp = ds.column("split")
    tr, va = np.flatnonzero(sp == "train"), np.flatnonzero(sp == "val")
    cfg = _cfg(max_epochs=1, head_epochs=0, patience=0)
    parts = {"train": [Part(ds, tr)], "val": [Part(ds, va)]}
    fit(tmp_path / "r", parts, cfg, progress=False)
    last = tmp_path / "r" / "checkpoints" / "last.ckpt"
    steps = torch.load(last, map_location="cpu", weights_only=True)["global_step"]
    cfg2 = _cfg(max_epochs=2, head_epochs=0, patience=0)
    fit(tmp_path / "r", parts, cfg2, progress=False)
    ck = torch.load(tmp_path / "r" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert steps > 0 and ck["global_step"] == 2 * steps  # one more epoch on top of the first, not two anew
    import csv

    logs = sorted((tmp_path / "r" / "logs").glob("version_*/metrics.csv"))  # one log folder per (re)start
    epochs = [{r["epoch"] for r in csv.DictReader(open(f)) if r.get("val_loss")} for f in logs]
    assert epochs == [{"0"}, {"1"}]  # the second start continued with epoch 1


def test_bands_are_matched_by_name_and_settings_checked_on_resume(easy_sim, tmp_path):
    ds = easy_sim
    sp = ds.column("split")
    tr, va = np.flatnonzero(sp == "train")[:32], np.flatnonzero(sp == "val")[:8]
    parts = {"train": [Part(ds, tr)], "val": [Part(ds, va)]}
    model = fit(tmp_path / "r", parts, _cfg(max_epochs=1, head_epochs=0, patience=0), progress=False).model
    assert model.cfg.bands == ["g", "r", "z"]  # recorded by name
    with pytest.raises(ValueError, match="other settings"):
        fit(tmp_path / "r", parts, _cfg(max_epochs=2, head_epochs=0, patience=0, lr=0.1), progress=False)
    with pytest.raises(ValueError, match=r"band\(s\) \['i'\] of the model are not in this dataset"):
        fit(tmp_path / "r2", parts, _cfg(max_epochs=1, bands=["g", "i"]), progress=False)


def test_device_setting_reaches_the_trainer(tmp_path):
    from labelsky.methods.training import build_trainer

    t = build_trainer(tmp_path, _cfg(device="cpu"), progress=False)
    assert type(t.accelerator).__name__ == "CPUAccelerator" and t.num_devices == 1
    if not torch.cuda.is_available():
        with pytest.raises(Exception):  # noqa: B017 - whatever Lightning or torch raise without a GPU
            build_trainer(tmp_path, _cfg(device="cuda"), progress=False)
