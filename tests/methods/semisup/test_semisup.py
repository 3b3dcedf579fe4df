"""Vote likelihoods against scipy, the ELBO, and the three training regimes end to end."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import dirichlet_multinomial, multinomial

from labelsky.measures.metrics import vote_rmse
from labelsky.methods.semisup import SemiSupConfig
from labelsky.methods.semisup.losses import dirichlet_multinomial_nll, multinomial_nll, predicted_fractions
from labelsky.models.etvae import ETVAE

COUNTS = torch.tensor([[3.0, 5.0, 1.0], [0.0, 0.0, 2.0], [40.0, 12.0, 8.0], [0.0, 0.0, 0.0]])  # last: no votes
OUT = torch.tensor([[0.2, 1.0, -1.0], [0.0, 0.5, 0.3], [2.0, -0.5, 0.1], [0.3, 0.3, 0.3]])


def test_multinomial_nll_matches_scipy_and_skips_galaxies_without_votes():
    p = F.softmax(OUT, 1).numpy()
    want = [-multinomial.logpmf(c, int(c.sum()), p[i]) for i, c in enumerate(COUNTS[:3].numpy())]
    per = multinomial_nll(OUT, COUNTS, reduce=False)
    np.testing.assert_allclose(per[:3].numpy(), want, rtol=1e-5)
    assert per[3] == 0  # a galaxy nobody classified adds nothing ...
    assert float(multinomial_nll(OUT, COUNTS)) == pytest.approx(np.mean(want), rel=1e-5)  # ... nor to the mean


def test_dirichlet_multinomial_nll_matches_scipy():
    alpha = (F.softplus(OUT) + 1e-3).numpy()
    want = [-dirichlet_multinomial.logpmf(c, alpha[i], int(c.sum())) for i, c in enumerate(COUNTS[:3].numpy())]
    np.testing.assert_allclose(dirichlet_multinomial_nll(OUT, COUNTS, reduce=False)[:3].numpy(), want, rtol=1e-5)
    frac = predicted_fractions(OUT, "dirichlet_multinomial")
    torch.testing.assert_close(frac.sum(1), torch.ones(4))


def test_vote_rmse_by_hand():
    f = np.array([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0], [0.2, 0.2, 0.6]])
    c = np.array([[1, 1, 0], [0, 2, 0], [0, 0, 0]])  # third galaxy: no votes, not scored
    assert vote_rmse(f, c) == pytest.approx(np.sqrt((0 + 0 + 0 + 1 + 1 + 0) / 6))


def test_elbo_is_finite_and_decreases_on_a_tiny_run():
    torch.manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(16.0) - 7.5, torch.arange(16.0) - 7.5, indexing="ij")
    x = torch.stack([torch.exp(-0.5 * ((xx - dx) ** 2 + (yy - dy) ** 2) / 4.0)
                     for dx, dy in torch.randint(-3, 4, (16, 2)).tolist()])[:, None] + 0.05 * torch.randn(16, 1, 16, 16)
    vae = ETVAE(1, 16, latent_dim=8, width=8)
    opt = torch.optim.Adam(vae.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss = vae.elbo(x)["loss"].mean()
        assert torch.isfinite(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5]), (losses[:5], losses[-5:])


def test_config_errors():
    with pytest.raises(ValueError, match="unknown regime"):
        SemiSupConfig(regime="magic")
    with pytest.raises(ValueError, match="unknown likelihood"):
        SemiSupConfig(likelihood="poisson")


@pytest.mark.parametrize("regime", ["supervised", "semi", "two_step"])
def test_every_regime_runs_end_to_end_on_the_command_line(tmp_path_factory, regime):
    from labelsky.cli import main
    from labelsky.data.simulate import simulate_galaxies

    root = tmp_path_factory.getbasetemp() / "semisup_sim"
    ds = simulate_galaxies(root, n_objects=120, surveys=["decals"], stamp_size=16, workers=1, progress=False,
                           reuse=True)["decals"]
    run = tmp_path_factory.mktemp(regime)
    assert main(["semisup", "--data", str(ds.path), "--out", str(run), "--regime", regime, "--labels", "30",
                 "--epochs", "1", "--pretrain-epochs", "1", "--latent-dim", "8", "--batch-size", "16",
                 "--likelihood", "dirichlet_multinomial" if regime == "semi" else "multinomial"]) == 0
    rep = json.loads((run / "eval.json").read_text())
    # the label budget of 30 both trains (24) and selects the model (6)
    assert rep["n_labelled"] == 24 and rep["n_val"] == 6 and rep["selection"] == "budget" and 0 < rep["test_rmse"] < 1
    # one epoch is the same number of classifier updates in every regime: one pass over the unlabelled pool
    assert rep["vote_updates"] == -(-rep["n_unlabelled"] // 16)
    # semi: one ELBO update per classifier update; two_step: its one VAE epoch, the same length
    assert rep["elbo_updates"] == (0 if regime == "supervised" else rep["vote_updates"])
    assert (run / "checkpoints" / "best.ckpt").exists()
    if regime == "semi":  # a catalog of predicted vote fractions
        import pyarrow.parquet as pq

        assert main(["catalog", "--run", str(run), "--data", str(ds.path), "--out", str(run / "cat.parquet")]) == 0
        t = pq.read_table(run / "cat.parquet")
        frac = np.stack([t.column(f"p_{a}").to_numpy() for a in ("smooth", "featured", "artifact")], 1)
        assert t.num_rows == len(ds) and np.allclose(frac.sum(1), 1, atol=1e-5)
    if regime != "supervised":  # the decoder trains: reconstructions are drawn every epoch
        figs = list(run.rglob("reconstructions_*_epoch000.png"))
        assert figs and figs[0].stat().st_size > 1000


def _tiny_module(optimisers, size=32):
    from labelsky.methods.semisup.module import SemiSupModule

    cfg = SemiSupConfig(regime="semi", latent_dim=8, width=8, et_groups=[], optimisers=optimisers).to_dict()
    m = SemiSupModule(cfg, in_chans=1, size=size, stage="semi")
    return m, m.configure_optimizers()


def _galaxies(n, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size) - size / 2 + 0.5, torch.arange(size) - size / 2 + 0.5, indexing="ij")
    w = 1.0 + 4.0 * torch.rand(n, 1, 1, generator=g)
    x = torch.exp(-0.5 * (xx ** 2 + yy ** 2) / w ** 2)[:, None] + 0.05 * torch.randn(n, 1, size, size, generator=g)
    counts = torch.stack([(w[:, 0, 0] > 3) * 8.0 + 1, (w[:, 0, 0] <= 3) * 8.0 + 1, torch.ones(n)], 1)
    return x, counts


def _vote_effect_on_encoder(module, opts, x, counts) -> float:
    """How far the vote gradient moves the encoder in one vote update: the update with the vote loss's
    gradient minus the update the same optimiser makes with a zero gradient (momentum alone)."""
    import copy

    (ma, oa), (mb, ob) = copy.deepcopy((module, opts)), copy.deepcopy((module, opts))
    loss, _ = ma.vote_step(x, counts)
    oa[0].zero_grad()
    loss.backward()
    oa[0].step()
    ob[0].zero_grad()
    for pa, pb in zip(oa[0].param_groups[0]["params"], ob[0].param_groups[0]["params"]):
        pb.grad = None if pa.grad is None else torch.zeros_like(pb)  # the same parameters step, gradient 0
    ob[0].step()
    return float((ma._encoder_vector() - mb._encoder_vector()).norm())


def test_the_vote_loss_moves_the_encoder_with_separate_optimisers():
    """With one Adam for both losses the ELBO's gradients (two orders of magnitude larger on the encoder)
    fill Adam's second moments and the vote gradient's steps shrink to a fraction; an Adam per loss lets the
    vote loss move the encoder at Adam's step size."""
    torch.manual_seed(0)
    x, counts = _galaxies(32)
    effects = {}
    for opt in ("separate", "shared"):
        torch.manual_seed(0)
        m, opts = _tiny_module(opt)
        enc = m.parameter_groups()["encoder"]

        def norm(grads):
            return torch.cat([g.reshape(-1) for g in grads if g is not None]).norm()
        ratio = norm(torch.autograd.grad(m.elbo_step(x)[0], enc, allow_unused=True)) / \
            norm(torch.autograd.grad(m.vote_step(x, counts)[0], enc, allow_unused=True))
        assert ratio > 20  # the ELBO dominates the encoder's gradient
        for _ in range(10):
            r = m.semi_update((x, counts), (x,), measure=True)
        assert int(m.n_vote_updates) == int(m.n_elbo_updates) == 10
        effects[opt] = _vote_effect_on_encoder(m, opts, x, counts)
    n_enc = sum(p.numel() for p in m.parameter_groups()["encoder"])
    lr = SemiSupConfig().lr
    # separate: a sizeable part of Adam's first-moment step lr (1 - beta1) per coordinate over the encoder
    # (measured 0.0042 = 0.035 lr sqrt(n)); shared: about 4x less (0.0010)
    assert effects["separate"] > 0.02 * lr * n_enc ** 0.5, effects
    assert effects["separate"] > 2.5 * effects["shared"], effects
    assert r["encoder_step_vote"] > 0 and r["encoder_step_elbo"] > 0


