"""Cross-matching: known offsets, duplicates, RA wrap, bad input, brute force, datasets end to end, CLI."""

import json

import numpy as np
import pytest

from conftest import CLASSES, make_columns
from labelsky.cli import main
from labelsky.data.crossmatch import crossmatch, crossmatch_datasets
from labelsky.data.io import DatasetError, DatasetWriter, open_dataset

ARCSEC = 1.0 / 3600.0


def _sep_arcsec(ra1, dec1, ra2, dec2):
    """Brute-force angular separation matrix [len(1), len(2)] in arcsec (atan2 of cross and dot products)."""
    def unit(ra, dec):
        ra, dec = np.radians(ra), np.radians(dec)
        return np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)], axis=-1)

    u1, u2 = unit(np.asarray(ra1), np.asarray(dec1)), unit(np.asarray(ra2), np.asarray(dec2))
    dot = u1 @ u2.T
    cross = np.linalg.norm(np.cross(u1[:, None, :], u2[None, :, :]), axis=-1)
    return np.degrees(np.arctan2(cross, dot)) * 3600.0


def _brute_match(ra1, dec1, ra2, dec2, radius):
    sep = _sep_arcsec(ra1, dec1, ra2, dec2)
    nearest = sep.argmin(axis=1)
    d = sep[np.arange(len(ra1)), nearest]
    best = {}
    for i in np.flatnonzero(d <= radius):
        j = nearest[i]
        if j not in best or d[i] < d[best[j]]:
            best[j] = i
    i1 = np.array(sorted(best.values()), dtype=np.int64)
    return i1, nearest[i1], d[i1], int((d <= radius).sum()) - len(i1)


# --------------------------------------------------------------------- crossmatch()
def test_known_offsets_matched_within_radius():
    ra2 = np.array([10.0, 20.0, 30.0, 40.0])
    dec2 = np.array([0.0, 0.0, 60.0, 60.0])
    # 0.5" and 2" north of objects 0 and 1; 0.5" and 2" east (along the sky) of objects 2 and 3 at dec 60
    east = ARCSEC / np.cos(np.radians(60.0))
    ra1 = np.array([10.0, 20.0, 30.0 + 0.5 * east, 40.0 + 2 * east])
    dec1 = np.array([0.5 * ARCSEC, 2 * ARCSEC, 60.0, 60.0])
    m = crossmatch(ra1, dec1, ra2, dec2, radius_arcsec=1.0)
    assert m["i1"].tolist() == [0, 2] and m["i2"].tolist() == [0, 2]
    assert m["i1"].dtype == np.int64 and m["i2"].dtype == np.int64
    np.testing.assert_allclose(m["sep_arcsec"], [0.5, 0.5], atol=1e-6)
    r = m["report"]
    assert (r["n1"], r["n2"], r["n_matched"], r["n_duplicates"]) == (4, 4, 2, 0)
    assert r["fraction_1_matched"] == r["fraction_2_matched"] == 0.5
    assert r["sep_median_arcsec"] == pytest.approx(0.5, abs=1e-6)
    assert r["sep_p90_arcsec"] == pytest.approx(0.5, abs=1e-6)
    assert r["radius_arcsec"] == 1.0
    # a larger radius takes the 2" pairs too
    m = crossmatch(ra1, dec1, ra2, dec2, radius_arcsec=2.5)
    assert m["i1"].tolist() == [0, 1, 2, 3] and m["i2"].tolist() == [0, 1, 2, 3]
    np.testing.assert_allclose(m["sep_arcsec"], [0.5, 2.0, 0.5, 2.0], atol=1e-6)
    assert m["report"]["sep_median_arcsec"] == pytest.approx(1.25, abs=1e-6)


def test_pairs_follow_catalog_order():
    ra2 = np.array([5.0, 3.0, 1.0])
    ra1 = np.array([1.0, 5.0, 3.0, 7.0])
    m = crossmatch(ra1, np.zeros(4), ra2, np.zeros(3))
    assert m["i1"].tolist() == [0, 1, 2] and m["i2"].tolist() == [2, 0, 1]
    assert m["report"]["fraction_1_matched"] == 0.75 and m["report"]["fraction_2_matched"] == 1.0


