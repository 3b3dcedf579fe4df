"""Cosmology, the cluster population's constants and the distributions members are drawn from (see
:mod:`labelsky.data.simulate.clusters` for every number's source)."""

from __future__ import annotations

import functools
import math

import numpy as np

from labelsky.data import photometry

# ---------------------------------------------------------------------- constants
HUBBLE_H = 0.7  #: H0 / (100 km/s/Mpc); astropy FlatLambdaCDM(H0=70, Om0=0.3)
OMEGA_M = 0.3
RS_NFW_MPC_H = 0.15  #: NFW scale radius of the member profile, h^-1 Mpc (Rykoff et al. 2012)
R_LAMBDA_0_MPC_H = 1.0  #: R_lambda = 1.0 h^-1 Mpc (lambda / 100)^0.2 (Rykoff et al. 2014)
R_LAMBDA_SLOPE = 0.2
LUM_CUT = 0.2  #: members counted in lambda: L >= 0.2 L*
LUM_MIN = 0.1  #: faintest member generated, L / L*
SCHECHTER_ALPHA = -1.0  #: faint-end slope of the member luminosity function (the sampler is written for -1)
MSTAR_R_Z01 = -21.4  #: absolute M*_r at z = 0.1 (h = 0.7), cluster red sequence
Q_EVOLUTION = 1.62  #: passive brightening of M*, mag per unit redshift (Blanton et al. 2003)
RED_SEQUENCE_SCATTER = 0.05  #: intrinsic scatter per adjacent colour, mag
HLR_LSTAR_KPC = 2.85  #: half-light radius of an L* early type (Shen et al. 2003), kpc
HLR_SLOPE = 0.65  #: R50 ∝ L^0.65 (Shen et al. 2003)
HLR_SCATTER_DEX = 0.1
BCG_SIZE_FACTOR = 2.0
BCG_LUM_RANGE = (2.5, 5.0)
MASS_PIVOT_LOG10 = 14.34  #: M200m = 10^14.34 (lambda / 40)^1.33 h^-1 Msun (Simet et al. 2017)
MASS_SLOPE = 1.33
RHO_CRIT0_H2 = 2.77536627e11  #: critical density today, h^2 Msun / Mpc^3

#: Anchor wavelengths of the colour scatter (Angstrom): effective wavelengths of the speclite sdss2010 u g r i z
#: filters (so SDSS bands get exactly the drawn offsets), then y (LSST y / DECam Y ~ 9800).
_ANCHOR_WAVE = np.array([3614.37357, 4749.22997, 6205.83224, 7525.62246, 8947.38474, 9800.0])

# ---------------------------------------------------------------------- cosmology
_ZTAB = np.linspace(0.0, 3.0, 3001)


@functools.lru_cache(maxsize=None)
def _cosmo_tables():
    from astropy.cosmology import FlatLambdaCDM

    cosmo = FlatLambdaCDM(H0=100.0 * HUBBLE_H, Om0=OMEGA_M)
    z = _ZTAB[1:]
    da = cosmo.angular_diameter_distance(z).to_value("Mpc")
    dm = cosmo.distmod(z).value
    dvdz = cosmo.differential_comoving_volume(z).value
    return z, da, dm, dvdz


def arcsec_per_mpc(z) -> np.ndarray:
    """Arcseconds subtended by one physical Mpc at redshift ``z`` (angular diameter distance)."""
    zt, da, _, _ = _cosmo_tables()
    return 206264.80624709636 / np.interp(np.asarray(z, float), zt, da)


def distance_modulus(z) -> np.ndarray:
    zt, _, dm, _ = _cosmo_tables()
    return np.interp(np.asarray(z, float), zt, dm)


def m_star_r(z) -> np.ndarray:
    """Apparent SDSS r magnitude of an L* red-sequence galaxy at redshift ``z`` (see module docstring)."""
    z = np.asarray(z, float)
    return (MSTAR_R_Z01 - Q_EVOLUTION * (z - 0.1) + distance_modulus(z)
            + photometry.kcorrection("E", z, photometry.REFERENCE_FILTER))


