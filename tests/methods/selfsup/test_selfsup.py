"""Band-identity pretext, richness network and loss, grouped folds, occlusion maps."""

import types

import numpy as np
import pytest
import torch

from labelsky.data.transforms import Preprocess
from labelsky.methods.selfsup.pretext import (
    PERMUTATIONS,
    BandPretextDataset,
    ChannelOrderDataset,
    PretextConfig,
    summary_statistics,
)
from labelsky.methods.selfsup.richness import RichnessConfig, grouped_folds, richness_loss, richness_metrics
from labelsky.models.bandnet import BandExtractor, RichnessNet


@pytest.fixture(scope="module")
def clusters(tmp_path_factory):
    from labelsky.data.simulate import simulate_clusters

    return simulate_clusters(tmp_path_factory.mktemp("cl"), n_clusters=6, views_per_cluster=2, npix=32,
                             surveys=["sdss", "lsst_y10"], workers=1, progress=False)


def test_pretext_labels_are_right_for_every_band_order_and_survey(clusters):
    pre = Preprocess([0], noise=[1.0], stretch="none")
    for ds in clusters.values():
        for bands in (None, list(reversed(ds.bands)), ds.bands[1:4]):
            d = BandPretextDataset(ds, [0, 3], pre, bands)
            names = list(bands or ds.bands)
            assert len(d) == 2 * len(names)
            for k in range(len(d)):
                x, label = d[k]
                obj, b = divmod(k, len(names))
                want = ds.image([0, 3][obj])[ds.bands.index(names[b])]
                np.testing.assert_array_equal(x[0].numpy(), want)  # the image of the band the label names
                assert label == b
    ds = clusters["sdss"]
    d = ChannelOrderDataset(ds, [1], Preprocess([0, 1, 2], stretch="none"), ["g", "r", "i"])
    img = ds.image(1)
    for p in range(6):
        x, label = d[p]
        assert label == p
        for c in range(3):
            np.testing.assert_array_equal(x[c].numpy(), img[ds.bands.index("gri"[PERMUTATIONS[p][c]])])
    with pytest.raises(ValueError, match="unknown pretext task"):
        PretextConfig(task="colour")


def test_robust_normalisation_removes_the_trivial_band_statistics(clusters):
    """Raw band images differ in sky noise and flux scale; after robust_asinh every band has median 0 and
    MAD noise ~ asinh(1/3): the noise statistic no longer names the band."""
    ds = clusters["sdss"]
    raw = np.stack([ds.image(0)[[b]] for b in range(5)])
    norm = np.stack([Preprocess([0], stretch="robust_asinh")(ds.image(0)[[b]]).numpy() for b in range(5)])
    s_raw, s_norm = summary_statistics(raw), summary_statistics(norm)
    assert s_raw[:, 5].max() / s_raw[:, 5].min() > 2  # raw MAD noise spans a factor > 2 between bands
    np.testing.assert_allclose(s_norm[:, 2], 0.0, atol=1e-6)  # medians
    np.testing.assert_allclose(s_norm[:, 5], np.arcsinh(1 / 3), rtol=0.1)


def test_grouped_folds_never_split_a_cluster(clusters):
    ds = clusters["sdss"]
    groups = ds.column("cluster_id")
    for seed in range(3):
        fold = grouped_folds(groups, 3, seed)
        for g in np.unique(groups):
            assert len(set(fold[groups == g])) == 1
        assert set(fold) == {0, 1, 2}
    many = np.repeat([f"c{i}" for i in range(100)], 2)
    counts = np.bincount(grouped_folds(many, 10), minlength=10)
    assert counts.min() == counts.max() == 20


