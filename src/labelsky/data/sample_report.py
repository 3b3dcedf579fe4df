"""What a sample lets a method see: per class, magnitudes, sizes and the fraction of resolved galaxies.

A morphology feature (arms, bars, tidal tails) can only be learnt where the
galaxy is bright and large against the PSF. :func:`sample_report` gives, per
class of a dataset, the distribution (5/25/50/75/95 %) of the r-band
magnitude and of the half-light radius, and the fraction of galaxies
*resolved*: half-light radius larger than the PSF FWHM of the reference band
(r, or the middle band).

Where the numbers come from (``source``):

``truth``
    simulated datasets: the catalog's ``true_mag_r`` and ``true_hlr``
    (intrinsic, before the PSF); the PSF is the survey's, times
    ``rand_psf_scale`` where the simulation randomised it.
``measured``
    any dataset: the central source of each image, found with photutils in
    the reference band (:func:`measure_central`). Its half-light radius is
    that of the observed, PSF-convolved light; the intrinsic one is estimated
    as ``sqrt(r_obs**2 - (FWHM/2)**2)`` (exact for Gaussian profiles) before
    it is compared with the FWHM. Magnitudes need flux images in nanomaggies;
    8-bit pictures get sizes only.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

__all__ = ["sample_report", "measure_central", "format_sample_report", "sample_figure", "QUANTILES"]

QUANTILES = (5, 25, 50, 75, 95)


def _reference_band(ds) -> int:
    bands = list(ds.bands)
    return bands.index("r") if "r" in bands else len(bands) // 2


def measure_central(image: np.ndarray, *, pixel_scale: float, nanomaggies: bool = True,
                    threshold: float = 2.0) -> dict:
    """The source at the centre of one band's image ``[H, W]``: flux, magnitude, half-light radius, S/N.

    The sky and its noise come from the outer tenth of the frame (sigma
    clipped); the central source is the photutils segment at the centre
    pixel, or the nearest one within a tenth of the frame. Values are NaN
    where nothing is found there. ``hlr_arcsec`` is the radius that holds
    half of the source's (Kron) flux, observed (PSF included);
    ``n_neighbours`` counts the other sources, ``min_fwhm_pix`` is the FWHM
    of the most compact source at S/N > 20 (a star's: the PSF, where there
    is one).
    """
    from astropy.convolution import convolve
    from astropy.stats import sigma_clipped_stats
    from photutils.segmentation import SourceCatalog, detect_sources, make_2dgaussian_kernel

    img = np.asarray(image, dtype=np.float64)
    h, w = img.shape
    nan = float("nan")
    out = {"flux": nan, "mag_r": nan, "hlr_arcsec": nan, "snr": nan, "sky": nan, "sky_rms": nan,
           "area_pix": nan, "n_neighbours": 0, "min_fwhm_pix": nan}
    good = np.isfinite(img)
    if good.sum() < 16:
        return out
    edge = max(1, int(round(0.1 * min(h, w))))
    border = np.zeros_like(good)
    border[:edge], border[-edge:], border[:, :edge], border[:, -edge:] = True, True, True, True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, sky, rms = sigma_clipped_stats(img[border & good], sigma=3.0)
    out["sky"], out["sky_rms"] = float(sky), float(rms)
    if not rms > 0:
        return out
    sub = np.where(good, img - sky, 0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        conv = convolve(sub, make_2dgaussian_kernel(2.0, size=5), normalize_kernel=True)
        segm = detect_sources(conv, threshold * rms, npixels=5, mask=~good)
    if segm is None:
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        every = SourceCatalog(sub, segm, mask=~good)
        fwhm = np.asarray(getattr(every.fwhm, "value", every.fwhm), dtype=float).ravel()
        fluxes = np.asarray(getattr(every.segment_flux, "value", every.segment_flux), dtype=float).ravel()
        areas = np.asarray(getattr(every.area, "value", every.area), dtype=float).ravel()
    bright = np.isfinite(fwhm) & (fluxes > 20.0 * rms * np.sqrt(np.maximum(areas, 1.0)))  # noise peaks aside
    if bright.any():
        out["min_fwhm_pix"] = float(fwhm[bright].min())
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    label = int(segm.data[int(round(cy)), int(round(cx))])
    if label == 0:
        yy, xx = np.nonzero(segm.data)
        d = np.hypot(yy - cy, xx - cx)
        if not len(d) or d.min() > 0.1 * min(h, w):
            return out
        label = int(segm.data[yy[d.argmin()], xx[d.argmin()]])
    out["n_neighbours"] = int(len(segm.labels) - 1)
    segm.keep_labels([label])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cat = SourceCatalog(sub, segm, mask=~good)
        flux = float(np.asarray(getattr(cat.segment_flux, "value", cat.segment_flux)).ravel()[0])
        r50 = float(np.asarray(getattr(cat.fluxfrac_radius(0.5), "value", cat.fluxfrac_radius(0.5))).ravel()[0])
    area = float(np.count_nonzero(segm.data))
    out.update(flux=flux, hlr_arcsec=r50 * pixel_scale if np.isfinite(r50) else nan, area_pix=area,
               snr=flux / (rms * math.sqrt(area)) if area else nan)
    if nanomaggies and flux > 0:
        out["mag_r"] = 22.5 - 2.5 * math.log10(flux)
    return out


def _quantiles(values: np.ndarray) -> dict | None:
    v = values[np.isfinite(values)]
    if not len(v):
        return None
    return {f"p{q}": float(x) for q, x in zip(QUANTILES, np.percentile(v, QUANTILES))}


def _rows_measured(ds, rows, b: int) -> tuple[np.ndarray, np.ndarray]:
    nanomaggies = ds.meta.get("flux_unit", "nanomaggy") != "display"
    scales = ds.column("pixel_scale").astype(float) if "pixel_scale" in ds.catalog.column_names else None
    mag, hlr = np.full(len(rows), np.nan), np.full(len(rows), np.nan)
    for j, i in enumerate(rows):
        scale = float(scales[i]) if scales is not None and np.isfinite(scales[i]) else ds.survey.pixel_scale
        m = measure_central(ds.image(int(i))[b], pixel_scale=scale, nanomaggies=nanomaggies)
        mag[j], hlr[j] = m["mag_r"], m["hlr_arcsec"]
    return mag, hlr


def sample_report(ds, rows=None, *, source: str = "auto", max_rows: int = 2000, seed: int = 0) -> dict:
    """Per class of dataset ``ds`` (rows ``rows``, default all): magnitude and size quantiles, resolved fraction.

    ``source``: ``"truth"``, ``"measured"`` or ``"auto"`` (truth where the
    catalog has it). The measured path reads at most ``max_rows`` images
    (drawn at random with ``seed``). Returns ``{"source", "psf_fwhm", "band",
    "classes": {name: {"n", "n_measured", "mag_r", "hlr_arcsec",
    "resolved_fraction"}}, "all": {...}}``; a class without any measured size
    has ``resolved_fraction`` None.
    """
    rows = np.arange(len(ds)) if rows is None else np.asarray(rows, dtype=np.int64)
    cols = set(ds.catalog.column_names)
    truth = {"true_mag_r", "true_hlr"} <= cols
    if source == "auto":
        source = "truth" if truth else "measured"
    if source not in ("truth", "measured"):
        raise ValueError(f"source must be 'truth', 'measured' or 'auto', got {source!r}")
    if source == "truth" and not truth:
        raise ValueError(f"{ds.path}: no truth columns (true_mag_r, true_hlr); use source='measured'")
    b = _reference_band(ds)
    fwhm0 = float(ds.survey.psf_fwhm[b])
    if source == "measured" and len(rows) > max_rows:
        rows = np.sort(np.random.default_rng(seed).choice(rows, max_rows, replace=False))
    fwhm = np.full(len(rows), fwhm0)
    if "rand_psf_scale" in cols:
        f = ds.column("rand_psf_scale").astype(float)[rows]
        fwhm = np.where(np.isfinite(f), fwhm0 * f, fwhm0)
    if source == "truth":
        mag = ds.column("true_mag_r").astype(float)[rows]
        hlr = ds.column("true_hlr").astype(float)[rows]
        intrinsic = hlr
    else:
        mag, hlr = _rows_measured(ds, rows, b)
        intrinsic = np.sqrt(np.clip(hlr**2 - (fwhm / 2.0) ** 2, 0.0, None))
    names = ds.column("label_name").astype(str)[rows] if "label_name" in cols else np.full(len(rows), "")
    names = np.where(names == "", "(unlabelled)", names)

    def block(sel) -> dict:
        ok = np.isfinite(intrinsic[sel])
        return {"n": int(sel.sum()), "n_measured": int(ok.sum()), "mag_r": _quantiles(mag[sel]),
                "hlr_arcsec": _quantiles(hlr[sel]),
                "resolved_fraction": float((intrinsic[sel][ok] > fwhm[sel][ok]).mean()) if ok.any() else None}

    order = [c for c in ds.classes if c in set(names)] + sorted(set(names) - set(ds.classes))
    return {"dataset": str(ds.path), "survey": ds.survey.name, "band": ds.bands[b], "psf_fwhm": fwhm0,
            "source": source, "n_rows": int(len(rows)),
            "classes": {c: block(names == c) for c in order}, "all": block(np.ones(len(rows), bool))}


def format_sample_report(report: dict) -> str:
    """The report as a fixed-width table, one line per class."""
    def q(d, key, fmt):
        return "/".join(format(d[key], fmt) for key in ("p5", "p50", "p95")) if d else "n/a"

    how = ("intrinsic (truth)" if report["source"] == "truth"
           else "measured on the images (PSF removed in quadrature)")
    lines = [f"{report['dataset']}: {report['survey']}, {report['band']} band, PSF FWHM {report['psf_fwhm']:.2f}\"; "
             f"sizes {how}",
             f"  {'class':<22} {'n':>6}  {'r mag 5/50/95 %':<20} {'half-light arcsec 5/50/95 %':<28} resolved"]
    for name, d in [*report["classes"].items(), ("all", report["all"])]:
        res = "n/a" if d["resolved_fraction"] is None else f"{100 * d['resolved_fraction']:.0f} %"
        lines.append(f"  {name:<22} {d['n']:>6}  {q(d['mag_r'], 'p50', '.2f'):<20} "
                     f"{q(d['hlr_arcsec'], 'p50', '.2f'):<28} {res}")
    lines.append("  resolved: half-light radius > PSF FWHM")
    return "\n".join(lines)


def sample_figure(ds, report: dict, path, rows=None) -> None:
    """Histograms per class of r magnitude and of half-light radius / PSF FWHM (dashed: resolved limit)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from labelsky.utils import atomic_path

    rows = np.arange(len(ds)) if rows is None else np.asarray(rows, dtype=np.int64)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    if report["source"] == "truth":
        mag = ds.column("true_mag_r").astype(float)[rows]
        size = ds.column("true_hlr").astype(float)[rows] / report["psf_fwhm"]
        names = ds.column("label_name").astype(str)[rows]
        for c in report["classes"]:
            sel = names == c
            axes[0].hist(mag[sel][np.isfinite(mag[sel])], bins=20, histtype="step", label=c)
            axes[1].hist(size[sel][np.isfinite(size[sel])], bins=np.geomspace(0.1, 20, 25), histtype="step", label=c)
        axes[1].set_xscale("log")
    else:  # quantiles only: one box per class
        keys = list(report["classes"])
        for ax, key, div in ((axes[0], "mag_r", 1.0), (axes[1], "hlr_arcsec", report["psf_fwhm"])):
            stats = [report["classes"][k][key] for k in keys]
            for j, s in enumerate(stats):
                if s:
                    ax.plot([j, j], [s["p5"] / div, s["p95"] / div], color="0.6")
                    ax.plot([j, j], [s["p25"] / div, s["p75"] / div], lw=6, color="C0")
                    ax.plot(j, s["p50"] / div, "ko")
            ax.set_xticks(range(len(keys)), keys, rotation=30, ha="right")
    axes[1].axvline(1.0, ls="--", color="k") if report["source"] == "truth" else axes[1].axhline(1.0, ls="--",
                                                                                                 color="k")
    axes[0].set_xlabel("r magnitude") if report["source"] == "truth" else axes[0].set_ylabel("r magnitude")
    lab = "half-light radius / PSF FWHM"
    axes[1].set_xlabel(lab) if report["source"] == "truth" else axes[1].set_ylabel(lab)
    if report["source"] == "truth":
        axes[0].legend(fontsize=7)
    fig.suptitle(f"{report['survey']}: {report['n_rows']} objects ({report['source']}); "
                 f"resolved {100 * (report['all']['resolved_fraction'] or 0):.0f} %", fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
