"""Galaxy-cluster fields with redMaPPer-like richness labels.

:func:`simulate_clusters` draws ``n_clusters`` clusters and images each one
(``views_per_cluster`` times, each view with its own centring offset and
noise) with every survey of the run: a square field of ``field_mpc``
physical Mpc around the cluster centre (1 Mpc, as the SDSS ugriz cutouts of
Liang et al., "Optical wavelength guided self-supervised feature learning for
galaxy cluster richness estimate", that regress the redMaPPer richness
``lambda``). The output
folder has the layout of :func:`~labelsky.data.simulate.stamps.simulate_galaxies`::

    OUT/simulation.json
    OUT/sdss/   (labelsky dataset: richness column = lambda_true)

Physics (every number is a module constant with its source):

* **Cosmology**: flat LambdaCDM, H0 = 70 km/s/Mpc, Omega_m = 0.3 (astropy
  ``FlatLambdaCDM``); ``h = 0.7`` wherever a quantity is quoted in
  ``h^-1`` units. Physical (not comoving) distances throughout, as redMaPPer.
* **Cluster population**: redshift drawn uniformly in comoving volume within
  ``z_range`` (constant comoving abundance, a fair description of massive
  haloes at z < 0.4); richness ``lambda_target`` from ``dN/dlambda ∝
  lambda^-2`` in ``lambda_range`` (``lambda_slope``). The real abundance is
  steeper (a halo mass function dn/dM ∝ M^-2...-3 with M ∝ lambda^1.33 gives
  lambda^-2.3...-3.7); the shallower law keeps enough rich clusters to learn
  from, as a training set selected to span the richness range would.
* **Members** are red-sequence galaxies (the population redMaPPer counts):
  the E template of Coleman, Wu & Weedman (via
  :func:`labelsky.data.photometry.galaxy_colour`) at the cluster redshift,
  plus a Gaussian scatter of ``RED_SEQUENCE_SCATTER`` = 0.05 mag on every
  adjacent colour (u-g, g-r, r-i, i-z, z-y), the intrinsic red-sequence width
  of redMaPPer's colour model (Rykoff et al. 2014, ApJ 785, 104). Colour
  offsets are anchored at the SDSS effective wavelengths and interpolated for
  other surveys' filters. (No colour-magnitude tilt and no blue members:
  redMaPPer counts red-sequence galaxies only.)
* **Radial profile**: projected NFW with ``r_s = 0.15 h^-1 Mpc`` (the redMaPPer
  radial filter, Rykoff et al. 2012, ApJ 746, 178), truncated at
  ``R200m`` of the halo of mass ``M200m = 10^14.34 (lambda/40)^1.33 h^-1 Msun``
  (Simet et al. 2017, MNRAS 466, 3103). Radii come from the inverse CDF of
  the projected (cylinder) NFW mass ``g(x) = ln(x/2) + arccosh(1/x)/sqrt(1-x^2)``
  (Bartelmann 1996), position angles uniformly.
* **Luminosities**: Schechter function with ``alpha = -1`` (the redMaPPer
  luminosity filter) from ``0.1 L*`` up, by inverse CDF
  (``N(>L) ∝ E1(L/L*)``). ``L*`` is ``M*_r = -21.4`` at z = 0.1 (h = 0.7):
  0.2 mag brighter than the field value of Blanton et al. 2003 (ApJ 592,
  819; M* - 5 log10 h = -20.44, i.e. -21.2), as cluster red-sequence
  luminosity functions have brighter M* than the field (e.g. Hansen et al.
  2009, ApJ 699, 1333); passive brightening ``Q = 1.62`` mag per unit
  redshift (Blanton et al. 2003). ``m*_r(z) = M*_r - Q (z - 0.1) + DM(z) +
  K_E(z)`` gives r = 17.0 at z = 0.1 and 20.1 at z = 0.35, where 0.2 L* has
  i = 21.2: near the limit to which the SDSS DR8 redMaPPer catalogue is
  volume-limited (z ~ 0.35, i ~ 21).
* **Central galaxy (BCG)** at the cluster centre:
  ``L = 3.2 L* (lambda/40)^0.35 x 10^N(0, 0.1)`` clipped to [2.5, 5] L*:
  L_BCG ∝ M^0.26 (Lin & Mohr 2004, ApJ 617, 879) with M ∝ lambda^1.33.
* **Sizes and shapes**: de Vaucouleurs profiles (Sersic n = 4, truncated at 8
  half-light radii as the field ellipticals of :mod:`scene`), half-light
  radius ``2.85 kpc (L/L*)^0.65 x 10^N(0, 0.1)`` (early types, Shen et al.
  2003, MNRAS 343, 978: log R50 = -0.26 M_r - 5.06), twice that for the BCG
  (BCGs lie above the early-type size-luminosity relation, Bernardi et al.
  2007, AJ 133, 1741); axis ratios uniform in [0.6, 1], random orientation.
* **Richness label** ``lambda_true`` (:func:`richness`): the number of
  members brighter than 0.2 L* within ``R_lambda = 1.0 h^-1 Mpc
  (lambda/100)^0.2`` (Rykoff et al. 2014), solved self-consistently by
  iteration from ``lambda_target`` (the count is monotone in lambda, so the
  iteration reaches a fixed point in a few steps). The membership is exact
  (p_mem = 1, no background subtraction), so the label is the noise-free
  richness of the simulated cluster; the number of bright members generated
  is Poisson with mean ``lambda_target - 1`` inside ``R_lambda(lambda_target)``
  plus the BCG, so ``E[lambda_true] ≈ lambda_target``. ``R_lambda`` is larger
  than the 1 Mpc field (as for the real SDSS cutouts): the image shows only
  the inner part of the members that define the label.
* **Foreground/background**: stars and field galaxies from
  :func:`labelsky.data.simulate.scene.sample_field` down to the survey's
  r-band depth + 0.5 (shared by every view of a cluster: same sky), sky
  residuals, sky and source noise for the pixel scale of the image.

Pixel scale: the image is drawn at ``max(native pixel, field_arcsec /
npix)``, so the 1 Mpc field fills ``npix`` pixels unless that would be finer
than the survey's pixels; the noise is the survey noise of pixels of that
size (:meth:`~labelsky.data.surveys.Survey.noise_sigma`).

Rendering: a field has tens to hundreds of objects (thousands for deep
surveys at low redshift), so they are not summed into one GalSim profile and
one FFT. Each object is drawn on its own small stamp and added into the
image (:class:`BandPainter`, :func:`draw_sources`):

* compact (half-light radius below 0.3 x max(PSF FWHM, pixel)) objects
  fainter than 100 pixel sigmas come from kernel banks: the unit-flux round
  profile (point, de Vaucouleurs or exponential on a log grid of sizes)
  convolved with the band PSF, drawn by GalSim on a grid finer than the
  pixels and binned at sub-pixel offsets of at most FWHM / 4, interpolated
  linearly in offset and log size, and added by one vectorised scatter-add;
* everything else (extended or bright) is drawn by GalSim on its own stamp on
  a fine grid (``K x K`` sub-pixels per image pixel, fine pixels no larger
  than the survey pixel or a third of the PSF FWHM) and binned; this
  integrates exactly over the image pixels and is 20-50x faster than letting
  GalSim draw onto pixels much coarser than the PSF. Stamps reach out to where
  the PSF wing of the object falls below 0.02 of the pixel noise.

Against one GalSim FFT of the whole scene the images agree to a few tenths
of the pixel noise at worst (kernel-bank interpolation), total fluxes to
0.1 %. One core draws a
128 x 128 SDSS ugriz field in about 0.3-0.8 s.

Catalog: one row per (cluster, view). ``ra``/``dec`` are the cluster centre
(the BCG); the image centre is offset from it by the view's centring offset:
the cluster centre lies at ``(true_center_dx_arcsec, true_center_dy_arcsec)``
from the image centre (x along columns, y along rows), each component
uniform within ``max_offset`` (default 10 %) of the field side.
``richness`` = ``lambda_true``; extra columns ``cluster_id``, ``view``,
``true_redshift``, ``true_lambda_target``, ``n_members`` (all members out to
R200m), ``n_members_in_image``, ``true_m_star_r``, ``true_bcg_mag_r``,
``true_r_lambda_mpc``, ``true_r_lambda_arcsec``, ``true_r200m_mpc``,
``pixel_scale``, ``field_arcsec``, ``field_mpc`` (the image side actually
drawn), ``true_center_offset_kpc``, ``n_neighbour_stars``,
``n_neighbour_galaxies``. Labels, label names and votes are empty (-1, "").
The split is drawn per cluster, so all views of a cluster share it.

Not modelled: saturation and bleed trails of bright stars, blue cluster
members, intracluster light, miscentred BCGs (the centre is the BCG),
projection effects (the label is the true member count).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from labelsky.data import photometry
from labelsky.data.io import DatasetWriter
from labelsky.data.simulate import scene
from labelsky.data.simulate.render import Component, add_noise, gsparams
from labelsky.data.simulate.runner import (
    SimulationError,
    SkySettings,
    check_splits,
    check_surveys,
    default_workers,
    finish_output,
    is_finished,
    prepare_output,
    reference_band,
    run_shards,
)
from labelsky.data.surveys import Survey, SurveyError, get_survey
from labelsky.utils import object_seed

__all__ = [
    "ClusterSimConfig", "ClusterMembers", "MemberComponent", "simulate_clusters", "render_cluster",
    "sample_members", "richness", "r_lambda_mpc", "m_star_r", "arcsec_per_mpc", "draw_sources", "Source",
    "SourceSet", "BandPainter", "band_fluxes", "cluster_truth", "pixel_scale_for",
    "HUBBLE_H", "RS_NFW_MPC_H", "RED_SEQUENCE_SCATTER", "MSTAR_R_Z01", "Q_EVOLUTION", "LUM_MIN", "LUM_CUT",
]

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


# ---------------------------------------------------------------------- richness
def richness(l_over_lstar, radii_mpc, lambda_start: float | None = None, h: float = HUBBLE_H,
             lum_cut: float = LUM_CUT, max_iter: int = 200) -> tuple[float, float]:
    """redMaPPer richness of a member list with exact membership: ``(lambda, R_lambda in Mpc)``.

    ``lambda`` = number of members with ``L / L* >= lum_cut`` at projected
    radius ``<= R_lambda(lambda) = 1.0 h^-1 Mpc (lambda/100)^0.2`` (physical),
    solved by iterating ``lambda <- count(R_lambda(lambda))`` from
    ``lambda_start`` (default: all bright members). The count is a
    non-decreasing function of lambda, so the iterates are monotone integers
    and stop at a fixed point.
    """
    lum = np.asarray(l_over_lstar, float)
    rad = np.asarray(radii_mpc, float)
    if lum.shape != rad.shape:
        raise ValueError(f"l_over_lstar and radii_mpc differ in shape: {lum.shape} vs {rad.shape}")
    r_bright = np.sort(rad[lum >= lum_cut])
    lam = float(len(r_bright)) if lambda_start is None else float(lambda_start)
    for _ in range(max_iter):
        new = float(np.searchsorted(r_bright, r_lambda_mpc(lam, h), side="right"))
        if new == lam:
            break
        lam = new
    else:  # pragma: no cover - monotone integer iteration always converges
        raise RuntimeError("richness iteration did not converge")
    return lam, float(r_lambda_mpc(lam, h))


# ---------------------------------------------------------------------- members
@dataclass
class ClusterMembers:
    """Truth of one cluster's red-sequence members (index 0 is the BCG at the centre).

    Positions ``x_mpc``, ``y_mpc`` are physical Mpc from the cluster centre;
    ``colour_steps`` are the per-member perturbations of (u-g, g-r, r-i, i-z,
    z-y) in magnitudes.
    """

    z: float
    lambda_target: float
    lambda_true: float
    r_lambda_mpc: float
    r_max_mpc: float
    m_star_r: float
    x_mpc: np.ndarray
    y_mpc: np.ndarray
    l_over_lstar: np.ndarray
    hlr_kpc: np.ndarray
    q: np.ndarray
    beta_rad: np.ndarray
    colour_steps: np.ndarray

    @property
    def n(self) -> int:
        return int(len(self.x_mpc))

    @property
    def radius_mpc(self) -> np.ndarray:
        return np.hypot(self.x_mpc, self.y_mpc)

    @property
    def mag_r(self) -> np.ndarray:
        return self.m_star_r - 2.5 * np.log10(self.l_over_lstar)

    def anchor_offsets(self) -> np.ndarray:
        """Magnitude offsets [n, 6] at the anchor wavelengths (u g r i z y) relative to r."""
        s = self.colour_steps
        off = np.zeros((self.n, len(_ANCHOR_WAVE)))
        off[:, 1] = s[:, 1]  # g - r
        off[:, 0] = s[:, 1] + s[:, 0]  # u - g
        off[:, 3] = -s[:, 2]  # r - i
        off[:, 4] = -s[:, 2] - s[:, 3]  # i - z
        off[:, 5] = -s[:, 2] - s[:, 3] - s[:, 4]  # z - y
        return off


def sample_members(lambda_target: float, z: float, rng: np.random.Generator, h: float = HUBBLE_H) -> ClusterMembers:
    """Draw the red-sequence members of a cluster of richness ``lambda_target`` at redshift ``z``.

    The BCG sits at the centre; satellites number ``Poisson(max(lambda_target
    - 1, 0) / (f_in f_bright))`` where ``f_bright`` is the Schechter fraction
    above 0.2 L* and ``f_in`` the NFW fraction inside ``R_lambda(lambda_target)``,
    so that on average ``lambda_target`` members are counted. ``lambda_true``
    is then measured on the drawn members with :func:`richness`.
    """
    rs = RS_NFW_MPC_H / h
    r_lam = float(r_lambda_mpc(lambda_target, h))
    r_max = r200m_mpc(lambda_target, z, h)
    g = _nfw_projected_mass(np.array([min(r_lam, r_max) / rs, r_max / rs]))
    f_in = float(g[0] / g[1])
    _, _, f_bright = _schechter_table()
    n_sat = int(rng.poisson(max(lambda_target - 1.0, 0.0) / (f_in * f_bright)))
    r = _sample_nfw_radii(rng, n_sat, rs, r_max)
    phi = rng.uniform(0.0, 2.0 * math.pi, n_sat)
    lum_sat = _sample_schechter(rng, n_sat)
    l_bcg = float(np.clip(3.2 * (max(lambda_target, 1.0) / 40.0) ** 0.35 * 10 ** rng.normal(0.0, 0.1),
                          *BCG_LUM_RANGE))
    lum = np.concatenate([[l_bcg], lum_sat])
    x = np.concatenate([[0.0], r * np.cos(phi)])
    y = np.concatenate([[0.0], r * np.sin(phi)])
    n = n_sat + 1
    hlr = HLR_LSTAR_KPC * lum**HLR_SLOPE * 10 ** rng.normal(0.0, HLR_SCATTER_DEX, n)
    hlr[0] *= BCG_SIZE_FACTOR
    q = rng.uniform(0.6, 1.0, n)
    beta = rng.uniform(0.0, math.pi, n)
    steps = rng.normal(0.0, RED_SEQUENCE_SCATTER, (n, len(_ANCHOR_WAVE) - 1))
    lam_true, r_true = richness(lum, np.hypot(x, y), lambda_start=lambda_target, h=h)
    return ClusterMembers(z=float(z), lambda_target=float(lambda_target), lambda_true=lam_true, r_lambda_mpc=r_true,
                          r_max_mpc=r_max, m_star_r=float(m_star_r(z)), x_mpc=x, y_mpc=y, l_over_lstar=lum,
                          hlr_kpc=hlr, q=q, beta_rad=beta, colour_steps=steps)


@functools.lru_cache(maxsize=None)
def _anchor_weights(filt: str) -> np.ndarray:
    """Linear-interpolation weights of the anchor wavelengths at the filter's effective wavelength."""
    wave = float(photometry._filter(filt).effective_wavelength.to_value("Angstrom"))
    return np.array([np.interp(wave, _ANCHOR_WAVE, np.eye(len(_ANCHOR_WAVE))[j]) for j in range(len(_ANCHOR_WAVE))])


