"""Realism and behaviour tests of the galaxy-cutout simulator (``labelsky.data.simulate``).

Realism: PSF FWHM of simulated stars, background noise, total fluxes, colours
of ellipticals versus spirals, lensing arcs, neighbour surface densities.
Behaviour: determinism for any number of workers, resuming after an
interruption, error messages, catalog contents, nuisance switches.

Runs are tiny (a few dozen objects, small stamps); the colour tables of the
filters are computed once per process (about 10 s) and shared by all tests.
"""

from __future__ import annotations

import hashlib
import json
import math
import re

import numpy as np
import pytest

from labelsky.data import photometry
from labelsky.data.io import CatalogError, DatasetError, open_dataset
from labelsky.data.simulate import (
    CLASSES,
    SimulationError,
    open_simulation,
    render_object,
    scene,
    simulate_galaxies,
    stamps,
)
from labelsky.data.simulate import galaxies as gal
from labelsky.data.simulate.render import Component, add_noise, band_flux, draw_band
from labelsky.data.simulate.stamps import DEFAULT_PROPORTIONS, GalaxySimConfig
from labelsky.data.surveys import get_survey, mag_to_nmgy
from labelsky.errors import OutputError

galsim = pytest.importorskip("galsim")

#: The standard small run shared by the catalog, determinism and resume tests.
STD_RUN = dict(surveys=["sdss", "des"], n_objects=24, shard_size=6, stamp_size=32, seed=3, progress=False)
FINEST_PIXEL = min(get_survey("sdss").pixel_scale, get_survey("des").pixel_scale)


def clean_config(classes: dict, n: int = 6, stamp: int = 64, seed: int = 0, surveys=("sdss", "des"), **kw) -> dict:
    """Config dict for :func:`render_object`: noise-free, no neighbours, no saturation."""
    return GalaxySimConfig(surveys=list(surveys), n_objects=n, classes=classes, stamp_size=stamp, seed=seed,
                           stars=False, field_galaxies=False, noise=False, saturation=False,
                           sky_residuals=False, **kw).to_dict()


def catalog_rows(ds) -> dict:
    """{id_str: row dict} of a dataset's catalog."""
    return {r["id_str"]: r for r in ds.catalog.to_pylist()}


def file_digests(root) -> dict:
    """sha256 of every image shard and catalog part under ``root`` (relative path -> digest)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.suffix in (".h5", ".parquet")}


def assert_tables_equal(a, b) -> None:
    """Same schema and values (NaN equal to NaN, which ``pa.Table.equals`` does not allow)."""
    assert a.schema.equals(b.schema)
    for name in a.column_names:
        np.testing.assert_array_equal(a.column(name).to_numpy(zero_copy_only=False),
                                      b.column(name).to_numpy(zero_copy_only=False), err_msg=name)


def meta_without_time(path) -> dict:
    meta = json.loads((path / "labelsky.json").read_text())
    meta.pop("created", None)
    return meta


@pytest.fixture(scope="module")
def std_run(tmp_path_factory):
    """The standard run (sdss + des, 24 objects in 4 shards, every nuisance on), one worker."""
    out = tmp_path_factory.mktemp("sim") / "std"
    simulate_galaxies(out, workers=1, **STD_RUN)
    return out


@pytest.fixture(scope="module")
def quiet_run(tmp_path_factory):
    """Faint ellipticals on empty sky: no stars, no field galaxies, no sky residuals (noise on)."""
    out = tmp_path_factory.mktemp("sim") / "quiet"
    simulate_galaxies(out, surveys=["sdss", "des"], n_objects=12, shard_size=12, stamp_size=48,
                      classes={"elliptical": 1.0}, mag_range=(19.0, 19.5), stars=False, field_galaxies=False,
                      sky_residuals=False, seed=11, workers=1, progress=False)
    return out


# =========================================================================== 1. PSF
def fit_moffat_fwhm(image: np.ndarray) -> float:
    """FWHM (pixels) of a circular Moffat with free amplitude, centre, FWHM and beta fitted to ``image``.

    The model is evaluated at pixel centres, so the FWHM is that of the
    pixelated star as a survey pipeline measures it (PSF convolved with the
    pixel), which is what survey seeing figures describe.
    """
    from scipy.optimize import least_squares

    n = image.shape[0]
    yy, xx = np.mgrid[0:n, 0:n] - (n - 1) / 2.0
    peak = float(image.max())

    def resid(p):
        amp, x0, y0, fwhm, beta = p
        alpha = fwhm / (2.0 * math.sqrt(2.0 ** (1.0 / beta) - 1.0))
        return (amp * (1 + ((xx - x0) ** 2 + (yy - y0) ** 2) / alpha**2) ** (-beta) - image).ravel() / peak

    fit = least_squares(resid, [peak, 0.0, 0.0, 3.0, 3.0], bounds=([0, -3, -3, 0.5, 1.1], [np.inf, 3, 3, 30, 30]))
    assert fit.success
    return float(fit.x[3])


@pytest.mark.parametrize("survey_name", ["sdss", "des", "decals", "lsst_y10"])
def test_star_psf_fwhm_matches_survey(survey_name):
    """A bright noise-free star drawn by the renderer has the survey's FWHM (within 10 %) in every band."""
    survey = get_survey(survey_name)
    s = survey.pixel_scale
    ratios = []
    for b in range(survey.n_bands):
        # off-centre by a fraction of a pixel, like a real star
        star = Component(galsim.DeltaFunction().shift(0.3 * s, -0.2 * s), 1.0e4, "star", 5800.0, point=True)
        img = draw_band([star], survey, b, 41).astype(np.float64)
        fwhm = fit_moffat_fwhm(img) * s
        ratios.append(fwhm / survey.psf_fwhm[b])
        # the whole point source lands in the stamp
        assert img.sum() == pytest.approx(star.flux(survey.filters[b]), rel=2e-3)
    ratios = np.array(ratios)
    assert np.all(np.abs(ratios - 1) < 0.10), dict(zip(survey.bands, ratios.round(3)))
    # the bands keep the survey's ordering of seeing (e.g. sdss u worst, z best)
    assert np.argmax(ratios * np.array(survey.psf_fwhm)) == np.argmax(survey.psf_fwhm)


