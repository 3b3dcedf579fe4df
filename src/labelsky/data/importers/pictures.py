"""Import PNG / JPEG colour cutouts (Galaxy Zoo style pictures) listed in a catalog.

The catalog (CSV, FITS, Parquet, ...) has one row per object with ``id_str``,
``ra``, ``dec`` and ``file`` (the picture, relative to ``base_dir``), and
optionally ``label`` / ``label_name``, ``split`` and Galaxy Zoo vote counts
(:mod:`.votes`); other scalar columns are kept. Every picture channel becomes
a band: RGB pictures give three bands (default ``g, r, z`` of ``decals``, the
usual colour mapping of Legacy Survey cutouts), grayscale pictures one band
(``settings.bands`` must then name one band).

Pixel values are stored as ``value / 255`` in float32 with
``flux_unit = "display"``: these are 8-bit display pictures (stretched and
clipped), not fluxes, so photometry and survey-to-survey flux conversions do
not apply to them.

Pictures are read one at a time and written shard by shard: memory holds at
most one shard of images, and an interrupted import resumes where it stopped
(:func:`~labelsky.data.importers.base.run_import`). Unreadable, missing or
truncated files, grayscale pictures where colour is expected (or the
reverse) and pictures of another size (without ``size``) are left out and
listed in ``DATASET/import_report.json``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

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

__all__ = ["image_size", "import_pictures", "resize_bands"]


def image_size(size) -> tuple[int, int] | None:
    """``size`` (None, an int or ``(H, W)``) as ``(H, W)`` pixels."""
    if size is None:
        return None
    hw = (size, size) if np.ndim(size) == 0 else tuple(size)
    if len(hw) != 2 or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0 for s in hw):
        raise DatasetError(f"size = {size!r}; expected a positive number of pixels or (H, W)")
    return tuple(int(s) for s in hw)


def resize_bands(image: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Bilinear resampling of every band of ``image`` [bands, H, W] to ``size`` (H, W); float32."""
    from PIL import Image

    x = np.asarray(image, dtype=np.float32)
    h, w = (int(s) for s in size)
    if x.shape[1:] == (h, w):
        return x
    return np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(b)).resize((w, h), Image.BILINEAR),
                                dtype=np.float32) for b in x])


def _picture_settings(settings: ImportSettings | None) -> ImportSettings:
    if settings is None:
        return ImportSettings(survey="decals", bands=["g", "r", "z"], flux_unit="display")
    survey = survey_with_bands(settings.survey, settings.bands)  # the survey and bands, checked before any reading
    bands = list(survey.bands)
    if len(bands) not in (1, 3):
        raise DatasetError(f"survey {survey.name!r} has bands {bands}; pictures hold 3 (RGB) "
                           f"or 1 (grayscale) channel(s): give settings.bands, e.g. ['g', 'r', 'z']")
    return dataclasses.replace(settings, bands=bands, flux_unit="display")


def _read_picture(path: Path, n_bands: int, max_pixels: int = 25_000_000) -> np.ndarray:
    """Picture at ``path`` as float32 [bands, H, W] = value / 255; ImportRowError when unusable.

    The size is read from the header first: a picture of more than
    ``max_pixels`` is refused before it is decoded (a small compressed file can
    decode to gigabytes).
    """
    from PIL import Image

    if not path.is_file():
        raise ImportRowError(f"picture file not found: {path}")
    try:
        with Image.open(path) as im:
            w, h = im.size
            if w * h > max_pixels:
                raise ImportRowError(f"picture of {w} x {h} = {w * h} pixels, beyond the limit of {max_pixels} "
                                     f"(--max-pixels raises it)")
            im.load()
            mode, nb = im.mode, len(im.getbands())
            colour = nb >= 3 or mode in ("P", "PA")
            if colour != (n_bands == 3):
                what = "colour" if colour else "grayscale"
                raise ImportRowError(f"{what} picture (mode {mode}) but {n_bands} band(s) expected; "
                                     f"{'RGB' if n_bands == 3 else 'grayscale'} pictures only")
            if colour and mode not in ("RGB", "RGBA", "RGBX", "P", "PA"):
                raise ImportRowError(f"picture mode {mode} is not RGB; convert it to 8-bit RGB")
            if not colour and mode not in ("L", "LA", "1"):
                raise ImportRowError(f"picture mode {mode} is not 8-bit grayscale; convert it to 8-bit (mode L)")
            arr = np.asarray(im.convert("RGB" if colour else "L"), dtype=np.uint8)
    except (OSError, SyntaxError, Image.DecompressionBombError) as err:
        raise ImportRowError(f"cannot read picture {path}: {type(err).__name__}: {err}") from None
    arr = arr.transpose(2, 0, 1) if arr.ndim == 3 else arr[None]
    return arr.astype(np.float32) / np.float32(255.0)


