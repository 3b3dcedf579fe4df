"""The papers' samples (``labelsky.data.simulate.samples``) and what a sample lets a method see
(``labelsky.data.sample_report``): magnitude limits, framing, vote calibration, reports against hand cases."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pytest

from labelsky.data.sample_report import format_sample_report, measure_central, sample_report
from labelsky.data.simulate import SimulationError, render_object
from labelsky.data.simulate import galaxies as gal
from labelsky.data.simulate.samples import PAPER_SAMPLES, sample_settings
from labelsky.data.simulate.stamps import GalaxySimConfig
from labelsky.data.simulate.votes import feature_visibility, sample_votes
from labelsky.data.surveys import get_survey
from labelsky.reproduce.khan_sets import hp_fo_sets
from labelsky.utils import object_seed

pytest.importorskip("galsim")


def _clean(**kw) -> dict:
    return GalaxySimConfig(stars=False, field_galaxies=False, noise=False, saturation=False, sky_residuals=False,
                           **kw).to_dict()


def test_each_survey_keeps_its_own_magnitude_limit():
    cfg = _clean(surveys=["sdss", "decals"], n_objects=40, classes={"elliptical": 1}, stamp_size=16,
                 mag_range=(14.0, 17.77), mag_limits={"sdss": 17.0, "decals": 17.77}, overlap=0.0)
    mags = {"sdss": [], "decals": []}
    for i in range(40):
        for name, (_, row) in render_object(i, cfg).items():
            mags[name].append(row["true_mag_r"])
    assert len(mags["sdss"]) > 5 and len(mags["decals"]) > 5
    assert max(mags["sdss"]) <= 17.0 and min(mags["sdss"]) >= 14.0
    assert max(mags["decals"]) <= 17.77 and max(mags["decals"]) > 17.0  # fainter than SDSS allows


def test_a_galaxy_seen_by_both_surveys_obeys_the_stricter_limit_and_old_settings_draw_as_before():
    limited = _clean(surveys=["sdss", "decals"], n_objects=4, classes={"elliptical": 1}, stamp_size=16,
                     mag_range=(14.0, 17.77), mag_limits={"decals": 15.0})
    assert all(row["true_mag_r"] <= 15.0 for i in range(4) for _, row in render_object(i, limited).values())
    plain = _clean(surveys=["sdss"], n_objects=4, classes={"elliptical": 1}, stamp_size=16)
    assert "mag_limits" not in plain and "field_of_view" not in plain and "sample" not in plain
    row = render_object(0, plain)["sdss"][1]
    expected = gal.sample_truth("elliptical", object_seed(0, 0, "truth"), (15.0, 19.0))["true_mag_r"]
    assert row["true_mag_r"] == pytest.approx(expected, abs=1e-12)


def test_field_of_view_keeps_the_papers_framing_at_any_stamp_size():
    cfg = _clean(surveys=["sdss", "decals"], n_objects=1, classes={"elliptical": 1}, stamp_size=32,
                 field_of_view=256)
    out = render_object(0, cfg)
    for name, (image, row) in out.items():
        assert image.shape[-1] == 32
        assert row["pixel_scale"] == pytest.approx(get_survey(name).pixel_scale * 256 / 32)


@pytest.mark.parametrize("bad, message", [
    (dict(mag_limits={"des": 17.0}), "not simulated"),
    (dict(mag_limits={"sdss": 10.0}), "fainter than"),
    (dict(field_of_view=4), "field_of_view"),
    (dict(field_of_view=256, cutout="scaled"), "cutout='fixed'"),
    (dict(scaled_fov=12.0), "cutout='scaled'"),
])
def test_bad_sample_settings_are_refused(bad, message):
    with pytest.raises(SimulationError, match=message):
        GalaxySimConfig(surveys=["sdss"], mag_range=(14.0, 17.0), **bad).validate()


def test_sample_settings_under_explicit_options():
    assert sample_settings("deepastrouda")["cutout"] == "scaled"  # Galaxy-Zoo framing, as the paper cropped
    s = sample_settings("deepastrouda", field_of_view=128, cutout=None)
    assert s["field_of_view"] == 128 and s["mag_limits"] == {"sdss": 17.0, "decals": 17.77}
    assert s["cutout"] == "fixed" and "scaled_fov" not in s  # a fixed field of view replaces the framing
    s["mag_limits"]["sdss"] = 1.0  # a copy: the registry is untouched
    assert PAPER_SAMPLES["deepastrouda"].settings["mag_limits"]["sdss"] == 17.0
    with pytest.raises(SimulationError, match="clusters sample"):
        sample_settings("owg", "galaxies")
    with pytest.raises(SimulationError, match="unknown sample"):
        sample_settings("gz3")


def _khan_vote_fractions(n: int, seed: int = 0):
    """Vote fractions of ``n`` ellipticals and ``n`` spirals of the khan2019 sample as SDSS shows them."""
    sdss = get_survey("sdss")
    rng = np.random.default_rng(seed)
    mag_range = PAPER_SAMPLES["khan2019"].settings["mag_range"]
    counts, labels = [], []
    for k, cls in enumerate(("elliptical", "spiral")):
        for _ in range(n):
            t = gal.sample_truth(cls, rng, mag_range)
            counts.append(sample_votes(cls, feature_visibility(t["true_mag_r"], t["true_hlr"], sdss), rng))
            labels.append(k)
    return np.asarray(counts), np.asarray(labels)


def test_votes_pass_khans_thresholds_as_often_as_in_table_1():
    """Table I: 516 of 6,677 spirals (7.7 %) and 550 of 5,904 ellipticals (9.3 %) are high-probability."""
    counts, _ = _khan_vote_fractions(3000)
    frac = counts / counts.sum(1, keepdims=True)
    spiral_won = frac[:, 1] > frac[:, 0]
    hp_spiral = (spiral_won & (frac[:, 1] >= 0.985)).sum() / spiral_won.sum()
    hp_elliptical = (~spiral_won & (frac[:, 0] >= 0.926)).sum() / (~spiral_won).sum()
    assert 0.04 < hp_spiral < 0.13, hp_spiral
    assert 0.05 < hp_elliptical < 0.15, hp_elliptical


class _Votes:
    """The columns hp_fo_sets reads, as a dataset would give them."""

    def __init__(self, counts, labels):
        self.classes = ["elliptical", "spiral"]
        self._cols = {"votes_smooth": counts[:, 0], "votes_featured": counts[:, 1], "votes_artifact": counts[:, 2],
                      "id_str": np.array([f"g{i}" for i in range(len(labels))]), "label": labels}

    def column(self, name):
        return self._cols[name]


def test_hp_sets_of_both_classes_in_table_1_proportions():
    counts, labels = _khan_vote_fractions(1500, seed=1)
    ds = _Votes(counts, labels)
    sets = hp_fo_sets(ds, ds, np.arange(len(labels)), {"elliptical": "smooth", "spiral": "featured"},
                      {"elliptical": 0.926, "spiral": 0.985})
    n_ell = int((sets["hp_labels"] == 0).sum())
    n_sp = int((sets["hp_labels"] == 1).sum())
    assert n_ell >= 50 and n_sp >= 50
    assert 0.5 < n_ell / n_sp < 2.0  # Table I: 550 / 516 = 1.07
    # and the HP labels are right: the sample's purpose
    assert (labels[sets["hp_source"]] == sets["hp_labels"]).mean() > 0.95


class _Catalog:
    def __init__(self, table, survey):
        self.catalog, self.survey, self.path = table, survey, "hand"
        self.bands, self.classes = list(survey.bands), ["a", "b"]
        self.meta = {}

    def __len__(self):
        return self.catalog.num_rows

    def column(self, name):
        return self.catalog.column(name).to_numpy(zero_copy_only=False)


def test_sample_report_against_a_hand_case():
    sdss = get_survey("sdss")
    fwhm = sdss.psf_fwhm[sdss.bands.index("r")]
    hlr = np.array([0.5, 2.0, 3.0, 0.9, 1.5, 4.0]) * fwhm
    table = pa.table({"true_mag_r": [14.0, 15.0, 16.0, 17.0, 16.5, 15.5], "true_hlr": hlr,
                      "label_name": ["a", "a", "a", "b", "b", ""],
                      "rand_psf_scale": [1.0, 1.0, 1.0, 1.0, 2.0, float("nan")]})
    rep = sample_report(_Catalog(table, sdss))
    assert rep["source"] == "truth" and rep["band"] == "r"
    a, b = rep["classes"]["a"], rep["classes"]["b"]
    assert a["n"] == 3 and a["resolved_fraction"] == pytest.approx(2 / 3)
    # b: 0.9 FWHM is unresolved; 1.5 FWHM under a PSF twice as wide is unresolved too
    assert b["resolved_fraction"] == 0.0
    assert rep["classes"]["(unlabelled)"]["resolved_fraction"] == 1.0
    assert a["mag_r"]["p50"] == pytest.approx(15.0)
    assert a["hlr_arcsec"]["p5"] == pytest.approx(np.percentile(hlr[:3], 5))
    assert rep["all"]["resolved_fraction"] == pytest.approx(3 / 6)
    text = format_sample_report(rep)
    assert "67 %" in text and "resolved" in text


def test_central_source_measured_against_a_hand_case():
    rng = np.random.default_rng(0)
    n, sigma_pix, flux, scale = 64, 3.0, 400.0, 0.25
    y, x = np.mgrid[:n, :n] - (n - 1) / 2.0
    blob = flux * np.exp(-(x**2 + y**2) / (2 * sigma_pix**2)) / (2 * math.pi * sigma_pix**2)
    image = blob + 5.0 + rng.normal(0, 0.05, (n, n))
    m = measure_central(image, pixel_scale=scale)
    assert m["sky"] == pytest.approx(5.0, abs=0.01)
    assert m["sky_rms"] == pytest.approx(0.05, rel=0.15)
    assert m["flux"] == pytest.approx(flux, rel=0.05)
    assert m["mag_r"] == pytest.approx(22.5 - 2.5 * math.log10(flux), abs=0.06)
    assert m["hlr_arcsec"] == pytest.approx(sigma_pix * math.sqrt(2 * math.log(2)) * scale, rel=0.1)
    empty = measure_central(5.0 + rng.normal(0, 0.05, (n, n)), pixel_scale=scale)
    assert math.isnan(empty["flux"]) and math.isnan(empty["hlr_arcsec"])


def test_the_deepastrouda_sample_frames_galaxies_as_galaxy_zoo_crops(tmp_path, capsys):
    from labelsky.cli import main

    assert sample_settings("deepastrouda")["scaled_fov"] == 12.0
    assert main(["simulate", "--sample", "deepastrouda", "--out", str(tmp_path / "s"), "--n", "4", "--stamp-size",
                 "16", "--classes", "elliptical", "--workers", "1", "--scaled-fov", "9"]) == 0
    config = json.loads((tmp_path / "s" / "simulation.json").read_text())["config"]
    assert config["cutout"] == "scaled" and config["scaled_fov"] == 9.0  # the explicit option over the sample's
    capsys.readouterr()
    assert main(["simulate", "--out", str(tmp_path / "t"), "--n", "4", "--scaled-fov", "9"]) == 2
    assert "--cutout scaled" in capsys.readouterr().err
