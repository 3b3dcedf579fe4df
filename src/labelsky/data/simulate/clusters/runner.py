"""The cluster simulation run: its settings, one cluster's scene and views, and the sharded, resumable run
over every cluster (:func:`simulate_clusters`)."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from labelsky.data.io import DatasetWriter
from labelsky.data.simulate import scene
from labelsky.data.simulate.clusters.cosmology import _sample_powerlaw, _sample_redshift, arcsec_per_mpc
from labelsky.data.simulate.clusters.painter import BandPainter, Source, SourceSet, draw_sources, sources_from_field
from labelsky.data.simulate.clusters.population import ClusterMembers, member_components, sample_members
from labelsky.data.simulate.render import add_noise
from labelsky.data.simulate.runner import (
    SimulationError,
    SkySettings,
    check_splits,
    check_surveys,
    checked,
    default_workers,
    finish_output,
    reference_band,
    run_shards,
    start_run,
)
from labelsky.data.surveys import Survey, get_survey
from labelsky.utils import object_seed


# ---------------------------------------------------------------------- configuration
@dataclass
class ClusterSimConfig(SkySettings):
    """Settings of a galaxy-cluster simulation (see module docstring; shared fields in :class:`SkySettings`)."""

    surveys: list = field(default_factory=lambda: ["sdss"])
    n_clusters: int = 1000
    views_per_cluster: int = 1
    npix: int = 128
    field_mpc: float = 1.0  # side of the image, physical Mpc (Liang et al.: 1 Mpc)
    z_range: tuple = (0.1, 0.35)
    lambda_range: tuple = (5.0, 150.0)
    lambda_slope: float = 2.0  # dN/dlambda ∝ lambda^-slope
    max_offset: float = 0.1  # centring offsets up to this fraction of the field side (per axis)
    shard_size: int = 64
    id_prefix: str = "cl"

    def validate(self) -> None:
        if int(self.n_clusters) <= 0:
            raise SimulationError(f"n_clusters must be a positive count, got {self.n_clusters}")
        if int(self.views_per_cluster) < 1:
            raise SimulationError(f"views_per_cluster must be >= 1, got {self.views_per_cluster}")
        if int(self.shard_size) <= 0:
            raise SimulationError(f"shard_size must be positive, got {self.shard_size}")
        if int(self.npix) < 8:
            raise SimulationError(f"npix must be >= 8 pixels, got {self.npix}")
        if not (math.isfinite(self.field_mpc) and self.field_mpc > 0):
            raise SimulationError(f"field_mpc must be > 0, got {self.field_mpc}")
        check_surveys(self.surveys)
        try:
            zlo, zhi = (float(v) for v in self.z_range)
            llo, lhi = (float(v) for v in self.lambda_range)
        except (TypeError, ValueError):
            raise SimulationError(f"z_range and lambda_range must be (low, high) pairs, got {self.z_range!r} "
                                  f"and {self.lambda_range!r}") from None
        if not 0.0 < zlo <= zhi <= 3.0:
            raise SimulationError(f"z_range must be (low, high) with 0 < low <= high <= 3, got {self.z_range}")
        if not 0.0 < llo <= lhi:
            raise SimulationError(f"lambda_range must be (low, high) with 0 < low <= high, got {self.lambda_range}")
        if not math.isfinite(self.lambda_slope):
            raise SimulationError(f"lambda_slope must be finite, got {self.lambda_slope}")
        if not 0.0 <= self.max_offset <= 0.5:
            raise SimulationError(f"max_offset must be in [0, 0.5] (fraction of the field), got {self.max_offset}")
        check_splits(self.splits)

    def to_dict(self) -> dict:
        d = self._as_dict()
        d["z_range"] = list(self.z_range)
        d["lambda_range"] = list(self.lambda_range)
        return d


def pixel_scale_for(survey: Survey, z: float, npix: int, field_mpc: float = 1.0) -> float:
    """Pixel scale (arcsec) of a ``field_mpc`` field at redshift ``z``: never finer than the survey's pixels."""
    return float(max(survey.pixel_scale, field_mpc * float(arcsec_per_mpc(z)) / npix))


_STATE: dict = {}


def _setup(config: dict):
    key = json.dumps(config, sort_keys=True, default=str)
    if _STATE.get("key") != key:
        cfg = ClusterSimConfig(**dict(config))
        _STATE.clear()
        _STATE.update(key=key, cfg=cfg, surveys=[get_survey(s) for s in cfg.surveys])
    return _STATE["cfg"], _STATE["surveys"]


