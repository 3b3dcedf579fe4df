"""FITS importers: one cutout file per object, or cutouts cut from large survey images with their WCS.

Band order, pixel scale and flux unit
-------------------------------------
* **bands**: a multi-extension file holds one band per image HDU, named by
  the header keyword ``FILTER``, ``BAND`` or ``EXTNAME`` (first found); a cube
  ``(bands, H, W)`` in one HDU takes its band order from the keyword ``BANDS``
  (e.g. ``'g,r,z'``) or, failing that, ``settings.bands``. Channels are put in
  the order of ``settings.bands`` (default: the survey's bands).
* **pixel scale** (arcsec/pixel): from the WCS (``proj_plane_pixel_scales``),
  else the keyword ``PIXSCALE``, else ``pixel_scale`` given to the importer,
  else the survey's. Every cutout is resampled (bilinear, flux per pixel
  scaled by the pixel-area ratio) to the survey's pixel scale and cropped or
  padded (padding is masked) to ``size`` pixels around its centre.
* **flux**: stored in nanomaggies. With ``flux_scale`` the data are multiplied
  by it; otherwise a zeropoint keyword (``MAGZP``, ``MAGZERO``, ``ZEROPT`` or
  ``ZP``; AB mag of one data unit) gives ``10 ** (-0.4 (ZP - 22.5))``;
  otherwise the data are taken to be nanomaggies already (as Legacy Survey
  and SDSS "nanomaggies" cutouts are).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from labelsky.data.importers.base import (
    ImportRowError,
    ImportSettings,
    catalog_records,
    check_input_file,
    read_table,
    run_import,
    survey_with_bands,
)
from labelsky.data.io import DatasetError, LabelskyDataset
from labelsky.errors import SettingsError

__all__ = ["import_fits_cutouts", "import_fits_images", "read_fits_cutout", "resample", "export_fits_cutouts"]

_BAND_KEYS = ("FILTER", "BAND", "EXTNAME")
_ZP_KEYS = ("MAGZP", "MAGZERO", "ZEROPT", "ZP")


def _check_options(size=None, pixel_scale=None, flux_scale=None) -> None:
    """SettingsError for a cutout size, input pixel scale or flux scale that makes no sense."""
    import math
    import numbers

    if size is not None and (isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1):
        raise SettingsError(f"size (--size) = {size!r}; expected a cutout side in pixels >= 1")
    for name, v in (("pixel_scale", pixel_scale), ("flux_scale", flux_scale)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v)
                              or not v > 0):
            option = "--" + name.replace("_", "-")
            what = "arcsec per pixel" if name == "pixel_scale" else "the factor from data units to nanomaggies"
            raise SettingsError(f"{name} ({option}) = {v!r}; expected a number > 0 ({what})")


def check_cutout_size(size: int, settings: ImportSettings) -> None:
    """Refuse a cutout side whose images would hold more than ``settings.max_pixels`` pixels per band."""
    if size * size > settings.max_pixels:
        raise SettingsError(f"size (--size) = {size}: a {size} x {size} cutout holds {size * size} pixels per band, "
                            f"beyond the limit of {settings.max_pixels} (--max-pixels raises it)")


def _pixel_scale(header) -> float | None:
    import warnings

    from astropy.wcs import WCS, FITSFixedWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        try:
            w = WCS(header, naxis=2)
            if w.has_celestial:
                from astropy.wcs.utils import proj_plane_pixel_scales

                return float(np.mean(proj_plane_pixel_scales(w.celestial)) * 3600.0)
        except Exception:  # noqa: BLE001 - a broken WCS falls back to keywords
            pass
    if "PIXSCALE" in header:
        return float(header["PIXSCALE"])
    return None


def _flux_scale(header, flux_scale: float | None) -> float:
    if flux_scale is not None:
        return float(flux_scale)
    for k in _ZP_KEYS:
        if k in header:
            return float(10 ** (-0.4 * (float(header[k]) - 22.5)))
    return 1.0


def header_pixels(header) -> int:
    """Pixels of an HDU's data from its header alone (``NAXIS1 x NAXIS2 x ...``), 0 without data."""
    n = int(header.get("NAXIS", 0) or 0)
    if n == 0:
        return 0
    total = 1
    for i in range(1, n + 1):
        total *= int(header.get(f"NAXIS{i}", 0) or 0)
    return total


