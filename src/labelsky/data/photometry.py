"""Colours of galaxies and stars through survey filters.

Galaxy colours come from the Coleman, Wu & Weedman (1980) templates shipped
with GalSim (``E``, ``Sbc``, ``Scd``, ``Im``, extended by Bolzonella et al.
2000), redshifted and integrated through the survey filters of speclite
(SDSS, DECam, LSST). Stellar colours come from black bodies of a given
temperature. Every magnitude in labelsky's truth tables is given in a
*reference band* (SDSS r, ``REFERENCE_FILTER``); the magnitude in any other
band follows as ``m_ref + colour(sed, z, filter)``.

Tables are computed once per process on a redshift grid (0 to 3, step 0.01)
and interpolated.
"""

from __future__ import annotations

import functools
import os

import numpy as np

__all__ = [
    "GALAXY_SEDS",
    "REFERENCE_FILTER",
    "galaxy_colour",
    "star_colour",
    "kcorrection",
]

#: Galaxy templates available, red to blue.
GALAXY_SEDS = ("E", "Sbc", "Scd", "Im")
#: Band in which truth magnitudes are quoted.
REFERENCE_FILTER = "sdss2010-r"

_Z_GRID = np.round(np.arange(0.0, 3.0001, 0.01), 4)
_T_GRID = np.linspace(2500.0, 30000.0, 111)


@functools.lru_cache(maxsize=None)
def _sed_table(name: str) -> tuple[np.ndarray, np.ndarray]:
    import galsim

    if name not in GALAXY_SEDS:
        raise ValueError(f"unknown galaxy SED {name!r}; expected one of {GALAXY_SEDS}")
    path = os.path.join(galsim.meta_data.share_dir, "SEDs", f"CWW_{name}_ext.sed")
    wave, flam = np.loadtxt(path, unpack=True)
    return wave, flam


@functools.lru_cache(maxsize=None)
def _filter(name: str):
    import speclite.filters

    from labelsky.data.surveys import SurveyError

    try:
        return speclite.filters.load_filter(name)
    except (ValueError, OSError, RuntimeError, KeyError) as err:
        raise SurveyError(f"unknown filter {name!r} ({err}); expected a speclite filter name such as 'sdss2010-r', "
                          f"'decam2014-g', 'lsst2023-i' or an .ecsv filter file") from None


def _ab_mag(filt_name: str, wave: np.ndarray, flam: np.ndarray) -> float:
    """AB magnitude (arbitrary zeropoint of the flux scale) of f_lambda(wave)."""
    import astropy.units as u

    filt = _filter(filt_name)
    w = np.asarray(wave) * u.AA
    f = np.asarray(flam) * (u.erg / u.s / u.cm**2 / u.AA)
    lo, hi = filt.wavelength.min(), filt.wavelength.max()
    if wave.min() > lo or wave.max() < hi:
        raise ValueError(f"spectrum does not cover filter {filt_name} ({lo:.0f}-{hi:.0f} A)")
    return float(filt.get_ab_magnitude(f, w))


@functools.lru_cache(maxsize=None)
def _galaxy_mag_table(sed: str, filt: str) -> np.ndarray:
    """Observed AB magnitude versus redshift on ``_Z_GRID`` (arbitrary offset).

    The redshifted spectrum is f_lambda(lambda / (1 + z)) / (1 + z): the
    1 / (1 + z) is the bandwidth compression of f_lambda, so that
    ``m(z) - m(0)`` is the K-correction.
    """
    wave, flam = _sed_table(sed)
    return np.array([_ab_mag(filt, wave * (1 + z), flam / (1 + z)) for z in _Z_GRID])


def galaxy_colour(sed: str, z, filt: str, ref: str = REFERENCE_FILTER):
    """``m_filt - m_ref`` for template ``sed`` at redshift(s) ``z``."""
    z = np.clip(np.asarray(z, dtype=float), _Z_GRID[0], _Z_GRID[-1])
    if filt == ref:
        return np.zeros_like(z)
    return np.interp(z, _Z_GRID, _galaxy_mag_table(sed, filt) - _galaxy_mag_table(sed, ref))


def kcorrection(sed: str, z, filt: str = REFERENCE_FILTER):
    """K-correction ``m_obs(z) - M - DM(z)`` in the same filter (rest frame = observed filter)."""
    z = np.clip(np.asarray(z, dtype=float), _Z_GRID[0], _Z_GRID[-1])
    table = _galaxy_mag_table(sed, filt)
    return np.interp(z, _Z_GRID, table - table[0])


@functools.lru_cache(maxsize=None)
def _star_mag_table(filt: str) -> np.ndarray:
    h, c, k = 6.62607015e-27, 2.99792458e10, 1.380649e-16  # cgs
    wave = np.linspace(900.0, 25000.0, 2500)  # Angstrom
    lam_cm = wave * 1e-8
    out = []
    for t in _T_GRID:
        with np.errstate(over="ignore"):
            flam = 1.0 / (lam_cm**5 * np.expm1(h * c / (lam_cm * k * t)))
        out.append(_ab_mag(filt, wave, flam / flam.max()))
    return np.array(out)


def warm_tables(filters, ref: str = REFERENCE_FILTER) -> None:
    """Compute the colour tables of ``filters`` now (e.g. before forking worker processes)."""
    for f in set(filters) | {ref}:
        for sed in GALAXY_SEDS:
            _galaxy_mag_table(sed, f)
        _star_mag_table(f)


def star_colour(temperature, filt: str, ref: str = REFERENCE_FILTER):
    """``m_filt - m_ref`` of a black body of the given temperature (K)."""
    t = np.clip(np.asarray(temperature, dtype=float), _T_GRID[0], _T_GRID[-1])
    if filt == ref:
        return np.zeros_like(t)
    return np.interp(t, _T_GRID, _star_mag_table(filt) - _star_mag_table(ref))
