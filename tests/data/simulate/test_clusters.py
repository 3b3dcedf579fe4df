"""Galaxy-cluster fields: richness labels, member physics, rendering, datasets."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from labelsky.data import photometry
from labelsky.data.simulate import clusters as C
from labelsky.data.simulate import scene
from labelsky.data.simulate.render import Component, draw_band, gsparams
from labelsky.data.simulate.runner import SimulationError
from labelsky.data.surveys import get_survey

SDSS = ("sdss2010-u", "sdss2010-g", "sdss2010-r", "sdss2010-i", "sdss2010-z")
TINY = dict(npix=48, progress=False)


def _render(**cfg):
    """View 0 of cluster 0 (fresh state) for a ClusterSimConfig built from ``cfg``."""
    C._STATE.clear()
    config = C.ClusterSimConfig(**{"n_clusters": 1, "npix": 48, **cfg}).to_dict()
    return C.render_cluster(0, config)


# --------------------------------------------------------------------- richness definition
def test_richness_hand_case():
    # R_lambda(lambda) = (1 / 0.7) (lambda / 100)^0.2 Mpc: R(2) = 0.653, R(3) = 0.709, R(4) = 0.750, R(5) = 0.785
    lum = [3.0, 1.0, 0.5, 0.15, 1.0, 0.3]
    rad = [0.0, 0.3, 0.6, 0.1, 0.72, 0.9]  # the 0.15 L* member is too faint to count
    lam, r = C.richness(lum, rad)  # start from all 5 bright members: 5 -> 4 (R(5) holds 4) -> 4
    assert lam == 4.0 and r == pytest.approx((1 / 0.7) * 0.04**0.2)
    lam, _ = C.richness(lum, rad, lambda_start=1.0)  # 1 -> 2 -> 3 -> 3: the member at 0.72 Mpc is outside R(3)
    assert lam == 3.0
    assert C.richness(lum, rad, lambda_start=4.0)[0] == 4.0
    assert C.richness([0.1, 0.19], [0.0, 0.1])[0] == 0.0  # nothing above 0.2 L*
    assert C.richness([0.2], [0.0])[0] == 1.0  # the cut is inclusive
    with pytest.raises(ValueError, match="shape"):
        C.richness([1.0, 2.0], [0.1])


def test_r_lambda_values():
    assert C.r_lambda_mpc(100.0) == pytest.approx(1.0 / 0.7)
    assert C.r_lambda_mpc(20.0) == pytest.approx((1.0 / 0.7) * 0.2**0.2)


def test_sampled_members_are_self_consistent():
    for k, (lam, z) in enumerate([(5.0, 0.1), (30.0, 0.2), (140.0, 0.33)]):
        m = C.sample_members(lam, z, np.random.default_rng(k))
        again, r = C.richness(m.l_over_lstar, m.radius_mpc, lambda_start=lam)
        assert again == m.lambda_true and r == pytest.approx(m.r_lambda_mpc)
        bright = m.l_over_lstar >= C.LUM_CUT
        assert np.sum(bright & (m.radius_mpc <= C.r_lambda_mpc(m.lambda_true))) == m.lambda_true  # a fixed point
        assert m.x_mpc[0] == 0.0 and m.y_mpc[0] == 0.0  # the BCG is at the centre
        assert 2.5 <= m.l_over_lstar[0] <= 5.0 and m.l_over_lstar[1:].min() >= C.LUM_MIN
        assert m.hlr_kpc[0] > np.median(m.hlr_kpc[1:])
        assert m.radius_mpc.max() <= m.r_max_mpc + 1e-9
        assert np.all((m.q >= 0.6) & (m.q <= 1.0))


def test_lambda_true_tracks_lambda_target():
    rng = np.random.default_rng(1)
    target = np.array([C._sample_powerlaw(rng, 5.0, 150.0, 2.0) for _ in range(200)])
    z = rng.uniform(0.1, 0.35, 200)
    true = np.array([C.sample_members(t, zz, np.random.default_rng(100 + k)).lambda_true
                     for k, (t, zz) in enumerate(zip(target, z))])
    assert np.corrcoef(true, target)[0, 1] > 0.8
    assert np.corrcoef(np.log1p(true), np.log(target))[0, 1] > 0.8
    assert np.mean(true / target) == pytest.approx(1.0, abs=0.1)
    # the power law dN/dlambda ∝ lambda^-2 puts about as many clusters in [5, 10) as above 10
    assert 0.4 < np.mean(target < 10) < 0.6 and target.min() >= 5 and target.max() <= 150


# --------------------------------------------------------------------- member physics
def test_m_star_and_geometry():
    # L* red-sequence galaxy: r ~ 17.0 at z = 0.1, ~ 20.1 at z = 0.35; 0.2 L* at z = 0.35 has i ~ 21.2,
    # near the SDSS redMaPPer volume limit
    assert 16.7 < float(C.m_star_r(0.1)) < 17.4 and 19.8 < float(C.m_star_r(0.35)) < 20.4
    i_02 = float(C.m_star_r(0.35)) + float(photometry.galaxy_colour("E", 0.35, "sdss2010-i")) + 1.75
    assert 20.8 < i_02 < 21.6
    # 1 Mpc at z = 0.1 is ~ 9 arcmin (542") and ~ 3.4 arcmin at z = 0.35
    assert float(C.arcsec_per_mpc(0.1)) == pytest.approx(542.2, rel=0.01)
    sdss = get_survey("sdss")
    assert C.pixel_scale_for(sdss, 0.1, 128) == pytest.approx(542.2 / 128, rel=0.01)
    assert C.pixel_scale_for(sdss, 0.1, 4096) == sdss.pixel_scale  # never finer than the survey's pixels


def test_red_sequence_colours_and_scatter():
    m = C.sample_members(150.0, 0.25, np.random.default_rng(7))
    comps = C.member_components(m, float(C.arcsec_per_mpc(0.25)))
    flux = {f: C.band_fluxes(comps, f) for f in SDSS}
    for f in SDSS:  # vectorised fluxes equal the per-component ones
        assert np.allclose(flux[f], [c.flux(f) for c in comps], rtol=1e-12)
    assert np.allclose(flux["sdss2010-r"], 10 ** (-0.4 * (m.mag_r - 22.5)))
    gr = -2.5 * np.log10(flux["sdss2010-g"] / flux["sdss2010-r"])
    ri = -2.5 * np.log10(flux["sdss2010-r"] / flux["sdss2010-i"])
    gr_e = float(photometry.galaxy_colour("E", 0.25, "sdss2010-g"))
    assert np.median(gr) == pytest.approx(gr_e, abs=0.01)
    assert 0.04 < np.std(gr) < 0.06 and 0.04 < np.std(ri) < 0.06

    # field galaxies of similar magnitudes are bluer on average
    fs = scene.sample_field(np.random.default_rng(0), 300.0, 21.0, stars=False)
    fcomps = [c for c, mag in zip(fs.components, fs.mag) if mag > 17.0]
    fgr = -2.5 * np.log10(C.band_fluxes(fcomps, "sdss2010-g") / C.band_fluxes(fcomps, "sdss2010-r"))
    assert len(fcomps) > 50 and np.median(gr) > np.median(fgr) + 0.3


def test_member_colours_consistent_across_surveys():
    m = C.sample_members(40.0, 0.2, np.random.default_rng(2))
    comps = C.member_components(m, float(C.arcsec_per_mpc(0.2)))
    # offsets at the SDSS anchor wavelengths equal the drawn colour perturbations
    off_g = np.array([c.colour_offset("sdss2010-g") for c in comps])
    assert np.allclose(off_g, m.colour_steps[:, 1], atol=2e-3)
    lsst = np.array([c.colour_offset("lsst2023-y") for c in comps])
    assert np.all(np.isfinite(lsst))


# --------------------------------------------------------------------- rendering
def test_renderer_matches_galsim_reference():
    """Per-object stamps (kernel banks and fine-grid GalSim) against one GalSim FFT of the whole scene."""
    import galsim

    survey = get_survey("sdss")
    rng = np.random.default_rng(0)
    for scale in (4.3, 1.7):
        npix = 24
        sources, comps = [], []
        for k in range(9):
            x, y = rng.uniform(-0.4, 0.4, 2) * npix * scale
            kind = ("point", "dev", "exp")[k % 3]
            hlr = 0.0 if kind == "point" else float(rng.choice([0.3, 0.8, 3.0]))
            flux = 10 ** (-0.4 * (rng.uniform(16.0, 21.0) - 22.5))
            if kind == "point":
                prof, sed, par = galsim.DeltaFunction(), "star", 5000.0
            elif kind == "dev":
                prof = galsim.DeVaucouleurs(half_light_radius=hlr, trunc=8 * hlr, gsparams=gsparams())
                sed, par = "E", 0.2
            else:
                prof, sed, par = galsim.Exponential(half_light_radius=hlr, gsparams=gsparams()), "Sbc", 0.3
            sources.append(C.Source(Component(prof, flux, sed, par, point=kind == "point"), x, y, hlr, kind))
            comps.append(Component(prof.shift(x, y), flux, sed, par, point=kind == "point"))
        for b in (1, 2):
            ours = C.draw_sources(sources, survey, b, npix, scale)
            ref = draw_band(comps, survey, b, npix, pixel_scale=scale)
            sigma = survey.noise_sigma(b, scale)
            assert np.abs(ours - ref).max() < 0.5 * sigma
            assert ours.sum() == pytest.approx(ref.sum(), rel=1e-3)


def test_pixel_scale_field_and_noise():
    out = _render(z_range=(0.2, 0.2), lambda_range=(20, 20), stars=False, field_galaxies=False,
                  sky_residuals=False, source_noise=False)
    img, row = out["sdss"]
    assert img.shape == (5, 48, 48) and img.dtype == np.float32
    sdss = get_survey("sdss")
    apm = float(C.arcsec_per_mpc(0.2))
    assert row["pixel_scale"] == pytest.approx(apm / 48)
    assert row["field_arcsec"] == pytest.approx(apm) and row["field_mpc"] == pytest.approx(1.0)
    clean, _ = _render(z_range=(0.2, 0.2), lambda_range=(20, 20), stars=False, field_galaxies=False,
                       noise=False)["sdss"]
    noise = img - clean
    for b in range(5):  # the survey noise of pixels of this size
        assert np.std(noise[b]) == pytest.approx(sdss.noise_sigma(b, row["pixel_scale"]), rel=0.06)


def test_richer_cluster_has_more_central_flux():
    kw = dict(z_range=(0.2, 0.2), stars=False, field_galaxies=False, noise=False, max_offset=0.0)
    rich, rrow = _render(lambda_range=(150, 150), **kw)["sdss"]
    poor, prow = _render(lambda_range=(5, 5), **kw)["sdss"]
    assert rrow["richness"] > 5 * prow["richness"] and rrow["n_members_in_image"] > prow["n_members_in_image"]
    c = slice(12, 36)
    assert rich[2, c, c].sum() > 2.0 * poor[2, c, c].sum()
    assert rich[2].sum() > 3.0 * poor[2].sum()
    # the BCG sits at the image centre when there is no centring offset
    assert np.unravel_index(np.argmax(poor[2]), poor[2].shape) in {(23, 23), (23, 24), (24, 23), (24, 24)}


def test_centring_offset_moves_the_cluster():
    kw = dict(z_range=(0.3, 0.3), lambda_range=(20, 20), stars=False, field_galaxies=False, noise=False)
    img, row = _render(max_offset=0.1, **kw)["sdss"]
    centred, row0 = _render(max_offset=0.0, **kw)["sdss"]
    assert row0["true_center_dx_arcsec"] == 0.0 and row0["true_center_offset_kpc"] == 0.0
    dx, dy = row["true_center_dx_arcsec"], row["true_center_dy_arcsec"]
    scale = row["pixel_scale"]
    assert abs(dx) <= 0.1 * row["field_arcsec"] and abs(dy) <= 0.1 * row["field_arcsec"]
    assert max(abs(dx), abs(dy)) > 0
    assert row["true_center_offset_kpc"] == pytest.approx(math.hypot(dx, dy) / C.arcsec_per_mpc(0.3) * 1e3)
    # the offset image is the centred one moved by (dx, dy): best integer shift over the overlap
    a, b = img[2], centred[2]
    best = min(((np.sum((a[12 + sy:36 + sy, 12 + sx:36 + sx] - b[12:36, 12:36]) ** 2), sx, sy)
                for sx in range(-8, 9) for sy in range(-8, 9)))
    assert abs(best[1] - dx / scale) <= 1.0 and abs(best[2] - dy / scale) <= 1.0


def test_other_surveys_and_row_contents():
    out = _render(surveys=["sdss", "lsst_y10"], field_mpc=0.06, z_range=(0.3, 0.3), lambda_range=(30, 30))
    (simg, srow), (limg, lrow) = out["sdss"], out["lsst_y10"]
    assert simg.shape == (5, 48, 48) and limg.shape == (6, 48, 48)
    assert srow["richness"] == lrow["richness"] and srow["cluster_id"] == lrow["cluster_id"] == "cl-0000000"
    assert lrow["pixel_scale"] == pytest.approx(0.06 * C.arcsec_per_mpc(0.3) / 48)  # 0.26": coarser than 0.2"
    assert srow["pixel_scale"] == pytest.approx(0.396) and srow["field_arcsec"] == pytest.approx(48 * 0.396)
    assert srow["id_str"] == "cl-0000000-v0" and srow["view"] == 0
    assert srow["label"] == -1 and srow["label_name"] == "" and srow["votes_smooth"] == -1
    assert srow["true_r_lambda_arcsec"] == pytest.approx(srow["true_r_lambda_mpc"] * C.arcsec_per_mpc(0.3))
    assert srow["true_m_star_r"] == pytest.approx(float(C.m_star_r(0.3)))
    assert 1 <= srow["n_members_in_image"] <= srow["n_members"]


# --------------------------------------------------------------------- datasets
def test_simulate_views_share_cluster_and_split(tmp_path):
    res = C.simulate_clusters(tmp_path / "run", n_clusters=4, views_per_cluster=3, shard_size=5, workers=1,
                              z_range=(0.25, 0.35), lambda_range=(5, 20), **TINY)
    ds = res["sdss"]
    assert len(ds) == 12 and ds.image_shape == (5, 48, 48) and ds.classes == []
    assert ds.meta["kind"] == "clusters" and ds.meta["seed"] == 0
    ids, cids, views = ds.column("id_str"), ds.column("cluster_id"), ds.column("view")
    split, lam = ds.column("split"), ds.column("richness")
    assert list(ids[:3]) == ["cl-0000000-v0", "cl-0000000-v1", "cl-0000000-v2"]
    for cid in set(cids):
        sel = cids == cid
        assert sorted(views[sel]) == [0, 1, 2]
        assert len(set(split[sel])) == 1 and len(set(lam[sel])) == 1
        offsets = set(ds.column("true_center_dx_arcsec")[sel])
        assert len(offsets) == 3  # each view has its own centring
    assert np.all(ds.column("label") == -1) and np.all(np.isfinite(lam))
    imgs = ds.images()
    assert not np.array_equal(imgs[0], imgs[1])  # same cluster, different view and noise
    meta = json.loads((tmp_path / "run" / "simulation.json").read_text())
    assert meta["complete"] and set(meta["datasets"]) == {"sdss"}


def test_determinism_and_workers(tmp_path):
    kw = dict(n_clusters=3, views_per_cluster=2, shard_size=2, seed=11, z_range=(0.2, 0.35),
              lambda_range=(5, 40), **TINY)
    a = C.simulate_clusters(tmp_path / "a", workers=1, **kw)["sdss"]
    b = C.simulate_clusters(tmp_path / "b", workers=2, **kw)["sdss"]
    assert np.array_equal(a.images(), b.images())
    assert a.catalog.drop(["shard", "row"]).equals(b.catalog.drop(["shard", "row"]))
    one = _render(seed=11, z_range=(0.2, 0.35), lambda_range=(5, 40))["sdss"][0]
    two = _render(seed=11, z_range=(0.2, 0.35), lambda_range=(5, 40))["sdss"][0]
    assert np.array_equal(one, two)
    assert np.array_equal(one, a.image(0))
    other = _render(seed=12, z_range=(0.2, 0.35), lambda_range=(5, 40))["sdss"][0]
    assert not np.array_equal(one, other)


@pytest.mark.parametrize("kwargs, match", [
    (dict(n_clusters=0), "n_clusters"),
    (dict(views_per_cluster=0), "views_per_cluster"),
    (dict(z_range=(0.3, 0.1)), "z_range"),
    (dict(z_range=(0.0, 0.1)), "z_range"),
    (dict(lambda_range=(0, 10)), "lambda_range"),
    (dict(lambda_range=(50, 10)), "lambda_range"),
    (dict(lambda_range="big"), "lambda_range"),
    (dict(field_mpc=-1.0), "field_mpc"),
    (dict(npix=4), "npix"),
    (dict(max_offset=0.9), "max_offset"),
    (dict(surveys=["hubble_deep"]), "hubble_deep"),
    (dict(surveys=[]), "survey"),
    (dict(surveys=["sdss", "sdss"]), "distinct"),
    (dict(splits={"training": 1.0}), "splits"),
])
def test_bad_settings(tmp_path, kwargs, match):
    with pytest.raises(SimulationError, match=match):
        C.simulate_clusters(tmp_path / "bad", progress=False, **kwargs)
    assert not (tmp_path / "bad").exists()