def r_lambda_mpc(lam, h: float = HUBBLE_H) -> np.ndarray:
    """redMaPPer cluster radius ``R_lambda = 1.0 h^-1 Mpc (lambda/100)^0.2``, in physical Mpc."""
    lam = np.clip(np.asarray(lam, float), 0.0, None)
    return R_LAMBDA_0_MPC_H / h * (lam / 100.0) ** R_LAMBDA_SLOPE


def r200m_mpc(lam, z, h: float = HUBBLE_H) -> float:
    """R200m (physical Mpc) of the halo of richness ``lam`` (Simet et al. 2017 mass-richness relation)."""
    mass = 10.0 ** MASS_PIVOT_LOG10 * (max(float(lam), 1e-3) / 40.0) ** MASS_SLOPE / h  # Msun
    rho_m = OMEGA_M * RHO_CRIT0_H2 * h * h * (1.0 + z) ** 3  # Msun / Mpc^3, physical
    return float((3.0 * mass / (4.0 * math.pi * 200.0 * rho_m)) ** (1.0 / 3.0))


# ---------------------------------------------------------------------- distributions
def _nfw_projected_mass(x) -> np.ndarray:
    """Projected (cylinder) NFW mass within ``x = R / r_s``, in units of 4 pi rho_s r_s^3."""
    x = np.asarray(x, float)
    out = np.empty_like(x)
    lo, hi = x < 1.0 - 1e-6, x > 1.0 + 1e-6
    xl, xh = x[lo], x[hi]
    out[lo] = np.log(xl / 2.0) + np.arccosh(1.0 / xl) / np.sqrt(1.0 - xl**2)
    out[hi] = np.log(xh / 2.0) + np.arccos(1.0 / xh) / np.sqrt(xh**2 - 1.0)
    mid = ~(lo | hi)
    out[mid] = math.log(0.5) + 1.0
    return out


def _sample_nfw_radii(rng, n: int, rs: float, r_max: float) -> np.ndarray:
    """Projected radii (same unit as ``rs``) of an NFW profile truncated at ``r_max``."""
    x = np.geomspace(1e-4, r_max / rs, 2000)
    cdf = _nfw_projected_mass(x)
    cdf = np.concatenate([[0.0], cdf / cdf[-1]])
    x = np.concatenate([[0.0], x])
    return np.interp(rng.random(n), cdf, x) * rs


@functools.lru_cache(maxsize=None)
def _schechter_table():
    from scipy.special import exp1

    x = np.geomspace(LUM_MIN, 40.0, 4000)  # alpha = -1: N(>x) ∝ E1(x)
    cdf = 1.0 - exp1(x) / exp1(LUM_MIN)
    return cdf, x, float(exp1(LUM_CUT) / exp1(LUM_MIN))


def _sample_schechter(rng, n: int) -> np.ndarray:
    """Luminosities L / L* > LUM_MIN from a Schechter function with alpha = -1 (inverse CDF)."""
    cdf, x, _ = _schechter_table()
    return np.interp(rng.random(n), cdf, x)


def _sample_powerlaw(rng, lo: float, hi: float, slope: float) -> float:
    """One draw from dN/dx ∝ x^-slope on [lo, hi]."""
    u = rng.random()
    if abs(slope - 1.0) < 1e-9:
        return float(lo * (hi / lo) ** u)
    a = 1.0 - slope
    return float((lo**a + u * (hi**a - lo**a)) ** (1.0 / a))


def _sample_redshift(rng, lo: float, hi: float) -> float:
    """One redshift, uniform in comoving volume within [lo, hi]."""
    if hi - lo < 1e-6:
        return float(lo)
    z = np.linspace(lo, hi, 512)
    zt, _, _, dvdz = _cosmo_tables()
    w = np.interp(z, zt, dvdz)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (w[1:] + w[:-1]) * np.diff(z))])
    return float(np.interp(rng.random() * cdf[-1], cdf, z))


