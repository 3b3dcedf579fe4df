"""Each DeepAstroUDA and DANCE term recomputed from the published formulas (NumPy, written from the papers'
equations) on the tensors of a real training step, and compared with labelsky's.

DeepAstroUDA (Ćiprijanović et al. 2023): eq. 1 (adaptive clustering over the bank of earlier batches; target
pairs by ordered top-k ranks, source pairs by labels), eqs. 2-3 (entropy separation on the un-augmented target
images), eq. 4 (class-weighted cross-entropy on the source images and their two views).
DANCE (Saito et al. 2020, and its published training script): neighbourhood clustering = entropy of the softmax
over [prototype, memory-bank, in-batch] similarities / T, with the current batch's memory slots and each
sample's similarity with itself masked; entropy separation -mean(max(|H - rho|, m)).
"""

import math

import numpy as np
import pytest
import torch

from labelsky.methods.uda.module import UDAConfig, UDAModule, _zoom_crop


def _softmax(z):
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def _entropy(p):
    return -(p * np.log(np.clip(p, 1e-7, None))).sum(1)


def _unit(a):
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def _batch(src_idx, tgt_idx, k=3, seed=0, size=24):
    g = torch.Generator().manual_seed(seed)
    n = len(src_idx)
    xs = torch.randn(n, 3, size, size, generator=g)
    xt = torch.randn(len(tgt_idx), 3, size, size, generator=g) * 1.5 + 0.3
    ys = torch.arange(n) % k
    return {"source": (xs, ys, torch.tensor(src_idx)),
            "target": (xt, torch.full((len(tgt_idx),), -1), torch.tensor(tgt_idx))}


def _module(method, **kw):
    torch.manual_seed(0)
    cfg = UDAConfig(method=method, backbone="resnet10t", **kw)
    m = UDAModule(cfg.to_dict(), n_classes=3, in_chans=3, n_source=16, n_target=16,
                  class_weights=[0.5, 1.0, 2.0])
    return m.train()


def _snapshot(bank):
    return {k: getattr(bank, k).clone().numpy() for k in ("features", "probs", "labels", "filled")}


def _ordered_topk_equal(a, b, k):
    return np.array_equal(np.argsort(-a, kind="stable")[:k], np.argsort(-b, kind="stable")[:k])


def _bce(s, s_hat):
    s_hat = np.clip(s_hat, 1e-7, 1 - 1e-7)
    return -(s * np.log(s_hat) + (1 - s) * np.log(1 - s_hat))


def test_deepastrouda_terms_match_the_paper_equations():
    m = _module("deepastrouda")
    m.loss_terms(_batch([0, 1, 2, 3, 4, 5], [0, 1, 2, 3, 4, 5], seed=1))  # fills the bank
    before = _snapshot(m.bank)
    batch = _batch([4, 5, 6, 7, 8, 9], [3, 4, 5, 6, 7, 8], seed=2)  # overlaps the bank's slots
    terms = m.loss_terms(batch)
    (xs, ys, is_), (xt, _, it) = batch["source"], batch["target"]
    with torch.no_grad():  # the same forward passes (train-mode BN uses the batch statistics)
        views_s = torch.cat([xs, torch.rot90(xs, 1, dims=(2, 3)), _zoom_crop(xs, m.cfg.zoom)])
        views_t = torch.cat([xt, torch.rot90(xt, 1, dims=(2, 3)), _zoom_crop(xt, m.cfg.zoom)])
        ls = m.logits(m.features(views_s, 0)).numpy().astype(float)
        lt = m.logits(m.features(views_t, 1)).numpy().astype(float)
    ps, pt = _softmax(ls), _softmax(lt)
    y_all = np.tile(ys.numpy(), 3)

    # eq. 4: class-weighted cross-entropy over the source images and both views (weighted mean)
    w = np.array([0.5, 1.0, 2.0])
    nll = -np.log(ps[np.arange(len(y_all)), y_all])
    assert float(terms["ce"]) == pytest.approx((w[y_all] * nll).sum() / w[y_all].sum(), rel=1e-4)

    # eq. 1 over the bank of *earlier* batches: the current batch's slots are not references
    current = set(is_.tolist()) | {16 + i for i in it.tolist()}
    rows = [i for i in range(32) if before["filled"][i] and i not in current]
    assert rows and all(i not in current for i in rows)
    k = m.k_rank
    ac = 0.0
    for j in range(len(pt)):  # target queries: target rows, ordered top-k of the probabilities
        ac += sum(_bce(float(_ordered_topk_equal(before["probs"][i], pt[j], k)), before["probs"][i] @ pt[j])
                  for i in rows if before["labels"][i] < 0)
    ac_t = ac / len(pt)
    ac = 0.0
    for j in range(len(ps)):  # source queries: source rows, by label
        ac += sum(_bce(float(before["labels"][i] == y_all[j]), before["probs"][i] @ ps[j])
                  for i in rows if before["labels"][i] >= 0)
    ac_s = ac / len(ps)
    assert float(terms["ac"]) == pytest.approx(m.cfg.lam * (ac_t + ac_s), rel=1e-3)

    # eqs. 2-3 on the un-augmented target images
    h = _entropy(pt[:len(xt)])
    d = np.abs(h - m.tuner.rho)
    assert (d > m.tuner.m).any()  # the term is not switched off
    es = -(d * (d > m.tuner.m)).mean()
    assert float(terms["es"]) == pytest.approx(m.cfg.lam_es * es, rel=1e-4, abs=1e-9)
    # the bank now holds the un-augmented images of this batch (not a view)
    assert np.allclose(m.bank.probs[16 + it].numpy(), pt[:len(xt)], atol=1e-5)
    assert np.allclose(m.bank.probs[is_].numpy(), ps[:len(xs)], atol=1e-5)