def test_fraction_rows_are_nested_whole_clusters_of_the_pool():
    from labelsky.methods.selfsup.richness import fraction_rows

    groups = np.repeat([f"c{i}" for i in range(40)], 3)
    pool = np.flatnonzero(~np.isin(groups, ["c0", "c1", "c2", "c3"]))
    prev = set()
    for q in (0.1, 0.25, 0.5, 1.0):
        fit, val = fraction_rows(groups, pool, q, seed=0, repeat=1, fold=2, val_fraction=0.2)
        chosen = set(groups[fit]) | set(groups[val])
        assert len(chosen) == max(2, round(q * 36)) and not set(groups[fit]) & set(groups[val])
        assert set(np.concatenate([fit, val])) <= set(pool) and prev <= chosen  # a larger fraction adds clusters
        for g in chosen:  # clusters are whole
            assert set(np.flatnonzero(groups == g)) <= set(fit) | set(val)
        prev = chosen
    assert len(set(groups[val])) == round(0.2 * 36)
    other = fraction_rows(groups, pool, 0.25, seed=0, repeat=2, fold=2, val_fraction=0.2)
    assert set(groups[np.concatenate(other)]) != set(groups[np.concatenate(
        fraction_rows(groups, pool, 0.25, seed=0, repeat=1, fold=2, val_fraction=0.2))])


def test_reference_predictions_per_fraction_against_sklearn(clusters):
    from sklearn.ensemble import HistGradientBoostingRegressor

    from labelsky.methods.selfsup.pretext import summary_statistics
    from labelsky.methods.selfsup.richness import fraction_rows, reference_predictions

    ds = clusters["sdss"]
    ref = reference_predictions(ds, folds=2, repeats=1, seed=0, fractions=[0.5, 1.0], val_fraction=0.2)
    y = np.log(ds.column("richness"))
    groups = ds.column("cluster_id")
    feats = np.stack([summary_statistics(ds.image(i)).ravel() for i in range(len(ds))])
    fold = grouped_folds(groups, 2, seed=0)
    pred_c, pred_s = np.zeros(len(ds)), np.zeros(len(ds))
    for f in range(2):
        test, pool = np.flatnonzero(fold == f), np.flatnonzero(fold != f)
        train = np.concatenate(fraction_rows(groups, pool, 0.5, seed=0, repeat=0, fold=f, val_fraction=0.2))
        assert len(np.unique(groups[train])) < len(np.unique(groups[pool]))
        pred_c[test] = y[train].mean()
        pred_s[test] = HistGradientBoostingRegressor(random_state=0).fit(feats[train], y[train]).predict(feats[test])
    assert ref["by_fraction"]["constant"]["0.5"]["mae"]["mean"] == pytest.approx(np.abs(pred_c - y).mean())
    assert ref["by_fraction"]["statistics"]["0.5"]["mae"]["mean"] == pytest.approx(np.abs(pred_s - y).mean())
    # all the training clusters: the same as the reference without fractions
    assert ref["by_fraction"]["constant"]["1.0"]["mae"] == ref["constant"]["mae"]


def test_richness_loss_and_metrics_by_hand():
    y = torch.tensor([3.0, 2.0, 4.0, 1.0])
    p = torch.tensor([2.5, 2.0, 5.0, 1.5])
    err = np.array([0.5, 0.0, -1.0, -0.5])
    want = np.mean(err ** 2) + 0.7 * np.std(np.abs(err))  # population std over the batch
    assert float(richness_loss(p, y, alpha=0.7)) == pytest.approx(want, rel=1e-6)
    m = richness_metrics(p.numpy(), y.numpy())
    assert m["mae"] == pytest.approx(0.5)
    assert m["sigma"] == pytest.approx(np.std(np.abs(err))) and m["scatter"] == pytest.approx(np.std(err))


def test_sigma_is_the_std_of_absolute_residuals_and_scatter_the_std_of_residuals():
    """Residuals e = y - y_hat = [1, -1, 3]: |e| = [1, 1, 3], mean 5/3, population std sqrt(8/9) = 0.943 (the
    paper's Sigma); e has mean 1, deviations [0, -2, 2], std sqrt(8/3) = 1.633 (the scatter)."""
    m = richness_metrics(np.array([0.0, 1.0, -3.0]), np.array([1.0, 0.0, 0.0]))
    assert m["mae"] == pytest.approx(5 / 3)
    assert m["sigma"] == pytest.approx(np.sqrt(8) / 3)
    assert m["scatter"] == pytest.approx(np.sqrt(8 / 3))
    assert m["bias"] == pytest.approx(1.0) and m["n"] == 3