def check_fits_pixels(hdul, path, max_pixels: int, error=None) -> None:
    """Refuse a FITS file whose images hold more than ``max_pixels`` pixels, from the headers alone, before any
    pixel is read (a few-MB compressed file can hold gigabytes of pixels)."""
    for h in hdul:
        n = header_pixels(h.header)
        if n > max_pixels:
            err = error or ImportRowError
            raise err(f"{path}: HDU {h.name or '#'} holds {n} pixels ({h.header.get('NAXIS1')} x "
                      f"{h.header.get('NAXIS2')}{' x ...' if int(h.header.get('NAXIS', 0)) > 2 else ''}), beyond "
                      f"the limit of {max_pixels} (--max-pixels raises it)")


def read_fits_cutout(path: str | Path, bands: Sequence[str], flux_scale: float | None = None,
                     max_pixels: int = 25_000_000):
    """Read one cutout file: ``(image [bands, H, W] float32 nanomaggies, mask or None, pixel scale or None)``.

    Raises :class:`ImportRowError` for a missing band, an unexpected shape, an
    unreadable / truncated file, or more than ``max_pixels`` pixels in an HDU
    (checked from the headers before anything is read).
    """
    import warnings

    from astropy.io import fits
    from astropy.io.fits.verify import VerifyWarning

    path = Path(path)
    if not path.exists():
        raise ImportRowError(f"file not found: {path}")
    try:
        with warnings.catch_warnings(), fits.open(path, memmap=False) as hdul:
            warnings.simplefilter("error", VerifyWarning)  # astropy only warns about a truncated file
            check_fits_pixels(hdul, path, max_pixels)
            hdul.verify("exception")
            hdul.readall()
            hdus = [h for h in hdul if getattr(h, "data", None) is not None and h.is_image and h.data.ndim >= 2]
            if not hdus:
                raise ImportRowError(f"{path}: no image HDU")
            masks = {}
            if len(hdus) == 1 and hdus[0].data.ndim == 3:
                h = hdus[0]
                names = [b.strip() for b in str(h.header.get("BANDS", "")).split(",") if b.strip()] or list(bands)
                data = np.asarray(h.data, dtype=np.float32)
                if data.shape[0] != len(names):
                    raise ImportRowError(f"{path}: cube has {data.shape[0]} planes but {len(names)} bands {names}")
                planes = dict(zip(names, data))
                header = h.header
            else:
                planes, header = {}, hdus[0].header
                for i, h in enumerate(hdus):
                    name = next((str(h.header[k]).strip() for k in _BAND_KEYS if k in h.header), None)
                    if name is not None and name.upper() in ("MASK", "BADPIX"):
                        masks["all"] = np.asarray(h.data) != 0
                        continue
                    if h.data.ndim != 2:
                        raise ImportRowError(f"{path}: HDU {i} has {h.data.ndim} dimensions, expected a 2-D image")
                    if name is None:
                        if len(hdus) != len(bands):
                            raise ImportRowError(f"{path}: HDU {i} names no band ({'/'.join(_BAND_KEYS)})")
                        name = bands[i]
                    planes[name] = np.asarray(h.data, dtype=np.float32)
            missing = [b for b in bands if b not in planes]
            if missing:
                raise ImportRowError(f"{path}: band(s) {missing} missing; file has {sorted(planes)}")
            shapes = {planes[b].shape for b in bands}
            if len(shapes) != 1:
                raise ImportRowError(f"{path}: bands have different shapes {sorted(shapes)}")
            image = np.stack([planes[b] for b in bands]) * _flux_scale(header, flux_scale)
            return image.astype(np.float32), masks.get("all"), _pixel_scale(header)
    except ImportRowError:
        raise
    except (OSError, ValueError, TypeError, VerifyWarning) as err:
        raise ImportRowError(f"{path}: unreadable or truncated FITS file ({type(err).__name__}: {err})") from None


