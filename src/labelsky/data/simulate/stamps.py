"""Galaxy cutouts observed by several surveys: the embedded default data set.

:func:`simulate_galaxies` draws ``n_objects`` galaxies on the sky and images
each with every survey that observes it (all of them, or one only, by the
``overlap`` fraction): same ``id_str``, position and truth, each survey's
own PSF, pixel scale, bands, depth and noise. The output folder holds one
labelsky dataset per survey plus ``simulation.json``::

    OUT/simulation.json
    OUT/sdss/   (labelsky dataset)
    OUT/des/    (labelsky dataset)

Realism switches (all on by default, each can be turned off): ``stars`` and
``field_galaxies`` (neighbours at the survey's surface densities, some
blended with the target), ``sky_residuals`` (imperfect sky subtraction),
``source_noise`` (Poisson noise of the sources), ``saturation`` (clipping and
charge bleeding of bright stars), ``noise`` (all noise; off gives noise-free
stamps for checks).

Domain randomisation (``randomise=``, off by default): every object draws its
own PSF width, depth, sky-residual amplitude, neighbour densities, per-band
calibration gain and saturation level, recorded in ``rand_*`` catalog columns;
see :mod:`labelsky.data.simulate.randomise`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from labelsky.data import photometry
from labelsky.data.io import DatasetError, DatasetWriter, open_dataset
from labelsky.data.simulate import galaxies as gal
from labelsky.data.simulate import scene
from labelsky.data.simulate.randomise import Randomisation, level_columns, observation_levels, scene_levels
from labelsky.data.simulate.render import add_noise, band_flux, draw_band, gsparams, saturate
from labelsky.data.simulate.runner import (
    SimulationError,
    SkySettings,
    check_splits,
    check_surveys,
    checked,
    default_workers,
    finish_output,
    read_simulation_meta,
    reference_band,
    run_shards,
    start_run,
)
from labelsky.data.simulate.votes import feature_visibility, sample_tree_votes, sample_votes
from labelsky.data.surveys import Survey, get_survey
from labelsky.data.vote_trees import DECALS_DR5
from labelsky.utils import object_seed

__all__ = ["GalaxySimConfig", "simulate_galaxies", "DEFAULT_PROPORTIONS", "render_object"]

DEFAULT_PROPORTIONS = {
    "elliptical": 0.2, "smooth_disk": 0.12, "spiral": 0.2, "barred_spiral": 0.1, "edge_on": 0.1,
    "merger": 0.1, "lens": 0.08, "artifact": 0.1,
}


@dataclass
class GalaxySimConfig(SkySettings):
    """Settings of a galaxy-cutout simulation (see module docstring; shared fields in :class:`SkySettings`)."""

    surveys: list = field(default_factory=lambda: ["sdss", "des"])
    n_objects: int = 1000
    classes: dict = field(default_factory=lambda: dict(DEFAULT_PROPORTIONS))
    stamp_size: int | None = None  # None: each survey's cutout_size
    cutout: str = "fixed"  # "fixed": native pixels; "scaled": field of view ``scaled_fov`` half-light radii
    scaled_fov: float = 17.0  # the side of a "scaled" stamp in half-light radii
    overlap: float = 1.0  # fraction of objects observed by every survey; the rest by one survey each
    mag_range: tuple = (15.0, 19.0)
    #: faint r-magnitude limit of each survey's sample, e.g. ``{"sdss": 17.0, "decals": 17.77}``: a galaxy
    #: is drawn fainter than ``mag_range[0]`` and brighter than the limit of every survey that observes it
    #: (``mag_range[1]`` for a survey not named)
    mag_limits: dict | None = None
    #: stamps span this many of the survey's own pixels (e.g. 256, as papers crop), drawn at ``stamp_size``
    #: pixels: the field of view of the paper's cutouts at a resolution a CPU can train on
    field_of_view: int | None = None
    #: the paper's sample these settings follow (:mod:`labelsky.data.simulate.samples`), recorded only
    sample: str | None = None
    shard_size: int | None = None  # None: min(256, max(16, n_objects / 8)), so small runs use every core
    saturation: bool = True
    #: surface densities of neighbouring stars and field galaxies, in units of the survey's
    star_density: float = 1.0
    galaxy_density: float = 1.0
    #: the surveys observed deeper (mag, > 0) and with a PSF this many times as wide as their specifications
    depth_shift: float = 0.0
    psf_scale: float = 1.0
    id_prefix: str = "sim"
    #: Domain randomisation: None (off), True (default ranges), a :class:`Randomisation` or a dict of its fields.
    randomise: Randomisation | None = field(default=None, kw_only=True)

    def __post_init__(self):
        self.randomise = Randomisation.from_value(self.randomise)

    def validate(self) -> None:
        if int(self.n_objects) <= 0:
            raise SimulationError(f"n_objects must be a positive count, got {self.n_objects}")
        if self.shard_size is not None and int(self.shard_size) <= 0:
            raise SimulationError(f"shard_size must be positive, got {self.shard_size}")
        check_surveys(self.surveys)
        if not self.classes:
            raise SimulationError("at least one class is needed")
        for c, p in self.classes.items():
            if c not in gal.CLASSES:
                raise SimulationError(f"unknown class {c!r}; classes are {list(gal.CLASSES)}")
            if not (isinstance(p, (int, float)) and p >= 0):
                raise SimulationError(f"class proportion for {c!r} must be >= 0, got {p!r}")
        if sum(self.classes.values()) <= 0:
            raise SimulationError("class proportions sum to zero")
        if not 0.0 <= self.overlap <= 1.0:
            raise SimulationError(f"overlap must be in [0, 1], got {self.overlap}")
        if self.cutout not in ("fixed", "scaled"):
            raise SimulationError(f"cutout must be 'fixed' or 'scaled', got {self.cutout!r}")
        if self.stamp_size is not None and int(self.stamp_size) < 8:
            raise SimulationError(f"stamp_size must be >= 8 pixels, got {self.stamp_size}")
        lo, hi = self.mag_range
        if not lo < hi:
            raise SimulationError(f"mag_range must be (bright, faint) with bright < faint, got {self.mag_range}")
        for name, limit in (self.mag_limits or {}).items():
            if name not in self.surveys:
                raise SimulationError(f"mag_limits names survey {name!r}, which is not simulated "
                                      f"(surveys {list(self.surveys)})")
            if not (isinstance(limit, (int, float)) and lo < limit):
                raise SimulationError(f"mag_limits[{name!r}] = {limit!r}: expected a magnitude fainter than "
                                      f"mag_range's bright end {lo}")
        if not (isinstance(self.depth_shift, (int, float)) and abs(self.depth_shift) <= 10):
            raise SimulationError(f"depth_shift must be a magnitude shift within +-10, got {self.depth_shift!r}")
        if not (isinstance(self.psf_scale, (int, float)) and 0.1 <= self.psf_scale <= 10):
            raise SimulationError(f"psf_scale must be a factor in 0.1-10, got {self.psf_scale!r}")
        for name in ("scaled_fov", "star_density", "galaxy_density"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= (0 if name != "scaled_fov" else 2)):
                raise SimulationError(f"{name} must be a number >= {0 if name != 'scaled_fov' else 2}, got {v!r}")
        if self.scaled_fov != 17.0 and self.cutout != "scaled":
            raise SimulationError(f"scaled_fov (--scaled-fov) = {self.scaled_fov!r} frames scaled cutouts; it needs "
                                  f"cutout='scaled' (--cutout scaled)")
        if self.field_of_view is not None:
            if not (isinstance(self.field_of_view, int) and self.field_of_view >= 8):
                raise SimulationError(f"field_of_view must be a whole number of survey pixels >= 8, got "
                                      f"{self.field_of_view!r}")
            if self.cutout != "fixed":
                raise SimulationError("field_of_view frames every stamp alike; it needs cutout='fixed'")
        check_splits(self.splits)

    def to_dict(self) -> dict:
        d = self._as_dict()
        d["mag_range"] = list(self.mag_range)
        for key, off in (("mag_limits", None), ("field_of_view", None), ("sample", None), ("scaled_fov", 17.0),
                         ("star_density", 1.0), ("galaxy_density", 1.0), ("depth_shift", 0.0),
                         ("psf_scale", 1.0)):  # off: recorded as without the option
            if d[key] == off:
                d.pop(key)
        if self.randomise is None:  # off: the settings recorded are those of a simulation without the option
            d.pop("randomise")
        else:
            d["randomise"] = self.randomise.to_dict()
        return d


def _class_assignment(cfg: GalaxySimConfig) -> np.ndarray:
    """Class of every object: exact proportions, shuffled with the run seed."""
    names = list(cfg.classes)
    p = np.array([cfg.classes[n] for n in names], dtype=float)
    p /= p.sum()
    counts = np.floor(p * cfg.n_objects).astype(int)
    for k in np.argsort(-(p * cfg.n_objects - counts))[: cfg.n_objects - counts.sum()]:
        counts[k] += 1
    labels = np.repeat(np.arange(len(names)), counts)
    np.random.default_rng([cfg.seed, 7919]).shuffle(labels)
    return labels


def _stamp_geometry(cfg: GalaxySimConfig, survey: Survey, hlr: float) -> tuple[int, float]:
    n = int(cfg.stamp_size or survey.cutout_size)
    scale = survey.pixel_scale
    if cfg.field_of_view:
        scale = survey.pixel_scale * cfg.field_of_view / n
    if cfg.cutout == "scaled" and np.isfinite(hlr):
        scale = max(scale, cfg.scaled_fov * hlr / n)
    return n, scale


def _mag_range(cfg: GalaxySimConfig, seen: list) -> tuple:
    """(bright, faint) r magnitudes of a galaxy observed by the surveys ``seen``: the faintest is the
    strictest limit among them (``mag_limits``; ``mag_range[1]`` for a survey without one)."""
    lo, hi = cfg.mag_range
    return float(lo), float(min((cfg.mag_limits or {}).get(s, hi) for s in seen))


def observed_survey(survey: Survey, cfg: GalaxySimConfig) -> Survey:
    """``survey`` with the simulation's depth shift and PSF scale (itself when there are none)."""
    if cfg.depth_shift == 0 and cfg.psf_scale == 1:
        return survey
    return dataclasses.replace(survey, depth=tuple(d + cfg.depth_shift for d in survey.depth),
                               psf_fwhm=tuple(f * cfg.psf_scale for f in survey.psf_fwhm),
                               description=f"{survey.description} (simulated {cfg.depth_shift:+.2f} mag deeper, "
                                           f"PSF x{cfg.psf_scale:.2f})".strip())