# =========================================================================== 2. noise
@pytest.mark.parametrize("survey_name", ["sdss", "des"])
def test_add_noise_sigma_matches_depth(survey_name):
    survey = get_survey(survey_name)
    rng = np.random.default_rng(1)
    noisy = add_noise(np.zeros((survey.n_bands, 200, 200), np.float32), survey, rng)
    for b in range(survey.n_bands):
        sigma = survey.noise_sigma(b)
        assert noisy[b].std() / sigma == pytest.approx(1.0, abs=0.05), survey.bands[b]
        assert abs(noisy[b].mean()) < 0.05 * sigma
    # source Poisson noise: a flat source of 3x the sky adds variance 3 sigma^2 (gain from the sky level)
    level = np.array([3.0 * survey.sky_level(b) for b in range(survey.n_bands)], np.float32)
    flat = np.broadcast_to(level[:, None, None], (survey.n_bands, 200, 200))
    noisy = add_noise(flat, survey, rng)
    for b in range(survey.n_bands):
        assert (noisy[b] - level[b]).std() / (2.0 * survey.noise_sigma(b)) == pytest.approx(1.0, abs=0.05)
    # and none without it
    noisy = add_noise(flat, survey, rng, source_noise=False)
    assert (noisy[0] - level[0]).std() / survey.noise_sigma(0) == pytest.approx(1.0, abs=0.05)
    # one band at a time (as the stamp renderer does): the plane gets that band's noise, not band 0's
    for b in range(survey.n_bands):
        one = add_noise(np.zeros((1, 200, 200), np.float32), survey, rng, bands=[b])
        assert one.std() / survey.noise_sigma(b) == pytest.approx(1.0, abs=0.05), survey.bands[b]


def test_simulated_background_noise_matches_depth(quiet_run):
    """Robust sigma (1.4826 MAD) of the outer border of real simulated stamps, per band."""
    for name, ds in open_simulation(quiet_run).items():
        survey = ds.survey
        imgs = ds.images()
        border = np.ones(imgs.shape[-2:], bool)
        border[6:-6, 6:-6] = False
        for b in range(survey.n_bands):
            pix = imgs[:, b][:, border].ravel()
            robust = 1.4826 * np.median(np.abs(pix - np.median(pix)))
            ratio = robust / survey.noise_sigma(b)
            assert ratio == pytest.approx(1.0, abs=0.05), (name, survey.bands[b], ratio)


