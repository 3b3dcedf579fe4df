"""Preprocessing of images with bad pixels: statistics from valid pixels, fill after normalisation, mask channel."""

import numpy as np
import pytest
import torch

from labelsky.data.transforms import Preprocess


def _image_with_holes():
    rng = np.random.default_rng(0)
    x = rng.normal(5.0, 2.0, (2, 8, 8)).astype(np.float32)
    x[0, :2] = np.nan
    x[1, 3, 3] = np.inf
    return x


def test_standardize_uses_valid_pixels_and_fills_bad_after_normalisation():
    x = _image_with_holes()
    t = Preprocess([0, 1], stretch="standardize")(x).numpy()
    assert np.isfinite(t).all()
    for b in range(2):
        valid = np.isfinite(x[b])
        v = x[b][valid]
        np.testing.assert_allclose(t[b][valid], (v - v.mean()) / v.std(), rtol=1e-5, atol=1e-5)
        assert (t[b][~valid] == 0).all()  # the mean of the normalised band


def test_khan_scaling_to_minus_one_one_from_valid_pixels():
    x = _image_with_holes()
    t = Preprocess([0, 1], stretch="khan")(x).numpy()
    valid = np.isfinite(x)
    v = x[valid]
    np.testing.assert_allclose(t[valid], (v - v.mean()) / np.abs(v - v.mean()).max(), rtol=1e-5, atol=1e-6)
    assert np.abs(t).max() == pytest.approx(1.0) and (t[~valid] == 0).all()


def test_asinh_mask_channel_and_all_bad_image_never_give_nan():
    x = _image_with_holes()
    p = Preprocess([1, 0], noise=[1.0, 2.0], stretch="asinh", softening=3.0, mask_channel=True)
    t = p(x)
    assert t.shape == (3, 8, 8) and torch.isfinite(t).all()
    np.testing.assert_allclose(t[0, 0, 0].item(), np.arcsinh(x[1, 0, 0] / 6.0), rtol=1e-6)
    expected_mask = (~np.isfinite(x)).any(axis=0).astype(np.float32)
    np.testing.assert_array_equal(t[2].numpy(), expected_mask)
    for stretch in ("asinh", "khan", "standardize", "none"):
        out = Preprocess([0], noise=[1.0], stretch=stretch)(np.full((1, 4, 4), np.nan, np.float32))
        assert torch.isfinite(out).all() and (out == 0).all()


@pytest.mark.parametrize("stretch", ["asinh", "none", "khan", "standardize", "robust_asinh"])
@pytest.mark.parametrize("bad", [False, True])
def test_batch_preprocessing_equals_the_per_image_call(stretch, bad):
    """Bulk inference preprocesses whole shards with ``batch``: it must give exactly what the per-image call does."""
    rng = np.random.default_rng(1)
    imgs = rng.normal(0.05, 0.1, size=(5, 3, 12, 12)).astype(np.float32)
    if bad:
        imgs[2, 1, 3:5, 3:5] = np.nan
        imgs[4, 0, 0, 0] = np.inf
    for kw in (dict(size=None, mask_channel=False), dict(size=16, mask_channel=True)):
        pre = Preprocess([2, 0], noise=[0.01, 0.02, 0.03], stretch=stretch, **kw)
        one = torch.stack([pre(im) for im in imgs])
        batch = pre.batch(imgs)
        assert batch.shape == one.shape
        torch.testing.assert_close(batch, one, rtol=1e-6, atol=1e-6)
    assert pre.batch(imgs[:0]).shape[0] == 0
    with pytest.raises(ValueError, match="batch"):
        pre.batch(imgs[0])
