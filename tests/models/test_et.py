"""Equivariant Transformer layers: poses follow the transformations, canonical views and latents do not."""

import math

import numpy as np
import pytest
import torch

from labelsky.models.et import ETLayer, ETSequence, invert, pose_matrix, warp
from labelsky.models.etvae import ETVAE

N = 32


def _image(scale=1.0, bands=2):
    """Two off-centre blobs (no symmetry), zero at the border so that rotations and shifts lose nothing."""
    yy, xx = torch.meshgrid(torch.arange(N, dtype=torch.float32) - 15.5, torch.arange(N, dtype=torch.float32) - 15.5,
                            indexing="ij")
    s = scale
    g = torch.exp(-0.5 * (((xx - 3 * s) / (4 * s)) ** 2 + ((yy + s) / (1.5 * s)) ** 2)) \
        + 0.5 * torch.exp(-0.5 * (((xx + 5 * s) / (1.5 * s)) ** 2 + ((yy - 4 * s) / (1.5 * s)) ** 2))
    return torch.stack([g * (1 + 0.3 * b) for b in range(bands)])[None]


def _identity_pose_cnn(layer):
    """Centre-tap convolutions: the heat map is the summed image itself, so its arg-max is the brightest point."""
    with torch.no_grad():
        for conv in layer.cnn.convs:
            conv.weight.zero_()
            conv.bias.zero_()
            conv.weight[:, :, 1, 1] = 1.0 / conv.weight.shape[1]
    return layer


def _circular_diff(a, b):
    return float((a - b + math.pi) % (2 * math.pi) - math.pi)


@pytest.mark.parametrize("group", ["rotation", "rotation_scale"])
def test_rotating_by_90_degrees_rotates_the_pose_and_keeps_the_canonical_view(group):
    """A 90 degree rotation maps the polar grid (32 angles) onto itself: the pose shifts by exactly pi/2 (the
    circular mean is shift-equivariant whatever the heat map), so the canonical views agree to float precision."""
    torch.manual_seed(0)
    et = ETLayer(group, in_chans=2, size=N)
    x = _image()
    xr = torch.rot90(x, 1, dims=(2, 3))
    pa, pb = et.predict_pose(x), et.predict_pose(xr)
    assert abs(abs(_circular_diff(pb["theta"], pa["theta"])) - math.pi / 2) < 1e-4
    ca, _ = et(x)
    cb, _ = et(xr)
    assert float((ca - cb).abs().max() / ca.abs().max()) < 1e-3


def test_scaling_shifts_the_log_scale_pose_by_log_of_the_factor():
    """Log-polar rows are 0.097 apart in log r; with a sharp soft-argmax (temperature 1e-3) of a heat map peaking
    on a compact knot, the predicted log scale moves by log(1.5) = 0.405 to within one row."""
    et = _identity_pose_cnn(ETLayer("rotation_scale", in_chans=2, size=N, temperature=1e-3))
    yy, xx = torch.meshgrid(torch.arange(N, dtype=torch.float32) - 15.5, torch.arange(N, dtype=torch.float32) - 15.5,
                            indexing="ij")

    def knot(s):  # a compact knot at radius ~ 4.5 s pixels: a sharp peak in log r
        return torch.exp(-0.5 * ((xx - 4 * s) ** 2 + (yy - 2 * s) ** 2) / (0.8 * s) ** 2)[None, None].repeat(1, 2, 1, 1)

    a, b = et.predict_pose(knot(1.0)), et.predict_pose(knot(1.5))
    assert abs(float(b["log_scale"] - a["log_scale"]) - math.log(1.5)) < 0.1


def test_translating_shifts_the_translation_pose_exactly():
    et = _identity_pose_cnn(ETLayer("translation", in_chans=2, size=N, temperature=1e-3))
    x = _image()
    xs = torch.roll(x, shifts=(2, 3), dims=(2, 3))  # 2 pixels down, 3 right: grid units 2 * d / N
    a, b = et.predict_pose(x), et.predict_pose(xs)
    assert float(b["tx"] - a["tx"]) == pytest.approx(2 * 3 / N, abs=1e-3)
    assert float(b["ty"] - a["ty"]) == pytest.approx(2 * 2 / N, abs=1e-3)


def test_inverse_pose_of_canonical_pose_returns_the_input_up_to_interpolation():
    """Bilinear resampling of a Gaussian of sigma pixels errs by about 1 / (8 sigma^2) of its peak; two resamplings
    of blobs with sigma >= 3 px must therefore return the input to within 4 % of the peak."""
    x = _image(scale=2.0)
    a = pose_matrix(theta=torch.tensor([0.7]), log_scale=torch.tensor([0.15]), tx=torch.tensor([0.05]),
                    ty=torch.tensor([-0.08]))
    back = warp(warp(x, a), invert(a))
    err = (back - x)[..., 6:26, 6:26].abs().max() / x.abs().max()
    assert float(err) < 0.04
    torch.testing.assert_close(warp(x, pose_matrix(n=1)), x, atol=1e-5, rtol=1e-5)


def test_sequence_and_vae_latent_are_nearly_pose_invariant():
    """Rotating the input by 90 degrees leaves the ET-VAE's latent mean nearly unchanged (< 5 % relative change;
    the translation layer's soft-argmax on a diffuse untrained heat map is only approximately equivariant), while
    the same VAE without ET layers changes it several times more."""
    torch.manual_seed(0)
    x = torch.cat([_image(), _image(scale=1.2)])
    xr = torch.rot90(x, 1, dims=(2, 3))
    changes = {}
    for groups in (("translation", "rotation_scale"), ()):
        torch.manual_seed(0)
        vae = ETVAE(2, N, latent_dim=16, width=8, et_groups=groups).eval()
        with torch.no_grad():
            mu, mur = vae.encode(x)["mu"], vae.encode(xr)["mu"]
        changes[groups] = float((mu - mur).norm() / mu.norm())
    assert changes[("translation", "rotation_scale")] < 0.05, changes
    assert changes[()] > 3 * changes[("translation", "rotation_scale")], changes
    seq = ETSequence(["translation", "rotation_scale"], 2, size=N)
    c, pose = seq(x)
    assert c.shape == x.shape and pose.shape == (2, 2, 3)


def test_any_number_of_bands_and_bad_group():
    for bands in (1, 5):
        c, pose = ETLayer("rotation", bands, size=16)(torch.rand(3, bands, 16, 16))
        assert c.shape == (3, bands, 16, 16) and torch.isfinite(pose).all()
    with pytest.raises(ValueError, match="unknown group"):
        ETLayer("shear", 1)
    assert np.isfinite(ETVAE(3, 16, latent_dim=4, width=4).elbo(torch.rand(2, 3, 16, 16))["loss"].detach()).all()