# =========================================================================== 3. flux
def test_elliptical_flux_matches_requested_magnitude():
    """Noise-free 128-pixel stamps of compact ellipticals hold the flux of m (and its template colours)."""
    cfg = clean_config({"elliptical": 1.0}, n=4, stamp=128, mag_range=(18.5, 19.0))
    for i in range(4):
        for name, (img, row) in render_object(i, cfg).items():
            survey = get_survey(name)
            m, z = row["true_mag_r"], row["true_redshift"]
            for b, filt in enumerate(survey.filters):
                expected = mag_to_nmgy(m) * 10 ** (-0.4 * photometry.galaxy_colour("E", z, filt))
                assert img[b].sum() / expected == pytest.approx(1.0, abs=0.02), (name, survey.bands[b])
            if name == "sdss":  # SDSS r is the reference band of the truth magnitudes: no colour term
                assert img[survey.band_index("r")].sum() / mag_to_nmgy(m) == pytest.approx(1.0, abs=0.02)


@pytest.mark.parametrize("cls", ["smooth_disk", "spiral", "barred_spiral", "edge_on", "merger", "lens"])
def test_flux_of_every_class_matches_its_components(cls):
    cfg = clean_config({cls: 1.0}, n=2, stamp=128, mag_range=(18.5, 19.0))
    for i in range(2):
        for name, (img, row) in render_object(i, cfg).items():
            survey = get_survey(name)
            # a catalog row alone rebuilds the galaxy
            comps = gal.build_components(dict(row), pixel=FINEST_PIXEL)
            ref_total = mag_to_nmgy(row["true_mag_r"])
            if cls == "lens":  # lens galaxy + lensed source of total magnitude true_src_mag
                ref_total = ref_total + mag_to_nmgy(row["true_src_mag"])
            assert band_flux(comps, photometry.REFERENCE_FILTER) == pytest.approx(ref_total, rel=1e-6)
            for b, filt in enumerate(survey.filters):
                assert img[b].sum() / band_flux(comps, filt) == pytest.approx(1.0, abs=0.02), (name, b)
                redrawn = draw_band(comps, survey, b, 128)
                np.testing.assert_allclose(redrawn, img[b], rtol=0, atol=1e-5 * float(img[b].max()))


# =========================================================================== 4. colours
def g_minus_r(img: np.ndarray, survey) -> float:
    return float(-2.5 * np.log10(img[survey.band_index("g")].sum() / img[survey.band_index("r")].sum()))


def test_ellipticals_redder_than_spirals():
    colours = {}
    for cls in ("elliptical", "spiral", "barred_spiral"):
        cfg = clean_config({cls: 1.0}, n=6, stamp=48, seed=5)
        for i in range(6):
            for name, (img, _) in render_object(i, cfg).items():
                key = (name, "E" if cls == "elliptical" else "S")
                colours.setdefault(key, []).append(g_minus_r(img, get_survey(name)))
    for name in ("sdss", "des"):
        red, blue = np.array(colours[(name, "E")]), np.array(colours[(name, "S")])
        assert red.mean() - blue.mean() > 0.25, (name, red.mean(), blue.mean())
        assert np.mean(red[:, None] > blue[None, :]) > 0.9  # nearly every pair
        # red sequence / blue cloud at z ~ 0.05-0.2 (SDSS: E g-r ~ 0.9-1.3, spirals ~ 0.4-0.8)
        assert 0.75 < red.mean() < 1.35 and 0.3 < blue.mean() < 0.85, (name, red.mean(), blue.mean())


