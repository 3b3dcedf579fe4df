"""Classifier heads and the backbone + head classifier."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

__all__ = ["MLPHead", "Classifier"]


class MLPHead(nn.Module):
    """Dense layers with dropout on pooled backbone features.

    The default is the head of Khan et al. 2019 (their Appendix A): a
    1024-wide fully connected layer with ReLU, then dropout 0.7 "between the
    fully connected layers", then the class layer; the 1024-wide activations
    are the *embedding* used for clustering.
    """

    def __init__(self, in_features: int, n_classes: int, hidden: Sequence[int] = (1024,), dropout: float = 0.7):
        super().__init__()
        layers: list[nn.Module] = []
        width = in_features
        for i, h in enumerate(hidden):
            if i:  # dropout between fully connected layers
                layers.append(nn.Dropout(dropout))
            layers += [nn.Linear(width, h), nn.ReLU(inplace=True)]
            width = h
        self.body = nn.Sequential(*layers)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(width, n_classes)
        self.embed_dim = width

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        return self.body(features)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.out(self.drop(self.embed(features)))


class Classifier(nn.Module):
    """A timm backbone followed by an :class:`MLPHead`.

    ``forward`` gives logits; :meth:`embed` gives the penultimate-layer vector.
    """

    def __init__(self, backbone: nn.Module, n_classes: int, hidden: Sequence[int] = (1024,), dropout: float = 0.7):
        super().__init__()
        self.backbone = backbone
        self.head = MLPHead(backbone.num_features, n_classes, hidden, dropout)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.head.embed(self.backbone(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))
