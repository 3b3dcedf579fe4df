"""Survey specifications: bands, pixel scale, PSF, depth and flux unit.

A :class:`Survey` holds everything the simulator and the importers need to know
about how a survey images the sky. Every image in labelsky is in **nanomaggies
per pixel** (AB zeropoint 22.5), whatever the survey, so that domains are
directly comparable.

Sky-limited noise per pixel follows from the 5-sigma point-source depth ``m5``
and the PSF FWHM (both per band)::

    sigma_pix = F(m5) / (5 sqrt(N_eff)),   F(m) = 10**(-0.4 (m - 22.5)) nmgy,
    N_eff = 4 pi (FWHM / 2.355)**2 / pixel_scale**2

which is exact for a Gaussian PSF measured with an optimal (PSF-weighted)
aperture. Source Poisson noise uses an effective gain (electrons per
nanomaggy) derived from the sky brightness: a sky of ``S`` nmgy per pixel
that gives the variance ``sigma_pix**2`` implies ``g = S / sigma_pix**2``.

Built-in surveys (values are literature figures; see each function's
docstring for its sources):

============== ===== ============ ============================== ==============================
name           pixel bands        PSF FWHM (arcsec)              5-sigma depth (AB)
============== ===== ============ ============================== ==============================
sdss           0.396 u g r i z    1.55 1.43 1.32 1.25 1.18       22.0 22.2 22.2 21.3 20.5
sdss_stripe82  0.396 u g r i z    1.35 1.25 1.10 1.05 1.00       23.9 25.1 24.6 24.1 22.8
des            0.263 g r i z Y    1.12 0.96 0.88 0.84 0.90       25.1 24.8 24.2 23.4 22.2
decals         0.262 g r z        1.4 1.3 1.2                    24.7 24.0 23.0
lsst_y10       0.2   u g r i z y  0.90 0.86 0.81 0.79 0.77 0.76  26.1 27.4 27.5 26.8 26.1 24.9
lsst_y1        0.2   u g r i z y  as lsst_y10                    lsst_y10 - 1.25
============== ===== ============ ============================== ==============================

Users define their own surveys in YAML with the same field names as
:class:`Survey` (see ``docs/surveys.md``) and load them with
:func:`get_survey` by file path, or register them with :func:`register_survey`.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from labelsky.errors import SettingsError

__all__ = [
    "Survey",
    "get_survey",
    "list_surveys",
    "register_survey",
    "check_filters",
    "mag_to_nmgy",
    "nmgy_to_mag",
    "AB_ZEROPOINT_NMGY",
]

#: AB magnitude of one nanomaggy.
AB_ZEROPOINT_NMGY = 22.5

_PSF_PROFILES = ("moffat", "kolmogorov", "gaussian")


def mag_to_nmgy(mag):
    """AB magnitude to flux in nanomaggies."""
    return 10.0 ** (-0.4 * (np.asarray(mag, dtype=float) - AB_ZEROPOINT_NMGY))


def nmgy_to_mag(flux):
    """Flux in nanomaggies to AB magnitude (NaN for non-positive flux)."""
    flux = np.asarray(flux, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(flux > 0, AB_ZEROPOINT_NMGY - 2.5 * np.log10(flux), np.nan)


class SurveyError(SettingsError):
    """A survey specification is unknown or inconsistent."""


def _is_number(v) -> bool:
    """A finite real number (not a bool, not text)."""
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(float(v))


#: what a survey's name may be: it names the survey's folder in a simulation (``OUT/<name>/``)
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")


def check_filters(survey: "Survey", source: str | None = None) -> None:
    """Raise :class:`SurveyError` unless speclite knows every filter of ``survey`` (a name or an .ecsv file)."""
    import speclite.filters

    for band, name in zip(survey.bands, survey.filters):
        try:
            speclite.filters.load_filter(name)
        except (ValueError, OSError, RuntimeError, KeyError) as err:
            where = f"{source}: " if source else ""
            raise SurveyError(f"{where}survey {survey.name!r}: field 'filters': unknown filter {name!r} for band "
                              f"{band!r} ({err}); expected a speclite filter name such as 'sdss2010-r', "
                              f"'decam2014-g', 'lsst2023-i' or an .ecsv filter file") from None


@dataclass(frozen=True)
class Survey:
    """How a survey images the sky.

    Parameters
    ----------
    name
        Short identifier, e.g. ``"sdss"``.
    pixel_scale
        Arcseconds per pixel.
    bands
        Band names in image-channel order, e.g. ``("g", "r", "z")``.
    filters
        One speclite filter name per band (e.g. ``"sdss2010-r"``), used to
        compute galaxy colours from spectral energy distributions.
    psf_fwhm
        PSF full width at half maximum per band, arcseconds.
    depth
        5-sigma point-source depth per band, AB magnitudes.
    sky_mag
        Sky surface brightness per band, AB mag per square arcsecond; sets the
        effective gain for source Poisson noise.
    psf_profile
        ``"moffat"`` (default, with ``psf_beta``), ``"kolmogorov"`` or
        ``"gaussian"``.
    psf_beta
        Moffat index.
    saturation_mag
        Point-source magnitude whose peak pixel reaches saturation.
    cutout_size
        Default cutout side in pixels.
    zeropoint
        AB magnitude of one image unit (22.5: nanomaggies). labelsky's images
        are always in nanomaggies; this records the survey's native unit for
        importers (e.g. 30 for DES coadds).
    description, references
        Free text shown by ``labelsky surveys``.
    """

    name: str
    pixel_scale: float
    bands: tuple[str, ...]
    filters: tuple[str, ...]
    psf_fwhm: tuple[float, ...]
    depth: tuple[float, ...]
    sky_mag: tuple[float, ...]
    psf_profile: str = "moffat"
    psf_beta: float = 3.5
    saturation_mag: float = 14.0
    cutout_size: int = 64
    zeropoint: float = AB_ZEROPOINT_NMGY
    description: str = ""
    references: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise SurveyError(f"survey field 'name' must be a non-empty text, got {self.name!r}")
        if not _SAFE_NAME.fullmatch(self.name):
            # a survey's name is a folder name (OUT/<survey>/ of a simulation): no path may hide in it
            raise SurveyError(f"survey field 'name' = {self.name!r}: a survey's name is a folder name; expected "
                              f"letters, digits and . _ + - (starting with a letter or digit), no path")
        for name in ("bands", "filters", "psf_fwhm", "depth", "sky_mag"):
            value = getattr(self, name)
            if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
                raise SurveyError(f"survey {self.name!r}: field '{name}' must be a list, got {value!r}")
            object.__setattr__(self, name, tuple(value))
        for name in ("bands", "filters"):
            for i, v in enumerate(getattr(self, name)):
                if not isinstance(v, str) or not v:
                    raise SurveyError(f"survey {self.name!r}: field '{name}' entry {i} = {v!r}; expected a name "
                                      f"(text)")
        for name in ("psf_fwhm", "depth", "sky_mag"):
            for i, v in enumerate(getattr(self, name)):
                if not _is_number(v):
                    raise SurveyError(f"survey {self.name!r}: field '{name}' entry {i} = {v!r}; expected a number")
        for name in ("pixel_scale", "psf_beta", "saturation_mag", "zeropoint"):
            v = getattr(self, name)
            if not _is_number(v):
                raise SurveyError(f"survey {self.name!r}: field '{name}' = {v!r}; expected a number")
        if not _is_number(self.cutout_size) or int(self.cutout_size) != self.cutout_size:
            raise SurveyError(f"survey {self.name!r}: field 'cutout_size' = {self.cutout_size!r}; expected a whole "
                              f"number of pixels")
        for name in ("psf_profile", "description", "references"):
            v = getattr(self, name)
            if not isinstance(v, str):
                raise SurveyError(f"survey {self.name!r}: field '{name}' = {v!r}; expected text")
        if not isinstance(self.extra, dict):
            raise SurveyError(f"survey {self.name!r}: field 'extra' = {self.extra!r}; expected a mapping")
        nb = len(self.bands)
        if nb == 0:
            raise SurveyError(f"survey {self.name!r}: field 'bands' is empty")
        if len(set(self.bands)) != nb:
            raise SurveyError(f"survey {self.name!r}: field 'bands' has duplicates: {self.bands}")
        for name in ("filters", "psf_fwhm", "depth", "sky_mag"):
            n = len(getattr(self, name))
            if n != nb:
                raise SurveyError(
                    f"survey {self.name!r}: field '{name}' has {n} entries, expected one per band ({nb}: {self.bands})"
                )
        if not self.pixel_scale > 0:
            raise SurveyError(f"survey {self.name!r}: field 'pixel_scale' must be > 0, got {self.pixel_scale}")
        if any(not f > 0 for f in self.psf_fwhm):
            raise SurveyError(f"survey {self.name!r}: field 'psf_fwhm' must be > 0, got {self.psf_fwhm}")
        if self.psf_profile not in _PSF_PROFILES:
            raise SurveyError(
                f"survey {self.name!r}: field 'psf_profile' = {self.psf_profile!r}, expected one of {_PSF_PROFILES}"
            )
        if not self.cutout_size >= 8:
            raise SurveyError(f"survey {self.name!r}: field 'cutout_size' must be >= 8, got {self.cutout_size}")

    # ------------------------------------------------------------------ bands
    @property
    def n_bands(self) -> int:
        return len(self.bands)

    def band_index(self, band: str) -> int:
        try:
            return self.bands.index(band)
        except ValueError:
            raise SurveyError(f"survey {self.name!r} has no band {band!r}; bands are {self.bands}") from None

    # ------------------------------------------------------------------ noise
    def n_eff(self, band: int | str, pixel_scale: float | None = None) -> float:
        """Effective number of pixels of the PSF (Gaussian approximation)."""
        b = self.band_index(band) if isinstance(band, str) else band
        scale = self.pixel_scale if pixel_scale is None else pixel_scale
        sigma = self.psf_fwhm[b] / (2.0 * math.sqrt(2.0 * math.log(2.0)))
        return 4.0 * math.pi * sigma**2 / scale**2

    def noise_sigma(self, band: int | str, pixel_scale: float | None = None) -> float:
        """Sky-limited noise per pixel in nanomaggies, from the 5-sigma depth.

        ``pixel_scale`` lets a caller ask for the noise of pixels binned to a
        coarser scale than the native one (flux per pixel adds up, so the noise
        grows linearly with the pixel side).
        """
        b = self.band_index(band) if isinstance(band, str) else band
        return float(mag_to_nmgy(self.depth[b]) / (5.0 * math.sqrt(self.n_eff(b, pixel_scale))))

    def sky_level(self, band: int | str, pixel_scale: float | None = None) -> float:
        """Sky flux per pixel in nanomaggies."""
        b = self.band_index(band) if isinstance(band, str) else band
        scale = self.pixel_scale if pixel_scale is None else pixel_scale
        return float(mag_to_nmgy(self.sky_mag[b]) * scale**2)

    def gain(self, band: int | str, pixel_scale: float | None = None) -> float:
        """Effective electrons per nanomaggy, for source Poisson noise."""
        return self.sky_level(band, pixel_scale) / self.noise_sigma(band, pixel_scale) ** 2

    def saturation_level(self, band: int | str) -> float:
        """Pixel value (nmgy) at which a pixel saturates in this band.

        Defined as the peak pixel of a point source of ``saturation_mag``.
        """
        b = self.band_index(band) if isinstance(band, str) else band
        return float(mag_to_nmgy(self.saturation_mag) * self.psf_peak_fraction(b))

    # ------------------------------------------------------------------ PSF
    def psf(self, band: int | str):
        """The band's PSF as a GalSim profile (unit flux)."""
        import galsim

        b = self.band_index(band) if isinstance(band, str) else band
        fwhm = self.psf_fwhm[b]
        if self.psf_profile == "moffat":
            return galsim.Moffat(beta=self.psf_beta, fwhm=fwhm)
        if self.psf_profile == "kolmogorov":
            return galsim.Kolmogorov(fwhm=fwhm)
        return galsim.Gaussian(fwhm=fwhm)

    def psf_peak_fraction(self, band: int | str) -> float:
        """Fraction of a centred point source's flux in its peak pixel."""
        b = self.band_index(band) if isinstance(band, str) else band
        img = self.psf(b).drawImage(nx=15, ny=15, scale=self.pixel_scale)
        return float(img.array.max())

    # ------------------------------------------------------------------ io
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for k in ("bands", "filters", "psf_fwhm", "depth", "sky_mag"):
            d[k] = list(d[k])
        if not d["extra"]:
            d.pop("extra")
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "<dict>") -> "Survey":
        if not isinstance(d, dict):
            raise SurveyError(f"{source}: a survey must be a mapping of fields, got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise SurveyError(f"{source}: unknown survey field(s) {unknown}; known fields are {sorted(names)}")
        required = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING
                    and f.default_factory is dataclasses.MISSING]
        missing = [k for k in required if k not in d]
        if missing:
            raise SurveyError(f"{source}: missing survey field(s) {missing}")
        try:
            return cls(**d)
        except SurveyError as err:
            raise SurveyError(f"{source}: {err}") from None
        except TypeError as err:
            raise SurveyError(f"{source}: {err}") from None

    @classmethod
    def from_yaml(cls, path: str | Path) -> "Survey":
        path = Path(path)
        try:
            d = yaml.safe_load(path.read_text())
        except OSError as err:
            raise SurveyError(f"cannot read survey file {path}: {err}") from None
        except UnicodeDecodeError as err:
            raise SurveyError(f"{path}: not a text (YAML) survey file: {err}") from None
        except yaml.YAMLError as err:
            raise SurveyError(f"{path}: not valid YAML: {err}") from None
        survey = cls.from_dict(d, source=str(path))
        check_filters(survey, source=str(path))
        return survey

    def to_yaml(self, path: str | Path) -> None:
        from labelsky.utils import atomic_write_text

        atomic_write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=False))