def cluster_truth(cfg: ClusterSimConfig, cluster: int) -> tuple[ClusterMembers, dict]:
    """Members and sky placement of cluster ``cluster`` of a run (deterministic in ``cfg.seed``)."""
    rng = object_seed(cfg.seed, cluster, "cluster")
    z = _sample_redshift(rng, *map(float, cfg.z_range))
    lam = _sample_powerlaw(rng, *map(float, cfg.lambda_range), float(cfg.lambda_slope))
    members = sample_members(lam, z, object_seed(cfg.seed, cluster, "members"))
    pos = object_seed(cfg.seed, cluster, "sky")
    dec = float(np.clip(cfg.dec_center + pos.uniform(-0.5, 0.5) * cfg.field_size_deg, -89.9, 89.9))
    ra = float((cfg.ra_center + pos.uniform(-0.5, 0.5) * cfg.field_size_deg / max(math.cos(math.radians(dec)), 0.05))
               % 360.0)
    split_names = list(cfg.splits)
    sp = np.array([cfg.splits[k] for k in split_names], float)
    split = split_names[int(object_seed(cfg.seed, cluster, "split").choice(len(sp), p=sp / sp.sum()))]
    return members, {"ra": ra, "dec": dec, "split": split}


def _cluster_scene(cfg: ClusterSimConfig, surveys, cluster: int) -> dict:
    """Everything of a cluster that every view shares (cached: views of a cluster are consecutive)."""
    cached = _STATE.get("scene")
    if cached is not None and cached["cluster"] == cluster:
        return cached
    members, place = cluster_truth(cfg, cluster)
    apm = float(arcsec_per_mpc(members.z))
    scales = {s.name: pixel_scale_for(s, members.z, cfg.npix, cfg.field_mpc) for s in surveys}
    half = max(scales.values()) * cfg.npix / 2.0
    half_sample = half * (1.0 + 2.0 * cfg.max_offset) + 5.0  # every view's image plus a margin
    hlr = np.maximum(members.hlr_kpc * 1e-3 * apm, 0.05)
    member_srcs = [Source(c, float(members.x_mpc[k] * apm), float(members.y_mpc[k] * apm), float(hlr[k]), "dev")
                   for k, c in enumerate(member_components(members, apm))]
    mag_limit = max(s.depth[reference_band(s)] for s in surveys) + 0.5
    fs = scene.sample_field(object_seed(cfg.seed, cluster, "scene"), half_sample, mag_limit, stars=cfg.stars,
                            galaxies=cfg.field_galaxies, galactic_latitude=cfg.galactic_latitude)
    sources = SourceSet(member_srcs + sources_from_field(fs))
    n_mem = len(member_srcs)
    mags = np.concatenate([members.mag_r, np.asarray(fs.mag, float)])
    kind = np.array(["member"] * n_mem + list(fs.kind), dtype="<U6")
    _STATE["scene"] = dict(cluster=cluster, members=members, place=place, apm=apm, scales=scales, sources=sources,
                           mags=mags, kind=kind, painters={})
    return _STATE["scene"]


def source_pixels(config: dict, i: int, survey: str) -> dict:
    """Pixel positions (column, row; 0-based) of the sources of row ``i`` of a cluster run as seen by ``survey``.

    ``config`` is the run's settings (``simulation.json``'s ``config``).
    Returns arrays ``x``, ``y``, ``kind`` (member / star / galaxy) and ``mag``
    (reference band) of the sources drawn inside the image (members, and
    neighbours brighter than the survey's depth + 0.5 mag); members first (the
    BCG is member 0).
    """
    cfg, surveys = _setup(config)
    views = int(cfg.views_per_cluster)
    cluster, view = divmod(int(i), views)
    sc = _cluster_scene(cfg, surveys, cluster)
    off = object_seed(cfg.seed, cluster, "offset", view).uniform(-1.0, 1.0, 2) * cfg.max_offset * cfg.field_mpc
    ox, oy = float(off[0] * sc["apm"]), float(off[1] * sc["apm"])
    scale = sc["scales"][survey]
    sv = next(x for x in surveys if x.name == survey)
    u = (sc["sources"].x + ox) / scale + (cfg.npix - 1) / 2.0
    v = (sc["sources"].y + oy) / scale + (cfg.npix - 1) / 2.0
    visible = (sc["kind"] == "member") | (np.asarray(sc["mags"]) < sv.depth[reference_band(sv)] + 0.5)  # as drawn
    inside = visible & (u >= -0.5) & (u <= cfg.npix - 0.5) & (v >= -0.5) & (v <= cfg.npix - 0.5)
    return {"x": u[inside], "y": v[inside], "kind": sc["kind"][inside], "mag": np.asarray(sc["mags"])[inside]}