def test_duplicates_keep_the_nearest():
    ra2, dec2 = np.array([100.0, 101.0]), np.array([-20.0, -20.0])
    # three objects of catalog 1 around object 0 of catalog 2, at 0.6", 0.3" and 0.9"
    ra1 = np.array([100.0, 100.0, 100.0, 101.0])
    dec1 = np.array([-20.0 + 0.6 * ARCSEC, -20.0 - 0.3 * ARCSEC, -20.0 + 0.9 * ARCSEC, -20.0 + 0.2 * ARCSEC])
    m = crossmatch(ra1, dec1, ra2, dec2, radius_arcsec=1.0)
    assert m["i1"].tolist() == [1, 3] and m["i2"].tolist() == [0, 1]
    np.testing.assert_allclose(m["sep_arcsec"], [0.3, 0.2], atol=1e-6)
    assert m["report"]["n_duplicates"] == 2 and m["report"]["n_matched"] == 2


def test_ra_wrap_around():
    # 0.25" either side of RA 0 at dec 0: 0.5" apart
    ra1 = np.array([360.0 - 0.25 * ARCSEC, 180.0])
    ra2 = np.array([179.0, 0.25 * ARCSEC])
    m = crossmatch(ra1, np.zeros(2), ra2, np.zeros(2), radius_arcsec=1.0)
    assert m["i1"].tolist() == [0] and m["i2"].tolist() == [1]
    np.testing.assert_allclose(m["sep_arcsec"], [0.5], atol=1e-6)
    # near the pole RA differences shrink: 180 degrees of RA at dec 89.9999 is 0.72"
    m = crossmatch([0.0], [90 - 1e-4], [180.0], [90 - 1e-4], radius_arcsec=1.0)
    assert m["report"]["n_matched"] == 1 and m["sep_arcsec"][0] == pytest.approx(0.72, abs=1e-6)


def test_empty_catalogs():
    m = crossmatch([], [], [1.0], [1.0])
    assert m["report"]["n_matched"] == 0 and m["report"]["sep_median_arcsec"] is None
    assert m["i1"].shape == (0,) and m["report"]["fraction_1_matched"] == 0.0
    m = crossmatch([1.0], [1.0], [], [])
    assert m["report"]["n1"] == 1 and m["report"]["fraction_1_matched"] == 0.0


@pytest.mark.parametrize("args, message", [
    (([1.0, 360.0], [0, 0], [1.0], [0.0]), r"catalog 1: row 1: field 'ra' = 360.0 is outside \[0, 360\)"),
    (([1.0, -0.1], [0, 0], [1.0], [0.0]), r"catalog 1: row 1: field 'ra' = -0.1 is outside"),
    (([1.0], [0.0], [1.0, 2.0, 3.0], [0.0, np.nan, 0.0]), r"catalog 2: row 1: field 'dec' = nan is not finite"),
    (([1.0], [0.0], [1.0, 2.0], [0.0, 90.5]), r"catalog 2: row 1: field 'dec' = 90.5 is outside \[-90, 90\]"),
    (([np.inf], [0.0], [1.0], [0.0]), r"catalog 1: row 0: field 'ra' = inf is not finite"),
    (([1.0, 2.0], [0.0], [1.0], [0.0]), r"catalog 1: ra and dec must be 1-D arrays of the same length"),
])
def test_bad_coordinates(args, message):
    with pytest.raises(ValueError, match=message):
        crossmatch(*args)


@pytest.mark.parametrize("radius", [0, -1.0, np.nan, np.inf, "wide"])
def test_bad_radius(radius):
    with pytest.raises(ValueError, match="radius_arcsec"):
        crossmatch([1.0], [0.0], [1.0], [0.0], radius_arcsec=radius)


