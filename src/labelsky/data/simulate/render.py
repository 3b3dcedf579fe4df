"""Rendering: achromatic GalSim components with colours, PSF, pixels and noise.

A source is a list of :class:`Component`. Each component is a unit-flux GalSim
profile (already placed at its offset from the stamp centre, in arcsec) with
a flux in the reference band and a spectral type (a galaxy template at a
redshift, or a black-body star). For a survey band the fluxes follow from the
colours of :mod:`labelsky.data.photometry`, the components are summed,
convolved with the band's PSF and drawn onto the pixel grid; noise is added
separately so that noise-free images can be checked and cached.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from labelsky.data import photometry
from labelsky.data.surveys import Survey

__all__ = ["Component", "band_flux", "draw_band", "draw_survey", "add_noise", "GSPARAMS", "template_profile"]


def _galsim():
    import galsim

    return galsim


#: Loosened accuracy for speed (GalSim defaults are tuned for weak lensing).
def _gsparams():
    g = _galsim()
    return g.GSParams(folding_threshold=1e-2, maxk_threshold=2e-3, kvalue_accuracy=1e-4,
                      maximum_fft_size=8192)


GSPARAMS = None  # created lazily (GalSim import is slow-ish)


def gsparams():
    global GSPARAMS
    if GSPARAMS is None:
        GSPARAMS = _gsparams()
    return GSPARAMS


@dataclass
class Component:
    """One piece of a scene.

    Attributes
    ----------
    profile
        Unit-flux GalSim profile, positioned relative to the stamp centre (arcsec).
    flux_ref
        Flux in the reference band (SDSS r), nanomaggies.
    sed
        ``"E"``, ``"Sbc"``, ``"Scd"``, ``"Im"`` (galaxy templates) or ``"star"``.
    param
        Redshift for galaxy templates, temperature (K) for stars.
    point
        True for point sources (drawn as the PSF alone).
    """

    profile: object
    flux_ref: float
    sed: str
    param: float
    point: bool = False

    def flux(self, filt: str) -> float:
        if self.sed == "star":
            colour = photometry.star_colour(self.param, filt)
        else:
            colour = photometry.galaxy_colour(self.sed, self.param, filt)
        return float(self.flux_ref * 10.0 ** (-0.4 * colour))


def band_flux(components, filt: str) -> float:
    """Total flux of ``components`` in filter ``filt`` (nanomaggies)."""
    return float(sum(c.flux(filt) for c in components))


def template_profile(array: np.ndarray, scale: float, offset=(0.0, 0.0)):
    """A unit-flux GalSim profile from a non-negative image sampled at ``scale`` arcsec."""
    g = _galsim()
    arr = np.asarray(array, dtype=np.float64)
    total = arr.sum()
    if not total > 0:
        raise ValueError("template image has no positive flux")
    img = g.Image(np.ascontiguousarray(arr / total), scale=scale)
    prof = g.InterpolatedImage(img, flux=1.0, x_interpolant="lanczos3", gsparams=gsparams())
    if offset != (0.0, 0.0):
        prof = prof.shift(*offset)
    return prof


def draw_band(components, survey: Survey, band: int, nx: int, ny: int | None = None,
              pixel_scale: float | None = None, psf=None) -> np.ndarray:
    """Noise-free image of ``components`` in one band, nanomaggies per pixel.

    Extended components are summed and convolved with the PSF in one FFT;
    point sources are drawn as shifted PSFs (cheaper and exact).
    """
    g = _galsim()
    ny = nx if ny is None else ny
    scale = survey.pixel_scale if pixel_scale is None else pixel_scale
    filt = survey.filters[band]
    psf = survey.psf(band).withGSParams(gsparams()) if psf is None else psf
    image = g.ImageD(nx, ny, scale=scale)
    extended, points = [], []
    for c in components:
        f = c.flux(filt)
        if f <= 0:
            continue
        (points if c.point else extended).append((c, f))
    if extended:
        total = g.Add([c.profile.withFlux(f) for c, f in extended]) if len(extended) > 1 else \
            extended[0][0].profile.withFlux(extended[0][1])
        g.Convolve(total, psf, gsparams=gsparams()).drawImage(image=image, add_to_image=True)
    for c, f in points:
        pos = c.profile.centroid
        # bright stars: tight accuracy, or k-space truncation rings at (threshold x flux) above the noise
        bright = f > 1e3 * survey.noise_sigma(band, scale)
        p = psf.withGSParams(folding_threshold=1e-6, maxk_threshold=1e-6) if bright else psf
        p.withFlux(f).shift(pos.x, pos.y).drawImage(image=image, add_to_image=True)
    return image.array.astype(np.float32)


def draw_survey(components, survey: Survey, nx: int, pixel_scale: float | None = None) -> np.ndarray:
    """Noise-free [bands, nx, nx] image of ``components`` in every band of ``survey``."""
    return np.stack([draw_band(components, survey, b, nx, pixel_scale=pixel_scale) for b in range(survey.n_bands)])


def add_noise(image: np.ndarray, survey: Survey, rng: np.random.Generator, pixel_scale: float | None = None,
              source_noise: bool = True, bands=None) -> np.ndarray:
    """Add sky-limited Gaussian noise (and source Poisson noise) to a [bands, H, W] image.

    The sky noise sigma per band is :meth:`Survey.noise_sigma`; source noise
    uses the effective gain :meth:`Survey.gain` (Gaussian approximation of the
    Poisson distribution, accurate at the counts involved). ``bands`` gives
    the survey band index of each plane of ``image`` (default: plane ``k`` is
    band ``k``), e.g. ``bands=[b]`` for a single band ``b`` as ``image[None]``.
    """
    out = np.array(image, dtype=np.float64, copy=True)
    bands = list(range(out.shape[0])) if bands is None else [int(b) for b in bands]
    if len(bands) != out.shape[0]:
        raise ValueError(f"add_noise: {out.shape[0]} image planes but {len(bands)} band indices {bands}")
    for k, b in enumerate(bands):
        var = np.full(out.shape[1:], survey.noise_sigma(b, pixel_scale) ** 2)
        if source_noise:
            var = var + np.clip(out[k], 0, None) / survey.gain(b, pixel_scale)
        out[k] += rng.standard_normal(out.shape[1:]) * np.sqrt(var)
    return out.astype(np.float32)


def saturate(image: np.ndarray, level: float) -> np.ndarray:
    """Clip a 2-D band image at ``level`` and bleed the excess along columns.

    CCD charge bleeding: the charge above full well in each column spreads
    up and down the column from the saturated run, at the saturation level.
    """
    img = np.array(image, dtype=np.float64, copy=True)
    ny = img.shape[0]
    over = img > level
    if not over.any():
        return img.astype(np.float32)
    for col in np.flatnonzero(over.any(axis=0)):
        rows = np.flatnonzero(over[:, col])
        excess = float((img[rows, col] - level).sum())
        img[rows, col] = level
        n_bleed = int(math.ceil(excess / level / 2.0))
        lo, hi = max(rows.min() - n_bleed, 0), min(rows.max() + n_bleed + 1, ny)
        img[lo:hi, col] = level
    return img.astype(np.float32)
