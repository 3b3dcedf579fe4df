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

Rotation invariance of a composed stack. A polar layer after a translation
layer rotates about the centre that the translation layer found, so the stack
is rotation invariant only if that centre *rotates with the image*: the
translation pose must be equivariant to the later layer's group as well as to
translations. Translation equivariance alone does not give this: a generic
3x3 CNN's heat map does not rotate with its input. The translation layer therefore uses
isotropic kernels (:func:`isotropic_kernel`: ``a * delta + b * L``, ``L`` the
9-point isotropic Laplacian stencil), with pointwise ReLUs, symmetric zero
padding and a soft-argmax over pixel centres in ``grid_sample``'s convention
(``align_corners=False``). Its heat map, hence its centre, rotates with the
image exactly for multiples of 90 degrees (and mirrors exactly), and up to
interpolation for any other angle (the kernels are isotropic up to terms of
6th order in the pixel size). The composed stack's canonical view of a
rotated galaxy then equals that of the galaxy: to float precision for 90
degree multiples, and for other angles to the rotation layer's own accuracy,
which is bounded by bilinear interpolation of the pixelised image.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ETLayer", "ETSequence", "warp", "invert", "pose_matrix", "canonical_grid", "isotropic_kernel",
           "GROUPS"]

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


_RING = torch.tensor([[1.0, 4.0, 1.0], [4.0, 0.0, 4.0], [1.0, 4.0, 1.0]])  # isotropic Laplacian = _RING - 20 delta


def isotropic_kernel(w: torch.Tensor) -> torch.Tensor:
    """Least-squares projection of 3x3 kernels ``w`` [..., 3, 3] onto isotropic stencils ``a * delta + b * ring``.

    ``ring`` has 4 on the edges and 1 on the corners (the 9-point "Mehrstellen" Laplacian is ``ring - 20
    delta``): the span of ``{delta, ring}`` holds the 3x3 stencils that are symmetric under the 8 rotations and
    reflections of the pixel grid *and* whose Fourier symbol is isotropic up to 4th order, i.e. convolution
    with them is ``a' f + b' laplacian(f) + c' laplacian^2(f)`` plus anisotropic terms of 6th order only.
    The centre tap is kept as it is (a centre-only kernel is returned unchanged).
    """
    ring = _RING.to(device=w.device, dtype=w.dtype)
    b = (w * ring).sum((-2, -1), keepdim=True) / (ring * ring).sum()
    centre = torch.zeros_like(ring)
    centre[1, 1] = 1.0
    return w[..., 1:2, 1:2] * centre + b * ring


class _PoseCNN(nn.Module):
    """Translation-equivariant convolutions (circular along the angle) -> one heat-map channel.

    ``isotropic``: convolve with :func:`isotropic_kernel` of the weights (stored as ordinary 3x3 kernels), so
    that the heat map also rotates with the input (exactly for 90 degree multiples with a square input).
    """

    def __init__(self, in_chans: int, width: int, circular_w: bool, n_out: int = 1, isotropic: bool = False):
        super().__init__()
        self.circular_w, self.isotropic = circular_w, isotropic
        self.convs = nn.ModuleList([nn.Conv2d(in_chans, width, 3), nn.Conv2d(width, width, 3),
                                    nn.Conv2d(width, n_out, 3)])

    def forward(self, x):
        for i, conv in enumerate(self.convs):
            # pad circularly along the angle (width) for polar grids, with zeros otherwise
            x = F.pad(x, (1, 1, 0, 0), mode="circular" if self.circular_w else "constant")
            x = F.pad(x, (0, 0, 1, 1))
            x = F.conv2d(x, isotropic_kernel(conv.weight) if self.isotropic else conv.weight, conv.bias)
            if i < len(self.convs) - 1:
                x = F.relu(x)
        return x


class ETLayer(nn.Module):
    """Predict and undo the pose of one group: ``translation``, ``rotation`` or ``rotation_scale``.

    ``forward(x)`` returns ``(canonical image, pose matrix [n, 2, 3])``.
    ``size``: side of the canonical-coordinate grid (``n_r = n_theta = size``
    for polar grids; a multiple of 4 makes 90 degree rotations exact shifts).
    ``temperature`` sharpens the soft-argmax. ``max_log_scale`` bounds the
    scale pose of ``rotation_scale``. The ``translation`` layer's CNN has
    isotropic kernels, so that its centre rotates with the image (see the
    module docstring): ``predict_pose(rot90(x))`` is the 90 degree rotation of
    ``predict_pose(x)``'s ``(tx, ty)``.
    """

    def __init__(self, group: str, in_chans: int, size: int = 32, width: int = 16, temperature: float = 1.0,
                 max_log_scale: float = math.log(2.0)):
        super().__init__()
        if group not in GROUPS:
            raise ValueError(f"unknown group {group!r}; expected one of {GROUPS}")
        self.group, self.size, self.temperature = group, int(size), float(temperature)
        self.max_log_scale = float(max_log_scale)
        self.cnn = _PoseCNN(in_chans, width, circular_w=group != "translation", isotropic=group == "translation")
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
            # soft-argmax over pixel centres in grid_sample's normalised coordinates (align_corners=False: pixel
            # i of n is at (i + 0.5) * 2 / n - 1, x along columns, y along rows), which are symmetric about the
            # image centre, so that a heat map rotated by 90 degrees gives the rotated (tx, ty)
            p = F.softmax(heat.reshape(n, -1), dim=1).reshape(n, rows, cols)
            xs = (torch.arange(cols, device=x.device, dtype=x.dtype) + 0.5) * 2 / cols - 1
            ys = (torch.arange(rows, device=x.device, dtype=x.dtype) + 0.5) * 2 / rows - 1
            return {"tx": (p.sum(1) * xs).sum(1), "ty": (p.sum(2) * ys).sum(1)}
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
