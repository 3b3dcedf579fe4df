"""Losses of DeepAstroUDA (Ćiprijanović et al. 2023) and DANCE (Saito et al. 2020).

Total DeepAstroUDA objective (paper eq. 5): ``L = L_CE + lambda (L_AC + L_ES)``,
``lambda = 0.005``; labelsky weighs L_ES separately (:mod:`.module`).

* :func:`weighted_cross_entropy` (eq. 4): cross-entropy of labelled source
  samples with class weights ``w_k = N / (K n_k)`` (:func:`class_weights`),
  the weighted mean over the batch (``sum_i w_{y_i} l_i / sum_i w_{y_i}``).
  Eq. 4 as printed divides by ``sum_k w_k`` instead, which for balanced
  classes makes the term ``K`` times smaller; labelsky keeps the weighted mean,
  so that every method (DANCE and source-only included) trains its classifier
  with the same gradient scale, and sets the adaptation term's scale below.
* :func:`adaptive_clustering_loss` (eq. 1): binary cross-entropy between the
  pairwise similarity labels ``s_ij`` and the similarity scores
  ``s^_ij = p_i . p_j`` of every query ``j`` of the current batch against every
  reference ``i`` of the memory bank (earlier batches, source *and* target: "current
  target samples are pushed towards the source and target samples with which they
  share the most similar features"). Eq. 1 *sums* over the pairs; labelsky sums over
  the bank and averages over the queries, so the term does not grow with the batch
  size. With the paper's ``lambda = 0.005`` this gives the adaptation term a gradient
  comparable with the classification term (``benchmarks/results/deepastrouda_lsst*.md``
  logs the ratio per epoch); a mean over the pairs divides it by the bank size, i.e.
  makes it inert. An optional 0/1 ``mask`` leaves pairs out (a pair rule that
  cannot tell).
* :func:`pair_labels`: ``s_ij`` and the mask of one pair rule (:data:`PAIR_RULES`).
  A pair of two labelled samples (source with source) is similar when the labels
  agree (paper section 2.2). For a pair with an unlabelled (target) query:
  ``ordered``, the paper's rule: the top-``k`` elements of the two probability
  vectors come in the same order (rank statistics of Han et al. 2020; k = 3 for
  three classes, 7 for ten); ``unordered``: the same top-``k`` set; ``features``:
  the same top-``k`` set of feature dimensions (Han et al.'s statistics on the
  features); ``confident``: the same class, counted only where both members are
  confident (entropy below ``gate``, the open-set boundary; a source row is its label), the other pairs
  left out (mask 0), so an uncertain galaxy (an unknown) is neither pulled to a
  class nor pushed away from one. :func:`rank_similarity_labels` is the rank
  statistic alone.
* :func:`entropy_separation_loss` (eqs. 2-3): ``-|H(p_i) - rho|`` for target
  samples whose entropy is more than ``m`` away from the boundary ``rho``,
  0 otherwise, averaged over the batch: confident samples are made more
  confident, uncertain ones (unknown classes) less.
* :func:`neighbourhood_clustering_loss` (DANCE eq. 2-3): entropy of the softmax
  over the similarities of each target feature to the class prototypes, to
  the target memory bank (the current batch's slots masked) and to the other
  samples of the batch (diagonal masked), temperature 0.05.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["class_weights", "weighted_cross_entropy", "rank_similarity_labels", "pair_labels", "PAIR_RULES",
           "adaptive_clustering_loss",
           "entropy", "entropy_separation_loss", "neighbourhood_clustering_loss", "MemoryBank"]

from labelsky.methods.uda.config import PAIR_RULES

_EPS = 1e-7


def class_weights(labels, n_classes: int) -> torch.Tensor:
    """``w_k = N / (K n_k)`` over the source training labels (0 for classes without samples), as a tensor
    (:func:`labelsky.methods.training.class_balance_weights`)."""
    from labelsky.methods.training import class_balance_weights

    return torch.tensor(class_balance_weights(labels, n_classes), dtype=torch.float32)


def weighted_cross_entropy(logits: torch.Tensor, y: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """``sum_i w_{y_i} (-log p_{i, y_i}) / sum_i w_{y_i}`` (eq. 4's class weights, weighted batch mean)."""
    return F.cross_entropy(logits, y, weight=weights)


def entropy(p: torch.Tensor) -> torch.Tensor:
    """Shannon entropy (nats) of each row of probabilities."""
    return -(p * torch.log(p.clamp_min(_EPS))).sum(dim=1)


def rank_similarity_labels(f_bank: torch.Tensor, f_batch: torch.Tensor, k: int,
                           bank_labels: torch.Tensor | None = None, batch_labels: torch.Tensor | None = None,
                           ordered: bool = False) -> torch.Tensor:
    """Pairwise similarity labels ``s_ij`` [n_bank, n_batch] (float 0/1).

    A pair whose two members both carry a label (>= 0) is similar when the
    labels agree. Any other pair is similar when the top-``k`` dimensions of
    ``f_bank[i]`` and ``f_batch[j]`` are the same set (``ordered``: the same
    sequence).
    """
    k = min(k, f_batch.shape[1])
    top_bank = f_bank.topk(k, dim=1).indices
    top_batch = f_batch.topk(k, dim=1).indices
    if not ordered:
        top_bank, top_batch = top_bank.sort(dim=1).values, top_batch.sort(dim=1).values
    s = (top_bank[:, None, :] == top_batch[None, :, :]).all(dim=2).float()
    if bank_labels is not None and batch_labels is not None:
        both = (bank_labels[:, None] >= 0) & (batch_labels[None, :] >= 0)
        s = torch.where(both, (bank_labels[:, None] == batch_labels[None, :]).float(), s)
    return s


def pair_labels(rule: str, *, bank_probs: torch.Tensor, query_probs: torch.Tensor, k: int,
                bank_features: torch.Tensor | None = None, query_features: torch.Tensor | None = None,
                bank_labels: torch.Tensor | None = None, query_labels: torch.Tensor | None = None,
                gate: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Similarity labels ``s`` [n_bank, n_query] and the mask of the pairs counted, by ``rule`` (:data:`PAIR_RULES`).

    Rows and queries with a label >= 0 (source samples) are compared by label
    with each other. ``k`` is the rank statistics' top-k (ranks of the
    probabilities, or of the features for ``features``); ``gate`` the entropy
    (nats) below which ``confident`` counts a sample as sure of its class (the
    open-set boundary ``rho``: the galaxies the model calls known).
    """
    if rule not in PAIR_RULES:
        raise ValueError(f"unknown pair rule {rule!r}; expected one of {PAIR_RULES}")
    n_bank, n_query = len(bank_probs), len(query_probs)
    none = torch.full((n_bank,), -1, dtype=torch.long, device=bank_probs.device)
    bank_labels = none if bank_labels is None else bank_labels
    query_labels = torch.full((n_query,), -1, dtype=torch.long, device=query_probs.device) \
        if query_labels is None else query_labels
    mask = torch.ones(n_bank, n_query, device=query_probs.device)
    if rule == "confident":
        if gate is None:
            raise ValueError("the confident pair rule needs a gate (an entropy in nats)")
        cls_b = torch.where(bank_labels >= 0, bank_labels, bank_probs.argmax(1))
        cls_q = torch.where(query_labels >= 0, query_labels, query_probs.argmax(1))
        sure_b = (bank_labels >= 0) | (entropy(bank_probs) < gate)
        sure_q = (query_labels >= 0) | (entropy(query_probs) < gate)
        s = (cls_b[:, None] == cls_q[None, :]).float()
        mask = (sure_b[:, None] & sure_q[None, :]).float()
    else:
        on_features = rule == "features"
        fb, fq = (bank_features, query_features) if on_features else (bank_probs, query_probs)
        if fb is None or fq is None:
            raise ValueError("the features pair rule needs the bank's and the queries' features")
        s = rank_similarity_labels(fb, fq, min(k, fq.shape[1]), ordered=rule == "ordered")
    both = (bank_labels[:, None] >= 0) & (query_labels[None, :] >= 0)
    s = torch.where(both, (bank_labels[:, None] == query_labels[None, :]).float(), s)
    mask = torch.where(both, torch.ones_like(mask), mask)
    return s, mask


def adaptive_clustering_loss(p_batch: torch.Tensor, p_bank: torch.Tensor, s: torch.Tensor,
                             balanced: bool = False, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. 1: ``-sum_i [s_ij log s^_ij + (1 - s_ij) log(1 - s^_ij)]`` with ``s^_ij = p_i . p_j``,
    summed over the bank rows ``i`` and averaged over the batch queries ``j``.

    ``p_bank`` [n_bank, K] are stored (detached) probabilities; ``p_batch``
    [n, K] the current ones (gradients flow through them); ``s`` [n_bank, n]
    the similarity labels (:func:`pair_labels`); ``mask`` [n_bank, n] (0/1)
    leaves pairs out. ``balanced`` weights the similar and the dissimilar
    pairs of each query so that each group carries half of the query's bank sum.
    """
    if not len(p_bank):
        return p_batch.sum() * 0.0
    s_hat = (p_bank.detach() @ p_batch.T).clamp(_EPS, 1 - _EPS)
    bce = F.binary_cross_entropy(s_hat, s, reduction="none")
    if mask is not None:
        bce = bce * mask
    if balanced:
        counted = mask if mask is not None else torch.ones_like(s)
        n = counted.sum(dim=0, keepdim=True)
        n_pos = (s * counted).sum(dim=0, keepdim=True)
        w = torch.where(s > 0, n / (2 * n_pos.clamp_min(1)), n / (2 * (n - n_pos).clamp_min(1)))
        bce = bce * w
    return bce.sum(dim=0).mean()


def entropy_separation_loss(p: torch.Tensor, rho: float, m: float) -> torch.Tensor:
    """Eqs. 2-3: ``mean_i [-|H(p_i) - rho| if |H(p_i) - rho| > m else 0]``."""
    d = (entropy(p) - rho).abs()
    return -(d * (d > m).float()).mean()


def neighbourhood_clustering_loss(features: torch.Tensor, bank_features: torch.Tensor,
                                  prototypes: torch.Tensor, temperature: float = 0.05) -> torch.Tensor:
    """DANCE's neighbourhood clustering: mean entropy of softmax([prototypes, bank, batch] . f / T).

    ``features`` [n, d] are the current target features (L2-normalised here);
    ``bank_features`` the stored normalised target features of *other*
    samples (the caller leaves out the current batch's slots); ``prototypes``
    the classifier's weight vectors (normalised here). The in-batch
    similarities exclude each sample's similarity with itself.
    """
    f = F.normalize(features, dim=1)
    to_protos = f @ F.normalize(prototypes, dim=1).T
    to_bank = f @ bank_features.detach().T
    in_batch = (f @ f.T).masked_fill(torch.eye(len(f), dtype=torch.bool, device=f.device), -math.inf)
    q = F.softmax(torch.cat([to_protos, to_bank, in_batch], dim=1) / temperature, dim=1)
    return -(q * torch.log(q.clamp_min(_EPS))).sum(dim=1).mean()


class MemoryBank:
    """One slot per training sample (source and target): features, probabilities, label.

    Slots are overwritten when their sample is seen again (DANCE's memory with
    momentum 0). Target samples have label -1. Slots never filled are excluded.
    Features are stored as given (:meth:`normalised` for cosine similarities).
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

    def entries(self, exclude: torch.Tensor | None = None, target_only: bool = False, labelled_only: bool = False):
        """(features, probs, labels, slot indices) of the filled slots, without the slots in ``exclude``
        (the current batch: the bank then holds earlier batches only); with ``target_only``, only the
        unlabelled (target) slots; with ``labelled_only``, only the labelled (source) ones."""
        keep = self.filled.clone()
        if exclude is not None and len(exclude):
            keep[exclude] = False
        if target_only:
            keep &= self.labels < 0
        if labelled_only:
            keep &= self.labels >= 0
        idx = keep.nonzero(as_tuple=True)[0]
        return self.features[idx], self.probs[idx], self.labels[idx], idx