_STATE: dict = {}


def _setup(config: dict):
    """Per-process cache of surveys and the class assignment (config is a plain dict)."""
    key = json.dumps(config, sort_keys=True, default=str)
    if _STATE.get("key") != key:
        cfg = GalaxySimConfig(**{k: v for k, v in config.items()})
        surveys = [observed_survey(get_survey(s), cfg) for s in cfg.surveys]
        _STATE.update(key=key, cfg=cfg, surveys=surveys, labels=_class_assignment(cfg),
                      names=list(cfg.classes))
    return _STATE["cfg"], _STATE["surveys"], _STATE["labels"], _STATE["names"]


def _observed(survey: Survey, levels: dict | None) -> tuple[Survey, Survey, float]:
    """(survey with this observation's depth, the same with its PSF too, PSF factor); ``survey`` itself when off.

    The pixel noise follows the shifted depth at the nominal PSF: it does not
    change with the PSF factor (the sky is as bright whatever the seeing).
    """
    if not levels:
        return survey, survey, 1.0
    deeper = dataclasses.replace(survey, depth=tuple(d + levels["depth"] for d in survey.depth))
    seen_as = dataclasses.replace(deeper, psf_fwhm=tuple(f * levels["psf"] for f in survey.psf_fwhm))
    return deeper, seen_as, float(levels["psf"])