# ---------------------------------------------------------------------- built-ins
def _sdss() -> Survey:
    """SDSS single-epoch imaging (DR7/DR12).

    Pixel 0.396" (York et al. 2000, AJ 120, 1579); median seeing per band from
    DR17 field statistics; 5-sigma point-source depths from Abazajian et al.
    2009 (ApJS 182, 543); dark-sky brightness from the SDSS imaging
    documentation (u 22.1, g 21.7, r 20.7, i 20.1, z 18.7 mag/arcsec^2).
    Saturation for point sources near r ~ 14 (Abazajian et al. 2009).
    """
    return Survey(
        name="sdss", pixel_scale=0.396, bands=("u", "g", "r", "i", "z"),
        filters=("sdss2010-u", "sdss2010-g", "sdss2010-r", "sdss2010-i", "sdss2010-z"),
        psf_fwhm=(1.55, 1.43, 1.32, 1.25, 1.18), depth=(22.0, 22.2, 22.2, 21.3, 20.5),
        sky_mag=(22.1, 21.7, 20.7, 20.1, 18.7), saturation_mag=14.0,
        description="SDSS single epoch (DR7/DR12)",
        references="York+2000 (AJ 120, 1579); Abazajian+2009 (ApJS 182, 543); DR17 median seeing",
    )


