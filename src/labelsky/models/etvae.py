"""Equivariant-Transformer VAE (ET-VAE) with a vote classifier on the latent space.

Encoder: ET sequence (default: translation, then rotation + scale) that
canonicalises the pose -> CNN -> Gaussian latent ``q(z|x) = N(mu, diag sigma^2)``.
Decoder: ``z`` -> CNN -> the *canonical* view, to which the inverse of the
predicted pose is applied (``grid_sample``), so that the reconstruction is in
the input's pose and the latent is free of it.

Pixel likelihood: images are asinh-stretched fluxes (:mod:`labelsky.data.transforms`),
whose noise is close to Gaussian with a constant width per band (the stretch
makes sky noise about ``1/k`` and compresses bright cores), so ``p(x|z)`` is a
Gaussian per pixel with a learned standard deviation per band.

Classifier: two layers on the latent mean (or, ``head_on="features"``, on the
encoder features before the latent) giving the answer probabilities (or
Dirichlet concentrations) of a Galaxy Zoo question; it is trained *through*
the encoder.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from labelsky.errors import SettingsError
from labelsky.models.et import ETSequence, invert, pose_matrix, warp

__all__ = ["ETVAE", "gaussian_nll", "kl_normal"]


def gaussian_nll(x: torch.Tensor, mean: torch.Tensor, log_sigma: torch.Tensor) -> torch.Tensor:
    """-log N(x | mean, sigma^2) summed over pixels and bands, per image; ``log_sigma`` per band [C]."""
    ls = log_sigma.view(1, -1, 1, 1)
    nll = 0.5 * ((x - mean) / torch.exp(ls)) ** 2 + ls + 0.5 * math.log(2 * math.pi)
    return nll.flatten(1).sum(1)


def kl_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, 1)) summed over latent dimensions, per image."""
    return 0.5 * (mu ** 2 + logvar.exp() - 1.0 - logvar).sum(1)


def _conv_block(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.BatchNorm2d(cout), nn.LeakyReLU(0.1))


def _deconv_block(cin, cout):
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1), nn.BatchNorm2d(cout),
                         nn.LeakyReLU(0.1))


class ETVAE(nn.Module):
    """ET-VAE for square images of side ``size`` (a multiple of 8) with ``in_chans`` bands.

    ``et_groups`` = () gives the same VAE without ET layers (the ablation).
    ``n_outputs``: answers of the classified question (3: smooth / featured / artifact).
    """

    def __init__(self, in_chans: int, size: int = 32, latent_dim: int = 100, width: int = 32,
                 et_groups: Sequence[str] = ("translation", "rotation_scale"), et_width: int = 16,
                 n_outputs: int = 3, head_hidden: int = 64, head_on: str = "latent"):
        super().__init__()
        if size < 8 or size % 8:
            raise SettingsError(f"image size (--image-size) must be a multiple of 8 (>= 8) for the ET-VAE, got "
                                f"{size}")
        if latent_dim < 1:
            raise SettingsError(f"latent dimension (--latent-dim) must be >= 1, got {latent_dim}")
        if head_on not in ("latent", "features"):
            raise SettingsError(f"head_on (--head-on) must be 'latent' or 'features', got {head_on!r}")
        self.size, self.latent_dim, self.head_on = size, latent_dim, head_on
        self.et = ETSequence(list(et_groups), in_chans, size=size, width=et_width) if et_groups else None
        self.encoder = nn.Sequential(_conv_block(in_chans, width), _conv_block(width, 2 * width),
                                     _conv_block(2 * width, 4 * width), nn.Flatten())
        feat = 4 * width * (size // 8) ** 2
        self.feature_dim = feat
        self.to_mu, self.to_logvar = nn.Linear(feat, latent_dim), nn.Linear(feat, latent_dim)
        self.from_z = nn.Linear(latent_dim, feat)
        self.decoder = nn.Sequential(_deconv_block(4 * width, 2 * width), _deconv_block(2 * width, width),
                                     nn.ConvTranspose2d(width, in_chans, 4, stride=2, padding=1))
        self.log_sigma = nn.Parameter(torch.full((in_chans,), -1.0))
        self.head = nn.Sequential(nn.Linear(latent_dim if head_on == "latent" else feat, head_hidden), nn.ReLU(),
                                  nn.Linear(head_hidden, n_outputs))
        self._width = width

    def canonicalise(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(canonical image, pose [n, 2, 3] canonical -> input); identity without ET layers."""
        if self.et is None:
            return x, pose_matrix(n=x.shape[0], device=x.device).to(x.dtype)
        return self.et(x)

    def encode(self, x: torch.Tensor) -> dict:
        canon, pose = self.canonicalise(x)
        h = self.encoder(canon)
        return {"canonical": canon, "pose": pose, "features": h, "mu": self.to_mu(h),
                "logvar": self.to_logvar(h).clamp(-10, 10)}

    def decode(self, z: torch.Tensor, pose: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(reconstruction in the input pose, canonical reconstruction)."""
        s = self.size // 8
        canon = self.decoder(self.from_z(z).view(-1, 4 * self._width, s, s))
        if self.et is None:
            return canon, canon
        return warp(canon, invert(pose)), canon

    def classify(self, enc: dict) -> torch.Tensor:
        """Raw outputs of the classifier (logits, or log-concentrations for Dirichlet-multinomial)."""
        return self.head(enc["mu"] if self.head_on == "latent" else enc["features"])

    def elbo(self, x: torch.Tensor, enc: dict | None = None) -> dict:
        """Per-image negative ELBO = reconstruction NLL + KL (one reparameterised sample)."""
        enc = enc or self.encode(x)
        z = enc["mu"] + torch.randn_like(enc["mu"]) * torch.exp(0.5 * enc["logvar"])
        recon, canon = self.decode(z, enc["pose"])
        nll = gaussian_nll(x, recon, self.log_sigma)
        kl = kl_normal(enc["mu"], enc["logvar"])
        return {"loss": nll + kl, "nll": nll, "kl": kl, "recon": recon, "canonical_recon": canon, **enc}