def render_object(i: int, config: dict) -> dict:
    """Producer for :func:`~labelsky.data.simulate.runner.run_shards`: object ``i`` in every survey that sees it."""
    cfg, surveys, labels, names = _setup(config)
    label = int(labels[i])
    cls = names[label]

    # sky position, footprint and split
    pos = object_seed(cfg.seed, i, "sky")
    dec = float(np.clip(cfg.dec_center + pos.uniform(-0.5, 0.5) * cfg.field_size_deg, -89.9, 89.9))
    ra = float((cfg.ra_center + pos.uniform(-0.5, 0.5) * cfg.field_size_deg / max(math.cos(math.radians(dec)), 0.05))
               % 360.0)
    foot = object_seed(cfg.seed, i, "footprint")
    if len(surveys) == 1 or foot.random() < cfg.overlap:
        seen = list(range(len(surveys)))
    else:
        seen = [int(foot.integers(len(surveys)))]
    rng = object_seed(cfg.seed, i, "truth")
    truth = gal.sample_truth(cls, rng, _mag_range(cfg, [surveys[k].name for k in seen]))
    finest = min(s.pixel_scale for s in surveys)
    components = gal.build_components(truth, pixel=finest)
    split_names = list(cfg.splits)
    sp = np.array([cfg.splits[k] for k in split_names], float)
    split = split_names[int(object_seed(cfg.seed, i, "split").choice(len(sp), p=sp / sp.sum()))]

    # nuisance levels (domain randomisation): the sky's once, each survey's observation on its own
    rand = cfg.randomise
    sky_levels = scene_levels(rand, cfg.seed, i) if rand else {"stars": 1.0, "field_galaxies": 1.0}
    sky_levels = {"stars": sky_levels["stars"] * cfg.star_density,
                  "field_galaxies": sky_levels["field_galaxies"] * cfg.galaxy_density}
    obs_levels = {k: observation_levels(rand, cfg.seed, i, surveys[k]) for k in seen} if rand else {}
    observed = {k: _observed(surveys[k], obs_levels.get(k)) for k in seen}

    # neighbours: one field shared by every survey (same sky)
    geoms = {k: _stamp_geometry(cfg, surveys[k], truth["true_hlr"]) for k in seen}
    half = max(n * s for n, s in geoms.values()) / 2.0
    mag_limit = max(s.depth[reference_band(s)] for s in surveys) + 0.5
    if rand:  # a survey observed deeper than its nominal depth sees fainter neighbours
        mag_limit = max(mag_limit, max(observed[k][0].depth[reference_band(surveys[k])] for k in seen) + 0.5)
    field_ = scene.sample_field(object_seed(cfg.seed, i, "scene"), half + 4.0, mag_limit, stars=cfg.stars,
                                galaxies=cfg.field_galaxies, galactic_latitude=cfg.galactic_latitude,
                                exclude_radius=0.5, star_scale=sky_levels["stars"],
                                galaxy_scale=sky_levels["field_galaxies"])
    hlr_t = truth["true_hlr"] if np.isfinite(truth["true_hlr"]) else 1.0
    blended = any(field_.mag[k] < truth["true_mag_r"] + 2.0
                  and math.hypot(field_.x[k], field_.y[k]) < 1.5 * (hlr_t + max(field_.hlr[k], 1.0))
                  for k in range(len(field_.x)))

    out = {}
    for k in seen:
        # survey: depth and noise of this observation; seen_as: also its PSF (for the votes)
        survey, seen_as, psf_scale = observed[k]
        levels = obs_levels.get(k)
        n, scale = geoms[k]
        rb = reference_band(survey)
        visible = field_.within(n * scale / 2.0, margin=3.0)
        keep = [j for j in range(len(visible.x)) if visible.mag[j] < survey.depth[rb] + 0.5]
        # only the neighbours drawn in this survey's stamp (bright enough for its depth) are counted below
        visible = scene.FieldSample(*[[getattr(visible, f)[j] for j in keep]
                                      for f in ("components", "kind", "x", "y", "mag", "hlr")])
        neighbours = visible.components
        noise_rng = object_seed(cfg.seed, i, "noise", survey.name)
        bands = []
        saturated = False
        for b in range(survey.n_bands):
            psf = seen_as.psf(b).withGSParams(gsparams()) if levels else None
            img = draw_band(components + neighbours, survey, b, n, pixel_scale=scale, psf=psf)
            if cfg.noise:
                img = add_noise(img[None], survey, noise_rng, pixel_scale=scale, source_noise=cfg.source_noise,
                                bands=[b])[0]
                if cfg.sky_residuals:
                    if levels:
                        img = img + scene.sky_residual(img.shape, survey.noise_sigma(b, scale), noise_rng,
                                                       amplitude=0.3 * levels["sky_residuals"])
                    else:
                        img = img + scene.sky_residual(img.shape, survey.noise_sigma(b, scale), noise_rng)
            if cfg.saturation:
                level = survey.saturation_level(b) * (scale / survey.pixel_scale) ** 2  # binned pixels hold more
                if levels:
                    level *= levels["saturation"]
                if (img > level).any():
                    saturated = True
                    img = saturate(img, level)
            if levels:  # calibration error of the band: signal and noise alike
                img = img * np.float32(levels["gain"][b])
            bands.append(img)
        image = np.stack(bands).astype(np.float32)
        vis = feature_visibility(truth["true_mag_r"], truth["true_hlr"], seen_as)
        votes = sample_votes(cls, vis, object_seed(cfg.seed, i, "votes", survey.name))
        tree_votes = sample_tree_votes(cls, truth, vis, votes, object_seed(cfg.seed, i, "votes-tree", survey.name))
        flux_r = band_flux(components, survey.filters[rb])
        n_eff = survey.n_eff(rb, scale) * psf_scale ** 2 if levels else survey.n_eff(rb, scale)
        snr = flux_r / (survey.noise_sigma(rb, scale) * math.sqrt(n_eff + (hlr_t / scale) ** 2 * 4))
        row = {
            "id_str": f"{cfg.id_prefix}-{i:08d}", "ra": ra, "dec": dec, "survey": survey.name, "split": split,
            "label": label, "label_name": cls, "votes_smooth": int(votes[0]), "votes_featured": int(votes[1]),
            "votes_artifact": int(votes[2]), "richness": float("nan"), "pixel_scale": float(scale),
            "feature_visibility": vis, "snr_r": float(snr), "blended": bool(blended), "saturated": saturated,
            "n_neighbour_stars": int(visible.count("star", n * scale / 2.0)),
            "n_neighbour_galaxies": int(visible.count("galaxy", n * scale / 2.0)),
            "in_surveys": ",".join(surveys[j].name for j in seen),
        }
        row.update({k2: (float(v) if isinstance(v, (float, np.floating)) else v) for k2, v in truth.items()})
        row.update({c: int(v) for c, v in zip(DECALS_DR5.columns(), tree_votes)})
        if levels:
            row.update(level_columns(sky_levels, levels, survey))
        out[survey.name] = (image, row)
    return out


