"""Vote likelihoods against scipy, the ELBO, and the three training regimes end to end."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import dirichlet_multinomial, multinomial

from labelsky.methods.semisup.losses import dirichlet_multinomial_nll, multinomial_nll, predicted_fractions
from labelsky.methods.semisup.module import SemiSupConfig, vote_rmse
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
    assert rep["n_labelled"] == 30 and 0 < rep["test_rmse"] < 1
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
