"""Galaxy10 DECaLS-style labels from the simulator's truth (for 10-class experiments).

Galaxy10 DECaLS (Leung & Bovy 2019; Walmsley et al. 2022 votes) has ten classes. labelsky derives them from
the truth columns of simulated galaxies:

=====  ==============================  ================================================================
label  Galaxy10 class                  simulated galaxies
=====  ==============================  ================================================================
0      disturbed                       ``merger`` with flux ratio >= 2.5 (a minor, one-sided disturbance)
1      merging                         ``merger`` with flux ratio < 2.5
2      round smooth                    ``elliptical`` / ``smooth_disk`` with axis ratio >= 0.7
3      in-between round smooth         ``elliptical`` / ``smooth_disk`` with axis ratio 0.45-0.7
4      cigar-shaped smooth             ``elliptical`` / ``smooth_disk`` with axis ratio < 0.45
5      barred spiral                   ``barred_spiral``
6      unbarred tight spiral           ``spiral`` with pitch angle < 20 deg
7      unbarred loose spiral           ``spiral`` with pitch angle >= 20 deg
8      edge-on without bulge           ``edge_on`` with no bulge
9      edge-on with bulge              ``edge_on`` with a bulge
=====  ==============================  ================================================================

``lens`` and ``artifact`` have no Galaxy10 class: :func:`galaxy10_labels` returns -1 for them, so that they can
serve as the *unknown* classes of open-set experiments.
"""

from __future__ import annotations

import numpy as np

__all__ = ["GALAXY10_CLASSES", "galaxy10_labels"]

GALAXY10_CLASSES = ("disturbed", "merging", "round_smooth", "in_between_round_smooth", "cigar_shaped_smooth",
                    "barred_spiral", "unbarred_tight_spiral", "unbarred_loose_spiral", "edge_on_without_bulge",
                    "edge_on_with_bulge")


def galaxy10_labels(true_class, q, pitch_deg, bulge_frac, flux_ratio) -> np.ndarray:
    """Galaxy10 label of every galaxy from its truth columns (-1 where there is none)."""
    cls = np.asarray(true_class, dtype=object)
    q, pitch, bulge, ratio = (np.asarray(v, dtype=float) for v in (q, pitch_deg, bulge_frac, flux_ratio))
    out = np.full(len(cls), -1, dtype=np.int64)
    smooth = np.isin(cls, ["elliptical", "smooth_disk"])
    out[smooth & (q >= 0.7)] = 2
    out[smooth & (q >= 0.45) & (q < 0.7)] = 3
    out[smooth & (q < 0.45)] = 4
    out[cls == "barred_spiral"] = 5
    spiral = cls == "spiral"
    out[spiral & (pitch < 20)] = 6
    out[spiral & (pitch >= 20)] = 7
    edge = cls == "edge_on"
    out[edge & ~(bulge > 0)] = 8
    out[edge & (bulge > 0)] = 9
    merger = cls == "merger"
    out[merger & (ratio >= 2.5)] = 0
    out[merger & (ratio < 2.5)] = 1
    return out


def dataset_galaxy10_labels(ds) -> np.ndarray:
    """:func:`galaxy10_labels` of a simulated dataset's catalog."""
    return galaxy10_labels(ds.column("true_class"), ds.column("true_q"), ds.column("true_pitch_deg"),
                           ds.column("true_bulge_frac"), ds.column("true_flux_ratio"))
