"""Band-identity pretext, richness network and loss, grouped folds, occlusion maps."""

import numpy as np
import pytest
import torch

from labelsky.data.transforms import Preprocess
from labelsky.methods.selfsup.pretext import (PERMUTATIONS, BandPretextDataset, ChannelOrderDataset, PretextConfig,
                                              summary_statistics)
from labelsky.methods.selfsup.richness import RichnessConfig, grouped_folds, richness_loss, richness_metrics
from labelsky.models.bandnet import BandExtractor, RichnessNet


@pytest.fixture(scope="module")
def clusters(tmp_path_factory):
    from labelsky.data.simulate import simulate_clusters

    return simulate_clusters(tmp_path_factory.mktemp("cl"), n_clusters=6, views_per_cluster=2, npix=32,
                             surveys=["sdss", "lsst_y10"], workers=1, progress=False)


def test_pretext_labels_are_right_for_every_band_order_and_survey(clusters):
    pre = Preprocess([0], noise=[1.0], stretch="none")
    for name, ds in clusters.items():
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


def test_richness_loss_and_metrics_by_hand():
    y = torch.tensor([3.0, 2.0, 4.0, 1.0])
    p = torch.tensor([2.5, 2.0, 5.0, 1.5])
    err = np.array([0.5, 0.0, -1.0, -0.5])
    want = np.mean(err ** 2) + 0.7 * np.std(np.abs(err))  # population std over the batch
    assert float(richness_loss(p, y, alpha=0.7)) == pytest.approx(want, rel=1e-6)
    m = richness_metrics(p.numpy(), y.numpy())
    assert m["mae"] == pytest.approx(0.5) and m["sigma"] == pytest.approx(np.std(err))


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
    cfg = RichnessConfig(backbone="resnet10t", feature_dim=16, fc_widths=[16], freeze_extractor=True, epochs=2)
    r = cross_validate(clusters["sdss"], cfg, fractions=(0.5, 1.0), folds=2, repeats=2, progress=False)
    assert set(r["summary"]) == {"base", "ours"} and len(r["per_repeat"]) == 2
    assert all(np.isfinite(v["mae"]["mean"]) for m in r["summary"].values() for v in m.values())


def test_occlusion_map_shape_and_bright_member_matters_more_than_empty_sky(clusters):
    """A classifier whose confidence grows with the flux it sees: hiding the brightest member (the BCG) must lower
    it more than hiding the emptiest patch of sky, at the positions the simulation says."""
    import json

    from labelsky.data.simulate.clusters import source_pixels
    from labelsky.evaluate.occlusion import occlusion_map

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
    # the pretext backbone initialises a 3-band morphology backbone (first convolution adapted from one band)
    from labelsky.models.backbones import create_backbone

    bb, info = create_backbone("resnet10t", 3, run / "backbone.safetensors")
    assert info["pretrained"] and info["adapted_input_conv"] and not info["missing"]
    assert main(["richness", "--data", str(ds.path), "--out", str(tmp_path / "rich"), "--extractor",
                 str(run / "extractor.pt"), "--backbone", "resnet10t", "--feature-dim", "16", "--fc-widths", "16",
                 "--freeze", "--fractions", "1.0", "--folds", "2", "--repeats", "1", "--epochs", "2"]) == 0
    res = json.loads((tmp_path / "rich" / "results.json").read_text())
    assert set(res["summary"]) == {"base", "ours"}
    assert main(["pretrain", "--data", str(ds.path), "--out", str(tmp_path / "rgb"), "--task", "channel-order",
                 "--bands", "g", "r", "i", "--backbone", "resnet10t", "--feature-dim", "16", "--epochs", "1",
                 "--batch-size", "8"]) == 0
    assert json.loads((tmp_path / "rgb" / "config.json").read_text())["classes"][1] == "021"


def test_quick_owg_reproduction_writes_table_and_figures(tmp_path):
    from labelsky.reproduce.owg import OWGConfig, run_owg

    res = run_owg(tmp_path, OWGConfig.quick(n_clusters=16, workers=1), progress=False)
    assert {"cnn_test_accuracy", "stats_raw_accuracy", "stats_normalised_accuracy"} <= set(res["pretext"])
    assert set(res["richness"]["summary"]) == {"base", "ours"}
    assert "mae_ours_minus_base" in res["claims"]
    for fig in ("richness_vs_fraction.png", "occlusion.png"):
        assert (tmp_path / "figures" / fig).stat().st_size > 1000
    assert "| MAE | Ours |" in (tmp_path / "table.md").read_text()
