"""Domain-specific batch normalisation (Chang et al. 2019), as used by DeepAstroUDA.

:class:`DomainBatchNorm2d` keeps one set of affine parameters and running
statistics per domain and normalises a batch with the set of its domain.
:func:`convert_to_domain_bn` swaps every ``BatchNorm2d`` of a model (a timm
backbone, say) for one, copying the original weights into every domain;
:func:`set_domain` selects the domain of the next forward passes (the
training step sets it for each of the source and target batches, evaluation
sets the domain being evaluated). The alternative of DANCE, one shared batch
norm with separate forward passes for source and target batches, needs no
conversion: the model is simply called once per domain.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager

import torch
from torch import nn

__all__ = ["DomainBatchNorm2d", "convert_to_domain_bn", "set_domain", "domain"]


class DomainBatchNorm2d(nn.Module):
    """``n_domains`` independent ``BatchNorm2d``; ``self.domain`` picks one."""

    def __init__(self, bn: nn.BatchNorm2d, n_domains: int = 2):
        super().__init__()
        self.bns = nn.ModuleList([copy.deepcopy(bn) for _ in range(n_domains)])
        self.domain = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bns[self.domain](x)


def convert_to_domain_bn(model: nn.Module, n_domains: int = 2) -> nn.Module:
    """Replace every ``BatchNorm2d`` (including subclasses such as timm's ``BatchNormAct2d``) in place."""
    for name, child in list(model.named_children()):
        if isinstance(child, nn.BatchNorm2d):
            setattr(model, name, DomainBatchNorm2d(child, n_domains))
        else:
            convert_to_domain_bn(child, n_domains)
    return model


def set_domain(model: nn.Module, d: int) -> None:
    """Route the following forward passes of ``model`` through the batch norms of domain ``d``."""
    for m in model.modules():
        if isinstance(m, DomainBatchNorm2d):
            if not 0 <= d < len(m.bns):
                raise ValueError(f"domain {d} out of range: the model has {len(m.bns)} domains")
            m.domain = d


@contextmanager
def domain(model: nn.Module, d: int):
    """``with domain(model, 1): model(x)``; the previous domain is restored afterwards."""
    previous = next((m.domain for m in model.modules() if isinstance(m, DomainBatchNorm2d)), 0)
    set_domain(model, d)
    try:
        yield model
    finally:
        set_domain(model, previous)