@dataclass
class MemberComponent(Component):
    """A red-sequence member: E template at the cluster redshift plus its own colour offsets.

    ``offsets`` are magnitude offsets (relative to r) at the anchor wavelengths
    ``_ANCHOR_WAVE`` (SDSS u g r i z, then y); a filter's offset is
    interpolated linearly at its effective wavelength, so every survey sees
    the same member colours.
    """

    offsets: tuple = ()

    def colour_offset(self, filt: str) -> float:
        return float(np.dot(self.offsets, _anchor_weights(filt))) if len(self.offsets) else 0.0

    def flux(self, filt: str) -> float:
        colour = float(photometry.galaxy_colour(self.sed, self.param, filt)) + self.colour_offset(filt)
        return float(self.flux_ref * 10.0 ** (-0.4 * colour))


def member_components(members: ClusterMembers, arcsec_mpc: float) -> list:
    """Unit-flux de Vaucouleurs components (centred on the origin) of the members."""
    import galsim

    offsets = members.anchor_offsets()
    comps = []
    hlr_arcsec = np.maximum(members.hlr_kpc * 1e-3 * arcsec_mpc, 0.05)
    flux = 10.0 ** (-0.4 * (members.mag_r - 22.5))
    for k in range(members.n):
        h = float(hlr_arcsec[k])
        q = float(members.q[k])
        prof = galsim.DeVaucouleurs(half_light_radius=h, trunc=8.0 * h, gsparams=gsparams())
        prof = prof.shear(e=(1 - q) / (1 + q), beta=float(members.beta_rad[k]) * galsim.radians)
        comps.append(MemberComponent(prof, float(flux[k]), "E", members.z, offsets=tuple(offsets[k])))
    return comps