def simulate_galaxies(out: str | Path, config: GalaxySimConfig | None = None, workers: int | None = None,
                      overwrite: bool = False, progress: bool = True, reuse: bool = False, **kwargs) -> dict:
    """Simulate galaxy cutouts; returns ``{survey_name: LabelskyDataset}``.

    ``kwargs`` override fields of ``config`` (e.g. ``n_objects=500``). With
    ``reuse``, a finished simulation with the same settings at ``out`` is
    returned as it is instead of raising.
    """
    cfg = checked(dataclasses.replace(config or GalaxySimConfig(), **kwargs))
    if cfg.shard_size is None:  # depends on the size of the run only, never on the workers
        cfg = dataclasses.replace(cfg, shard_size=min(256, max(16, -(-cfg.n_objects // 8))))
    out = Path(out)
    started = start_run(out, cfg, overwrite, reuse)
    if started is None:
        return open_simulation(out)
    config_dict, surveys = started
    surveys = [observed_survey(s, cfg) for s in surveys]
    n_shards = (cfg.n_objects + cfg.shard_size - 1) // cfg.shard_size
    classes = list(cfg.classes)
    writers = {}
    for s in surveys:
        n = int(cfg.stamp_size or s.cutout_size)
        writers[s.name] = DatasetWriter(out / s.name, s, (s.n_bands, n, n), classes=classes, n_shards=n_shards,
                                        config=config_dict, producer="labelsky.simulate_galaxies",
                                        extra_meta={"seed": cfg.seed, "kind": "galaxies"})
    photometry.warm_tables([f for s in surveys for f in s.filters])  # once, inherited by forked workers
    run_shards(out, render_object, config_dict, cfg.n_objects, cfg.shard_size, writers,
               workers=workers or default_workers(), progress=progress)
    result = {name: w.finalize() for name, w in writers.items()}
    finish_output(out, config_dict, {name: out / name for name in result})
    return result


def open_simulation(out: str | Path) -> dict:
    """The per-survey datasets of a finished simulation folder."""
    out = Path(out)
    meta = read_simulation_meta(out)
    datasets = meta.get("datasets")
    if not meta.get("complete") or not datasets:
        raise DatasetError(f"{out}: the simulation is unfinished (an interrupted job?); rerun the command that "
                           f"made it to resume")
    if not isinstance(datasets, dict) or not all(isinstance(p, str) for p in datasets.values()):
        raise DatasetError(f"{out / 'simulation.json'}: field 'datasets' = {datasets!r}; expected "
                           f"{{survey: dataset folder}}")
    return {name: open_dataset(out / p) for name, p in datasets.items()}  # relative to out
