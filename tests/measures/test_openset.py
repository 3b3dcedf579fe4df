"""Open-set metrics against scikit-learn and hand cases."""

import math

import numpy as np
import pytest
from sklearn.metrics import precision_recall_fscore_support, roc_auc_score

from labelsky.measures.openset import openset_predictions, openset_report


def test_unknown_when_entropy_exceeds_rho():
    probs = np.array([[0.9, 0.05, 0.05], [0.34, 0.33, 0.33], [0.05, 0.9, 0.05]])  # entropies 0.39, 1.10, 0.39
    rho = math.log(3) / 2
    assert openset_predictions(probs, rho).tolist() == [0, 3, 1]


def test_report_matches_sklearn_and_hand_values():
    rng = np.random.default_rng(0)
    n, k = 300, 3
    y = rng.integers(0, k + 1, n)  # label 3 = unknown
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), np.minimum(y, k - 1)] += np.where(y < k, 3.0, 0.0)  # knowns confident, unknowns not
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    rho = math.log(k) / 2
    rep = openset_report(y, probs, rho, ["a", "b", "c"])
    pred = openset_predictions(probs, rho)
    p, r, f, _ = precision_recall_fscore_support(y, pred, labels=[0, 1, 2, 3], average="macro", zero_division=0)
    assert rep["precision"] == pytest.approx(p) and rep["recall"] == pytest.approx(r) and rep["f1"] == pytest.approx(f)
    assert rep["accuracy"] == pytest.approx((pred == y).mean())
    # class-averaged accuracy (the paper's averaging over the classes present) is scikit-learn's balanced accuracy
    from sklearn.metrics import balanced_accuracy_score

    assert rep["class_mean_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert rep["class_mean_accuracy"] != pytest.approx(rep["accuracy"])
    known = [(pred[y == c] == c).mean() for c in range(3)]
    unk = (pred[y == 3] == 3).mean()
    assert rep["known_mean_accuracy"] == pytest.approx(np.mean(known))
    assert rep["unknown_accuracy"] == pytest.approx(unk)
    assert rep["h_score"] == pytest.approx(2 * np.mean(known) * unk / (np.mean(known) + unk))
    ent = -(probs * np.log(probs)).sum(1)
    assert rep["auroc"] == pytest.approx(roc_auc_score(y == 3, ent))
    assert rep["auroc"] > 0.8  # unknowns were made uncertain
    assert np.array(rep["confusion_matrix"]).sum() == n


def test_report_without_unknowns():
    probs = np.array([[0.9, 0.1], [0.2, 0.8]])
    rep = openset_report(np.array([0, 1]), probs, rho=0.6)
    assert rep["accuracy"] == 1.0 and math.isnan(rep["unknown_accuracy"]) and math.isnan(rep["auroc"])


def test_latent_figure_separates_unknowns(tmp_path):
    from labelsky.measures.embeddings import latent_figure

    rng = np.random.default_rng(0)
    src = np.concatenate([rng.normal(0, 1, (40, 8)), rng.normal(5, 1, (40, 8))])
    tgt = np.concatenate([rng.normal(0, 1, (30, 8)), rng.normal(5, 1, (30, 8)), rng.normal(-6, 1, (20, 8))])
    s_lab, t_lab = np.repeat([0, 1], 40), np.repeat([0, 1, 2], [30, 30, 20])
    xy = latent_figure(src, tgt, s_lab, t_lab, ["a", "b"], tmp_path / "latent.png", unknown_label=2)
    assert xy.shape == (160, 2) and (tmp_path / "latent.png").stat().st_size > 5000
    # t-SNE keeps neighbourhoods: the 5 nearest map neighbours of each unknown are unknowns
    from sklearn.neighbors import NearestNeighbors

    is_unknown = np.concatenate([np.zeros(80, bool), t_lab == 2])
    _, nn = NearestNeighbors(n_neighbors=6).fit(xy).kneighbors(xy[is_unknown])
    assert is_unknown[nn[:, 1:]].mean() > 0.95


def test_closed_set_accuracy_ignores_the_threshold():
    # every sample is too uncertain to commit (entropy > rho), yet the argmax is right on 2 of 3 known samples
    probs = np.array([[0.4, 0.3, 0.3], [0.3, 0.4, 0.3], [0.4, 0.3, 0.3], [0.34, 0.33, 0.33]])
    y = np.array([0, 1, 2, 3])
    rep = openset_report(y, probs, rho=0.5)
    from sklearn.metrics import accuracy_score

    assert rep["known_mean_accuracy"] == 0.0
    closed = pytest.approx(accuracy_score(y[:3], probs[:3].argmax(1)))
    assert rep["closed_set_accuracy"] == closed == pytest.approx(2 / 3)