def resample(image: np.ndarray, mask: np.ndarray | None, scale_in: float, scale_out: float, size: int):
    """Bilinear resampling from ``scale_in`` to ``scale_out`` arcsec/pixel, centre crop / pad to ``size``.

    Flux per pixel is multiplied by the pixel-area ratio, so total flux is
    kept. Returns ``(image with NaN where masked or padded, None)``.
    """
    from scipy.ndimage import zoom

    x = np.array(image, dtype=np.float32)
    bad = ~np.isfinite(x)
    if mask is not None:
        bad |= np.broadcast_to(np.asarray(mask, bool), x.shape)
    if abs(scale_in / scale_out - 1.0) > 1e-3:
        f = scale_in / scale_out
        filled = np.where(bad, 0.0, x)
        x = np.stack([zoom(p, f, order=1, mode="nearest", grid_mode=True) for p in filled]) / f ** 2
        bad = np.stack([zoom(b.astype(np.float32), f, order=1, mode="nearest", grid_mode=True) for b in bad]) > 0.01
    x[bad] = np.nan
    out = np.full((x.shape[0], size, size), np.nan, dtype=np.float32)
    h, w = x.shape[1:]
    sy, sx = max((h - size) // 2, 0), max((w - size) // 2, 0)
    dy, dx = max((size - h) // 2, 0), max((size - w) // 2, 0)
    ch, cw = min(h, size), min(w, size)
    out[:, dy:dy + ch, dx:dx + cw] = x[:, sy:sy + ch, sx:sx + cw]
    return out, None


def _first_side(records, bands, flux_scale, pixel_scale, survey, settings, source: str) -> int:
    """The default output side: the first readable cutout's, at the survey's pixel scale (cutouts of another
    size are then padded or cropped to it; ``--size`` sets it)."""
    errors = []
    for rec in records:
        if rec.get("_error"):
            continue
        try:
            check_input_file(rec["_file"], settings.max_file_bytes)
            img, _, scale = read_fits_cutout(rec["_file"], bands, flux_scale, settings.max_pixels)
        except ImportRowError as err:
            errors.append(str(err))
            continue
        scale = scale or pixel_scale or survey.pixel_scale
        side = max(1, int(round(max(img.shape[1:]) * scale / survey.pixel_scale)))
        logging.getLogger(__name__).info(f"cutout side {side} pixels, from the first readable cutout {rec['_file']} "
                                         f"(--size sets another)")
        return side
    raise DatasetError(f"{source}: none of the {len(records)} cutouts can be read"
                       + (f" (first error: {errors[0]})" if errors else ""))


def import_fits_cutouts(catalog: str | Path, out: str | Path, settings: ImportSettings | None = None,
                        file_column: str = "file", base_dir: str | Path | None = None, size: int | None = None,
                        pixel_scale: float | None = None, flux_scale: float | None = None, votes=None,
                        overwrite: bool = False, progress: bool = True, votes_id: str | None = None,
                        catalog_id: str | None = None) -> tuple[LabelskyDataset, dict]:
    """Import one FITS cutout per object listed in ``catalog`` (CSV / FITS / Parquet).

    The catalog needs ``id_str``, ``ra``, ``dec`` and ``file`` (paths relative
    to ``base_dir``, default the catalog's folder); optional ``label`` /
    ``label_name``, ``split`` and Galaxy Zoo vote columns. ``size``: output
    side in pixels (default: the first readable cutout's side at the survey's
    pixel scale). ``pixel_scale``: input
    scale when the files carry none. ``votes``: a Galaxy Zoo vote table joined
    on its published id column (``iauname``, ``dr7objid``, ...; or ``votes_id``
    against the catalog's ``catalog_id``, see
    :func:`labelsky.data.importers.votes.join_votes`). Returns
    ``(dataset, report)``.
    """
    from labelsky.data.importers.votes import join_votes

    _check_options(size, pixel_scale, flux_scale)
    settings = settings or ImportSettings()
    catalog = Path(catalog)
    table = read_table(catalog)
    if votes is not None:
        table = join_votes(table, votes, votes_id=votes_id, catalog_id=catalog_id, schema=settings.vote_schema)
    records, classes = catalog_records(table, str(catalog), settings, file_column=file_column,
                                       base_dir=Path(base_dir) if base_dir else catalog.parent)
    settings.classes = classes
    survey = survey_with_bands(settings.survey, settings.bands)
    bands = list(survey.bands)
    size = int(size or _first_side(records, bands, flux_scale, pixel_scale, survey, settings, str(catalog)))
    check_cutout_size(size, settings)

    def load(rec):
        img, mask, scale = read_fits_cutout(rec["_file"], bands, flux_scale, settings.max_pixels)
        scale = scale or pixel_scale or survey.pixel_scale
        return resample(img, mask, scale, survey.pixel_scale, size)

    config = {"importer": "fits-cutouts", "catalog": str(catalog.resolve()), "bands": bands, "size": size,
              "votes": str(Path(votes).resolve()) if votes else None, "votes_id": votes_id, "catalog_id": catalog_id,
              "survey": survey.name, "pixel_scale": pixel_scale, "flux_scale": flux_scale,
              "settings": {k: v for k, v in vars(settings).items()}}
    return run_import(out, settings, records, load, (len(bands), size, size), config, overwrite=overwrite,
                      progress=progress, source=str(catalog),
                      inputs=[base_dir, votes if isinstance(votes, (str, Path)) else None])


def import_fits_images(images: dict, catalog: str | Path, out: str | Path, settings: ImportSettings | None = None,
                       size: int | None = None, flux_scale: float | None = None, overwrite: bool = False,
                       progress: bool = True) -> tuple[LabelskyDataset, dict]:
    """Cut out every catalog object from large FITS images, one per band (``{band: path}``), with their WCS.

    Uses astropy ``Cutout2D`` (``mode='partial'``): an object near the edge
    gets a partial cutout, padded and masked (NaN); an object outside an
    image is rejected and reported. Images are memory-mapped, so memory stays
    flat however large they are. Images of the bands must share one pixel
    grid scale; they are resampled to the survey's pixel scale when it
    differs.
    """
    import warnings

    from astropy.coordinates import SkyCoord
    from astropy.io import fits
    from astropy.nddata import Cutout2D, NoOverlapError
    from astropy.wcs import WCS, FITSFixedWarning

    _check_options(size, None, flux_scale)
    settings = settings or ImportSettings()
    catalog = Path(catalog)
    survey = survey_with_bands(settings.survey, settings.bands or list(images))
    bands, size = list(survey.bands), int(size or survey.cutout_size)
    check_cutout_size(size, settings)
    missing = [b for b in bands if b not in images]
    if missing:
        raise DatasetError(f"no image given for band(s) {missing}; bands are {bands}")
    opened = {}
    for b in bands:
        p = Path(images[b])
        try:
            hdul = fits.open(p, memmap=True)
        except (OSError, ValueError) as err:
            raise DatasetError(f"{p}: cannot open FITS image for band {b}: {err}") from None
        hdu = next((h for h in hdul if getattr(h, "data", None) is not None and h.is_image), None)
        if hdu is None or hdu.data.ndim != 2:
            raise DatasetError(f"{p}: no 2-D image HDU for band {b}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            w = WCS(hdu.header)
        if not w.has_celestial:
            raise DatasetError(f"{p}: the header has no celestial WCS; cutouts need one")
        opened[b] = (hdul, hdu, w, _pixel_scale(hdu.header) or survey.pixel_scale, _flux_scale(hdu.header, flux_scale))
    table = read_table(catalog)
    records, classes = catalog_records(table, str(catalog), settings)
    settings.classes = classes

    def load(rec):
        pos = SkyCoord(rec["ra"], rec["dec"], unit="deg")
        planes, scale = [], None
        for b in bands:
            _, hdu, w, sc, fs = opened[b]
            n_in = int(np.ceil(size * survey.pixel_scale / sc)) + 2
            try:
                cut = Cutout2D(hdu.data, pos, (n_in, n_in), wcs=w, mode="partial", fill_value=np.nan, copy=True)
            except NoOverlapError:
                raise ImportRowError(f"ra, dec = {rec['ra']:.6f}, {rec['dec']:.6f} outside the {b} image "
                                     f"{images[b]}") from None
            planes.append(np.asarray(cut.data, dtype=np.float32) * fs)
            scale = sc
        return resample(np.stack(planes), None, scale, survey.pixel_scale, size)

    for rec in records:
        rec["_file"] = ",".join(str(images[b]) for b in bands)
    config = {"importer": "fits-images", "catalog": str(catalog.resolve()),
              "images": {b: str(images[b]) for b in bands},
              "size": size, "survey": survey.name, "flux_scale": flux_scale,
              "settings": {k: v for k, v in vars(settings).items()}}
    try:
        return run_import(out, settings, records, load, (len(bands), size, size), config, overwrite=overwrite,
                          progress=progress, source=str(catalog), inputs=list(images.values()))
    finally:
        for hdul, *_ in opened.values():
            hdul.close()


def export_fits_cutouts(ds: LabelskyDataset, out_dir: str | Path, rows=None, catalog_name: str = "catalog.csv"):
    """Write dataset objects as FITS cutouts (one image HDU per band, ``FILTER`` and a TAN WCS) plus a CSV catalog.

    The layout :func:`import_fits_cutouts` reads; used for examples and tests,
    and to hand cutouts to other tools. Returns the catalog path.
    """
    from astropy.io import fits
    from astropy.table import Table
    from astropy.wcs import WCS

    out_dir = Path(out_dir)
    (out_dir / "cutouts").mkdir(parents=True, exist_ok=True)
    rows = np.arange(len(ds)) if rows is None else np.asarray(rows)
    cols = {c: ds.column(c)[rows] for c in ("id_str", "ra", "dec", "label_name", *("votes_smooth",
                                                                                    "votes_featured",
                                                                                    "votes_artifact"))}
    files = []
    for k, i in enumerate(rows):
        img = ds.image(int(i))
        n = img.shape[-1]
        w = WCS(naxis=2)
        w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
        w.wcs.crval = [float(cols["ra"][k]), float(cols["dec"][k])]
        w.wcs.crpix = [(n + 1) / 2, (n + 1) / 2]
        w.wcs.cdelt = [-ds.survey.pixel_scale / 3600, ds.survey.pixel_scale / 3600]
        hdus = [fits.PrimaryHDU()]
        for b, plane in zip(ds.bands, img):
            h = fits.ImageHDU(plane.astype(np.float32), header=w.to_header())
            h.header["FILTER"] = b
            h.header["BUNIT"] = "nanomaggy"
            hdus.append(h)
        name = f"cutouts/{cols['id_str'][k]}.fits"
        fits.HDUList(hdus).writeto(out_dir / name, overwrite=True)
        files.append(name)
    t = Table({"id_str": cols["id_str"].astype(str), "ra": cols["ra"], "dec": cols["dec"], "file": files,
               "label": cols["label_name"].astype(str),
               "votes_smooth": cols["votes_smooth"], "votes_featured": cols["votes_featured"],
               "votes_artifact": cols["votes_artifact"]})
    path = out_dir / catalog_name
    t.write(path, format="ascii.csv", overwrite=True)
    return path
