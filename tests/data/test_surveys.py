import math

import pytest

from labelsky.data import surveys
from labelsky.data.surveys import Survey, SurveyError, get_survey, list_surveys, register_survey

BUILTINS = ["sdss", "sdss_stripe82", "des", "decals", "lsst_y1", "lsst_y10"]


def _fields(**override):
    d = dict(name="toy", pixel_scale=0.25, bands=["g", "r"], filters=["decam2014-g", "decam2014-r"],
             psf_fwhm=[1.0, 0.9], depth=[24.0, 23.5], sky_mag=[22.0, 21.0])
    d.update(override)
    return d


@pytest.mark.parametrize("name", BUILTINS)
def test_builtin_surveys_load(name):
    s = get_survey(name)
    assert s.name == name
    assert name in list_surveys()
    assert s.n_bands == len(s.bands) == len(s.filters) == len(s.depth) == len(s.psf_fwhm) == len(s.sky_mag)
    for b in range(s.n_bands):
        assert s.noise_sigma(b) > 0 and s.gain(b) > 0


def test_noise_sigma_formula_by_hand():
    s = get_survey("sdss")
    m5, fwhm, pix = 22.2, 1.32, 0.396  # r band
    expected = 10 ** (-0.4 * (m5 - 22.5)) / (5 * math.sqrt(4 * math.pi * (fwhm / 2.355) ** 2 / pix**2))
    # 2.355 is a rounded 2 sqrt(2 ln 2): agree to well under 0.1%
    assert s.noise_sigma("r") == pytest.approx(expected, rel=1e-4)
    assert s.noise_sigma(2) == s.noise_sigma("r")
    # binning pixels 2x2 doubles the per-pixel noise
    assert s.noise_sigma("r", pixel_scale=2 * pix) == pytest.approx(2 * s.noise_sigma("r"))


def test_lsst_y1_is_y10_minus_1p25():
    y1, y10 = get_survey("lsst_y1"), get_survey("lsst_y10")
    assert y1.depth == pytest.approx([d - 1.25 for d in y10.depth])
    assert y1.psf_fwhm == y10.psf_fwhm and y1.bands == y10.bands


def test_yaml_round_trip(tmp_path):
    s = get_survey("des")
    p = tmp_path / "des_copy.yaml"
    s.to_yaml(p)
    assert Survey.from_yaml(p) == s
    assert get_survey(str(p)) == s
    assert get_survey(p) == s


def test_unknown_survey_name():
    with pytest.raises(SurveyError, match=r"unknown survey 'nosuch'.*known surveys are"):
        get_survey("nosuch")


def test_wrong_number_of_per_band_values():
    with pytest.raises(SurveyError, match=r"field 'depth' has 1 entries, expected one per band \(2"):
        Survey.from_dict(_fields(depth=[24.0]))


def test_unknown_field(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("name: toy\nseeing: 1.0\n")
    with pytest.raises(SurveyError, match=r"bad\.yaml: unknown survey field\(s\) \['seeing'\]"):
        get_survey(p)


def test_missing_field():
    d = _fields()
    del d["sky_mag"]
    with pytest.raises(SurveyError, match=r"missing survey field\(s\) \['sky_mag'\]"):
        Survey.from_dict(d, source="toy.yaml")


def test_bad_psf_profile():
    with pytest.raises(SurveyError, match=r"field 'psf_profile' = 'airy', expected one of"):
        Survey.from_dict(_fields(psf_profile="airy"))


def test_register_survey(monkeypatch):
    monkeypatch.setattr(surveys, "_REGISTERED", {})
    s = Survey.from_dict(_fields(name="toy_registered"))
    assert register_survey(s) is s
    assert get_survey("toy_registered") is s
    assert "toy_registered" in list_surveys()
    with pytest.raises(SurveyError, match="already exists"):
        register_survey(s)
    with pytest.raises(SurveyError, match="already exists"):
        register_survey(Survey.from_dict(_fields(name="sdss")))
    s2 = Survey.from_dict(_fields(name="toy_registered", pixel_scale=0.5))
    register_survey(s2, overwrite=True)
    assert get_survey("toy_registered").pixel_scale == 0.5
