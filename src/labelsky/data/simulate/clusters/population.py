"""Cluster members: the red-sequence galaxies of a cluster of richness lambda, their colours, sizes and fluxes,
and the richness a redMaPPer-like count gives them."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from labelsky.data import photometry
from labelsky.data.simulate.clusters.cosmology import (
    _ANCHOR_WAVE,
    BCG_LUM_RANGE,
    BCG_SIZE_FACTOR,
    HLR_LSTAR_KPC,
    HLR_SCATTER_DEX,
    HLR_SLOPE,
    HUBBLE_H,
    LUM_CUT,
    RED_SEQUENCE_SCATTER,
    RS_NFW_MPC_H,
    _nfw_projected_mass,
    _sample_nfw_radii,
    _sample_schechter,
    _schechter_table,
    m_star_r,
    r200m_mpc,
    r_lambda_mpc,
)
from labelsky.data.simulate.render import Component, gsparams


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


