"""Galaxy Zoo-style volunteer votes for "smooth / featured / artifact".

Per galaxy and survey: answer probabilities ``p ~ Dirichlet(kappa * mu)`` with
``kappa = 20`` (30 for ellipticals) and votes ``~ Multinomial(N, p)``. The mean answer ``mu``
depends on the class and on how visible its features are in that survey's
image: ``mu = v * mu_class + (1 - v) * mu_smooth``, so faint or poorly
resolved features shift "featured" votes to "smooth", the bias that Galaxy
Zoo debiasing corrects (Hart et al. 2016, MNRAS 461, 3663). The number of
volunteers follows Galaxy Zoo DECaLS retirement (about 40 votes; a tail of
galaxies with only 3-20; Walmsley et al. 2022, MNRAS 509, 3966).

Calibration: Khan et al. 2019 (Table I) kept, of the SDSS galaxies in the
DES footprint, 516 of 6,677 spirals (7.7 %) above a spiral vote fraction of
0.985 and 550 of 5,904 ellipticals (9.3 %) above an elliptical fraction of
0.926 (their high-probability test sets against the full overlap). The
spiral and elliptical means and the elliptical ``kappa`` below are set so
that the SDSS main sample (r 14-17.77, :data:`labelsky.data.simulate.samples.PAPER_SAMPLES`
``khan2019``) gives the same order: 7 % of the galaxies voted mostly
featured pass 0.985 and 9-10 % of those voted mostly smooth pass 0.926
(``tests/data/simulate/test_samples.py`` checks it). Raw fractions stand in
for the paper's debiased ones.
"""

from __future__ import annotations

import math

import numpy as np

from labelsky.data.surveys import Survey

__all__ = ["ANSWERS", "class_vote_mean", "feature_visibility", "sample_votes"]

ANSWERS = ("smooth", "featured", "artifact")
KAPPA = 20.0
_KAPPA = {"elliptical": 30.0}  # calibrated (see the module docstring)

_MU = {
    "elliptical": (0.77, 0.20, 0.03),
    "smooth_disk": (0.65, 0.32, 0.03),
    "spiral": (0.03, 0.95, 0.02),
    "barred_spiral": (0.03, 0.95, 0.02),
    "edge_on": (0.22, 0.75, 0.03),
    "merger": (0.25, 0.68, 0.07),
    "lens": (0.60, 0.34, 0.06),
    "artifact": (0.08, 0.07, 0.85),
}
_MU_SMOOTH = (0.85, 0.12, 0.03)


def class_vote_mean(cls: str) -> np.ndarray:
    return np.asarray(_MU.get(cls, _MU_SMOOTH), dtype=float)


def _sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


def feature_visibility(mag_r: float, hlr: float, survey: Survey) -> float:
    """How visible a galaxy's internal features are in ``survey`` (0-1).

    Resolution: half-light radius against the r-band (or middle band) PSF;
    depth: the features, about 1.5 mag fainter than the galaxy, against
    the 5-sigma depth minus 2.5 mag (an S/N of ~50 needed to see structure).
    """
    b = survey.bands.index("r") if "r" in survey.bands else survey.n_bands // 2
    if not np.isfinite(hlr) or not np.isfinite(mag_r):
        return 0.0
    res = _sigmoid((math.log(max(hlr, 1e-3) / survey.psf_fwhm[b]) - math.log(1.2)) / 0.3)
    depth = _sigmoid((survey.depth[b] - 2.5 - (mag_r + 1.5)) / 0.6)
    return float(res * depth)


def sample_votes(cls: str, visibility: float, rng: np.random.Generator, kappa: float | None = None) -> np.ndarray:
    """Vote counts (smooth, featured, artifact) for one galaxy in one survey (``kappa``: the class's by default)."""
    kappa = _KAPPA.get(cls, KAPPA) if kappa is None else kappa
    mu = visibility * class_vote_mean(cls) + (1 - visibility) * np.asarray(_MU_SMOOTH)
    if cls == "artifact":
        mu = class_vote_mean(cls)
    p = rng.dirichlet(kappa * mu / mu.sum())
    n = int(rng.integers(3, 21)) if rng.random() < 0.12 else int(35 + rng.poisson(7))
    return rng.multinomial(n, p)
