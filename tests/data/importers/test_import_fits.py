"""FITS importers: cutout files (one HDU per band or a cube) and cutouts from large images with a WCS."""

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from labelsky.data.importers.base import ImportSettings
from labelsky.data.importers.fits import import_fits_cutouts, import_fits_images
from labelsky.data.io import DatasetError, open_dataset


def _wcs(ra, dec, scale_arcsec, n):
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [ra, dec]
    w.wcs.crpix = [(n + 1) / 2, (n + 1) / 2]
    w.wcs.cdelt = [-scale_arcsec / 3600, scale_arcsec / 3600]
    return w


def _galaxy(n, flux=100.0, sigma=3.0, seed=0, noise=0.01):
    yy, xx = np.mgrid[:n, :n] - (n - 1) / 2
    g = np.exp(-0.5 * (xx ** 2 + yy ** 2) / sigma ** 2)
    return flux * g / g.sum() + np.random.default_rng(seed).normal(0, noise, (n, n))


def _mef(path, ra, dec, bands=("g", "r", "z"), n=32, scale=0.262, planes=None, **hdr):
    w = _wcs(ra, dec, scale, n)
    hdus = [fits.PrimaryHDU()]
    for i, b in enumerate(bands):
        h = fits.ImageHDU((planes[i] if planes is not None else _galaxy(n, 50 + 10 * i)).astype(np.float32),
                          header=w.to_header())
        h.header["FILTER"] = b
        for k, v in hdr.items():
            h.header[k] = v
        hdus.append(h)
    fits.HDUList(hdus).writeto(path, overwrite=True)


def test_fits_cutouts_round_trip_labels_votes_and_every_bad_case(tmp_path):
    rows = []
    truth = {}
    for i in range(12):
        ra, dec = 150.0 + i * 0.01, 2.0
        f = tmp_path / f"obj{i}.fits"
        planes = np.stack([_galaxy(32, 40 + i, seed=i + k) for k in range(3)])
        if i == 3:
            planes[1, :10, :] = np.nan  # 31 % of band r bad: flagged
        if i == 4:
            planes[2, :, :] = np.inf  # a whole band bad: rejected
        _mef(f, ra, dec, planes=planes)
        truth[f"gal{i}"] = planes
        rows.append((f"gal{i}", ra, dec, f.name, ["spiral", "elliptical"][i % 2], i % 5, 10 - i % 5, 1))
    (tmp_path / "trunc.fits").write_bytes((tmp_path / "obj0.fits").read_bytes()[:3000])
    _mef(tmp_path / "twoband.fits", 151.0, 2.0, bands=("g", "r"))
    rows += [("gal_trunc", 151.0, 2.0, "trunc.fits", "spiral", 1, 1, 0),
             ("gal_missing", 151.1, 2.0, "nothere.fits", "spiral", 1, 1, 0),
             ("gal_twoband", 151.2, 2.0, "twoband.fits", "spiral", 1, 1, 0),
             ("gal_badra", 361.0, 2.0, "obj0.fits", "spiral", 1, 1, 0)]
    t = Table(rows=rows, names=["id_str", "ra", "dec", "file", "label", "t01_smooth_or_features_a01_smooth_count",
                                "t01_smooth_or_features_a02_features_or_disk_count",
                                "t01_smooth_or_features_a03_star_or_artifact_count"])
    t["mag_r"] = np.arange(len(t), dtype=float)  # an extra column is carried along
    cat = tmp_path / "cat.csv"
    t.write(cat, format="ascii.csv")
    ds, rep = import_fits_cutouts(cat, tmp_path / "out", ImportSettings(survey="decals", shard_size=5),
                                  size=32, progress=False)
    rejected = {p["id_str"]: p["reason"] for p in rep["problems"] if p["action"] == "rejected"}
    assert set(rejected) == {"gal4", "gal_trunc", "gal_missing", "gal_twoband", "gal_badra"}
    assert "no valid pixel" in rejected["gal4"] and "not found" in rejected["gal_missing"]
    assert "truncated" in rejected["gal_trunc"] and "band(s) ['z'] missing" in rejected["gal_twoband"]
    assert "ra" in rejected["gal_badra"] and all(p["file"] for p in rep["problems"])
    flagged = [p for p in rep["problems"] if p["action"] == "flagged"]
    assert [p["id_str"] for p in flagged] == ["gal3"] and "band r" in flagged[0]["reason"]
    assert len(ds) == 11 and rep["n_written"] == 11 and (tmp_path / "out" / "import_report.json").exists()
    ids = list(ds.column("id_str"))
    assert ds.classes == ["elliptical", "spiral"] and ds.bands == ["g", "r", "z"]
    k = ids.index("gal2")
    np.testing.assert_allclose(ds.image(k), truth["gal2"], rtol=1e-6)  # same pixel scale: untouched
    assert ds.column("label_name")[k] == "spiral" and ds.column("votes_smooth")[k] == 2
    assert ds.column("votes_featured")[k] == 8 and ds.column("mag_r")[k] == 2.0
    k3 = ids.index("gal3")
    assert ds.column("flag_masked")[k3] and ds.column("masked_frac_r")[k3] == pytest.approx(10 / 32)
    assert np.isnan(ds.image(k3)[1, :10]).all() and np.isfinite(ds.image(k3)[[0, 2]]).all()
    assert set(ds.column("split")) <= {"train", "val", "test"}
    with pytest.raises(DatasetError, match="complete"):
        import_fits_cutouts(cat, tmp_path / "out", ImportSettings(survey="decals"), size=32, progress=False)