# =========================================================================== 5. lenses
def test_lens_images_contain_arcs_at_einstein_radius():
    n = 64
    for name in ("des", "sdss"):
        survey = get_survey(name)
        g, z = survey.band_index("g"), survey.band_index("z")
        cfg = clean_config({"lens": 1.0}, n=6, stamp=n, seed=2)
        for i in range(6):
            img, row = render_object(i, cfg)[name]
            comps = gal.build_components(dict(row), pixel=FINEST_PIXEL)
            assert [c.sed for c in comps] == ["E", "Im"]  # lens galaxy, lensed source
            full = draw_band(comps, survey, g, n).astype(np.float64)
            np.testing.assert_allclose(full, img[g], rtol=0, atol=1e-5 * full.max())  # the stamp shows the arcs
            arcs = full - draw_band(comps[:1], survey, g, n)
            te = row["true_theta_e"]
            assert row["true_magnification"] > 1.5  # a strong lens
            assert arcs.min() > -1e-4 * full.max()
            assert arcs.sum() / full.sum() > 0.1  # the arcs are a visible part of the g-band light
            yy, xx = (np.mgrid[0:n, 0:n] - (n - 1) / 2.0) * survey.pixel_scale
            r, phi = np.hypot(xx, yy), np.arctan2(yy, xx)
            order = np.argsort(r.ravel())
            cum = np.cumsum(arcs.ravel()[order])
            r_med = r.ravel()[order][np.searchsorted(cum, cum[-1] / 2)]
            assert 0.8 < r_med / te < 1.5, (name, i, r_med, te)  # near the Einstein radius
            ring = (r > 0.6 * te) & (r < 1.5 * te)
            assert arcs[ring].sum() / arcs.sum() > 0.4
            sectors = np.histogram(phi[ring], bins=16, range=(-np.pi, np.pi), weights=arcs[ring])[0] / arcs.sum()
            assert (sectors > 0.02).sum() >= 4  # stretched over >= 90 degrees: arcs, not a blob
            # blue source behind a red lens: the arcs stand out more in g than in z
            full_z = draw_band(comps, survey, z, n).astype(np.float64)
            arcs_z = full_z - draw_band(comps[:1], survey, z, n)
            assert arcs.sum() / full.sum() > arcs_z.sum() / full_z.sum()


# =========================================================================== 6. neighbours
@pytest.mark.parametrize("latitude", [60.0, 25.0])
def test_field_counts_match_surface_densities(latitude):
    rng = np.random.default_rng(123)
    n_fields, half, mag_limit = 300, 20.0, 23.0
    area = (2 * half / 60.0) ** 2  # arcmin^2
    gal_n = star_n = gal_bright = gal_inner = 0
    for _ in range(n_fields):
        f = scene.sample_field(rng, half, mag_limit, galactic_latitude=latitude)
        kinds = np.array(f.kind)
        gal_n += int((kinds == "galaxy").sum())
        star_n += int((kinds == "star").sum())
        gal_bright += int(sum(1 for k, m in zip(f.kind, f.mag) if k == "galaxy" and m < 21.0))
        gal_inner += f.count("galaxy", half / 2)
        assert all(abs(x) <= half and abs(y) <= half for x, y in zip(f.x, f.y))
        assert all(16.0 <= m <= mag_limit for k, m in zip(f.kind, f.mag) if k == "galaxy")
    exp_gal = n_fields * area * (scene.galaxy_density(mag_limit) - scene.galaxy_density(16.0))
    exp_star = n_fields * area * (scene.star_density(mag_limit, latitude) - scene.star_density(12.0, latitude))
    assert abs(gal_n - exp_gal) < 4 * math.sqrt(exp_gal), (gal_n, exp_gal)
    assert abs(star_n - exp_star) < 4 * math.sqrt(exp_star), (star_n, exp_star)
    # number counts: the fraction brighter than 21 follows N(<m), positions are uniform
    p = (scene.galaxy_density(21.0) - scene.galaxy_density(16.0)) / (scene.galaxy_density(mag_limit)
                                                                      - scene.galaxy_density(16.0))
    assert abs(gal_bright - p * gal_n) < 4 * math.sqrt(gal_n * p * (1 - p))
    assert abs(gal_inner - gal_n / 4) < 4 * math.sqrt(gal_n * 0.25 * 0.75)
    # more stars towards the galactic plane
    if latitude < 60:
        assert star_n > 1.5 * n_fields * area * (scene.star_density(mag_limit) - scene.star_density(12.0))


def test_catalog_neighbour_counts_match_densities(std_run):
    """n_neighbour_* count the neighbours drawn in each survey's stamp (down to its r depth + 0.5)."""
    for name, ds in open_simulation(std_run).items():
        survey = ds.survey
        side = ds.image_shape[-1] * survey.pixel_scale / 60.0  # arcmin (fixed cutouts)
        m_lim = survey.depth[survey.band_index("r")] + 0.5
        n = len(ds)
        exp_gal = n * side**2 * (scene.galaxy_density(m_lim) - scene.galaxy_density(16.0))
        exp_star = n * side**2 * (scene.star_density(m_lim) - scene.star_density(12.0))
        got_gal = int(ds.column("n_neighbour_galaxies").sum())
        got_star = int(ds.column("n_neighbour_stars").sum())
        assert abs(got_gal - exp_gal) < 4 * math.sqrt(exp_gal) + 1, (name, got_gal, exp_gal)
        assert abs(got_star - exp_star) < 4 * math.sqrt(exp_star) + 1, (name, got_star, exp_star)


