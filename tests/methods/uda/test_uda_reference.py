"""Each DeepAstroUDA and DANCE term recomputed from the published formulas (NumPy, written from the papers'
equations) on the tensors of a real training step, and compared with labelsky's.

DeepAstroUDA (Ćiprijanović et al. 2023): eq. 1 (adaptive clustering of the target images against the source
and target rows of the bank of earlier batches, pairs by the paper's ordered top-k ranks or labelsky's
confident rule; the source pairs, by labels, as a term of their own), eqs. 2-3 (entropy separation on the
un-augmented target images), eq. 4 (class-weighted cross-entropy on the source images and their two views).
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


@pytest.mark.parametrize("rule", ["ordered", "confident"])
def test_deepastrouda_terms_match_the_paper_equations(rule):
    m = _module("deepastrouda", pair_rule=rule)
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
    assert any(before["labels"][i] >= 0 for i in rows) and any(before["labels"][i] < 0 for i in rows)
    gate = math.log(3) / 2  # rho: the galaxies the model calls known
    h_bank = _entropy(before["probs"])
    ac, n_counted, n_pairs = 0.0, 0, 0
    for j in range(len(pt)):  # target queries against source *and* target rows
        for i in rows:
            p_i = before["probs"][i]
            if rule == "ordered":  # the paper: the same ordered top-k of the probability vectors
                s_ij, counted = float(_ordered_topk_equal(p_i, pt[j], m.k_rank)), True
            else:  # the same class (a source row: its label), both members sure of it
                cls_i = before["labels"][i] if before["labels"][i] >= 0 else int(np.argmax(p_i))
                sure_i = before["labels"][i] >= 0 or h_bank[i] < gate
                s_ij = float(cls_i == int(np.argmax(pt[j])))
                counted = sure_i and _entropy(pt[j:j + 1])[0] < gate
            n_pairs += 1
            if counted:
                n_counted += 1
                ac += _bce(s_ij, p_i @ pt[j])
    assert n_counted > 0
    assert float(terms["ac"]) == pytest.approx(m.cfg.lam * ac / len(pt), rel=1e-3)
    ac_s = 0.0
    for j in range(len(ps)):  # source queries: source rows, by label; a term of its own
        ac_s += sum(_bce(float(before["labels"][i] == y_all[j]), before["probs"][i] @ ps[j])
                    for i in rows if before["labels"][i] >= 0)
    assert float(terms["acs"]) == pytest.approx(m.cfg.lam * ac_s / len(ps), rel=1e-3)

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


def test_target_queries_meet_source_rows_and_source_pairs_are_their_own_term():
    """Eq. 1's bank holds earlier *source and target* batches: with only source rows (and the current batch)
    in the bank, the target queries still meet the 6 source rows; the source images meet them in a term of
    their own (``acs``). ``ac_cross=False`` restores target rows only; ``source_pairs=False`` drops ``acs``."""
    import labelsky.methods.uda.module as mod

    def spied(m):
        m.loss_terms(_batch([0, 1, 2, 3, 4, 5], [0, 1, 2, 3, 4, 5], seed=1))
        batch = _batch([6, 7, 8, 9, 10, 11], [0, 1, 2, 3, 4, 5], seed=2)  # same target samples: rows excluded
        captured, original = [], mod.adaptive_clustering_loss

        def spy(p_batch, p_bank, s, balanced=False, mask=None):
            captured.append((len(p_batch), len(p_bank)))
            return original(p_batch, p_bank, s, balanced, mask)

        mod.adaptive_clustering_loss = spy
        try:
            terms = m.loss_terms(batch)
        finally:
            mod.adaptive_clustering_loss = original
        return captured, terms

    captured, terms = spied(_module("deepastrouda"))
    assert captured == [(18, 6), (18, 6)] and set(terms) == {"ce", "ac", "acs", "es"}
    captured, terms = spied(_module("deepastrouda", ac_cross=False, source_pairs=False))
    assert captured == [(18, 0)] and set(terms) == {"ce", "ac", "es"}
    # a baseline can be given the same source supervision
    captured, terms = spied(_module("source_only", dsbn=False, source_pairs=True))
    assert captured == [(18, 6)] and set(terms) == {"ce", "acs"}
    assert set(spied(_module("dance"))[1]) == {"ce", "nc", "es"}


def test_adaptation_term_carries_a_real_share_of_the_gradient():
    """At lambda = 0.005 the adaptive-clustering term must move the network: its gradient norm is a sizeable
    fraction of the classification term's (a mean over bank x batch pairs gave ~6e-4). Eq. 1 sums over the
    bank, so the share grows with it: a bank of 288 target and 288 source rows, the size of a small data set.
    The paper's pair rule, which counts every pair (the confident rule counts only sure galaxies, few in an
    untrained network on noise; its share during training is in benchmarks/results/deepastrouda_lsst_ablations.md)."""
    torch.manual_seed(0)
    cfg = UDAConfig(method="deepastrouda", backbone="resnet10t", pair_rule="ordered")
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
    # the source pairs' label term is separate: the target pairs alone carry this share
    assert norms["acs"] > 0


def test_pair_diagnostics_count_against_the_truth_and_never_touch_the_loss():
    """The precision and recall of the pair labels, counted against the target's classes, match a count by hand;
    the classes never change a loss."""
    truth = np.array([0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, -1, 0, 1, 2, 3])  # 3 = unknown, -1 = no class name
    # a wide known side (gate rho = 0.95 nats) so that some galaxies of an untrained network count as sure
    plain, counted_model = _module("deepastrouda", rho=0.95, margin=0.1), _module("deepastrouda", rho=0.95, margin=0.1)
    counted_model.set_pair_truth(truth)
    b1, b2 = _batch([0, 1, 2, 3, 4, 5], [0, 1, 2, 3, 4, 5], seed=1), _batch([6, 7, 8, 9, 10, 11],
                                                                           [6, 7, 8, 9, 10, 11], seed=2)
    for b in (b1, b2):
        t_plain, t_counted = plain.loss_terms(b), counted_model.loss_terms(b)
        assert {k: float(v) for k, v in t_plain.items()} == {k: float(v) for k, v in t_counted.items()}
    counted_model.pair_counts()  # the first batch met an empty bank
    before = _snapshot(counted_model.bank)
    counted_model.loss_terms(_batch([12, 13, 14, 15, 0, 1], [12, 13, 14, 15, 0, 1], seed=3))
    out = counted_model.pair_counts()
    # by hand: the rows of earlier batches, the confident rule, the open-set truth
    with torch.no_grad():
        b3 = _batch([12, 13, 14, 15, 0, 1], [12, 13, 14, 15, 0, 1], seed=3)
    xt, it = b3["target"][0], b3["target"][2]
    current = {16 + i for i in it.tolist()} | set(b3["source"][2].tolist())
    rows = [i for i in range(32) if before["filled"][i] and i not in current]
    with torch.no_grad():  # the probabilities the step saw: recomputed from the same weights and batch statistics
        pt = _softmax(counted_model.logits(counted_model.features(
            torch.cat([xt, torch.rot90(xt, 1, dims=(2, 3)), _zoom_crop(xt, counted_model.cfg.zoom)]), 1))
            .numpy().astype(float))
    q_truth = np.tile(truth[it.numpy()], 3)
    gate = counted_model.pair_gate
    tally = {}
    for j in range(len(pt)):
        kind = "known" if 0 <= q_truth[j] < 3 else "unknown" if q_truth[j] == 3 else None
        for i in rows:
            src = before["labels"][i] >= 0
            r_truth = before["labels"][i] if src else truth[i - 16]
            if kind is None or r_truth < 0:
                continue
            cls_i = before["labels"][i] if src else int(np.argmax(before["probs"][i]))
            sure = (src or _entropy(before["probs"][i:i + 1])[0] < gate) and _entropy(pt[j:j + 1])[0] < gate
            similar, true = cls_i == int(np.argmax(pt[j])), r_truth == q_truth[j]
            t = tally.setdefault(("ts" if src else "tt", kind), [0, 0, 0, 0, 0])
            t[4] += 1
            if sure:
                t[3] += 1
                t[0] += similar and true
                t[1] += similar and not true
                t[2] += (not similar) and true
    assert tally and sum(t[3] for t in tally.values()) > 0
    for (group, kind), (tp, fp, fn, n_counted, total) in tally.items():
        name = f"pairs_confident_{group}_{kind}"
        assert out[f"{name}_coverage"] == pytest.approx(n_counted / total)
        if tp + fp:
            assert out[f"{name}_precision"] == pytest.approx(tp / (tp + fp))
        if tp + fn:
            assert out[f"{name}_recall"] == pytest.approx(tp / (tp + fn))
    # the other rules are counted on the same pairs
    assert {k.split("_")[1] for k in out} == {"ordered", "unordered", "features", "confident"}