@pytest.mark.parametrize("bands", [1, 2, 3, 4, 5])
def test_richness_network_shapes_for_one_to_five_bands(bands):
    torch.manual_seed(0)
    net = RichnessNet(BandExtractor("resnet10t", 1, feature_dim=32), bands, fc_widths=(64, 16))
    x = torch.randn(3, bands, 32, 32)
    f = net.band_features(x)
    assert f.shape == (3, 32, bands)
    assert net.convs(f[:, None]).shape == (3, 64, 28, bands)  # 32 -> 30 -> 28 along features, bands kept
    out = net(x)
    assert out.shape == (3,) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="expected"):
        net(torch.randn(2, bands + 1, 32, 32))


def test_frozen_extractor_gets_no_gradient_and_cross_validation_runs(clusters):
    from labelsky.methods.selfsup.richness import cross_validate

    net = RichnessNet(BandExtractor("resnet10t", 1, feature_dim=16), 5, fc_widths=(16,), freeze_extractor=True)
    net(torch.randn(4, 5, 32, 32)).sum().backward()
    assert all(p.grad is None for p in net.extractor.parameters())
    assert all(p.grad is not None for p in net.fc.parameters())
    cfg = RichnessConfig(backbone="resnet10t", feature_dim=16, fc_widths=[16], freeze_extractor=True, max_epochs=2)
    r = cross_validate(clusters["sdss"], cfg, fractions=(0.5, 1.0), folds=2, repeats=2, progress=False)
    assert set(r["summary"]) == {"base_frozen"} and len(r["per_repeat"]) == 2  # no pretrained extractor: no Ours
    assert all(np.isfinite(v[m]["mean"]) for v in r["summary"]["base_frozen"].values()
               for m in ("mae", "sigma", "scatter"))


def _extractor_state(seed: int) -> dict:
    torch.manual_seed(seed)
    return BandExtractor("resnet10t", 1, feature_dim=16).state_dict()


def test_base_is_trained_not_a_frozen_random_network(clusters):
    """The fine-tuning protocol (the default) trains Base's extractor from its random start, and Ours' from the
    pretrained weights; the frozen rows leave both extractors exactly as they started."""
    from labelsky.methods.selfsup.richness import cross_validate, make_richness_net, train_richness

    cfg = RichnessConfig(backbone="resnet10t", feature_dim=16, fc_widths=[16], max_epochs=3, lr=1e-3)
    assert not cfg.freeze_extractor
    ds = clusters["sdss"]
    net = make_richness_net(cfg, 5)
    before = {k: v.clone() for k, v in net.extractor.state_dict().items()}
    x = torch.stack([cfg.preprocess(ds)(ds.image(i)) for i in range(len(ds))])
    train_richness(net, x, torch.tensor(np.log(ds.column("richness")), dtype=torch.float32), cfg)
    conv = [k for k in before if k.endswith("weight") and before[k].ndim == 4]
    assert all(not torch.equal(before[k], net.extractor.state_dict()[k]) for k in conv)  # every conv trained

    r = cross_validate(ds, cfg, fractions=(1.0,), folds=2, repeats=1, progress=False, pretrained=_extractor_state(1),
                       protocols=("finetune", "frozen"))
    assert set(r["summary"]) == {"base", "ours", "base_frozen", "ours_frozen"}
    change = {k: v["1.0"]["extractor_change"]["mean"] for k, v in r["summary"].items()}
    assert change["base"] > 1e-3 and change["ours"] > 1e-3
    assert change["base_frozen"] == 0.0 and change["ours_frozen"] == 0.0
    assert set(r["paired"]) == {"finetune", "frozen"} and r["paired"]["finetune"]["1.0"]["mae"]["n"] == 2


