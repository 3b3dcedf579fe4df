"""Preprocessing and augmentation of multi-band flux images.

Preprocessing maps nanomaggies to a network's range; it runs per sample in
the data loader (:class:`Preprocess`). Augmentation runs on whole batches on
the training device (:class:`BatchAugment`): one affine resampling per batch
is far cheaper than per-sample transforms on a CPU.

Stretches
---------
``asinh``  ``asinh(x / (k sigma_b))`` per band, with ``sigma_b`` the survey's
           pixel noise: the same physical contrast in every survey, noise near 1/k.
``khan``   Khan et al. 2019: per image, subtract the mean and scale to [-1, 1].
``standardize``  per band, subtract the mean and divide by the standard deviation.
``robust_asinh``  per band and image: ``asinh((x - median) / (k sigma_MAD))`` with the noise from the
           median absolute deviation: sky level, noise level and flux scale of the band are divided
           out, so what is left is structure (used by the band-identity pretext).
``equalize``  per band and image, each pixel replaced by its rank among the band's valid pixels, mapped
           to [-1, 1] (histogram equalisation): every band of every image has the same distribution of
           values, so no per-band statistic (flux, colour, noise level, percentiles) tells bands apart;
           what is left is where the pixels are bright (used by the channel-order pretext).
``none``   flux as it is (also for 8-bit colour pictures, already stretched).

Bad pixels
----------
Pixels stored as NaN (masked on import: NaN, inf, masked or outside the
image) never reach a model: every statistic above uses the valid pixels only,
and bad pixels are filled with 0 *after* normalisation (the sky level for
``asinh`` and ``none``, the mean for ``khan`` and ``standardize``, the middle rank for ``equalize``).
``mask_channel`` appends a channel that is 1 where any band was bad.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from labelsky.data.stretches import STRETCHES
from labelsky.errors import SettingsError

__all__ = ["select_bands", "Preprocess", "BatchAugment", "STRETCHES", "RenderPreprocess", "NuisanceRandomisation",
           "draw_key"]

#: the draw key of the item being prepared (see :func:`draw_key`), or None
_DRAW_KEY: contextvars.ContextVar = contextvars.ContextVar("labelsky_draw_key", default=None)


@contextlib.contextmanager
def draw_key(key):
    """Prepare an item under ``key`` (a tuple of ints, e.g. ``(seed, epoch, position)`` from
    :class:`labelsky.methods.epochs.EpochSampler`): random transforms draw from a generator seeded by their own
    seed and this key, so an item's draws depend on the key alone, never on which loader worker prepares it
    or what that worker prepared before."""
    token = _DRAW_KEY.set(tuple(int(k) % 2 ** 63 for k in key))
    try:
        yield
    finally:
        _DRAW_KEY.reset(token)


def select_bands(available: Sequence[str], wanted: Sequence[str] | None) -> list[int]:
    """Channel indices of ``wanted`` bands (by name) among ``available``; all when ``wanted`` is None."""
    available = list(available)
    if wanted is None:
        return list(range(len(available)))
    missing = [b for b in wanted if b not in available]
    if missing:
        raise SettingsError(f"band(s) {missing} not in this dataset's bands {available} (check --bands, or the "
                            f"bands the model was trained on)")
    return [available.index(b) for b in wanted]


class Preprocess:
    """Band selection, stretch and optional resize, as a callable on a [bands, H, W] array.

    Parameters
    ----------
    band_index
        Channels to keep (see :func:`select_bands`).
    noise
        Pixel noise sigma of every band of the dataset (nanomaggies), for ``asinh``.
    stretch
        One of :data:`STRETCHES`.
    softening
        ``k`` of the asinh stretch, in units of the noise.
    size
        Output side in pixels (bilinear resize), or None to keep the input size.
    mask_channel
        Append a channel marking bad pixels (1) as the last input channel.
    fill
        What bad pixels become: ``zero`` (after normalisation), or ``median``: the band's median over the
        image's valid pixels (a picture's sky, e.g. where a cutout ran over the edge of its image).
    """

    def __init__(self, band_index: Sequence[int], noise: Sequence[float] | None = None, stretch: str = "asinh",
                 softening: float = 3.0, size: int | None = None, mask_channel: bool = False, fill: str = "zero"):
        if fill not in ("zero", "median"):
            raise SettingsError(f"fill = {fill!r}; expected 'zero' or 'median'")
        self.fill = fill
        if stretch not in STRETCHES:
            raise SettingsError(f"unknown stretch (--stretch) {stretch!r}; expected one of {STRETCHES}")
        if size is not None and (isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1):
            raise SettingsError(f"image size (--image-size) = {size!r}; expected a side in pixels >= 1")
        if not (isinstance(softening, (int, float, np.number)) and math.isfinite(softening) and softening > 0):
            raise SettingsError(f"softening = {softening!r}; expected a number > 0 (in units of the noise)")
        self.band_index = list(band_index)
        self.stretch = stretch
        self.size = size
        self.mask_channel = bool(mask_channel)
        self.softening = float(softening)
        self.scale = None
        if stretch == "asinh":
            if noise is None:
                raise ValueError("the asinh stretch needs the per-band noise sigma")
            self.scale = np.array([softening * noise[i] for i in self.band_index], dtype=np.float32)[:, None, None]

    def __call__(self, image: np.ndarray) -> torch.Tensor:
        x = np.array(np.asarray(image, dtype=np.float32)[self.band_index], copy=True)
        bad = ~np.isfinite(x)
        any_bad = bool(bad.any())
        if any_bad:
            x[bad] = np.nan
        raw = x
        with np.errstate(over="ignore", invalid="ignore"):
            x = self._stretch(x, bad)
        if not np.isfinite(x[~bad]).all():  # values near float32's limit overflowed: the same stretch in float64
            x = self._stretch(raw.astype(np.float64), bad).astype(np.float32)
        if any_bad:
            for b in range(len(x)):
                valid = x[b][~bad[b]]
                x[b][bad[b]] = float(np.median(valid)) if self.fill == "median" and valid.size else 0.0
        if self.mask_channel:
            x = np.concatenate([x, bad.any(axis=0, keepdims=True).astype(np.float32)])
        t = torch.from_numpy(np.ascontiguousarray(x))
        if self.size is not None and t.shape[-1] != self.size:
            t = F.interpolate(t[None], size=(self.size, self.size), mode="bilinear", align_corners=False)[0]
        return t

    def _stretch(self, x: np.ndarray, bad: np.ndarray) -> np.ndarray:
        x = np.array(x, copy=True)
        if self.stretch == "asinh":
            x = _asinh_ratio(x, self.scale)
        elif self.stretch == "khan":
            valid = x[~bad]
            if valid.size:
                x = x - valid.mean()
                x = x / max(float(np.abs(x[~bad]).max()), 1e-12)
        elif self.stretch == "standardize":
            for b in range(len(x)):
                valid = x[b][~bad[b]]
                if valid.size:
                    x[b] = (x[b] - valid.mean()) / max(float(valid.std()), 1e-12)
        elif self.stretch == "robust_asinh":
            for b in range(len(x)):
                valid = x[b][~bad[b]]
                if valid.size:
                    med = float(np.median(valid))
                    sigma = 1.4826 * float(np.median(np.abs(valid - med)))
                    x[b] = _asinh_ratio(x[b] - med, max(self.softening * sigma, 1e-12))
        elif self.stretch == "equalize":
            for b in range(len(x)):
                ok = ~bad[b]
                n = int(ok.sum())
                if n:
                    ranks = np.empty(n)
                    ranks[np.argsort(x[b][ok], kind="stable")] = np.arange(n)
                    x[b][ok] = 2 * ranks / max(n - 1, 1) - 1
        return x

    def batch(self, images: np.ndarray) -> torch.Tensor:
        """The same as :meth:`__call__` on every image of a batch [N, bands, H, W] -> [N, C, H', W'].

        Vectorised for the per-band stretches (``asinh``, ``none``) when no
        pixel is bad; otherwise image by image. Bulk inference uses this.
        """
        images = np.asarray(images, dtype=np.float32)
        if images.ndim != 4:
            raise ValueError(f"expected a batch [N, bands, H, W], got shape {images.shape}")
        x = images[:, self.band_index]
        if self.stretch not in ("asinh", "none") or not np.isfinite(x).all():
            if not len(images):
                side = images.shape[2:] if self.size is None else (self.size, self.size)
                return torch.zeros((0, len(self.band_index) + int(self.mask_channel), *side))
            return torch.stack([self(im) for im in images])
        x = _asinh_ratio(x, self.scale[None]) if self.stretch == "asinh" else np.array(x, copy=True)
        if self.mask_channel:
            x = np.concatenate([x, np.zeros((len(x), 1, *x.shape[2:]), np.float32)], axis=1)
        t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        if self.size is not None and t.shape[-1] != self.size and len(t):
            t = F.interpolate(t, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return t

    def describe(self) -> dict:
        return {"stretch": self.stretch, "bands": self.band_index, "size": self.size,
                "mask_channel": self.mask_channel}


def _asinh_ratio(x: np.ndarray, scale) -> np.ndarray:
    """``asinh(x / scale)``, finite for every finite ``x`` (a ratio beyond float range is clipped at 1e30 first:
    asinh(1e30) = 69.8; ratios below that are untouched)."""
    with np.errstate(over="ignore", invalid="ignore"):
        r = x / scale
    return np.arcsinh(np.clip(r, -1e30, 1e30, out=r if isinstance(r, np.ndarray) else None))


class BatchAugment(torch.nn.Module):
    """Random flips, rotations, shifts and zooms of a batch [N, C, H, W], band order kept.

    Khan et al. 2019 augment with rotations up to 45 deg, flips, shifts and
    zooms up to 1.3; those are the defaults. One random affine map per image,
    applied with bilinear resampling (reflection padding keeps flux finite and
    avoids hard edges).
    """

    def __init__(self, max_rotation: float = 45.0, max_shift: float = 0.1, max_zoom: float = 1.3,
                 flips: bool = True):
        super().__init__()
        self.max_rotation, self.max_shift, self.max_zoom, self.flips = max_rotation, max_shift, max_zoom, flips

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        n = x.shape[0]
        kw = dict(device=x.device, generator=generator)
        u = lambda: torch.rand(n, **kw)  # noqa: E731
        ang = (u() * 2 - 1) * math.radians(self.max_rotation)
        zoom = 1.0 + u() * (self.max_zoom - 1.0)
        sx = torch.where(u() < 0.5, -1.0, 1.0) if self.flips else torch.ones(n, device=x.device)
        sy = torch.where(u() < 0.5, -1.0, 1.0) if self.flips else torch.ones(n, device=x.device)
        tx, ty = (u() * 2 - 1) * 2 * self.max_shift, (u() * 2 - 1) * 2 * self.max_shift  # grid units: [-1, 1]
        cos, sin = torch.cos(ang) / zoom, torch.sin(ang) / zoom
        theta = torch.stack([torch.stack([cos * sx, -sin * sy, tx], 1), torch.stack([sin * sx, cos * sy, ty], 1)], 1)
        grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


@dataclass
class NuisanceRandomisation:
    """Random nuisances added to a flux image before it is rendered (training only).

    Each image draws: an overall brightness factor, log-uniform in
    ``brightness``; a per-band calibration gain ``exp(N(0, colour))`` (colour
    balance); a Gaussian blur of ``U(0, blur)`` pixels (a broader PSF); extra
    Gaussian noise of ``U(0, noise)`` times the band's pixel noise (shallower
    data); a sky residual: a constant plus a linear gradient, each up to
    ``sky`` times the band's pixel noise; and, with probability
    ``jpeg_probability``, JPEG compression at a quality drawn uniformly from
    ``jpeg_quality``. All draws come from one generator seeded by the run's seed
    (and the loader worker), so a training run is reproducible.

    Display nuisances act on the rendered picture, before its JPEG: the viewers
    and archives that made a survey's pictures differ in black level, contrast
    and gamma. Each picture draws a black level ``U(black)`` (subtracted), a
    contrast ``U(contrast)`` (multiplied) and a gamma ``exp(U(-gamma, gamma))``.
    They are off by default (``black = (0, 0)``, ``contrast = (1, 1)``,
    ``gamma = 0``); e.g. ``black = (0, 0.12)`` spans a Legacy Survey viewer sky
    (32 / 255) down to a black one.
    """

    brightness: tuple = (0.5, 2.0)
    colour: float = 0.1
    blur: float = 1.0
    noise: float = 1.0
    sky: float = 0.5
    jpeg_probability: float = 0.8
    jpeg_quality: tuple = (50, 95)
    black: tuple = (0.0, 0.0)
    contrast: tuple = (1.0, 1.0)
    gamma: float = 0.0

    def __post_init__(self):
        lo, hi = self.brightness
        if not 0 < lo <= hi:
            raise SettingsError(f"randomisation brightness = {self.brightness!r}; expected 0 < low <= high")
        for name in ("colour", "blur", "noise", "sky"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise SettingsError(f"randomisation {name} = {v!r}; expected a number >= 0")
        if not 0 <= self.jpeg_probability <= 1:
            raise SettingsError(f"randomisation jpeg_probability = {self.jpeg_probability!r}; expected 0..1")
        b0, b1 = self.black
        c0, c1 = self.contrast
        if not (-1 < b0 <= b1 < 1 and 0 < c0 <= c1 and math.isfinite(self.gamma) and self.gamma >= 0):
            raise SettingsError(f"randomisation black = {self.black!r}, contrast = {self.contrast!r}, gamma = "
                                f"{self.gamma!r}; expected -1 < low <= high < 1, 0 < low <= high and gamma >= 0")
        q0, q1 = self.jpeg_quality
        if not 1 <= q0 <= q1 <= 100:
            raise SettingsError(f"randomisation jpeg_quality = {self.jpeg_quality!r}; expected 1 <= low <= high "
                                f"<= 100")

    #: fields that are ranges (low, high); the others are single numbers
    RANGES = ("brightness", "jpeg_quality", "black", "contrast")

    @classmethod
    def parse_overrides(cls, text: str | None) -> dict:
        """The fields ``text`` overrides, as a run stores them (``{}``: the defaults).

        The grammar of :func:`labelsky.data.ranges.parse_ranges`:
        ``"blur=1.5,noise=2,jpeg_quality=40:95,black=0:0.12"``; a range field
        given one number is that fixed level; a single-number field takes no
        range. The result is checked by building the randomisation.
        """
        from labelsky.data.ranges import parse_ranges

        names = [f.name for f in dataclasses.fields(cls)]
        out = {}
        for name, nums in parse_ranges(text, names, error=SettingsError).items():
            if name in cls.RANGES:
                nums = [nums[0], nums[-1]]
                if name == "jpeg_quality" and any(v != int(v) for v in nums):
                    raise SettingsError(f"--randomise jpeg_quality: whole numbers (1-100), not {nums}")
                out[name] = [int(v) for v in nums] if name == "jpeg_quality" else nums
            elif len(nums) != 1:
                raise SettingsError(f"--randomise {name}: one number, not a range LOW:HIGH")
            else:
                out[name] = nums[0]
        cls.from_dict(out)
        return out

    @classmethod
    def from_dict(cls, d: dict) -> "NuisanceRandomisation":
        """The randomisation a run stored (``{}``: the defaults; lists stand for ``(low, high)``)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise SettingsError(f"randomisation: unknown field(s) {unknown}; expected some of {sorted(names)}")
        return cls(**{k: tuple(v) if isinstance(v, (list, tuple)) else v for k, v in d.items()})

    def apply(self, image: np.ndarray, noise: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, int | None]:
        """The randomised flux image [bands, H, W] and the JPEG quality to encode at (None: no JPEG)."""
        from scipy.ndimage import gaussian_filter

        x = np.array(image, dtype=np.float64, copy=True)
        nb, h, w = x.shape
        x *= np.exp(rng.uniform(np.log(self.brightness[0]), np.log(self.brightness[1])))
        x *= np.exp(rng.normal(0.0, self.colour, size=nb))[:, None, None]
        sigma = rng.uniform(0.0, self.blur)
        if sigma > 0.05:
            x = np.stack([gaussian_filter(b, sigma, mode="nearest") for b in x])
        sig = np.asarray(noise, dtype=np.float64)[:, None, None]
        x += rng.normal(size=x.shape) * sig * rng.uniform(0.0, self.noise)
        yy, xx = np.mgrid[0:h, 0:w]
        u, v = (xx / max(w - 1, 1) - 0.5), (yy / max(h - 1, 1) - 0.5)
        a = rng.uniform(-self.sky, self.sky, size=(3, nb))[:, :, None, None] * sig[None]
        x += a[0] + a[1] * u + a[2] * v
        quality = int(rng.integers(self.jpeg_quality[0], self.jpeg_quality[1] + 1)) \
            if rng.uniform() < self.jpeg_probability else None
        return x, quality

    @property
    def changes_display(self) -> bool:
        return self.black != (0.0, 0.0) or self.contrast != (1.0, 1.0) or self.gamma > 0

    def apply_display(self, rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The rendered picture [3, H, W] in [0, 1] with a random black level, contrast and gamma (8-bit)."""
        x = (np.asarray(rgb, dtype=np.float64) - rng.uniform(*self.black)) * rng.uniform(*self.contrast)
        x = np.clip(x, 0, 1) ** np.exp(rng.uniform(-self.gamma, self.gamma))
        return (np.round(x * 255) / 255).astype(np.float32)


class RenderPreprocess:
    """A flux image rendered the way a survey viewer shows it: RGB [3, H, W] in [0, 1], as an 8-bit picture.

    A model trained on rendered simulations sees the same kind of input as one
    fed imported pictures (Galaxy Zoo, Galaxy10 or viewer JPEG cutouts, stored
    as value / 255 in R, G, B order), so it can be applied to them as they are.
    See :func:`labelsky.data.display.render` for the renderers.

    Parameters
    ----------
    bands
        Band names of the dataset's images.
    renderer
        A renderer name of :data:`labelsky.data.display.RENDERERS`.
    pixel_scale
        Arcsec per pixel: one number, or one per dataset row (cutouts scaled to each galaxy's size).
    noise
        Pixel noise sigma per band (nanomaggies) at ``pixel_scale``, for the randomised extra noise and sky;
        or a :class:`~labelsky.data.surveys.Survey`, whose noise at each row's own pixel scale is used (binned
        pixels of scaled cutouts are noisier).
    jpeg_quality
        JPEG-compress every picture at this quality (the viewers serve JPEG), or None.
    randomise
        A :class:`NuisanceRandomisation` (training only), or None.
    black_point
        A black level subtracted from every rendered picture, in training and prediction alike (see
        :func:`labelsky.data.display.render`); the randomised black level, if any, comes on top of it.
    size
        Output side in pixels, or None.
    seed, salt
        Seed of the randomisation, and a number that tells apart the datasets of one run (e.g. source and
        target), so that they never draw the same nuisances. An item prepared under a :func:`draw_key` (the
        training loaders) draws from ``(seed, salt, key)``: its nuisances depend on the run's seed, the epoch
        and its place in the epoch only. Otherwise, in a loader worker the draws also follow
        :func:`torch.initial_seed` (the loader's seeded generator: new in every epoch, reproducible).
    """

    per_row = True

    def __init__(self, bands: Sequence[str], renderer: str, *, pixel_scale, noise,
                 jpeg_quality: int | None = None, randomise: NuisanceRandomisation | None = None,
                 size: int | None = None, seed: int = 0, salt: int = 0, black_point: float = 0.0):
        from labelsky.data.display import RENDERERS

        if renderer not in RENDERERS:
            raise SettingsError(f"unknown renderer (--render) {renderer!r}; expected one of {sorted(RENDERERS)}")
        missing = [b for b in RENDERERS[renderer].bands if b not in bands]
        if missing:
            raise SettingsError(f"renderer {renderer!r} (--render) needs bands {list(RENDERERS[renderer].bands)}; "
                                f"missing {missing} of the dataset's {list(bands)}")
        if size is not None and (isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1):
            raise SettingsError(f"image size (--image-size) = {size!r}; expected a side in pixels >= 1")
        self.bands, self.renderer, self.size = list(bands), renderer, size
        self.pixel_scale = np.asarray(pixel_scale, dtype=np.float64)
        self.survey = noise if hasattr(noise, "noise_sigma") else None
        self.noise = None if self.survey is not None else np.asarray(noise, dtype=np.float64)
        self.jpeg_quality, self.randomise, self.seed, self.salt = jpeg_quality, randomise, int(seed), int(salt)
        self.black_point = float(black_point)
        self._rng, self._rng_key = None, None

    def _generator(self) -> np.random.Generator:
        key = _DRAW_KEY.get()  # an item's own key (training loaders), else the loader worker's seed
        if key is None and torch.utils.data.get_worker_info() is not None:
            key = int(torch.initial_seed()) % 2 ** 63
        key = None if key is None else (key if isinstance(key, tuple) else (key,))
        if self._rng is None or key != self._rng_key:
            self._rng = np.random.default_rng([self.seed, self.salt] + ([] if key is None else list(key)))
            self._rng_key = key
        return self._rng

    def _noise(self, pixel_scale: float) -> np.ndarray:
        if self.survey is None:
            return self.noise
        return np.array([self.survey.noise_sigma(b, pixel_scale) for b in self.bands])

    def __call__(self, image: np.ndarray, row: int | None = None) -> torch.Tensor:
        from labelsky.data.display import render

        x = np.nan_to_num(np.asarray(image, dtype=np.float64))
        ps = float(self.pixel_scale if self.pixel_scale.ndim == 0 or row is None else self.pixel_scale[int(row)])
        if self.pixel_scale.ndim and row is None:
            ps = float(np.median(self.pixel_scale))
        quality = self.jpeg_quality
        if self.randomise is not None:
            x, q = self.randomise.apply(x, self._noise(ps), self._generator())
            quality = q if q is not None else quality
        if self.randomise is not None and self.randomise.changes_display:
            from labelsky.data.display import jpeg_roundtrip

            rgb = self.randomise.apply_display(render(x, self.bands, self.renderer, pixel_scale=ps,
                                                      black_point=self.black_point),
                                               self._generator())
            rgb = jpeg_roundtrip(rgb, quality) if quality is not None else rgb
        else:
            rgb = render(x, self.bands, self.renderer, pixel_scale=ps, jpeg_quality=quality,
                         black_point=self.black_point)
        t = torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32))
        if self.size is not None and t.shape[-1] != self.size:
            t = F.interpolate(t[None], size=(self.size, self.size), mode="bilinear", align_corners=False)[0]
        return t

    def batch(self, images: np.ndarray, rows=None) -> torch.Tensor:
        """Every image of a batch [N, bands, H, W] (``rows``: their dataset rows, for per-row pixel scales)."""
        images = np.asarray(images)
        if not len(images):
            side = images.shape[2:] if self.size is None else (self.size, self.size)
            return torch.zeros((0, 3, *side))
        rows = [None] * len(images) if rows is None else list(rows)
        return torch.stack([self(im, r) for im, r in zip(images, rows)])

    def describe(self) -> dict:
        # the black point only where set: a catalog job of an earlier version keeps its fingerprint and resumes
        extra = {"black_point": self.black_point} if self.black_point else {}
        return {"render": self.renderer, "bands": self.bands, "size": self.size, "jpeg_quality": self.jpeg_quality,
                **extra,
                "randomise": None if self.randomise is None else dataclasses.asdict(self.randomise)}
