"""Equivariant Transformer layers (Tai, Bailis & Valiant 2019, "Equivariant Transformer Networks").

An ET layer predicts the pose of an image for one transformation group and undoes it:

1. resample the image into *canonical coordinates* of the group, in which the
   group acts as a translation: Cartesian (x, y) for translation, polar
   (r, theta) for rotation, log-polar (log r, theta) for rotation + scale;
2. a CNN that commutes with translations in those coordinates (convolutions,
   circular along theta) makes a heat map over the translated axes; its
   soft-argmax is the pose (theta is a circular mean), so shifting the input
   along an axis shifts the pose by the same amount;
3. the inverse of the pose is applied to the input with ``grid_sample``.

Poses are 2x3 affine matrices ``A`` in ``grid_sample``'s normalised
coordinates, mapping canonical to input coordinates: ``canonical =
warp(x, A)``; :func:`warp` with :func:`invert` of ``A`` puts a canonical image
back in the input pose. :class:`ETSequence` composes layers (e.g. translation
then rotation-scale) into one pose. Any number of bands.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ETLayer", "ETSequence", "warp", "invert", "pose_matrix", "canonical_grid", "GROUPS"]

GROUPS = ("translation", "rotation", "rotation_scale")


def pose_matrix(theta=None, log_scale=None, tx=None, ty=None, n: int | None = None, device=None) -> torch.Tensor:
    """[n, 2, 3] matrices mapping canonical to input coordinates: rotate by theta, scale, then shift."""
    ref = next((v for v in (theta, log_scale, tx, ty) if v is not None), None)
    n = n if ref is None else len(ref)
    device = device if ref is None else ref.device
    zero = torch.zeros(n, device=device)
    theta = zero if theta is None else theta
    s = torch.ones(n, device=device) if log_scale is None else torch.exp(log_scale)
    tx = zero if tx is None else tx
    ty = zero if ty is None else ty
    c, si = torch.cos(theta) * s, torch.sin(theta) * s
    return torch.stack([torch.stack([c, -si, tx], 1), torch.stack([si, c, ty], 1)], 1)


def invert(a: torch.Tensor) -> torch.Tensor:
    """Inverse of [n, 2, 3] affine matrices."""
    m = a[:, :, :2]
    mi = torch.linalg.inv(m)
    return torch.cat([mi, -(mi @ a[:, :, 2:])], dim=2)


def compose(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a`` after ``b``: the matrix of x -> a(b(x))."""
    m = a[:, :, :2] @ b[:, :, :2]
    t = a[:, :, :2] @ b[:, :, 2:] + a[:, :, 2:]
    return torch.cat([m, t], dim=2)


