"""DeepAstroUDA / DANCE losses and the entropy tuner: hand cases, and that each part can act."""

import math

import numpy as np
import pytest
import torch

from labelsky.errors import SettingsError
from labelsky.methods.uda.losses import (
    MemoryBank,
    adaptive_clustering_loss,
    class_weights,
    entropy,
    entropy_separation_loss,
    pair_labels,
    rank_similarity_labels,
    weighted_cross_entropy,
)
from labelsky.methods.uda.tuner import EntropyTuner, margin_limit


def test_class_weights_eq4():
    w = class_weights([0, 0, 0, 1, -1], 3)  # -1 (unlabelled) ignored; class 2 absent
    assert w.tolist() == pytest.approx([4 / (3 * 3), 4 / (3 * 1), 0.0])


def test_weighted_cross_entropy_hand_case():
    logits = torch.log(torch.tensor([[0.5, 0.5], [0.8, 0.2]]))
    loss = weighted_cross_entropy(logits, torch.tensor([0, 1]), torch.tensor([1.0, 3.0]))
    expected = (1 * -math.log(0.5) + 3 * -math.log(0.2)) / (1 + 3)
    assert float(loss) == pytest.approx(expected, rel=1e-6)


def test_rank_similarity_labels_ordered_sets_and_labels():
    bank = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.2, 0.7], [0.2, 0.7, 0.1]])
    batch = torch.tensor([[0.6, 0.3, 0.1], [0.5, 0.1, 0.4]])
    assert rank_similarity_labels(bank, batch, k=2, ordered=True).tolist() == [[1, 0], [0, 0], [0, 0]]
    assert rank_similarity_labels(bank, batch, k=1, ordered=True).tolist() == [[1, 1], [0, 0], [0, 0]]
    # as sets, the top-2 {0, 1} of bank row 2 matches batch row 0
    assert rank_similarity_labels(bank, batch, k=2).tolist() == [[1, 0], [0, 0], [1, 0]]
    # a pair of two labelled samples uses the labels; a pair with an unlabelled member the ranks
    s = rank_similarity_labels(bank, batch, k=2, bank_labels=torch.tensor([2, -1, 0]),
                               batch_labels=torch.tensor([2, -1]), ordered=True)
    assert s.tolist() == [[1, 0], [0, 0], [0, 0]]


