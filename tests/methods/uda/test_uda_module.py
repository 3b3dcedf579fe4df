"""The universal-domain-adaptation module: every method trains, gradients reach every parameter."""

import numpy as np
import pytest
import torch

from labelsky.methods.uda.module import METHODS, TunerCallback, UDAConfig, UDAModule


def _batch(n=8, k=3, bands=3, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    xs, xt = torch.randn(n, bands, size, size, generator=g), torch.randn(n, bands, size, size, generator=g) + 0.5
    ys = torch.arange(n) % k
    return {"source": (xs, ys, torch.arange(n)), "target": (xt, torch.full((n,), -1), torch.arange(n))}


@pytest.mark.parametrize("method", METHODS)
def test_every_method_trains_and_gradients_reach_every_parameter(method):
    cfg = UDAConfig(method=method, backbone="resnet10t", batch_size=8)
    torch.manual_seed(0)
    m = UDAModule(cfg.to_dict(), n_classes=3, in_chans=3, n_source=8, n_target=8)
    m.train()
    # one SGD step first: timm zero-initialises the last BN scale of each residual block, which blocks the
    # gradient into that block's convolutions until the scale moves
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    m.training_step(_batch(seed=1), 0).backward()  # also fills the memory bank
    opt.step()
    m.zero_grad()
    loss = m.training_step(_batch(seed=2), 1)
    assert torch.isfinite(loss)
    loss.backward()
    # deepastrouda has domain-specific BN: source BN params get gradients from the CE, target BN params from the
    # DA losses; the others share one BN
    assert any(".bns.1." in name for name, _ in m.named_parameters()) == (method == "deepastrouda")
    for name, p in m.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert int(m.bank.filled.sum()) == (16 if method != "source_only" else 8)


def test_unknown_flag_follows_entropy_boundary():
    m = UDAModule(UDAConfig(backbone="resnet10t").to_dict(), n_classes=3, in_chans=3, n_source=4, n_target=4).eval()
    out = m.predict_step((torch.randn(6, 3, 32, 32),), 0)
    assert out["probs"].shape == (6, 3)
    p = out["probs"].detach().double().numpy()
    entropy = -(p * np.log(p)).sum(1)
    assert np.array_equal(m.extra_columns(p, out["embedding"])["unknown"], entropy > m.rho)  # the catalog's column
    assert m.rho == pytest.approx(np.log(3) / 2)


def test_tuner_callback_changes_rho_when_loss_stalls():
    import types

    m = UDAModule(UDAConfig(backbone="resnet10t").to_dict(), n_classes=3, in_chans=3, n_source=4, n_target=4)
    m.log = lambda *a, **k: None
    cb = TunerCallback()
    rho0 = m.rho
    for epoch in range(7):
        trainer = types.SimpleNamespace(callback_metrics={"train_loss": torch.tensor(1.0)}, current_epoch=epoch)
        cb.on_train_epoch_end(trainer, m)
    assert m.rho == pytest.approx(rho0 + m.tuner.steps[0])
    assert m.tuner.steps[0] == pytest.approx(0.3 * np.log(3) / np.log(10))
    with pytest.raises(ValueError, match="unknown adaptation method"):
        UDAConfig(method="magic")
    with pytest.raises(ValueError, match="untrained"):
        UDAConfig(method="source_only", dsbn=True)


def test_cli_adapt_evaluates_open_set_and_catalog_flags_unknowns(tmp_path):
    import json

    import pyarrow.parquet as pq

    from labelsky.cli import main
    from labelsky.data.simulate import simulate_galaxies

    sims = simulate_galaxies(tmp_path / "sim", n_objects=96, surveys=["lsst_y1", "lsst_y10"], stamp_size=24,
                             classes={"elliptical": 1, "spiral": 1, "merger": 1}, workers=2, progress=False)
    run = tmp_path / "run"
    assert main(["adapt", "--source", str(sims["lsst_y10"].path), "--target", str(sims["lsst_y1"].path),
                 "--out", str(run), "--known", "elliptical", "spiral", "--backbone", "resnet10t",
                 "--epochs", "2", "--batch-size", "16"]) == 0
    rep = json.loads((run / "eval.json").read_text())
    assert {"source_test", "target_test", "rho", "margin", "tuner_history"} <= set(rep)
    from labelsky.reproduce.deepastrouda import read_metrics

    metrics = read_metrics(run)  # every term's share of the gradient is logged per epoch, and none is inert
    for term in ("ce", "ac", "es"):
        assert len(metrics[f"grad_share_{term}"]) == 2 and metrics[f"grad_share_{term}"][-1][1] > 1e-3, term
    tgt = rep["target_test"]
    assert "unknown" in tgt["per_class_accuracy"] and 0.0 <= tgt["auroc"] <= 1.0  # mergers are the unknowns
    assert np.array(tgt["confusion_matrix"]).shape == (3, 3)
    cat = tmp_path / "cat.parquet"
    assert main(["catalog", "--run", str(run), "--data", str(sims["lsst_y1"].path), "--out", str(cat)]) == 0
    t = pq.read_table(cat)
    ent = t.column("entropy").to_numpy()
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["method"] == "uda" and t.column_names[-1] == "unknown"
    rho = UDAModule.load(run / "checkpoints" / "best.ckpt").rho
    assert np.array_equal(t.column("unknown").to_numpy(), ent > rho)


def _bars(n, seed, gain=1.0, offset=0.0, noise=0.3, size=24):
    """Horizontal (class 0) or vertical (class 1) elongated blobs; ``gain``/``offset``/``noise`` set the domain."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    yy, xx = torch.meshgrid(torch.arange(size) - size / 2 + 0.5, torch.arange(size) - size / 2 + 0.5, indexing="ij")
    shift = torch.randint(-3, 4, (n, 2), generator=g)
    long_, short = 5.0, 1.5
    out = torch.empty(n, 1, size, size)
    for i in range(n):
        dy, dx = (yy - shift[i, 0]), (xx - shift[i, 1])
        sx, sy = (long_, short) if y[i] == 0 else (short, long_)
        out[i, 0] = torch.exp(-0.5 * ((dx / sx) ** 2 + (dy / sy) ** 2))
    out = gain * out + offset + noise * torch.randn(out.shape, generator=g)
    return out, y


def _train(method, xs, ys, xt, epochs=6, seed=0):
    import lightning as L
    from lightning.pytorch.utilities import CombinedLoader
    from torch.utils.data import DataLoader, TensorDataset

    L.seed_everything(seed, verbose=False)
    # views=False: the class of a bar is its orientation, which the 90-degree view would flip
    cfg = UDAConfig(method=method, backbone="resnet10t", batch_size=32, lr=0.05, max_epochs=epochs, views=False)
    m = UDAModule(cfg.to_dict(), n_classes=2, in_chans=1, n_source=len(xs), n_target=len(xt))
    loaders = {"source": DataLoader(TensorDataset(xs, ys, torch.arange(len(xs))), batch_size=32, shuffle=True,
                                    drop_last=True),
               "target": DataLoader(TensorDataset(xt, torch.full((len(xt),), -1), torch.arange(len(xt))),
                                    batch_size=32, shuffle=True, drop_last=True)}
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[TunerCallback()])
    trainer.fit(m, CombinedLoader(loaders, mode="max_size_cycle"))
    return m.eval()


def test_tiny_adaptation_beats_source_only_on_target_accuracy():
    """A shifted target (x4 gain, +2 offset, 3x noise): DeepAstroUDA must beat regular training on it.

    Regular training normalises target images with source batch statistics; DeepAstroUDA's target batch norms,
    clustering and entropy losses adapt to the target without its labels.
    """
    xs, ys = _bars(256, seed=1)
    xt, yt = _bars(256, seed=2, gain=4.0, offset=2.0, noise=0.9)
    xt_test, yt_test = _bars(200, seed=3, gain=4.0, offset=2.0, noise=0.9)
    acc = {}
    for method in ("source_only", "deepastrouda"):
        m = _train(method, xs, ys, xt)
        with torch.no_grad():
            m.predict_domain = 0
            src = (m.predict_step(_bars(200, seed=4)[0])["probs"].argmax(1) == _bars(200, seed=4)[1]).float().mean()
            m.predict_domain = 1
            acc[method] = float((m.predict_step(xt_test)["probs"].argmax(1) == yt_test).float().mean())
        assert src > 0.9, (method, float(src))  # both learned the source task
    print("target accuracy", acc)
    assert acc["deepastrouda"] > 0.85, acc
    assert acc["deepastrouda"] > acc["source_only"] + 0.15, acc


def test_reproduce_deepastrouda_quick_writes_table_figures_and_resumes(tmp_path):
    import json

    from labelsky.reproduce.deepastrouda import ReproConfig, run_deepastrouda

    rc = ReproConfig.quick(n_objects=90, stamp_size=24, epochs=1, workers=2)
    res = run_deepastrouda(tmp_path, rc, progress=False)
    assert list(res["methods"]) == ["source_only", "dance", "deepastrouda"]
    assert res["target_classes"] == ["elliptical", "merger", "spiral"] and res["known"] == ["elliptical", "spiral"]
    for method, v in res["methods"].items():
        run = v["runs"][0]
        assert 0.0 <= run["target_test"]["accuracy"] <= 1.0 and "unknown" in run["target_test"]["per_class_accuracy"]
        assert "unknown" not in run["source_test"]["per_class_accuracy"]  # mergers are removed from the source
        for fig in (f"accuracy_epochs_{method}", f"losses_{method}", f"latent_{method}", f"confusion_target_{method}"):
            assert (tmp_path / "figures" / f"{fig}.png").stat().st_size > 1000
    assert "deepastrouda_target_accuracy_gain" in res["claims"]
    assert "| deepastrouda | accuracy |" in (tmp_path / "table.md").read_text()
    # a second call reuses finished runs instead of training again
    evals = {p: p.stat().st_mtime_ns for p in tmp_path.glob("*/seed0/eval.json")}
    assert len(evals) == 3
    res2 = run_deepastrouda(tmp_path, rc, progress=False)
    assert {p: p.stat().st_mtime_ns for p in evals} == evals
    assert json.loads(json.dumps(res2["methods"]["dance"]["summary"])) == res["methods"]["dance"]["summary"]


def test_galaxy10_experiment_names_lens_unknown_and_drops_in_between():
    import types

    from labelsky.reproduce.deepastrouda import EXPERIMENTS, class_names

    cols = {"true_class": np.array(["elliptical", "elliptical", "lens", "artifact", "spiral", "merger"]),
            "true_q": np.array([0.9, 0.6, 0.8, 0.5, 0.5, 0.5]), "true_pitch_deg": np.array([0, 0, 0, 0, 30.0, 0]),
            "true_bulge_frac": np.zeros(6), "true_flux_ratio": np.array([1, 1, 1, 1, 1, 1.5]),
            "label_name": np.array(["elliptical"] * 6)}
    ds = types.SimpleNamespace(column=lambda name: cols[name])
    names = class_names(ds, EXPERIMENTS["sdss-decals"])
    assert list(names) == ["round_smooth", "", "lens", "", "unbarred_loose_spiral", "merging"]
    assert "lens" not in EXPERIMENTS["sdss-decals"].known and len(EXPERIMENTS["sdss-decals"].known) == 9


def test_tuner_leaves_rho_alone_without_entropy_separation():
    """Without L_ES there is nothing to tune: rho, the open-set threshold, must stay at log(K)/2."""
    import types

    m = UDAModule(UDAConfig(backbone="resnet10t", es=False).to_dict(), n_classes=3, in_chans=3, n_source=4,
                  n_target=4)
    m.log = lambda *a, **k: None
    cb = TunerCallback()
    for epoch in range(12):
        trainer = types.SimpleNamespace(callback_metrics={"train_loss": torch.tensor(1.0)}, current_epoch=epoch)
        cb.on_train_epoch_end(trainer, m)
    assert m.rho == pytest.approx(np.log(3) / 2) and not m.tuner.history
