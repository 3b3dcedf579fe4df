"""Colour composites and mosaics of survey cutouts, made the way survey viewers make them.

* ``lupton``: Lupton et al. 2004 (PASP 116, 133) asinh composite through
  :func:`astropy.visualization.make_lupton_rgb`, as SDSS SkyServer does, with
  per-band scales that balance typical galaxy colours.
* ``desi``: the Legacy Surveys viewer's scheme: each band divided by a fixed
  per-band scale, ``asinh(Q x) / Q`` stretch, clipped to [0, 1].
* ``asinh``: a single band, asinh-stretched, for grey images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from labelsky.errors import InputDataError, SettingsError

__all__ = ["rgb_bands", "to_rgb", "asinh_stretch", "mosaic", "save_mosaics"]

# blue, green, red preferences
_RGB_PREFS = (("g", "r", "i"), ("g", "r", "z"), ("u", "g", "r"), ("r", "i", "z"))
# nanomaggy scales for the desi-style stretch (Legacy Surveys viewer: g 0.0066, r 0.01, z 0.025 in nmgy per
# 0.262" pixel); other bands interpolated by wavelength
_DESI_SCALE = {"u": 0.005, "g": 0.0066, "r": 0.01, "i": 0.015, "z": 0.025, "Y": 0.03, "y": 0.03}


def rgb_bands(bands) -> tuple[int, int, int] | None:
    """Indices of the (blue, green, red) bands for a composite, or None for fewer than 3 bands."""
    bands = list(bands)
    for pref in _RGB_PREFS:
        if all(b in bands for b in pref):
            return tuple(bands.index(b) for b in pref)
    if len(bands) >= 3:
        return (0, len(bands) // 2, len(bands) - 1)
    return None


def asinh_stretch(image: np.ndarray, scale: float | None = None, q: float = 10.0) -> np.ndarray:
    """asinh stretch of a single band to [0, 1]; ``scale`` defaults to the 99.5th percentile."""
    img = np.nan_to_num(np.asarray(image, dtype=np.float64))
    if scale is None:
        scale = max(float(np.percentile(img, 99.5)), 1e-12)
    return np.clip(np.arcsinh(q * img / scale) / np.arcsinh(q), 0, 1)


def to_rgb(image: np.ndarray, bands, method: str = "lupton", pixel_scale: float = 0.262,
           noise=None) -> np.ndarray:
    """[bands, H, W] flux image to an [H, W, 3] float RGB in [0, 1].

    ``noise`` (per-band pixel sigma, nanomaggies) raises all band scales by one
    common factor where needed so that the noise stays below about the
    scale: shallow surveys are shown less noisy, colours stay balanced.
    """
    image = np.nan_to_num(np.asarray(image, dtype=np.float64))
    idx = rgb_bands(bands)
    if idx is None or method == "asinh":
        g = asinh_stretch(image[len(bands) // 2] if image.ndim == 3 else image)
        return np.repeat(g[..., None], 3, axis=2)
    b, g, r = (image[i] for i in idx)
    names = [list(bands)[i] for i in idx]
    area = (pixel_scale / 0.262) ** 2  # viewer scales are per 0.262" pixel
    scales = [_DESI_SCALE.get(n, 0.01) * area for n in names]
    if noise is not None:
        boost = max(1.2 * float(noise[i]) / sc for i, sc in zip(idx, scales))
        scales = [sc * max(boost, 1.0) for sc in scales]
    if method == "lupton":
        from astropy.visualization import make_lupton_rgb

        rgb = make_lupton_rgb(r / scales[2], g / scales[1], b / scales[0], minimum=-0.5, stretch=6.0, Q=8.0)
        return rgb.astype(np.float64) / 255.0
    if method == "desi":
        q = 20.0
        chans = [np.arcsinh(q * np.clip(x / s, 0, None) / 8.0) / q for x, s in ((r, scales[2]), (g, scales[1]),
                                                                              (b, scales[0]))]
        return np.clip(np.stack(chans, axis=-1) / 0.2, 0, 1)
    raise SettingsError(f"unknown colour method {method!r}; expected 'lupton', 'desi' or 'asinh'")


def mosaic(dataset, out: str | Path, per_class: int = 6, method: str = "lupton", classes=None,
           title: str | None = None, seed: int = 0, dpi: int = 100) -> Path:
    """A PNG grid: one row per class, ``per_class`` random examples each."""
    if isinstance(per_class, bool) or not isinstance(per_class, (int, np.integer)) or per_class < 1:
        raise SettingsError(f"per_class (--per-class) = {per_class!r}; expected a number of examples >= 1")
    if isinstance(dpi, bool) or not isinstance(dpi, (int, float, np.number)) or not 0 < dpi < 10_000:
        raise SettingsError(f"dpi (--dpi) = {dpi!r}; expected a resolution > 0 (e.g. 100)")
    if method not in ("lupton", "desi", "asinh"):
        raise SettingsError(f"colour method (--method) = {method!r}; expected 'lupton', 'desi' or 'asinh'")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = dataset.column("label")
    unknown = [c for c in (classes or []) if c not in dataset.classes]
    if unknown:
        raise SettingsError(f"{dataset.path}: class(es) {unknown} not in this dataset's classes {dataset.classes}")
    names = classes or [c for k, c in enumerate(dataset.classes) if (labels == k).any()]
    if not names:
        raise InputDataError(f"{dataset.path}: no labelled objects (label >= 0) to show in a class mosaic")
    rng = np.random.default_rng(seed)
    fig, axes = plt.subplots(len(names), per_class, figsize=(1.2 * per_class, 1.25 * len(names) + 0.4),
                             squeeze=False)
    scales = dataset.column("pixel_scale") if "pixel_scale" in dataset.catalog.column_names else None
    for r, name in enumerate(names):
        k = dataset.classes.index(name)
        idx = np.flatnonzero(labels == k)
        pick = rng.choice(idx, size=min(per_class, len(idx)), replace=False) if len(idx) else []
        for c in range(per_class):
            ax = axes[r, c]
            ax.set_xticks([]), ax.set_yticks([])
            for s in ax.spines.values():
                s.set_visible(False)
            if c < len(pick):
                i = int(pick[c])
                ps = float(scales[i]) if scales is not None else dataset.survey.pixel_scale
                sig = [dataset.survey.noise_sigma(b, ps) for b in range(len(dataset.bands))]
                ax.imshow(to_rgb(dataset.image(i), dataset.bands, method, ps, noise=sig), origin="lower",
                          interpolation="nearest")
            if c == 0:
                ax.set_ylabel(name.replace("_", " "), fontsize=7)
    fig.suptitle(title or f"{dataset.survey.name} ({''.join(dataset.bands)}, {method})", fontsize=9)
    fig.tight_layout(pad=0.2)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    return out


def save_mosaics(datasets: dict, out_dir: str | Path, **kwargs) -> list[Path]:
    """One mosaic per survey dataset: ``out_dir/mosaic_<survey>.png``."""
    return [mosaic(ds, Path(out_dir) / f"mosaic_{name}.png", **kwargs) for name, ds in datasets.items()]