def _nine_class_galaxies(n_per_class=20, seed=0):
    """Probability vectors of a separable nine-class case: each galaxy sure of its class (0.8-0.95), the rest of
    its probability spread at random over the other eight, as a trained classifier's outputs look."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(9).repeat_interleave(n_per_class)
    top = 0.8 + 0.15 * torch.rand(len(y), generator=g)
    rest = torch.rand(len(y), 9, generator=g)
    rest[torch.arange(len(y)), y] = 0
    p = rest / rest.sum(1, keepdim=True) * (1 - top)[:, None]
    p[torch.arange(len(y)), y] = top
    return p, y


def _precision_recall(s, mask, truth):
    s, counted = s.bool(), mask.bool()
    tp = (s & truth & counted).sum().item()
    return tp / max((s & counted).sum().item(), 1), tp / max((truth & counted).sum().item(), 1)


def test_pair_rules_on_a_separable_nine_class_case():
    """At K = 9 the paper's ordered top-7 rule labels almost no pair similar, even when every galaxy is sure of
    its class (what the clustering term then does is push every target galaxy away from every other); the
    confident rule finds the same-class pairs."""
    bank, y_bank = _nine_class_galaxies(seed=0)
    query, y_query = _nine_class_galaxies(seed=1)
    truth = y_bank[:, None] == y_query[None, :]
    gate = math.log(9) / 2  # rho
    rates = {}
    for rule in ("ordered", "unordered", "confident"):
        s, mask = pair_labels(rule, bank_probs=bank, query_probs=query, k=7, gate=gate)
        rates[rule] = _precision_recall(s, mask, truth)
    assert rates["ordered"][1] < 0.01  # recall: the defect, kept visible
    assert rates["confident"] == (1.0, 1.0)
    # features: the rank statistic on feature vectors (here the probabilities stand in for them)
    s, _ = pair_labels("features", bank_probs=bank, query_probs=query, k=1, bank_features=bank,
                       query_features=query)
    assert torch.equal(s.bool(), truth)


def test_confident_rule_pairs_with_source_rows_by_label_and_leaves_uncertain_galaxies_out():
    bank = torch.tensor([[0.5, 0.5], [0.5, 0.5], [0.98, 0.02]])
    bank_labels = torch.tensor([0, 1, -1])  # two source rows (their labels count, not their probabilities)
    query = torch.tensor([[0.99, 0.01], [0.55, 0.45]], requires_grad=True)  # sure of class 0; uncertain
    s, mask = pair_labels("confident", bank_probs=bank, query_probs=query.detach(), k=2, bank_labels=bank_labels,
                          gate=0.2)
    assert s.tolist() == [[1, 1], [0, 0], [1, 1]]
    assert mask.tolist() == [[1, 0], [1, 0], [1, 0]]  # the uncertain galaxy is in no counted pair
    adaptive_clustering_loss(query, bank, s, mask=mask).backward()
    assert query.grad[0].abs().sum() > 0 and query.grad[1].abs().sum() == 0  # it may stay uncertain
    # the paper's rule labels every pair of the uncertain galaxy too, so it is pulled to a class
    s, mask = pair_labels("ordered", bank_probs=bank, query_probs=query.detach(), k=2, bank_labels=bank_labels)
    assert mask.all()
    with pytest.raises(ValueError, match="gate"):
        pair_labels("confident", bank_probs=bank, query_probs=query, k=2)
    with pytest.raises(ValueError, match="unknown pair rule"):
        pair_labels("nearest", bank_probs=bank, query_probs=query, k=2)


def test_adaptive_clustering_mask_leaves_pairs_out():
    p_bank = torch.tensor([[0.9, 0.1], [0.2, 0.8]])
    p_batch = torch.tensor([[0.8, 0.2], [0.3, 0.7]])
    s = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    mask = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    expected = (-math.log(0.74) - math.log(0.62)) / 2
    assert float(adaptive_clustering_loss(p_batch, p_bank, s, mask=mask)) == pytest.approx(expected, rel=1e-5)


def test_adaptive_clustering_sums_over_the_bank_and_averages_over_the_batch():
    p_bank = torch.tensor([[0.9, 0.1], [0.2, 0.8]])
    p_batch = torch.tensor([[0.8, 0.2], [0.3, 0.7]], requires_grad=True)
    s = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    loss = adaptive_clustering_loss(p_batch, p_bank, s)
    # s^ = p_bank . p_batch: [[0.74, 0.34], [0.32, 0.62]] (bank rows x batch columns)
    expected = (-math.log(0.74) - math.log(1 - 0.32) - math.log(1 - 0.34) - math.log(0.62)) / 2
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    loss.backward()
    assert p_batch.grad.abs().sum() > 0
    # doubling the bank (same rows twice) doubles the loss: eq. 1 sums over the bank
    double = adaptive_clustering_loss(p_batch, torch.cat([p_bank, p_bank]), torch.cat([s, s]))
    assert float(double) == pytest.approx(2 * expected, rel=1e-5)
    # balanced: similar and dissimilar pairs of each query carry half of the bank sum each; with one similar and
    # three dissimilar rows, the similar pair weighs 4 / (2 * 1) = 2 and each dissimilar one 4 / (2 * 3)
    bank4 = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.4, 0.6]])
    s4 = torch.tensor([[1.0], [0.0], [0.0], [0.0]])
    q = torch.tensor([[0.8, 0.2]])
    sh = (bank4 @ q.T)[:, 0].tolist()
    want = 2 * -math.log(sh[0]) + sum(-math.log(1 - x) for x in sh[1:]) * 4 / 6
    assert float(adaptive_clustering_loss(q, bank4, s4, balanced=True)) == pytest.approx(want, rel=1e-5)


def test_entropy_separation_hand_case():
    p = torch.tensor([[0.5, 0.5], [0.99, 0.01], [0.9, 0.1]])
    h = [-(a * math.log(a) + b * math.log(b)) for a, b in p.tolist()]
    rho, m = math.log(2) / 2, 0.2
    d = [abs(x - rho) for x in h]
    expected = -sum(x for x in d if x > m) / 3
    assert float(entropy_separation_loss(p, rho, m)) == pytest.approx(expected, rel=1e-5)
    assert torch.allclose(entropy(p), torch.tensor(h), atol=1e-6)


@pytest.mark.parametrize("k", [2, 3, 9, 10])
def test_entropy_separation_acts_on_both_sides_at_the_initial_settings(k):
    """At the tuner's initial rho and m, a batch with a spread of entropies gets a non-zero loss, and both
    branches act: confident samples are pushed to lower entropy, uncertain ones to higher."""
    tuner = EntropyTuner(k)
    rho, m = tuner.rho, tuner.m
    assert 0 < rho < math.log(k) and m < min(rho, math.log(k) - rho)  # both branches reachable
    logits = torch.zeros(3, k)
    logits[0, 0] = 5.0  # confident
    logits[2, 0] = 0.4  # near uniform
    logits[1, 0] = 1.2  # in between
    logits.requires_grad_(True)
    p = torch.softmax(logits, 1)
    h = entropy(p).detach()
    assert h[0] < rho - m and h[2] > rho + m
    loss = entropy_separation_loss(p, rho, m)
    assert float(loss) < 0
    loss.backward()
    # a gradient step makes the confident sample more confident and the uncertain one more uncertain
    assert logits.grad[0, 0] < 0 and logits.grad[2, 0] > 0
    step = logits.detach() - 1.0 * logits.grad
    h_after = entropy(torch.softmax(step, 1))
    assert h_after[0] < h[0] and h_after[2] > h[2]


def test_tuner_margin_follows_a_given_rho():
    for k, rho in ((9, 0.5), (2, 0.15), (3, 0.9)):
        t = EntropyTuner(k, rho0=rho)
        assert 0 < t.m <= margin_limit(rho, k)


def test_tuner_initial_margin_is_inside_the_feasible_range_and_refuses_outside():
    for k in (2, 3, 9):
        t = EntropyTuner(k)
        assert t.rho == pytest.approx(math.log(k) / 2) and t.m == pytest.approx(math.log(k) / 4)
    with pytest.raises(SettingsError, match="margin"):
        EntropyTuner(2, m0=0.5)  # the paper's 0.2-0.8 range at K = 2: |H - rho| <= 0.35 < m, inert
    with pytest.raises(SettingsError, match="margin"):
        EntropyTuner(9, m0=1.35)  # the paper's 1.1-1.6 range at K = 9: log(9)/2 = 1.10 < m, inert
    with pytest.raises(SettingsError, match="rho"):
        EntropyTuner(3, rho0=math.log(3))  # nothing could be unknown


@pytest.mark.parametrize("k", [2, 3, 9, 10])
def test_tuner_moves_stay_inside_the_feasible_range(k):
    t = EntropyTuner(k)
    rng = np.random.default_rng(k)
    for epoch in range(300):
        t.step(float(rng.uniform(0.9, 1.1)), epoch)  # noisy, never really improving
        assert 0.1 * math.log(k) - 1e-9 <= t.rho <= 0.9 * math.log(k) + 1e-9
        assert 0 <= t.m <= margin_limit(t.rho, k) + 1e-9
    assert len(t.history) > 10 and len({round(h["rho"], 6) for h in t.history}) > 1


def test_tuner_state_machine_on_scripted_losses():
    t = EntropyTuner(n_classes=10, m0=0.3)
    s = math.log(10) / math.log(10)  # steps are the paper's at ten classes
    rho0 = math.log(10) / 2
    actions = {}
    for epoch in range(40):
        a = t.step(1.0, epoch)  # the loss never improves after the first epoch of each setting
        if a:
            actions[epoch] = a
    # change 0 needs more than 5 epochs without improvement, the others more than 2
    assert list(actions) == [5, 8, 11, 14, 20, 23, 26, 29, 35, 38]
    assert actions[5] == f"rho -> {rho0 + 0.3 * s:.3f}"
    assert actions[8] == "m -> 0.600"
    assert actions[11] == f"m -> {min(1.2, margin_limit(rho0 + 0.3, 10)):.3f} (doubled)"
    assert actions[14] == "step -> -0.300"
    assert actions[20] == f"rho -> {rho0:.3f}"  # + 0.3 then - 0.3
    assert [h["epoch"] for h in t.history] == list(actions)


def test_tuner_compares_epochs_under_the_same_settings():
    """A change of rho or m shifts the loss by itself: the tuner must not read that jump as a stall."""
    t = EntropyTuner(n_classes=3)
    for epoch in range(6):
        t.step(1.0, epoch)
    assert len(t.history) == 1  # rho changed after epoch 5
    # the change raised the loss to 2.0, after which training improves it every epoch
    for epoch, loss in enumerate([2.0, 1.9, 1.8, 1.7, 1.6, 1.5], start=6):
        assert t.step(loss, epoch) is None
    assert len(t.history) == 1


def test_tuner_holds_while_the_loss_improves_and_round_trips():
    t = EntropyTuner(n_classes=10)
    for epoch in range(30):
        assert t.step(10.0 - epoch, epoch) is None
    assert t.rho == pytest.approx(math.log(10) / 2) and not t.history
    state = t.state_dict()
    t2 = EntropyTuner(n_classes=10)
    t2.load_state_dict(state)
    assert t2.state_dict() == state


def test_memory_bank_overwrites_slots_and_excludes_the_current_batch():
    bank = MemoryBank(size=6, feature_dim=3, n_classes=2)
    assert bank.entries()[0].shape == (0, 3)
    bank.update(torch.tensor([1, 4]), torch.tensor([[3.0, 0, 4], [1, 1, 1]]), torch.tensor([[0.2, 0.8], [0.6, 0.4]]),
                torch.tensor([1, -1]))
    feats, probs, labels, idx = bank.entries()
    assert idx.tolist() == [1, 4] and labels.tolist() == [1, -1]
    assert torch.allclose(feats[0], torch.tensor([0.6, 0.0, 0.8]))
    assert bank.entries(exclude=torch.tensor([4]))[3].tolist() == [1]
    assert bank.entries(target_only=True)[3].tolist() == [4]
    bank.update(torch.tensor([1]), torch.tensor([[0.0, 2, 0]]), torch.tensor([[0.9, 0.1]]))
    feats, probs, labels, idx = bank.entries()
    assert torch.allclose(feats[0], torch.tensor([0.0, 1.0, 0.0])) and labels.tolist() == [-1, -1]
    assert torch.allclose(probs[0], torch.tensor([0.9, 0.1]))
