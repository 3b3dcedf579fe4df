"""Losses of DeepAstroUDA (Ciprijanovic et al. 2023) and DANCE (Saito et al. 2020).

Total DeepAstroUDA objective (paper eq. 5): ``L = L_CE + lambda (L_AC + L_ES)``,
``lambda = 0.005``.

* :func:`weighted_cross_entropy` (eq. 4): cross-entropy on labelled source
  samples with class weights ``w_k = N / (K n_k)`` (:func:`class_weights`),
  normalised by the summed weights of the batch (PyTorch's weighted mean; the
  paper's garbled equation divides by the sum of the weights too).
* :func:`adaptive_clustering_loss` (eq. 1): binary cross-entropy between
  pairwise similarity labels ``s_ij`` and similarity scores
  ``s^_ij = p_i . p_j`` of the current target batch ``j`` against the memory
  bank ``i`` (every source and target sample seen so far).
  ``s_ij`` for a target-target pair: 1 when the top-k classes of ``p_i`` and
  ``p_j`` come in the same order (rank statistics, Han et al. 2020); for a
  source bank entry with label ``y_i``: 1 when ``argmax p_j = y_i`` (the paper
  says source pairs use "their class labels"; this is the choice made here).
* :func:`entropy_separation_loss` (eqs. 2-3): ``-|H(p_i) - rho|`` for target
  samples whose entropy is more than ``m`` away from the boundary ``rho``,
  0 otherwise, averaged over the batch: confident samples are made more
  confident, uncertain ones (unknown classes) less.
* :func:`neighbourhood_clustering_loss` (DANCE): entropy of the soft
  assignment of each target feature to its neighbours in the bank and to the
  source class prototypes, temperature 0.05 (DANCE's value).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["class_weights", "weighted_cross_entropy", "rank_similarity_labels", "adaptive_clustering_loss",
           "entropy", "entropy_separation_loss", "neighbourhood_clustering_loss", "MemoryBank"]

_EPS = 1e-7


def class_weights(labels, n_classes: int) -> torch.Tensor:
    """``w_k = N / (K n_k)`` over the source training labels (0 for classes without samples), as a tensor
    (:func:`labelsky.training.class_balance_weights`)."""
    from labelsky.training import class_balance_weights

    return torch.tensor(class_balance_weights(labels, n_classes), dtype=torch.float32)


def weighted_cross_entropy(logits: torch.Tensor, y: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """Eq. 4: ``sum_i w_{y_i} (-log p_{i, y_i}) / sum_i w_{y_i}``."""
    return F.cross_entropy(logits, y, weight=weights)


def entropy(p: torch.Tensor) -> torch.Tensor:
    """Shannon entropy (nats) of each row of probabilities."""
    return -(p * torch.log(p.clamp_min(_EPS))).sum(dim=1)


def rank_similarity_labels(p_bank: torch.Tensor, p_batch: torch.Tensor, k: int,
                           bank_labels: torch.Tensor | None = None) -> torch.Tensor:
    """Pairwise similarity labels ``s_ij`` [n_bank, n_batch] (float 0/1).

    Target bank rows (label < 0 or no labels): 1 when the ordered top-``k``
    class indices of both probability vectors are identical. Source bank rows
    (label >= 0): 1 when the batch sample's top class is the bank label.
    """
    k = min(k, p_batch.shape[1])
    top_bank = p_bank.argsort(dim=1, descending=True)[:, :k]
    top_batch = p_batch.argsort(dim=1, descending=True)[:, :k]
    s = (top_bank[:, None, :] == top_batch[None, :, :]).all(dim=2).float()
    if bank_labels is not None:
        src = bank_labels >= 0
        if src.any():
            s[src] = (bank_labels[src][:, None] == top_batch[None, :, 0]).float()
    return s


def adaptive_clustering_loss(p_batch: torch.Tensor, p_bank: torch.Tensor, k: int,
                             bank_labels: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. 1: BCE of ``s^_ij = p_i . p_j`` against :func:`rank_similarity_labels`.

    ``p_bank`` [n_bank, K] are stored (detached) probabilities of the memory
    bank; ``p_batch`` [n, K] the current target probabilities (gradients
    flow through them). Averaged over all pairs.
    """
    with torch.no_grad():
        s = rank_similarity_labels(p_bank, p_batch, k, bank_labels)
    s_hat = (p_bank.detach() @ p_batch.T).clamp(_EPS, 1 - _EPS)
    return F.binary_cross_entropy(s_hat, s)


def entropy_separation_loss(p: torch.Tensor, rho: float, m: float) -> torch.Tensor:
    """Eqs. 2-3: ``mean_i [-|H(p_i) - rho| if |H(p_i) - rho| > m else 0]``."""
    d = (entropy(p) - rho).abs()
    return -(d * (d > m).float()).mean()


def neighbourhood_clustering_loss(features: torch.Tensor, bank_features: torch.Tensor,
                                  prototypes: torch.Tensor, temperature: float = 0.05,
                                  self_index: torch.Tensor | None = None) -> torch.Tensor:
    """DANCE's neighbourhood clustering: entropy of softmax(f . [bank, prototypes] / T).

    ``features`` are the current target features, L2-normalised here;
    ``bank_features`` the stored (normalised) features; ``prototypes`` the
    classifier's weight vectors (normalised here). ``self_index`` masks each
    sample's own bank slot.
    """
    f = F.normalize(features, dim=1)
    keys = torch.cat([bank_features.detach(), F.normalize(prototypes, dim=1)], 0)
    sim = f @ keys.T / temperature
    if self_index is not None:
        sim[torch.arange(len(f)), self_index] = -math.inf
    q = F.softmax(sim, dim=1)
    return -(q * torch.log(q.clamp_min(_EPS))).sum(dim=1).mean()


class MemoryBank:
    """One slot per training sample (source and target): normalised features, probabilities, label.

    Slots are overwritten when their sample is seen again (DANCE's memory).
    Target samples have label -1. Slots never filled are excluded.
    """

    def __init__(self, size: int, feature_dim: int, n_classes: int, device="cpu"):
        self.features = torch.zeros(size, feature_dim, device=device)
        self.probs = torch.full((size, n_classes), 1.0 / n_classes, device=device)
        self.labels = torch.full((size,), -1, dtype=torch.long, device=device)
        self.filled = torch.zeros(size, dtype=torch.bool, device=device)

    @torch.no_grad()
    def update(self, index: torch.Tensor, features: torch.Tensor, probs: torch.Tensor,
               labels: torch.Tensor | None = None) -> None:
        self.features[index] = F.normalize(features.detach().float(), dim=1)
        self.probs[index] = probs.detach().float()
        self.labels[index] = labels if labels is not None else -1
        self.filled[index] = True

    def to(self, device) -> "MemoryBank":
        for name in ("features", "probs", "labels", "filled"):
            setattr(self, name, getattr(self, name).to(device))
        return self

    def entries(self):
        """(features, probs, labels, slot indices) of the filled slots."""
        idx = self.filled.nonzero(as_tuple=True)[0]
        return self.features[idx], self.probs[idx], self.labels[idx], idx