def test_dance_terms_match_the_published_formulas():
    m = _module("dance")
    m.loss_terms(_batch([0, 1, 2, 3], [0, 1, 2, 3, 4, 5], seed=1))
    before = _snapshot(m.bank)
    batch = _batch([4, 5, 6, 7], [4, 5, 6, 7, 8, 9], seed=2)
    terms = m.loss_terms(batch)
    (_, _, _), (xt, _, it) = batch["source"], batch["target"]
    with torch.no_grad():
        f = m.features(xt, 1).numpy().astype(float)
        w = m.classifier.weight.detach().numpy().astype(float)
    T = m.cfg.temperature
    assert m.tuner.rho == pytest.approx(math.log(3) / 2) and m.tuner.m == pytest.approx(math.log(3) / 4)
    f = _unit(f)
    current = {16 + i for i in it.tolist()}
    mem_rows = [i for i in range(16, 32) if before["filled"][i] and i not in current]  # target memory only
    assert mem_rows == [16, 17, 18, 19]
    to_protos = f @ _unit(w).T / T
    to_mem = f @ before["features"][mem_rows].T / T
    in_batch = f @ f.T / T
    np.fill_diagonal(in_batch, -np.inf)
    q = _softmax(np.concatenate([to_protos, to_mem, in_batch], 1))
    nc = _entropy(q).mean()
    assert float(terms["nc"]) == pytest.approx(m.cfg.eta * nc, rel=1e-4)

    # entropy separation as DANCE's script writes it: -mean(max(|H - rho|, m)); same gradient as eqs. 2-3
    logits = torch.tensor(to_protos, requires_grad=True)
    p = torch.softmax(logits, 1)
    h = -(p * torch.log(p + 1e-5)).sum(1)
    dance_form = -torch.clamp((h - m.tuner.rho).abs(), min=m.tuner.m).mean()
    dance_form.backward()
    g_dance = logits.grad.clone()
    logits.grad = None
    from labelsky.methods.uda.losses import entropy_separation_loss

    entropy_separation_loss(torch.softmax(logits, 1), m.tuner.rho, m.tuner.m).backward()
    assert torch.allclose(g_dance, logits.grad, atol=1e-4)


def test_target_samples_are_not_pulled_to_source_rows_by_their_argmax():
    """With only source rows (and the current batch) in the bank, the target part of L_AC is exactly zero:
    a target sample never becomes "similar" to a labelled source sample because of its own arg-max."""
    m = _module("deepastrouda")
    m.loss_terms(_batch([0, 1, 2, 3, 4, 5], [0, 1, 2, 3, 4, 5], seed=1))
    batch = _batch([6, 7, 8, 9, 10, 11], [0, 1, 2, 3, 4, 5], seed=2)  # same target samples: their rows excluded
    captured = []
    import labelsky.methods.uda.module as mod

    original = mod.adaptive_clustering_loss

    def spy(p_batch, p_bank, s, balanced=False):
        captured.append((len(p_batch), len(p_bank)))
        return original(p_batch, p_bank, s, balanced)

    mod.adaptive_clustering_loss = spy
    try:
        m.loss_terms(batch)
    finally:
        mod.adaptive_clustering_loss = original
    # target queries (6 images x 3 views) against no reference; source queries against the 6 source rows
    assert captured == [(18, 0), (18, 6)]


def test_adaptation_term_carries_a_real_share_of_the_gradient():
    """At lambda = 0.005 the adaptive-clustering term must move the network: its gradient norm is a sizeable
    fraction of the classification term's (a mean over bank x batch pairs gave ~6e-4). Eq. 1 sums over the
    bank, so the share grows with it: a bank of 288 target and 288 source rows, the size of a small data set."""
    torch.manual_seed(0)
    cfg = UDAConfig(method="deepastrouda", backbone="resnet10t")
    m = UDAModule(cfg.to_dict(), n_classes=2, in_chans=3, n_source=320, n_target=320).train()
    g = torch.Generator().manual_seed(3)

    def batch(start):
        idx = list(range(start, start + 32))
        xs = torch.randn(32, 3, 16, 16, generator=g)
        xt = torch.randn(32, 3, 16, 16, generator=g) + 0.5
        return {"source": (xs, torch.arange(32) % 2, torch.tensor(idx)),
                "target": (xt, torch.full((32,), -1), torch.tensor(idx))}

    with torch.no_grad():
        for start in range(0, 288, 32):
            m.loss_terms(batch(start))
    norms = m.gradient_norms(m.loss_terms(batch(288)))
    ratio = norms["ac"] / norms["ce"]
    assert 0.05 < ratio < 50, norms
    assert norms["es"] > 0
    # the target pairs' part alone (the adaptation proper, not the source pairs' label term) acts too
    target_part = m.gradient_norms(m._diagnostic_terms)["ac_target"]
    assert target_part / norms["ce"] > 0.02, (target_part, norms)
