"""Survey viewer renderings: hand-computed pixels, shapes, band errors, JPEG round trips, mosaics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from conftest import CLASSES, SHAPE, make_columns, make_images
from labelsky.cli import main
from labelsky.data.display import RENDERERS, jpeg_roundtrip, mosaic, render, to_rgb
from labelsky.data.io import DatasetWriter, open_dataset
from labelsky.errors import SettingsError

TOL = 1 / 255 + 1e-6


def _pixel(values: dict, bands: str) -> np.ndarray:
    """A [bands, 1, 1] image with the given nanomaggies."""
    return np.array([[[values[b]]] for b in bands], dtype=np.float32)


def _close(got, expect_bytes):
    np.testing.assert_allclose(got, np.asarray(expect_bytes, dtype=np.float64) / 255, atol=TOL, rtol=0)


# ---------------------------------------------------------------- hand cases from the published formulas

def test_legacysurvey_hand_case():
    # imagine dr2_rgb: x = s f + 0.03 (g 6.0, r 3.4, z 2.2), I = mean max(x, 0), x * asinh(20 I) / (sqrt(20) I)
    g, r, z = 0.05, 0.1, 0.2
    xg, xr, xz = 6.0 * g + 0.03, 3.4 * r + 0.03, 2.2 * z + 0.03  # 0.33, 0.37, 0.47
    inten = (xg + xr + xz) / 3  # 0.39
    k = math.asinh(20 * inten) / math.sqrt(20) / inten
    expect = [math.floor(255 * min(max(v * k, 0), 1)) for v in (xz, xr, xg)]  # R = z, G = r, B = g
    assert expect == [189, 148, 132]
    out = render(_pixel({"g": g, "r": r, "z": z}, "grz"), ["g", "r", "z"], "legacysurvey")
    _close(out[:, 0, 0], expect)


def test_legacysurvey_empty_sky_is_grey_and_pixel_scale_converts_to_native_pixels():
    # zero flux: x = 0.03 everywhere, channel = asinh(20 * 0.03) / sqrt(20) = 0.1272 -> 32
    expect = math.floor(255 * math.asinh(0.6) / math.sqrt(20))
    assert expect == 32
    out = render(np.zeros((3, 2, 2), np.float32), "grz", "legacysurvey")
    _close(out.reshape(3, -1).T, [[expect] * 3] * 4)
    # pixels of twice the native size (0.524") hold 4x the flux per pixel at the same surface brightness
    f = _pixel({"g": 0.05, "r": 0.1, "z": 0.2}, "grz")
    np.testing.assert_array_equal(render(4 * f, "grz", "legacysurvey", pixel_scale=0.524),
                                  render(f, "grz", "legacysurvey"))
    np.testing.assert_array_equal(render(f, "grz", "legacysurvey", pixel_scale=0.262), render(f, "grz"))


def test_black_point_subtracts_bytes_from_the_picture_in_training_and_prediction():
    # the empty Legacy Survey sky is byte 32; a black point of 20 / 255 leaves 12, and a pixel below it goes to 0
    sky = render(np.zeros((3, 2, 2), np.float32), "grz", "legacysurvey", black_point=20 / 255)
    _close(sky.reshape(3, -1).T, [[12] * 3] * 4)
    out = render(_pixel({"g": 0.05, "r": 0.1, "z": 0.2}, "grz"), "grz", "legacysurvey", black_point=0.6)
    _close(out[:, 0, 0], [189 - 153, 0, 0])  # 0.6 * 255 = 153 levels off [189, 148, 132]
    with pytest.raises(SettingsError, match="black point"):
        render(np.zeros((3, 2, 2), np.float32), "grz", black_point=1.0)
    # the model's input: the same level in the training preprocessing and in the prediction one
    from labelsky.data.transforms import NuisanceRandomisation, RenderPreprocess

    img = _galaxy_field(8)
    plain = RenderPreprocess("grz", "legacysurvey", pixel_scale=0.262, noise=[0.01] * 3)
    dark = RenderPreprocess("grz", "legacysurvey", pixel_scale=0.262, noise=[0.01] * 3, black_point=20 / 255)
    np.testing.assert_allclose(dark(img).numpy(), np.clip(plain(img).numpy() - 20 / 255, 0, 1), atol=1e-6)
    display = NuisanceRandomisation(brightness=(1, 1), colour=0, blur=0, noise=0, sky=0, jpeg_probability=0,
                                    black=(0.0, 0.0), contrast=(1.0, 1.01))
    trained = RenderPreprocess("grz", "legacysurvey", pixel_scale=0.262, noise=[0.01] * 3, black_point=20 / 255,
                               randomise=display)
    assert abs(float(trained(img).mean()) - float(dark(img).mean())) < 0.01


def test_sdss_hand_cases():
    # djs_rgb_make with sdss_frame_jpg parameters: scales (i 2.0, r 2.6, g 3.6), b = 2.25, bytes floor(256 x)
    g, r, i = 0.05, 0.1, 0.2
    x = [2.0 * i, 2.6 * r, 3.6 * g]  # R, G, B = 0.40, 0.26, 0.18
    s = 2.25 * sum(x)
    fac = math.asinh(s) / s
    expect = [min(max(math.floor(256 * v * fac), 0), 255) for v in x]
    assert expect == [75, 49, 33]
    out = render(_pixel({"g": g, "r": r, "i": i}, "gri"), "gri", "sdss")
    _close(out[:, 0, 0], expect)

    # a channel over 1: the pixel is divided by its largest channel instead (colour kept)
    g, r, i = 1.0, 2.0, 5.0
    x = [2.0 * i, 2.6 * r, 3.6 * g]  # 10.0, 5.2, 3.6
    s = 2.25 * sum(x)
    assert x[0] * math.asinh(s) / s > 1
    expect = [min(max(math.floor(256 * v / max(x)), 0), 255) for v in x]
    assert expect == [255, 133, 92]
    _close(render(_pixel({"g": g, "r": r, "i": i}, "gri"), "gri", "sdss")[:, 0, 0], expect)

    # negative flux is clipped to 0 before the stretch; all-zero pixels are black
    _close(render(_pixel({"g": -1.0, "r": 0.0, "i": 0.0}, "gri"), "gri", "sdss")[:, 0, 0], [0, 0, 0])


def test_sdss_saturated_object_takes_the_colour_of_its_border():
    # 3x3 of (g, r, i) = (0.05, 0.1, 0.2) with a centre at i = 40 nmgy (> satvalue 30): the centre takes the
    # mean of its four neighbours, i.e. the same colour as them
    img = np.empty((3, 3, 3), np.float32)
    img[0], img[1], img[2] = 0.05, 0.1, 0.2
    img[2, 1, 1] = 40.0
    out = render(img, "gri", "sdss")
    _close(out[:, 1, 1], [75, 49, 33])
    np.testing.assert_array_equal(out[:, 1, 1], out[:, 0, 1])


def test_hsc_hand_case():
    # colorPostage hscColor: x = f * 10**(0.4 * 19) / FLUXMAG0 (zero point 27), y = asinh(e^10 x) / asinh(e^10),
    # (y + 0.05) / (2/3 + 0.05), bytes uint8(255 y); (i, r, g) -> (R, G, B)
    g, r, i = 0.05, 0.1, 0.2
    counts_per_nmgy = 10 ** (0.4 * (27 - 22.5))
    fluxmag0 = 10 ** (0.4 * 27)
    a = math.exp(10)
    expect = []
    for f in (i, r, g):
        x = f * counts_per_nmgy * 10 ** (0.4 * 19) / fluxmag0
        y = math.asinh(a * x) / math.asinh(a)
        y = (y + 0.05) / (2 / 3 + 0.05)
        expect.append(int(255 * min(max(y, 0), 1)))
    assert expect == [212, 189, 166]
    _close(render(_pixel({"g": g, "r": r, "i": i}, "gri"), "gri", "hsc")[:, 0, 0], expect)
    # zero flux: (0 + 0.05) / (2/3 + 0.05) -> 17
    _close(render(np.zeros((3, 1, 1), np.float32), "gri", "hsc")[:, 0, 0], [17, 17, 17])


# ---------------------------------------------------------------- output and errors

@pytest.mark.parametrize("name", sorted(RENDERERS))
def test_output_shape_range_dtype_and_8bit(name):
    rng = np.random.default_rng(1)
    bands = ["u", "g", "r", "i", "z"]
    img = rng.normal(0, 0.05, size=(5, 7, 9)).astype(np.float32)
    img[:, 3, 4] += 200.0
    img[1, 0, 0] = np.nan
    out = render(img, bands, name)
    assert out.shape == (3, 7, 9) and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 1
    np.testing.assert_allclose(out * 255, np.round(out * 255), atol=1e-4)
    assert to_rgb(img, bands, name, RENDERERS[name].pixel_scale).shape == (7, 9, 3)


@pytest.mark.parametrize("name, bands, missing", [
    ("sdss", "grz", "['i']"), ("hsc", "grz", "['i']"), ("legacysurvey", "gri", "['z']"), ("sdss", "ugz", "['i', 'r']")])
def test_missing_bands_are_named(name, bands, missing):
    with pytest.raises(SettingsError) as err:
        render(np.zeros((3, 2, 2), np.float32), list(bands), name)
    msg = str(err.value)
    assert name in msg and f"missing {missing}" in msg and f"available: {list(bands)}" in msg


def test_bad_settings():
    img = np.zeros((3, 2, 2), np.float32)
    with pytest.raises(SettingsError, match="unknown renderer"):
        render(img, "grz", "nosuch")
    with pytest.raises(SettingsError, match="pixel_scale"):
        render(img, "grz", pixel_scale=0)
    with pytest.raises(SettingsError, match="expected"):
        render(img[:2], "grz")
    for q in (0, 101, 50.5, True):
        with pytest.raises(SettingsError, match="JPEG quality"):
            render(img, "grz", jpeg_quality=q)


# ---------------------------------------------------------------- JPEG

def _galaxy_field(n=48):
    yy, xx = np.mgrid[:n, :n]
    rng = np.random.default_rng(3)
    img = np.empty((3, n, n), np.float32)
    for k, amp in enumerate((2.0, 3.0, 4.5)):
        img[k] = amp * np.exp(-((xx - 20) ** 2 + (yy - 26) ** 2) / 30.0) + rng.normal(0, 0.02, (n, n))
    return img


def test_jpeg_roundtrip_changes_pixels_keeps_mean_and_quality_matters():
    rgb = render(_galaxy_field(), "grz", "legacysurvey")
    hi = jpeg_roundtrip(rgb, 95)
    lo = jpeg_roundtrip(rgb, 10)
    assert hi.shape == rgb.shape and hi.dtype == np.float32
    err_hi, err_lo = np.abs(hi - rgb).mean(), np.abs(lo - rgb).mean()
    assert 0 < err_hi < err_lo
    assert abs(hi.mean() - rgb.mean()) < 0.01 and abs(lo.mean() - rgb.mean()) < 0.03
    np.testing.assert_array_equal(render(_galaxy_field(), "grz", "legacysurvey", jpeg_quality=10), lo)
    assert RENDERERS["legacysurvey"].jpeg_quality == 90 and RENDERERS["hsc"].jpeg_quality is None


# ---------------------------------------------------------------- mosaics and the command line

def test_mosaic_with_a_renderer(tiny_dataset, tmp_path):
    ds = open_dataset(tiny_dataset[0])
    png = mosaic(ds, tmp_path / "m.png", per_class=2, method="legacysurvey", jpeg_quality=80)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(SettingsError, match=r"needs bands .*missing \['i'\].*available: \['g', 'r', 'z'\]"):
        mosaic(ds, tmp_path / "n.png", method="sdss")
    assert not (tmp_path / "n.png").exists()


def test_mosaic_refuses_a_renderer_on_display_pictures(tmp_path):
    w = DatasetWriter(tmp_path / "pics", "decals", SHAPE, classes=CLASSES, n_shards=1, config={},
                      extra_meta={"flux_unit": "display"})
    w.write_shard(0, np.clip(make_images(3), 0, 1), make_columns(3))
    w.finalize()
    ds = open_dataset(tmp_path / "pics")
    with pytest.raises(SettingsError, match="nanomaggies"):
        mosaic(ds, tmp_path / "p.png", method="hsc")
    assert mosaic(ds, tmp_path / "p.png", per_class=1, method="asinh").exists()


def test_unlabelled_pictures_are_shown_as_stored_upright(tmp_path, tiny_dataset, capsys):
    """An unlabelled picture import (row 0 on top) is drawn as stored, not re-stretched or flipped; flux stays
    north up."""
    from labelsky.data.display import picture_of

    cols = make_columns(7, label=np.full(7, -1, np.int16), label_name=[""] * 7, split=["unlabelled"] * 7)
    pixels = np.clip(make_images(7), 0, 1)
    w = DatasetWriter(tmp_path / "pics", "decals", SHAPE, classes=[], n_shards=1, config={},
                      extra_meta={"flux_unit": "display"})
    w.write_shard(0, pixels, cols)
    w.finalize()
    ds = open_dataset(tmp_path / "pics")
    rgb, origin = picture_of(ds, 4, "lupton")
    np.testing.assert_allclose(rgb, np.moveaxis(pixels[4], 0, -1), atol=1e-6)
    assert origin == "upper"
    flux = open_dataset(tiny_dataset[0])
    frgb, forigin = picture_of(flux, 0)
    np.testing.assert_allclose(frgb, np.moveaxis(render(flux.image(0), flux.bands, "legacysurvey",
                                                        pixel_scale=flux.survey.pixel_scale), 0, -1))
    assert forigin == "lower"
    out = tmp_path / "fig"
    assert main(["show", str(ds.path), "--per-class", "3", "--jpeg-quality", "90", "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out / "mosaic_decals.png")
    assert (out / "mosaic_decals.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (out / "fields_decals.png").exists()


def test_cli_show_with_renderer_and_jpeg_quality(tiny_dataset, tmp_path, capsys):
    out = tmp_path / "fig"
    assert main(["show", str(tiny_dataset[0]), "--method", "legacysurvey", "--jpeg-quality", "90",
                 "--per-class", "2", "--out", str(out)]) == 0
    assert (out / "mosaic_decals.png").stat().st_size > 1000
    capsys.readouterr()
    assert main(["show", str(tiny_dataset[0]), "--method", "sdss", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "missing ['i']" in err and len(err.strip().splitlines()) == 1
    assert main(["show", str(tiny_dataset[0]), "--jpeg-quality", "0", "--out", str(out)]) == 2
    assert "--jpeg-quality" in capsys.readouterr().err


def test_show_draws_the_black_point_training_used(tiny_dataset, tmp_path, capsys):
    from labelsky.data.display import picture_of

    flux = open_dataset(tiny_dataset[0])
    dark, _ = picture_of(flux, 0, "legacysurvey", black_point=0.1)
    expect = render(flux.image(0), flux.bands, "legacysurvey", pixel_scale=flux.survey.pixel_scale, black_point=0.1)
    np.testing.assert_allclose(dark, np.moveaxis(expect, 0, -1))
    plain, _ = picture_of(flux, 0, "legacysurvey")
    assert dark.mean() < plain.mean() - 0.05
    out = tmp_path / "fig"
    assert main(["show", str(tiny_dataset[0]), "--method", "legacysurvey", "--black-point", "0.1",
                 "--per-class", "2", "--out", str(out)]) == 0
    assert (out / "mosaic_decals.png").stat().st_size > 1000
    capsys.readouterr()
    assert main(["show", str(tiny_dataset[0]), "--method", "lupton", "--black-point", "0.1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--black-point" in err and "renderer" in err and len(err.strip().splitlines()) == 1