def test_catalog_errors_name_file_row_and_field(tmp_path):
    _mef(tmp_path / "a.fits", 10.0, 0.0)
    cat = tmp_path / "cat.csv"
    Table(rows=[("x", 10.0, 0.0, "a.fits"), ("x", 10.1, 0.0, "a.fits")], names=["id_str", "ra", "dec", "file"]) \
        .write(cat, format="ascii.csv", overwrite=True)
    with pytest.raises(DatasetError, match=r"cat.csv.*duplicated id_str.*'x' in rows \[0, 1\]"):
        import_fits_cutouts(cat, tmp_path / "o1", ImportSettings(survey="decals"), size=32, progress=False)
    Table(rows=[("x", 10.0, 0.0)], names=["id_str", "ra", "dec"]).write(cat, format="ascii.csv", overwrite=True)
    with pytest.raises(DatasetError, match=r"missing column\(s\) \['file'\]"):
        import_fits_cutouts(cat, tmp_path / "o2", ImportSettings(survey="decals"), size=32, progress=False)
    Table(rows=[("x", 10.0, 0.0, "a.fits", "blob")], names=["id_str", "ra", "dec", "file", "label"]) \
        .write(cat, format="ascii.csv", overwrite=True)
    with pytest.raises(DatasetError, match=r"row 0 \(id_str='x'\): class 'blob' is not among"):
        import_fits_cutouts(cat, tmp_path / "o3", ImportSettings(survey="decals", classes=["spiral"]), size=32,
                            progress=False)
    (tmp_path / "junk.fits").write_bytes(b"not a table")
    with pytest.raises(DatasetError, match="junk.fits: cannot read catalog"):
        import_fits_cutouts(tmp_path / "junk.fits", tmp_path / "o4", progress=False)


def test_cube_band_order_resampling_keeps_flux_and_zeropoint(tmp_path):
    n = 64
    planes = np.stack([_galaxy(n, f, sigma=6, noise=0) for f in (30.0, 60.0, 90.0)])
    h = fits.PrimaryHDU(planes.astype(np.float32), header=_wcs(20.0, -5.0, 0.131, n).to_header())
    h.header["BANDS"] = "z,g,r"  # stored out of order
    h.header["MAGZP"] = 25.0  # counts -> nanomaggies: x 10^(-0.4 * 2.5)
    h.writeto(tmp_path / "cube.fits")
    Table(rows=[("c", 20.0, -5.0, "cube.fits")], names=["id_str", "ra", "dec", "file"]).write(
        tmp_path / "cat.fits")
    ds, rep = import_fits_cutouts(tmp_path / "cat.fits", tmp_path / "out", ImportSettings(survey="decals"), size=32,
                                  progress=False)
    img = ds.image(0)
    assert img.shape == (3, 32, 32) and not rep["problems"]
    zp = 10 ** (-0.4 * 2.5)
    # channel order g, r, z; total flux kept by the 0.131 -> 0.262 arcsec resampling (2 % tolerance)
    np.testing.assert_allclose(img.reshape(3, -1).sum(1), np.array([60.0, 90.0, 30.0]) * zp, rtol=0.02)
    assert ds.column("split")[0] == "unlabelled"  # no labels


