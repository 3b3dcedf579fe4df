"""Galaxy morphology classes: truth parameters and their GalSim components.

Each class has a sampler (:func:`sample_truth`) that draws survey-independent
truth parameters (magnitude in SDSS r, size, shape, redshift, class-specific
structure) and a builder (:func:`build_components`) that turns a truth record
into unit-flux GalSim components with spectral types. Everything random that
the builder needs (knot positions, tail shapes) is seeded from the truth's
``true_template_seed``, so a catalog row alone reproduces its galaxy.

Classes
-------
``elliptical``      Sersic n = 3-5.5 (on a 0.25 grid), axis ratio 0.3-1, E template.
``smooth_disk``     S0 / smooth disk: Sersic bulge (B/T 0.3-0.7) + exponential disk, no arms.
``spiral``          bulge + exponential disk modulated by 2-4 logarithmic arms (pitch 10-35 deg,
                    either handedness) + star-forming knots along the arms (Im template).
``barred_spiral``   as spiral with a bar (Sersic n = 0.5, axis ratio 0.2-0.35) and two arms from its ends.
``edge_on``         GalSim InclinedExponential at 84-90 deg, scale height 0.08-0.2 of the scale length,
                    with or without a bulge.
``merger``          two galaxies 0.6-1.8 (sum of half-light radii) apart, flux ratio 1-4,
                    with one or two tidal tails and off-centre bulges.
``lens``            massive elliptical + a background source (z = 1-2.5, Im template) ray-traced
                    through a singular isothermal ellipsoid with Einstein radius 1.2-3": arcs or a ring.
``artifact``        a saturated star or a satellite trail across the cutout.

Size-magnitude relations follow the SDSS relations of Shen et al. 2003 (MNRAS
343, 978) in apparent terms at the redshifts implied by the magnitude
(``z = 0.08 * 10**(0.2 (m_r - 17))``, a fit to SDSS main-sample galaxies).
"""

from __future__ import annotations

import math

import numpy as np

from labelsky.data.simulate.render import Component, gsparams, template_profile

__all__ = ["CLASSES", "sample_truth", "build_components", "TRUTH_FLOAT_COLUMNS"]

CLASSES = ("elliptical", "smooth_disk", "spiral", "barred_spiral", "edge_on", "merger", "lens", "artifact")

#: Truth columns written to every catalog (NaN where a class has no such parameter).
TRUTH_FLOAT_COLUMNS = (
    "true_mag_r", "true_redshift", "true_hlr", "true_q", "true_pa_deg", "true_sersic_n", "true_bulge_frac",
    "true_n_arms", "true_pitch_deg", "true_handedness", "true_arm_contrast", "true_knot_frac", "true_bar_frac",
    "true_bar_length", "true_inclination_deg", "true_sep_arcsec", "true_flux_ratio", "true_tail_frac",
    "true_theta_e", "true_src_redshift", "true_src_mag", "true_magnification", "true_artifact_mag",
    "true_temperature",
)

_LOG_HLR_17 = {  # log10 half-light radius (arcsec) at m_r = 17
    "elliptical": 0.30, "smooth_disk": 0.38, "spiral": 0.52, "barred_spiral": 0.52, "edge_on": 0.50,
    "merger": 0.40, "lens": 0.25,
}


def _q(x, step=0.25):
    return float(np.round(x / step) * step)


def redshift_from_mag(m, rng):
    return float(np.clip(0.08 * 10 ** (0.2 * (m - 17.0)) * rng.lognormal(0.0, 0.15), 0.01, 1.2))


def sample_mag(rng, mag_range, slope=0.45):
    lo, hi = mag_range
    a, b = 10 ** (slope * lo), 10 ** (slope * hi)
    return float(np.log10(a + rng.random() * (b - a)) / slope)


def _hlr(cls, m, rng):
    return float(np.clip(10 ** (_LOG_HLR_17[cls] - 0.2 * (m - 17.0) + rng.normal(0, 0.12)), 0.4, 15.0))