@pytest.mark.parametrize("ra0, dec0", [(180.0, -30.0), (0.0, 60.0), (45.0, -89.98)])
def test_agrees_with_brute_force(ra0, dec0):
    rng = np.random.default_rng(int(ra0 + dec0 * 7) % 1000)
    half = 36 * ARCSEC  # a crowded 72" patch: many neighbours within the radius, so duplicates occur
    dec2 = np.clip(dec0 + rng.uniform(-half, half, 200), -90, 90)
    ra2 = (ra0 + rng.uniform(-half, half, 200) / max(np.cos(np.radians(dec0)), 0.05)) % 360.0
    take = rng.choice(200, 150, replace=False)
    dec1 = np.clip(dec2[take] + rng.normal(0, 1.5 * ARCSEC, 150), -90, 90)
    ra1 = (ra2[take] + rng.normal(0, 1.5 * ARCSEC, 150) / np.cos(np.radians(dec1))) % 360.0
    ra1 = np.concatenate([ra1, (ra0 + rng.uniform(-half, half, 50)) % 360.0])
    dec1 = np.concatenate([dec1, np.clip(dec0 + rng.uniform(-half, half, 50), -90, 90)])
    i1, i2, sep, n_dup = _brute_match(ra1, dec1, ra2, dec2, 3.0)
    m = crossmatch(ra1, dec1, ra2, dec2, radius_arcsec=3.0)
    assert len(i1) > 50 and n_dup > 0
    np.testing.assert_array_equal(m["i1"], i1)
    np.testing.assert_array_equal(m["i2"], i2)
    np.testing.assert_allclose(m["sep_arcsec"], sep, atol=1e-6)
    assert m["report"]["n_duplicates"] == n_dup and m["report"]["n_matched"] == len(i1)
    assert m["report"]["sep_median_arcsec"] == pytest.approx(np.median(sep), abs=1e-6)
    assert m["report"]["sep_p90_arcsec"] == pytest.approx(np.percentile(sep, 90), abs=1e-6)
    assert len(np.unique(m["i2"])) == len(m["i2"])


# --------------------------------------------------------------------- crossmatch_datasets()
def _write(path, survey, ids, ra, dec, sizes, masks=False, seed=0):
    """A small dataset of ``survey`` with the given ids and positions; returns (dataset, images, masks)."""
    bands = {"decals": 3, "des": 5}[survey]
    rng = np.random.default_rng(seed)
    n = len(ids)
    imgs = rng.normal(size=(n, bands, 8, 8)).astype(np.float32)
    msk = rng.integers(0, 4, size=imgs.shape).astype(np.uint8)
    cols = make_columns(n, id_str=list(ids), ra=np.asarray(ra), dec=np.asarray(dec), survey=[survey] * n)
    cols[f"extra_{survey}"] = np.arange(n, dtype=np.int32) * 10
    w = DatasetWriter(path, survey, (bands, 8, 8), classes=CLASSES, n_shards=len(sizes))
    start = 0
    for s, k in enumerate(sizes):
        sl = slice(start, start + k)
        w.write_shard(s, imgs[sl], {c: v[sl] for c, v in cols.items()}, masks=msk[sl] if masks else None)
        start += k
    return w.finalize(), imgs, msk


@pytest.fixture
def pair(tmp_path):
    """Dataset A (decals, 10 objects) and B (des, 8 objects, shuffled, other ids, 0.4" off, with masks)."""
    ra_a, dec_a = 150.0 + 0.01 * np.arange(10), np.full(10, 2.0)
    a, imgs_a, _ = _write(tmp_path / "a", "decals", [f"a-{i}" for i in range(10)], ra_a, dec_a, (4, 6))
    shared = [8, 3, 1, 9, 6, 4]  # A rows seen by B, in B's order
    ra_b = np.concatenate([ra_a[shared], [ra_a[0], 200.0]])
    dec_b = np.concatenate([dec_a[shared] + 0.4 * ARCSEC, [dec_a[0] + 3 * ARCSEC, -5.0]])
    b, imgs_b, masks_b = _write(tmp_path / "b", "des", [f"b-{i}" for i in range(8)], ra_b, dec_b, (3, 3, 2),
                                masks=True, seed=1)
    return a, b, imgs_a, imgs_b, masks_b


