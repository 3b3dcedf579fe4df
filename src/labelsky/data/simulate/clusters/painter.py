"""Drawing a field's sources into a band image: individually by GalSim for the bright ones, from a bank of
stamps for the faint (:class:`BandPainter`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from labelsky.data.simulate import scene
from labelsky.data.simulate.clusters.population import band_fluxes
from labelsky.data.simulate.render import Component, gsparams
from labelsky.data.surveys import Survey


# ---------------------------------------------------------------------- rendering
@dataclass
class Source:
    """A source to draw: a Component, its position (arcsec) and drawing class.

    ``kind`` is ``"point"``, ``"dev"`` or ``"exp"``; ``hlr`` in arcsec (0 for
    points). ``profile_offset`` is the shift already applied to the
    component's profile (:mod:`scene` places its profiles), undone when the
    source is drawn at ``(x, y)``.
    """

    component: Component
    x: float
    y: float
    hlr: float
    kind: str
    profile_offset: tuple = (0.0, 0.0)

    def centred_profile(self):
        ox, oy = self.profile_offset
        p = self.component.profile
        return p.shift(-ox, -oy) if (ox or oy) else p


def sources_from_field(fs: scene.FieldSample) -> list:
    """Sources of a :func:`scene.sample_field` draw (its profiles are shifted to the object positions)."""
    out = []
    for c, kind, x, y, h in zip(fs.components, fs.kind, fs.x, fs.y, fs.hlr):
        typ = "point" if c.point else ("dev" if c.sed == "E" else "exp")
        out.append(Source(c, float(x), float(y), float(h) if kind == "galaxy" else 0.0, typ, (float(x), float(y))))
    return out


class SourceSet:
    """Sources as arrays (positions, sizes, kinds) with per-filter fluxes cached."""

    def __init__(self, sources):
        self.sources = list(sources)
        self.x = np.array([s.x for s in self.sources], float)
        self.y = np.array([s.y for s in self.sources], float)
        self.hlr = np.array([s.hlr for s in self.sources], float)
        self.kind = np.array([s.kind for s in self.sources], dtype="<U5")
        self._flux: dict = {}

    def __len__(self) -> int:
        return len(self.sources)

    def fluxes(self, filt: str) -> np.ndarray:
        if filt not in self._flux:
            self._flux[filt] = band_fluxes([s.component for s in self.sources], filt)
        return self._flux[filt]


_HLR_BIN0, _HLR_BIN_STEP = 0.1, 1.25  # kernel-bank sizes: 0.1" x 1.25^k (linear interpolation in log size)
_BANK_FLUX_SIGMA = 100.0  # objects brighter than this many pixel sigmas are drawn individually by GalSim
_WING_SIGMA = 0.02  # stamps reach out to where the PSF wing falls below this fraction of the pixel noise


class BandPainter:
    """Draws sources into one band of an ``npix x npix`` image at ``scale`` arcsec per pixel.

    Two paths (see the module docstring): compact sources fainter than
    ``_BANK_FLUX_SIGMA`` pixel sigmas are added from kernel banks (unit-flux
    profile convolved with the PSF and integrated over the pixels, at
    ``k_bank`` sub-pixel offsets per axis and sizes on a log grid, both
    interpolated linearly; round profiles: below a third of the pixel/PSF the
    axis ratio is invisible); all others are drawn by GalSim on a fine grid
    of ``k_fine`` sub-pixels per pixel and binned. Kernel banks are kept for
    the painter's lifetime (every view of a cluster reuses them).
    """

    def __init__(self, survey: Survey, band: int, npix: int, scale: float):
        import galsim

        self.survey, self.band, self.npix, self.scale = survey, band, int(npix), float(scale)
        self.filt = survey.filters[band]
        self.psf = survey.psf(band).withGSParams(gsparams())
        self.psf_tight = self.psf.withGSParams(folding_threshold=1e-6, maxk_threshold=1e-6)
        self.sigma = survey.noise_sigma(band, scale)
        fine_target = min(survey.pixel_scale, survey.psf_fwhm[band] / 3.0)
        self.k_fine = max(1, int(math.ceil(scale / fine_target - 1e-6)))
        # sub-pixel offsets of the kernel bank: steps of at most FWHM / 4 (bilinear interpolation between them)
        self.k_bank = int(min(max(self.k_fine, math.ceil(4.0 * scale / min(survey.psf_fwhm)), 8), 64))
        self.h_compact = 0.3 * max(survey.psf_fwhm[band], scale)
        r = np.geomspace(0.02, 400.0 * survey.psf_fwhm[band], 600)
        prof = np.array([self.psf.xValue(galsim.PositionD(float(v), 0.0)) for v in r])
        self._r_grid = r
        self._wing = np.maximum.accumulate(prof[::-1])[::-1] * scale**2  # pixel value of a unit flux at >= r
        self._banks: dict = {}

    # geometry --------------------------------------------------------------
    def psf_radius(self, flux: float) -> float:
        """Radius (arcsec) beyond which the PSF wing of ``flux`` is below ``_WING_SIGMA`` of the noise."""
        ok = flux * self._wing < _WING_SIGMA * self.sigma
        idx = int(np.argmax(ok)) if ok.any() else len(self._r_grid) - 1
        return float(self._r_grid[idx])

    @staticmethod
    def _extent(kind: str, hlr: float) -> float:
        return {"point": 0.0, "dev": 8.0 * hlr, "exp": 6.0 * hlr}[kind]

    def _add(self, image: np.ndarray, stamp: np.ndarray, cx: int, cy: int) -> None:
        """Add a (2R+1)^2 stamp centred on pixel (cx, cy) (0-based column, row), clipped to the image."""
        r = stamp.shape[0] // 2
        x0, x1 = max(cx - r, 0), min(cx + r + 1, self.npix)
        y0, y1 = max(cy - r, 0), min(cy + r + 1, self.npix)
        if x0 >= x1 or y0 >= y1:
            return
        image[y0:y1, x0:x1] += stamp[y0 - (cy - r):y1 - (cy - r), x0 - (cx - r):x1 - (cx - r)]

    # kernel banks ------------------------------------------------------------
    def _bank(self, kind: str, hbin: int) -> np.ndarray:
        """[k_bank + 1, k_bank + 1, n, n] kernels of a unit-flux source, by sub-pixel offset (y, x)."""
        key = (kind, hbin)
        if key not in self._banks:
            import galsim

            kb, s = self.k_bank, self.scale
            hlr = 0.0 if kind == "point" else _HLR_BIN0 * _HLR_BIN_STEP ** hbin
            r_ext = max(self.psf_radius(_BANK_FLUX_SIGMA * self.sigma), self._extent(kind, hlr))
            rr = int(math.ceil(r_ext / s)) + 1
            m = 2 * (rr + 1) * kb + 2
            if kind == "point":
                prof = self.psf
            else:
                if kind == "dev":
                    gal = galsim.DeVaucouleurs(half_light_radius=hlr, trunc=8.0 * hlr, gsparams=gsparams())
                else:
                    gal = galsim.Exponential(half_light_radius=hlr, gsparams=gsparams())
                prof = galsim.Convolve(gal, self.psf, gsparams=gsparams())
            fine = prof.drawImage(nx=m, ny=m, scale=s / kb).array  # centred on the corner c = m / 2
            n = 2 * rr + 1
            # Kernel q = 0..kb puts the object q / kb - 0.5 pixels from the central pixel's centre: blocks of
            # kb fine pixels starting at fine edge a = c - rr kb - q. All (kb + 1)^2 offsets at once from the
            # summed-area table of the fine image.
            sat = np.zeros((m + 1, m + 1))
            sat[1:, 1:] = fine.cumsum(0).cumsum(1)
            edges = (kb + 1 - np.arange(kb + 1))[:, None] + kb * np.arange(n + 1)[None, :]  # [q, j]
            box = sat[edges[:, None, :, None], edges[None, :, None, :]]  # [qy, qx, j, i]
            self._banks[key] = np.diff(np.diff(box, axis=2), axis=3)
        return self._banks[key]

    # drawing -----------------------------------------------------------------
    def paint(self, sources: SourceSet, index=None, dx: float = 0.0, dy: float = 0.0) -> np.ndarray:
        """Noise-free image of ``sources[index]`` (all by default), moved by ``(dx, dy)`` arcsec."""
        image = np.zeros((self.npix, self.npix))
        idx = np.arange(len(sources)) if index is None else np.asarray(index, int)
        flux = sources.fluxes(self.filt)[idx]
        good = flux > 0
        idx, flux = idx[good], flux[good]
        if not len(idx):
            return image
        s = self.scale
        u = (sources.x[idx] + dx) / s + (self.npix - 1) / 2.0  # 0-based pixel coordinates of the centres
        v = (sources.y[idx] + dy) / s + (self.npix - 1) / 2.0
        cx, cy = np.floor(u + 0.5).astype(int), np.floor(v + 0.5).astype(int)
        fx, fy = u - cx, v - cy  # in [-0.5, 0.5)
        kind, hlr = sources.kind[idx], sources.hlr[idx]
        banked = ((kind == "point") | (hlr <= self.h_compact)) & (flux <= _BANK_FLUX_SIGMA * self.sigma)
        self._paint_banked(image, kind[banked], hlr[banked], flux[banked], cx[banked], cy[banked], fx[banked],
                           fy[banked])
        for k in np.flatnonzero(~banked):
            self._draw_galsim(image, sources.sources[idx[k]], float(flux[k]), int(cx[k]), int(cy[k]),
                              float(fx[k]), float(fy[k]))
        return image

    def _paint_banked(self, image, kind, hlr, flux, cx, cy, fx, fy) -> None:
        if not len(flux):
            return
        kb, npix = self.k_bank, self.npix
        tx, ty = (fx + 0.5) * kb, (fy + 0.5) * kb  # bilinear interpolation between sub-pixel offsets
        qx, qy = np.minimum(tx.astype(int), kb - 1), np.minimum(ty.astype(int), kb - 1)
        wx, wy = tx - qx, ty - qy
        parts: dict = {}  # (kind, size bin) -> (object indices, weights)

        def add(key, ii, ww):
            old = parts.get(key)
            parts[key] = (ii, ww) if old is None else (np.concatenate([old[0], ii]), np.concatenate([old[1], ww]))

        pts = np.flatnonzero(kind == "point")
        if len(pts):
            add(("point", 0), pts, np.ones(len(pts)))
        for kd in ("dev", "exp"):
            sel = np.flatnonzero(kind == kd)
            if not len(sel):
                continue
            t = np.log(np.maximum(hlr[sel], _HLR_BIN0) / _HLR_BIN0) / math.log(_HLR_BIN_STEP)
            b0 = t.astype(int)
            w1 = t - b0
            for b in np.unique(b0):
                m = b0 == b
                add((kd, int(b)), sel[m], 1.0 - w1[m])
                add((kd, int(b) + 1), sel[m], w1[m])
        for key, (ii, ww) in parts.items():
            if not np.any(ww > 0):
                continue
            bank = self._bank(*key)
            n = bank.shape[-1]
            r = n // 2
            ok = (ww > 0) & (cx[ii] >= -r) & (cx[ii] < npix + r) & (cy[ii] >= -r) & (cy[ii] < npix + r)
            ii, ww = ii[ok], ww[ok]
            if not len(ii):
                continue
            ax, ay = wx[ii][:, None, None], wy[ii][:, None, None]
            stamps = ((1 - ay) * ((1 - ax) * bank[qy[ii], qx[ii]] + ax * bank[qy[ii], qx[ii] + 1])
                      + ay * ((1 - ax) * bank[qy[ii] + 1, qx[ii]] + ax * bank[qy[ii] + 1, qx[ii] + 1]))
            stamps *= (flux[ii] * ww)[:, None, None]
            # scatter-add into an image padded by 2r: stamp pixel (j, i) lands on padded (cy + r + j, cx + r + i)
            w = npix + 4 * r
            rows = (cy[ii] + r)[:, None, None] + np.arange(n)[None, :, None]
            cols = (cx[ii] + r)[:, None, None] + np.arange(n)[None, None, :]
            padded = np.bincount((rows * w + cols).ravel(), weights=stamps.ravel(), minlength=w * w).reshape(w, w)
            image += padded[2 * r:2 * r + npix, 2 * r:2 * r + npix]

    def _draw_galsim(self, image, src: Source, flux: float, cx: int, cy: int, fx: float, fy: float) -> None:
        import galsim

        s = self.scale
        r_ext = max(self.psf_radius(flux), self._extent(src.kind, src.hlr))
        rr = min(int(math.ceil(r_ext / s)) + 1, self.npix)
        if cx + rr < 0 or cy + rr < 0 or cx - rr >= self.npix or cy - rr >= self.npix:
            return
        n = 2 * rr + 1
        k = max(1, min(self.k_fine, 1536 // n))
        if src.kind == "point":
            bright = flux > 1e3 * self.sigma  # tight accuracy, or k-space truncation rings around bright stars
            prof = (self.psf_tight if bright else self.psf).withFlux(flux)
        else:
            prof = galsim.Convolve(src.centred_profile().withFlux(flux), self.psf, gsparams=gsparams())
        fine = galsim.ImageD(n * k, n * k, scale=s / k)
        centre = galsim.PositionD(rr * k + (k + 1) / 2.0 + fx * k, rr * k + (k + 1) / 2.0 + fy * k)
        prof.drawImage(image=fine, center=centre)
        self._add(image, fine.array.reshape(n, k, n, k).sum(axis=(1, 3)), cx, cy)


def draw_sources(sources, survey: Survey, band: int, npix: int, scale: float, dx: float = 0.0, dy: float = 0.0,
                 painter: BandPainter | None = None, index=None) -> np.ndarray:
    """Noise-free ``npix x npix`` image (nanomaggies per pixel) of ``sources`` in one band.

    ``sources`` is a list of :class:`Source` or a :class:`SourceSet`; each is
    drawn at ``(x + dx, y + dy)`` arcsec from the image centre (x along
    columns, y along rows, as GalSim) on its own stamp (see the module
    docstring). Pass a ``painter`` to reuse its kernel banks, ``index`` to
    draw only some sources of a set.
    """
    sset = sources if isinstance(sources, SourceSet) else SourceSet(sources)
    p = painter or BandPainter(survey, band, npix, scale)
    return p.paint(sset, index, dx, dy).astype(np.float32)