def test_labelled_galaxies_are_never_dropped_and_every_regime_has_the_same_steps(tmp_path):
    from labelsky.data.simulate import simulate_galaxies
    from labelsky.methods.semisup.module import _loader, steps_per_epoch

    ds = simulate_galaxies(tmp_path / "sim", n_objects=60, surveys=["decals"], stamp_size=16, workers=1,
                           progress=False)["decals"]
    cfg = SemiSupConfig(batch_size=16, et_groups=[])
    labelled = np.arange(20)
    steps = steps_per_epoch(cfg, n_labelled=20, n_unlabelled=50)
    assert steps == 4  # one pass over 50 unlabelled galaxies in batches of 16
    loader = _loader(ds, labelled, cfg, True, steps)
    assert [len(c) for _, c in loader] == [16] * steps  # full batches, as many as the semi-supervised regime makes
    for _ in range(2):  # every epoch: 64 draws of 20 galaxies, each drawn 3 or 4 times, none dropped
        drawn = np.array([index for _, index in loader.sampler])  # (draw key, index) items
        hist = np.bincount(drawn, minlength=20)
        assert len(drawn) == 64 and hist.min() >= 3 and hist.max() <= 4, hist
        assert sorted(drawn[:20]) == list(range(20))  # no repeat before every galaxy was drawn
    assert not isinstance(loader.sampler, torch.utils.data.RandomSampler)  # DDP shards it, keeps its length