def band_fluxes(components, filt: str) -> np.ndarray:
    """Fluxes (nanomaggies) of many components in filter ``filt``: ``Component.flux``, vectorised by type."""
    out = np.empty(len(components))
    groups: dict = {}
    for k, c in enumerate(components):
        t = type(c)
        key = (t, c.sed) if t in (Component, MemberComponent) else (None, k)
        groups.setdefault(key, []).append(k)
    for (t, sed), idx in groups.items():
        if t is None:
            out[idx[0]] = components[idx[0]].flux(filt)
            continue
        ref = np.array([components[k].flux_ref for k in idx])
        par = np.array([components[k].param for k in idx], float)
        colour = photometry.star_colour(par, filt) if sed == "star" else photometry.galaxy_colour(sed, par, filt)
        if t is MemberComponent:
            colour = colour + np.array([components[k].colour_offset(filt) for k in idx])
        out[idx] = ref * 10.0 ** (-0.4 * colour)
    return out


# ---------------------------------------------------------------------- rendering
@dataclass
class Source:
    """A source to draw: a Component, its position (arcsec) and drawing class.

    ``kind`` is ``"point"``, ``"dev"`` or ``"exp"``; ``hlr`` in arcsec (0 for
    points). ``profile_offset`` is the shift already applied to the
    component's profile (:mod:`scene` places its profiles), undone when the
    source is drawn at ``(x, y)``.
    """

    component: Component
    x: float
    y: float
    hlr: float
    kind: str
    profile_offset: tuple = (0.0, 0.0)

    def centred_profile(self):
        ox, oy = self.profile_offset
        p = self.component.profile
        return p.shift(-ox, -oy) if (ox or oy) else p


