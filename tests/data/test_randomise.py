"""Domain randomisation of the galaxy-cutout simulator (``GalaxySimConfig(randomise=...)``, ``--randomise``).

Measured effects (PSF width, noise level, calibration gain, neighbour
densities), the recorded ``rand_*`` columns and settings, determinism for any
number of workers, output unchanged without the option, and errors for bad
ranges. Tiny stamps and few objects throughout.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from labelsky.cli import main
from labelsky.data.simulate import (
    Randomisation,
    SimulationError,
    open_simulation,
    parse_randomisation,
    render_object,
    simulate_galaxies,
)
from labelsky.data.simulate.stamps import GalaxySimConfig
from labelsky.data.surveys import get_survey

pytest.importorskip("galsim")

#: Every level at the survey's own value: randomisation that changes nothing.
NEUTRAL = dict(psf=1.0, depth=0.0, sky_residuals=1.0, stars=1.0, field_galaxies=1.0, gain=1.0, saturation=1.0)
RUN = dict(surveys=["sdss", "des"], n_objects=8, shard_size=4, stamp_size=24, seed=5, progress=False)


def config(randomise=None, surveys=("des",), n=4, stamp=40, clean=True, **kw) -> dict:
    """Config dict for :func:`render_object`; ``clean``: noise-free, no neighbours, no saturation."""
    if clean:
        kw = dict(dict(stars=False, field_galaxies=False, noise=False, saturation=False, sky_residuals=False), **kw)
    return GalaxySimConfig(surveys=list(surveys), n_objects=n, classes={"elliptical": 1.0}, stamp_size=stamp,
                           mag_range=(18.0, 18.5), seed=2, randomise=randomise, **kw).to_dict()


def levels(**override) -> dict:
    return dict(NEUTRAL, **override)


def second_moment(image: np.ndarray) -> float:
    """Ixx + Iyy (pixels^2) of a noise-free image about its centroid."""
    img = np.clip(image.astype(np.float64), 0, None)
    yy, xx = np.mgrid[0:img.shape[0], 0:img.shape[1]]
    w = img.sum()
    cx, cy = (img * xx).sum() / w, (img * yy).sum() / w
    return float((img * ((xx - cx) ** 2 + (yy - cy) ** 2)).sum() / w)


def file_digests(root) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.suffix in (".h5", ".parquet")}


@pytest.fixture(scope="module")
def randomised_run(tmp_path_factory):
    """sdss + des, 8 objects in 2 shards, every nuisance on, default ranges, one worker."""
    out = tmp_path_factory.mktemp("rand") / "one"
    simulate_galaxies(out, workers=1, randomise=True, **RUN)
    return out


# =========================================================================== effects
def test_psf_scale_widens_every_object():
    """Second moments grow with the PSF factor as M_gal + s^2 M_psf; factor 1 is the survey's own PSF."""
    r = get_survey("des").band_index("r")
    moments = {}
    for s in (0.7, 1.0, 1.5):
        cfg = config(levels(psf=s))
        moments[s] = np.array([second_moment(render_object(i, cfg)["des"][0][r]) for i in range(4)])
    assert np.all(moments[0.7] < moments[1.0]) and np.all(moments[1.0] < moments[1.5])
    # second moments add under convolution: (M(1.5) - M(1)) / (M(1) - M(0.7)) = (1.5^2 - 1) / (1 - 0.7^2)
    ratio = (moments[1.5] - moments[1.0]) / (moments[1.0] - moments[0.7])
    np.testing.assert_allclose(ratio, (1.5**2 - 1) / (1 - 0.7**2), rtol=0.2)
    plain = config(None)
    for i in range(4):
        np.testing.assert_array_equal(render_object(i, plain)["des"][0], render_object(i, config(levels()))["des"][0])


def test_recorded_psf_scale_is_the_one_applied():
    """Redrawing an object with its recorded rand_psf_scale fixed gives the same image."""
    cfg = config(levels(psf=(0.7, 1.5)), n=3)
    for i in range(3):
        image, row = render_object(i, cfg)["des"]
        s = row["rand_psf_scale"]
        assert 0.7 <= s <= 1.5
        np.testing.assert_array_equal(image, render_object(i, config(levels(psf=s), n=3))["des"][0])


