"""Careless and hostile inputs to `labelsky import` and `validate`: every one is refused or flagged, never silent.

Each test is one item of the "nothing silent, nothing lost" list: huge finite pixels, an edited catalog under a
resumed import, catalog paths to devices, FIFOs, parent folders and absolute paths, decompression bombs, an import
where every row is rejected, a byte-order mark, a header-only CSV, label typos, ra = 360, ``--out x.csv``.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from astropy.table import Table

from conftest import write_dataset
from labelsky.cli import main
from labelsky.data.importers.base import ImportSettings, clean_image, read_table
from labelsky.data.importers.fits import export_fits_cutouts, import_fits_cutouts
from labelsky.data.io import DatasetError, open_dataset
from labelsky.data.validate import validate_dataset


@pytest.fixture()
def cutouts(tmp_path):
    """12 FITS cutouts (decals g r z, 8 x 8) with a CSV catalog."""
    write_dataset(tmp_path / "src")
    cat = export_fits_cutouts(open_dataset(tmp_path / "src"), tmp_path / "cut")
    return cat


def _err(capsys):
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines and lines[-1].startswith("labelsky: error:"), lines
    return lines[-1]


def test_a_huge_finite_pixel_is_masked_at_import_and_reported_by_validate(cutouts, tmp_path):
    from astropy.io import fits

    f = cutouts.parent / "cutouts" / "obj-0003.fits"
    with fits.open(f, mode="update") as hdul:
        hdul[1].data[2, 2] = 3e38  # float32's largest finite range: no stretch survives it
    ds, rep = import_fits_cutouts(cutouts, tmp_path / "out", ImportSettings(survey="decals"), size=8, progress=False)
    row = list(ds.column("id_str")).index("obj-0003")
    img = ds.image(row)
    assert np.isnan(img[0, 2, 2]) and np.isfinite(img[0][~np.isnan(img[0])]).all()
    assert float(ds.column("masked_frac_g")[row]) == pytest.approx(1 / 64)
    # the stretch itself is overflow-safe for any finite value
    from labelsky.data.transforms import Preprocess

    raw = np.ones((3, 8, 8), np.float32)
    raw[0, 0, 0], raw[1, 1, 1] = 3e38, -1e37
    for stretch in ("asinh", "khan", "standardize", "robust_asinh"):
        pre = Preprocess([0, 1, 2], noise=[1e-3] * 3, stretch=stretch)
        assert np.isfinite(pre(raw).numpy()).all() and np.isfinite(pre.batch(raw[None]).numpy()).all(), stretch
    # validate reports a pixel beyond the limit in a dataset written by other means
    w, imgs, _ = write_dataset(tmp_path / "bad", finalize=False)
    from conftest import make_columns, make_images

    im = make_images(5)
    im[1, 0, 4, 4] = 1e37
    w.write_shard(0, im, make_columns(5))
    w.finalize()
    probs = validate_dataset(tmp_path / "bad")
    assert any(p["level"] == "error" and "beyond the physical limit" in p["message"] and p["row"] == 1 for p in probs)


def test_clean_image_masks_beyond_the_limit():
    x = np.ones((1, 2, 2), np.float64)
    x[0, 0, 0] = 1e300  # float64 beyond float32: becomes inf, masked
    x[0, 1, 1] = 2e9
    img, frac = clean_image(x, ["g"], None, max_abs=1e9)
    assert np.isnan(img[0, 0, 0]) and np.isnan(img[0, 1, 1]) and frac[0] == 0.5


def test_a_resumed_import_with_an_edited_catalog_is_refused(cutouts, tmp_path, monkeypatch):
    import labelsky.data.importers.base as base

    settings = dict(survey="decals", shard_size=4)
    real = base.DatasetWriter.write_shard
    calls = {"n": 0}

    def dying(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # killed after the first shard
        return real(self, *a, **k)

    monkeypatch.setattr(base.DatasetWriter, "write_shard", dying)
    with pytest.raises(KeyboardInterrupt):
        import_fits_cutouts(cutouts, tmp_path / "out", ImportSettings(**settings), size=8, progress=False)
    monkeypatch.setattr(base.DatasetWriter, "write_shard", real)
    t = Table.read(cutouts, format="ascii.csv")
    t["label"] = ["featured" if v == "smooth" else v for v in t["label"]]  # the user flips labels
    t.write(cutouts, format="ascii.csv", overwrite=True)
    with pytest.raises(DatasetError, match="input catalog's content"):
        import_fits_cutouts(cutouts, tmp_path / "out", ImportSettings(**settings), size=8, progress=False)


def test_catalog_paths_to_devices_fifos_parents_and_absolute_files_are_refused(cutouts, tmp_path):
    t = Table.read(cutouts, format="ascii.csv")
    outside = tmp_path / "elsewhere.fits"
    (cutouts.parent / "cutouts" / "obj-0001.fits").replace(outside)
    fifo = cutouts.parent / "cutouts" / "pipe.fits"
    os.mkfifo(fifo)
    t["file"] = t["file"].astype(object)
    t["file"][0] = "/dev/zero"
    t["file"][1] = "../elsewhere.fits"
    t["file"][2] = "cutouts/pipe.fits"
    t["file"][3] = str(outside)
    t.write(cutouts, format="ascii.csv", overwrite=True)
    ds, rep = import_fits_cutouts(cutouts, tmp_path / "out", ImportSettings(survey="decals"), size=8, progress=False)
    reasons = {p["id_str"]: p["reason"] for p in rep["problems"] if p["action"] == "rejected"}
    assert "outside the base folder" in reasons["obj-0000"] and "outside the base folder" in reasons["obj-0001"]
    assert "not a regular file" in reasons["obj-0002"] and "outside the base folder" in reasons["obj-0003"]
    assert len(ds) == 8
    # explicitly allowed: the file outside is read, the device still is not
    ds, rep = import_fits_cutouts(cutouts, tmp_path / "out2", ImportSettings(survey="decals",
                                                                           allow_outside_base=True),
                                  size=8, progress=False)
    reasons = {p["id_str"]: p["reason"] for p in rep["problems"] if p["action"] == "rejected"}
    assert "not a regular file" in reasons["obj-0000"] and "obj-0001" not in reasons and len(ds) == 10
    # a size limit
    ds, rep = import_fits_cutouts(cutouts, tmp_path / "out3", ImportSettings(survey="decals", max_file_bytes=100),
                                  size=8, progress=False)
    assert len(ds) == 0 and all("beyond the limit" in p["reason"] or "outside" in p["reason"]
                                or "regular file" in p["reason"] for p in rep["problems"])


def test_a_decompression_bomb_is_refused_before_it_is_decoded(tmp_path):
    from PIL import Image

    from labelsky.data.importers.pictures import import_pictures

    Image.new("RGB", (64, 64), (10, 20, 30)).save(tmp_path / "ok.png")
    Image.new("RGB", (3000, 3000), (0, 0, 0)).save(tmp_path / "bomb.png")  # ~26 KB on disk, 27 MB decoded
    assert (tmp_path / "bomb.png").stat().st_size < 100_000
    Table({"id_str": ["a", "b"], "ra": [1.0, 2.0], "dec": [0.0, 0.0], "file": ["ok.png", "bomb.png"]}).write(
        tmp_path / "cat.csv", format="ascii.csv")
    ds, rep = import_pictures(tmp_path / "cat.csv", tmp_path / "out", ImportSettings(survey="decals",
                                                                                  max_pixels=1_000_000),
                              size=64, progress=False)
    assert len(ds) == 1 and "beyond the limit of 1000000" in rep["problems"][0]["reason"]


def test_an_import_with_every_row_rejected_exits_2_and_validate_warns_on_empty(cutouts, tmp_path, capsys):
    for f in (cutouts.parent / "cutouts").iterdir():
        f.write_bytes(b"not fits")
    assert main(["import", "fits-cutouts", str(cutouts), "--survey", "decals", "--size", "8", "--out",
                 str(tmp_path / "out")]) == 2
    assert "nothing usable was imported: all 12 rows" in _err(capsys)
    probs = validate_dataset(tmp_path / "out")
    assert any(p["level"] == "warning" and "holds no object" in p["message"] for p in probs)


def test_bom_header_only_csv_ra_360_and_label_typos(tmp_path, cutouts, capsys):
    (tmp_path / "bom.csv").write_bytes("\ufeffid_str,ra,dec\na,1,2\n".encode("utf-8"))
    assert read_table(tmp_path / "bom.csv").colnames == ["id_str", "ra", "dec"]
    (tmp_path / "hdr.csv").write_text("id_str,ra,dec,file\n")
    with pytest.raises(DatasetError, match="no rows"):
        read_table(tmp_path / "hdr.csv")
    t = Table.read(cutouts, format="ascii.csv")
    t["ra"][0] = 360.0
    t["label"] = t["label"].astype(object)
    t["label"][5] = "smoth"  # a typo: a class of one
    t.write(cutouts, format="ascii.csv", overwrite=True)
    assert main(["import", "fits-cutouts", str(cutouts), "--survey", "decals", "--size", "8", "--out",
                 str(tmp_path / "out")]) == 0
    cap = capsys.readouterr()
    assert "field 'ra' = 360.0 outside [0, 360) degrees" in cap.out and "np.float64" not in cap.out
    assert "smoth (1)" in cap.out and "typo" in cap.err


def test_out_with_a_file_name_is_refused(cutouts, tmp_path, capsys):
    assert main(["import", "fits-cutouts", str(cutouts), "--survey", "decals", "--size", "8", "--out",
                 str(tmp_path / "x.csv")]) == 2
    assert "looks like a file name" in _err(capsys) and not (tmp_path / "x.csv").exists()
