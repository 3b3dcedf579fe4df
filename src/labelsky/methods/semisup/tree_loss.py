"""The vote likelihood of a whole Galaxy Zoo decision tree (Walmsley et al. 2022, MNRAS 509, 3966, sec. 4.2).

Each question ``q`` of the tree (:mod:`labelsky.data.vote_trees`) has its own
answers ``k`` and its own number of volunteers ``N_iq``: only those who gave a
parent answer were asked it. The model predicts, per galaxy, one set of
outputs per question (a Dirichlet concentration per answer, or answer logits),
and the questions are treated as independent given the image::

    -log p(c_i | x_i) = - sum_q log DirMult(c_iq | N_iq, alpha_iq(x_i))

A question nobody was asked (``N_iq = 0``) contributes exactly 0, since the
likelihood of no votes is 1, so the tree needs no separate mask beyond
counts that are missing (-1, e.g. a question a data release did not ask),
which are set to contribute 0 as well. The loss is the mean over galaxies
with at least one vote. The per-question term is
:func:`labelsky.methods.semisup.losses.dirichlet_multinomial_nll` (or the
multinomial, the ET-VAE paper's choice for one question).
"""

from __future__ import annotations

import torch

from labelsky.methods.semisup.losses import dirichlet_multinomial_nll, multinomial_nll, predicted_fractions

__all__ = ["tree_vote_nll", "tree_fractions"]


def tree_vote_nll(outputs: torch.Tensor, counts: torch.Tensor, slices, likelihood: str = "dirichlet_multinomial",
                  reduce: bool = True) -> torch.Tensor:
    """The summed per-question vote NLL of a tree; ``outputs`` and ``counts`` [n, A] in the tree's column order,
    ``slices`` the columns of each question. Per galaxy with ``reduce=False``."""
    nll = multinomial_nll if likelihood == "multinomial" else dirichlet_multinomial_nll
    total = outputs.new_zeros(len(outputs))
    voted = torch.zeros(len(outputs), dtype=torch.bool, device=outputs.device)
    for s in slices:
        c = counts[:, s]
        ok = (c >= 0).all(1) & (c.sum(1) > 0)
        total = total + nll(outputs[:, s], c.clamp(min=0), reduce=False) * ok
        voted |= ok
    if not reduce:
        return total
    return total[voted].mean() if voted.any() else total.sum() * 0.0


def tree_fractions(outputs: torch.Tensor, slices, likelihood: str = "dirichlet_multinomial") -> torch.Tensor:
    """Expected answer fractions of every question (each question's summing to 1), [n, A]."""
    return torch.cat([predicted_fractions(outputs[:, s], likelihood) for s in slices], 1)