# =========================================================================== 7. determinism
def test_output_independent_of_workers(std_run, tmp_path):
    out2 = tmp_path / "w2"
    simulate_galaxies(out2, workers=2, **STD_RUN)
    one, two = open_simulation(std_run), open_simulation(out2)
    assert set(one) == set(two) == {"sdss", "des"}
    for name in one:
        assert np.array_equal(one[name].images(), two[name].images())
        assert_tables_equal(one[name].catalog, two[name].catalog)
        assert meta_without_time(std_run / name) == meta_without_time(out2 / name)
    # byte-identical shard files (HDF5 written without timestamps, Parquet without any)
    d1, d2 = file_digests(std_run), file_digests(out2)
    assert len(d1) == 2 * 2 * 4 and d1 == d2
    # simulation.json too: dataset paths are stored relative to the output folder
    assert (std_run / "simulation.json").read_bytes() == (out2 / "simulation.json").read_bytes()
    assert json.loads((out2 / "simulation.json").read_text())["complete"] is True


# =========================================================================== 8. resume
def test_resume_after_interruption(std_run, tmp_path, monkeypatch):
    out = tmp_path / "resume"

    def crashing(i, config):  # Ctrl-C while the third shard (objects 12-17) is being drawn
        if i == 14:
            raise KeyboardInterrupt
        return render_object(i, config)

    monkeypatch.setattr(stamps, "render_object", crashing)
    with pytest.raises(KeyboardInterrupt):
        simulate_galaxies(out, workers=1, **STD_RUN)
    monkeypatch.undo()

    assert json.loads((out / "simulation.json").read_text())["complete"] is False
    with pytest.raises(DatasetError, match="incomplete"):
        open_dataset(out / "sdss")
    # settings other than the interrupted run's are refused
    with pytest.raises(DatasetError, match="unfinished simulation with other settings"):
        simulate_galaxies(out, workers=1, **{**STD_RUN, "seed": 4})
    # a crash between two surveys' writes: des shard 1 lost its catalog part
    (out / "des" / "catalog" / "part-00001.parquet").unlink()
    kept = [out / s / d / f"{stem}-{k:05d}.{ext}" for s in ("sdss", "des") for k in (0, 1)
            for d, stem, ext in (("images", "shard", "h5"), ("catalog", "part", "parquet"))
            if not (s == "des" and k == 1)]
    assert all(p.exists() for p in kept)
    assert not (out / "sdss" / "images" / "shard-00002.h5").exists()
    before = {p: (p.stat().st_mtime_ns, p.stat().st_ino) for p in kept}

    simulate_galaxies(out, workers=1, **STD_RUN)
    assert {p: (p.stat().st_mtime_ns, p.stat().st_ino) for p in kept} == before  # not rewritten
    assert file_digests(out) == file_digests(std_run)  # same result as an uninterrupted run
    resumed, clean = open_simulation(out), open_simulation(std_run)
    for name in clean:
        assert np.array_equal(resumed[name].images(), clean[name].images())
        assert_tables_equal(resumed[name].catalog, clean[name].catalog)


# =========================================================================== 9. errors
@pytest.mark.parametrize("kwargs, message", [
    ({"surveys": ["sdss", "hubble_deep"]}, "unknown survey 'hubble_deep'"),
    ({"n_objects": 0}, "n_objects must be a positive count, got 0"),
    ({"n_objects": -5}, "n_objects must be a positive count, got -5"),
    ({"classes": {"spiral": 1.0, "blob": 1.0}}, "unknown class 'blob'"),
    ({"overlap": 1.5}, re.escape("overlap must be in [0, 1], got 1.5")),
    ({"overlap": -0.1}, re.escape("overlap must be in [0, 1], got -0.1")),
])
def test_bad_settings_raise_clear_errors(tmp_path, kwargs, message):
    out = tmp_path / "bad"
    with pytest.raises(SimulationError, match=message):
        simulate_galaxies(out, **{**dict(n_objects=4, stamp_size=16, progress=False, workers=1), **kwargs})
    assert not out.exists()  # nothing written before the settings are checked


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim") / "tiny"
    simulate_galaxies(out, surveys=["des"], n_objects=4, shard_size=2, stamp_size=16, seed=9, workers=1,
                      progress=False)
    return out


