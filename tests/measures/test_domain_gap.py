"""The domain-gap diagnostic: 0.5 on one distribution, 1 on clearly different ones."""

from __future__ import annotations

import numpy as np
import pytest

from labelsky.measures.domain_gap import domain_gap, domain_gap_figure, subsample


def test_two_samples_of_one_distribution_give_half():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(400, 32)), rng.normal(size=(400, 32))
    g = domain_gap(a, b)
    assert abs(g["auroc"] - 0.5) < 0.08
    assert g["n_source"] == g["n_target"] == 400 and len(g["auroc_folds"]) == 5


def test_identical_datasets_give_half():
    x = np.random.default_rng(1).normal(size=(300, 16))
    assert abs(domain_gap(x, x.copy())["auroc"] - 0.5) < 0.1


def test_clearly_different_domains_give_one():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(300, 32))
    b = rng.normal(size=(300, 32))
    b[:, 3] += 4.0  # one shifted direction among 32
    assert domain_gap(a, b)["auroc"] > 0.97


def test_a_partial_shift_lies_in_between_and_scores_are_out_of_fold():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(500, 8)), rng.normal(size=(500, 8))
    b[:, 0] += 0.8
    g = domain_gap(a, b)
    assert 0.6 < g["auroc"] < 0.9
    y = np.r_[np.zeros(500), np.ones(500)]
    assert g["auroc"] == pytest.approx(roc_auc_score(y, np.r_[g["scores_source"], g["scores_target"]]))


def test_subsampling_equal_sizes_and_errors(tmp_path):
    rng = np.random.default_rng(4)
    g = domain_gap(rng.normal(size=(50, 4)), rng.normal(size=(900, 4)), max_per_domain=40)
    assert g["n_source"] == g["n_target"] == 40
    with pytest.raises(ValueError, match="at least 4"):
        domain_gap(np.zeros((2, 3)), np.zeros((10, 3)))
    with pytest.raises(ValueError, match="one D"):
        domain_gap(np.zeros((10, 3)), np.zeros((10, 4)))
    assert list(subsample(np.arange(10), 20)) == list(range(10))
    s = subsample(np.arange(100), 7, seed=1)
    assert len(set(s)) == 7 and list(s) == sorted(s)
    out = domain_gap_figure({"before": g, "after": g}, tmp_path / "gap.png")
    assert out.is_file() and out.stat().st_size > 1000