def sample_truth(cls: str, rng: np.random.Generator, mag_range=(15.0, 19.0)) -> dict:
    """Survey-independent truth parameters of one galaxy of class ``cls``."""
    if cls not in CLASSES:
        raise ValueError(f"unknown class {cls!r}; classes are {CLASSES}")
    t = {k: float("nan") for k in TRUTH_FLOAT_COLUMNS}
    t["true_class"] = cls
    t["true_artifact_kind"] = ""
    t["true_template_seed"] = int(rng.integers(0, 2**62))
    m = sample_mag(rng, mag_range)
    t["true_mag_r"] = m
    t["true_redshift"] = redshift_from_mag(m, rng)
    t["true_pa_deg"] = float(rng.uniform(0, 180))
    if cls == "artifact":
        if rng.random() < 0.5:
            t["true_artifact_kind"] = "saturated_star"
            t["true_artifact_mag"] = float(rng.uniform(9.5, 13.0))
            t["true_mag_r"] = t["true_artifact_mag"]
            t["true_redshift"] = 0.0
            t["true_temperature"] = float(rng.uniform(3500, 8000))
        else:
            t["true_artifact_kind"] = "satellite_trail"
            t["true_artifact_mag"] = float(rng.uniform(19.0, 22.0))  # AB mag per arcsec of trail
            t["true_mag_r"] = float(rng.uniform(19.0, 22.0))  # faint galaxy under the trail
            t["true_hlr"] = float(np.clip(10 ** (-0.05 - 0.12 * (t["true_mag_r"] - 20)), 0.3, 3))
            t["true_q"] = float(rng.uniform(0.4, 1.0))
        return t
    t["true_hlr"] = _hlr(cls, m, rng)
    if cls == "elliptical":
        t["true_sersic_n"] = _q(rng.uniform(3.0, 5.5))
        t["true_q"] = float(rng.uniform(0.3, 1.0))
    elif cls == "smooth_disk":
        t["true_bulge_frac"] = float(rng.uniform(0.3, 0.7))
        t["true_sersic_n"] = _q(rng.uniform(2.0, 4.0))
        t["true_q"] = float(rng.uniform(0.35, 1.0))
    elif cls in ("spiral", "barred_spiral"):
        t["true_bulge_frac"] = float(rng.uniform(0.03, 0.3))
        t["true_sersic_n"] = _q(rng.uniform(1.5, 4.0))
        t["true_q"] = float(rng.uniform(0.55 if cls == "barred_spiral" else 0.35, 1.0))
        t["true_n_arms"] = 2.0 if cls == "barred_spiral" else float(rng.choice([2, 2, 3, 4]))
        t["true_pitch_deg"] = float(rng.uniform(10, 35))
        t["true_handedness"] = float(rng.choice([-1.0, 1.0]))
        t["true_arm_contrast"] = float(rng.uniform(0.45, 0.9))
        t["true_knot_frac"] = float(rng.uniform(0.04, 0.15))
        if cls == "barred_spiral":
            t["true_bar_frac"] = float(rng.uniform(0.08, 0.2))
            t["true_bar_length"] = float(rng.uniform(0.9, 1.6))  # in disk scale lengths (half length)
    elif cls == "edge_on":
        t["true_inclination_deg"] = float(rng.uniform(84, 90))
        t["true_bulge_frac"] = float(rng.choice([0.0, rng.uniform(0.1, 0.35)]))
        t["true_sersic_n"] = 2.0
        t["true_q"] = float(rng.uniform(0.08, 0.2))  # scale height / scale length
    elif cls == "merger":
        t["true_sep_arcsec"] = float(rng.uniform(0.6, 1.8) * 2 * t["true_hlr"])
        t["true_flux_ratio"] = float(rng.uniform(1.0, 4.0))
        t["true_tail_frac"] = float(rng.uniform(0.06, 0.2))
        t["true_bulge_frac"] = float(rng.uniform(0.1, 0.6))
        t["true_q"] = float(rng.uniform(0.4, 1.0))
    elif cls == "lens":
        t["true_sersic_n"] = 4.0
        t["true_q"] = float(rng.uniform(0.6, 1.0))
        t["true_redshift"] = float(rng.uniform(0.2, 0.6))
        t["true_theta_e"] = float(rng.uniform(1.2, 3.0))
        t["true_src_redshift"] = float(rng.uniform(1.0, 2.5))
        t["true_artifact_mag"] = float("nan")
        t["true_src_mag"] = float(m + rng.uniform(0.3, 2.0))  # total lensed (arc) magnitude in r
    return t


# --------------------------------------------------------------------------- templates
def _grid(npix, scale):
    c = (np.arange(npix) - (npix - 1) / 2.0) * scale
    return np.meshgrid(c, c)  # x (columns), y (rows)


def _disk_coords(x, y, pa_deg, q):
    pa = math.radians(pa_deg)
    xd = x * math.cos(pa) + y * math.sin(pa)
    yd = (-x * math.sin(pa) + y * math.cos(pa)) / max(q, 0.05)
    return xd, yd


def _template_grid(extent, pixel):
    """Grid scale and size covering +-extent arcsec, at most 256 pixels a side."""
    scale = max(pixel, 2.0 * extent / 256.0)
    npix = int(2 * math.ceil(extent / scale)) + 2
    return scale, npix