def sources_from_field(fs: scene.FieldSample) -> list:
    """Sources of a :func:`scene.sample_field` draw (its profiles are shifted to the object positions)."""
    out = []
    for c, kind, x, y, h in zip(fs.components, fs.kind, fs.x, fs.y, fs.hlr):
        typ = "point" if c.point else ("dev" if c.sed == "E" else "exp")
        out.append(Source(c, float(x), float(y), float(h) if kind == "galaxy" else 0.0, typ, (float(x), float(y))))
    return out


class SourceSet:
    """Sources as arrays (positions, sizes, kinds) with per-filter fluxes cached."""

    def __init__(self, sources):
        self.sources = list(sources)
        self.x = np.array([s.x for s in self.sources], float)
        self.y = np.array([s.y for s in self.sources], float)
        self.hlr = np.array([s.hlr for s in self.sources], float)
        self.kind = np.array([s.kind for s in self.sources], dtype="<U5")
        self._flux: dict = {}

    def __len__(self) -> int:
        return len(self.sources)

    def fluxes(self, filt: str) -> np.ndarray:
        if filt not in self._flux:
            self._flux[filt] = band_fluxes([s.component for s in self.sources], filt)
        return self._flux[filt]


_HLR_BIN0, _HLR_BIN_STEP = 0.1, 1.25  # kernel-bank sizes: 0.1" x 1.25^k (linear interpolation in log size)
_BANK_FLUX_SIGMA = 100.0  # objects brighter than this many pixel sigmas are drawn individually by GalSim
_WING_SIGMA = 0.02  # stamps reach out to where the PSF wing falls below this fraction of the pixel noise