def test_existing_output_is_not_overwritten(tiny_run, tmp_path):
    with pytest.raises(DatasetError, match="already holds a finished simulation; pass --overwrite"):
        simulate_galaxies(tiny_run, surveys=["des"], n_objects=4, shard_size=2, stamp_size=16, seed=9,
                          workers=1, progress=False)
    other = tmp_path / "my_folder"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(OutputError, match="not made by labelsky"):
        simulate_galaxies(other, surveys=["des"], n_objects=4, stamp_size=16, workers=1, progress=False)
    assert (other / "notes.txt").read_text() == "keep me" and sorted(p.name for p in other.iterdir()) == ["notes.txt"]
    # --overwrite never deletes a folder labelsky did not make
    with pytest.raises(OutputError, match="not made by labelsky"):
        simulate_galaxies(other, surveys=["des"], n_objects=2, stamp_size=16, workers=1, progress=False,
                          overwrite=True)
    assert sorted(p.name for p in other.iterdir()) == ["notes.txt"]
    # a simulation labelsky made is replaced
    res = simulate_galaxies(tmp_path / "sim2", surveys=["des"], n_objects=2, stamp_size=16, workers=1,
                            progress=False)
    res = simulate_galaxies(tmp_path / "sim2", surveys=["des"], n_objects=3, stamp_size=16, workers=1,
                            progress=False, overwrite=True)
    assert len(res["des"]) == 3


def test_corrupt_catalog_names_the_file(tiny_run, tmp_path):
    import shutil

    copy = tmp_path / "tiny"
    shutil.copytree(tiny_run, copy)
    assert open_simulation(copy)["des"].path == copy / "des"  # a copied simulation opens the copy
    part = copy / "des" / "catalog" / "part-00001.parquet"
    part.write_bytes(b"this is not parquet\x00" * 10)
    with pytest.raises(CatalogError, match=re.escape(str(part))):
        open_dataset(copy / "des")
    with pytest.raises(CatalogError, match="part-00001.parquet"):
        open_simulation(copy)


# =========================================================================== 10. catalogs
def test_catalog_contents(std_run):
    sims = open_simulation(std_run)
    classes = list(DEFAULT_PROPORTIONS)
    per_survey = {}
    for name, ds in sims.items():
        assert ds.classes == classes and ds.survey.name == name
        label, label_name = ds.column("label"), ds.column("label_name")
        assert set(label_name) == set(CLASSES)  # every class present (24 objects, exact proportions)
        assert all(classes[lab] == nm for lab, nm in zip(label, label_name))
        assert (ds.column("true_class") == label_name).all()
        assert set(ds.column("survey")) == {name}
        assert set(ds.column("in_surveys")) == {"sdss,des"}  # overlap = 1
        votes = np.stack([ds.column(c) for c in ("votes_smooth", "votes_featured", "votes_artifact")], 1)
        assert (votes >= 0).all() and (votes.sum(1) > 0).all()
        assert np.isnan(ds.column("richness")).all()
        per_survey[name] = catalog_rows(ds)
    # same objects, positions and truth in both surveys
    sdss, des = per_survey["sdss"], per_survey["des"]
    assert set(sdss) == set(des) and len(sdss) == 24
    truth_cols = [c for c in sdss[next(iter(sdss))] if c.startswith("true_")] + ["ra", "dec", "label", "split"]
    for i in sdss:
        for c in truth_cols:
            a, b = sdss[i][c], des[i][c]
            assert a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b)), (i, c)
    # Galaxy Zoo votes: spirals voted featured far more than ellipticals (des)
    rows = list(des.values())

    def featured(cls_set):
        return np.mean([r["votes_featured"] / (r["votes_smooth"] + r["votes_featured"] + r["votes_artifact"])
                        for r in rows if r["label_name"] in cls_set])

    assert featured({"spiral", "barred_spiral"}) > featured({"elliptical"}) + 0.3
    # features are less visible in shallow, blurry SDSS than in DES
    spirals = [i for i in des if des[i]["label_name"] in ("spiral", "barred_spiral")]
    assert np.mean([des[i]["feature_visibility"] for i in spirals]) > \
        np.mean([sdss[i]["feature_visibility"] for i in spirals])