def spiral_images(t: dict, h: float, pixel: float, rng, r_start: float = 0.0):
    """Disk-with-arms and knot images (arrays) of a spiral; ``h`` is the disk scale length."""
    scale, npix = _template_grid(6.0 * h, pixel)
    x, y = _grid(npix, scale)
    xd, yd = _disk_coords(x, y, t["true_pa_deg"], t["true_q"])
    r = np.hypot(xd, yd) / h
    theta = np.arctan2(yd, xd)
    m = int(t["true_n_arms"])
    tan_p = math.tan(math.radians(t["true_pitch_deg"]))
    r0 = max(r_start, 0.3)
    phase0 = rng.uniform(0, 2 * math.pi)
    arm_theta = t["true_handedness"] * np.log(np.maximum(r, 1e-3) / r0) / tan_p
    sharp = rng.uniform(2.0, 5.0)
    arm = ((1 + np.cos(m * (theta - arm_theta - phase0))) / 2) ** sharp
    mean_arm = math.gamma(sharp + 0.5) / (math.sqrt(math.pi) * math.gamma(sharp + 1))  # <((1+cos)/2)^s>
    taper = 1 - np.exp(-((r / max(r_start, 0.6)) ** 2))
    disk = np.exp(-r) * (1 + taper * t["true_arm_contrast"] * (arm / mean_arm - 1))
    # knots: compact blobs along the arms
    n_knots = int(rng.integers(8, 26))
    knots = np.zeros_like(disk)
    for _ in range(n_knots):
        rk = rng.uniform(max(r_start, 0.7), 3.2)
        arm_idx = rng.integers(m)
        th = t["true_handedness"] * math.log(rk / r0) / tan_p + phase0 + 2 * math.pi * arm_idx / m
        th += rng.normal(0, 0.08)
        xk, yk = rk * h * math.cos(th), rk * h * math.sin(th)
        sk = rng.uniform(0.1, 0.3) * h / 2 + 0.05
        amp = rng.lognormal(0, 0.5)
        knots += amp * np.exp(-((xd - xk) ** 2 + (yd - yk) ** 2) / (2 * sk**2))
    return disk, knots, scale


def tails_image(t: dict, centres, hlrs, pixel: float, rng):
    """Tidal tails: curved, fading Gaussian ridges leaving each galaxy."""
    extent = max(abs(c).max() for c in map(np.asarray, centres)) + 4.0 * max(hlrs)
    scale, npix = _template_grid(extent, pixel)
    x, y = _grid(npix, scale)
    img = np.zeros_like(x)
    n_tails = int(rng.integers(1, 3))
    for k in range(n_tails):
        (cx, cy), hl = centres[k % len(centres)], hlrs[k % len(hlrs)]
        phi0, curl = rng.uniform(0, 2 * math.pi), rng.choice([-1, 1]) * rng.uniform(0.6, 1.4)
        length = rng.uniform(2.0, 3.5) * hl
        for s in np.linspace(0.2, 1.0, 24):
            ang = phi0 + curl * s
            rad = hl * 0.8 + s * length
            px, py = cx + rad * math.cos(ang), cy + rad * math.sin(ang)
            w = 0.25 * hl + 0.35 * hl * s
            img += (1.0 - 0.7 * s) * np.exp(-((x - px) ** 2 + (y - py) ** 2) / (2 * w**2))
    return img, scale


def sie_deflection(x, y, theta_e, q):
    """Deflection of a singular isothermal ellipsoid (Kormann et al. 1994; Keeton 2001 form).

    ``x`` along the major axis. Tends to ``theta_e * (x, y) / r`` as ``q -> 1``.
    """
    q = min(q, 0.999)
    s = math.sqrt(1 - q * q)
    psi = np.sqrt(q * q * x * x + y * y) + 1e-9
    ax = theta_e * math.sqrt(q) / s * np.arctan(s * x / psi)
    ay = theta_e * math.sqrt(q) / s * np.arctanh(np.clip(s * y / psi, -0.999999, 0.999999))
    return ax, ay