def test_noise_and_gain_follow_the_drawn_levels():
    """Pixel noise = gain_b * sigma_b * 10**(-0.4 depth_shift); noise-free flux scales by gain_b."""
    survey = get_survey("sdss")
    ranges = levels(depth=(-1.0, 0.5), gain=(0.9, 1.1))
    noisy = config(ranges, surveys=["sdss"], n=6, stamp=64, clean=True, noise=True)
    clean = config(ranges, surveys=["sdss"], n=6, stamp=64)
    unit_gain = config(dict(ranges, gain=1.0), surveys=["sdss"], n=6, stamp=64)
    shifts = []
    for i in range(6):
        image, row = render_object(i, noisy)["sdss"]
        truth = render_object(i, clean)["sdss"][0]
        shifts.append(row["rand_depth_shift"])
        for b, band in enumerate(survey.bands):
            gain = row[f"rand_gain_{band}"]
            expected = gain * survey.noise_sigma(b) * 10 ** (-0.4 * row["rand_depth_shift"])
            assert np.std(image[b] - truth[b]) == pytest.approx(expected, rel=0.06), (i, band)
            np.testing.assert_allclose(truth[b], render_object(i, unit_gain)["sdss"][0][b] * gain, rtol=1e-5,
                                       atol=1e-12)
    assert np.ptp(shifts) > 0.3  # the levels do vary between objects


def test_zero_density_removes_neighbours():
    """stars = field_galaxies = 0: no neighbours, the image of a run with both switched off."""
    dense = config(levels(stars=4.0, field_galaxies=4.0), surveys=["sdss"], n=6, stamp=64, clean=False)
    empty = config(levels(stars=0.0, field_galaxies=0.0), surveys=["sdss"], n=6, stamp=64, clean=False)
    off = config(levels(), surveys=["sdss"], n=6, stamp=64, clean=False, stars=False, field_galaxies=False)
    n_dense = 0
    for i in range(6):
        image, row = render_object(i, empty)["sdss"]
        assert row["n_neighbour_stars"] == row["n_neighbour_galaxies"] == 0
        np.testing.assert_array_equal(image, render_object(i, off)["sdss"][0])
        d = render_object(i, dense)["sdss"][1]
        n_dense += d["n_neighbour_stars"] + d["n_neighbour_galaxies"]
    assert n_dense > 0


# =========================================================================== records
def test_columns_recorded_within_ranges(randomised_run):
    r = Randomisation()
    cats = {name: ds.catalog.to_pandas().set_index("id_str") for name, ds in open_simulation(randomised_run).items()}
    for name, cat in cats.items():
        bands = get_survey(name).bands
        for col, field in (("rand_psf_scale", r.psf), ("rand_depth_shift", r.depth),
                           ("rand_sky_residual_scale", r.sky_residuals), ("rand_star_density_scale", r.stars),
                           ("rand_galaxy_density_scale", r.field_galaxies), ("rand_saturation_scale", r.saturation),
                           *((f"rand_gain_{b}", r.gain) for b in bands)):
            values = cat[col].to_numpy()
            assert np.all((values >= field[0]) & (values <= field[1])), col
            assert np.ptp(values) > 0, col
    sdss, des = cats["sdss"], cats["des"].loc[cats["sdss"].index]
    # the sky (neighbour densities) is shared by the surveys, each observation draws its own conditions
    np.testing.assert_array_equal(sdss["rand_star_density_scale"], des["rand_star_density_scale"])
    assert not np.allclose(sdss["rand_psf_scale"], des["rand_psf_scale"])
    meta = json.loads((randomised_run / "simulation.json").read_text())
    assert meta["config"]["randomise"] == Randomisation().to_dict()
    ds_meta = json.loads((randomised_run / "sdss" / "labelsky.json").read_text())
    assert ds_meta["config"]["randomise"] == Randomisation().to_dict()


def test_randomised_output_independent_of_workers(randomised_run, tmp_path):
    out = tmp_path / "two"
    simulate_galaxies(out, workers=2, randomise=Randomisation(), **RUN)
    assert file_digests(out) == file_digests(randomised_run)