def test_cutouts_from_a_large_image_with_wcs_partial_and_outside(tmp_path):
    n, scale = 200, 0.262
    w = _wcs(30.0, 0.0, scale, n)
    yy, xx = np.mgrid[:n, :n]
    sky = np.zeros((n, n))
    src = [(60.0, 80.0), (120.5, 150.0), (3.0, 100.0)]  # (x, y) pixel positions; the last one near the edge
    for x0, y0 in src:
        sky += 50 * np.exp(-0.5 * ((xx - x0) ** 2 + (yy - y0) ** 2) / 2.0 ** 2)
    paths = {}
    for b, f in (("g", 1.0), ("r", 2.0), ("z", 3.0)):
        paths[b] = tmp_path / f"tile_{b}.fits"
        fits.PrimaryHDU((f * sky).astype(np.float32), header=w.to_header()).writeto(paths[b])
    world = w.pixel_to_world_values(np.array([s[0] for s in src]), np.array([s[1] for s in src]))
    rows = [(f"s{i}", float(world[0][i]), float(world[1][i])) for i in range(3)] + [("far", 31.0, 1.0)]
    Table(rows=rows, names=["id_str", "ra", "dec"]).write(tmp_path / "cat.parquet", format="parquet")
    ds, rep = import_fits_images(paths, tmp_path / "cat.parquet", tmp_path / "out",
                                 ImportSettings(survey="decals", max_masked=0.2), size=24, progress=False)
    assert [p["id_str"] for p in rep["problems"] if p["action"] == "rejected"] == ["far"]
    assert len(ds) == 3
    imgs = ds.images()
    for i in (0, 1):  # centred on the source, flux ratios of the bands kept
        peak = np.unravel_index(np.nanargmax(imgs[i, 0]), imgs[i, 0].shape)
        assert abs(peak[0] - 11.5) <= 1 and abs(peak[1] - 11.5) <= 1
        np.testing.assert_allclose(np.nansum(imgs[i], axis=(1, 2)) / np.nansum(imgs[i, 0]), [1, 2, 3], rtol=1e-5)
    edge = list(ds.column("id_str")).index("s2")
    assert 0.3 < ds.column("masked_frac_g")[edge] < 0.6 and ds.column("flag_masked")[edge]
    assert np.isnan(imgs[edge, :, :, 0]).all()  # off the image: padded and masked


def test_round_trip_export_import_validate_train_catalog_on_the_command_line(tmp_path):
    """Simulated cutouts written as FITS files + CSV, imported, validated, trained on (tiny) and catalogued."""
    import pyarrow.parquet as pq

    from labelsky.cli import main
    from labelsky.data.importers.fits import export_fits_cutouts
    from labelsky.data.simulate import simulate_galaxies

    sim = simulate_galaxies(tmp_path / "sim", n_objects=48, surveys=["decals"], stamp_size=24,
                            classes={"elliptical": 1, "spiral": 1}, workers=1, progress=False)["decals"]
    cat = export_fits_cutouts(sim, tmp_path / "files")
    out = tmp_path / "imported"
    assert main(["import", "fits-cutouts", str(cat), "--survey", "decals", "--size", "24", "--out", str(out),
                 "--shard-size", "16"]) == 0
    ds = open_dataset(out)
    assert len(ds) == 48 and ds.classes == ["elliptical", "spiral"]
    order = {s: i for i, s in enumerate(sim.column("id_str"))}
    for k in (0, 17, 47):
        np.testing.assert_allclose(ds.image(k), sim.image(order[ds.column("id_str")[k]]), rtol=1e-6)
    np.testing.assert_array_equal(ds.column("votes_smooth"), sim.column("votes_smooth")[[order[s] for s in
                                                                                          ds.column("id_str")]])
    assert main(["validate", str(out)]) == 0
    run = tmp_path / "run"
    assert main(["train", "--data", str(out), "--out", str(run), "--backbone", "resnet10t", "--epochs", "1",
                 "--batch-size", "16", "--stretch", "standardize", "--mask-channel"]) == 0
    assert main(["catalog", "--run", str(run), "--data", str(out), "--out", str(tmp_path / "cat.parquet")]) == 0
    t = pq.read_table(tmp_path / "cat.parquet")
    assert t.num_rows == 48 and set(t.column("id_str").to_pylist()) == set(sim.column("id_str"))