def render_cluster(i: int, config: dict) -> dict:
    """Producer for :func:`~labelsky.data.simulate.runner.run_shards`: view ``i % views`` of cluster ``i // views``.

    Returns ``{survey_name: (image [bands, npix, npix] float32, row dict)}``.
    """
    cfg, surveys = _setup(config)
    views = int(cfg.views_per_cluster)
    cluster, view = divmod(int(i), views)
    sc = _cluster_scene(cfg, surveys, cluster)
    members, apm, sources, kind = sc["members"], sc["apm"], sc["sources"], sc["kind"]
    off = object_seed(cfg.seed, cluster, "offset", view).uniform(-1.0, 1.0, 2) * cfg.max_offset * cfg.field_mpc
    ox, oy = float(off[0] * apm), float(off[1] * apm)  # cluster centre relative to the image centre, arcsec
    x, y = sources.x + ox, sources.y + oy  # positions in the image frame
    cluster_id = f"{cfg.id_prefix}-{cluster:07d}"
    npix = int(cfg.npix)
    out = {}
    for survey in surveys:
        scale = sc["scales"][survey.name]
        half = npix * scale / 2.0
        margin = 3.0 + 2.0 * scale
        visible = (kind == "member") | (sc["mags"] < survey.depth[reference_band(survey)] + 0.5)
        near = visible & (np.abs(x) <= half + margin) & (np.abs(y) <= half + margin)
        inside = visible & (np.abs(x) <= half) & (np.abs(y) <= half)
        painters = sc["painters"].setdefault(survey.name, [None] * survey.n_bands)
        noise_rng = object_seed(cfg.seed, cluster, "noise", view, survey.name)
        bands = []
        for b in range(survey.n_bands):
            if painters[b] is None:
                painters[b] = BandPainter(survey, b, npix, scale)
            bands.append(draw_sources(sources, survey, b, npix, scale, dx=ox, dy=oy, painter=painters[b],
                                      index=np.flatnonzero(near)))
        image = np.stack(bands)
        if cfg.noise:  # all bands at once: add_noise takes band b's noise from the b-th plane
            image = add_noise(image, survey, noise_rng, pixel_scale=scale, source_noise=cfg.source_noise)
            if cfg.sky_residuals:
                for b in range(survey.n_bands):
                    image[b] += scene.sky_residual(image.shape[1:], survey.noise_sigma(b, scale), noise_rng)
        image = image.astype(np.float32)
        row = {
            "id_str": f"{cluster_id}-v{view}", "ra": sc["place"]["ra"], "dec": sc["place"]["dec"],
            "survey": survey.name, "split": sc["place"]["split"], "label": -1, "label_name": "",
            "votes_smooth": -1, "votes_featured": -1, "votes_artifact": -1,
            "richness": float(members.lambda_true),
            "cluster_id": cluster_id, "view": int(view),
            "true_redshift": float(members.z), "true_lambda_target": float(members.lambda_target),
            "n_members": int(members.n), "n_members_in_image": int(np.sum(inside & (kind == "member"))),
            "true_m_star_r": float(members.m_star_r), "true_bcg_mag_r": float(members.mag_r[0]),
            "true_r_lambda_mpc": float(members.r_lambda_mpc),
            "true_r_lambda_arcsec": float(members.r_lambda_mpc * apm),
            "true_r200m_mpc": float(members.r_max_mpc),
            "pixel_scale": float(scale), "field_arcsec": float(npix * scale), "field_mpc": float(npix * scale / apm),
            "true_center_dx_arcsec": ox, "true_center_dy_arcsec": oy,
            "true_center_offset_kpc": float(math.hypot(ox, oy) / apm * 1e3),
            "n_neighbour_stars": int(np.sum(inside & (kind == "star"))),
            "n_neighbour_galaxies": int(np.sum(inside & (kind == "galaxy"))),
        }
        out[survey.name] = (image, row)
    return out


def simulate_clusters(out, config: ClusterSimConfig | None = None, workers: int | None = None,
                      overwrite: bool = False, progress: bool = True, reuse: bool = False, **kwargs) -> dict:
    """Simulate galaxy-cluster fields; returns ``{survey_name: LabelskyDataset}``.

    ``kwargs`` override fields of ``config`` (e.g. ``n_clusters=500``). One
    catalog row per (cluster, view); ``richness`` holds ``lambda_true`` and
    ``cluster_id`` groups the views of a cluster (they share the split).
    With ``reuse``, a finished simulation with the same settings at ``out`` is
    returned as it is.
    """
    cfg = checked(dataclasses.replace(config or ClusterSimConfig(), **kwargs))
    out = Path(out)
    started = start_run(out, cfg, overwrite, reuse)
    if started is None:
        from labelsky.data.simulate.stamps import open_simulation

        return open_simulation(out)
    config_dict, surveys = started
    n_objects = int(cfg.n_clusters) * int(cfg.views_per_cluster)
    n_shards = (n_objects + cfg.shard_size - 1) // cfg.shard_size
    writers = {}
    for s in surveys:
        writers[s.name] = DatasetWriter(out / s.name, s, (s.n_bands, cfg.npix, cfg.npix), classes=[],
                                        n_shards=n_shards, config=config_dict, producer="labelsky.simulate_clusters",
                                        extra_meta={"seed": cfg.seed, "kind": "clusters"})
    run_shards(out, render_cluster, config_dict, n_objects, cfg.shard_size, writers,
               workers=workers or default_workers(), progress=progress, desc="simulating clusters")
    result = {name: w.finalize() for name, w in writers.items()}
    finish_output(out, config_dict, {name: out / name for name in result})
    return result
