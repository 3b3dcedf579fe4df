"""``labelsky simulate --like DATASET``: a simulation whose images look like the user's own.

The user's images are measured (:func:`image_statistics`, photutils on each
image's central source), then a few small pilot simulations are measured the
same way and the simulation's settings are moved toward the target's numbers:

================ ======================================================= =====================================
statistic        measured                                                setting moved
================ ======================================================= =====================================
``frame``        central source's half-light radius / image side         ``scaled_fov`` (framing)
``snr``          its S/N (flux in its segment / sky noise)               the survey's depth
``psf``          FWHM of the most compact source / image side, 10th      the survey's PSF FWHM
                 percentile over images (stars are the most compact)
``neighbours``   other sources in the frame                              ``star_density``, ``galaxy_density``
``mag_r``        central source's r magnitude (flux images only)         ``mag_range`` (its 2-98 % range)
``sky``          sky level of the frame's border                         reported
``black``        1st percentile of the pixels (pictures: black point)    pictures: ``--black-point`` of the
                                                                         rendering (training and prediction)
``colour``       -2.5 log10 of the first / last band within 2 radii      reported
================ ======================================================= =====================================

Pictures (``flux_unit = "display"``) are compared with the simulation
rendered by the viewer the user will train with (``render``, default
``legacysurvey``); flux images with the simulation as it is. Sizes are
fractions of the frame, so any stamp size can be matched. The result:
the simulation in ``OUT`` (as ``labelsky simulate`` writes it), the derived
survey file, ``like.json`` (statistics of the target and of the simulation
before and after, the settings, the training randomisation centred on the
target) and ``like.md`` / ``like.png`` (the table and side-by-side histograms). For pictures the
``after`` column is measured with the black point subtracted, as the model will see the simulation.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import tempfile
from pathlib import Path

import numpy as np

from labelsky.data.simulate.runner import SimulationError

__all__ = ["image_statistics", "simulate_like", "STATISTICS", "MIN_MEASURED"]

STATISTICS = ("frame", "snr", "psf", "neighbours", "mag_r", "sky", "black", "colour")
MIN_MEASURED = 20  # target images with a measurable central source, at least


def _luminance(image: np.ndarray, pictures: bool, band: int) -> np.ndarray:
    return image.mean(axis=0) if pictures else image[band]


def image_statistics(images, *, pictures: bool, band: int, pixel_scales=None) -> dict:
    """Per-image statistics (arrays, NaN where unmeasured) of ``images`` [N, bands, H, W].

    With ``pixel_scales`` (arcsec, one per image) the PSF is in arcsec, else a fraction of the side.
    """
    from labelsky.data.sample_report import measure_central

    images = np.asarray(images, dtype=np.float32)
    n = len(images)
    out = {k: np.full(n, np.nan) for k in STATISTICS}
    for i, img in enumerate(images):
        side = float(img.shape[-1])
        lum = _luminance(img, pictures, band)
        m = measure_central(lum, pixel_scale=1.0, nanomaggies=not pictures)
        out["frame"][i] = m["hlr_arcsec"] / side  # pixel_scale 1: radius in pixels
        out["snr"][i] = m["snr"]
        out["psf"][i] = m["min_fwhm_pix"] * (pixel_scales[i] if pixel_scales is not None else 1.0 / side)
        out["neighbours"][i] = m["n_neighbours"] if np.isfinite(m["flux"]) else np.nan
        out["sky"][i] = m["sky"]
        out["black"][i] = float(np.nanpercentile(lum, 1))
        if not pictures:
            flux_r = measure_central(img[band], pixel_scale=1.0)["flux"]
            out["mag_r"][i] = 22.5 - 2.5 * math.log10(flux_r) if flux_r > 0 else np.nan
        if np.isfinite(m["hlr_arcsec"]) and img.shape[0] > 1:
            h, w = lum.shape
            yy, xx = np.mgrid[:h, :w]
            disc = np.hypot(yy - (h - 1) / 2, xx - (w - 1) / 2) <= max(2.0 * m["hlr_arcsec"], 2.0)
            first, last = (float(np.nansum(img[k][disc] - np.nanmedian(img[k]))) for k in (0, -1))
            if first > 0 and last > 0:
                out["colour"][i] = -2.5 * math.log10(first / last)
    return out


def _summary(stats: dict) -> dict:
    out = {}
    for k, v in stats.items():
        v = np.asarray(v, float)
        ok = v[np.isfinite(v)]
        if k == "psf":  # the most compact sources: stars where there are any
            out[k] = {"value": float(np.percentile(ok, 10)) if len(ok) >= 5 else None, "n": int(len(ok))}
        elif k == "neighbours":  # counts: the mean, which moves with the density where the median may not
            out[k] = {"value": float(ok.mean()) if len(ok) else None,
                      "p16": float(np.percentile(ok, 16)) if len(ok) else None,
                      "p84": float(np.percentile(ok, 84)) if len(ok) else None, "n": int(len(ok))}
        else:
            out[k] = {"value": float(np.median(ok)) if len(ok) else None,
                      "p16": float(np.percentile(ok, 16)) if len(ok) else None,
                      "p84": float(np.percentile(ok, 84)) if len(ok) else None, "n": int(len(ok))}
    return out


def _target_images(ds, max_rows: int, seed: int):
    rows = np.arange(len(ds))
    if len(rows) > max_rows:
        rows = np.sort(np.random.default_rng(seed).choice(rows, max_rows, replace=False))
    return np.stack([ds.image(int(i)) for i in rows]), rows


def _pixel_scales(ds, rows, pictures: bool):
    """Arcsec per pixel of ``rows`` where the dataset knows them (flux images), else None."""
    if pictures:
        return None
    if "pixel_scale" in ds.catalog.column_names:
        v = ds.column("pixel_scale").astype(float)[rows]
        if np.isfinite(v).all() and (v > 0).all():
            return v
    return np.full(len(rows), float(ds.survey.pixel_scale))


def _rendered(ds, renderer: str | None, jpeg_quality, rows=None, black_point: float = 0.0):
    """The simulation's images as the model will see them: rendered for pictures, flux otherwise."""
    rows = np.arange(len(ds)) if rows is None else rows
    images = ds.images(rows)
    if renderer is None:
        return images
    from labelsky.data.display import render

    scales = ds.column("pixel_scale").astype(float)[rows]
    return np.stack([render(img, ds.bands, renderer, pixel_scale=float(s), jpeg_quality=jpeg_quality,
                            black_point=black_point) for img, s in zip(images, scales)])


