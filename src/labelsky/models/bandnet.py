"""Networks of optical-wavelength-guided self-supervision (Liang et al., the band-identity pretext).

* :class:`BandExtractor`: a timm backbone on ONE band image (ResNet-18 by
  default), then a 1x1 convolution + BatchNorm + ReLU before global average
  pooling, then a ``feature_dim``-wide fully connected layer (512 in the
  paper): one feature vector per single-band image.
* :class:`PretextClassifier`: extractor + a linear layer over the pretext
  classes (which band; or which permutation of colour channels, with a
  multi-channel extractor).
* :class:`RichnessNet` (the paper's Table S2): every band of a cluster goes
  through the *shared* extractor; the ``n_bands`` feature vectors are stacked
  into a ``feature_dim x n_bands`` map with one channel; Conv 1x1 -> Conv 3x3
  (16) -> Conv 3x3 (64), each with BatchNorm + ReLU (the 3x3 convolutions are
  padded along the band axis only, so 1-5 bands all work, and shrink the
  feature axis by 2 each, 512 -> 510 -> 508 as in Table S2); flatten; FC
  ``fc_widths`` (1024, 512) with ReLU; FC 1.
"""

from __future__ import annotations

import numbers
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from labelsky.errors import SettingsError
from labelsky.models.backbones import create_backbone

__all__ = ["BandExtractor", "PretextClassifier", "RichnessNet"]


class BandExtractor(nn.Module):
    def __init__(self, backbone: str = "resnet18", in_chans: int = 1, feature_dim: int = 512,
                 weights: str | None = None):
        super().__init__()
        if isinstance(feature_dim, bool) or not isinstance(feature_dim, numbers.Integral) or feature_dim < 1:
            raise SettingsError(f"feature dimension (--feature-dim) = {feature_dim!r}; expected a width >= 1")
        self.backbone, self.weights_info = create_backbone(backbone, in_chans, weights)
        c = self.backbone.num_features
        self.reduce = nn.Sequential(nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True))
        self.fc = nn.Linear(c, feature_dim)
        self.feature_dim = feature_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.reduce(self.backbone.forward_features(x))
        return self.fc(F.adaptive_avg_pool2d(h, 1).flatten(1))


class PretextClassifier(nn.Module):
    def __init__(self, n_classes: int, backbone: str = "resnet18", in_chans: int = 1, feature_dim: int = 512,
                 weights: str | None = None):
        super().__init__()
        self.extractor = BandExtractor(backbone, in_chans, feature_dim, weights)
        self.head = nn.Linear(feature_dim, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.relu(self.extractor(x)))


class RichnessNet(nn.Module):
    """Richness from the band images of a cluster [N, bands, H, W] through a shared :class:`BandExtractor`."""

    def __init__(self, extractor: BandExtractor, n_bands: int, fc_widths: Sequence[int] = (1024, 512),
                 freeze_extractor: bool = False):
        super().__init__()
        self.extractor, self.n_bands = extractor, int(n_bands)
        self.freeze_extractor = freeze_extractor
        if freeze_extractor:
            for p in self.extractor.parameters():
                p.requires_grad_(False)
        d = extractor.feature_dim
        if d < 5:
            raise SettingsError(f"feature dimension (--feature-dim) {d} is too small for the two 3x3 convolutions of "
                                f"the richness head; expected >= 5")
        bad = [w for w in fc_widths if isinstance(w, bool) or not isinstance(w, numbers.Integral) or w < 1]
        if bad:
            raise SettingsError(f"fully connected widths (--fc-widths) {list(fc_widths)}: {bad} must be widths >= 1")
        self.convs = nn.Sequential(
            nn.Conv2d(1, 1, 1), nn.BatchNorm2d(1), nn.ReLU(inplace=True),
            nn.Conv2d(1, 16, 3, padding=(0, 1)), nn.BatchNorm2d(16), nn.ReLU(inplace=True),
            nn.Conv2d(16, 64, 3, padding=(0, 1)), nn.BatchNorm2d(64), nn.ReLU(inplace=True))
        layers, width = [], 64 * (d - 4) * self.n_bands
        for w in fc_widths:
            layers += [nn.Linear(width, w), nn.ReLU(inplace=True)]
            width = w
        self.fc = nn.Sequential(*layers, nn.Linear(width, 1))
        # the head predicts the standardised target; these convert back (set from the training targets)
        self.register_buffer("target_mean", torch.zeros(()))
        self.register_buffer("target_std", torch.ones(()))

    def band_features(self, x: torch.Tensor) -> torch.Tensor:
        """[N, feature_dim, bands]: the shared extractor on every band image."""
        n, b = x.shape[:2]
        if b != self.n_bands:
            raise ValueError(f"expected {self.n_bands} bands, got {b}")
        f = self.extractor(x.reshape(n * b, 1, *x.shape[2:]))
        return f.view(n, b, -1).transpose(1, 2)

    def head(self, feats: torch.Tensor) -> torch.Tensor:
        """Regression head on stacked band features [N, feature_dim, bands] -> [N]."""
        return self.fc(self.convs(feats[:, None]).flatten(1))[:, 0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.freeze_extractor:
            self.extractor.eval()
            with torch.no_grad():
                feats = self.band_features(x)
        else:
            feats = self.band_features(x)
        return self.head(feats)