def warp(x: torch.Tensor, a: torch.Tensor, size: Sequence[int] | None = None) -> torch.Tensor:
    """Sample ``x`` at ``a`` (canonical -> input coordinates); zeros outside."""
    h, w = size or x.shape[-2:]
    grid = F.affine_grid(a.to(x.dtype), [x.shape[0], x.shape[1], h, w], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def canonical_grid(group: str, n_r: int, n_theta: int, r_min: float = 0.05, r_max: float = 1.0,
                   device=None) -> torch.Tensor:
    """[n_r, n_theta, 2] sampling grid (x, y in [-1, 1]) of the group's canonical coordinates.

    Rows are radius (linear for ``rotation``, logarithmic for
    ``rotation_scale``), columns the angle ``theta_j = 2 pi j / n_theta``;
    rotating the image by ``2 pi k / n_theta`` shifts the columns by ``k``.
    """
    theta = torch.arange(n_theta, device=device, dtype=torch.float32) * (2 * math.pi / n_theta)
    if group == "rotation":
        r = torch.linspace(r_max / n_r, r_max, n_r, device=device)
    elif group == "rotation_scale":
        r = torch.exp(torch.linspace(math.log(r_min), math.log(r_max), n_r, device=device))
    else:
        raise ValueError(f"no polar canonical grid for group {group!r}")
    x = r[:, None] * torch.cos(theta)[None, :]
    y = r[:, None] * torch.sin(theta)[None, :]
    return torch.stack([x, y], dim=-1)


class _PoseCNN(nn.Module):
    """Translation-equivariant convolutions (circular along the angle) -> one heat-map channel."""

    def __init__(self, in_chans: int, width: int, circular_w: bool, n_out: int = 1):
        super().__init__()
        self.circular_w = circular_w
        self.convs = nn.ModuleList([nn.Conv2d(in_chans, width, 3), nn.Conv2d(width, width, 3),
                                    nn.Conv2d(width, n_out, 3)])

    def forward(self, x):
        for i, conv in enumerate(self.convs):
            # pad circularly along the angle (width) for polar grids, with zeros otherwise
            x = F.pad(x, (1, 1, 0, 0), mode="circular" if self.circular_w else "constant")
            x = F.pad(x, (0, 0, 1, 1))
            x = conv(x)
            if i < len(self.convs) - 1:
                x = F.relu(x)
        return x


class ETLayer(nn.Module):
    """Predict and undo the pose of one group: ``translation``, ``rotation`` or ``rotation_scale``.

    ``forward(x)`` returns ``(canonical image, pose matrix [n, 2, 3])``.
    ``size``: side of the canonical-coordinate grid (``n_r = n_theta = size``
    for polar grids; a multiple of 4 makes 90 degree rotations exact shifts).
    ``temperature`` sharpens the soft-argmax. ``max_log_scale`` bounds the
    scale pose of ``rotation_scale``.
    """

    def __init__(self, group: str, in_chans: int, size: int = 32, width: int = 16, temperature: float = 1.0,
                 max_log_scale: float = math.log(2.0)):
        super().__init__()
        if group not in GROUPS:
            raise ValueError(f"unknown group {group!r}; expected one of {GROUPS}")
        self.group, self.size, self.temperature = group, int(size), float(temperature)
        self.max_log_scale = float(max_log_scale)
        self.cnn = _PoseCNN(in_chans, width, circular_w=group != "translation")
        if group != "translation":
            self.register_buffer("grid", canonical_grid(group, self.size, self.size), persistent=False)

    def canonical_coordinates(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` resampled on the group's canonical grid [n, C, size, size]."""
        if self.group == "translation":
            return F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False) \
                if x.shape[-1] != self.size else x
        grid = self.grid.to(x.dtype).expand(x.shape[0], -1, -1, -1)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    def predict_pose(self, x: torch.Tensor) -> dict:
        """Pose parameters of ``x``: ``tx, ty`` (translation) or ``theta`` (+ ``log_scale``)."""
        heat = self.cnn(self.canonical_coordinates(x))[:, 0] / self.temperature  # [n, rows, cols]
        n, rows, cols = heat.shape
        if self.group == "translation":
            p = F.softmax(heat.reshape(n, -1), dim=1).reshape(n, rows, cols)
            coords = (torch.arange(cols, device=x.device, dtype=x.dtype) + 0.5) * 2 / cols - 1
            return {"tx": (p.sum(1) * coords).sum(1), "ty": (p.sum(2) * coords).sum(1)}
        p = F.softmax(heat.reshape(n, -1), dim=1).reshape(n, rows, cols)
        ang = torch.arange(cols, device=x.device, dtype=x.dtype) * (2 * math.pi / cols)
        pa = p.sum(1)  # marginal over radius: circular mean of the angle
        theta = torch.atan2((pa * torch.sin(ang)).sum(1), (pa * torch.cos(ang)).sum(1))
        out = {"theta": theta}
        if self.group == "rotation_scale":
            log_r = torch.linspace(math.log(0.05), 0.0, rows, device=x.device, dtype=x.dtype)
            centre = (log_r[0] + log_r[-1]) / 2
            ls = (p.sum(2) * (log_r - centre)).sum(1)
            out["log_scale"] = ls.clamp(-self.max_log_scale, self.max_log_scale)
        return out

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pose = pose_matrix(**self.predict_pose(x))
        return warp(x, pose), pose


class ETSequence(nn.Module):
    """Several ET layers in turn; returns the canonical image and the composed pose (canonical -> input)."""

    def __init__(self, groups: Sequence[str], in_chans: int, size: int = 32, width: int = 16,
                 temperature: float = 1.0):
        super().__init__()
        self.layers = nn.ModuleList([ETLayer(g, in_chans, size, width, temperature) for g in groups])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pose = pose_matrix(n=x.shape[0], device=x.device).to(x.dtype)
        canon = x
        for layer in self.layers:
            p = pose_matrix(**layer.predict_pose(canon)).to(x.dtype)
            pose = compose(pose, p)  # canonical -> previous canonical -> ... -> input
            canon = warp(x, pose)  # one resampling of the input, not a chain of them
        return canon, pose