def lensed_source_image(t: dict, src_hlr: float, src_pos, src_q, src_pa, pixel: float):
    """Ray-traced image of an exponential source through the SIE; returns (image, scale, magnification).

    The source profile is normalised to unit unlensed flux, so the image sum
    times the pixel area is the total magnification.
    """
    extent = t["true_theta_e"] * 1.6 + 4 * src_hlr
    scale = min(pixel, 0.05)
    npix = min(int(2 * math.ceil(extent / scale)) + 2, 256)
    scale = 2 * extent / (npix - 2)
    sub = 3  # supersampling for thin arcs
    fine = (np.arange(npix * sub) - (npix * sub - 1) / 2.0) * scale / sub
    x, y = np.meshgrid(fine, fine)
    pa = math.radians(t["true_pa_deg"])
    xl, yl = x * math.cos(pa) + y * math.sin(pa), -x * math.sin(pa) + y * math.cos(pa)
    ax, ay = sie_deflection(xl, yl, t["true_theta_e"], t["true_q"])
    bx, by = xl - ax, yl - ay  # source plane, lens frame
    sx, sy = bx - src_pos[0], by - src_pos[1]
    spa = math.radians(src_pa)
    u, v = sx * math.cos(spa) + sy * math.sin(spa), (-sx * math.sin(spa) + sy * math.cos(spa)) / src_q
    h = src_hlr / 1.678
    sb = np.exp(-np.hypot(u, v) / h) / (2 * math.pi * h * h * src_q)  # unit-flux exponential
    img = sb.reshape(npix, sub, npix, sub).mean(axis=(1, 3))
    mag = float(img.sum() * scale * scale)
    return img, scale, mag


# --------------------------------------------------------------------------- builders
def _bulge_disk(t, hlr, flux, z, x0=0.0, y0=0.0, bulge_sed="E", disk_sed="Sbc"):
    import galsim

    comps = []
    bt = t["true_bulge_frac"]
    e = (1 - t["true_q"]) / (1 + t["true_q"])
    beta = math.radians(t["true_pa_deg"]) * galsim.radians
    if bt < 1:
        d = galsim.Exponential(half_light_radius=hlr, gsparams=gsparams()).shear(e=e, beta=beta).shift(x0, y0)
        comps.append(Component(d, flux * (1 - bt), disk_sed, z))
    if bt > 0:
        b = galsim.Sersic(n=t["true_sersic_n"], half_light_radius=max(0.2 * hlr, 0.15), trunc=0,
                          gsparams=gsparams()).shear(e=min(e, 0.2), beta=beta).shift(x0, y0)
        comps.append(Component(b, flux * bt, bulge_sed, z))
    return comps


