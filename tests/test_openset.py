"""Open-set metrics against scikit-learn and hand cases."""

import math

import numpy as np
import pytest
from sklearn.metrics import precision_recall_fscore_support, roc_auc_score

from labelsky.evaluate.openset import openset_predictions, openset_report


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
