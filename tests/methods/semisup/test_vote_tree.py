"""The whole-tree vote likelihood: by hand against scipy, recovery of known answer probabilities from simulated
counts, and a run that learns every question of the GZ DECaLS tree, its catalog and its evaluation."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import dirichlet_multinomial

from labelsky.data.vote_trees import DECALS_DR5
from labelsky.methods.semisup.tree_loss import tree_fractions, tree_vote_nll

SLICES = [slice(0, 3), slice(3, 5)]  # a two-question tree: (smooth, featured, artifact), then (yes, no)


def test_tree_nll_is_the_sum_of_question_nlls_and_skips_questions_nobody_was_asked():
    out = torch.tensor([[0.2, 1.0, -1.0, 0.5, -0.3], [1.0, 0.0, 0.3, 0.1, 0.2], [0.3, 0.3, 0.3, 0.0, 0.0]])
    counts = torch.tensor([[3.0, 5.0, 1.0, 4.0, 1.0],    # 5 of 5 featured voters answered the next question
                           [6.0, 0.0, 1.0, 0.0, 0.0],    # nobody said featured: the next question has no votes
                           [-1.0, -1.0, -1.0, -1.0, -1.0]])  # no votes at all: left out of the mean
    alpha = (F.softplus(out) + 1e-3).numpy()
    want = [-dirichlet_multinomial.logpmf([3, 5, 1], alpha[0, :3], 9)
            - dirichlet_multinomial.logpmf([4, 1], alpha[0, 3:], 5),
            -dirichlet_multinomial.logpmf([6, 0, 1], alpha[1, :3], 7)]
    per = tree_vote_nll(out, counts, SLICES, reduce=False)
    np.testing.assert_allclose(per[:2].numpy(), want, rtol=1e-5)
    assert per[2] == 0
    assert float(tree_vote_nll(out, counts, SLICES)) == pytest.approx(np.mean(want), rel=1e-5)
    frac = tree_fractions(out, SLICES)
    torch.testing.assert_close(frac[:, :3].sum(1), torch.ones(3))
    torch.testing.assert_close(frac[:, 3:].sum(1), torch.ones(3))


def _flow_counts(p_first, p_second, n_galaxies, rng):
    """Counts of the two-question tree: N volunteers answer the first question; the 'featured' ones the second."""
    rows = []
    for _ in range(n_galaxies):
        n = int(rng.integers(5, 40))
        first = rng.multinomial(n, p_first)
        rows.append([*first, *rng.multinomial(first[1], p_second)])
    return torch.tensor(rows, dtype=torch.float32)


@pytest.mark.parametrize("likelihood", ["multinomial", "dirichlet_multinomial"])
def test_known_per_question_probabilities_are_recovered_from_simulated_counts(likelihood):
    """Two kinds of galaxy with known answer probabilities; a linear head trained on the tree likelihood predicts
    them, including the second question, which only the 'featured' voters answered (few for kind 0)."""
    rng = np.random.default_rng(0)
    truth = {0: ([0.7, 0.2, 0.1], [0.3, 0.7]), 1: ([0.1, 0.85, 0.05], [0.8, 0.2])}
    x = torch.tensor([[1.0, 0.0]] * 400 + [[0.0, 1.0]] * 400)
    counts = torch.cat([_flow_counts(*truth[k], 400, rng) for k in (0, 1)])
    torch.manual_seed(0)
    head = torch.nn.Linear(2, 5)
    opt = torch.optim.Adam(head.parameters(), lr=0.05)
    for _ in range(600):
        opt.zero_grad()
        tree_vote_nll(head(x), counts, SLICES, likelihood).backward()
        opt.step()
    with torch.no_grad():
        frac = tree_fractions(head(torch.eye(2)), SLICES, likelihood).numpy()
    for k in (0, 1):
        np.testing.assert_allclose(frac[k, :3], truth[k][0], atol=0.03)
        np.testing.assert_allclose(frac[k, 3:], truth[k][1], atol=0.06)


def test_a_run_learns_every_question_of_the_tree_and_catalogs_it(tmp_path_factory):
    import pyarrow.parquet as pq

    from labelsky.cli import main
    from labelsky.data.simulate import simulate_galaxies

    root = tmp_path_factory.getbasetemp() / "semisup_sim"
    ds = simulate_galaxies(root, n_objects=120, surveys=["decals"], stamp_size=16, workers=1, progress=False,
                           reuse=True)["decals"]
    run = tmp_path_factory.mktemp("tree")
    assert main(["semisup", "--data", str(ds.path), "--out", str(run), "--regime", "supervised", "--labels", "40",
                 "--epochs", "2", "--latent-dim", "8", "--batch-size", "16", "--likelihood", "dirichlet_multinomial",
                 "--questions", "decals-dr5"]) == 0
    rep = json.loads((run / "eval.json").read_text())
    assert set(rep["test_rmse_questions"]) == {q.name for q in DECALS_DR5.questions}
    assert 0 < rep["test_rmse"] < 1
    assert main(["catalog", "--run", str(run), "--data", str(ds.path), "--out", str(run / "cat.parquet")]) == 0
    t = pq.read_table(run / "cat.parquet")
    p = {n: t.column(f"p_{n}").to_numpy() for n in DECALS_DR5.names()}
    for q in DECALS_DR5.questions:  # every question's fractions sum to 1
        np.testing.assert_allclose(sum(p[f"{q.name}_{a}"] for a in q.answers), 1, atol=1e-5)
    want = p["smooth-or-featured_featured-or-disk"] * p["disk-edge-on_no"] * p["bar_strong"]
    np.testing.assert_allclose(t.column("p_bar_strong_unconditional").to_numpy(), want, rtol=1e-4)
    first = np.stack([p["smooth-or-featured_smooth"], p["smooth-or-featured_featured-or-disk"],
                      p["smooth-or-featured_artifact"]], 1)
    np.testing.assert_allclose(t.column("confidence").to_numpy(), first.max(1), rtol=1e-6)
    assert main(["evaluate", "--run", str(run), "--data", str(ds.path)]) == 0
    ev = json.loads(next(run.glob("eval_decals_test.json")).read_text())
    assert set(ev["rmse_per_question"]) == {q.name for q in DECALS_DR5.questions}
    # clusters of a whole-tree run are named by the first question's answers
    assert main(["cluster", "--run", str(run), "--data", str(ds.path), "--out", str(run / "clusters")]) == 0
    names = json.loads((run / "clusters" / "summary.json").read_text())
    assert "bar_strong" not in json.dumps(names) and "smooth" in json.dumps(names)


def test_a_dataset_without_the_trees_columns_is_refused_by_name(tiny_dataset):
    from labelsky.data.io import DatasetError, open_dataset
    from labelsky.methods.semisup import SemiSupConfig
    from labelsky.methods.semisup.module import select_rows

    ds = open_dataset(tiny_dataset[0])
    with pytest.raises(DatasetError, match=r"votes_t01_smooth_or_features_a01_smooth.*--schema"):
        select_rows({"data": [ds]}, SemiSupConfig(questions="gz2"))


def test_a_train_head_learns_the_whole_tree_from_vote_counts(tmp_path_factory):
    """``labelsky train --questions decals-dr5``: a timm backbone with a head per question and the summed
    Dirichlet-multinomial likelihood; it learns the first question (beats the labelled galaxies' mean fractions)
    and catalogs every answer."""
    import pyarrow.parquet as pq

    from labelsky.cli import main
    from labelsky.data.simulate import simulate_galaxies
    from labelsky.measures.metrics import vote_rmse

    ds = simulate_galaxies(tmp_path_factory.mktemp("train_tree_sim"), n_objects=240, surveys=["decals"],
                           stamp_size=24, workers=1, progress=False,
                           classes={"elliptical": 0.5, "spiral": 0.5})["decals"]
    run = tmp_path_factory.mktemp("train_tree")
    assert main(["train", "--data", str(ds.path), "--out", str(run), "--backbone", "resnet10t", "--epochs", "6",
                 "--batch-size", "16", "--questions", "decals-dr5", "--device", "cpu"]) == 0
    assert main(["catalog", "--run", str(run), "--data", str(ds.path), "--out", str(run / "cat.parquet")]) == 0
    t = pq.read_table(run / "cat.parquet")
    assert "p_bar_strong_unconditional" in t.column_names and "p_spiral-winding_tight" in t.column_names
    split = ds.column("split").astype(str)
    counts = np.stack([ds.column(c) for c in DECALS_DR5.columns()], 1)
    test = np.flatnonzero((split == "test") & (counts[:, :3].sum(1) > 0))
    train = np.flatnonzero((split == "train") & (counts[:, :3].sum(1) > 0))
    pred = np.stack([t.column(f"p_{n}").to_numpy() for n in DECALS_DR5.names()[:3]], 1)[test]
    mean = counts[train, :3] / counts[train, :3].sum(1, keepdims=True)
    learned, baseline = vote_rmse(pred, counts[test, :3]), vote_rmse(np.tile(mean.mean(0), (len(test), 1)),
                                                                   counts[test, :3])
    print(f"first-question RMSE: {learned:.4f}, mean predictor {baseline:.4f}")
    assert learned < 0.9 * baseline, (learned, baseline)
    # pseudo-label rounds need class labels: refused in one line
    assert main(["train", "--data", str(ds.path), "--out", str(run / "r2"), "--backbone", "resnet10t",
                 "--questions", "decals-dr5", "--unlabelled", str(ds.path), "--epochs", "1"]) == 2