@dataclasses.dataclass
class LikeSettings:
    """What ``--like`` moves (fields of :class:`~labelsky.data.simulate.GalaxySimConfig`)."""

    scaled_fov: float = 17.0
    depth_shift: float = 0.0
    psf_scale: float = 1.0
    density: float = 1.0
    mag_range: tuple = (15.0, 19.0)

    def sim_settings(self) -> dict:
        return {"scaled_fov": self.scaled_fov, "depth_shift": self.depth_shift, "psf_scale": self.psf_scale,
                "star_density": self.density, "galaxy_density": self.density, "mag_range": tuple(self.mag_range)}


def _step(cur: LikeSettings, target: dict, sim: dict, pictures: bool) -> LikeSettings:
    """Settings moved toward the target by one pilot's statistics (each a multiplicative or additive law)."""
    def ratio(key):
        t, s = target[key]["value"], sim[key]["value"]
        return t / s if t and s and t > 0 and s > 0 else None

    new = dataclasses.replace(cur)
    r = ratio("frame")  # half-light radius / side is inversely proportional to the field of view
    if r:
        new.scaled_fov = float(np.clip(cur.scaled_fov / r, 3.0, 80.0))
    grow = new.scaled_fov / cur.scaled_fov
    r = ratio("snr")  # sky-limited S/N ~ 10**(0.4 depth)
    if r:
        new.depth_shift = float(np.clip(cur.depth_shift + 2.5 * math.log10(r), -4.0, 4.0))
    r = ratio("psf")  # in arcsec the PSF scales alone; as a fraction of the side it also shrinks as the field grows
    if r:
        new.psf_scale = float(np.clip(cur.psf_scale * r * (1.0 if not pictures else grow), 0.4, 3.0))
    t, s = target["mag_r"]["value"], sim["mag_r"]["value"]
    if t is not None and s is not None:  # flux images: the measured magnitudes, shifted as a whole
        new.mag_range = (float(cur.mag_range[0] + t - s), float(cur.mag_range[1] + t - s))
    t, s = target["neighbours"]["value"], sim["neighbours"]["value"]
    if t is not None and s is not None:  # neighbours per frame ~ density x field area
        new.density = float(np.clip(cur.density * (t + 0.1) / (s * grow**2 + 0.1), 0.0, 5.0))
    return new