def test_no_overlap_puts_each_object_in_one_survey(tmp_path):
    n = 16
    res = simulate_galaxies(tmp_path / "split", surveys=["sdss", "des"], n_objects=n, shard_size=8, stamp_size=16,
                            overlap=0.0, stars=False, field_galaxies=False, seed=4, workers=1, progress=False)
    ids = {name: list(ds.column("id_str")) for name, ds in res.items()}
    assert len(ids["sdss"]) + len(ids["des"]) == n
    assert not set(ids["sdss"]) & set(ids["des"])
    assert set(ids["sdss"]) | set(ids["des"]) == {f"sim-{i:08d}" for i in range(n)}
    assert len(ids["sdss"]) > 0 and len(ids["des"]) > 0
    for name, ds in res.items():
        assert set(ds.column("in_surveys")) == {name}


# =========================================================================== 11. switches
def test_no_neighbours_switches(quiet_run):
    for ds in open_simulation(quiet_run).values():
        assert (ds.column("n_neighbour_stars") == 0).all()
        assert (ds.column("n_neighbour_galaxies") == 0).all()
        assert not ds.column("blended").any()


def test_noise_switch_gives_deterministic_nonnegative_images():
    """noise=False turns off every noise term; stamps repeat exactly and are non-negative up to FFT ringing."""
    common = dict(surveys=["sdss", "des"], n_objects=8, stamp_size=48, seed=7, noise=False)
    with_terms = GalaxySimConfig(**common, source_noise=True, sky_residuals=True).to_dict()
    without = GalaxySimConfig(**common, source_noise=False, sky_residuals=False).to_dict()
    noisy = GalaxySimConfig(**{**common, "noise": True}).to_dict()
    for i in range(8):
        a, b, c = render_object(i, with_terms), render_object(i, without), render_object(i, noisy)
        again = render_object(i, with_terms)
        for name in a:
            survey = get_survey(name)
            img = a[name][0]
            assert np.array_equal(img, again[name][0]) and np.array_equal(img, b[name][0])
            assert not np.array_equal(img, c[name][0])
            for band in range(survey.n_bands):
                # GalSim's k-space truncation (loosened GSParams) leaves ringing of ~1e-4 of the peak,
                # < 1 % of the pixel noise; anything more negative would be a drawing error
                sigma = survey.noise_sigma(band)
                assert img[band].min() > -0.01 * sigma, (name, i, band, img[band].min() / sigma)


def test_saturated_star_artifacts_are_flagged():
    cfg = GalaxySimConfig(surveys=["sdss", "des"], n_objects=6, classes={"artifact": 1.0}, stamp_size=32,
                          stars=False, field_galaxies=False, seed=1).to_dict()
    kinds = set()
    for i in range(6):
        for name, (img, row) in render_object(i, cfg).items():
            kinds.add(row["true_artifact_kind"])
            survey = get_survey(name)
            assert row["saturated"] == (row["true_artifact_kind"] == "saturated_star"), (i, name)
            if row["saturated"]:
                for b in range(survey.n_bands):
                    assert img[b].max() <= survey.saturation_level(b) * (1 + 1e-6)
    assert kinds == {"saturated_star", "satellite_trail"}


def test_a_resumed_simulation_refuses_an_edited_survey_yaml(tmp_path, monkeypatch):
    import yaml

    import labelsky.data.simulate.stamps as stamps
    from labelsky.data.surveys import get_survey

    spec = get_survey("decals").to_dict()
    spec["name"] = "mine"
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(spec))

    def killed(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(stamps, "run_shards", killed)
    with pytest.raises(KeyboardInterrupt):
        stamps.simulate_galaxies(tmp_path / "sim", surveys=[str(path)], n_objects=4, stamp_size=16, workers=1,
                                 progress=False)
    spec["depth"] = [d + 1.0 for d in spec["depth"]]  # the user edits the survey file, same name
    path.write_text(yaml.safe_dump(spec))
    monkeypatch.undo()
    with pytest.raises(DatasetError, match=r"unfinished simulation with other settings \(surveys\)"):
        stamps.simulate_galaxies(tmp_path / "sim", surveys=[str(path)], n_objects=4, stamp_size=16, workers=1,
                                 progress=False)