def _sdss_stripe82() -> Survey:
    """SDSS Stripe 82 coadd (about 2 mag deeper than single epoch).

    Depths and seeing of the coadd from Jiang et al. 2014 (ApJS 213, 12) and
    Annis et al. 2014 (ApJ 794, 120); approximate. Sky brightness as SDSS.
    """
    return Survey(
        name="sdss_stripe82", pixel_scale=0.396, bands=("u", "g", "r", "i", "z"),
        filters=("sdss2010-u", "sdss2010-g", "sdss2010-r", "sdss2010-i", "sdss2010-z"),
        psf_fwhm=(1.35, 1.25, 1.10, 1.05, 1.00), depth=(23.9, 25.1, 24.6, 24.1, 22.8),
        sky_mag=(22.1, 21.7, 20.7, 20.1, 18.7), saturation_mag=14.0,
        description="SDSS Stripe 82 coadd",
        references="Jiang+2014 (ApJS 213, 12); Annis+2014 (ApJ 794, 120) - approximate",
    )


def _des() -> Survey:
    """Dark Energy Survey DR1 coadd.

    Pixel 0.263", median PSF FWHM and 10-sigma-to-5-sigma converted depths from
    Abbott et al. 2018 (ApJS 239, 18). Native coadd images use zeropoint 30;
    labelsky stores nanomaggies (multiply native values by 10**(-0.4*7.5)).
    Sky brightness typical of DECam dark time (g 22.0, r 21.2, i 20.5, z 19.6,
    Y 18.6 mag/arcsec^2; Abbott et al. 2018). Single-epoch saturation near
    16 mag.
    """
    return Survey(
        name="des", pixel_scale=0.263, bands=("g", "r", "i", "z", "Y"),
        filters=("decam2014-g", "decam2014-r", "decam2014-i", "decam2014-z", "decam2014-Y"),
        psf_fwhm=(1.12, 0.96, 0.88, 0.84, 0.90), depth=(25.1, 24.8, 24.2, 23.4, 22.2),
        sky_mag=(22.0, 21.2, 20.5, 19.6, 18.6), saturation_mag=16.0, zeropoint=30.0,
        description="Dark Energy Survey DR1 coadd",
        references="Abbott+2018 (ApJS 239, 18)",
    )