def test_crossmatch_datasets_aligned_copies(tmp_path, pair):
    import h5py

    a, b, imgs_a, imgs_b, masks_b = pair
    out = tmp_path / "out"
    rep = crossmatch_datasets(a, b, out, radius_arcsec=1.0, shard_size=4)
    assert rep["n_matched"] == 6 and rep["n1"] == 10 and rep["n2"] == 8 and rep["n_duplicates"] == 0
    assert rep["a"]["survey"] == "decals" and rep["b"]["survey"] == "des" and rep["n_shards"] == 2
    assert json.loads((out / "crossmatch.json").read_text()) == json.loads(json.dumps(rep))
    oa, ob = open_dataset(out / "decals"), open_dataset(out / "des")
    assert len(oa) == len(ob) == 6 and oa.n_shards == ob.n_shards == 2
    assert oa.classes == ob.classes == CLASSES and ob.image_shape == (5, 8, 8)
    rows_a = [1, 3, 4, 6, 8, 9]
    rows_b = [2, 1, 5, 4, 0, 3]
    assert oa.column("id_str").tolist() == [f"a-{i}" for i in rows_a]
    assert ob.column("id_str").tolist() == oa.column("id_str").tolist()
    assert ob.column("id_str_orig").tolist() == [f"b-{j}" for j in rows_b]
    assert "id_str_orig" not in oa.catalog.column_names
    np.testing.assert_array_equal(oa.images(), imgs_a[rows_a])
    np.testing.assert_array_equal(ob.images(), imgs_b[rows_b])
    with h5py.File(out / "des" / "images" / "shard-00001.h5", "r") as f:
        np.testing.assert_array_equal(f["masks"][:], masks_b[rows_b][4:])
    with h5py.File(out / "decals" / "images" / "shard-00000.h5", "r") as f:
        assert "masks" not in f
    for ds, src, rows in ((oa, a, rows_a), (ob, b, rows_b)):
        assert set(src.catalog.column_names) | {"match_sep_arcsec"} <= set(ds.catalog.column_names)
        np.testing.assert_allclose(ds.column("match_sep_arcsec"), 0.4, atol=1e-6)
        for col in ("ra", "dec", "label", "split", f"extra_{src.survey.name}", "true_mag_r"):
            np.testing.assert_array_equal(ds.column(col), src.column(col)[rows])
    assert oa.meta["producer"] == "labelsky.crossmatch"

    with pytest.raises(DatasetError, match="overwrite"):
        crossmatch_datasets(a, b, out)
    rep = crossmatch_datasets(a, b, out, radius_arcsec=5.0, overwrite=True)
    assert rep["n_matched"] == 7 and rep["n_duplicates"] == 0 and rep["n_shards"] == 1
    assert open_dataset(out / "des").column("id_str_orig").tolist()[0] == "b-6"  # a-0 now matched at 3"


def test_crossmatch_datasets_no_match_and_same_survey(tmp_path, pair):
    a, b = pair[:2]
    rep = crossmatch_datasets(a, b, tmp_path / "none", radius_arcsec=0.1)
    assert rep["n_matched"] == 0 and rep["sep_median_arcsec"] is None
    oa, ob = open_dataset(tmp_path / "none" / "decals"), open_dataset(tmp_path / "none" / "des")
    assert len(oa) == len(ob) == 0
    with pytest.raises(DatasetError, match="both survey 'decals'"):
        crossmatch_datasets(a, a, tmp_path / "same")