def _first_size(records: list[dict], source: str, max_bytes: int) -> tuple[int, int]:
    """The size of the first picture that opens; every file is checked to be a regular file of at most
    ``max_bytes`` before it is opened (a pipe or a device is never read)."""
    from PIL import Image

    errors = []
    for rec in records:
        if rec.get("_error"):
            continue
        try:
            check_input_file(rec["_file"], max_bytes)
            with Image.open(rec["_file"]) as im:
                return int(im.size[1]), int(im.size[0])
        except ImportRowError as err:
            errors.append(str(err))
        except (OSError, SyntaxError, Image.DecompressionBombError) as err:
            errors.append(f"{rec['_file']}: {type(err).__name__}: {err}")
    raise DatasetError(f"{source}: none of the {len(records)} pictures can be opened"
                       + (f" (first error: {errors[0]})" if errors else ""))


def import_pictures(catalog, out: str | Path, settings: ImportSettings | None = None,
                    base_dir: str | Path | None = None, size=None, overwrite: bool = False,
                    progress: bool = True) -> tuple[LabelskyDataset, dict]:
    """Import the PNG / JPEG pictures listed in ``catalog`` into a dataset at ``out``; returns (dataset, report).

    ``catalog``: a table file or an astropy Table with ``id_str, ra, dec, file``.
    ``base_dir``: folder that relative ``file`` paths start from (default: the
    catalog file's folder). ``settings``: survey, bands (one per picture
    channel; default ``decals`` ``g, r, z``), classes, splits, shard size;
    ``flux_unit`` is set to ``"display"``. ``size``: pixels (int or (H, W))
    every picture is resampled to (bilinear); by default the size of the first
    picture, and pictures of another size are rejected. ``report`` lists every
    row left out or flagged with its file, row, ``id_str`` and reason.
    """
    settings = _picture_settings(settings)
    if isinstance(catalog, (str, Path)):
        source = str(catalog)
        table = read_table(catalog)
        if base_dir is None:
            base_dir = Path(catalog).parent
    else:
        source, table = "<catalog>", catalog
    records, classes = catalog_records(table, source, settings, file_column="file",
                                       base_dir=Path(base_dir) if base_dir is not None else None)
    settings = dataclasses.replace(settings, classes=classes)
    hw = image_size(size)
    shape_hw = hw if hw is not None else _first_size(records, source, settings.max_file_bytes)
    n_bands = len(settings.bands)

    def load(rec):
        x = _read_picture(Path(rec["_file"]), n_bands, settings.max_pixels)
        if x.shape[1:] != shape_hw:
            if hw is None:
                raise ImportRowError(f"picture is {x.shape[1]}x{x.shape[2]} pixels, the others "
                                     f"{shape_hw[0]}x{shape_hw[1]}; pass size (--size) to resample")
            x = resize_bands(x, shape_hw)
        return x, None

    config = {"importer": "pictures", "catalog": source, "n_rows": len(records),
              "base_dir": str(base_dir) if base_dir is not None else None, "size": list(shape_hw),
              "resample": hw is not None, "settings": dataclasses.asdict(settings)}
    return run_import(out, settings, records, load, (n_bands, *shape_hw), config, overwrite=overwrite,
                      progress=progress, producer="labelsky import pictures", source=source,
                      inputs=[base_dir])