def _decals() -> Survey:
    """DECam Legacy Survey DR7.

    Pixel 0.262"; PSF and depth approximate from Dey et al. 2019 (AJ 157,
    168) and the DR7 release notes; sky brightness g 22.04, r 20.91,
    z 18.46 mag/arcsec^2 (Dey et al. 2019).
    """
    return Survey(
        name="decals", pixel_scale=0.262, bands=("g", "r", "z"),
        filters=("decam2014-g", "decam2014-r", "decam2014-z"),
        psf_fwhm=(1.4, 1.3, 1.2), depth=(24.7, 24.0, 23.0), sky_mag=(22.04, 20.91, 18.46),
        saturation_mag=16.0, description="DECam Legacy Survey DR7",
        references="Dey+2019 (AJ 157, 168); legacysurvey.org DR7 notes - approximate",
    )


def _lsst_y10() -> Survey:
    """LSST after ten years (design values).

    Pixel 0.2", median delivered seeing, coadded 5-sigma depths and dark-sky
    brightness (u 22.99, g 22.26, r 21.20, i 20.48, z 19.60, y 18.61) from
    Ivezic et al. 2019 (ApJ 873, 111), Table 2.
    """
    return Survey(
        name="lsst_y10", pixel_scale=0.2, bands=("u", "g", "r", "i", "z", "y"),
        filters=("lsst2023-u", "lsst2023-g", "lsst2023-r", "lsst2023-i", "lsst2023-z", "lsst2023-y"),
        psf_fwhm=(0.90, 0.86, 0.81, 0.79, 0.77, 0.76), depth=(26.1, 27.4, 27.5, 26.8, 26.1, 24.9),
        sky_mag=(22.99, 22.26, 21.20, 20.48, 19.60, 18.61), saturation_mag=16.0,
        description="LSST ten-year coadd (design)",
        references="Ivezic+2019 (ApJ 873, 111)",
    )


