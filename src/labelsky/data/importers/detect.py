"""Detect sources in a large image and import them as unlabelled cutouts.

The image is either an 8-bit picture (PNG / JPEG / TIFF: RGB gives three
bands, default ``g, r, z`` of ``decals`` in the channel order of
:func:`~labelsky.data.importers.pictures.import_pictures`, grayscale one band;
stored as ``value / 255`` with ``flux_unit = "display"``) or a FITS image
(one 2-D band, or a cube ``(bands, H, W)`` with the band order in the keyword
``BANDS``; flux as in the FITS importers: ``flux_scale``, else a zeropoint
keyword, else taken as nanomaggies; an extension named ``MASK`` marks bad
pixels).

Detection (photutils): a 2-D background and its RMS are estimated on the
detection image (the mean of the bands) in boxes of ``box_size`` pixels and
subtracted; the image is smoothed by a Gaussian kernel of FWHM 3 pixels;
sources are groups of at least ``npixels`` connected pixels above
``threshold`` times the background RMS, optionally deblended; centroids,
areas, shapes and fluxes come from a ``SourceCatalog``.

Each source becomes one cutout of ``size`` x ``size`` pixels centred on its
centroid (to within half a pixel; no resampling) or, with
``cutout="scaled"``, a square of ``max(size, scale_factor x semimajor_sigma)``
image pixels resampled to ``size`` (the field of view of Galaxy Zoo cutouts;
``scale_factor = 20`` is about 17 half-light radii, as the simulator's
``scaled`` cutouts). Pixels beyond the image are NaN (masked): with the
default ``edge="pad"`` such cutouts are kept and flagged above
``settings.max_masked``; ``edge="drop"`` leaves them out (reported).

Positions: ``x``, ``y`` are 0-based pixel coordinates of the array as read
(row 0 is the first row of the file: the top of a picture, the bottom of a
FITS image). ``ra``, ``dec`` come from the FITS celestial WCS when there is
one (``radec_source = "wcs"``); otherwise they are the pixel position in
degrees, ``x * s / 3600`` and ``y * s / 3600`` with ``s`` the survey's pixel
scale (``radec_source = "pixel"``): a valid, unique position for the dataset
format, not a position on the sky.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import re
import warnings
from pathlib import Path

import numpy as np

from labelsky.data.importers.base import ImportSettings, check_input_file, run_import, survey_with_bands
from labelsky.data.io import DatasetError, LabelskyDataset
from labelsky.errors import SettingsError
from labelsky.utils import atomic_write_json

__all__ = ["EXAMPLES", "example_image", "detect_sources_in", "import_detections", "is_fits_file",
           "read_detection_image"]

#: Images usable by name (``--example NAME``): name -> (package, file in its data folder, id prefix).
EXAMPLES = {"hubble-deep-field": ("skimage", "hubble_deep_field.jpg", "hdf")}

_FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz", ".fz")
_CUTOUTS = ("fixed", "scaled")
_EDGES = ("pad", "drop")


def example_image(name: str) -> Path:
    """Path of a bundled example image (``hubble-deep-field``: the Hubble Deep Field colour picture shipped with
    scikit-image); :class:`SettingsError` when unknown or scikit-image is not installed."""
    if name not in EXAMPLES:
        raise SettingsError(f"--example {name!r}: unknown example; choose from {sorted(EXAMPLES)}")
    _, filename, _ = EXAMPLES[name]
    try:
        import skimage.data
    except ImportError:
        raise SettingsError(f"--example {name} reads the image bundled with scikit-image, which is not installed "
                            f"(pip install scikit-image)") from None
    path = Path(skimage.data.__file__).parent / filename
    if not path.is_file():
        raise SettingsError(f"--example {name}: {path} is missing from the scikit-image installation")
    return path


def is_fits_file(path: str | Path) -> bool:
    """Whether ``path`` is named like a FITS file (read as FITS; anything else as a picture)."""
    name = Path(path).name.lower()
    return any(name.endswith(s) for s in _FITS_SUFFIXES)


def _check_number(name: str, value, *, integer: bool = False, minimum: float = 0.0, strict: bool = True,
                  optional: bool = False) -> None:
    if value is None and optional:
        return
    kind = numbers.Integral if integer else numbers.Real
    ok = isinstance(value, kind) and not isinstance(value, bool) and math.isfinite(value) \
        and (value > minimum if strict else value >= minimum)
    if not ok:
        what = "an integer" if integer else "a number"
        raise SettingsError(f"{name} (--{name.replace('_', '-')}) = {value!r}; expected {what} "
                            f"{'>' if strict else '>='} {minimum:g}")


def _safe_prefix(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower() or "src"


def _read_picture(path: Path, settings: ImportSettings | None) -> tuple[np.ndarray, None, ImportSettings, dict]:
    from PIL import Image

    from labelsky.data.importers.base import ImportRowError
    from labelsky.data.importers.pictures import _picture_settings
    from labelsky.data.importers.pictures import _read_picture as read

    max_pixels = settings.max_pixels if settings is not None else ImportSettings().max_pixels
    try:
        with Image.open(path) as im:
            colour = len(im.getbands()) >= 3 or im.mode in ("P", "PA")
    except (OSError, SyntaxError, Image.DecompressionBombError) as err:
        raise DatasetError(f"{path}: not an image ({type(err).__name__}: {err}); expected PNG / JPEG / TIFF or "
                           f"FITS") from None
    if not colour:  # one band: the given one, else r (or the survey's first)
        base = settings or ImportSettings(survey="decals")
        if base.bands is None:
            sv = survey_with_bands(base.survey, None)
            base = dataclasses.replace(base, bands=["r" if "r" in sv.bands else sv.bands[0]])
        settings = base
    settings = _picture_settings(settings)
    try:
        image = read(path, len(settings.bands), max_pixels)
    except ImportRowError as err:
        raise DatasetError(str(err) if str(path) in str(err) else f"{path}: {err}") from None
    return image, None, settings, {"pixel_scale": None, "wcs": None}


def _fits_bands(header, n: int, cube: bool) -> list[str] | None:
    if cube:
        names = [b.strip() for b in str(header.get("BANDS", "")).split(",") if b.strip()]
        return names if len(names) == n else None
    for k in ("FILTER", "BAND"):
        if k in header and str(header[k]).strip():
            return [str(header[k]).strip()]
    return None


def _read_fits(path: Path, settings: ImportSettings | None, flux_scale: float | None,
               hdu=None) -> tuple[np.ndarray, np.ndarray | None, ImportSettings, dict]:
    from astropy.io import fits
    from astropy.wcs import WCS, FITSFixedWarning

    from labelsky.data.importers.fits import _flux_scale, _pixel_scale, check_fits_pixels

    settings = settings or ImportSettings()
    try:
        with fits.open(path, memmap=False) as hdul:
            check_fits_pixels(hdul, path, settings.max_pixels, error=DatasetError)  # from the headers, before reading
            if hdu is not None:
                try:
                    chosen = hdul[hdu]
                except (KeyError, IndexError):
                    raise DatasetError(f"{path}: no HDU {hdu!r}; it has {len(hdul)}") from None
            else:
                chosen = next((h for h in hdul if h.is_image and h.data is not None and h.data.ndim in (2, 3)
                               and str(h.header.get("EXTNAME", "")).upper() not in ("MASK", "BADPIX")), None)
            if chosen is None or not chosen.is_image or chosen.data is None or chosen.data.ndim not in (2, 3):
                raise DatasetError(f"{path}: no 2-D image or (bands, H, W) cube in the FITS file")
            header = chosen.header
            data = np.asarray(chosen.data, dtype=np.float32)
            mask = None
            for h in hdul:
                if h is not chosen and h.is_image and h.data is not None \
                        and str(h.header.get("EXTNAME", "")).upper() in ("MASK", "BADPIX"):
                    if h.data.shape[-2:] != data.shape[-2:]:
                        raise DatasetError(f"{path}: MASK extension of shape {h.data.shape} does not match the "
                                           f"image {data.shape}")
                    mask = np.asarray(h.data) != 0
            scale = _flux_scale(header, flux_scale)
            pixel_scale = _pixel_scale(header)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FITSFixedWarning)
                try:
                    w = WCS(header)
                    wcs = w.celestial if w.has_celestial else None
                except Exception:  # noqa: BLE001 - a broken WCS: positions from pixels
                    wcs = None
    except DatasetError:
        raise
    except (OSError, ValueError, TypeError) as err:
        raise DatasetError(f"{path}: unreadable FITS file ({type(err).__name__}: {err})") from None
    cube = data.ndim == 3
    planes = data if cube else data[None]
    found = _fits_bands(header, len(planes), cube)
    if found is not None and settings.bands is not None:
        missing = [b for b in settings.bands if b not in found]
        if missing:
            raise DatasetError(f"{path}: band(s) {missing} not in the file, which has {found}")
        planes = planes[[found.index(b) for b in settings.bands]]
    elif found is not None:
        settings = dataclasses.replace(settings, bands=found)
    elif settings.bands is None:
        sv = survey_with_bands(settings.survey, None)
        if len(sv.bands) != len(planes):
            raise DatasetError(f"{path}: {len(planes)} plane(s) with no band names (keyword "
                               f"{'BANDS' if cube else 'FILTER'}); give bands (--bands), one per plane")
        settings = dataclasses.replace(settings, bands=list(sv.bands))
    elif len(settings.bands) != len(planes):
        raise DatasetError(f"{path}: {len(planes)} plane(s) but {len(settings.bands)} band(s) "
                           f"{list(settings.bands)} given")
    survey_with_bands(settings.survey, settings.bands)  # the bands exist in the survey
    return planes * np.float32(scale), mask, settings, {"pixel_scale": pixel_scale, "wcs": wcs}


def read_detection_image(path: str | Path, settings: ImportSettings | None = None, flux_scale: float | None = None,
                         hdu=None) -> tuple[np.ndarray, np.ndarray | None, ImportSettings, dict]:
    """Read the image to detect sources in: ``(image [bands, H, W] float32, mask or None, settings, info)``.

    ``settings`` comes back with the bands (and for pictures ``flux_unit =
    "display"``) filled in; ``info`` holds ``pixel_scale`` (arcsec, or None)
    and ``wcs`` (a celestial astropy WCS, or None). Errors are one-line
    :class:`DatasetError`.
    """
    from labelsky.data.importers.base import ImportRowError

    path = Path(path)
    try:
        check_input_file(path, settings.max_file_bytes if settings else ImportSettings().max_file_bytes)
    except ImportRowError as err:
        raise DatasetError(f"image {err}") from None
    if is_fits_file(path):
        return _read_fits(path, settings, flux_scale, hdu)
    return _read_picture(path, settings)


def _attr(obj, *names):
    """The first of ``names`` that ``obj`` has (photutils 3 renamed several attributes)."""
    for n in names:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return getattr(obj, n)
        except AttributeError:
            continue
    raise AttributeError(names[0])


def detect_sources_in(image: np.ndarray, mask: np.ndarray | None = None, *, threshold: float = 3.0,
                      npixels: int = 20, deblend: bool = True, box_size: int = 64) -> dict:
    """Sources of ``image`` [bands, H, W] (photutils), as arrays.

    Returns ``label, x, y, area, semimajor_sigma, ellipticity, flux`` (one
    entry per source, flux on the background-subtracted detection image, the
    mean of the bands) and ``background`` / ``background_rms`` (medians).
    Empty arrays when nothing is detected.
    """
    try:
        from astropy.convolution import convolve
        from photutils.background import Background2D, MedianBackground
        from photutils.segmentation import SourceCatalog, deblend_sources, detect_sources, make_2dgaussian_kernel
    except ImportError:
        raise SettingsError("source detection needs photutils (pip install photutils)") from None

    image = np.asarray(image, dtype=np.float32)
    bad = ~np.isfinite(image).all(axis=0)
    if mask is not None:
        bad |= np.asarray(mask, bool).reshape(bad.shape) if np.ndim(mask) == 2 else np.asarray(mask, bool).any(0)
    if bad.all():
        raise DatasetError("the image has no valid pixel")
    h, w = bad.shape
    box = int(max(4, min(box_size, h, w)))
    empty = {k: np.zeros(0) for k in ("label", "x", "y", "area", "semimajor_sigma", "ellipticity", "flux")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        det = np.where(bad, 0.0, np.nanmean(np.where(np.isfinite(image), image, np.nan), axis=0)).astype(np.float32)
        try:
            bkg = Background2D(det, box, filter_size=3, mask=bad, bkg_estimator=MedianBackground())
        except ValueError as err:
            raise DatasetError(f"cannot estimate the background ({err})") from None
        sub = np.where(bad, 0.0, det - bkg.background).astype(np.float32)
        conv = convolve(sub, make_2dgaussian_kernel(3.0, size=5), mask=bad, normalize_kernel=True)
        conv = np.where(np.isfinite(conv), conv, 0.0)
        stats = {"background": float(np.median(bkg.background)),
                 "background_rms": float(np.median(bkg.background_rms))}
        segm = detect_sources(conv, threshold * bkg.background_rms, npixels, mask=bad)
        if segm is None:
            return {**empty, **stats}
        if deblend:
            segm = deblend_sources(conv, segm, npixels, contrast=0.001, progress_bar=False)
        cat = SourceCatalog(sub, segm, convolved_data=conv, mask=bad)
        out = {"label": np.asarray(cat.label, dtype=np.int64),
               "x": np.asarray(_attr(cat, "x_centroid", "xcentroid"), dtype=float),
               "y": np.asarray(_attr(cat, "y_centroid", "ycentroid"), dtype=float),
               "area": np.asarray(_quantity(cat.area), dtype=float),
               "semimajor_sigma": np.asarray(_quantity(_attr(cat, "semimajor_axis", "semimajor_sigma")),
                                             dtype=float),
               "ellipticity": np.asarray(_quantity(cat.ellipticity), dtype=float),
               "flux": np.asarray(_quantity(cat.segment_flux), dtype=float)}
    return {**out, **stats}


def _quantity(v):
    return getattr(v, "value", v)


def _cutout(image: np.ndarray, x: float, y: float, side: int) -> np.ndarray:
    """``side`` x ``side`` pixels of ``image`` [bands, H, W] centred on (x, y) to within half a pixel; NaN beyond
    the image."""
    b, h, w = image.shape
    x0 = int(math.floor(x - (side - 1) / 2 + 0.5))
    y0 = int(math.floor(y - (side - 1) / 2 + 0.5))
    out = np.full((b, side, side), np.nan, dtype=np.float32)
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x0 + side, w), min(y0 + side, h)
    if sx1 > sx0 and sy1 > sy0:
        out[:, sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = image[:, sy0:sy1, sx0:sx1]
    return out


def _shrink(x: np.ndarray, size: int, keep_flux: bool) -> np.ndarray:
    """``x`` [bands, S, S] resampled to ``size`` (antialiased bilinear); NaN where masked pixels weigh > 1 %; with
    ``keep_flux`` the total flux is kept (values times the pixel-area ratio)."""
    from labelsky.data.importers.pictures import resize_bands

    bad = ~np.isfinite(x)
    out = resize_bands(np.where(bad, 0.0, x).astype(np.float32), (size, size))
    frac = resize_bands(bad.astype(np.float32), (size, size))
    if keep_flux:
        out = out * np.float32((x.shape[1] / size) ** 2)
    out[frac > 0.01] = np.nan
    return out


def import_detections(image_path: str | Path, out: str | Path, *, settings: ImportSettings | None = None,
                      size: int = 64, threshold: float = 3.0, npixels: int = 20, deblend: bool = True,
                      min_area: int | None = None, max_sources: int | None = None, cutout: str = "fixed",
                      scale_factor: float = 20.0, edge: str = "pad", box_size: int = 64,
                      flux_scale: float | None = None, pixel_scale: float | None = None,
                      id_prefix: str | None = None, hdu=None,
                      overwrite: bool = False, progress: bool = True) -> tuple[LabelskyDataset, dict]:
    """Detect the sources of one image and import a cutout of each into a dataset at ``out``.

    Parameters
    ----------
    image_path : str or Path
        PNG / JPEG / TIFF picture or FITS image (2-D, or a ``(bands, H, W)`` cube).
    out : str or Path
        Dataset folder (created; resumed when an earlier run was interrupted).
    settings : ImportSettings, optional
        Survey, bands, shard size, masking limits. Default for pictures:
        ``decals`` ``g, r, z`` (one band, ``r``, for grayscale), ``flux_unit =
        "display"``; for FITS: ``sdss`` with bands from ``BANDS`` / ``FILTER``.
    size : int
        Cutout side in pixels.
    threshold : float
        Detection threshold in units of the background RMS.
    npixels : int
        Fewest connected pixels of a source.
    deblend : bool
        Split blended sources (photutils ``deblend_sources``).
    min_area : int, optional
        Sources with fewer pixels (after deblending) are left out (default
        ``npixels``).
    max_sources : int, optional
        Keep only the brightest ``max_sources`` (detection flux).
    cutout : {"fixed", "scaled"}
        ``fixed``: ``size`` image pixels; ``scaled``: ``max(size,
        scale_factor * semimajor_sigma)`` image pixels resampled to ``size``.
    scale_factor : float
        Field of view of a ``scaled`` cutout in units of ``semimajor_sigma``.
    edge : {"pad", "drop"}
        Cutouts crossing the image edge: padded with NaN (masked), or left out
        and reported.
    box_size : int
        Background box side, pixels.
    flux_scale : float, optional
        FITS data times this are nanomaggies (default: zeropoint keyword, else 1).
    pixel_scale : float, optional
        Image arcsec per pixel when the file gives none (WCS or ``PIXSCALE``):
        the ``pixel_scale`` column and the pixel-derived ``ra`` / ``dec``
        (default there: the survey's).
    id_prefix : str, optional
        ``id_str`` is ``{id_prefix}_{label:06d}`` (default: the file name).
    hdu : int or str, optional
        FITS HDU to read (default: the first image).
    overwrite, progress : bool
        As for every importer.

    Returns
    -------
    (LabelskyDataset, dict)
        The dataset (split ``unlabelled``, label -1; columns ``x, y, area,
        semimajor_sigma, ellipticity, det_flux, cutout_side, radec_source``
        and ``pixel_scale`` when known) and the import report, with the
        detection summary under ``detection``.
    """
    import time

    path = Path(image_path)
    _check_number("size", size, integer=True, minimum=1, strict=False)
    _check_number("threshold", threshold)
    _check_number("npixels", npixels, integer=True, minimum=1, strict=False)
    _check_number("min_area", min_area, integer=True, minimum=1, strict=False, optional=True)
    _check_number("max_sources", max_sources, integer=True, minimum=1, strict=False, optional=True)
    _check_number("scale_factor", scale_factor)
    _check_number("box_size", box_size, integer=True, minimum=4, strict=False)
    from labelsky.data.importers.fits import check_cutout_size

    check_cutout_size(size, settings or ImportSettings())
    if cutout not in _CUTOUTS:
        raise SettingsError(f"cutout (--cutout) = {cutout!r}; expected one of {list(_CUTOUTS)}")
    if edge not in _EDGES:
        raise SettingsError(f"edge (--edge) = {edge!r}; expected one of {list(_EDGES)}")
    _check_number("flux_scale", flux_scale, optional=True)
    _check_number("pixel_scale", pixel_scale, optional=True)
    if settings is not None:
        settings.check()
    t0 = time.perf_counter()
    image, mask, settings, info = read_detection_image(path, settings, flux_scale, hdu)
    scale_in = info["pixel_scale"] or pixel_scale
    if mask is not None:
        image = np.where(mask, np.nan, image).astype(np.float32)
    found = detect_sources_in(image, mask, threshold=threshold, npixels=npixels, deblend=deblend,
                              box_size=box_size)
    n_detected = len(found["label"])
    keep = np.isfinite(found["x"]) & np.isfinite(found["y"]) & (found["area"] >= (min_area or npixels))
    n_small = int((~keep).sum())
    sel = np.flatnonzero(keep)
    n_beyond = 0
    if max_sources is not None and len(sel) > max_sources:
        order = np.argsort(-np.nan_to_num(found["flux"][sel], nan=-np.inf), kind="stable")
        n_beyond = len(sel) - max_sources
        sel = np.sort(sel[order[:max_sources]])
    if not len(sel):
        raise DatasetError(f"{path}: no source detected above {threshold:g} x the background RMS with at least "
                           f"{min_area or npixels} pixels ({n_detected} detected before the cuts); lower "
                           f"--threshold or --npixels")
    t_detect = time.perf_counter() - t0
    survey = survey_with_bands(settings.survey, settings.bands)
    prefix = _safe_prefix(id_prefix) if id_prefix else _safe_prefix(path.name.split(".")[0])
    display = settings.flux_unit == "display"
    xs, ys = found["x"][sel], found["y"][sel]
    wcs = info["wcs"]
    if wcs is not None:
        ra, dec = (np.asarray(v, dtype=float) for v in wcs.pixel_to_world_values(xs, ys))
        ra = np.mod(ra, 360.0)
        radec_source = "wcs"
    else:
        s = scale_in or survey.pixel_scale
        ra, dec = xs * s / 3600.0, ys * s / 3600.0
        radec_source = "pixel"
    h, w = image.shape[1:]
    records = []
    for k, i in enumerate(sel):
        x, y = float(found["x"][i]), float(found["y"][i])
        sigma = float(found["semimajor_sigma"][i])
        side = size
        if cutout == "scaled" and np.isfinite(sigma):
            side = max(size, int(math.ceil(scale_factor * sigma)))
        rec = {"id_str": f"{prefix}_{int(found['label'][i]):06d}", "ra": float(ra[k]), "dec": float(dec[k]),
               "split": "unlabelled", "label": -1, "label_name": "", "x": x, "y": y,
               "area": float(found["area"][i]), "semimajor_sigma": sigma,
               "ellipticity": float(found["ellipticity"][i]), "det_flux": float(found["flux"][i]),
               "cutout_side": int(side), "radec_source": radec_source, "_row": int(k), "_file": str(path)}
        if scale_in or not display:  # flux cutouts always say their pixel (the survey's when the file does not)
            rec["pixel_scale"] = float(scale_in or survey.pixel_scale) * side / size
        if not (np.isfinite(rec["ra"]) and np.isfinite(rec["dec"]) and 0 <= rec["ra"] < 360
                and -90 <= rec["dec"] <= 90):
            rec.update(ra=0.0, dec=0.0, _error=f"the WCS gives no valid ra / dec at pixel ({x:.1f}, {y:.1f})")
        elif edge == "drop":
            half = (side - 1) / 2
            x0, y0 = math.floor(x - half + 0.5), math.floor(y - half + 0.5)
            if x0 < 0 or y0 < 0 or x0 + side > w or y0 + side > h:
                rec["_error"] = f"the {side} x {side} cutout at ({x:.1f}, {y:.1f}) crosses the image edge (edge=drop)"
        records.append(rec)

    def load(rec):
        x = _cutout(image, rec["x"], rec["y"], rec["cutout_side"])
        if rec["cutout_side"] != size:
            x = _shrink(x, size, keep_flux=not display)
        return x, None

    settings = dataclasses.replace(settings, classes=[])
    config = {"importer": "detect", "image": str(path.resolve()), "size": size, "threshold": threshold,
              "npixels": npixels, "deblend": deblend, "min_area": min_area, "max_sources": max_sources,
              "cutout": cutout, "scale_factor": scale_factor, "edge": edge, "box_size": box_size,
              "flux_scale": flux_scale, "pixel_scale": pixel_scale, "id_prefix": prefix, "hdu": hdu,
              "settings": dataclasses.asdict(settings)}
    ds, report = run_import(out, settings, records, load, (len(settings.bands), size, size), config,
                            overwrite=overwrite, progress=progress, producer="labelsky import detect",
                            source=str(path))
    report["detection"] = {"image": str(path), "shape": [int(v) for v in image.shape], "n_detected": n_detected,
                           "n_too_small": n_small, "n_beyond_max_sources": n_beyond, "n_sources": len(records),
                           "threshold": threshold, "npixels": npixels, "deblend": deblend,
                           "background": found["background"], "background_rms": found["background_rms"],
                           "radec_source": radec_source, "seconds_detection": round(t_detect, 3)}
    atomic_write_json(Path(out) / "import_report.json", report)
    return ds, report
