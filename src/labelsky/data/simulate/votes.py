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

The rest of the Galaxy Zoo DECaLS tree (:data:`labelsky.data.vote_trees.DECALS_DR5`,
:func:`sample_tree_votes`) follows each galaxy's truth: edge-on from the
class and axis ratio, spiral arms, their winding (pitch angle) and count, the
bar and its strength, the bulge fraction, the axis ratio of smooth galaxies
and mergers. The volunteers flow down the tree as in Galaxy Zoo: a question
gets the votes of its parent answers (the "featured-or-disk" voters are asked
"edge-on?", and so on), and every question's mean answer moves toward an
"unresolved" default (no arms, no bar, arm count "can't tell") as the
features' visibility falls, so the featured share and everything below it
shrink where features are unresolved.
"""

from __future__ import annotations

import math

import numpy as np

from labelsky.data.surveys import Survey

__all__ = ["ANSWERS", "class_vote_mean", "feature_visibility", "sample_votes", "sample_tree_votes",
           "tree_vote_means"]

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


_SPIRALS = ("spiral", "barred_spiral")
#: each question's mean answers where features are unresolved (visibility 0)
_UNRESOLVED = {
    "disk-edge-on": (0.25, 0.75), "has-spiral-arms": (0.2, 0.8), "bar": (0.03, 0.12, 0.85),
    "bulge-size": (0.1, 0.25, 0.35, 0.2, 0.1), "edge-on-bulge": (0.15, 0.45, 0.4),
    "spiral-winding": (0.3, 0.45, 0.25), "spiral-arm-count": (0.03, 0.2, 0.05, 0.02, 0.02, 0.68),
    "merging": (0.8, 0.14, 0.04, 0.02),
}


def _bumps(x: float, centres, width: float) -> np.ndarray:
    w = np.exp(-((x - np.asarray(centres, dtype=float)) / width) ** 2) + 1e-3
    return w / w.sum()


def _finite(t: dict, key: str, default: float) -> float:
    v = t.get(key, default)
    return float(v) if v is not None and np.isfinite(v) else default


def tree_vote_means(cls: str, truth: dict, visibility: float) -> dict:
    """Mean answer fractions of every question below the first of the GZ DECaLS tree, from a galaxy's truth."""
    q = _finite(truth, "true_q", 0.7)
    bt = _finite(truth, "true_bulge_frac", 0.6 if cls in ("elliptical", "lens") else 0.3)
    if cls == "edge_on":
        edge = (0.92, 0.08)
    elif cls in _SPIRALS or cls == "smooth_disk":
        p = 0.05 + 0.4 * float(np.clip((0.5 - q) / 0.15, 0, 1))
        edge = (p, 1 - p)
    else:
        edge = (0.08, 0.92)
    arms = {"spiral": (0.9, 0.1), "barred_spiral": (0.9, 0.1), "merger": (0.35, 0.65),
            "smooth_disk": (0.12, 0.88)}.get(cls, (0.15, 0.85))
    if cls == "barred_spiral":
        s = float(np.clip((_finite(truth, "true_bar_frac", 0.1) - 0.08) / 0.12, 0, 1))
        bar = (0.3 + 0.4 * s, 0.5 - 0.3 * s, 0.2)
    else:
        bar = (0.02, 0.08, 0.9)
    if cls in _SPIRALS:
        winding = _bumps(_finite(truth, "true_pitch_deg", 22.0), (12, 22, 32), 7.0)
        n = int(_finite(truth, "true_n_arms", 2))
        count = np.full(6, 0.02)
        count[min(n, 5) - 1] = 0.7
        count[5] = 0.1
    else:
        winding, count = (0.3, 0.4, 0.3), (0.05, 0.25, 0.05, 0.02, 0.03, 0.6)
    edge_bulge = ((0.1, 0.75, 0.15) if bt < 0.05 else (0.25, 0.1, 0.65)) if cls == "edge_on" else (0.15, 0.35, 0.5)
    merging = {"merger": (0.05, 0.15, 0.3, 0.5), "lens": (0.6, 0.3, 0.07, 0.03)}.get(cls, (0.85, 0.11, 0.03, 0.01))
    seen = {"disk-edge-on": edge, "has-spiral-arms": arms, "bar": bar,
            "bulge-size": _bumps(bt, (0.75, 0.55, 0.35, 0.18, 0.04), 0.1), "edge-on-bulge": edge_bulge,
            "spiral-winding": winding, "spiral-arm-count": count, "merging": merging}
    out = {k: visibility * np.asarray(v, float) + (1 - visibility) * np.asarray(_UNRESOLVED[k])
           for k, v in seen.items()}
    # the outline is seen at any resolution: roundness follows the axis ratio
    out["how-rounded"] = _bumps(q, (0.9, 0.62, 0.3), 0.12)
    return {k: v / v.sum() for k, v in out.items()}


def sample_tree_votes(cls: str, truth: dict, visibility: float, first: np.ndarray, rng: np.random.Generator,
                      kappa: float = KAPPA) -> np.ndarray:
    """Vote counts of every answer of the GZ DECaLS tree (its column order), given the first question's counts
    ``first`` (smooth, featured, artifact): each question gets the votes of its parent answers and splits them
    ``~ Multinomial(N, p)``, ``p ~ Dirichlet(kappa * mean)``."""
    from labelsky.data.vote_trees import DECALS_DR5 as tree

    means = tree_vote_means(cls, truth, visibility)
    counts: dict = {}
    for q in tree.questions:
        if not q.parents:
            c = np.asarray(first, dtype=np.int64)
        else:
            n = int(sum(counts[pq][tree.question(pq).answers.index(pa)] for pq, pa in q.parents))
            c = rng.multinomial(n, rng.dirichlet(kappa * means[q.name])) if n > 0 else np.zeros(len(q.answers),
                                                                                                  np.int64)
        counts[q.name] = np.asarray(c, dtype=np.int64)
    return np.concatenate([counts[q.name] for q in tree.questions])