def simulate_like(target, out: str | Path, *, n_objects: int, survey=None, render: str | None = "auto",
                  jpeg_quality: int | None = None, stamp_size: int | None = None, classes: dict | None = None,
                  pilot: int = 48, iterations: int = 3, max_rows: int = 300, seed: int = 0,
                  workers: int | None = None, overwrite: bool = False, progress: bool = True) -> dict:
    """Simulate ``n_objects`` galaxies like the images of dataset ``target``; returns the like report.

    ``survey``: the survey to simulate (default: the target's own for flux
    images, ``decals`` for pictures). ``render``: the viewer pictures are
    compared through (``"auto"``: ``legacysurvey`` for pictures, none for flux).
    """
    from labelsky.data.simulate.stamps import GalaxySimConfig, simulate_galaxies
    from labelsky.data.surveys import SurveyError, get_survey
    from labelsky.utils import atomic_write_json, atomic_write_text

    out = Path(out)
    pictures = target.meta.get("flux_unit", "nanomaggy") == "display"
    if render == "auto":
        render = "legacysurvey" if pictures else None
    if pictures and render is None:
        raise SimulationError(f"{target.path}: the target holds 8-bit pictures; name the viewer to compare through "
                              f"(--render legacysurvey|sdss|hsc)")
    sim_survey = survey or ("decals" if pictures else target.survey.name)
    try:
        get_survey(sim_survey)
    except SurveyError:
        raise SimulationError(f"{target.path}: its survey {sim_survey!r} is not one labelsky knows; pass the survey "
                              f"to simulate (--surveys NAME or a YAML file)") from None
    if Path(out).exists() and any(Path(out).iterdir()) and not overwrite:
        raise SimulationError(f"{out} exists and is not empty; choose another --out, or --overwrite to replace a "
                              f"simulation labelsky made there")
    band = target.bands.index("r") if "r" in target.bands else len(target.bands) // 2
    t_images, t_rows = _target_images(target, max_rows, seed)
    t_stats = image_statistics(t_images, pictures=pictures, band=band,
                               pixel_scales=_pixel_scales(target, t_rows, pictures))
    n_ok = int(np.isfinite(t_stats["frame"]).sum())
    if n_ok < MIN_MEASURED:
        raise SimulationError(f"{target.path}: only {n_ok} of {len(t_rows)} images have a measurable central "
                              f"source (at least {MIN_MEASURED} are needed to match a simulation to them); import "
                              f"more images, or cutouts centred on their galaxies")
    target_sum = _summary(t_stats)
    side = int(stamp_size or min(int(target.image_shape[-1]), 64))
    cur = LikeSettings()
    if not pictures and target_sum["mag_r"]["value"] is not None:
        mags = t_stats["mag_r"][np.isfinite(t_stats["mag_r"])]
        lo, hi = np.percentile(mags, [2, 98])
        cur.mag_range = (float(np.clip(lo, 8.0, 26.0)), float(np.clip(max(hi, lo + 0.5), 8.5, 27.0)))
    history = []
    common = dict(surveys=[sim_survey],
                  cutout="scaled", stamp_size=side, classes=classes or GalaxySimConfig().classes)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.like-", dir=out.parent if out.parent.exists() else None))
    try:
        before = None
        for k in range(iterations + 1):
            sims = simulate_galaxies(work / f"pilot_{k}", n_objects=pilot, seed=seed + 1000 + k, workers=workers,
                                     progress=False, shard_size=max(8, pilot // 2), **common, **cur.sim_settings())
            ds = next(iter(sims.values()))
            arrays = image_statistics(_rendered(ds, render, jpeg_quality), pictures=pictures, band=band,
                                      pixel_scales=_pixel_scales(ds, np.arange(len(ds)), pictures))
            before = arrays if before is None else before
            history.append({"settings": dataclasses.asdict(cur), "statistics": _summary(arrays)})
            if k < iterations:
                cur = _step(cur, target_sum, history[-1]["statistics"], pictures)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = simulate_galaxies(out, n_objects=n_objects, seed=seed, workers=workers, progress=progress,
                               overwrite=overwrite, **common, **cur.sim_settings())
    final = next(iter(result.values()))
    check = np.arange(min(len(final), max_rows))
    black_point = 0.0
    if pictures:  # the viewer's sky against the target's: the black level to subtract from the rendered pictures
        plain = _summary(image_statistics(_rendered(final, render, jpeg_quality, check), pictures=True, band=band))
        black_point = _black_point(target_sum, plain)
    after_arrays = image_statistics(_rendered(final, render, jpeg_quality, check, black_point), pictures=pictures,
                                    band=band, pixel_scales=_pixel_scales(final, check, pictures))
    after = _summary(after_arrays)
    spec = final.survey
    report = {"target": str(target.path), "pictures": pictures, "render": render, "survey": spec.to_dict(),
              "n_target_measured": n_ok, "n_target_rows": int(len(t_rows)),
              "statistics": {"target": target_sum, "before": history[0]["statistics"], "after": after},
              "settings": dataclasses.asdict(cur), "iterations": history,
              "black_point": black_point, "train_randomise": "black=-0.030:0.030" if pictures else ""}
    atomic_write_json(out / "like.json", report)
    atomic_write_text(out / "like.md", like_table(report))
    like_figure({"target": t_stats, "simulation before": before, "simulation after": after_arrays},
                out / "like.png")
    return report


def _black_point(target: dict, sim: dict) -> float:
    """The black level that brings the rendered simulation's black point (1st percentile) to the target's."""
    if target["black"]["value"] is None or sim["black"]["value"] is None:
        return 0.0
    return round(float(np.clip(sim["black"]["value"] - target["black"]["value"], 0.0, 0.5)), 3)


def like_table(report: dict) -> str:
    names = {"frame": "half-light radius / side", "snr": "S/N", "psf": "PSF FWHM / side (10th pct)",
             "neighbours": "neighbours per frame", "mag_r": "r magnitude", "sky": "sky level",
             "black": "black point (1st pct)", "colour": "colour (first - last band)"}

    def cell(d):
        if d["value"] is None:
            return "n/a"
        if "p16" in d and d["p16"] is not None:
            return f"{d['value']:.3g} [{d['p16']:.3g}, {d['p84']:.3g}]"
        return f"{d['value']:.3g}"

    st = report["statistics"]
    kind = f"8-bit pictures, simulation rendered {report['render']}" if report["pictures"] else "flux images"
    lines = [f"Target: {report['target']} ({kind}); "
             f"{report['n_target_measured']} of {report['n_target_rows']} images measured. Medians [16 %, 84 %].", "",
             "| statistic | target | simulation before | simulation after |", "|---|---|---|---|"]
    for k in STATISTICS:
        lines.append(f"| {names[k]} | {cell(st['target'][k])} | {cell(st['before'][k])} | {cell(st['after'][k])} |")
    s = report["settings"]
    lines += ["", f"Settings: field of view {s['scaled_fov']:.1f} half-light radii, depth {s['depth_shift']:+.2f} mag, "
              f"PSF x{s['psf_scale']:.2f}, neighbour densities x{s['density']:.2f}, r {s['mag_range'][0]:.1f}-"
              f"{s['mag_range'][1]:.1f} (survey {report['survey']['name']})."]
    if report["pictures"]:
        black = f" --black-point {report['black_point']:.3f}" if report.get("black_point") else ""
        lines.append(f"Training: --render {report['render']}{black} --randomise {report['train_randomise']}")
    return "\n".join(lines) + "\n"


def like_figure(arrays: dict, path) -> None:
    """Side-by-side histograms, one panel per statistic: the target and the simulation before and after."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from labelsky.utils import atomic_path

    keys = [k for k in STATISTICS if np.isfinite(arrays["target"][k]).any()]
    fig, axes = plt.subplots(1, len(keys), figsize=(3.0 * len(keys), 3.0), squeeze=False)
    for ax, k in zip(axes[0], keys):
        finite = {name: a[k][np.isfinite(a[k])] for name, a in arrays.items()}
        pooled = np.concatenate([v for v in finite.values() if len(v)])
        lo, hi = np.percentile(pooled, [1, 99]) if len(pooled) else (0.0, 1.0)
        bins = np.linspace(lo, hi if hi > lo else lo + 1.0, 21)
        for (name, v), colour in zip(finite.items(), ("0.5", "C0", "C3")):
            if len(v):
                ax.hist(np.clip(v, bins[0], bins[-1]), bins=bins, density=True, histtype="step", lw=1.5,
                        color=colour, label=name)
        ax.set_title(k, fontsize=9)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