def _lsst_y1() -> Survey:
    """LSST after one year: Y10 depths minus 1.25 mag (depth grows as
    1.25 log10 of the number of visits; Ivezic et al. 2019); seeing as Y10."""
    y10 = _lsst_y10()
    return dataclasses.replace(
        y10, name="lsst_y1", depth=tuple(round(d - 1.25, 3) for d in y10.depth),
        description="LSST one-year coadd (design)",
        references="Ivezic+2019 (ApJ 873, 111): depth(Y1) = depth(Y10) - 1.25 log10(10)",
    )


_BUILTIN = {
    "sdss": _sdss,
    "sdss_stripe82": _sdss_stripe82,
    "des": _des,
    "decals": _decals,
    "lsst_y1": _lsst_y1,
    "lsst_y10": _lsst_y10,
}
_REGISTERED: dict[str, Survey] = {}


def register_survey(survey: Survey, overwrite: bool = False) -> Survey:
    """Make a user-defined survey available by name."""
    if not overwrite and (survey.name in _BUILTIN or survey.name in _REGISTERED):
        raise SurveyError(f"a survey named {survey.name!r} already exists (pass overwrite=True to replace it)")
    _REGISTERED[survey.name] = survey
    return survey


def list_surveys() -> list[str]:
    """Names of the built-in and registered surveys."""
    return list(_BUILTIN) + [n for n in _REGISTERED if n not in _BUILTIN]


def get_survey(spec: "str | Path | Survey | dict") -> Survey:
    """A survey by name, YAML file path, dict of fields, or a Survey itself."""
    if isinstance(spec, Survey):
        return spec
    if isinstance(spec, dict):
        return Survey.from_dict(spec)
    spec_str = str(spec)
    if spec_str in _REGISTERED:
        return _REGISTERED[spec_str]
    if spec_str in _BUILTIN:
        return _BUILTIN[spec_str]()
    if spec_str.endswith((".yaml", ".yml")) or Path(spec_str).is_file():
        return Survey.from_yaml(spec_str)
    raise SurveyError(f"unknown survey {spec_str!r}; known surveys are {list_surveys()} (or give a YAML file path)")