# --------------------------------------------------------------------- simulated surveys, CLI
@pytest.fixture(scope="module")
def sims(tmp_path_factory):
    from labelsky.data.simulate import simulate_galaxies

    return simulate_galaxies(tmp_path_factory.mktemp("xm") / "sim", n_objects=40, surveys=["sdss", "des"],
                             stamp_size=24, overlap=0.5, workers=1, progress=False)


def test_simulated_partial_overlap(tmp_path, sims):
    sdss, des = sims["sdss"], sims["des"]
    shared = set(sdss.column("id_str")) & set(des.column("id_str"))
    assert 0 < len(shared) < min(len(sdss), len(des))
    rep = crossmatch_datasets(sdss, des, tmp_path / "xm", shard_size=8)
    assert rep["n_matched"] == len(shared) and rep["n_duplicates"] == 0
    assert rep["fraction_1_matched"] == pytest.approx(len(shared) / len(sdss))
    assert rep["fraction_2_matched"] == pytest.approx(len(shared) / len(des))
    oa, ob = open_dataset(tmp_path / "xm" / "sdss"), open_dataset(tmp_path / "xm" / "des")
    assert set(oa.column("id_str")) == shared and oa.column("id_str").tolist() == ob.column("id_str").tolist()
    assert ob.column("id_str_orig").tolist() == ob.column("id_str").tolist()
    assert oa.n_shards == -(-len(shared) // 8)
    for out, src in ((oa, sdss), (ob, des)):
        where = {s: i for i, s in enumerate(src.column("id_str"))}
        rows = [where[s] for s in out.column("id_str")]
        np.testing.assert_array_equal(out.images(), src.images(rows))
        np.testing.assert_array_equal(out.column("true_mag_r"), src.column("true_mag_r")[rows])
        assert out.survey.name == src.survey.name and out.bands == src.bands
    np.testing.assert_allclose(oa.column("match_sep_arcsec"), 0.0, atol=1e-6)


def test_cli_crossmatch(tmp_path, capsys, sims):
    sdss, des = sims["sdss"], sims["des"]
    n = len(set(sdss.column("id_str")) & set(des.column("id_str")))
    args = ["crossmatch", str(sdss.path), str(des.path), "--out", str(tmp_path / "cli")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"matched {n} objects within 1 arcsec" in out and f"of {len(sdss)} in sdss" in out
    assert "median separation 0.000 arcsec" in out
    assert json.loads((tmp_path / "cli" / "crossmatch.json").read_text())["n_matched"] == n
    assert main(args) == 2
    assert "overwrite" in capsys.readouterr().err
    assert main(args + ["--overwrite", "--radius", "2"]) == 0
    assert "within 2 arcsec" in capsys.readouterr().out
    assert main(args + ["--overwrite", "--radius", "0"]) == 2
    assert "must be > 0" in capsys.readouterr().err


def test_a_resumed_crossmatch_refuses_an_edited_input(tmp_path, pair, monkeypatch):
    import labelsky.data.crossmatch as cm

    a, b, *_ = pair
    out = tmp_path / "xm_edit"
    real = cm.DatasetWriter.write_shard
    calls = {"n": 0}

    def dying(self, *args, **kw):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(self, *args, **kw)

    monkeypatch.setattr(cm.DatasetWriter, "write_shard", dying)
    with pytest.raises(KeyboardInterrupt):
        crossmatch_datasets(a, b, out, radius_arcsec=1.0, shard_size=4)
    monkeypatch.setattr(cm.DatasetWriter, "write_shard", real)
    # the user edits input B's catalog (e.g. new labels) and reruns: refused, not a mix of old and new rows
    import pyarrow.parquet as pq

    part = sorted((b.path / "catalog").glob("*.parquet"))[0]
    t = pq.read_table(part)
    pq.write_table(t.set_column(t.column_names.index("label_name"), "label_name",
                                [["edited"] * t.num_rows]), part)
    with pytest.raises(DatasetError, match="other inputs or settings"):
        crossmatch_datasets(open_dataset(a.path), open_dataset(b.path), out, radius_arcsec=1.0, shard_size=4)