def build_components(t: dict, pixel: float = 0.1) -> list:
    """Unit-flux components of the galaxy described by truth ``t``.

    ``pixel`` is the finest pixel scale (arcsec) of the surveys that will
    draw the galaxy; templates are sampled at most at half of it.
    """
    import galsim

    cls = t["true_class"]
    rng = np.random.default_rng(t["true_template_seed"])
    flux = 10 ** (-0.4 * (t["true_mag_r"] - 22.5))
    z = t["true_redshift"]
    hlr = t["true_hlr"]
    half_pix = pixel / 2.0
    beta = math.radians(t["true_pa_deg"]) * galsim.radians
    if cls == "elliptical":
        e = (1 - t["true_q"]) / (1 + t["true_q"])
        p = galsim.Sersic(n=t["true_sersic_n"], half_light_radius=hlr, trunc=0, gsparams=gsparams())
        return [Component(p.shear(e=e, beta=beta), flux, "E", z)]
    if cls == "smooth_disk":
        return _bulge_disk(t, hlr, flux, z, disk_sed="Sbc" if rng.random() < 0.5 else "E")
    if cls in ("spiral", "barred_spiral"):
        h = hlr / 1.678
        bt, kf = t["true_bulge_frac"], t["true_knot_frac"]
        barf = t["true_bar_frac"] if cls == "barred_spiral" else 0.0
        r_start = t["true_bar_length"] if cls == "barred_spiral" else 0.0
        disk, knots, scale = spiral_images(t, h, half_pix, rng, r_start=r_start)
        disk_sed = "Sbc" if rng.random() < 0.6 else "Scd"
        comps = [Component(template_profile(disk, scale), flux * (1 - bt - kf - barf), disk_sed, z),
                 Component(template_profile(knots, scale), flux * kf, "Im", z)]
        e_b = 0.1
        comps.append(Component(galsim.Sersic(n=t["true_sersic_n"], half_light_radius=max(0.15 * hlr, 0.15),
                                             gsparams=gsparams()).shear(e=e_b, beta=beta), flux * bt, "E", z))
        if barf > 0:
            # bar in the disk plane along the arms' starting angle, then projected
            q_bar = rng.uniform(0.2, 0.35)
            bar = galsim.Sersic(n=0.5, half_light_radius=0.6 * t["true_bar_length"] * h, gsparams=gsparams())
            bar = bar.shear(e=(1 - q_bar) / (1 + q_bar), beta=rng.uniform(0, math.pi) * galsim.radians)
            pa = math.radians(t["true_pa_deg"])
            c, s, qd = math.cos(pa), math.sin(pa), t["true_q"]
            bar = bar.transform(c, -s * qd, s, c * qd)  # rotate by PA after squashing by the inclination
            comps.append(Component(bar, flux * barf, "Sbc", z))
        return comps
    if cls == "edge_on":
        bt = t["true_bulge_frac"]
        h = hlr / 1.678
        disk = galsim.InclinedExponential(inclination=math.radians(t["true_inclination_deg"]) * galsim.radians,
                                          scale_radius=h, scale_h_over_r=t["true_q"], gsparams=gsparams())
        comps = [Component(disk.rotate(beta), flux * (1 - bt), "Sbc", z)]
        if bt > 0:
            b = galsim.Sersic(n=2.0, half_light_radius=max(0.25 * hlr, 0.2), gsparams=gsparams())
            comps.append(Component(b.shear(e=0.15, beta=beta), flux * bt, "E", z))
        return comps
    if cls == "merger":
        ratio, sep, tf = t["true_flux_ratio"], t["true_sep_arcsec"], t["true_tail_frac"]
        f1 = flux * (1 - tf) * ratio / (1 + ratio)
        f2 = flux * (1 - tf) / (1 + ratio)
        ang = math.radians(t["true_pa_deg"] + rng.uniform(20, 160))
        c1 = (-sep / (1 + ratio) * math.cos(ang), -sep / (1 + ratio) * math.sin(ang))
        c2 = (sep * ratio / (1 + ratio) * math.cos(ang), sep * ratio / (1 + ratio) * math.sin(ang))
        h2 = hlr * ratio ** -0.5
        t2 = dict(t, true_pa_deg=rng.uniform(0, 180), true_q=rng.uniform(0.4, 1.0),
                  true_bulge_frac=rng.uniform(0.1, 0.7), true_sersic_n=_q(rng.uniform(2, 4)))
        t1 = dict(t, true_sersic_n=_q(rng.uniform(2, 4)))
        comps = _bulge_disk(t1, hlr, f1, z, *c1) + _bulge_disk(t2, h2, f2, z, *c2)
        # disturbed: bulges displaced from their disks
        for comp in comps:
            comp.profile = comp.profile.shift(*rng.normal(0, 0.1 * hlr, 2))
        tails, scale = tails_image(t, [c1, c2], [hlr, h2], half_pix, rng)
        comps.append(Component(template_profile(tails, scale), flux * tf, "Sbc", z))
        return comps
    if cls == "lens":
        e = (1 - t["true_q"]) / (1 + t["true_q"])
        lens = galsim.Sersic(n=4.0, half_light_radius=hlr, trunc=0, gsparams=gsparams()).shear(e=e, beta=beta)
        src_hlr = rng.uniform(0.15, 0.5)
        r_src = rng.uniform(0.0, 0.45) * t["true_theta_e"]
        a = rng.uniform(0, 2 * math.pi)
        img, scale, mag = lensed_source_image(t, src_hlr, (r_src * math.cos(a), r_src * math.sin(a)),
                                              rng.uniform(0.5, 1.0), rng.uniform(0, 180), half_pix)
        t["true_magnification"] = mag
        arc_flux = 10 ** (-0.4 * (t["true_src_mag"] - 22.5))
        return [Component(lens, flux, "E", z),
                Component(template_profile(img, scale), arc_flux, "Im", t["true_src_redshift"])]
    if cls == "artifact":
        if t["true_artifact_kind"] == "saturated_star":
            return [Component(galsim.DeltaFunction(), flux, "star", t["true_temperature"], point=True)]
        # satellite trail over a faint galaxy; trail = long thin box, linear brightness true_artifact_mag / arcsec
        e = (1 - t["true_q"]) / (1 + t["true_q"])
        gal = galsim.Exponential(half_light_radius=t["true_hlr"], gsparams=gsparams()).shear(e=e, beta=beta)
        length = 60.0
        trail = galsim.Box(width=length, height=0.05, gsparams=gsparams())
        trail = trail.rotate(rng.uniform(0, math.pi) * galsim.radians).shift(*rng.uniform(-3, 3, 2))
        trail_flux = 10 ** (-0.4 * (t["true_artifact_mag"] - 22.5)) * length
        return [Component(gal, flux, "Sbc", 0.3), Component(trail, trail_flux, "star", 5800.0)]
    raise ValueError(f"unknown class {cls!r}")
