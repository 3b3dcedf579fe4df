"""`import detect`: sources found in one large image (synthetic blobs, FITS with WCS, the Hubble Deep Field)."""

import json

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS
from PIL import Image

from labelsky.cli import main
from labelsky.data.importers.base import ImportSettings
from labelsky.data.importers.detect import import_detections
from labelsky.data.io import open_dataset
from labelsky.errors import SettingsError

pytest.importorskip("photutils")

H, W = 200, 240
BLOBS = [(60.3, 70.6, 2.5), (180.0, 52.2, 3.0), (120.7, 150.4, 2.0), (40.2, 160.8, 3.5)]  # x, y, sigma


def blob_image(blobs=BLOBS, amp=1.0, noise=0.02, seed=0):
    yy, xx = np.mgrid[:H, :W]
    img = np.random.default_rng(seed).normal(0.1, noise, (H, W))
    for x, y, s in blobs:
        img += amp * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * s ** 2))
    return img


def write_png(path, blobs=BLOBS):
    img = np.clip(blob_image(blobs) * 200, 0, 255).astype(np.uint8)
    Image.fromarray(np.stack([img, img // 2, img], axis=-1)).save(path)
    return path


def wcs():
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [150.0, 2.0]
    w.wcs.crpix = [W / 2, H / 2]
    w.wcs.cdelt = [-0.262 / 3600, 0.262 / 3600]
    return w


def nearest(ds, x, y):
    d = np.hypot(ds.column("x") - x, ds.column("y") - y)
    return int(np.argmin(d)), float(d.min())


def test_blobs_in_a_picture_found_at_their_positions_and_centred(tmp_path):
    png = write_png(tmp_path / "field.png")
    ds, rep = import_detections(png, tmp_path / "ds", size=32, progress=False)
    assert len(ds) == len(BLOBS) and rep["detection"]["n_sources"] == len(BLOBS)
    assert ds.meta["flux_unit"] == "display" and list(ds.bands) == ["g", "r", "z"]
    assert ds.classes == [] and set(ds.column("split")) == {"unlabelled"} and (ds.column("label") == -1).all()
    assert all(s.startswith("field_") for s in ds.column("id_str"))
    assert (ds.column("radec_source") == "pixel").all()
    for x, y, s in BLOBS:
        i, d = nearest(ds, x, y)
        assert d < 0.3
        img = ds.image(i)
        assert img.shape == (3, 32, 32) and 0 <= np.nanmin(img) and np.nanmax(img) <= 1
        py, px = np.unravel_index(np.argmax(img[0]), img[0].shape)
        assert abs(py - 15.5) <= 1.5 and abs(px - 15.5) <= 1.5
        np.testing.assert_allclose(img[1], np.floor(img[0] * 255 / 2) / 255, atol=1.5 / 255)  # channel order
        assert ds.column("semimajor_sigma")[i] == pytest.approx(s, rel=0.35)
    assert json.loads((tmp_path / "ds" / "import_report.json").read_text())["detection"]["n_detected"] == 4


def test_fits_with_wcs_gives_ra_dec_and_flux(tmp_path):
    hdr = wcs().to_header()
    hdr["FILTER"] = "r"
    fits.PrimaryHDU(blob_image().astype(np.float32), header=hdr).writeto(tmp_path / "r.fits")
    ds, _ = import_detections(tmp_path / "r.fits", tmp_path / "ds", size=24, progress=False)
    assert list(ds.bands) == ["r"] and ds.meta["flux_unit"] == "nanomaggy" and len(ds) == len(BLOBS)
    assert (ds.column("radec_source") == "wcs").all()
    for x, y, _ in BLOBS:
        i, d = nearest(ds, x, y)
        ra, dec = wcs().pixel_to_world_values(x, y)
        assert abs(ds.column("ra")[i] - ra) * 3600 < 0.2 and abs(ds.column("dec")[i] - dec) * 3600 < 0.2
        assert ds.column("pixel_scale")[i] == pytest.approx(0.262, rel=1e-3)
    assert (ds.column("det_flux") > 5).all()


def test_cube_scaled_cutouts_edge_and_max_sources(tmp_path):
    blobs = BLOBS + [(3.0, 100.0, 2.5), (120.0, 100.0, 6.0)]  # one on the edge, one large
    cube = np.stack([blob_image(blobs, amp=a) for a in (0.5, 1.0, 2.0)]).astype(np.float32)
    hdu = fits.PrimaryHDU(cube)
    hdu.header["BANDS"] = "g,r,z"
    hdu.writeto(tmp_path / "cube.fits")
    settings = ImportSettings(survey="decals", bands=["z", "g"], shard_size=4)
    ds, rep = import_detections(tmp_path / "cube.fits", tmp_path / "a", settings=settings, size=16,
                                cutout="scaled", edge="drop", id_prefix="c", progress=False)
    assert list(ds.bands) == ["z", "g"] and (ds.column("radec_source") == "pixel").all()
    assert len(ds) == len(BLOBS) + 1 and rep["n_rejected"] == 1 and "edge" in rep["problems"][0]["reason"]
    i, _ = nearest(ds, 120.0, 100.0)
    assert ds.column("cutout_side")[i] >= 100 and ds.image(i).shape == (2, 16, 16)
    assert ds.column("ra")[i] == pytest.approx(ds.column("x")[i] * 0.262 / 3600)  # decals pixels, not the sky
    side, x, y = ds.column("cutout_side")[i], ds.column("x")[i], ds.column("y")[i]
    x0, y0 = (int(np.floor(v - (side - 1) / 2 + 0.5)) for v in (x, y))
    raw = cube[[2, 0], y0:y0 + side, x0:x0 + side].sum(axis=(1, 2))
    np.testing.assert_allclose(np.nansum(ds.image(i), axis=(1, 2)), raw, rtol=0.01)  # flux kept when resampled
    ds, rep = import_detections(tmp_path / "cube.fits", tmp_path / "b", settings=settings, size=16, max_sources=2,
                                pixel_scale=0.5, progress=False)
    assert len(ds) == 2 and rep["detection"]["n_beyond_max_sources"] == len(blobs) - 2
    np.testing.assert_allclose(ds.column("dec"), ds.column("y") * 0.5 / 3600)
    assert (ds.column("pixel_scale") == 0.5).all()
    assert sorted(ds.column("semimajor_sigma"))[-1] > 4  # the large, brightest blob is kept


def test_hubble_deep_field_example_through_the_cli(tmp_path, capsys):
    pytest.importorskip("skimage")
    out = tmp_path / "hdf"
    assert main(["import", "detect", "--example", "hubble-deep-field", "--out", str(out)]) == 0
    assert "source(s) detected" in capsys.readouterr().out
    ds = open_dataset(out)
    assert len(ds) >= 100 and ds.image_shape == (3, 64, 64) and list(ds.bands) == ["g", "r", "z"]
    assert ds.classes == [] and (ds.column("label") == -1).all() and (ds.column("label_name") == "").all()
    assert all(s.startswith("hdf_") for s in ds.column("id_str")[:5])
    assert main(["import", "detect", "--example", "hubble-deep-field", "--out", str(out)]) == 2  # finished: kept


@pytest.mark.parametrize("case, argv, names", [
    ("missing", ["{root}/nowhere.png"], ["nowhere.png", "not found"]),
    ("not_an_image", ["{root}/notes.png"], ["notes.png", "not an image"]),
    ("fits_table", ["{root}/table.fits"], ["table.fits", "no 2-D image"]),
    ("flat", ["{root}/flat.png"], ["flat.png", "no source detected"]),
    ("no_image", [], ["IMAGE", "--example"]),
    ("both", ["{root}/flat.png", "--example", "hubble-deep-field"], ["--example"]),
    ("threshold", ["{root}/flat.png", "--threshold", "-1"], ["--threshold"]),
])
def test_bad_inputs_are_one_line_errors(tmp_path, capsys, case, argv, names):
    (tmp_path / "notes.png").write_text("not a picture\n")
    fits.BinTableHDU.from_columns([fits.Column(name="a", format="E", array=np.zeros(3))]).writeto(
        tmp_path / "table.fits")
    Image.fromarray(np.full((64, 64, 3), 30, np.uint8)).save(tmp_path / "flat.png")
    args = ["import", "detect", *(a.format(root=tmp_path) for a in argv), "--out", str(tmp_path / "out")]
    rc = main(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("labelsky: error: "), err
    for name in names:
        assert name in err[0], err[0]


def test_example_needs_scikit_image(monkeypatch):
    import sys

    from labelsky.data.importers.detect import example_image

    monkeypatch.setitem(sys.modules, "skimage", None)
    monkeypatch.setitem(sys.modules, "skimage.data", None)
    with pytest.raises(SettingsError, match="scikit-image"):
        example_image("hubble-deep-field")
    with pytest.raises(SettingsError, match="unknown example"):
        example_image("m31")