def test_without_the_option_nothing_changes(tmp_path):
    """No rand_* columns nor 'randomise' setting; neutral levels draw the very same images."""
    out = tmp_path / "plain"
    ds = simulate_galaxies(out, workers=1, randomise=None, **dict(RUN, n_objects=4))
    assert not [c for c in ds["sdss"].catalog.column_names if c.startswith("rand_")]
    assert "randomise" not in json.loads((out / "simulation.json").read_text())["config"]
    full = dict(surveys=["sdss", "des"], n=4, stamp=32, clean=False)
    plain, neutral = config(None, **full), config(levels(), **full)
    for i in range(4):
        a, b = render_object(i, plain), render_object(i, neutral)
        for name in a:
            np.testing.assert_array_equal(a[name][0], b[name][0])
            row = {k: v for k, v in b[name][1].items() if not k.startswith("rand_")}
            assert list(row) == list(a[name][1])
            for k, v in a[name][1].items():
                assert v == row[k] or (v != v and row[k] != row[k]), k  # NaN equals NaN


# =========================================================================== settings
def test_settings_forms():
    assert GalaxySimConfig(randomise=True).randomise == Randomisation()
    assert GalaxySimConfig(randomise=False).randomise is None
    assert GalaxySimConfig(randomise={"psf": [1, 2]}).randomise.psf == (1.0, 2.0)
    assert Randomisation(stars=0).stars == (0.0, 0.0)
    assert parse_randomisation("") == Randomisation()
    r = parse_randomisation("psf=0.8:1.2, depth=-0.5:0.25,field-galaxies=0,sky_residuals=0:1")
    assert (r.psf, r.depth, r.field_galaxies, r.sky_residuals) == ((0.8, 1.2), (-0.5, 0.25), (0.0, 0.0), (0.0, 1.0))
    assert r.gain == Randomisation().gain


@pytest.mark.parametrize("make, message", [
    (lambda: Randomisation(psf=(1.5, 0.7)), "randomise psf: expected (low, high) with low <= high"),
    (lambda: Randomisation(psf=(0.0, 1.0)), "randomise psf"),
    (lambda: Randomisation(stars=(-1, 1)), "randomise stars"),
    (lambda: Randomisation(gain=(0.0, 1.1)), "randomise gain"),
    (lambda: Randomisation(depth=(float("nan"), 1)), "randomise depth"),
    (lambda: Randomisation(saturation="high"), "randomise saturation"),
    (lambda: Randomisation(sky_residuals=(1, 2, 3)), "randomise sky_residuals"),
    (lambda: GalaxySimConfig(randomise={"seeing": (1, 2)}), "unknown nuisance(s) ['seeing']"),
    (lambda: GalaxySimConfig(randomise="yes"), "randomise: expected True"),
    (lambda: parse_randomisation("psf=1:x"), "--randomise: 'psf=1:x'"),
    (lambda: parse_randomisation("psf"), "--randomise: 'psf' is not NAME=VALUE or NAME=LOW:HIGH"),
    (lambda: parse_randomisation("blur=1:2"), "--randomise: 'blur=1:2' is not NAME=VALUE or NAME=LOW:HIGH"),
    (lambda: parse_randomisation("psf=1:2:3"), "expected psf=VALUE or psf=LOW:HIGH"),
])
def test_bad_ranges_raise_one_line_settings_errors(make, message):
    with pytest.raises(SimulationError) as err:
        make()
    assert message in str(err.value) and "\n" not in str(err.value)


def test_bad_range_writes_nothing(tmp_path):
    with pytest.raises(SimulationError, match="randomise depth"):
        simulate_galaxies(tmp_path / "o", randomise={"depth": (1, -1)}, **RUN)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("args, message", [
    (["--randomise", "psf=2:1"], "randomise psf: expected (low, high)"),
    (["--randomise", "stars=-1"], "randomise stars"),
    (["--kind", "clusters", "--randomise"], "for --kind galaxies only"),
])
def test_cli_bad_randomise_exit_2(tmp_path, capsys, args, message):
    assert main(["simulate", "--out", str(tmp_path / "o"), "--n", "2", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_cli_randomise(tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["simulate", "--out", str(out), "--n", "4", "--surveys", "decals", "--stamp-size", "16",
                 "--workers", "1", "--randomise", "psf=1.2,stars=0", "--classes", "elliptical"]) == 0
    cat = open_simulation(out)["decals"].catalog.to_pandas()
    assert np.all(cat["rand_psf_scale"] == 1.2) and np.all(cat["rand_star_density_scale"] == 0)
    assert np.all((cat["rand_gain_z"] >= 0.9) & (cat["rand_gain_z"] <= 1.1))
    recorded = json.loads((out / "simulation.json").read_text())["config"]["randomise"]
    assert recorded["psf"] == [1.2, 1.2] and recorded["depth"] == [-1.0, 0.5]