def test_validate_lists_every_problem_at_once(tmp_path, capsys):
    import json

    import h5py
    import pyarrow as pa
    import pyarrow.parquet as pq

    from labelsky.cli import main
    from labelsky.data.simulate import simulate_galaxies
    from labelsky.data.validate import validate_dataset

    ds = simulate_galaxies(tmp_path / "sim", n_objects=32, surveys=["sdss"], stamp_size=16, shard_size=16,
                           workers=1, progress=False)["sdss"]
    part = ds.path / "catalog" / "part-00000.parquet"
    t = pq.read_table(part)
    ids = t.column("id_str").to_pylist()
    ids[3] = ids[2]  # duplicate id
    ra = t.column("ra").to_numpy().copy()
    ra[5] = 400.0
    t = t.set_column(t.column_names.index("id_str"), "id_str", pa.array(ids))
    t = t.set_column(t.column_names.index("ra"), "ra", pa.array(ra))
    pq.write_table(t, part)
    with h5py.File(ds.path / "images" / "shard-00001.h5", "r+") as f:
        img = f["images"]
        img[2, 0] = np.nan  # a band without any valid pixel
        img[4, 1, :8] = np.nan  # half of a band bad: warning
        img[6, 2, 0, 0] = np.inf
    problems = validate_dataset(ds.path)
    msgs = [(p["level"], p["field"], p["row"]) for p in problems]
    assert ("error", "id_str", 3) in msgs and ("error", "ra", 5) in msgs
    assert ("error", "pixels", 2) in msgs and ("warning", "pixels", 4) in msgs and ("error", "pixels", 6) in msgs
    assert all(p["file"] for p in problems)
    assert main(["validate", str(ds.path), "--json"]) == 1
    assert len(json.loads(capsys.readouterr().out)) == len(problems)


def test_vote_table_joined_by_id_and_interrupted_import_resumes(tmp_path, monkeypatch):
    import labelsky.data.importers.fits as fx

    rows = []
    for i in range(10):
        _mef(tmp_path / f"o{i}.fits", 40.0 + i * 0.01, 1.0)
        rows.append((f"g{i}", 40.0 + i * 0.01, 1.0, f"o{i}.fits"))
    Table(rows=rows, names=["id_str", "ra", "dec", "file"]).write(tmp_path / "cat.csv", format="ascii.csv")
    Table({"id_str": ["g1", "g4"], "smooth-or-featured_smooth": [7, 1], "smooth-or-featured_featured-or-disk": [2, 9],
           "smooth-or-featured_artifact": [0, 1]}).write(tmp_path / "votes.csv", format="ascii.csv")
    real = fx.read_fits_cutout
    calls = []

    def flaky(path, *a, **k):  # the job dies while reading the 7th object (third shard)
        calls.append(path)
        if len(calls) == 7:
            raise KeyboardInterrupt
        return real(path, *a, **k)

    monkeypatch.setattr(fx, "read_fits_cutout", flaky)
    settings = dict(survey="decals", shard_size=3)
    with pytest.raises(KeyboardInterrupt):
        fx.import_fits_cutouts(tmp_path / "cat.csv", tmp_path / "out", ImportSettings(**settings), size=32,
                               votes=tmp_path / "votes.csv", progress=False)
    first = (tmp_path / "out" / "images" / "shard-00000.h5").stat()
    monkeypatch.setattr(fx, "read_fits_cutout", real)
    ds, rep = fx.import_fits_cutouts(tmp_path / "cat.csv", tmp_path / "out", ImportSettings(**settings), size=32,
                                     votes=tmp_path / "votes.csv", progress=False)
    again = (tmp_path / "out" / "images" / "shard-00000.h5").stat()
    assert (first.st_mtime_ns, first.st_ino) == (again.st_mtime_ns, again.st_ino)  # kept, not rewritten
    assert list(ds.column("id_str")) == [f"g{i}" for i in range(10)]
    assert list(ds.column("votes_smooth")) == [-1, 7, -1, -1, 1, -1, -1, -1, -1, -1]
    assert list(ds.column("votes_featured"))[4] == 9