class BandPainter:
    """Draws sources into one band of an ``npix x npix`` image at ``scale`` arcsec per pixel.

    Two paths (see the module docstring): compact sources fainter than
    ``_BANK_FLUX_SIGMA`` pixel sigmas are added from kernel banks (unit-flux
    profile convolved with the PSF and integrated over the pixels, at
    ``k_bank`` sub-pixel offsets per axis and sizes on a log grid, both
    interpolated linearly; round profiles: below a third of the pixel/PSF the
    axis ratio is invisible); all others are drawn by GalSim on a fine grid
    of ``k_fine`` sub-pixels per pixel and binned. Kernel banks are kept for
    the painter's lifetime (every view of a cluster reuses them).
    """

    def __init__(self, survey: Survey, band: int, npix: int, scale: float):
        import galsim

        self.survey, self.band, self.npix, self.scale = survey, band, int(npix), float(scale)
        self.filt = survey.filters[band]
        self.psf = survey.psf(band).withGSParams(gsparams())
        self.psf_tight = self.psf.withGSParams(folding_threshold=1e-6, maxk_threshold=1e-6)
        self.sigma = survey.noise_sigma(band, scale)
        fine_target = min(survey.pixel_scale, survey.psf_fwhm[band] / 3.0)
        self.k_fine = max(1, int(math.ceil(scale / fine_target - 1e-6)))
        # sub-pixel offsets of the kernel bank: steps of at most FWHM / 4 (bilinear interpolation between them)
        self.k_bank = int(min(max(self.k_fine, math.ceil(4.0 * scale / min(survey.psf_fwhm)), 8), 64))
        self.h_compact = 0.3 * max(survey.psf_fwhm[band], scale)
        r = np.geomspace(0.02, 400.0 * survey.psf_fwhm[band], 600)
        prof = np.array([self.psf.xValue(galsim.PositionD(float(v), 0.0)) for v in r])
        self._r_grid = r
        self._wing = np.maximum.accumulate(prof[::-1])[::-1] * scale**2  # pixel value of a unit flux at >= r
        self._banks: dict = {}

    # geometry --------------------------------------------------------------
    def psf_radius(self, flux: float) -> float:
        """Radius (arcsec) beyond which the PSF wing of ``flux`` is below ``_WING_SIGMA`` of the noise."""
        ok = flux * self._wing < _WING_SIGMA * self.sigma
        idx = int(np.argmax(ok)) if ok.any() else len(self._r_grid) - 1
        return float(self._r_grid[idx])

    @staticmethod
    def _extent(kind: str, hlr: float) -> float:
        return {"point": 0.0, "dev": 8.0 * hlr, "exp": 6.0 * hlr}[kind]

    def _add(self, image: np.ndarray, stamp: np.ndarray, cx: int, cy: int) -> None:
        """Add a (2R+1)^2 stamp centred on pixel (cx, cy) (0-based column, row), clipped to the image."""
        r = stamp.shape[0] // 2
        x0, x1 = max(cx - r, 0), min(cx + r + 1, self.npix)
        y0, y1 = max(cy - r, 0), min(cy + r + 1, self.npix)
        if x0 >= x1 or y0 >= y1:
            return
        image[y0:y1, x0:x1] += stamp[y0 - (cy - r):y1 - (cy - r), x0 - (cx - r):x1 - (cx - r)]

    # kernel banks ------------------------------------------------------------
    def _bank(self, kind: str, hbin: int) -> np.ndarray:
        """[k_bank + 1, k_bank + 1, n, n] kernels of a unit-flux source, by sub-pixel offset (y, x)."""
        key = (kind, hbin)
        if key not in self._banks:
            import galsim

            kb, s = self.k_bank, self.scale
            hlr = 0.0 if kind == "point" else _HLR_BIN0 * _HLR_BIN_STEP ** hbin
            r_ext = max(self.psf_radius(_BANK_FLUX_SIGMA * self.sigma), self._extent(kind, hlr))
            rr = int(math.ceil(r_ext / s)) + 1
            m = 2 * (rr + 1) * kb + 2
            if kind == "point":
                prof = self.psf
            else:
                if kind == "dev":
                    gal = galsim.DeVaucouleurs(half_light_radius=hlr, trunc=8.0 * hlr, gsparams=gsparams())
                else:
                    gal = galsim.Exponential(half_light_radius=hlr, gsparams=gsparams())
                prof = galsim.Convolve(gal, self.psf, gsparams=gsparams())
            fine = prof.drawImage(nx=m, ny=m, scale=s / kb).array  # centred on the corner c = m / 2
            n = 2 * rr + 1
            # Kernel q = 0..kb puts the object q / kb - 0.5 pixels from the central pixel's centre: blocks of
            # kb fine pixels starting at fine edge a = c - rr kb - q. All (kb + 1)^2 offsets at once from the
            # summed-area table of the fine image.
            sat = np.zeros((m + 1, m + 1))
            sat[1:, 1:] = fine.cumsum(0).cumsum(1)
            edges = (kb + 1 - np.arange(kb + 1))[:, None] + kb * np.arange(n + 1)[None, :]  # [q, j]
            box = sat[edges[:, None, :, None], edges[None, :, None, :]]  # [qy, qx, j, i]
            self._banks[key] = np.diff(np.diff(box, axis=2), axis=3)
        return self._banks[key]

    # drawing -----------------------------------------------------------------
    def paint(self, sources: SourceSet, index=None, dx: float = 0.0, dy: float = 0.0) -> np.ndarray:
        """Noise-free image of ``sources[index]`` (all by default), moved by ``(dx, dy)`` arcsec."""
        image = np.zeros((self.npix, self.npix))
        idx = np.arange(len(sources)) if index is None else np.asarray(index, int)
        flux = sources.fluxes(self.filt)[idx]
        good = flux > 0
        idx, flux = idx[good], flux[good]
        if not len(idx):
            return image
        s = self.scale
        u = (sources.x[idx] + dx) / s + (self.npix - 1) / 2.0  # 0-based pixel coordinates of the centres
        v = (sources.y[idx] + dy) / s + (self.npix - 1) / 2.0
        cx, cy = np.floor(u + 0.5).astype(int), np.floor(v + 0.5).astype(int)
        fx, fy = u - cx, v - cy  # in [-0.5, 0.5)
        kind, hlr = sources.kind[idx], sources.hlr[idx]
        banked = ((kind == "point") | (hlr <= self.h_compact)) & (flux <= _BANK_FLUX_SIGMA * self.sigma)
        self._paint_banked(image, kind[banked], hlr[banked], flux[banked], cx[banked], cy[banked], fx[banked],
                           fy[banked])
        for k in np.flatnonzero(~banked):
            self._draw_galsim(image, sources.sources[idx[k]], float(flux[k]), int(cx[k]), int(cy[k]),
                              float(fx[k]), float(fy[k]))
        return image

    def _paint_banked(self, image, kind, hlr, flux, cx, cy, fx, fy) -> None:
        if not len(flux):
            return
        kb, npix = self.k_bank, self.npix
        tx, ty = (fx + 0.5) * kb, (fy + 0.5) * kb  # bilinear interpolation between sub-pixel offsets
        qx, qy = np.minimum(tx.astype(int), kb - 1), np.minimum(ty.astype(int), kb - 1)
        wx, wy = tx - qx, ty - qy
        parts: dict = {}  # (kind, size bin) -> (object indices, weights)

        def add(key, ii, ww):
            old = parts.get(key)
            parts[key] = (ii, ww) if old is None else (np.concatenate([old[0], ii]), np.concatenate([old[1], ww]))

        pts = np.flatnonzero(kind == "point")
        if len(pts):
            add(("point", 0), pts, np.ones(len(pts)))
        for kd in ("dev", "exp"):
            sel = np.flatnonzero(kind == kd)
            if not len(sel):
                continue
            t = np.log(np.maximum(hlr[sel], _HLR_BIN0) / _HLR_BIN0) / math.log(_HLR_BIN_STEP)
            b0 = t.astype(int)
            w1 = t - b0
            for b in np.unique(b0):
                m = b0 == b
                add((kd, int(b)), sel[m], 1.0 - w1[m])
                add((kd, int(b) + 1), sel[m], w1[m])
        for key, (ii, ww) in parts.items():
            if not np.any(ww > 0):
                continue
            bank = self._bank(*key)
            n = bank.shape[-1]
            r = n // 2
            ok = (ww > 0) & (cx[ii] >= -r) & (cx[ii] < npix + r) & (cy[ii] >= -r) & (cy[ii] < npix + r)
            ii, ww = ii[ok], ww[ok]
            if not len(ii):
                continue
            ax, ay = wx[ii][:, None, None], wy[ii][:, None, None]
            stamps = ((1 - ay) * ((1 - ax) * bank[qy[ii], qx[ii]] + ax * bank[qy[ii], qx[ii] + 1])
                      + ay * ((1 - ax) * bank[qy[ii] + 1, qx[ii]] + ax * bank[qy[ii] + 1, qx[ii] + 1]))
            stamps *= (flux[ii] * ww)[:, None, None]
            # scatter-add into an image padded by 2r: stamp pixel (j, i) lands on padded (cy + r + j, cx + r + i)
            w = npix + 4 * r
            rows = (cy[ii] + r)[:, None, None] + np.arange(n)[None, :, None]
            cols = (cx[ii] + r)[:, None, None] + np.arange(n)[None, None, :]
            padded = np.bincount((rows * w + cols).ravel(), weights=stamps.ravel(), minlength=w * w).reshape(w, w)
            image += padded[2 * r:2 * r + npix, 2 * r:2 * r + npix]

    def _draw_galsim(self, image, src: Source, flux: float, cx: int, cy: int, fx: float, fy: float) -> None:
        import galsim

        s = self.scale
        r_ext = max(self.psf_radius(flux), self._extent(src.kind, src.hlr))
        rr = min(int(math.ceil(r_ext / s)) + 1, self.npix)
        if cx + rr < 0 or cy + rr < 0 or cx - rr >= self.npix or cy - rr >= self.npix:
            return
        n = 2 * rr + 1
        k = max(1, min(self.k_fine, 1536 // n))
        if src.kind == "point":
            bright = flux > 1e3 * self.sigma  # tight accuracy, or k-space truncation rings around bright stars
            prof = (self.psf_tight if bright else self.psf).withFlux(flux)
        else:
            prof = galsim.Convolve(src.centred_profile().withFlux(flux), self.psf, gsparams=gsparams())
        fine = galsim.ImageD(n * k, n * k, scale=s / k)
        centre = galsim.PositionD(rr * k + (k + 1) / 2.0 + fx * k, rr * k + (k + 1) / 2.0 + fy * k)
        prof.drawImage(image=fine, center=centre)
        self._add(image, fine.array.reshape(n, k, n, k).sum(axis=(1, 3)), cx, cy)


def draw_sources(sources, survey: Survey, band: int, npix: int, scale: float, dx: float = 0.0, dy: float = 0.0,
                 painter: BandPainter | None = None, index=None) -> np.ndarray:
    """Noise-free ``npix x npix`` image (nanomaggies per pixel) of ``sources`` in one band.

    ``sources`` is a list of :class:`Source` or a :class:`SourceSet`; each is
    drawn at ``(x + dx, y + dy)`` arcsec from the image centre (x along
    columns, y along rows, as GalSim) on its own stamp (see the module
    docstring). Pass a ``painter`` to reuse its kernel banks, ``index`` to
    draw only some sources of a set.
    """
    sset = sources if isinstance(sources, SourceSet) else SourceSet(sources)
    p = painter or BandPainter(survey, band, npix, scale)
    return p.paint(sset, index, dx, dy).astype(np.float32)


# ---------------------------------------------------------------------- configuration
@dataclass
class ClusterSimConfig(SkySettings):
    """Settings of a galaxy-cluster simulation (see module docstring; shared fields in :class:`SkySettings`)."""

    surveys: list = field(default_factory=lambda: ["sdss"])
    n_clusters: int = 1000
    views_per_cluster: int = 1
    npix: int = 128
    field_mpc: float = 1.0  # side of the image, physical Mpc (Liang et al.: 1 Mpc)
    z_range: tuple = (0.1, 0.35)
    lambda_range: tuple = (5.0, 150.0)
    lambda_slope: float = 2.0  # dN/dlambda ∝ lambda^-slope
    max_offset: float = 0.1  # centring offsets up to this fraction of the field side (per axis)
    shard_size: int = 64
    id_prefix: str = "cl"

    def validate(self) -> None:
        if int(self.n_clusters) <= 0:
            raise SimulationError(f"n_clusters must be a positive count, got {self.n_clusters}")
        if int(self.views_per_cluster) < 1:
            raise SimulationError(f"views_per_cluster must be >= 1, got {self.views_per_cluster}")
        if int(self.shard_size) <= 0:
            raise SimulationError(f"shard_size must be positive, got {self.shard_size}")
        if int(self.npix) < 8:
            raise SimulationError(f"npix must be >= 8 pixels, got {self.npix}")
        if not (math.isfinite(self.field_mpc) and self.field_mpc > 0):
            raise SimulationError(f"field_mpc must be > 0, got {self.field_mpc}")
        check_surveys(self.surveys)
        try:
            zlo, zhi = (float(v) for v in self.z_range)
            llo, lhi = (float(v) for v in self.lambda_range)
        except (TypeError, ValueError):
            raise SimulationError(f"z_range and lambda_range must be (low, high) pairs, got {self.z_range!r} "
                                  f"and {self.lambda_range!r}") from None
        if not 0.0 < zlo <= zhi <= 3.0:
            raise SimulationError(f"z_range must be (low, high) with 0 < low <= high <= 3, got {self.z_range}")
        if not 0.0 < llo <= lhi:
            raise SimulationError(f"lambda_range must be (low, high) with 0 < low <= high, got {self.lambda_range}")
        if not math.isfinite(self.lambda_slope):
            raise SimulationError(f"lambda_slope must be finite, got {self.lambda_slope}")
        if not 0.0 <= self.max_offset <= 0.5:
            raise SimulationError(f"max_offset must be in [0, 0.5] (fraction of the field), got {self.max_offset}")
        check_splits(self.splits)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        # a survey given as a YAML file is recorded by its content: an edited file is other settings (a resumed
        # simulation refuses it instead of mixing two specs); built-in names stay names
        d["surveys"] = [s if isinstance(s, str) and not s.lower().endswith((".yaml", ".yml"))
                        else get_survey(s).to_dict() for s in self.surveys]
        d["z_range"] = list(self.z_range)
        d["lambda_range"] = list(self.lambda_range)
        return d


def pixel_scale_for(survey: Survey, z: float, npix: int, field_mpc: float = 1.0) -> float:
    """Pixel scale (arcsec) of a ``field_mpc`` field at redshift ``z``: never finer than the survey's pixels."""
    return float(max(survey.pixel_scale, field_mpc * float(arcsec_per_mpc(z)) / npix))


_STATE: dict = {}


def _setup(config: dict):
    key = json.dumps(config, sort_keys=True, default=str)
    if _STATE.get("key") != key:
        cfg = ClusterSimConfig(**dict(config))
        _STATE.clear()
        _STATE.update(key=key, cfg=cfg, surveys=[get_survey(s) for s in cfg.surveys])
    return _STATE["cfg"], _STATE["surveys"]


def cluster_truth(cfg: ClusterSimConfig, cluster: int) -> tuple[ClusterMembers, dict]:
    """Members and sky placement of cluster ``cluster`` of a run (deterministic in ``cfg.seed``)."""
    rng = object_seed(cfg.seed, cluster, "cluster")
    z = _sample_redshift(rng, *map(float, cfg.z_range))
    lam = _sample_powerlaw(rng, *map(float, cfg.lambda_range), float(cfg.lambda_slope))
    members = sample_members(lam, z, object_seed(cfg.seed, cluster, "members"))
    pos = object_seed(cfg.seed, cluster, "sky")
    dec = float(np.clip(cfg.dec_center + pos.uniform(-0.5, 0.5) * cfg.field_size_deg, -89.9, 89.9))
    ra = float((cfg.ra_center + pos.uniform(-0.5, 0.5) * cfg.field_size_deg / max(math.cos(math.radians(dec)), 0.05))
               % 360.0)
    split_names = list(cfg.splits)
    sp = np.array([cfg.splits[k] for k in split_names], float)
    split = split_names[int(object_seed(cfg.seed, cluster, "split").choice(len(sp), p=sp / sp.sum()))]
    return members, {"ra": ra, "dec": dec, "split": split}


def _cluster_scene(cfg: ClusterSimConfig, surveys, cluster: int) -> dict:
    """Everything of a cluster that every view shares (cached: views of a cluster are consecutive)."""
    cached = _STATE.get("scene")
    if cached is not None and cached["cluster"] == cluster:
        return cached
    members, place = cluster_truth(cfg, cluster)
    apm = float(arcsec_per_mpc(members.z))
    scales = {s.name: pixel_scale_for(s, members.z, cfg.npix, cfg.field_mpc) for s in surveys}
    half = max(scales.values()) * cfg.npix / 2.0
    half_sample = half * (1.0 + 2.0 * cfg.max_offset) + 5.0  # every view's image plus a margin
    hlr = np.maximum(members.hlr_kpc * 1e-3 * apm, 0.05)
    member_srcs = [Source(c, float(members.x_mpc[k] * apm), float(members.y_mpc[k] * apm), float(hlr[k]), "dev")
                   for k, c in enumerate(member_components(members, apm))]
    mag_limit = max(s.depth[reference_band(s)] for s in surveys) + 0.5
    fs = scene.sample_field(object_seed(cfg.seed, cluster, "scene"), half_sample, mag_limit, stars=cfg.stars,
                            galaxies=cfg.field_galaxies, galactic_latitude=cfg.galactic_latitude)
    sources = SourceSet(member_srcs + sources_from_field(fs))
    n_mem = len(member_srcs)
    mags = np.concatenate([members.mag_r, np.asarray(fs.mag, float)])
    kind = np.array(["member"] * n_mem + list(fs.kind), dtype="<U6")
    _STATE["scene"] = dict(cluster=cluster, members=members, place=place, apm=apm, scales=scales, sources=sources,
                           mags=mags, kind=kind, painters={})
    return _STATE["scene"]


def source_pixels(config: dict, i: int, survey: str) -> dict:
    """Pixel positions (column, row; 0-based) of the sources of row ``i`` of a cluster run as seen by ``survey``.

    ``config`` is the run's settings (``simulation.json``'s ``config``).
    Returns arrays ``x``, ``y``, ``kind`` (member / star / galaxy) and ``mag``
    (reference band) of the sources drawn inside the image (members, and
    neighbours brighter than the survey's depth + 0.5 mag); members first (the
    BCG is member 0).
    """
    cfg, surveys = _setup(config)
    views = int(cfg.views_per_cluster)
    cluster, view = divmod(int(i), views)
    sc = _cluster_scene(cfg, surveys, cluster)
    off = object_seed(cfg.seed, cluster, "offset", view).uniform(-1.0, 1.0, 2) * cfg.max_offset * cfg.field_mpc
    ox, oy = float(off[0] * sc["apm"]), float(off[1] * sc["apm"])
    scale = sc["scales"][survey]
    sv = next(x for x in surveys if x.name == survey)
    u = (sc["sources"].x + ox) / scale + (cfg.npix - 1) / 2.0
    v = (sc["sources"].y + oy) / scale + (cfg.npix - 1) / 2.0
    visible = (sc["kind"] == "member") | (np.asarray(sc["mags"]) < sv.depth[reference_band(sv)] + 0.5)  # as drawn
    inside = visible & (u >= -0.5) & (u <= cfg.npix - 0.5) & (v >= -0.5) & (v <= cfg.npix - 0.5)
    return {"x": u[inside], "y": v[inside], "kind": sc["kind"][inside], "mag": np.asarray(sc["mags"])[inside]}


def render_cluster(i: int, config: dict) -> dict:
    """Producer for :func:`~labelsky.data.simulate.runner.run_shards`: view ``i % views`` of cluster ``i // views``.

    Returns ``{survey_name: (image [bands, npix, npix] float32, row dict)}``.
    """
    cfg, surveys = _setup(config)
    views = int(cfg.views_per_cluster)
    cluster, view = divmod(int(i), views)
    sc = _cluster_scene(cfg, surveys, cluster)
    members, apm, sources, kind = sc["members"], sc["apm"], sc["sources"], sc["kind"]
    off = object_seed(cfg.seed, cluster, "offset", view).uniform(-1.0, 1.0, 2) * cfg.max_offset * cfg.field_mpc
    ox, oy = float(off[0] * apm), float(off[1] * apm)  # cluster centre relative to the image centre, arcsec
    x, y = sources.x + ox, sources.y + oy  # positions in the image frame
    cluster_id = f"{cfg.id_prefix}-{cluster:07d}"
    npix = int(cfg.npix)
    out = {}
    for survey in surveys:
        scale = sc["scales"][survey.name]
        half = npix * scale / 2.0
        margin = 3.0 + 2.0 * scale
        visible = (kind == "member") | (sc["mags"] < survey.depth[reference_band(survey)] + 0.5)
        near = visible & (np.abs(x) <= half + margin) & (np.abs(y) <= half + margin)
        inside = visible & (np.abs(x) <= half) & (np.abs(y) <= half)
        painters = sc["painters"].setdefault(survey.name, [None] * survey.n_bands)
        noise_rng = object_seed(cfg.seed, cluster, "noise", view, survey.name)
        bands = []
        for b in range(survey.n_bands):
            if painters[b] is None:
                painters[b] = BandPainter(survey, b, npix, scale)
            bands.append(draw_sources(sources, survey, b, npix, scale, dx=ox, dy=oy, painter=painters[b],
                                      index=np.flatnonzero(near)))
        image = np.stack(bands)
        if cfg.noise:  # all bands at once: add_noise takes band b's noise from the b-th plane
            image = add_noise(image, survey, noise_rng, pixel_scale=scale, source_noise=cfg.source_noise)
            if cfg.sky_residuals:
                for b in range(survey.n_bands):
                    image[b] += scene.sky_residual(image.shape[1:], survey.noise_sigma(b, scale), noise_rng)
        image = image.astype(np.float32)
        row = {
            "id_str": f"{cluster_id}-v{view}", "ra": sc["place"]["ra"], "dec": sc["place"]["dec"],
            "survey": survey.name, "split": sc["place"]["split"], "label": -1, "label_name": "",
            "votes_smooth": -1, "votes_featured": -1, "votes_artifact": -1,
            "richness": float(members.lambda_true),
            "cluster_id": cluster_id, "view": int(view),
            "true_redshift": float(members.z), "true_lambda_target": float(members.lambda_target),
            "n_members": int(members.n), "n_members_in_image": int(np.sum(inside & (kind == "member"))),
            "true_m_star_r": float(members.m_star_r), "true_bcg_mag_r": float(members.mag_r[0]),
            "true_r_lambda_mpc": float(members.r_lambda_mpc),
            "true_r_lambda_arcsec": float(members.r_lambda_mpc * apm),
            "true_r200m_mpc": float(members.r_max_mpc),
            "pixel_scale": float(scale), "field_arcsec": float(npix * scale), "field_mpc": float(npix * scale / apm),
            "true_center_dx_arcsec": ox, "true_center_dy_arcsec": oy,
            "true_center_offset_kpc": float(math.hypot(ox, oy) / apm * 1e3),
            "n_neighbour_stars": int(np.sum(inside & (kind == "star"))),
            "n_neighbour_galaxies": int(np.sum(inside & (kind == "galaxy"))),
        }
        out[survey.name] = (image, row)
    return out


def simulate_clusters(out, config: ClusterSimConfig | None = None, workers: int | None = None,
                      overwrite: bool = False, progress: bool = True, reuse: bool = False, **kwargs) -> dict:
    """Simulate galaxy-cluster fields; returns ``{survey_name: LabelskyDataset}``.

    ``kwargs`` override fields of ``config`` (e.g. ``n_clusters=500``). One
    catalog row per (cluster, view); ``richness`` holds ``lambda_true`` and
    ``cluster_id`` groups the views of a cluster (they share the split).
    With ``reuse``, a finished simulation with the same settings at ``out`` is
    returned as it is.
    """
    cfg = dataclasses.replace(config or ClusterSimConfig(), **kwargs)
    try:
        cfg.validate()
    except SurveyError as err:
        raise SimulationError(str(err)) from None
    out = Path(out)
    config_dict = cfg.to_dict()
    if reuse and not overwrite and is_finished(out, config_dict):
        from labelsky.data.simulate.stamps import open_simulation

        return open_simulation(out)
    prepare_output(out, config_dict, overwrite,
                   inputs=[s for s in cfg.surveys if isinstance(s, (str, Path)) and Path(s).is_file()])
    surveys = [get_survey(s) for s in cfg.surveys]
    n_objects = int(cfg.n_clusters) * int(cfg.views_per_cluster)
    n_shards = (n_objects + cfg.shard_size - 1) // cfg.shard_size
    writers = {}
    for s in surveys:
        writers[s.name] = DatasetWriter(out / s.name, s, (s.n_bands, cfg.npix, cfg.npix), classes=[],
                                        n_shards=n_shards, config=config_dict, producer="labelsky.simulate_clusters",
                                        extra_meta={"seed": cfg.seed, "kind": "clusters"})
    run_shards(out, render_cluster, config_dict, n_objects, cfg.shard_size, writers,
               workers=workers or default_workers(), progress=progress, desc="simulating clusters")
    result = {name: w.finalize() for name, w in writers.items()}
    finish_output(out, config_dict, {name: out / name for name in result})
    return result
