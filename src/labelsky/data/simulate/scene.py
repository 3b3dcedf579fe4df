"""What surrounds a target: stars and field galaxies at survey-depth densities, sky residuals.

Surface densities (per square arcminute, reference band r):

* field galaxies: ``N(<m) = 20 * 10**(0.31 (m - 24))``. This matches the
  deep-field counts that give about 40 galaxies per arcmin^2 to i ~ 25.3 (the
  LSST gold sample, LSST Science Book 2009, sec. 3.7) and about 4 per arcmin^2
  to r ~ 22 (SDSS photometric galaxies, Yasuda et al. 2001, AJ 122, 1104).
* stars at galactic latitude b: ``N(<m) = 0.5 * 10**(0.15 (m - 22)) * sin(60 deg) / sin|b|``,
  about 0.5 per arcmin^2 to r = 22 at b = 60 deg (Besancon-model counts,
  Robin et al. 2003, A&A 409, 523), flattening towards faint magnitudes.

Objects are sampled down to half a magnitude below the r depth of the deepest survey
of the run; each survey draws those brighter than its own r depth + 0.5, so faint neighbours
sit in its background as in real cutouts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from labelsky.data.simulate.render import Component, gsparams

__all__ = ["FieldSample", "sample_field", "galaxy_density", "star_density", "sky_residual"]


def galaxy_density(m: float) -> float:
    """Cumulative field-galaxy density brighter than ``m`` (per arcmin^2)."""
    return 20.0 * 10.0 ** (0.31 * (m - 24.0))


def star_density(m: float, galactic_latitude: float = 60.0) -> float:
    """Cumulative star density brighter than ``m`` (per arcmin^2)."""
    b = max(abs(galactic_latitude), 10.0)
    return 0.5 * 10.0 ** (0.15 * (m - 22.0)) * math.sin(math.radians(60.0)) / math.sin(math.radians(b))


def _sample_powerlaw_mags(rng, n, m_lo, m_hi, slope):
    """Magnitudes with cumulative counts proportional to 10**(slope m) in [m_lo, m_hi]."""
    a, b = 10.0 ** (slope * m_lo), 10.0 ** (slope * m_hi)
    return np.log10(a + rng.random(n) * (b - a)) / slope


@dataclass
class FieldSample:
    """Neighbouring objects around a target (positions in arcsec from the centre)."""

    components: list = field(default_factory=list)
    kind: list = field(default_factory=list)  # "star" / "galaxy" per component
    x: list = field(default_factory=list)
    y: list = field(default_factory=list)
    mag: list = field(default_factory=list)
    hlr: list = field(default_factory=list)

    def within(self, half_side: float, margin: float = 0.0) -> "FieldSample":
        """Only the objects whose centres lie within ``half_side + margin`` of the centre."""
        keep = [i for i in range(len(self.x))
                if abs(self.x[i]) <= half_side + margin and abs(self.y[i]) <= half_side + margin]
        return FieldSample(*[[getattr(self, f)[i] for i in keep] for f in
                             ("components", "kind", "x", "y", "mag", "hlr")])

    def count(self, kind: str, half_side: float) -> int:
        return sum(1 for i in range(len(self.x)) if self.kind[i] == kind
                   and abs(self.x[i]) <= half_side and abs(self.y[i]) <= half_side)


def sample_field(rng: np.random.Generator, half_side: float, mag_limit: float, stars: bool = True,
                 galaxies: bool = True, galactic_latitude: float = 60.0, star_mag_bright: float = 12.0,
                 galaxy_mag_bright: float = 16.0, exclude_radius: float = 0.0, star_scale: float = 1.0,
                 galaxy_scale: float = 1.0) -> FieldSample:
    """Stars and field galaxies in a square of side ``2 * half_side`` arcsec.

    Counts are Poisson with the densities of this module down to
    ``mag_limit``, times ``star_scale`` and ``galaxy_scale`` (0: none);
    ``exclude_radius`` keeps a hole around the target centre free (set 0 to
    allow chance alignments on the target itself).
    """
    import galsim

    out = FieldSample()
    area = (2.0 * half_side / 60.0) ** 2  # arcmin^2
    if galaxies and mag_limit > galaxy_mag_bright:
        n = rng.poisson(area * (galaxy_density(mag_limit) - galaxy_density(galaxy_mag_bright)) * galaxy_scale)
        mags = _sample_powerlaw_mags(rng, n, galaxy_mag_bright, mag_limit, 0.31)
        for m in mags:
            x, y = rng.uniform(-half_side, half_side, 2)
            if math.hypot(x, y) < exclude_radius:
                continue
            hlr = float(np.clip(10 ** (-0.05 - 0.12 * (m - 20.0) + rng.normal(0, 0.15)), 0.15, 6.0))
            disk = rng.random() < 0.7
            q = rng.uniform(0.3, 1.0) if disk else rng.uniform(0.55, 1.0)
            sed = rng.choice(["Sbc", "Scd", "Im"]) if disk else "E"
            z = float(np.clip(0.3 + 0.15 * (m - 20.0) + rng.normal(0, 0.1), 0.03, 2.5))
            prof = (galsim.Exponential(half_light_radius=hlr, gsparams=gsparams()) if disk
                    else galsim.DeVaucouleurs(half_light_radius=hlr, trunc=8 * hlr, gsparams=gsparams()))
            e = (1 - q) / (1 + q)
            prof = prof.shear(e=e, beta=rng.uniform(0, math.pi) * galsim.radians).shift(x, y)
            out.components.append(Component(prof, float(10 ** (-0.4 * (m - 22.5))), str(sed), z))
            out.kind.append("galaxy"), out.x.append(x), out.y.append(y), out.mag.append(float(m))
            out.hlr.append(hlr)
    if stars and mag_limit > star_mag_bright:
        n = rng.poisson(area * (star_density(mag_limit, galactic_latitude)
                                - star_density(star_mag_bright, galactic_latitude)) * star_scale)
        mags = _sample_powerlaw_mags(rng, n, star_mag_bright, mag_limit, 0.15)
        for m in mags:
            x, y = rng.uniform(-half_side, half_side, 2)
            if math.hypot(x, y) < exclude_radius:
                continue
            temp = float(np.clip(rng.lognormal(math.log(5000.0), 0.25), 2800.0, 20000.0))
            prof = galsim.DeltaFunction().shift(x, y)
            out.components.append(Component(prof, float(10 ** (-0.4 * (m - 22.5))), "star", temp, point=True))
            out.kind.append("star"), out.x.append(x), out.y.append(y), out.mag.append(float(m))
            out.hlr.append(0.0)
    return out


def sky_residual(shape, sigma: float, rng: np.random.Generator, amplitude: float = 0.3) -> np.ndarray:
    """Imperfect sky subtraction: a tilted plane plus a large-scale ripple.

    Amplitudes are a fraction ``amplitude`` of the pixel noise ``sigma``, as
    left by sky models fit on scales of arcminutes (e.g. SDSS DR7 sky
    residuals around bright galaxies; Blanton et al. 2011, AJ 142, 31).
    """
    ny, nx = shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    u, v = (xx - nx / 2) / nx, (yy - ny / 2) / ny
    gx, gy = rng.normal(0, amplitude, 2)
    k = rng.uniform(0.3, 1.2)
    phase = rng.uniform(0, 2 * math.pi)
    ang = rng.uniform(0, math.pi)
    ripple = rng.normal(0, amplitude) * np.sin(2 * math.pi * k * (u * math.cos(ang) + v * math.sin(ang)) + phase)
    offset = rng.normal(0, amplitude / 2)
    return (sigma * (offset + gx * u + gy * v + ripple)).astype(np.float32)
