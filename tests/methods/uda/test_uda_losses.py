"""DeepAstroUDA / DANCE losses and the entropy tuner against hand-computed cases."""

import math

import numpy as np
import pytest
import torch

from labelsky.methods.uda.losses import (MemoryBank, adaptive_clustering_loss, class_weights, entropy,
                                         entropy_separation_loss, neighbourhood_clustering_loss,
                                         rank_similarity_labels, weighted_cross_entropy)
from labelsky.methods.uda.tuner import EntropyTuner


def test_class_weights_eq4():
    w = class_weights([0, 0, 0, 1, -1], 3)  # -1 (unlabelled) ignored; class 2 absent
    assert w.tolist() == pytest.approx([4 / (3 * 3), 4 / (3 * 1), 0.0])


def test_weighted_cross_entropy_hand_case():
    logits = torch.log(torch.tensor([[0.5, 0.5], [0.8, 0.2]]))
    loss = weighted_cross_entropy(logits, torch.tensor([0, 1]), torch.tensor([1.0, 3.0]))
    expected = (1 * -math.log(0.5) + 3 * -math.log(0.2)) / (1 + 3)
    assert float(loss) == pytest.approx(expected, rel=1e-6)


def test_rank_similarity_labels():
    p_bank = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.2, 0.7]])
    p_batch = torch.tensor([[0.6, 0.3, 0.1], [0.5, 0.1, 0.4]])
    assert rank_similarity_labels(p_bank, p_batch, k=2).tolist() == [[1, 0], [0, 0]]
    assert rank_similarity_labels(p_bank, p_batch, k=1).tolist() == [[1, 1], [0, 0]]
    assert rank_similarity_labels(p_bank, p_batch, k=3).tolist() == [[1, 0], [0, 0]]
    # a source bank entry uses its label: similar when the batch sample's top class is that label
    labels = torch.tensor([2, -1])
    assert rank_similarity_labels(p_bank, p_batch, k=2, bank_labels=labels).tolist() == [[0, 0], [0, 0]]
    labels = torch.tensor([0, -1])
    assert rank_similarity_labels(p_bank, p_batch, k=2, bank_labels=labels).tolist() == [[1, 1], [0, 0]]


def test_adaptive_clustering_loss_hand_case_and_gradient():
    p_bank = torch.tensor([[0.9, 0.1]])
    p_batch = torch.tensor([[0.8, 0.2], [0.3, 0.7]], requires_grad=True)
    loss = adaptive_clustering_loss(p_batch, p_bank, k=1)
    # s = [1, 0]; s_hat = [0.74, 0.34]
    expected = (-math.log(0.74) - math.log(1 - 0.34)) / 2
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    loss.backward()
    assert p_batch.grad is not None and p_batch.grad.abs().sum() > 0


def test_entropy_separation_hand_case():
    p = torch.tensor([[0.5, 0.5], [0.99, 0.01], [0.9, 0.1]])
    h = [-(a * math.log(a) + b * math.log(b)) for a, b in p.tolist()]
    rho, m = math.log(2) / 2, 0.2
    d = [abs(x - rho) for x in h]
    expected = -sum(x for x in d if x > m) / 3
    assert float(entropy_separation_loss(p, rho, m)) == pytest.approx(expected, rel=1e-5)
    assert torch.allclose(entropy(p), torch.tensor(h), atol=1e-6)
    # the gradient pushes confident samples to be more confident and uncertain ones less
    q = torch.tensor([[0.95, 0.05], [0.55, 0.45]], requires_grad=True)
    entropy_separation_loss(q, rho, 0.0).backward()
    assert q.grad[0, 0] < 0 and q.grad[1, 0] > 0  # raising p(0) lowers the loss for row 0, raises it for row 1


def test_neighbourhood_clustering_against_numpy():
    rng = np.random.default_rng(0)
    f, bank, proto = rng.normal(size=(3, 4)), rng.normal(size=(5, 4)), rng.normal(size=(2, 4))
    unit = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731
    keys = np.concatenate([unit(bank), unit(proto)])
    sim = unit(f) @ keys.T / 0.05
    sim[np.arange(3), [0, 1, 2]] = -np.inf  # own slots masked
    q = np.exp(sim - sim.max(1, keepdims=True))
    q /= q.sum(1, keepdims=True)
    expected = -(q * np.log(np.clip(q, 1e-7, None))).sum(1).mean()
    got = neighbourhood_clustering_loss(torch.tensor(f, dtype=torch.float64), torch.tensor(unit(bank)),
                                        torch.tensor(proto), 0.05, self_index=torch.tensor([0, 1, 2]))
    assert float(got) == pytest.approx(expected, rel=1e-6)


def test_memory_bank_overwrites_slots():
    bank = MemoryBank(size=6, feature_dim=3, n_classes=2)
    assert bank.entries()[0].shape == (0, 3)
    bank.update(torch.tensor([1, 4]), torch.tensor([[3.0, 0, 4], [1, 1, 1]]), torch.tensor([[0.2, 0.8], [0.6, 0.4]]),
                torch.tensor([1, -1]))
    feats, probs, labels, idx = bank.entries()
    assert idx.tolist() == [1, 4] and labels.tolist() == [1, -1]
    assert torch.allclose(feats[0], torch.tensor([0.6, 0.0, 0.8]))
    bank.update(torch.tensor([1]), torch.tensor([[0.0, 2, 0]]), torch.tensor([[0.9, 0.1]]))
    feats, probs, labels, idx = bank.entries()
    assert torch.allclose(feats[0], torch.tensor([0.0, 1.0, 0.0])) and labels.tolist() == [-1, -1]
    assert torch.allclose(probs[0], torch.tensor([0.9, 0.1]))


def test_tuner_state_machine_on_scripted_losses():
    t = EntropyTuner(n_classes=3, m0=0.5)
    assert t.rho == pytest.approx(math.log(3) / 2) and t.m == 0.5
    actions = {}
    for epoch in range(40):
        a = t.step(1.0, epoch)  # the loss never improves after the first epoch
        if a:
            actions[epoch] = a
    # change 0 needs more than 5 epochs without improvement, the others more than 2
    assert list(actions) == [5, 8, 11, 14, 20, 23, 26, 29, 35, 38]
    assert actions[5] == f"rho -> {math.log(3) / 2 + 0.3:.3f}"
    assert actions[8] == "m -> 0.800"
    assert actions[11] == "m -> 1.600 (doubled)"
    assert actions[14] == "step -> -0.3"
    assert actions[20] == f"rho -> {math.log(3) / 2:.3f}"  # + 0.3 then - 0.3
    assert actions[23] == "m -> 1.300"  # 1.6 - 0.3
    assert actions[26] == "m -> 2.600 (doubled)"
    assert [h["epoch"] for h in t.history] == list(actions)


def test_tuner_holds_while_the_loss_improves():
    t = EntropyTuner(n_classes=10)
    assert t.m == pytest.approx(1.35)  # the paper's range for ten classes is 1.1-1.6
    for epoch in range(30):
        assert t.step(10.0 - epoch, epoch) is None
    assert t.rho == pytest.approx(math.log(10) / 2) and not t.history
    state = t.state_dict()
    t2 = EntropyTuner(n_classes=10)
    t2.load_state_dict(state)
    assert t2.state_dict() == state