def test_model_selection_stays_within_the_label_budget(tmp_path):
    from labelsky.data.simulate import simulate_galaxies
    from labelsky.methods.semisup.module import select_rows, split_label_budget

    ds = simulate_galaxies(tmp_path / "sim", n_objects=80, surveys=["decals"], stamp_size=16, workers=1,
                           progress=False)["decals"]
    parts = select_rows({"data": [ds]}, SemiSupConfig(labels=20, seed=3))  # every row choice is a setting
    train, val = parts["labelled"][0].rows, parts["val"][0].rows
    split = ds.column("split").astype(str)
    assert len(train) == 16 and len(val) == 4 and not set(train) & set(val)
    assert (split[np.concatenate([train, val])] == "train").all()  # all from the budget, none from split val
    other = select_rows({"data": [ds]}, SemiSupConfig(labels=20, seed=3, selection="split"))["val"][0].rows
    assert (split[other] == "val").all() and len(other) > 4
    with pytest.raises(ValueError, match="cannot both train and select"):
        split_label_budget(np.arange(10), 1)


def test_checkpoints_from_before_update_counting(tmp_path):
    """Without ET translation layers an older checkpoint loads (its counters read 0); with them it is refused
    by name, since the isotropic translation layer reads the same weights differently."""
    from labelsky.errors import RunFolderError
    from labelsky.methods.semisup.module import SemiSupModule

    for groups in ([], ["translation", "rotation_scale"]):
        cfg = SemiSupConfig(regime="semi", latent_dim=4, width=4, et_groups=groups).to_dict()
        m = SemiSupModule(cfg, in_chans=1, size=16, stage="semi")
        old = {k: v for k, v in m.state_dict().items() if not k.startswith("n_")}
        path = tmp_path / f"old{len(groups)}.ckpt"
        torch.save({"hyper_parameters": {"config": cfg, "in_chans": 1, "size": 16, "stage": "semi"},
                    "state_dict": old}, path)
        if groups:
            with pytest.raises(RunFolderError, match="older labelsky"):
                SemiSupModule.load(path)
        else:
            assert int(SemiSupModule.load(path).n_vote_updates) == 0
