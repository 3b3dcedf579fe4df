"""Domain randomisation: per-object nuisance levels for the galaxy-cutout simulator.

With ``GalaxySimConfig(randomise=Randomisation(...))`` every object draws its
own observing conditions instead of its survey's fixed ones, so that a
classifier trained on the simulation does not learn one rendering of the
nuisances. Each level is uniform in a ``(low, high)`` range:

================== ============= ======================================================== =============
field              default       what it scales                                           catalog column
================== ============= ======================================================== =============
``psf``            (0.7, 1.5)    PSF FWHM of every band (factor)                          ``rand_psf_scale``
``depth``          (-1.0, 0.5)   5-sigma depth of every band (shift, mag; > 0 deeper)     ``rand_depth_shift``
``sky_residuals``  (0.0, 2.0)    amplitude of the sky-subtraction residuals (factor)      ``rand_sky_residual_scale``
``stars``          (0.0, 2.0)    surface density of neighbouring stars (factor)           ``rand_star_density_scale``
``field_galaxies`` (0.0, 2.0)    surface density of neighbouring field galaxies (factor)  ``rand_galaxy_density_scale``
``gain``           (0.9, 1.1)    calibration of each band, drawn per band (factor)        ``rand_gain_<band>``
``saturation``     (0.5, 2.0)    full-well (saturation) level of the pixels (factor)      ``rand_saturation_scale``
================== ============= ======================================================== =============

A range ``(x, x)`` fixes a level (``stars=(0, 0)``: no neighbouring stars;
``psf=(1, 1)``: the survey's own PSF). The neighbour densities describe the
sky and are drawn once per object (shared by every survey that sees it); the
other levels describe one observation and are drawn per object and survey.
Every level of object ``i`` comes from :func:`labelsky.utils.object_seed`
(seed, i, ``"randomise"``, ...), so the output stays independent of the
number of workers. A nuisance switched off (``stars=False``, ``noise=False``,
...) stays off whatever its range.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass

import numpy as np

from labelsky.data.simulate.runner import SimulationError
from labelsky.utils import object_seed

__all__ = ["Randomisation", "parse_randomisation", "scene_levels", "observation_levels", "level_columns",
           "RANDOM_COLUMNS"]

#: Catalog column of each scalar level (gain adds one ``rand_gain_<band>`` column per band).
RANDOM_COLUMNS = {
    "psf": "rand_psf_scale", "depth": "rand_depth_shift", "sky_residuals": "rand_sky_residual_scale",
    "stars": "rand_star_density_scale", "field_galaxies": "rand_galaxy_density_scale",
    "saturation": "rand_saturation_scale",
}

#: (smallest allowed low, whether low may equal it) and a description, per field.
_BOUNDS = {
    "psf": (0.0, False, "PSF FWHM factors > 0"),
    "depth": (-math.inf, False, "depth shifts in magnitudes"),
    "sky_residuals": (0.0, True, "amplitude factors >= 0"),
    "stars": (0.0, True, "density factors >= 0"),
    "field_galaxies": (0.0, True, "density factors >= 0"),
    "gain": (0.0, False, "gain factors > 0"),
    "saturation": (0.0, False, "full-well factors > 0"),
}


def _is_number(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(float(v))


@dataclass(frozen=True)
class Randomisation:
    """Ranges of the per-object nuisance levels (see the module docstring for the table).

    Parameters
    ----------
    psf
        Factor on the survey's PSF FWHM (every band alike).
    depth
        Shift of the survey's 5-sigma depth in magnitudes (every band alike;
        positive is deeper, i.e. less sky noise). The pixel noise scales as
        ``10**(-0.4 shift)``; it does not depend on the PSF factor, so a wider
        PSF also makes the point-source depth shallower.
    sky_residuals
        Factor on the amplitude of the sky-subtraction residuals.
    stars, field_galaxies
        Factors on the surface densities of neighbouring stars and field galaxies.
    gain
        Calibration factor of each band's image (drawn independently per band):
        the colour balance.
    saturation
        Factor on the pixel level at which the survey saturates.

    Each is a ``(low, high)`` pair with ``low <= high`` (or one number, a
    fixed level); a bad range raises :class:`SimulationError` naming the field.
    """

    psf: tuple = (0.7, 1.5)
    depth: tuple = (-1.0, 0.5)
    sky_residuals: tuple = (0.0, 2.0)
    stars: tuple = (0.0, 2.0)
    field_galaxies: tuple = (0.0, 2.0)
    gain: tuple = (0.9, 1.1)
    saturation: tuple = (0.5, 2.0)

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if _is_number(value):
                value = (value, value)
            floor, inclusive, what = _BOUNDS[f.name]
            ok = (isinstance(value, (tuple, list)) and len(value) == 2 and all(_is_number(v) for v in value)
                  and value[0] <= value[1] and (value[0] >= floor if inclusive else value[0] > floor))
            if not ok:
                raise SimulationError(f"randomise {f.name}: expected (low, high) with low <= high, {what}; "
                                      f"got {value!r}")
            object.__setattr__(self, f.name, (float(value[0]), float(value[1])))

    @classmethod
    def from_value(cls, value) -> "Randomisation | None":
        """``None``/``False``: no randomisation; ``True``: the defaults; a dict of fields, or a
        :class:`Randomisation`."""
        if value is None or value is False:
            return None
        if value is True:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, dict):
            names = [f.name for f in dataclasses.fields(cls)]
            unknown = sorted(set(value) - set(names))
            if unknown:
                raise SimulationError(f"randomise: unknown nuisance(s) {unknown}; expected some of {names}")
            return cls(**value)
        raise SimulationError(f"randomise: expected True, a Randomisation or a dict of (low, high) ranges, "
                              f"got {value!r}")

    def to_dict(self) -> dict:
        return {k: list(v) for k, v in dataclasses.asdict(self).items()}


def parse_randomisation(text: str | None) -> Randomisation:
    """The defaults overridden by ``text``: ``"psf=0.7:1.5,depth=-1:0.5,stars=0"``.

    The grammar of :func:`labelsky.data.ranges.parse_ranges`: ``NAME=LOW:HIGH``
    or ``NAME=VALUE`` (a fixed level); names are the fields of
    :class:`Randomisation`. An empty text gives the defaults.
    """
    from labelsky.data.ranges import parse_ranges

    names = [f.name for f in dataclasses.fields(Randomisation)]
    ranges = parse_ranges(text, names, error=SimulationError)
    return Randomisation(**{k: (v[0], v[-1]) for k, v in ranges.items()})


def _uniform(rng: np.random.Generator, bounds: tuple) -> float:
    lo, hi = bounds
    return float(lo + (hi - lo) * rng.random())


def scene_levels(r: Randomisation, seed: int, index: int) -> dict:
    """Neighbour-density factors of object ``index``: ``{"stars": f, "field_galaxies": f}``."""
    rng = object_seed(seed, index, "randomise", "scene")
    return {"stars": _uniform(rng, r.stars), "field_galaxies": _uniform(rng, r.field_galaxies)}


def observation_levels(r: Randomisation, seed: int, index: int, survey) -> dict:
    """Levels of object ``index`` as seen by ``survey``: psf, depth, sky_residuals, saturation, gain (per band)."""
    rng = object_seed(seed, index, "randomise", survey.name)
    levels = {k: _uniform(rng, getattr(r, k)) for k in ("psf", "depth", "sky_residuals", "saturation")}
    levels["gain"] = [_uniform(rng, r.gain) for _ in range(survey.n_bands)]
    return levels


def level_columns(scene: dict, obs: dict, survey) -> dict:
    """Catalog columns of one object's levels in one survey."""
    levels = {**scene, **obs}
    cols = {col: float(levels[k]) for k, col in RANDOM_COLUMNS.items()}
    cols.update({f"rand_gain_{b}": float(g) for b, g in zip(survey.bands, obs["gain"])})
    return cols
