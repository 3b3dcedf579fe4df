"""Vote-count likelihoods of a Galaxy Zoo question (Walmsley et al. 2020, 2022).

Each galaxy ``i`` of a question with answers ``k`` has vote counts ``c_ik``
summing to ``N_i`` volunteers, which differs from galaxy to galaxy (and is 0
for galaxies nobody classified: those carry no information and are left out
of the mean, never counted as zero loss).

* :func:`multinomial_nll`: ``-log Multinomial(c_i | N_i, p_i)`` with the
  predicted answer probabilities ``p_i`` (the ET-VAE paper's choice).
* :func:`dirichlet_multinomial_nll`: ``-log DirMult(c_i | N_i, alpha_i)`` with
  predicted concentrations ``alpha_i`` (Zoobot's choice): it also models the
  spread of volunteer opinion beyond multinomial sampling.

Both include the combinatorial terms, so they equal ``scipy.stats``'
``-logpmf``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from labelsky.errors import SettingsError
from labelsky.methods.semisup.config import LIKELIHOODS

__all__ = ["multinomial_nll", "dirichlet_multinomial_nll", "vote_loss", "predicted_fractions", "LIKELIHOODS"]



def _valid(counts: torch.Tensor) -> torch.Tensor:
    return (counts >= 0).all(dim=1) & (counts.sum(dim=1) > 0)


def multinomial_nll(logits: torch.Tensor, counts: torch.Tensor, reduce: bool = True) -> torch.Tensor:
    """``-log Multinomial(counts | N, softmax(logits))`` per galaxy (mean over galaxies with votes)."""
    counts = counts.to(logits.dtype)
    n = counts.sum(1)
    logp = F.log_softmax(logits, dim=1)
    ll = torch.lgamma(n + 1) - torch.lgamma(counts + 1).sum(1) + (counts * logp).sum(1)
    return _reduce(-ll, counts, reduce)


def dirichlet_multinomial_nll(log_alpha: torch.Tensor, counts: torch.Tensor, reduce: bool = True) -> torch.Tensor:
    """``-log DirichletMultinomial(counts | N, alpha)``, ``alpha = softplus(log_alpha) + 1e-3`` per answer."""
    counts = counts.to(log_alpha.dtype)
    alpha = F.softplus(log_alpha) + 1e-3
    n, a0 = counts.sum(1), alpha.sum(1)
    ll = (torch.lgamma(n + 1) + torch.lgamma(a0) - torch.lgamma(n + a0)
          + (torch.lgamma(counts + alpha) - torch.lgamma(alpha) - torch.lgamma(counts + 1)).sum(1))
    return _reduce(-ll, counts, reduce)


def _reduce(nll: torch.Tensor, counts: torch.Tensor, reduce: bool) -> torch.Tensor:
    ok = _valid(counts)
    if not reduce:
        return torch.where(ok, nll, torch.zeros_like(nll))
    return nll[ok].mean() if ok.any() else nll.sum() * 0.0


def vote_loss(outputs: torch.Tensor, counts: torch.Tensor, likelihood: str = "multinomial") -> torch.Tensor:
    if likelihood == "multinomial":
        return multinomial_nll(outputs, counts)
    if likelihood == "dirichlet_multinomial":
        return dirichlet_multinomial_nll(outputs, counts)
    raise SettingsError(f"unknown likelihood {likelihood!r}; expected one of {LIKELIHOODS}")


def predicted_fractions(outputs: torch.Tensor, likelihood: str = "multinomial") -> torch.Tensor:
    """Expected vote fractions: softmax probabilities, or alpha / sum(alpha)."""
    if likelihood == "multinomial":
        return F.softmax(outputs, dim=1)
    alpha = F.softplus(outputs) + 1e-3
    return alpha / alpha.sum(1, keepdim=True)