def test_richness_sgd_option_and_patience_stop_early(monkeypatch):
    """SGD (the paper's optimiser) is an option; with patience 1 and a validation loss that only grows after the
    first epoch, training stops after two epochs whatever ``epochs`` says."""
    from labelsky.errors import SettingsError
    from labelsky.methods.selfsup import richness as rich

    with pytest.raises(SettingsError, match="optimizer"):
        RichnessConfig(optimizer="lbfgs")
    cfg = RichnessConfig(backbone="resnet10t", feature_dim=16, fc_widths=[16], max_epochs=50, patience=1,
                         optimizer="sgd", lr=1e-4)
    net = rich.make_richness_net(cfg, 5)
    x, y = torch.randn(8, 5, 32, 32), torch.linspace(3, 4, 8)
    calls = []

    def worse_each_epoch(net, x, features=False, batch_size=128):  # validation predictions drift away
        calls.append(1)
        return y[6:].numpy() + len(calls)

    monkeypatch.setattr(rich, "predict_richness", worse_each_epoch)
    rich.train_richness(net, x[:6], y[:6], cfg, val=(x[6:], y[6:]))
    assert len(calls) == 2
    assert isinstance(rich._optimizer(net.parameters(), cfg), torch.optim.SGD)


def test_occlusion_map_shape_and_bright_member_matters_more_than_empty_sky(clusters):
    """A classifier whose confidence grows with the flux it sees: hiding the brightest member (the BCG) must lower
    it more than hiding the emptiest patch of sky, at the positions the simulation says."""
    import json

    from labelsky.data.simulate.clusters import source_pixels
    from labelsky.reproduce.occlusion import occlusion_map

    ds = clusters["sdss"]
    cfg = json.loads((ds.path.parent / "simulation.json").read_text())["config"]
    img = torch.from_numpy(np.clip(ds.image(0)[[2]], 0, None) / ds.survey.noise_sigma(2))  # r band, in noise units
    total = float(img.sum())
    model = lambda x: torch.stack([torch.zeros(len(x)), 10 * (x.flatten(1).sum(1) / total - 0.9)], 1)  # noqa: E731
    patch, stride = 6, 2
    m = occlusion_map(model, img, target=1, patch=patch, stride=stride)
    assert m.shape == ((32 - patch) // stride + 1,) * 2 and ((m >= 0) & (m <= 1)).all()
    src = source_pixels(cfg, 0, "sdss")
    bcg = int(np.flatnonzero(src["kind"] == "member")[0])
    i, j = (int(np.clip(round((c - patch / 2 + 0.5) / stride), 0, m.shape[0] - 1)) for c in (src["y"][bcg],
                                                                                           src["x"][bcg]))
    sums = torch.nn.functional.avg_pool2d(img[None], patch, stride)[0, 0].numpy()
    empty = np.unravel_index(np.argmin(sums), sums.shape)
    assert m[i, j] < m[empty] - 0.01


def test_cli_pretrain_richness_and_quick_reproduction(tmp_path, clusters):
    import json

    from labelsky.cli import main

    ds = clusters["sdss"]
    run = tmp_path / "pre"
    assert main(["pretrain", "--data", str(ds.path), "--out", str(run), "--backbone", "resnet10t", "--feature-dim",
                 "16", "--epochs", "1", "--batch-size", "8", "--baseline"]) == 0
    rep = json.loads((run / "eval.json").read_text())
    assert 0 <= rep["stats_raw_accuracy"] <= 1 and (run / "extractor.pt").exists()
    assert rep["test_accuracy"] == json.loads((run / "test.json").read_text())["accuracy"] and rep["n_test"] >= 1
    # the pretext backbone initialises a 3-band morphology backbone (first convolution adapted from one band)
    from labelsky.models.backbones import create_backbone

    bb, info = create_backbone("resnet10t", 3, run / "backbone.safetensors")
    assert info["pretrained"] and info["adapted_input_conv"] and not info["missing"]
    assert main(["richness", "--data", str(ds.path), "--out", str(tmp_path / "rich"), "--extractor",
                 str(run / "extractor.pt"), "--backbone", "resnet10t", "--feature-dim", "16", "--fc-widths", "16",
                 "--freeze", "--fractions", "1.0", "--folds", "2", "--repeats", "1", "--epochs", "2"]) == 0
    res = json.loads((tmp_path / "rich" / "results.json").read_text())
    assert set(res["summary"]) == {"base_frozen", "ours_frozen"}
    assert main(["pretrain", "--data", str(ds.path), "--out", str(tmp_path / "rgb"), "--task", "channel-order",
                 "--bands", "g", "r", "i", "--backbone", "resnet10t", "--feature-dim", "16", "--epochs", "1",
                 "--batch-size", "8"]) == 0
    assert json.loads((tmp_path / "rgb" / "config.json").read_text())["classes"][1] == "021"


class _Groups:
    """The part of a dataset the pretext split reads: a catalog with ``cluster_id`` (or only ``id_str``)."""

    def __init__(self, ids, column="cluster_id"):
        self.ids, self.path = np.asarray(ids), "stub"
        self.catalog = type("Catalog", (), {"column_names": [column, "id_str"] if column == "cluster_id"
                                            else ["id_str"]})()

    def column(self, name):
        return self.ids if name in ("cluster_id", "id_str") else None


@pytest.mark.parametrize("seed", [0, 1])
def test_pretext_split_has_a_test_part_disjoint_by_cluster_from_training_and_selection(clusters, seed):
    from labelsky.methods.selfsup.pretext import select_rows

    ds = _Groups(np.repeat([f"c{i:03d}" for i in range(100)], 3))  # 100 clusters, 3 views each
    parts = {k: v[0] for k, v in select_rows({"data": [ds]}, PretextConfig(seed=seed)).items()}
    assert set(parts) == {"train", "val", "test"}
    groups = {k: set(ds.ids[rows]) for k, (_, rows, _) in parts.items()}
    assert [len(groups[k]) for k in ("train", "val", "test")] == [70, 10, 20]
    assert not groups["train"] & groups["test"] and not groups["val"] & groups["test"]
    assert not groups["train"] & groups["val"]
    assert sum(len(rows) for _, rows, _ in parts.values()) == 300  # every view of every cluster, once
    small = clusters["sdss"]  # 6 clusters: every part gets at least one
    p = {k: v[0] for k, v in select_rows({"data": [small]}, PretextConfig(seed=seed)).items()}
    g = {k: set(small.column("cluster_id")[rows]) for k, (_, rows, _) in p.items()}
    assert all(g.values()) and not g["test"] & (g["train"] | g["val"]) and not g["train"] & g["val"]
    from labelsky.data.io import DatasetError

    with pytest.raises(DatasetError, match="at least 3"):
        select_rows({"data": [_Groups(["a", "a", "b"])]}, PretextConfig(seed=seed))


def test_pretext_test_accuracy_is_computed_on_the_test_rows_and_overlaps_are_refused(tmp_path, clusters):
    import json

    from labelsky.errors import SettingsError
    from labelsky.methods.parts import Part
    from labelsky.methods.selfsup.pretext import fit, select_rows

    ds = clusters["sdss"]
    cfg = PretextConfig(backbone="resnet10t", feature_dim=8, max_epochs=1, batch_size=8, device="cpu")
    parts = select_rows({"data": [ds]}, cfg)
    tr, va, te = (parts[k][0].rows for k in ("train", "val", "test"))
    with pytest.raises(SettingsError, match="val and test rows share"):
        fit(tmp_path / "bad", {**parts, "test": [Part(ds, np.concatenate([te, va[:1]]))]}, cfg, progress=False)
    assert not (tmp_path / "bad").exists()
    model = fit(tmp_path / "run", parts, cfg, progress=False).model
    rep = json.loads((tmp_path / "run" / "test.json").read_text())
    pre = Preprocess([0], noise=[1.0], stretch="robust_asinh")
    with torch.inference_mode():  # by hand: every band image of every test cluster view
        hits = [int(model(pre(ds.image(int(r))[[b]])[None]).argmax(1)) == b for r in te for b in range(5)]
    assert rep["n_images"] == 5 * len(te) == len(hits) and rep["n_objects"] == len(te)
    assert rep["accuracy"] == pytest.approx(np.mean(hits)) and rep["chance"] == pytest.approx(0.2)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["n_test"] == len(te) and set(config["data"]) == {"train", "val", "test"}


def _labelled_galaxies(path, n=24, size=16):
    """A finalized g r z dataset of ``n`` labelled objects (round vs elongated blobs), splits train/val/test."""
    from labelsky.data.io import DatasetWriter, open_dataset

    rng = np.random.default_rng(0)
    w = DatasetWriter(path, "decals", (3, size, size), classes=["round", "long"], n_shards=1, config={"seed": 0})
    label = np.arange(n) % 2
    yy, xx = np.mgrid[:size, :size] - size / 2
    imgs = rng.normal(0, 0.05, size=(n, 3, size, size)).astype(np.float32)
    for i in range(n):
        imgs[i] += np.exp(-(xx ** 2 * (1.0 if label[i] == 0 else 0.25) + yy ** 2) / 8.0)[None]
    w.write_shard(0, imgs, {"id_str": [f"o{i:03d}" for i in range(n)], "ra": rng.uniform(0, 10, n),
                            "dec": rng.uniform(-5, 5, n), "survey": ["decals"] * n,
                            "split": np.array(["train", "train", "val", "test"])[np.arange(n) % 4].tolist(),
                            "label": label.astype(np.int16), "label_name": [["round", "long"][k] for k in label],
                            "votes_smooth": np.full(n, -1), "votes_featured": np.full(n, -1),
                            "votes_artifact": np.full(n, -1), "richness": np.full(n, np.nan, np.float32)})
    w.finalize()
    return open_dataset(path)


def test_train_from_pretext_weights_can_train_every_block_from_the_first_epoch(tmp_path):
    """With weights, `labelsky train` trains the head first and unfreezes blocks progressively, so after one epoch
    the stem still holds the (adapted) pretext weights; --head-epochs 0 --unfreeze-groups 100 trains every block
    from the first epoch, the protocol of random initialisation (a fair comparison of the two starts)."""
    import json

    from safetensors.torch import save_file

    from labelsky.cli import main
    from labelsky.methods.transfer import TransferClassifier
    from labelsky.models.backbones import create_backbone

    ds = _labelled_galaxies(tmp_path / "gal")
    torch.manual_seed(0)
    one_band = BandExtractor("resnet10t", 1, feature_dim=8).backbone  # what labelsky pretrain exports
    weights = tmp_path / "backbone.safetensors"
    save_file({k: v.contiguous() for k, v in one_band.state_dict().items()}, str(weights))
    start, _ = create_backbone("resnet10t", 3, weights)  # the one-band stem adapted to g r z
    stem = next(k for k, v in start.state_dict().items() if v.ndim == 4)

    def trained_stem(name, *extra):
        assert main(["train", "--data", str(ds.path), "--out", str(tmp_path / name), "--backbone", "resnet10t",
                     "--weights", str(weights), "--epochs", "1", "--batch-size", "4", "--device", "cpu",
                     *extra]) == 0
        record = json.loads((tmp_path / name / "config.json").read_text())
        config = record["config"]
        assert record["weights_provenance"]["kind"] == "unknown"  # what the weight file was trained on, recorded
        model = TransferClassifier.load(tmp_path / name / "checkpoints" / "last.ckpt")
        return config, model.model.backbone.state_dict()[stem]

    config, w = trained_stem("progressive")
    assert config["unfreeze_groups"] == 1 and torch.equal(w, start.state_dict()[stem])  # frozen in epoch 0
    config, w = trained_stem("all", "--head-epochs", "0", "--unfreeze-groups", "100")
    assert config["unfreeze_groups"] == 100 and config["head_epochs"] == 0
    assert not torch.equal(w, start.state_dict()[stem])  # the stem trained in the first epoch


def test_equalize_gives_every_band_the_same_values_and_fills_bad_pixels_with_the_middle_rank():
    rng = np.random.default_rng(0)
    img = np.stack([rng.normal(0, s, (6, 6)) + m for s, m in ((1.0, 0.0), (10.0, 5.0), (0.1, -3.0))]).astype(np.float32)
    out = Preprocess([0, 1, 2], stretch="equalize")(img).numpy()
    for b in range(3):
        np.testing.assert_allclose(np.sort(out[b].ravel()), np.linspace(-1, 1, 36), atol=1e-6)
        assert np.array_equal(np.argsort(out[b].ravel()), np.argsort(img[b].ravel()))  # the order is kept
    img[1, 2, 3] = np.nan
    out = Preprocess([0, 1, 2], stretch="equalize")(img).numpy()
    assert out[1, 2, 3] == 0.0
    np.testing.assert_allclose(np.sort(np.delete(out[1].ravel(), 2 * 6 + 3)), np.linspace(-1, 1, 35), atol=1e-6)


def test_channel_order_pretext_after_equalize_is_not_solvable_from_per_channel_statistics(clusters):
    """After ``equalize`` the six orders of a galaxy have the same per-channel statistics, so a classifier on
    them is at chance exactly (one order in six right per galaxy); the paper's ``khan`` stretch keeps the colour
    ratios, which differ between the orders."""
    from labelsky.methods.selfsup.pretext import _dataset, pretext_statistics_baseline

    ds = clusters["sdss"]
    cfg = PretextConfig(task="channel_order", bands=["g", "r", "i"], stretch="equalize")
    feats = [summary_statistics(x.numpy()[:, None]).reshape(-1) for x, _ in (_dataset(ds, [0], cfg)[k]
                                                                              for k in range(6))]
    assert all(np.allclose(f, feats[0]) for f in feats)
    assert pretext_statistics_baseline(ds, np.arange(8), np.arange(8, 12), cfg) == pytest.approx(1 / 6)
    khan = PretextConfig(task="channel_order", bands=["g", "r", "i"], stretch="khan")
    feats = [summary_statistics(x.numpy()[:, None]).reshape(-1) for x, _ in (_dataset(ds, [0], khan)[k]
                                                                              for k in range(6))]
    assert len({tuple(np.round(f, 6)) for f in feats}) == 6  # every order has its own statistics


def test_base_from_random_weights_beats_the_mean_where_the_images_carry_the_signal():
    """Richness as the number of bright sources in five-band fields: Base (random initialisation) must learn it
    clearly better than predicting the training mean, on held-out fields."""
    from labelsky.methods.selfsup.richness import make_richness_net, predict_richness, train_richness

    rng = np.random.default_rng(0)
    n, side = 200, 16
    counts = rng.integers(1, 13, n)
    yy, xx = np.mgrid[:side, :side]
    images = rng.normal(0, 1, (n, 5, side, side)).astype(np.float32)
    for i, k in enumerate(counts):
        for cy, cx in rng.uniform(2, side - 2, (k, 2)):
            images[i] += 6 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 2.0)[None]
    cfg = RichnessConfig(backbone="resnet10t", feature_dim=16, fc_widths=[32], max_epochs=12, lr=3e-3, seed=0)
    pre = cfg.preprocess(types.SimpleNamespace(bands=list("ugriz")))
    x = torch.stack([pre(im) for im in images])
    y = torch.tensor(np.log(counts), dtype=torch.float32)
    tr, te = np.arange(150), np.arange(150, n)
    torch.manual_seed(0)
    net = train_richness(make_richness_net(cfg, 5), x[tr], y[tr], cfg)
    mae = float(np.abs(predict_richness(net, x[te]).ravel() - y[te].numpy()).mean())
    mean_mae = float(np.abs(y[tr].mean() - y[te]).mean())
    assert mae < 0.7 * mean_mae, (mae, mean_mae)  # measured: 0.39 against 0.65


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_richness_trains_and_predicts_on_the_gpu():
    from labelsky.methods.selfsup.richness import make_richness_net, predict_richness, train_richness

    cfg = RichnessConfig(backbone="resnet10t", feature_dim=8, fc_widths=[8], max_epochs=2, batch_size=4,
                         device="cuda")
    x, y = torch.randn(12, 5, 16, 16), torch.randn(12)
    net = train_richness(make_richness_net(cfg, 5), x, y, cfg, val=(x[:4], y[:4]))
    assert next(net.parameters()).is_cuda
    assert predict_richness(net, x).shape[0] == 12
